"""Incremental, idempotent 311 ingest: real Dagster materializations of raw_service_requests.

The live source pulls from a local Socrata portal on 127.0.0.1 three times: a first full pull, an
unchanged rerun, and a rerun after the portal corrected, added and re-typed records. A real dbt
build of the staging model then shows that the corrected record wins downstream.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from orchestration.assets.raw_requests import raw_service_requests
from orchestration.dbt import DBT_PROJECT_DIR, dbt_environment, dbt_executable, dbt_vars
from orchestration.jurisdiction import load_jurisdiction
from orchestration.resources import RiskcastResource
from orchestration.settings import RiskcastSettings
from orchestration.sources.service_requests import (
    RAW_REQUEST_COLUMNS,
    LocalServiceRequestSource,
    ServiceRequestSource,
    SocrataServiceRequestSource,
)
from orchestration.warehouse import connect
from tests.extracts import write_run_file
from tests.request_extracts import (
    MIXED_API_COLUMNS,
    MIXED_DATASET,
    MIXED_ID,
    MIXED_ROWS,
    SANITATION_API_COLUMNS,
    SANITATION_DATASET,
    SANITATION_ID,
    SANITATION_ROWS,
    api_dataset,
    sanitation_api_row,
    write_request_jurisdiction,
)
from tests.requests_server import PortalServer, running_portal

SANITATION_SOURCE = f"socrata:{SANITATION_ID}"
MIXED_SOURCE = f"socrata:{MIXED_ID}"


@dataclass
class IngestRecord:
    """What the warehouse held and the portal received after one materialization."""

    metadata: dict[str, object]
    raw: list[tuple]
    state: list[tuple]
    wheres: dict[str, set[str | None]]


def materialize(run_file: Path, home: Path, source: ServiceRequestSource) -> dict[str, object]:
    result = dg.materialize(
        [raw_service_requests],
        resources={"riskcast": RiskcastResource(run_config_path=str(run_file), home=str(home)),
                   "requests_source": source},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    materialization = result.asset_materializations_for_node("raw_service_requests")[0]
    return {name: value.value for name, value in materialization.metadata.items()}


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(sql).fetchall()


def correct_portal(portal: PortalServer) -> None:
    """Correct one sanitation request, add one, and re-type one mixed request, as a portal refresh would."""
    with portal.state.lock:
        rows = portal.state.datasets[SANITATION_ID]
        corrected = next(row for row in rows if row["service_request_number"] == "23-00000002")
        corrected[":updated_at"] = "2024-06-10T08:00:00.000Z"
        corrected["status"] = "Completed"
        rows.append(sanitation_api_row("row-7", "2024-06-10T09:00:00.000Z", "23-00000007",
                                       "2023-07-08T00:00:00.000", "Open"))
        retyped = portal.state.datasets[MIXED_ID][0]
        retyped[":updated_at"] = "2024-06-10T07:00:00.000Z"
        retyped["sr_type"] = "Graffiti Removal Request"


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, list[IngestRecord]]]:
    folder = tmp_path_factory.mktemp("requests_ingest")
    datasets = [api_dataset(SANITATION_DATASET, SANITATION_ID, SANITATION_API_COLUMNS, "http://127.0.0.1:9"),
                api_dataset(MIXED_DATASET, MIXED_ID, MIXED_API_COLUMNS, "http://127.0.0.1:9")]
    jurisdiction = write_request_jurisdiction(folder, datasets)
    run_file = write_run_file(folder, jurisdiction, folder, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))
    home = folder / "home"
    warehouse = home / "testcity" / "warehouse.duckdb"

    with pytest.MonkeyPatch.context() as patch:
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "SOCRATA_APP_TOKEN"):
            patch.delenv(name, raising=False)
        patch.setenv("no_proxy", "127.0.0.1")
        with running_portal({SANITATION_ID: SANITATION_ROWS, MIXED_ID: MIXED_ROWS}) as portal:
            source = SocrataServiceRequestSource(base_url_override=portal.base_url, backoff_seconds=0.0)
            records = []
            for number in range(3):
                if number == 2:
                    correct_portal(portal)
                portal.state.queries.clear()
                portal.state.paths.clear()
                metadata = materialize(run_file, home, source)
                wheres = {dataset_id: {query.get("$where") for query, path in
                                       zip(portal.state.queries, portal.state.paths) if dataset_id in path}
                          for dataset_id in (SANITATION_ID, MIXED_ID)}
                records.append(IngestRecord(
                    metadata=metadata,
                    raw=query(warehouse, "SELECT * EXCLUDE (source_row) FROM raw.service_requests ORDER BY ALL"),
                    state=query(warehouse, "SELECT source, watermark, pulled_rows FROM raw.ingest_state ORDER BY 1"),
                    wheres=wheres,
                ))
    yield run_file, warehouse, records


def test_first_pull_stores_every_row(ingest: tuple[Path, Path, list[IngestRecord]]) -> None:
    first = ingest[2][0]

    assert len(first.raw) == 7
    assert first.metadata["rows_new"] == 7
    assert first.metadata["rows_replaced"] == 0
    assert first.wheres == {SANITATION_ID: {None}, MIXED_ID: {None}}


def test_watermark_stored_per_dataset(ingest: tuple[Path, Path, list[IngestRecord]]) -> None:
    first = ingest[2][0]

    assert first.state == [(SANITATION_SOURCE, "2024-06-03T12:00:00.000Z", 5),
                           (MIXED_SOURCE, "2024-06-01T11:00:00.000Z", 2)]
    assert first.metadata["watermarks"] == {"sanitation_code": "2024-06-03T12:00:00.000Z",
                                            "other_311": "2024-06-01T11:00:00.000Z"}


def test_unchanged_rerun_is_idempotent(ingest: tuple[Path, Path, list[IngestRecord]]) -> None:
    first, second = ingest[2][0], ingest[2][1]

    assert second.raw == first.raw
    assert second.state == first.state
    assert second.metadata["rows_new"] == 0
    assert second.metadata["rows_replaced"] == 0
    assert second.metadata["rows_unchanged"] == 7


def test_rerun_pulls_since_lookback(ingest: tuple[Path, Path, list[IngestRecord]]) -> None:
    second = ingest[2][1]

    assert second.wheres == {SANITATION_ID: {":updated_at >= '2024-05-04T12:00:00.000Z'"},
                             MIXED_ID: {":updated_at >= '2024-05-02T11:00:00.000Z'"}}


def test_corrected_records_replace_old_ones(ingest: tuple[Path, Path, list[IngestRecord]]) -> None:
    third = ingest[2][2]
    by_id = {row[2]: row for row in third.raw}

    assert len(third.raw) == 8
    assert third.metadata["rows_new"] == 1
    assert third.metadata["rows_replaced"] == 2
    assert third.metadata["rows_unchanged"] == 5
    assert by_id["23-00000002"][RAW_REQUEST_COLUMNS.index("status")] == "Completed"
    assert by_id["SR23-0001"][RAW_REQUEST_COLUMNS.index("request_type")] == "graffiti"
    assert [row[2] for row in third.raw].count("SR23-0001") == 1


def test_corrected_pull_advances_watermarks(ingest: tuple[Path, Path, list[IngestRecord]]) -> None:
    third = ingest[2][2]

    assert third.state == [(SANITATION_SOURCE, "2024-06-10T09:00:00.000Z", 6),
                           (MIXED_SOURCE, "2024-06-10T07:00:00.000Z", 2)]


def test_corrected_record_wins_in_staging(ingest: tuple[Path, Path, list[IngestRecord]], tmp_path: Path) -> None:
    run_file, warehouse, _ = ingest
    jurisdiction = load_jurisdiction(str(run_file.parent / "testcity.yaml"))
    settings = RiskcastSettings(home=warehouse.parents[1], jurisdiction="testcity")

    # dbt runs in its own process, as DbtCliResource runs it, so that its DuckDB handle closes.
    completed = subprocess.run(
        [dbt_executable(), "build", "--select", "stg_311__requests", "--vars", json.dumps(dbt_vars(jurisdiction)),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(tmp_path / "target")],
        env=os.environ | dbt_environment(settings), capture_output=True, text=True, check=False,
    )
    rows = {row[0]: row[1:] for row in query(
        warehouse, "SELECT request_id, request_type, status, created_date, created_at_utc, is_duplicate "
                   "FROM staging.stg_311__requests")}

    assert completed.returncode == 0, completed.stdout
    assert len(rows) == 8
    assert rows["23-00000002"] == ("sanitation_code", "Completed", date(2023, 7, 4), None, False)
    # The portal wrote this date without milliseconds.
    assert rows["23-00000004"][2] == date(2023, 7, 5)
    assert rows["23-00000003"][4] is True
    assert rows["SR23-0001"][0] == "graffiti"
    assert rows["SR23-0002"][4] is True


def test_no_dataset_writes_empty_table(tmp_path: Path) -> None:
    jurisdiction = write_request_jurisdiction(tmp_path, [])
    run_file = write_run_file(tmp_path, jurisdiction, tmp_path, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))
    warehouse = tmp_path / "home" / "testcity" / "warehouse.duckdb"

    metadata = materialize(run_file, tmp_path / "home", LocalServiceRequestSource(folder=str(tmp_path / "absent")))
    columns = query(warehouse, "SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_schema = 'raw' AND table_name = 'service_requests' ORDER BY ordinal_position")

    assert metadata["dagster/row_count"] == 0
    assert query(warehouse, "SELECT count(*) FROM raw.service_requests") == [(0,)]
    assert [name for name, _ in columns] == list(RAW_REQUEST_COLUMNS)
    assert {kind for name, kind in columns if name != "source_row"} == {"VARCHAR"}
    assert dict(columns)["source_row"] == "BIGINT"


def test_parquet_copy_matches_table(ingest: tuple[Path, Path, list[IngestRecord]]) -> None:
    _, warehouse, records = ingest
    with connect(warehouse, read_only=True) as connection:
        parquet = (warehouse.parent / "raw" / "service_requests.parquet").as_posix()
        copied = connection.sql(f"SELECT * EXCLUDE (source_row) FROM read_parquet('{parquet}') ORDER BY ALL").fetchall()

    assert copied == records[2].raw
