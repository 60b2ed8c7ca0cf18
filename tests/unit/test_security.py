"""Security basics: the portal token stays secret, configured names cannot inject SQL, reports escape data.

Token tests run real Dagster materializations of the raw crime and 311 assets against a local
Socrata portal on 127.0.0.1 that records the ``X-App-Token`` header of every request. They then
search everything the runs left behind for the token: the Dagster event log, Python logging, the
raw Parquet files, every text column of every DuckDB table, and any other file under the home
folder. Configuration tests load jurisdiction files with hostile names. Report tests render the
Data Input Audit and Bias Audit reports with markup in category names and cell ids.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import polars as pl
import pytest
import yaml

from ml.bias import GroupDefinition, arrest_share_by_category, assign_groups, disparity_gate, group_metrics
from ml.reports.bias_audit import BiasAuditInputs, render_bias_audit_report
from ml.reports.cell_values import cell_flag_summary
from ml.simulation import lum_isaac_check, simulate_city, simulate_feedback
from orchestration.assets.raw import raw_crime_incidents
from orchestration.assets.raw_requests import raw_service_requests
from orchestration.audit_report import AuditFindings, render_report
from orchestration.jurisdiction import ConfigError, load_jurisdiction
from orchestration.resources import RiskcastResource
from orchestration.socrata import SocrataError
from orchestration.sources.crimes import SocrataCrimeSource
from orchestration.sources.service_requests import SocrataServiceRequestSource
from tests.extracts import write_run_file, write_test_jurisdiction
from tests.request_extracts import (
    SANITATION_API_COLUMNS,
    SANITATION_DATASET,
    SANITATION_ID,
    SANITATION_ROWS,
    api_dataset,
    write_request_jurisdiction,
)
from tests.requests_server import Fault, PortalHandler, PortalServer, PortalState
from tests.unit.report_grid import MARKUP_ID, demographics, forecasts, grid_cells

TOKEN = "tok-SECRET-7f3a"
TOKEN_ENV = "SOCRATA_APP_TOKEN"
CRIMES_ID = "ijzp-q8t2"
SCRIPT_PAYLOAD = "<script>alert(1)</script>"
SCRIPT_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG_PAYLOAD = '"><img src=x onerror=alert(1)>'
IMG_ESCAPED = "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
INJECTION = 'id"; DROP TABLE raw.crime_incidents; --'


def crime_api_row(system_id: str, updated_at: str, incident_id: str, date: str) -> dict[str, object]:
    return {":id": system_id, ":updated_at": updated_at, "id": incident_id, "case_number": f"ZZ{incident_id}",
            "date": date, "iucr": "0486", "primary_type": "BATTERY", "location_description": "APARTMENT",
            "beat": "1234", "district": "012", "community_area": "28", "fbi_code": "08B",
            "updated_on": "2023-07-11T15:41:00.000", "latitude": "41.879", "longitude": "-87.658",
            "arrest": False}


CRIME_ROWS = [
    crime_api_row("row-1", "2024-06-01T10:00:00.000Z", "900101", "2023-07-04T00:15:00.000"),
    crime_api_row("row-2", "2024-06-02T10:00:00.000Z", "900102", "2023-07-04T12:15:00.000"),
]


# A portal that records the app token of every request.

class TokenRecordingServer(PortalServer):
    tokens: list[str | None]


class TokenRecordingHandler(PortalHandler):
    server: TokenRecordingServer

    def do_GET(self) -> None:
        with self.server.state.lock:
            self.server.tokens.append(self.headers.get("X-App-Token"))
        super().do_GET()


@pytest.fixture(scope="module")
def portal() -> Iterator[TokenRecordingServer]:
    server = TokenRecordingServer(("127.0.0.1", 0), TokenRecordingHandler)
    server.state = PortalState(datasets={CRIMES_ID: copy.deepcopy(CRIME_ROWS),
                                         SANITATION_ID: copy.deepcopy(SANITATION_ROWS)})
    server.tokens = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with pytest.MonkeyPatch.context() as patch:
        # Keep requests to the local server off any configured proxy.
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            patch.delenv(name, raising=False)
        patch.setenv("no_proxy", "127.0.0.1")
        patch.setenv(TOKEN_ENV, TOKEN)
        yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def secret_portal(portal: TokenRecordingServer, monkeypatch: pytest.MonkeyPatch) -> TokenRecordingServer:
    """The module's portal with no queued fault, no recorded token and the token in the environment."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with portal.state.lock:
        portal.state.faults.clear()
        portal.tokens.clear()
    return portal


