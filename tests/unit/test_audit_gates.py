"""The audit as gates on a toy city: classification of unusable coordinates, the unlocated share
per month, blocking and non-blocking checks, and GX errors and empty batches.

The toy city has two tracts, WEST (longitudes -87.70 to -87.65) and EAST (-87.65 to -87.60), both
at latitudes 41.85 to 41.90. One real Dagster run of the warehouse job (ingest, dbt build, audit
checks) builds the warehouse that every test here reads.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml

from orchestration.assets.audits import BLOCKING_CHECKS, evaluate_rule
from orchestration.audit import read_table, validate_frame
from orchestration.audit_rules import ALL_RULES, audit_parameters
from orchestration.definitions import HOURLY_JOB, WAREHOUSE_JOB, build_definitions
from orchestration.jurisdiction import load_jurisdiction
from orchestration.warehouse import connect
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

RULES = {rule.name: rule for rule in ALL_RULES}
FEATURES = dg.AssetKey("cell_hour_features")
PARTITION = "2024-04-10-15:00"
# (id, local date and time, latitude, longitude)
TOY_INCIDENTS = [
    ("920001", "03/03/2024 10:00:00 AM", "41.87", "-87.68"),
    ("920002", "03/05/2024 11:00:00 AM", "41.86", "-87.62"),
    ("920003", "03/09/2024 12:00:00 PM", "", ""),
    ("920004", "04/02/2024 10:00:00 AM", "41.88", "-87.67"),
    ("920005", "04/06/2024 01:00:00 PM", "39.69", "-76.70"),
    ("920006", "04/07/2024 02:00:00 PM", "8404105454.2", "-26.9"),
    ("920007", "04/09/2024 03:00:00 PM", "0", "0"),
    ("920008", "04/12/2024 04:00:00 PM", "41.87", "-87.63"),
    ("920009", "04/15/2024 05:00:00 PM", "-87.66", "41.88"),
]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dg.ExecuteInProcessResult]:
    folder = tmp_path_factory.mktemp("toy_city")
    rows = [crime_row(incident_id, f"JA{incident_id}", date, "06", "05/01/2024 09:00:00 AM", latitude, longitude)
            for incident_id, date, latitude, longitude in TOY_INCIDENTS]
    extracts = write_extracts(folder / "extracts", rows, [])
    jurisdiction = write_test_jurisdiction(folder, "2024-03-01")
    content = yaml.safe_load(jurisdiction.read_text(encoding="utf-8"))
    # A source change on 2024-04-01, compared over one month on each side: BATTERY has 3 records in
    # March and 6 in April.
    content["audit"] = {"min_inside_box_share": 0.5, "min_month_records": 1, "min_area_records": 1,
                        "max_unlocated_share": 0.10,
                        "source_changes": [{"date": "2024-04-01", "note": "toy records-system change"}],
                        "source_change_months": 1, "min_source_change_records": 1}
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    run_file = write_run_file(folder, jurisdiction, extracts, ("2024-03-01", "2024-04-10"), ("2024-04-10", "2024-04-11"))

    result = build_definitions(run_file, folder / "home").resolve_job_def(WAREHOUSE_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)

    return run_file, folder / "home", result


def warehouse_of(home: Path) -> Path:
    return home / "testcity" / "warehouse.duckdb"


def located(home: Path) -> dict[str, dict[str, Any]]:
    with connect(warehouse_of(home), read_only=True) as connection:
        frame = connection.sql("SELECT * FROM intermediate.int_incidents__located").df()
    return {row["incident_id"]: row for row in frame.to_dict("records")}


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {item.check_name: item for item in result.get_asset_check_evaluations()}


# Unusable coordinates are classified, not dropped.

def test_warehouse_run_succeeds(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    assert toy_run[2].success


def test_every_row_has_location_status(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    statuses = {incident_id: row["location_status"] for incident_id, row in located(toy_run[1]).items()}

    assert statuses == {"920001": "ok", "920002": "ok", "920004": "ok", "920008": "ok",
                        "920009": "swapped_repaired", "920003": "missing",
                        "920005": "out_of_bounds", "920006": "out_of_bounds", "920007": "out_of_bounds"}


def test_swap_repaired_inside_city(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    row = located(toy_run[1])["920009"]

    assert (row["located_latitude"], row["located_longitude"]) == (41.88, -87.66)
    assert (row["latitude"], row["longitude"]) == (-87.66, 41.88)
    assert row["coordinates_swapped"]


def test_tracts_get_only_usable_rows(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    rows = located(toy_run[1])
    by_cell: dict[str, set[str]] = {}
    for incident_id, row in rows.items():
        if pd.notna(row["cell_id"]):
            by_cell.setdefault(row["cell_id"], set()).add(incident_id)

    assert by_cell == {"WEST": {"920001", "920004", "920009"}, "EAST": {"920002", "920008"}}
    assert sum(len(ids) for ids in by_cell.values()) == 5


def test_unusable_rows_quarantined_with_rule(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    with connect(warehouse_of(toy_run[1]), read_only=True) as connection:
        rows = connection.sql("SELECT incident_id, quarantine_rule, quarantine_reason "
                              "FROM marts.quarantine_crime_incidents ORDER BY incident_id").fetchall()

    assert rows == [("920003", "coordinates_present", "missing_coordinates"),
                    ("920005", "inside_bounding_box", "outside_bounding_box"),
                    ("920006", "inside_bounding_box", "outside_bounding_box"),
                    ("920007", "coordinates_not_zero", "zero_coordinates")]


# The unlocated share per month.

def test_month_table(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    parameters = audit_parameters(load_jurisdiction(str(toy_run[0].parent / "testcity.yaml")))

    _, frame = evaluate_rule(RULES["crime_unlocated_by_month"], warehouse_of(toy_run[1]), parameters)

    assert frame["month"].tolist() == ["2024-03", "2024-04"]
    assert frame["records"].tolist() == [3, 6]
    assert frame["unlocated_records"].tolist() == [1, 3]
    assert frame["unlocated_share"].tolist() == pytest.approx([1 / 3, 0.5])
    assert frame["swapped_repaired_records"].tolist() == [0, 1]


def test_month_check_names_both_months(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    evaluation = evaluations(toy_run[2])["crime_unlocated_by_month"]
    problems = evaluation.metadata["problems"].value

    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "month=2024-03; month=2024-04" in problems


def test_month_rise_flagged(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    problems = evaluations(toy_run[2])["crime_unlocated_by_month"].metadata["problems"].value

    assert "expect_column_values_to_be_between(judged_share_rise): failed [warning], 1 unexpected: month=2024-04" \
        in problems


def test_area_share_reported(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    # Every toy record names district 012, so the one area carries all 4 unlocated records.
    with connect(warehouse_of(toy_run[1]), read_only=True) as connection:
        rows = connection.sql("SELECT area, records, unlocated_records FROM audit.audit_crime_by_area").fetchall()

    assert rows == [("012", 9, 4)]


def test_report_written(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    reports = toy_run[1] / "testcity" / "reports"
    page = (reports / "data_input_audit.html").read_text(encoding="utf-8")

    assert (reports / "audit" / "data_docs" / "index.html").is_file()
    assert "crime_unlocated_by_month" in page
    assert "2024-04" in page
    assert "<script" not in page


# A category that doubles at a configured source change warns, without blocking.

def test_category_break_check_warns(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    evaluation = evaluations(toy_run[2])["crime_category_breaks"]

    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["flagged_categories"].value == (
        "(all) at 2024-04-01 (x2.00: 3.0 to 6.0 records a month); "
        "BATTERY at 2024-04-01 (x2.00: 3.0 to 6.0 records a month)")
    assert "change_date=2024-04-01, category=BATTERY" in evaluation.metadata["problems"].value


def test_category_break_in_report(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    page = (toy_run[1] / "testcity" / "reports" / "data_input_audit.html").read_text(encoding="utf-8")

    assert "likely a definition change: do not read it as a rise or fall of crime" in page
    assert ("Possible definition changes: BATTERY (3.0 records a month before, 6.0 after, x2.00; "
            "trend level at the date x2.00).") in page
    assert ("All categories together also change x2.00 (3.0 to 6.0 records a month), so the change added or "
            "dropped records rather than only moving them between categories.") in page


# Blocking: the list of blocking checks, each forced to fail, and WARN checks that do not block.

def forced_failure(check: dg.AssetChecksDefinition) -> dg.AssetChecksDefinition:
    """A stand-in with the real check's spec (name, asset, blocking flag) that always fails with ERROR."""
    spec = next(iter(check.check_specs))

    @dg.multi_asset_check(specs=[spec], name=f"forced_{spec.name}")
    def forced(context):  # noqa: ANN001 - Dagster reads this annotation at run time, so it stays blank
        yield dg.AssetCheckResult(asset_key=spec.asset_key, check_name=spec.name, passed=False,
                                  severity=dg.AssetCheckSeverity.ERROR)

    return forced


