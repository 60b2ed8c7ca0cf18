"""311 requests through the warehouse job on a small hand-made extract: real Dagster runs, real dbt.

The extract has a date-only sanitation dataset (CSV) and a mixed-type dataset with times of day
(JSON). Every row is built so that one rule decides its fate, and the tests assert the exact
staged, located, quarantined and daily counts.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import dagster as dg
import pytest

from orchestration.audit_rules import ALL_RULES
from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.warehouse import connect
from tests.extracts import crime_row, write_extracts, write_run_file
from tests.request_extracts import (
    MIXED_DATASET,
    SANITATION_DATASET,
    mixed_row,
    sanitation_row,
    write_mixed_file,
    write_request_jurisdiction,
    write_sanitation_file,
)

WEST = ("41.879", "-87.658")
EAST = ("41.88", "-87.62")
SANITATION = [
    sanitation_row("2023-07-04", "Completed", "2023-07-10", "23-00000001", *WEST),
    sanitation_row("2023-07-04", "Completed", "2023-07-10", "23-00000002", *WEST, nature="Other, see notes"),
    sanitation_row("2023-07-04", "Completed - Dup", "2023-07-10", "23-00000003", *WEST),
    sanitation_row("2023-07-05", "Open", "", "23-00000004", *EAST),
    # A repeated request number: the later row wins, as in the Chicago export.
    sanitation_row("2023-07-06", "Completed - Dup", "2023-07-08", "23-00000005", *EAST),
    sanitation_row("2023-07-06", "Completed", "2023-07-20", "23-00000005", *EAST),
    sanitation_row("2023-07-06", "Completed", "2023-07-10", "23-00000006", "", ""),
    sanitation_row("2023-07-06", "Completed", "2023-07-10", "23-00000007", "0", "0"),
    sanitation_row("2023-07-06", "Completed", "2023-07-10", "23-00000008", "-87.62", "41.88"),
    sanitation_row("2023-07-06", "Completed", "2023-07-10", "23-00000009", "41.70", "-87.62"),
    [""] * 16,
]
MIXED = [
    # 23:30 local on 4 July is 04:30 UTC on 5 July: the daily count uses the local date.
    mixed_row("SR23-0001", "Street Light Out Complaint", "2023-07-04T23:30:00.000",
              "2023-07-05T08:00:00.000", "Open", *WEST),
    # The repeated fall-back hour is read as its first occurrence, in daylight time.
    mixed_row("SR23-0002", "Graffiti Removal Request", "2023-11-05T01:30:00.000",
              "2023-11-06T08:00:00.000", "Completed", *EAST),
    # A revision listed before the version it replaces: the later last_modified_date wins.
    mixed_row("SR23-0003", "Street Light Out Complaint", "2023-07-05T08:00:00.000",
              "2023-07-07T10:00:00.000", "Completed", *EAST),
    mixed_row("SR23-0003", "Street Light Out Complaint", "2023-07-05T08:00:00.000",
              "2023-07-06T10:00:00.000", "Open", *EAST),
    mixed_row("SR23-0004", "Pothole in Street Complaint", "2023-07-05T09:00:00.000",
              "2023-07-06T10:00:00.000", "Open", *WEST),
    mixed_row("SR23-0005", "Street Light Out Complaint", "2023-07-04T10:00:00.000",
              "2023-07-06T10:00:00.000", "Completed", *WEST, duplicate=True),
    mixed_row("SR23-0006", "Graffiti Removal Request", None, "2023-07-06T10:00:00.000", "Open", *WEST),
]
CRIMES = [crime_row("900101", "ZZ100001", "07/04/2023 12:15:00 AM", "08B", "07/11/2023 03:41:00 PM",
                    *WEST)]
WEATHER = ["WBAN:94846,OHARE,201.8,41.995,-87.9336,2023-07-04 01:51,FM-15,70,80,5,0.00,"]


def write_request_extracts(folder: Path) -> Path:
    extracts = write_extracts(folder / "extracts", CRIMES, WEATHER)
    write_sanitation_file(extracts / "311" / "sanitation_code_complaints_2023.csv", SANITATION)
    write_mixed_file(extracts / "311" / "service_requests_2023.json", MIXED)
    return extracts


def run_warehouse_job(run_file: Path, home: Path) -> dg.ExecuteInProcessResult:
    definitions = build_definitions(run_file, home)
    result = definitions.resolve_job_def(WAREHOUSE_JOB).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return result


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(sql).fetchall()


def table_rows(warehouse: Path, table: str) -> list[tuple]:
    return query(warehouse, f"SELECT * FROM {table} ORDER BY ALL")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Run the warehouse job twice on the same extracts and keep what each run stored."""
    folder = tmp_path_factory.mktemp("requests_warehouse")
    extracts = write_request_extracts(folder)
    jurisdiction = write_request_jurisdiction(folder, [SANITATION_DATASET, MIXED_DATASET])
    run_file = write_run_file(folder, jurisdiction, extracts, ("2023-01-01", "2023-06-01"),
                              ("2023-06-01", "2023-06-02"))
    warehouse = folder / "home" / "testcity" / "warehouse.duckdb"

    first = run_warehouse_job(run_file, folder / "home")
    snapshot = {table: table_rows(warehouse, table) for table in
                ("raw.service_requests", "staging.stg_311__requests", "marts.fct_cell_day_requests")}
    second = run_warehouse_job(run_file, folder / "home")
    return {"warehouse": warehouse, "first": first, "second": second, "snapshot": snapshot}


