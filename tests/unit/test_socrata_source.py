"""Incremental Socrata crime source: real Dagster runs of the warehouse job against a local portal.

A ``ThreadingHTTPServer`` on 127.0.0.1 serves a small subset of SODA 2.1 for one dataset: the
``:updated_at >= '...'`` filter, ``$order``, ``$limit``, ``$offset`` and ``$select=count(*)``,
with the system fields ``:id`` and ``:updated_at``. The test jurisdiction points its
``crimes.api.base_url`` at that server, so no test contacts a real portal.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.assets.raw import lookback_start
from orchestration.dbt import duckdb_timestamp_format
from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.ingest import ExtractError
from orchestration.jurisdiction import ConfigError, load_jurisdiction, load_run_config
from orchestration.sources.crimes import SocrataCrimeSource
from orchestration.warehouse import connect
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

DATASET_ID = "ijzp-q8t2"
WHERE_PATTERN = re.compile(r"^\s*:updated_at\s*>=\s*'([^']*)'\s*$")
WEATHER = ["WBAN:94846,OHARE,201.8,41.995,-87.9336,2023-07-04 01:51,FM-15,70,80,5,0.00,"]


def api_row(system_id: str, updated_at: str, incident_id: str, date: str, fbi_code: str,
            updated_on: str, latitude: str, longitude: str) -> dict[str, str | bool]:
    return {":id": system_id, ":updated_at": updated_at, "id": incident_id,
            "case_number": f"ZZ{incident_id}", "date": date, "iucr": "0486", "primary_type": "BATTERY",
            "location_description": "APARTMENT", "beat": "1234", "district": "012",
            "community_area": "28", "fbi_code": fbi_code, "updated_on": updated_on,
            "latitude": latitude, "longitude": longitude,
            # Socrata serves the flag as a JSON boolean, and the CSV export writes it as false.
            "arrest": False,
            # A free-text field that the column mapping must leave out.
            "block": "012XX W EXAMPLE ST"}


# 900101 was last updated more than 30 days before the others, so later pulls leave it out.
FIRST_ROWS = [
    api_row("row-1", "2024-04-01T00:00:00.000Z", "900101", "2023-07-04T00:15:00.000", "08B",
            "2023-07-11T15:41:00.000", "41.879", "-87.658"),
    api_row("row-2", "2024-06-01T10:00:00.000Z", "900102", "2023-07-04T12:15:00.000", "06",
            "2023-07-11T15:41:00.000", "41.879", "-87.658"),
    api_row("row-3", "2024-06-02T10:00:00.000Z", "900103", "2023-11-05T01:30:00.000", "03",
            "2023-11-12T09:00:00.000", "41.88", "-87.62"),
    api_row("row-4", "2024-06-03T12:00:00.000Z", "900104", "2024-03-10T02:30:00.000", "04B",
            "2024-03-17T09:00:00.000", "41.88", "-87.62"),
]
FIRST_WATERMARK = "2024-06-03T12:00:00.000Z"
REVISED_UPDATED_AT = "2024-06-10T08:00:00.000Z"
NEW_UPDATED_AT = "2024-06-10T09:00:00.000Z"


@dataclass
class PortalState:
    """Rows of the local portal and the query strings it received."""

    rows: list[dict[str, str]]
    queries: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data_queries(self) -> list[dict[str, str]]:
        return [query for query in self.queries if query.get("$select") != "count(*)"]


class PortalServer(ThreadingHTTPServer):
    daemon_threads = True
    state: PortalState


class PortalHandler(BaseHTTPRequestHandler):
    server: PortalServer

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = {name: values[-1] for name, values in urllib.parse.parse_qs(parts.query).items()}
        state = self.server.state
        with state.lock:
            state.queries.append(query)
            rows = copy.deepcopy(state.rows)

        if parts.path != f"/resource/{DATASET_ID}.json":
            self.send_json(404, {"error": True, "message": "dataset not found"})
            return
        where = query.get("$where")
        if where is not None:
            match = WHERE_PATTERN.match(where)
            if not match:
                self.send_json(400, {"error": True, "message": f"cannot parse $where {where!r}"})
                return
            rows = [row for row in rows if row[":updated_at"] >= match.group(1)]

        if query.get("$select") == "count(*)":
            self.send_json(200, [{"count": str(len(rows))}])
            return
        keys = [key.strip() for key in query.get("$order", "").split(",") if key.strip()]
        rows.sort(key=lambda row: tuple(row.get(key, "") for key in keys))
        offset = int(query.get("$offset", "0"))
        self.send_json(200, rows[offset:offset + int(query.get("$limit", "1000"))])

    def send_json(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def portal() -> Iterator[PortalServer]:
    server = PortalServer(("127.0.0.1", 0), PortalHandler)
    server.state = PortalState(rows=copy.deepcopy(FIRST_ROWS))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with pytest.MonkeyPatch.context() as patch:
        # Keep requests to the local server off any configured proxy.
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "SOCRATA_APP_TOKEN"):
            patch.delenv(name, raising=False)
        patch.setenv("no_proxy", "127.0.0.1")
        yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def portal_url(server: PortalServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def write_api_jurisdiction(folder: Path, base_url: str | None) -> Path:
    """Write the test jurisdiction with its crimes.api block aimed at ``base_url``, or without one."""
    path = write_test_jurisdiction(folder, "2023-01-01")
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    if base_url is None:
        del content["crimes"]["api"]
    else:
        content["crimes"]["api"]["base_url"] = base_url
        content["crimes"]["api"]["page_size"] = 2
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(sql).fetchall()


def raw_rows(warehouse: Path) -> list[dict[str, object]]:
    """Return every stored raw crime row as a mapping of column to value, sorted by all columns."""
    with connect(warehouse, read_only=True) as connection:
        relation = connection.sql("SELECT * FROM raw.crime_incidents ORDER BY ALL")
        names = relation.columns
        return [dict(zip(names, row)) for row in relation.fetchall()]


def pull_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    materializations = result.asset_materializations_for_node("raw_crime_incidents")
    return {name: value.value for name, value in materializations[0].metadata.items()}


@dataclass
class RunRecord:
    """What the warehouse held and the portal received after one run of the job."""

    result: dg.ExecuteInProcessResult
    raw: list[dict[str, object]]
    staged: dict[str, tuple]
    located: dict[str, str]
    watermark: list[tuple]
    data_queries: list[dict[str, str]]
    staged_rows: list[tuple]


@pytest.fixture(scope="module")
def runs(portal: PortalServer, tmp_path_factory: pytest.TempPathFactory) -> list[RunRecord]:
    """Run the warehouse job three times: first pull, after a revision and an addition, unchanged."""
    folder = tmp_path_factory.mktemp("socrata")
    extracts = write_extracts(folder / "extracts", [], WEATHER)
    jurisdiction = write_api_jurisdiction(folder, portal_url(portal))
    run_file = write_run_file(folder, jurisdiction, extracts, ("2023-01-01", "2023-06-01"),
                              ("2023-06-01", "2023-06-02"), source="socrata")
    warehouse = folder / "home" / "testcity" / "warehouse.duckdb"

    records = []
    for number in range(3):
        if number == 1:
            revise_and_add(portal.state)
        portal.state.queries.clear()
        definitions = build_definitions(run_file, folder / "home")
        result = definitions.resolve_job_def(WAREHOUSE_JOB).execute_in_process(
            instance=dg.DagsterInstance.ephemeral())
        assert result.success
        staged = {row[0]: row[1:] for row in query(
            warehouse, "SELECT incident_id, occurred_at_utc, ts_ambiguous, ts_nonexistent, offense_code "
                       "FROM staging.stg_crimes__incidents")}
        located = dict(query(warehouse, "SELECT incident_id, cell_id FROM intermediate.int_incidents__located "
                                        "WHERE quarantine_reason IS NULL"))
        records.append(RunRecord(result=result, raw=raw_rows(warehouse), staged=staged, located=located,
                                 watermark=query(warehouse, "SELECT source, watermark, pulled_rows "
                                                            "FROM raw.ingest_state"),
                                 data_queries=list(portal.state.data_queries),
                                 staged_rows=staged_without_provenance(warehouse)))
    return records


def staged_without_provenance(warehouse: Path) -> list[tuple]:
    """Return every staged incident with all columns but the source file and row, sorted by id."""
    return query(warehouse, "SELECT * EXCLUDE (source_file, source_row) FROM staging.stg_crimes__incidents "
                            "ORDER BY incident_id")


def csv_row(row: dict[str, str]) -> str:
    """Write an API row as the portal's CSV export writes the same record."""
    def portal_time(value: str) -> str:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f").strftime("%m/%d/%Y %I:%M:%S %p")

    return crime_row(row["id"], row["case_number"], portal_time(row["date"]), row["fbi_code"],
                     portal_time(row["updated_on"]), row["latitude"], row["longitude"])