def materialize_with(definitions: dg.Definitions, checks: list[dg.AssetChecksDefinition],
                     selection: dg.AssetSelection, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets=[*(definitions.assets or []), *checks],
                          resources=dict(definitions.resources or {}), selection=selection,
                          partition_key=PARTITION, instance=instance, raise_on_error=False)


def check_named(definitions: dg.Definitions, name: str) -> dg.AssetChecksDefinition:
    return next(check for check in definitions.asset_checks or [] if next(iter(check.check_keys)).name == name)


@pytest.mark.parametrize("name", BLOCKING_CHECKS)
def test_blocking_check_stops_features(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult], name: str) -> None:
    definitions = build_definitions(toy_run[0], toy_run[1])
    real = check_named(definitions, name)
    check_key = next(iter(real.check_keys))
    instance = dg.DagsterInstance.ephemeral()
    before = materialize_with(definitions, [], dg.AssetSelection.assets(FEATURES), instance)

    result = materialize_with(definitions, [forced_failure(real)],
                              dg.AssetSelection.assets(FEATURES) | dg.AssetSelection.checks(check_key), instance)

    assert before.success
    assert next(iter(real.check_specs)).blocking
    assert not result.success
    assert [item.passed for item in result.get_asset_check_evaluations()] == [False]
    assert result.get_asset_materialization_events() == []
    assert instance.get_latest_materialization_event(FEATURES).run_id == before.run_id