@pytest.fixture(scope="module")
def warehouse(runs: dict[str, object]) -> Path:
    return runs["warehouse"]


def raw_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    materializations = result.asset_materializations_for_node("raw_service_requests")
    return {name: value.value for name, value in materializations[0].metadata.items()}


def test_raw_keeps_every_row(warehouse: Path) -> None:
    counts = dict(query(warehouse, "SELECT dataset, count(*) FROM raw.service_requests GROUP BY dataset"))

    assert counts == {"sanitation_code": 10, "other_311": 7}


def test_raw_drops_free_text(warehouse: Path) -> None:
    columns = [row[0] for row in query(warehouse, "DESCRIBE raw.service_requests")]

    assert columns == ["dataset", "request_type", "id", "created_on", "closed_on", "updated_on", "status",
                       "duplicate", "latitude", "longitude", "source_file", "source_row"]


def test_raw_metadata_counts(runs: dict[str, object]) -> None:
    metadata = raw_metadata(runs["first"])

    assert metadata["dagster/row_count"] == 17
    assert metadata["blank_rows_skipped"] == 1
    assert metadata["rows_without_id"] == 0
    assert metadata["repeated_id_rows"] == 4
    assert metadata["duplicate_status_rows"] == 3
    assert metadata["first_created"] == "2023-07-04"
    assert metadata["last_created"] == "2023-11-05"
    assert "| sanitation_code | 10 | 9 | 2 | 2 | 2023-07-04 | 2023-07-06 |" in metadata["rows_per_request_type"]


def test_type_column_maps_to_labels(warehouse: Path) -> None:
    labels = dict(query(warehouse, "SELECT request_id, request_type FROM staging.stg_311__requests "
                                   "WHERE dataset = 'other_311'"))

    assert labels == {"SR23-0001": "street_lights_out", "SR23-0002": "graffiti", "SR23-0003": "street_lights_out",
                      "SR23-0004": "other_311", "SR23-0005": "street_lights_out", "SR23-0006": "graffiti"}


def test_staging_keeps_one_row_per_request(warehouse: Path) -> None:
    assert query(warehouse, "SELECT count(*) FROM staging.stg_311__requests") == [(15,)]


def test_later_row_of_repeated_id_wins(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT status, closed_date, is_duplicate, source_row FROM staging.stg_311__requests "
                            "WHERE request_id = '23-00000005'")

    assert rows == [("Completed", date(2023, 7, 20), False, 7)]


def test_latest_updated_on_wins(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT status, updated_at_utc FROM staging.stg_311__requests "
                            "WHERE request_id = 'SR23-0003'")

    assert rows == [("Completed", datetime(2023, 7, 7, 15, 0))]


def test_date_only_requests_get_no_hour(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT DISTINCT is_date_only, created_at_utc FROM staging.stg_311__requests "
                            "WHERE request_type = 'sanitation_code'")

    assert rows == [(True, None)]


def test_created_times_convert_to_utc(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT request_id, created_date, created_at_utc FROM staging.stg_311__requests "
                            "WHERE request_id IN ('SR23-0001', 'SR23-0002') ORDER BY 1")

    assert rows[0] == ("SR23-0001", date(2023, 7, 4), datetime(2023, 7, 5, 4, 30))
    assert rows[1] == ("SR23-0002", date(2023, 11, 5), datetime(2023, 11, 5, 6, 30))


