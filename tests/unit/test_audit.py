"""Great Expectations audits on pandas frames and DuckDB tables, with the real suite files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from orchestration.audit import ExpectationOutcome, SuiteOutcome, validate_frame, validate_table
from orchestration.warehouse import connect

SUITE = "stg_crimes__incidents"
CHICAGO_BOX = {"min_lat": 41.6, "max_lat": 42.1, "min_lon": -87.95, "max_lon": -87.5, "inside_box_share": 0.999}
NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
EXISTS = "expect_column_to_exist"
UNIQUE = "expect_column_values_to_be_unique"
ROW_COUNT = "expect_table_row_count_to_be_between"


def incidents(ids: list[str] | None = None, latitudes: list[float | None] | None = None,
              occurred: list[str | None] | None = None) -> pd.DataFrame:
    """Three staged incidents inside the Chicago box, with optional replacement columns."""
    return pd.DataFrame({
        "incident_id": ids or ["900101", "900102", "900103"],
        "occurred_at_utc": pd.to_datetime(occurred or ["2023-07-04 05:15", "2023-07-04 17:15", "2023-11-05 06:30"],
                                          utc=True),
        "offense_code": ["08B", "06", "03"],
        "latitude": latitudes or [41.879, 41.88, 41.70],
        "longitude": [-87.658, -87.62, -87.62],
    })


def outcome(result: SuiteOutcome, expectation: str, column: str | None = None) -> ExpectationOutcome:
    matches = [item for item in result.outcomes if item.expectation == expectation and item.column == column]
    assert len(matches) == 1, f"expected one {expectation} on {column}, got {matches}"
    return matches[0]


def status_vector(result: SuiteOutcome) -> dict[tuple[str, str | None], str]:
    return {(item.expectation, item.column): item.status for item in result.outcomes}


# Frames.

def test_clean_frame_passes() -> None:
    result = validate_frame(incidents(), SUITE, CHICAGO_BOX)

    assert result.passed is True
    assert result.count("passed") == 12
    assert result.row_count == 3
    assert result.table == "staging.stg_crimes__incidents"


def test_clean_frame_observed_rows() -> None:
    result = validate_frame(incidents(), SUITE, CHICAGO_BOX)

    assert outcome(result, ROW_COUNT).observed_value == 3


@pytest.fixture(scope="module")
def empty_result() -> SuiteOutcome:
    return validate_frame(incidents().iloc[0:0], SUITE, CHICAGO_BOX)


def test_empty_frame_fails(empty_result: SuiteOutcome) -> None:
    assert empty_result.passed is False


def test_empty_frame_row_count_fails(empty_result: SuiteOutcome) -> None:
    assert outcome(empty_result, ROW_COUNT).status == "failed"


def test_empty_frame_only_row_count_fails(empty_result: SuiteOutcome) -> None:
    failing = [(item.expectation, item.column) for item in empty_result.outcomes if item.status != "passed"]

    assert failing == [(ROW_COUNT, None)]


@pytest.mark.parametrize(("expectation", "column"), [(NOT_NULL, "incident_id"), (NOT_NULL, "occurred_at_utc"),
                                                     (BETWEEN, "latitude"), (BETWEEN, "longitude")])
def test_empty_frame_column_checks_pass(empty_result: SuiteOutcome, expectation: str, column: str) -> None:
    # Column checks hold vacuously on zero rows, so only the row count catches an empty table.
    assert outcome(empty_result, expectation, column).status == "passed"


def test_null_occurred_at_fails() -> None:
    frame = incidents(occurred=["2023-07-04 05:15", None, "2023-11-05 06:30"])

    result = validate_frame(frame, SUITE, CHICAGO_BOX)

    assert outcome(result, NOT_NULL, "occurred_at_utc").status == "failed"
    assert outcome(result, NOT_NULL, "occurred_at_utc").unexpected_count == 1
    assert result.passed is False


def test_null_latitude_not_checked() -> None:
    # The suite has no not-null check on latitude, because int_incidents__located quarantines
    # missing coordinates. GX's between expectation skips nulls, so this check passes.
    result = validate_frame(incidents(latitudes=[41.879, None, 41.70]), SUITE, CHICAGO_BOX)

    assert outcome(result, BETWEEN, "latitude").status == "passed"
    assert outcome(result, BETWEEN, "latitude").unexpected_count == 0


def test_outside_box_fails_strict_share() -> None:
    result = validate_frame(incidents(latitudes=[41.879, 42.5, 41.70]), SUITE, CHICAGO_BOX)

    assert outcome(result, BETWEEN, "latitude").status == "failed"
    assert outcome(result, BETWEEN, "latitude").unexpected_count == 1
    assert result.passed is False


def test_outside_box_passes_loose_share() -> None:
    parameters = {**CHICAGO_BOX, "inside_box_share": 0.5}

    result = validate_frame(incidents(latitudes=[41.879, 42.5, 41.70]), SUITE, parameters)

    assert outcome(result, BETWEEN, "latitude").status == "passed"
    assert result.passed is True


def test_box_parameters_applied() -> None:
    # 41.70 is inside Chicago's box but outside this narrower one.
    parameters = {**CHICAGO_BOX, "min_lat": 41.8}

    result = validate_frame(incidents(), SUITE, parameters)

    assert outcome(result, BETWEEN, "latitude").unexpected_count == 1


@pytest.fixture(scope="module")
def no_latitude_result() -> SuiteOutcome:
    return validate_frame(incidents().drop(columns=["latitude"]), SUITE, CHICAGO_BOX)


def test_missing_column_exist_fails(no_latitude_result: SuiteOutcome) -> None:
    assert outcome(no_latitude_result, EXISTS, "latitude").status == "failed"


def test_missing_column_between_not_passed(no_latitude_result: SuiteOutcome) -> None:
    assert outcome(no_latitude_result, BETWEEN, "latitude").status != "passed"


def test_missing_column_between_is_error(no_latitude_result: SuiteOutcome) -> None:
    # GX 1.24 nests the exception details under each metric's configuration id, and the missing
    # column raises in the metric, so the outcome must be an error and not a plain failure.
    assert outcome(no_latitude_result, BETWEEN, "latitude").status == "error"


def test_missing_column_error_has_message(no_latitude_result: SuiteOutcome) -> None:
    assert outcome(no_latitude_result, BETWEEN, "latitude").message


def test_missing_column_suite_fails(no_latitude_result: SuiteOutcome) -> None:
    assert no_latitude_result.passed is False


def test_missing_column_longitude_unaffected(no_latitude_result: SuiteOutcome) -> None:
    assert outcome(no_latitude_result, BETWEEN, "longitude").status == "passed"


def test_duplicate_id_fails_uniqueness() -> None:
    result = validate_frame(incidents(ids=["900101", "900101", "900103"]), SUITE, CHICAGO_BOX)

    assert outcome(result, UNIQUE, "incident_id").status == "failed"
    assert outcome(result, UNIQUE, "incident_id").unexpected_count == 2
    assert result.passed is False


def test_weather_suite_out_of_range() -> None:
    frame = pd.DataFrame({
        "hour": pd.to_datetime(["2023-03-12 07:00", "2023-03-12 08:00"], utc=True),
        "temperature_f": [30.0, 31.0],
        "relative_humidity": [80.0, 180.0],
        "wind_speed_mph": [5.0, 6.0],
        "precipitation_in": [0.0, None],
    })

    result = validate_frame(frame, "fct_hourly_weather")

    assert outcome(result, BETWEEN, "relative_humidity").status == "failed"
    assert outcome(result, BETWEEN, "precipitation_in").status == "passed"


# DuckDB tables.

def write_staging_table(warehouse: Path, frame: pd.DataFrame) -> None:
    with connect(warehouse) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS staging")
        connection.execute("""
            CREATE OR REPLACE TABLE staging.stg_crimes__incidents (
                incident_id VARCHAR, occurred_at_utc TIMESTAMPTZ, offense_code VARCHAR,
                latitude DOUBLE, longitude DOUBLE, quarantine_reason VARCHAR)
        """)
        connection.register("incoming", frame)
        connection.execute("""
            INSERT INTO staging.stg_crimes__incidents
            SELECT incident_id, occurred_at_utc, offense_code, latitude, longitude, NULL FROM incoming
        """)


@pytest.mark.parametrize("frame", [
    incidents(),
    incidents(ids=["900101", "900101", "900103"], latitudes=[41.879, 42.5, 41.70]),
    incidents(occurred=["2023-07-04 05:15", None, "2023-11-05 06:30"]),
], ids=["clean", "duplicate_outside", "null_time"])
def test_table_matches_frame(tmp_path: Path, frame: pd.DataFrame) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    write_staging_table(warehouse, frame)

    from_table = validate_table(warehouse, SUITE, CHICAGO_BOX)
    from_frame = validate_frame(frame, SUITE, CHICAGO_BOX)

    assert status_vector(from_table) == status_vector(from_frame)
    assert from_table.row_count == 3


def test_table_failures_detected(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    write_staging_table(warehouse, incidents(ids=["900101", "900101", "900103"]))

    result = validate_table(warehouse, SUITE, CHICAGO_BOX)

    assert outcome(result, UNIQUE, "incident_id").status == "failed"
    assert result.passed is False


def test_table_missing_column(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with connect(warehouse) as connection:
        connection.execute("CREATE SCHEMA staging")
        connection.execute("CREATE TABLE staging.stg_crimes__incidents AS "
                           "SELECT '900101' AS incident_id, TIMESTAMPTZ '2023-07-04 05:15:00+00' AS occurred_at_utc, "
                           "'08B' AS offense_code, -87.658 AS longitude")

    result = validate_table(warehouse, SUITE, CHICAGO_BOX)

    assert outcome(result, EXISTS, "latitude").status == "failed"
    assert outcome(result, BETWEEN, "latitude").status != "passed"
    assert result.passed is False