def test_csv_export_and_api_stage_identical_rows(runs: list[RunRecord], tmp_path: Path) -> None:
    """The same records from the CSV export and from the API give the same staged rows."""
    extracts = write_extracts(tmp_path / "extracts", [csv_row(row) for row in FIRST_ROWS], WEATHER)
    run_file = write_run_file(tmp_path, write_test_jurisdiction(tmp_path, "2023-01-01"), extracts,
                              ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))
    result = build_definitions(run_file, tmp_path / "home").resolve_job_def(WAREHOUSE_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral())

    assert result.success
    from_csv = staged_without_provenance(tmp_path / "home" / "testcity" / "warehouse.duckdb")
    assert len(from_csv) == len(FIRST_ROWS)
    assert from_csv == runs[0].staged_rows


def revise_and_add(state: PortalState) -> None:
    """Revise 900102 with a new FBI code and add 900105, as a portal refresh would."""
    with state.lock:
        revised = next(row for row in state.rows if row["id"] == "900102")
        revised[":updated_at"] = REVISED_UPDATED_AT
        revised["fbi_code"] = "04A"
        revised["updated_on"] = "2024-06-10T03:00:00.000"
        state.rows.append(api_row("row-5", NEW_UPDATED_AT, "900105", "2024-06-09T22:00:00.000", "06",
                                  "2024-06-10T04:00:00.000", "41.86", "-87.68"))