def test_duplicates_flagged_by_status_and_flag(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT request_id FROM staging.stg_311__requests WHERE is_duplicate ORDER BY 1")

    assert rows == [("23-00000003",), ("SR23-0005",)]


def test_located_requests_land_in_tracts(warehouse: Path) -> None:
    cells = dict(query(warehouse, "SELECT request_id, cell_id FROM intermediate.int_requests__located "
                                  "WHERE quarantine_reason IS NULL"))

    assert cells == {"23-00000001": "WEST", "23-00000002": "WEST", "23-00000003": "WEST", "23-00000004": "EAST",
                     "23-00000005": "EAST", "SR23-0001": "WEST", "SR23-0002": "EAST", "SR23-0003": "EAST",
                     "SR23-0004": "WEST", "SR23-0005": "WEST"}


def test_quarantine_reasons(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT request_id, quarantine_reason FROM marts.quarantine_service_requests ORDER BY 1")

    assert rows == [("23-00000006", "missing_coordinates"), ("23-00000007", "zero_coordinates"),
                    ("23-00000008", "outside_bounding_box"), ("23-00000009", "outside_cells"),
                    ("SR23-0006", "missing_created_date")]


def test_daily_counts_exclude_duplicates(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT cell_id, local_date, request_type, requests FROM marts.fct_cell_day_requests "
                            "ORDER BY ALL")

    assert rows == [
        ("EAST", date(2023, 7, 5), "sanitation_code", 1),
        ("EAST", date(2023, 7, 5), "street_lights_out", 1),
        ("EAST", date(2023, 7, 6), "sanitation_code", 1),
        ("EAST", date(2023, 11, 5), "graffiti", 1),
        ("WEST", date(2023, 7, 4), "sanitation_code", 2),
        ("WEST", date(2023, 7, 4), "street_lights_out", 1),
        ("WEST", date(2023, 7, 5), "other_311", 1),
    ]


def test_row_accounting_balances(warehouse: Path) -> None:
    staged, located, quarantined, duplicates, counted = query(warehouse, """
        SELECT (SELECT count(*) FROM staging.stg_311__requests),
               (SELECT count(*) FROM intermediate.int_requests__located WHERE quarantine_reason IS NULL),
               (SELECT count(*) FROM marts.quarantine_service_requests),
               (SELECT count(*) FROM intermediate.int_requests__located
                WHERE quarantine_reason IS NULL AND is_duplicate),
               (SELECT sum(requests) FROM marts.fct_cell_day_requests)
    """)[0]

    assert (staged, located, quarantined, duplicates, counted) == (15, 10, 5, 2, 8)
    assert located + quarantined == staged
    assert counted == located - duplicates


def test_second_ingest_changes_nothing(runs: dict[str, object]) -> None:
    warehouse = runs["warehouse"]

    for table, rows in runs["snapshot"].items():
        assert table_rows(warehouse, table) == rows, table
    assert raw_metadata(runs["second"])["dagster/row_count"] == 17


def test_dbt_checks_cover_requests(runs: dict[str, object]) -> None:
    checks = {(evaluation.asset_key.to_user_string(), evaluation.check_name, evaluation.passed)
              for evaluation in runs["first"].get_asset_check_evaluations()}
    names = {(asset, name) for asset, name, _ in checks}

    audit_rules = {rule.name for rule in ALL_RULES}

    assert ("stg_311__requests", "unique_combination_stg_311__requests_request_type__request_id") in names
    assert ("fct_cell_day_requests", "relationships_fct_cell_day_requests_cell_id__cell_id__ref_dim_cells_") in names
    assert all(passed for asset, name, passed in checks if "request" in asset and name not in audit_rules)


def test_audit_warns_on_unlocated_requests(runs: dict[str, object]) -> None:
    """A third of the hand-made requests cannot be placed, so the 311 quality audit warns."""
    evaluations = {evaluation.check_name: evaluation for evaluation in runs["first"].get_asset_check_evaluations()}

    quality = evaluations["service_request_quality"]

    assert quality.passed is False
    assert quality.severity == dg.AssetCheckSeverity.WARN