def test_crime_audit_failure_stops_hourly_scores(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult],
                                                 tmp_path: Path) -> None:
    # The hourly job itself, with the real crime input audit replaced by one that fails at ERROR.
    home = tmp_path / "home"
    shutil.copytree(toy_run[1], home)
    definitions = build_definitions(toy_run[0], home)
    real = check_named(definitions, "crime_incidents_input_audit")
    checks = [forced_failure(real) if check is real else check for check in definitions.asset_checks or []]
    hourly = next(job for job in definitions.jobs or [] if job.name == HOURLY_JOB)
    swapped = dg.Definitions(assets=definitions.assets, asset_checks=checks, jobs=[hourly],
                             resources=definitions.resources)

    result = swapped.resolve_job_def(HOURLY_JOB).execute_in_process(
        partition_key=PARTITION, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    failed = [item.check_name for item in result.get_asset_check_evaluations() if not item.passed]
    started = {event.step_key for event in result.all_events if event.is_step_start}
    failed_steps = {event.step_key for event in result.all_events if event.is_step_failure}
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}

    assert not result.success
    assert "crime_incidents_input_audit" in failed
    assert "stg_crimes__incidents" in materialized
    assert failed_steps == {"forced_crime_incidents_input_audit"}
    assert "cell_hour_features" not in started
    assert "risk_scores" not in started
    assert "cell_hour_features" not in materialized
    assert "risk_scores" not in materialized