def test_first_run_pulls_everything(runs: list[RunRecord]) -> None:
    first = runs[0]

    assert all("$where" not in query for query in first.data_queries)
    assert len(first.raw) == 4
    assert first.watermark == [(f"socrata:{DATASET_ID}", FIRST_WATERMARK, 4)]


def test_first_run_metadata(runs: list[RunRecord]) -> None:
    metadata = pull_metadata(runs[0].result)

    assert metadata["rows_pulled"] == 4
    assert metadata["rows_new"] == 4
    assert metadata["rows_replaced"] == 0
    assert metadata["watermark_before"] == "none"
    assert metadata["watermark_after"] == FIRST_WATERMARK
    # Two pages of two rows, an empty third page and the count.
    assert metadata["requests"] == 4


def test_raw_rows_have_provenance(runs: list[RunRecord]) -> None:
    provenance = {row["id"]: (row["source_file"], row["source_row"]) for row in runs[0].raw}

    assert provenance["900101"] == ("socrata:ijzp-q8t2", 1)
    assert provenance["900104"] == ("socrata:ijzp-q8t2", 4)


def test_api_boolean_arrest_stored_as_text(runs: list[RunRecord]) -> None:
    assert {row["arrest"] for row in runs[0].raw} == {"false"}


def test_api_times_convert_to_utc(runs: list[RunRecord]) -> None:
    staged = runs[0].staged

    assert staged["900101"][0] == datetime(2023, 7, 4, 5, 15)
    assert staged["900102"][0] == datetime(2023, 7, 4, 17, 15)


def test_api_ambiguous_time_takes_first_occurrence(runs: list[RunRecord]) -> None:
    assert runs[0].staged["900103"][:3] == (datetime(2023, 11, 5, 6, 30), True, False)


def test_api_nonexistent_time_moves_forward(runs: list[RunRecord]) -> None:
    assert runs[0].staged["900104"][:3] == (datetime(2024, 3, 10, 8, 30), False, True)


def test_api_points_land_in_their_tract(runs: list[RunRecord]) -> None:
    located = runs[1].located

    assert located["900101"] == "WEST"
    assert located["900103"] == "EAST"
    assert located["900105"] == "WEST"


def test_second_run_merges_by_id(runs: list[RunRecord]) -> None:
    ids = [row["id"] for row in runs[1].raw]

    assert sorted(ids) == ["900101", "900102", "900103", "900104", "900105"]
    assert len(ids) == len(set(ids))


def test_revised_row_has_new_values(runs: list[RunRecord]) -> None:
    revised = next(row for row in runs[1].raw if row["id"] == "900102")

    assert revised["offense_code"] == "04A"
    assert revised["updated_on"] == "2024-06-10T03:00:00.000"
    assert runs[1].staged["900102"][3] == "04A"


