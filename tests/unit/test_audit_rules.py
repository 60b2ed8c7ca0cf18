"""Every audit rule on small hand-made audit tables: one that passes, one that fails, with severity.

Each test writes the tables a rule reads into a real DuckDB file, runs the rule's own
measurement SQL and validates the result with the rule's GX suite, as the Dagster check does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from orchestration.assets.audits import BLOCKING_CHECKS, check_result, evaluate_rule
from orchestration.audit import SUITES_DIR, SuiteOutcome, load_suite_file
from orchestration.audit_rules import ALL_RULES, active_rules, audit_parameters
from orchestration.jurisdiction import load_jurisdiction
from orchestration.warehouse import connect

RULES = {rule.name: rule for rule in ALL_RULES}
PARAMETERS = audit_parameters(load_jurisdiction("chicago"))
CALENDAR_COUNTS = ("missing_time_records", "midnight_records", "on_hour_records", "first_of_month_records",
                   "nonexistent_time_records", "ambiguous_time_records", "missing_coordinates_records",
                   "out_of_bounds_records", "outside_cells_records", "swapped_repaired_records", "swapped_records",
                   "missing_offense_code_records", "unknown_code_records")


def calendar_row(month: str, category: str = "THEFT", records: int = 1000, hour: int = 12, dow: int = 3,
                 **counts: int) -> dict[str, Any]:
    unknown = set(counts) - set(CALENDAR_COUNTS)
    assert not unknown, f"not calendar columns: {unknown}"
    return {"local_month": pd.Timestamp(f"{month}-01"), "audit_category": category, "local_hour": hour,
            "local_dow": dow, "records": records, **{name: counts.get(name, 0) for name in CALENDAR_COUNTS}}


def write_tables(warehouse: Path, tables: dict[str, pd.DataFrame]) -> None:
    with connect(warehouse) as connection:
        for name, frame in tables.items():
            schema = name.split(".")[0]
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            connection.register("incoming", frame)
            connection.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM incoming")
            connection.unregister("incoming")


def run_rule(tmp_path: Path, name: str, tables: dict[str, pd.DataFrame],
             parameters: dict[str, Any] | None = None) -> tuple[SuiteOutcome, pd.DataFrame]:
    warehouse = tmp_path / f"{name}.duckdb"
    write_tables(warehouse, tables)
    return evaluate_rule(RULES[name], warehouse, {**PARAMETERS, **(parameters or {})})


def calendar(*rows: dict[str, Any]) -> dict[str, pd.DataFrame]:
    return {"audit.audit_crime_calendar": pd.DataFrame(list(rows))}


def failing_rows(outcome: SuiteOutcome, column: str) -> list[dict[str, str]]:
    rows = [row for item in outcome.outcomes if item.column == column and item.status == "failed"
            for row in item.unexpected_rows]
    return rows


# Completeness.

def test_completeness_passes(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_completeness", calendar(
        calendar_row("2017-01", "THEFT", 1000, missing_coordinates_records=10),
        calendar_row("2017-01", "BATTERY", 500, missing_coordinates_records=5)))

    assert outcome.passed
    assert outcome.severity is None


def test_completeness_category_warns(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_completeness", calendar(
        calendar_row("2017-01", "THEFT", 1000, missing_coordinates_records=10),
        calendar_row("2017-01", "HOMICIDE", 300, missing_coordinates_records=30)))

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "judged_missing_coordinates_share") == [{"category": "HOMICIDE"}]
    assert frame.loc[frame["category"] == "HOMICIDE", "missing_coordinates_share"].item() == pytest.approx(0.1)


def test_completeness_small_category_not_judged(tmp_path: Path) -> None:
    # 50 records is below min_category_records (200): measured, reported, not judged.
    outcome, frame = run_rule(tmp_path, "crime_completeness", calendar(
        calendar_row("2017-01", "THEFT", 1000), calendar_row("2017-01", "RARE", 50, missing_coordinates_records=25)))

    assert outcome.passed
    assert frame.loc[frame["category"] == "RARE", "missing_coordinates_share"].item() == 0.5


def test_completeness_overall_missing_errors(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_completeness", calendar(
        calendar_row("2017-01", "THEFT", 1000, missing_coordinates_records=600)))

    assert outcome.severity == "error"


def test_completeness_missing_time_errors(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_completeness", calendar(
        calendar_row("2017-01", "THEFT", 1000, missing_time_records=1)))

    assert outcome.severity == "error"
    assert frame.loc[frame["category"] == "(all)", "overall_missing_time_records"].item() == 1


def test_completeness_empty_table_errors(tmp_path: Path) -> None:
    # An empty batch passes every column check vacuously, so only the row count catches it.
    empty = pd.DataFrame([calendar_row("2017-01")]).iloc[0:0]

    outcome, frame = run_rule(tmp_path, "crime_completeness", {"audit.audit_crime_calendar": empty})

    assert len(frame) == 0
    assert [item.expectation for item in outcome.outcomes if item.status == "failed"] == [
        "expect_table_row_count_to_be_between"]
    assert outcome.severity == "error"


# Heaping.

def test_heaping_passes(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_time_heaping", calendar(
        calendar_row("2017-01", "THEFT", 1000, midnight_records=12, on_hour_records=340, first_of_month_records=40)))

    assert outcome.passed


def test_heaping_names_category(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_time_heaping", calendar(
        calendar_row("2017-01", "THEFT", 10000, midnight_records=100, first_of_month_records=350),
        calendar_row("2017-01", "SEX OFFENSE", 400, midnight_records=36, first_of_month_records=50)))

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "judged_midnight_share") == [{"category": "SEX OFFENSE"}]
    assert failing_rows(outcome, "judged_first_of_month_share") == [{"category": "SEX OFFENSE"}]
    assert frame.loc[frame["category"] == "SEX OFFENSE", "midnight_share"].item() == pytest.approx(0.09)


def test_heaping_on_hour_overall(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_time_heaping", calendar(calendar_row("2017-01", "THEFT", 1000, on_hour_records=600)))

    assert failing_rows(outcome, "judged_on_hour_share") == [{"category": "(all)"}, {"category": "THEFT"}]


# Location.

def test_location_passes(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_location_quality", calendar(
        calendar_row("2017-01", records=10000, missing_coordinates_records=100, out_of_bounds_records=5)))

    assert outcome.passed


def test_location_outside_and_swapped_warn(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_location_quality", calendar(
        calendar_row("2017-01", records=1000, missing_coordinates_records=100, out_of_bounds_records=18,
                     swapped_records=5, swapped_repaired_records=4)))

    assert outcome.severity == "warning"
    assert {item.column for item in outcome.outcomes if item.status == "failed"} == {"outside_cells_share",
                                                                                       "swapped_share"}
    assert frame["outside_cells_share"].item() == pytest.approx(18 / 900)
    assert frame["swapped_repaired_records"].item() == 4


# Unlocated share by month: the two-tract toy city, 3 records in March and 6 in April.

TOY_MONTHS = calendar(
    calendar_row("2024-03", records=3, missing_coordinates_records=1),
    calendar_row("2024-04", records=6, out_of_bounds_records=3, swapped_repaired_records=1),
)


def test_unlocated_month_table(tmp_path: Path) -> None:
    _, frame = run_rule(tmp_path, "crime_unlocated_by_month", TOY_MONTHS, {"min_month_records": 1})

    assert frame["month"].tolist() == ["2024-03", "2024-04"]
    assert frame["records"].tolist() == [3, 6]
    assert frame["unlocated_records"].tolist() == [1, 3]
    assert frame["unlocated_share"].tolist() == pytest.approx([1 / 3, 0.5])
    assert frame["swapped_repaired_records"].tolist() == [0, 1]


def test_unlocated_month_threshold_names_months(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_unlocated_by_month", TOY_MONTHS, {"min_month_records": 1})

    warned = [item for item in outcome.outcomes if item.column == "judged_unlocated_share"
              and item.severity == "warning"]
    assert warned[0].unexpected_rows == [{"month": "2024-03"}, {"month": "2024-04"}]
    assert outcome.severity == "warning"


def test_unlocated_month_rise_flagged(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_unlocated_by_month", TOY_MONTHS, {"min_month_records": 1})

    assert failing_rows(outcome, "judged_share_rise") == [{"month": "2024-04"}]
    assert frame["judged_share_rise"].tolist()[1] == pytest.approx(0.5 - 1 / 3)


def test_unlocated_month_small_months_not_judged(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_unlocated_by_month", TOY_MONTHS)

    assert outcome.passed


def test_unlocated_month_passes(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_unlocated_by_month", calendar(
        calendar_row("2017-01", records=1000, missing_coordinates_records=10),
        calendar_row("2017-02", records=1000, missing_coordinates_records=30)))

    assert outcome.passed


def test_unlocated_month_error_level(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_unlocated_by_month", calendar(
        calendar_row("2017-01", records=1000, missing_coordinates_records=10),
        calendar_row("2017-02", records=1000, missing_coordinates_records=600)))

    assert outcome.severity == "error"


# Unlocated share by area.

def areas(*rows: tuple[str, int, int]) -> dict[str, pd.DataFrame]:
    frame = pd.DataFrame([{"area": area, "records": records, "unlocated_records": unlocated,
                           "missing_coordinates_records": unlocated, "out_of_bounds_records": 0,
                           "swapped_repaired_records": 0, "unlocated_share": unlocated / records}
                          for area, records, unlocated in rows])
    return {"audit.audit_crime_by_area": frame}


def test_unlocated_area_passes(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_unlocated_by_area", areas(("001", 1000, 10), ("002", 800, 20)))

    assert outcome.passed


def test_unlocated_area_names_area(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_unlocated_by_area", areas(("001", 1000, 10), ("002", 800, 200),
                                                                     ("(missing)", 5, 5)))

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "judged_unlocated_share") == [{"area": "002"}]


# Duplicates and case numbers.

def duplicates(**values: int) -> dict[str, pd.DataFrame]:
    row = {"raw_rows": 10000, "rows_without_id": 0, "distinct_ids": 10000, "duplicated_ids": 0,
           "duplicate_id_rows": 0, "exact_duplicate_rows": 0, "staged_records": 10000, "copied_records": 0,
           "case_numbers": 9990, "shared_case_numbers": 10, "records_sharing_case": 20}
    row.update(values)
    return {"audit.audit_crime_duplicates": pd.DataFrame([row])}


def test_duplicates_pass(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_duplicate_rows", duplicates(copied_records=5))

    assert outcome.passed


def test_duplicates_exact_row_warns(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_duplicate_rows", duplicates(
        raw_rows=10002, duplicated_ids=1, duplicate_id_rows=3, exact_duplicate_rows=1))

    assert outcome.severity == "warning"
    assert [item.column for item in outcome.outcomes if item.status == "failed"] == ["exact_duplicate_rows"]
    assert frame["duplicate_id_share"].item() == pytest.approx(3 / 10002)


def test_duplicates_many_ids_warn(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_duplicate_rows", duplicates(duplicated_ids=100, duplicate_id_rows=200))

    assert [item.column for item in outcome.outcomes if item.status == "failed"] == ["duplicate_id_share"]


def test_shared_cases_pass(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_shared_case_numbers", duplicates())

    assert outcome.passed
    assert frame["shared_case_share"].item() == pytest.approx(0.002)


def test_shared_cases_warn(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_shared_case_numbers",
                          duplicates(shared_case_numbers=100, records_sharing_case=300))

    assert outcome.severity == "warning"


# Offense codes.

def records_view(*rows: dict[str, Any]) -> pd.DataFrame:
    base = {"offense_code": "06", "is_unknown_code": False, "local_year": 2017, "update_lag_days": 3.0}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_unknown_codes_pass(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_unknown_offense_codes", {
        **calendar(calendar_row("2017-01", records=10000)), "audit.audit_crime_records": records_view({})})

    assert outcome.passed
    assert frame["unknown_codes"].item() == ""


def test_unknown_codes_named(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_unknown_offense_codes", {
        **calendar(calendar_row("2017-01", records=1000, unknown_code_records=3)),
        "audit.audit_crime_records": records_view({"offense_code": "99", "is_unknown_code": True},
                                                  {"offense_code": "99", "is_unknown_code": True},
                                                  {"offense_code": "X1", "is_unknown_code": True})})

    assert outcome.severity == "warning"
    assert frame["unknown_codes"].item() == "99 (2), X1 (1)"


# Beat and district.

def beats(*rows: tuple[str, str, int]) -> dict[str, pd.DataFrame]:
    frame = pd.DataFrame([{"beat": beat, "district": district, "records": records,
                           "beat_district": int(beat) // 100, "is_consistent": int(beat) // 100 == int(district)}
                          for beat, district, records in rows])
    return {"audit.audit_crime_beat_district": frame}


def test_beat_district_passes(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_beat_district_consistency", beats(("1234", "012", 5000), ("0111", "001", 4000)))

    assert outcome.passed


def test_beat_district_mismatch_warns(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_beat_district_consistency",
                              beats(("1234", "012", 5000), ("0111", "018", 20)))

    assert outcome.severity == "warning"
    assert frame["mismatched_records"].item() == 20
    assert frame["mismatch_examples"].item() == "beat 0111 in district 018 (20)"


# Daylight-saving edges.

def test_dst_passes(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_dst_local_times", calendar(
        calendar_row("2017-03", records=20000, nonexistent_time_records=3, ambiguous_time_records=20)))

    assert outcome.passed


def test_dst_names_year(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_dst_local_times", calendar(
        calendar_row("2016-03", records=20000, nonexistent_time_records=3),
        calendar_row("2017-03", records=2000, nonexistent_time_records=5)))

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "nonexistent_share") == [{"year": "2017"}]
    assert frame["nonexistent_records"].tolist() == [3, 5]


# Drift.

def hour_profile(month: str, total: int, evening_share: float) -> list[dict[str, Any]]:
    """A month whose records spread over hours 8-19, with ``evening_share`` moved to hour 22."""
    rows = [calendar_row(month, records=int(total * (1 - evening_share) / 12), hour=hour, dow=1 + hour % 7)
            for hour in range(8, 20)]
    rows.append(calendar_row(month, records=int(total * evening_share), hour=22, dow=5))
    return rows


def test_drift_passes(tmp_path: Path) -> None:
    rows = [row for month in ("2017-01", "2017-02", "2017-03") for row in hour_profile(month, 6000, 0.1)]

    outcome, frame = run_rule(tmp_path, "crime_distribution_drift", calendar(*rows))

    assert outcome.passed
    # The half-record pseudocount on the empty night hours keeps the distance just above zero.
    assert frame.loc[frame["dimension"] == "hour_of_day", "js_distance"].max() < 0.05


def test_drift_flags_month(tmp_path: Path) -> None:
    rows = [*hour_profile("2017-01", 6000, 0.1), *hour_profile("2017-02", 6000, 0.1),
            *hour_profile("2017-03", 6000, 0.6)]

    outcome, frame = run_rule(tmp_path, "crime_distribution_drift", calendar(*rows))

    assert outcome.severity == "warning"
    # The moved records all fall on a Friday, so the day-of-week distribution drifts too.
    assert failing_rows(outcome, "flagged_distance") == [{"dimension": "hour_of_day", "period": "2017-03"},
                                                         {"dimension": "day_of_week", "period": "2017-03"}]
    flagged = frame[(frame["dimension"] == "hour_of_day") & (frame["period"] == "2017-03")]
    assert flagged["p_value"].item() < 1e-9


def test_drift_year_volume(tmp_path: Path) -> None:
    rows = [calendar_row(f"{year}-{month:02d}", records=per_month)
            for year, per_month in ((2015, 1000), (2016, 1000), (2017, 600)) for month in range(1, 13)]

    outcome, frame = run_rule(tmp_path, "crime_distribution_drift", calendar(*rows))

    volume = frame[frame["dimension"] == "year_volume"].set_index("period")["volume_change"]
    assert volume["2016"] == pytest.approx(0.0)
    assert volume["2017"] == pytest.approx(-0.4)
    assert failing_rows(outcome, "absolute_volume_change") == [{"dimension": "year_volume", "period": "2017"}]


# Category volume.

def test_category_volume_steady(tmp_path: Path) -> None:
    rows = [calendar_row(month, category, 100) for month in ("2017-01", "2017-02", "2017-03")
            for category in ("THEFT", "ARSON")]

    outcome, _ = run_rule(tmp_path, "crime_category_volume", calendar(*rows))

    assert outcome.passed


def test_category_volume_vanish_and_appear(tmp_path: Path) -> None:
    rows = [calendar_row("2017-01", "THEFT", 100), calendar_row("2017-01", "ARSON", 100),
            calendar_row("2017-02", "THEFT", 100), calendar_row("2017-02", "ARSON", 100),
            calendar_row("2017-03", "THEFT", 100), calendar_row("2017-03", "NEW TYPE", 80)]

    outcome, frame = run_rule(tmp_path, "crime_category_volume", calendar(*rows))

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "status") == [{"month": "2017-03", "category": "ARSON"},
                                               {"month": "2017-03", "category": "NEW TYPE"}]
    assert frame.set_index("category").loc["ARSON", "status"].tolist()[-1] == "vanished"


# Late updates.

def test_late_updates_pass(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_late_updates", {"audit.audit_crime_records": records_view(
        {"update_lag_days": 2.0}, {"update_lag_days": 10.0}, {"update_lag_days": 400.0})})

    assert outcome.passed
    assert frame["late_records"].item() == 1


def test_late_updates_warn(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_late_updates", {"audit.audit_crime_records": records_view(
        {"update_lag_days": 700.0}, {"update_lag_days": 800.0}, {"update_lag_days": -1.0},
        {"update_lag_days": None})})

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "late_share") == [{"year": "2017"}]
    assert frame["negative_lag_records"].item() == 1
    assert frame["records_with_update"].item() == 3


# Row accounting and quarantine.

def accounting_tables(staged_ids: list[str], located: dict[str, str | None], quarantined: list[str],
                      raw_ids: list[str], raw_quarantined: int, audited: int) -> dict[str, pd.DataFrame]:
    return {
        "raw.crime_incidents": pd.DataFrame({"id": raw_ids}),
        "staging.stg_crimes__incidents": pd.DataFrame({"incident_id": staged_ids}),
        "intermediate.int_incidents__located": pd.DataFrame(
            {"incident_id": list(located), "quarantine_reason": list(located.values())}),
        "marts.quarantine_crime_incidents": pd.DataFrame({"incident_id": quarantined}, dtype="string"),
        "marts.quarantine_crime_raw_rows": pd.DataFrame({"source_row": list(range(raw_quarantined))}),
        "audit.audit_crime_calendar": pd.DataFrame([calendar_row("2017-01", records=audited)]),
    }


def test_row_accounting_balances(tmp_path: Path) -> None:
    tables = accounting_tables(["1", "2", "3"], {"1": None, "2": None, "3": "missing_coordinates"}, ["3"],
                               ["1", "1", "2", "3", ""], raw_quarantined=1, audited=3)

    outcome, frame = run_rule(tmp_path, "crime_row_accounting", tables)

    assert outcome.passed
    assert frame["superseded_versions"].item() == 1


def test_row_accounting_lost_record_errors(tmp_path: Path) -> None:
    # Record 3 is staged but neither located nor quarantined: it would vanish from the counts.
    tables = accounting_tables(["1", "2", "3"], {"1": None, "2": None}, [], ["1", "2", "3"],
                               raw_quarantined=0, audited=3)

    outcome, frame = run_rule(tmp_path, "crime_row_accounting", tables)

    assert outcome.severity == "error"
    assert frame["staged_balance"].item() == 1


def test_row_accounting_unquarantined_raw_row_errors(tmp_path: Path) -> None:
    tables = accounting_tables(["1"], {"1": None}, [], ["1", ""], raw_quarantined=0, audited=1)

    outcome, frame = run_rule(tmp_path, "crime_row_accounting", tables)

    assert outcome.severity == "error"
    assert frame["raw_balance"].item() == 1


def test_quarantine_share_warns(tmp_path: Path) -> None:
    tables = {"intermediate.int_incidents__located": pd.DataFrame({"incident_id": ["1", "2", "3", "4"]}),
              "marts.quarantine_crime_incidents": pd.DataFrame({"quarantine_reason": ["missing_coordinates"]})}

    outcome, frame = run_rule(tmp_path, "quarantine_share_check", tables)

    assert outcome.severity == "warning"
    assert frame["by_reason"].item() == "missing_coordinates: 1"


def test_quarantine_share_passes(tmp_path: Path) -> None:
    tables = {"intermediate.int_incidents__located": pd.DataFrame({"incident_id": [str(i) for i in range(100)]}),
              "marts.quarantine_crime_incidents": pd.DataFrame({"quarantine_reason": ["outside_cells"]})}

    outcome, _ = run_rule(tmp_path, "quarantine_share_check", tables)

    assert outcome.passed


# Weather.

def weather_hours(missing: int, suspect: int, hours: int = 100) -> dict[str, pd.DataFrame]:
    return {"marts.fct_hourly_weather": pd.DataFrame({
        "hour": pd.date_range("2017-01-01", periods=hours, freq="h"),
        "weather_missing": [index < missing for index in range(hours)],
        "is_suspect": [index >= hours - suspect for index in range(hours)],
        "precipitation_is_trace": [False] * hours})}


def test_weather_coverage_passes(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "hourly_weather_coverage", weather_hours(missing=5, suspect=0))

    assert outcome.passed


def test_weather_coverage_warns(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "hourly_weather_coverage", weather_hours(missing=30, suspect=2))

    assert outcome.severity == "warning"
    assert frame["weather_missing_share"].item() == pytest.approx(0.3)
    assert frame["suspect_share"].item() == pytest.approx(0.02)


# Errors: an audit that cannot run fails with ERROR severity.

def test_missing_table_is_error(tmp_path: Path) -> None:
    outcome, _ = run_rule(tmp_path, "crime_time_heaping", {"audit.unrelated": pd.DataFrame({"x": [1]})})

    assert outcome.outcomes[0].status == "error"
    assert "audit_crime_calendar" in (outcome.outcomes[0].message or "")
    assert outcome.severity == "error"


def test_errored_warn_rule_result_is_error(tmp_path: Path) -> None:
    outcome, frame = run_rule(tmp_path, "crime_time_heaping", {"audit.unrelated": pd.DataFrame({"x": [1]})})

    result = check_result(outcome, frame)

    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.ERROR


def test_missing_column_is_error(tmp_path: Path) -> None:
    # A suite column that the measurement lacks makes GX raise inside the metric: an error, not a pass.
    tables = calendar(calendar_row("2017-01"))
    warehouse = tmp_path / "renamed.duckdb"
    write_tables(warehouse, tables)
    with connect(warehouse) as connection:
        connection.execute("ALTER TABLE audit.audit_crime_calendar RENAME COLUMN swapped_records TO swaps")

    outcome, _ = evaluate_rule(RULES["crime_location_quality"], warehouse, PARAMETERS)

    assert outcome.severity == "error"
    assert outcome.passed is False


# The registry.

def suite_has_error_expectations(name: str) -> bool:
    spec = load_suite_file(name)
    default = spec.get("severity", "warning")
    return any(item.get("meta", {}).get("severity", default) == "error" for item in spec["expectations"])


def test_blocking_checks_list() -> None:
    assert BLOCKING_CHECKS == ("crime_incidents_input_audit", "crime_row_accounting", "crime_completeness",
                               "crime_unlocated_by_month")


def test_blocking_rules_match_list() -> None:
    assert {rule.name for rule in ALL_RULES if rule.blocking} == set(BLOCKING_CHECKS)


def test_blocking_rules_match_suites() -> None:
    assert {rule.name for rule in ALL_RULES if suite_has_error_expectations(rule.suite)} == set(BLOCKING_CHECKS)


def test_every_suite_file_has_a_rule() -> None:
    assert {path.stem for path in SUITES_DIR.glob("*.json")} == {rule.suite for rule in ALL_RULES}


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
def test_suite_parameters_exist(rule: Any) -> None:
    text = json.dumps(load_suite_file(rule.suite))
    names = {item.split('"')[0] for item in text.split('"$PARAMETER": "')[1:]}

    assert names <= PARAMETERS.keys()


def test_philadelphia_skips_rules() -> None:
    _, skipped = active_rules(load_jurisdiction("philadelphia"))

    assert set(skipped) == {"crime_beat_district_consistency", "crime_dst_local_times", "crime_late_updates",
                            "hourly_weather_drift_audit", "hourly_weather_coverage", "weather_station_coverage",
                            "hourly_weather_gaps", "weather_daily_precipitation", "service_request_quality",
                            "service_request_volume", "demographic_rows", "cell_demographics"}


def test_chicago_runs_every_rule() -> None:
    # Chicago configures no known source-system change, so only the category-break check is skipped.
    rules, skipped = active_rules(load_jurisdiction("chicago"))

    assert skipped == {"crime_category_breaks": "audit.source_changes lists no known source-system change"}
    assert len(rules) == len(ALL_RULES) - 1