def test_warn_check_does_not_block(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    # The toy city's unlocated shares fail at WARN severity, which is recorded but does not block.
    definitions = build_definitions(toy_run[0], toy_run[1])
    check_key = next(iter(check_named(definitions, "crime_unlocated_by_month").check_keys))

    result = materialize_with(definitions, list(definitions.asset_checks or []),
                              dg.AssetSelection.assets(FEATURES) | dg.AssetSelection.checks(check_key),
                              dg.DagsterInstance.ephemeral())
    evaluation = result.get_asset_check_evaluations()[0]

    assert result.success
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert len(result.get_asset_materialization_events()) == 1


def test_gx_error_blocks_features(toy_run: tuple[Path, Path, dg.ExecuteInProcessResult], tmp_path: Path) -> None:
    # The staged table loses a column after the suite was written, so GX cannot evaluate the
    # latitude expectation: an error, which the real input audit turns into a blocking failure.
    home = tmp_path / "home"
    shutil.copytree(toy_run[1], home)
    with connect(warehouse_of(home)) as connection:
        connection.execute("CREATE OR REPLACE TABLE staging.stg_crimes__incidents AS "
                           "SELECT * EXCLUDE (latitude) FROM staging.stg_crimes__incidents")
    definitions = build_definitions(toy_run[0], home)
    check_key = next(iter(check_named(definitions, "crime_incidents_input_audit").check_keys))

    result = materialize_with(definitions, list(definitions.asset_checks or []),
                              dg.AssetSelection.assets(FEATURES) | dg.AssetSelection.checks(check_key),
                              dg.DagsterInstance.ephemeral())
    evaluation = result.get_asset_check_evaluations()[0]

    assert not result.success
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["expectations_errored"].value >= 1
    assert "0 unexpected" not in evaluation.metadata["problems"].value
    assert result.get_asset_materialization_events() == []


# GX results are three-valued; empty batches fail; pandas and DuckDB agree.

CASE_SUITE = {
    "name": "staged_incidents_case",
    "table": "main.staged_incidents",
    "severity": "error",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "incident_id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "latitude"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "latitude", "min_value": 41.6,
                                                                  "max_value": 42.1}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 100000}},
    ],
}
THREE_ROWS = pd.DataFrame({"incident_id": [1, 2, 3], "latitude": [41.88, None, 41.70]})


def statuses(frame: pd.DataFrame) -> list[tuple[str, str | None, str, int | None]]:
    outcome = validate_frame(frame, CASE_SUITE["name"], spec=CASE_SUITE)
    return [(item.expectation, item.column, item.status, item.unexpected_count) for item in outcome.outcomes]


def test_empty_batch_fails_on_row_count() -> None:
    outcome = validate_frame(THREE_ROWS.iloc[0:0], CASE_SUITE["name"], spec=CASE_SUITE)
    by_type = {(item.expectation, item.column): item.status for item in outcome.outcomes}

    assert by_type[("expect_table_row_count_to_be_between", None)] == "failed"
    assert by_type[("expect_column_values_to_not_be_null", "incident_id")] == "passed"
    assert by_type[("expect_column_values_to_be_between", "latitude")] == "passed"
    assert outcome.passed is False
    assert outcome.severity == "error"


def test_pandas_and_duckdb_agree(tmp_path: Path) -> None:
    warehouse = tmp_path / "case.duckdb"
    with connect(warehouse) as connection:
        connection.register("incoming", THREE_ROWS)
        connection.execute("CREATE TABLE main.staged_incidents AS SELECT * FROM incoming")
    from_duckdb = read_table(warehouse, "main.staged_incidents", {"incident_id", "latitude"})

    expected = [("expect_column_values_to_not_be_null", "incident_id", "passed", 0),
                ("expect_column_values_to_not_be_null", "latitude", "failed", 1),
                ("expect_column_values_to_be_between", "latitude", "passed", 0),
                ("expect_table_row_count_to_be_between", None, "passed", None)]
    assert statuses(THREE_ROWS) == expected
    assert statuses(from_duckdb) == expected