def test_second_run_keeps_rows_outside_lookback(runs: list[RunRecord]) -> None:
    first = next(row for row in runs[0].raw if row["id"] == "900101")
    second = next(row for row in runs[1].raw if row["id"] == "900101")

    assert second == first


def test_second_run_requests_watermark_less_lookback(runs: list[RunRecord]) -> None:
    wheres = {query.get("$where") for query in runs[1].data_queries}

    assert wheres == {":updated_at >= '2024-05-04T12:00:00.000Z'"}


def test_second_run_advances_watermark(runs: list[RunRecord]) -> None:
    metadata = pull_metadata(runs[1].result)

    assert runs[1].watermark == [(f"socrata:{DATASET_ID}", NEW_UPDATED_AT, 4)]
    assert metadata["watermark_before"] == FIRST_WATERMARK
    assert metadata["watermark_after"] == NEW_UPDATED_AT
    assert metadata["rows_pulled"] == 4
    assert metadata["rows_new"] == 1
    assert metadata["rows_replaced"] == 1
    assert metadata["rows_unchanged"] == 2


def test_unchanged_rerun_is_idempotent(runs: list[RunRecord]) -> None:
    metadata = pull_metadata(runs[2].result)

    assert runs[2].raw == runs[1].raw
    assert runs[2].watermark == [(f"socrata:{DATASET_ID}", NEW_UPDATED_AT, 4)]
    assert {query.get("$where") for query in runs[2].data_queries} == {
        ":updated_at >= '2024-05-11T09:00:00.000Z'"}
    assert metadata["rows_new"] == 0
    assert metadata["rows_replaced"] == 0
    assert metadata["rows_unchanged"] == 4


def test_socrata_without_api_block_fails(tmp_path: Path) -> None:
    extracts = write_extracts(tmp_path / "extracts", [], WEATHER)
    jurisdiction = write_api_jurisdiction(tmp_path, None)
    run_file = write_run_file(tmp_path, jurisdiction, extracts, ("2023-01-01", "2023-06-01"),
                              ("2023-06-01", "2023-06-02"), source="socrata")

    with pytest.raises(ConfigError) as caught:
        build_definitions(run_file, tmp_path / "home")

    assert "'testcity'" in str(caught.value)
    assert "crimes.api" in str(caught.value)


def test_socrata_requires_extracts_folder(tmp_path: Path) -> None:
    run_file = write_run_file(tmp_path, "chicago", None, ("2023-01-01", "2023-06-01"),
                              ("2023-06-01", "2023-06-02"), source="socrata")

    with pytest.raises(ConfigError) as caught:
        load_run_config(run_file)

    assert "extracts_folder" in str(caught.value)


def test_unparseable_api_date_fails_at_ingest(portal: PortalServer, tmp_path: Path) -> None:
    bad = api_row("row-9", "2024-06-01T10:00:00.000Z", "900109", "07/04/2023 12:15:00 AM", "06",
                  "2023-07-11T15:41:00.000", "41.879", "-87.658")
    jurisdiction = load_jurisdiction(str(write_api_jurisdiction(tmp_path, portal_url(portal))))
    source = SocrataCrimeSource()
    saved = portal.state
    portal.state = PortalState(rows=[bad])
    try:
        with pytest.raises(ExtractError) as caught:
            source.pull_crimes(jurisdiction, None)
    finally:
        portal.state = saved

    assert "07/04/2023 12:15:00 AM" in str(caught.value)
    assert "'date'" in str(caught.value)


def test_base_url_override_wins(portal: PortalServer, tmp_path: Path) -> None:
    jurisdiction = load_jurisdiction(str(write_api_jurisdiction(tmp_path, "http://127.0.0.1:9")))
    source = SocrataCrimeSource(base_url_override=portal_url(portal))

    assert source.dataset(jurisdiction).base_url == portal_url(portal)


def test_lookback_start_spelling() -> None:
    assert lookback_start(None, 30) is None
    assert lookback_start("2024-06-03T12:00:00.000Z", 30) == "2024-05-04T12:00:00.000Z"
    assert lookback_start("2024-06-03T12:00:00.250", 0) == "2024-06-03T12:00:00.250Z"


def test_chrono_format_translates_to_duckdb() -> None:
    assert duckdb_timestamp_format("%Y-%m-%dT%H:%M:%S%.f") == "%Y-%m-%dT%H:%M:%S.%f"
    assert duckdb_timestamp_format("%m/%d/%Y %I:%M:%S %p") == "%m/%d/%Y %I:%M:%S %p"