def write_run(folder: Path) -> Path:
    """Write a run file whose jurisdiction has the crimes API and one 311 dataset with an API."""
    dataset = api_dataset(SANITATION_DATASET, SANITATION_ID, SANITATION_API_COLUMNS, "http://127.0.0.1:9")
    jurisdiction = write_request_jurisdiction(folder, [dataset])
    return write_run_file(folder, jurisdiction, folder, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"),
                          source="socrata")


def run_assets(folder: Path, portal: PortalServer) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [raw_crime_incidents, raw_service_requests],
        resources={"riskcast": RiskcastResource(run_config_path=str(write_run(folder)), home=str(folder / "home")),
                   "crime_source": SocrataCrimeSource(base_url_override=portal.base_url),
                   "requests_source": SocrataServiceRequestSource(base_url_override=portal.base_url,
                                                                  max_retries=0, backoff_seconds=0.0)},
        instance=instance,
        raise_on_error=False,
    )
    return result, instance


def event_log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every event of the run as text: messages, metadata, errors and their causes."""
    return "\n".join(repr(entry) for entry in instance.all_logs(run_id))


def stored_text(home: Path) -> str:
    """Every value stored under ``home``: Parquet and DuckDB contents decoded, other files as text.

    Parquet and DuckDB compress their strings, so a byte search of those files could miss a token.
    """
    parts = []
    for path in sorted(home.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            parts.append(pl.read_parquet(path).write_csv())
        elif path.suffix == ".duckdb":
            parts.append(duckdb_text(path))
        elif path.suffix != ".wal":
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def duckdb_text(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = connection.sql("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        return "\n".join(connection.sql(f'SELECT * FROM "{schema}"."{table}"').pl().write_csv()
                         for schema, table in tables)


def test_token_sent_in_header(secret_portal: TokenRecordingServer, tmp_path: Path) -> None:
    result, _ = run_assets(tmp_path, secret_portal)

    assert result.success
    # Crimes: one page and the count. 311: three pages of at most 2 rows and the count.
    assert len(secret_portal.tokens) == 6
    assert set(secret_portal.tokens) == {TOKEN}
    assert not any(TOKEN in path for path in secret_portal.state.paths)


def test_token_absent_from_outputs(secret_portal: TokenRecordingServer, tmp_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    result, instance = run_assets(tmp_path, secret_portal)

    assert result.success
    events = event_log_text(instance, result.run_id)
    stored = stored_text(tmp_path / "home")
    # The searches cover real output: the pulled ids, the watermark row and the pull's log lines.
    assert "900102" in stored
    assert "23-00000005" in stored
    assert f"socrata:{CRIMES_ID}" in stored
    assert "rows_pulled" in events
    assert "pulled 2 crime rows" in caplog.text
    assert TOKEN not in events
    assert TOKEN not in stored
    assert TOKEN not in caplog.text


def test_rejected_token_not_echoed(secret_portal: TokenRecordingServer, tmp_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    """A 403 whose body repeats the token fails the run with a message that names the fix, not the token."""
    caplog.set_level(logging.DEBUG)
    body = json.dumps({"code": "permission_denied", "error": True,
                       "message": f"Invalid app_token specified: {TOKEN}"}).encode("utf-8")
    with secret_portal.state.lock:
        secret_portal.state.faults.append(Fault(status=403, body=body, headers={"Content-Type": "application/json"}))

    result, instance = run_assets(tmp_path, secret_portal)

    assert not result.success
    failures = [event for event in result.all_events if event.is_step_failure]
    messages = "\n".join(str(event.step_failure_data.error) for event in failures)
    assert "HTTP 403" in messages
    assert "Check the app token" in messages
    assert "Invalid app_token specified: [app token]" in messages
    assert TOKEN not in messages
    assert TOKEN not in event_log_text(instance, result.run_id)
    assert TOKEN not in caplog.text


def test_rejected_token_direct_pull(secret_portal: TokenRecordingServer, tmp_path: Path) -> None:
    body = json.dumps({"error": True, "message": f"token {TOKEN} is not valid"}).encode("utf-8")
    with secret_portal.state.lock:
        secret_portal.state.faults.append(Fault(status=403, body=body))
    jurisdiction = load_jurisdiction(str(write_test_jurisdiction(tmp_path, "2023-01-01")))

    with pytest.raises(SocrataError) as caught:
        SocrataCrimeSource(base_url_override=secret_portal.base_url).pull_crimes(jurisdiction, None)

    assert "rejected with HTTP 403" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert secret_portal.tokens == [TOKEN]


# Configured names that reach SQL.

def write_jurisdiction(folder: Path, change: dict) -> Path:
    """Write the test jurisdiction with ``change`` applied: a path of keys (list indexes as ints) -> value."""
    dataset = api_dataset(SANITATION_DATASET, SANITATION_ID, SANITATION_API_COLUMNS, "http://127.0.0.1:9")
    path = write_request_jurisdiction(folder, [dataset])
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    for keys, value in change.items():
        node = content
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def load_error(folder: Path, change: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        load_jurisdiction(str(write_jurisdiction(folder, change)))
    return str(caught.value)


def first_code(folder: Path) -> str:
    content = yaml.safe_load(write_jurisdiction(folder, {}).read_text(encoding="utf-8"))
    return next(iter(content["offense_codes"]))


@pytest.mark.parametrize("keys", [
    ("crimes", "columns", "id"),
    ("crimes", "api", "columns", "id"),
    ("service_requests", 0, "columns", "id"),
    ("service_requests", 0, "api", "columns", "id"),
    ("weather", "layouts", "lcd_v1", "columns", "station"),
], ids=["crimes", "crimes_api", "requests", "requests_api", "weather"])
def test_injected_column_rejected(tmp_path: Path, keys: tuple) -> None:
    message = load_error(tmp_path, {keys: INJECTION})

    assert ".".join(str(key) for key in keys) in message
    assert "DROP TABLE" in message
    assert "letters, digits, underscores and spaces" in message


@pytest.mark.parametrize("name", ["Primary\nType", "Primary Type\n", "Primary'Type", "Primary\\Type",
                                  "Primary;Type", "1st Column", ""])
def test_unsafe_column_rejected(tmp_path: Path, name: str) -> None:
    message = load_error(tmp_path, {("crimes", "columns", "primary_type"): name})

    assert "crimes.columns.primary_type" in message


def test_spaced_columns_still_load(tmp_path: Path) -> None:
    jurisdiction = load_jurisdiction(str(write_jurisdiction(tmp_path, {
        ("crimes", "columns", "primary_type"): "Primary Type", ("crimes", "columns", "beat"): "_Beat 2"})))

    assert jurisdiction.crimes.columns["primary_type"] == "Primary Type"
    assert jurisdiction.crimes.columns["beat"] == "_Beat 2"


@pytest.mark.parametrize("keys", [
    ("crimes", "timestamp_format"),
    ("crimes", "api", "timestamp_format"),
    ("service_requests", 0, "timestamp_format"),
    ("weather", "layouts", "lcd_v1", "timestamp_format"),
], ids=["crimes", "crimes_api", "requests", "weather"])
def test_quoted_timestamp_format_rejected(tmp_path: Path, keys: tuple) -> None:
    message = load_error(tmp_path, {keys: "%Y-%m-%d'); DROP TABLE raw.crime_incidents; --"})

    assert ".".join(str(key) for key in keys) in message
    assert "quotes, semicolons" in message


def test_quoted_station_id_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, {("weather", "stations", 0, "id"): "OHARE'; --"})

    assert "weather.stations.0.id" in message
    assert "\"'\"" in message


def test_quoted_category_rejected(tmp_path: Path) -> None:
    code = first_code(tmp_path)
    message = load_error(tmp_path, {("offense_codes", code, "category"): "violent'--"})

    assert f"offense_codes.{code}.category" in message
    assert "String should match pattern" in message


def test_quoted_group_rejected(tmp_path: Path) -> None:
    code = first_code(tmp_path)
    message = load_error(tmp_path, {("offense_codes", code, "groups"): ["robbery' OR '1'='1"]})

    assert "group names must be lower-case identifiers" in message


def test_quoted_target_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, {("targets",): ["violent", "robbery'; --"]})

    assert "targets" in message
    assert "neither a category nor a group" in message


def test_quoted_request_type_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, {("service_requests", 0, "request_type"): "sanitation'; --"})

    assert "is not a valid request type label" in message


# Data values in report HTML.

def audit_findings() -> AuditFindings:
    """Findings with one markup category and one markup cell, and no rule results."""
    calendar = pd.DataFrame({"local_hour": [1, 2], "local_dow": [1, 2], "month_of_year": [1, 2], "year": [2023, 2023],
                             "records": [5, 3], "audit_category": [SCRIPT_PAYLOAD, "BATTERY"]})
    categories = pd.DataFrame({"category": [SCRIPT_PAYLOAD, "BATTERY"], "records": [5, 3]})
    cells = pd.DataFrame({"cell_id": [IMG_PAYLOAD, "c1"], "svg_path": ["M 0 0 L 1 0 L 1 1 Z", "M 1 0 L 2 0 L 2 1 Z"],
                          "min_lon": [-87.7, -87.69], "max_lon": [-87.69, -87.68], "min_lat": [41.8, 41.8],
                          "max_lat": [41.81, 41.81], "records_per_km2": [10.0, 20.0],
                          "area_unlocated_share": [0.1, 0.2]})
    return AuditFindings(jurisdiction="testcity", synthetic=True, results=[],
                         skipped={"category_breaks": f"category {SCRIPT_PAYLOAD} has too few records"},
                         calendar=calendar, years=pd.DataFrame({"year": [2023], "records": [8]}),
                         categories=categories, cells=cells)


def test_audit_report_escapes_values() -> None:
    page = render_report(audit_findings())

    assert SCRIPT_PAYLOAD not in page
    assert "<img" not in page
    assert f"<td>{SCRIPT_ESCAPED}</td>" in page
    assert f"<h4>{SCRIPT_ESCAPED}</h4>" in page
    assert f"<title>{IMG_ESCAPED}: 10</title>" in page


def bias_page() -> str:
    """Render the Bias Audit report with a markup crime type and a markup cell id."""
    def renamed(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col("cell_id").replace(MARKUP_ID, IMG_PAYLOAD))

    definitions = (GroupDefinition("east", "share_x", (5,), description=f"east {SCRIPT_PAYLOAD}"),)
    frame = renamed(forecasts(days=1))
    groups = assign_groups(renamed(demographics()), definitions)
    metrics = group_metrics(frame, groups, definitions, coverage=0.25, n_boot=5)
    incidents = pl.DataFrame({"cell_id": ["c30", IMG_PAYLOAD], "primary_type": [SCRIPT_PAYLOAD, "THEFT"],
                              "arrest": [True, False]})
    cells = renamed(grid_cells()).select("cell_id", "geojson").join(
        cell_flag_summary(frame, ["ensemble", "compstat"], 0.25), on="cell_id")
    inputs = BiasAuditInputs(
        title="Grid", synthetic=True, period_description="1 day from 2024-03-04", cell_hours=frame.height,
        coverage=0.25, bootstrap_resamples=5, definitions=definitions, groups=groups, group_metrics=metrics,
        gate=disparity_gate(metrics, margin=0.1), cells=cells, arrest_audit=arrest_share_by_category(incidents, groups),
        feedback=simulate_feedback(simulate_city(6, 40, seed=3), seed=4, history_days=10, window_days=None),
        lum_isaac=lum_isaac_check(5, n_cells=8, n_days=28))
    return render_bias_audit_report(inputs)


def test_bias_report_escapes_values() -> None:
    page = bias_page()

    assert SCRIPT_PAYLOAD not in page
    assert IMG_PAYLOAD not in page
    assert "<img src=x" not in page
    assert SCRIPT_ESCAPED in page
    assert f"east {SCRIPT_ESCAPED}" in page
    # Map data sits inside <script>: folium's JSON writes < and > as \u003c and \u003e there.
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in page
