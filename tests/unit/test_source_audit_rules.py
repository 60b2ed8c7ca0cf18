"""Audit rules for weather, 311, boundaries and demographics on small hand-made warehouse tables.

As in test_audit_rules.py, each test writes the tables a rule reads into a real DuckDB file. It
runs the rule's own measurement and validates it with the rule's GX suite, as the Dagster check
does. Every rule has a table that passes and one that fails with WARN severity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from orchestration.audit_rules import active_rules, audit_parameters
from orchestration.jurisdiction import load_jurisdiction
from tests.unit.test_audit_rules import failing_rows, run_rule

# Weather: per-station coverage, gaps, traces and the daily precipitation check.


def station_coverage(rows: list[tuple[str, int, int]]) -> dict[str, pd.DataFrame]:
    """Rows of (station, hours, hours_with_observation); '(fallback)' is the row after fallback."""
    return {"marts.weather_station_coverage": pd.DataFrame([
        {"station": station, "station_rank": None if station == "(fallback)" else rank,
         "hours": hours, "hours_with_observation": seen, "hours_without_observation": hours - seen,
         "first_hour": pd.Timestamp("2017-01-01"), "last_hour": pd.Timestamp("2017-01-05")}
        for rank, (station, hours, seen) in enumerate(rows, start=1)])}


def test_station_coverage_passes(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "weather_station_coverage", station_coverage(
        [("ORD", 100, 95), ("MDW", 100, 60), ("(fallback)", 100, 99)]))

    assert outcome.passed
    assert frame["station_missing_share"].tolist()[:2] == pytest.approx([0.05, 0.4])


def test_station_coverage_names_station(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "weather_station_coverage", station_coverage(
        [("ORD", 100, 95), ("KPWK", 100, 10), ("(fallback)", 100, 99)]))

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "station_missing_share") == [{"station": "KPWK"}]


def test_station_coverage_no_weather_at_all_warns(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "weather_station_coverage", station_coverage(
        [("ORD", 100, 0), ("(fallback)", 100, 0)]))

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "fallback_hours_with_observation") == [{"station": "(fallback)"}]
    assert failing_rows(outcome, "fallback_missing_share") == [{"station": "(fallback)"}]


def weather_series(missing: list[int], traces: int, hours: int = 100) -> dict[str, pd.DataFrame]:
    """An hourly mart with the given hour positions missing and the first ``traces`` hours traces."""
    return {"marts.fct_hourly_weather": pd.DataFrame({
        "hour": pd.date_range("2017-01-01", periods=hours, freq="h"),
        "weather_missing": [index in missing for index in range(hours)],
        "precipitation_in": [None if index in missing else 0.0 for index in range(hours)],
        "precipitation_is_trace": [index < traces for index in range(hours)]})}


def test_weather_gaps_pass(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "hourly_weather_gaps", weather_series([10, 11, 12, 50], traces=5))

    assert outcome.passed
    assert frame["gaps"].item() == 2
    assert frame["longest_gap_hours"].item() == 3
    assert frame["longest_gap_start"].item() == pd.Timestamp("2017-01-01 10:00")
    assert frame["trace_share"].item() == pytest.approx(5 / 96)


def test_weather_long_gap_and_traces_warn(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "hourly_weather_gaps", weather_series(list(range(40, 70)), traces=20))

    assert outcome.severity == "warning"
    assert frame["longest_gap_hours"].item() == 30
    assert frame["trace_share"].item() == pytest.approx(20 / 70)
    assert {item.column for item in outcome.outcomes if item.status == "failed"} == {
        "longest_gap_hours", "trace_share"}


def precipitation_days(station: str, agree: int, disagree: int, partial: int) -> list[dict[str, Any]]:
    """Complete days that agree or not, and days with 20 hourly values that disagree."""
    rows = []
    for index, (agrees, hours) in enumerate([(True, 24)] * agree + [(False, 24)] * disagree
                                            + [(False, 20)] * partial):
        rows.append({"station": station, "lst_date": pd.Timestamp("2017-01-01") + pd.Timedelta(days=index),
                     "hours_with_precipitation": hours, "difference_in": 0.0 if agrees else -0.3,
                     "agrees": agrees})
    return rows


def test_daily_precipitation_passes(tmp_path: Path) -> None:
    # Partial days disagree for lack of hours and are not judged.
    outcome, frame = run_rule(tmp_path, "weather_daily_precipitation", {
        "marts.weather_daily_precipitation_check": pd.DataFrame(precipitation_days("ORD", 99, 1, 10))})

    assert outcome.passed
    assert frame["disagreeing_days"].item() == 11
    assert frame["disagreement_share"].item() == pytest.approx(0.01)


def test_daily_precipitation_names_station(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "weather_daily_precipitation", {
        "marts.weather_daily_precipitation_check": pd.DataFrame(
            precipitation_days("MDW", 90, 10, 0) + precipitation_days("ORD", 100, 0, 0))})

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "disagreement_share") == [{"station": "MDW"}]
    assert frame.loc[frame["station"] == "MDW", "max_difference_in"].item() == pytest.approx(0.3)


# 311 service requests.

def request_tables(request_type: str, records: int, *, date_only: bool = False, midnight: int = 0,
                   duplicates: int = 0, unlocated: int = 0, repeated: int = 0) -> dict[str, pd.DataFrame]:
    """Staged, raw and located tables for one request type; ``repeated`` raw ids carry a second row."""
    base = pd.Timestamp("2017-03-01 15:30")  # 09:30 in Chicago
    staged = pd.DataFrame({
        "request_type": request_type,
        "request_id": [str(index) for index in range(records)],
        "created_date": base.normalize(),
        "created_at_utc": pd.Series([None if date_only else (pd.Timestamp("2017-03-01 06:00") if index < midnight
                                                             else base) for index in range(records)],
                                    dtype="datetime64[us]"),
        "is_date_only": date_only,
        "is_duplicate": [index < duplicates for index in range(records)]})
    raw_ids = [str(index) for index in range(records)] + [str(index) for index in range(repeated)]
    located = staged.assign(quarantine_reason=[
        "missing_coordinates" if index < unlocated else None for index in range(records)])
    return {"staging.stg_311__requests": staged,
            "raw.service_requests": pd.DataFrame({"request_type": request_type, "id": raw_ids}),
            "intermediate.int_requests__located": located}


def test_requests_pass(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "service_request_quality", request_tables(
        "graffiti", 400, midnight=4, duplicates=40, unlocated=8, repeated=4))

    assert outcome.passed
    assert frame["timed_midnight_share"].item() == pytest.approx(0.01)
    assert frame["repeated_number_rows"].item() == 8
    assert frame["raw_rows"].item() == 404


def test_requests_warn(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "service_request_quality", request_tables(
        "graffiti", 400, midnight=100, duplicates=200, unlocated=40, repeated=40))

    assert outcome.severity == "warning"
    assert {item.column for item in outcome.outcomes if item.status == "failed"} == {
        "judged_midnight_share", "repeated_number_share", "duplicate_status_share", "unlocated_share"}
    assert frame["timed_midnight_share"].item() == pytest.approx(0.25)
    assert frame["repeated_number_share"].item() == pytest.approx(80 / 440)


def test_requests_date_only_reported_not_judged(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "service_request_quality", request_tables(
        "sanitation_code", 300, date_only=True))

    assert outcome.passed
    assert frame["date_only_share"].item() == 1.0
    assert pd.isna(frame["timed_midnight_share"].item())


def monthly_requests(counts: dict[str, list[int]]) -> dict[str, pd.DataFrame]:
    rows = [{"request_type": request_type, "created_date": pd.Timestamp(f"2017-{month:02d}-10")}
            for request_type, per_month in counts.items()
            for month, count in enumerate(per_month, start=1) for _ in range(count)]
    return {"staging.stg_311__requests": pd.DataFrame(rows)}


def test_request_volume_steady(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "service_request_volume", monthly_requests(
        {"graffiti": [40, 35, 42, 38], "potholes": [5, 0, 3, 4]}))

    assert outcome.passed


def test_request_volume_vanish_and_appear(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "service_request_volume", monthly_requests(
        {"graffiti": [40, 35, 0, 0], "rodents": [0, 0, 0, 31]}))

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "status") == [{"month": "2017-03", "request_type": "graffiti"},
                                               {"month": "2017-04", "request_type": "rodents"}]
    assert set(frame["status"]) == {"steady", "vanished", "appeared"}


# Boundaries.

def boundary_tables(layer: str, delivered: int, repaired: int, quarantined: int,
                    overlap_m2: float) -> dict[str, pd.DataFrame]:
    """A layer of 1 km² features; the usable ones are those not quarantined."""
    staged = pd.DataFrame({
        "layer": layer, "feature_id": [str(index) for index in range(delivered)],
        "was_repaired": [index < repaired for index in range(delivered)],
        "quarantine_reason": [None if index < delivered - quarantined else "not_a_polygon"
                              for index in range(delivered)]})
    usable = delivered - quarantined
    return {"staging.stg_boundaries__features": staged,
            "marts.dim_boundaries": pd.DataFrame({"layer": layer, "feature_id": [str(i) for i in range(usable)],
                                                  "area_km2": 1.0}),
            "marts.boundary_overlaps": pd.DataFrame({"layer": [layer], "overlapping_pairs": [1 if overlap_m2 else 0],
                                                     "overlap_m2": [overlap_m2]})}


def test_boundaries_pass(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "boundary_layer_quality", boundary_tables("tracts", 100, 2, 0, 500.0),
                              {"boundary_expected_features": {"tracts": 100}})

    assert outcome.passed
    assert frame["overlap_share"].item() == pytest.approx(500 / 100e6)
    assert frame["feature_count_difference"].item() == 0


def test_boundaries_warn(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "boundary_layer_quality", boundary_tables("beats", 100, 10, 3, 200_000.0),
                              {"boundary_expected_features": {"beats": 100}})

    assert outcome.severity == "warning"
    assert {item.column for item in outcome.outcomes if item.status == "failed"} == {
        "repaired_share", "quarantined_features", "overlap_share", "feature_count_difference"}
    assert frame["features"].item() == 97
    assert frame["feature_count_difference"].item() == -3
    assert frame["overlap_share"].item() == pytest.approx(200_000 / 97e6)


def test_boundaries_expected_count_on_one_layer(tmp_path: Path) -> None:
    tracts = boundary_tables("tracts", 50, 0, 0, 0.0)
    areas = boundary_tables("community_areas", 76, 0, 0, 0.0)
    tables = {name: pd.concat([tracts[name], areas[name]], ignore_index=True) for name in tracts}

    outcome, frame = run_rule(tmp_path, "boundary_layer_quality", tables,
                              {"boundary_expected_features": {"community_areas": 77}})

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "feature_count_difference") == [{"layer": "community_areas"}]
    assert frame["feature_count_difference"].tolist()[0] == -1
    assert pd.isna(frame["feature_count_difference"].tolist()[1])


def test_boundaries_without_expected_count(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "boundary_layer_quality", boundary_tables("tracts", 50, 0, 0, 0.0))

    assert outcome.passed
    assert pd.isna(frame["feature_count_difference"].item())


# Demographics.

def demographic_rows(*rows: tuple[str, float, float, float, float]) -> dict[str, pd.DataFrame]:
    """Rows of (area_id, population, nh_white, per_capita_income, poverty_percent)."""
    return {"staging.stg_demographics__rows": pd.DataFrame([
        {"table_name": "acs", "layer": "tracts", "area_id": area, "population": population,
         "nh_white": white, "nh_black": 0.0, "hispanic": 0.0, "nh_asian": 0.0, "other": None,
         "per_capita_income": income, "poverty_percent": poverty}
        for area, population, white, income, poverty in rows])}


def test_demographic_rows_pass(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "demographic_rows", demographic_rows(
        ("a", 3000, 1000, 25_000, 12.0), ("b", 4000, 4000, 60_000, 5.0), ("c", 0, 0, 18_000, 30.0)))

    assert outcome.passed
    assert frame["median_per_capita_income"].item() == 25_000


def test_demographic_rows_warn(tmp_path: Path) -> None:
    # Area d's income is a tract total (4000 people x 25,000); e has more white residents than people.
    outcome, frame = run_rule(tmp_path, "demographic_rows", demographic_rows(
        ("a", 3000, 1000, 25_000, 12.0), ("b", 4000, 400, 24_000, 5.0), ("c", 2000, 10, 26_000, 30.0),
        ("d", 4000, 100, 100_000_000, 8.0), ("e", 1000, 1200, 22_000, 140.0), ("f", -5, 0, 20_000, 10.0)))

    assert outcome.severity == "warning"
    assert frame["sum_like_income_rows"].item() == 1
    assert frame["sum_like_income_areas"].item() == "d"
    assert frame["groups_above_population_rows"].item() == 2  # e, and f whose 0 exceeds -5
    assert frame["negative_population_rows"].item() == 1
    assert frame["poverty_out_of_range_rows"].item() == 1


def cells(*rows: tuple[float, float, float]) -> dict[str, pd.DataFrame]:
    """Rows of (population, nh_white_share, other_share)."""
    return {"marts.dim_cell_demographics": pd.DataFrame([
        {"cell_id": str(index), "population": population, "nh_white_share": white, "nh_black_share": 0.0,
         "hispanic_share": 0.0, "nh_asian_share": 0.0, "other_share": other, "poverty_percent": 10.0}
        for index, (population, white, other) in enumerate(rows)])}


def test_cell_demographics_pass(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "cell_demographics", cells((100.0, 0.6, 0.4), (0.0, None, None)))

    assert outcome.passed
    assert frame["max_share"].item() == pytest.approx(0.6)


def test_cell_demographics_warn(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "cell_demographics", cells(
        (100.0, 1.2, -0.2), (50.0, 0.5, 0.5), (-1.0, None, None)))

    assert outcome.severity == "warning"
    assert frame["share_out_of_range_cells"].item() == 1
    assert frame["negative_population_cells"].item() == 1
    assert frame["min_share"].item() == pytest.approx(-0.2)


# Which sources a jurisdiction configures decides which checks exist.

SOURCE_RULE_NAMES = {"weather_station_coverage", "hourly_weather_gaps", "weather_daily_precipitation",
                     "service_request_quality", "service_request_volume", "boundary_layer_quality",
                     "demographic_rows", "cell_demographics"}


def test_philadelphia_has_only_boundary_checks() -> None:
    rules, skipped = active_rules(load_jurisdiction("philadelphia"))

    assert {rule.name for rule in rules} & SOURCE_RULE_NAMES == {"boundary_layer_quality"}
    assert skipped["service_request_quality"] == "the jurisdiction has no 311 source"
    assert skipped["demographic_rows"] == "the jurisdiction has no demographic tables"


def test_chicago_has_every_source_check() -> None:
    rules, _ = active_rules(load_jurisdiction("chicago"))

    assert SOURCE_RULE_NAMES <= {rule.name for rule in rules}


def test_expected_features_reach_parameters() -> None:
    parameters = audit_parameters(load_jurisdiction("chicago"))

    assert parameters["time_zone"] == "America/Chicago"
    assert parameters["boundary_expected_features"] == {"community_areas": 77}
