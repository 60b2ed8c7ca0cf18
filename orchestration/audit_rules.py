"""The rules of the data input audit: what each check measures, and which GX suite judges it.

An ``AuditRule`` pairs a measurement (DuckDB SQL, or Python for the drift test, on the warehouse
tables) with a suite in ``expectations/suites`` whose thresholds come from the jurisdiction's
``audit:`` block. ``orchestration.assets.audits`` turns every rule into a Dagster asset check and
the audit report runs the same rules, so a check and its report section cannot disagree.

Adding a source's checks means adding a measurement that returns one row per judged group, a
suite file, and an ``AuditRule`` with the asset it is about; ``skip_reason`` leaves the rule
out for jurisdictions that lack the source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from orchestration.drift import category_volume, distribution_drift
from orchestration.jurisdiction import JurisdictionConfig

Measure = Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], pd.DataFrame]
ALL = "(all)"


def audit_parameters(jurisdiction: JurisdictionConfig) -> dict[str, Any]:
    """Suite parameters: every numeric audit threshold by its field name, and the bounding box."""
    audit = jurisdiction.audit
    parameters = {name: value for name, value in audit.model_dump().items()
                  if isinstance(value, (int, float)) and not isinstance(value, bool)}
    box = jurisdiction.bounding_box
    parameters.update(min_lat=box.min_lat, max_lat=box.max_lat, min_lon=box.min_lon, max_lon=box.max_lon,
                      inside_box_share=audit.min_inside_box_share)
    return parameters


def run_sql(connection: duckdb.DuckDBPyConnection, sql: str, parameters: dict[str, Any]) -> pd.DataFrame:
    """Run SQL with the ``$name`` parameters it names, and return a pandas frame."""
    names = set(re.findall(r"\$([a-z_]+)", sql))
    missing = names - parameters.keys()
    if missing:
        raise KeyError(f"audit SQL uses parameters {sorted(missing)} that the audit configuration lacks")
    return connection.execute(sql, {name: parameters[name] for name in names}).df()


def sql_measure(sql: str) -> Measure:
    def measure(connection: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> pd.DataFrame:
        return run_sql(connection, sql, parameters)

    return measure


@dataclass(frozen=True)
class AuditRule:
    """One audit check: the asset it is about, its measurement and the suite that judges it.

    ``blocking`` rules have expectations of ERROR severity and stop downstream assets when those
    fail; the others only warn.
    """

    name: str
    asset: str
    suite: str
    description: str
    measure: Measure
    blocking: bool = False
    additional_deps: tuple[str, ...] = ()
    skip_reason: Callable[[JurisdictionConfig], str | None] = lambda jurisdiction: None


# Per-category sums of the calendar table, with an '(all)' row for the whole table.
CATEGORY_SUMS = f"""
    SELECT
        CASE WHEN grouping(audit_category) = 1 THEN '{ALL}' ELSE audit_category END AS category,
        sum(records)::BIGINT AS records,
        sum(missing_time_records)::BIGINT AS missing_time_records,
        sum(missing_coordinates_records)::BIGINT AS missing_coordinates_records,
        sum(missing_offense_code_records)::BIGINT AS missing_offense_code_records,
        sum(midnight_records)::BIGINT AS midnight_records,
        sum(on_hour_records)::BIGINT AS on_hour_records,
        sum(first_of_month_records)::BIGINT AS first_of_month_records
    FROM audit.audit_crime_calendar
    GROUP BY GROUPING SETS ((audit_category), ())
    HAVING sum(records) > 0
"""

COMPLETENESS_SQL = f"""
    WITH sums AS ({CATEGORY_SUMS}),
    shares AS (
        SELECT *,
            missing_time_records / records AS missing_time_share,
            missing_coordinates_records / records AS missing_coordinates_share,
            missing_offense_code_records / records AS missing_offense_code_share,
            category = '{ALL}' OR records >= $min_category_records AS judged
        FROM sums
    )
    SELECT category, records, missing_time_records, missing_coordinates_records, missing_offense_code_records,
        missing_time_share, missing_coordinates_share, missing_offense_code_share,
        CASE WHEN judged THEN missing_coordinates_share END AS judged_missing_coordinates_share,
        CASE WHEN judged THEN missing_offense_code_share END AS judged_missing_offense_code_share,
        CASE WHEN category = '{ALL}' THEN missing_time_records END AS overall_missing_time_records,
        CASE WHEN category = '{ALL}' THEN missing_coordinates_share END AS overall_missing_coordinates_share
    FROM shares
    ORDER BY category <> '{ALL}', records DESC, category
"""

HEAPING_SQL = f"""
    WITH sums AS ({CATEGORY_SUMS}),
    shares AS (
        SELECT *, records - missing_time_records AS timed_records,
            midnight_records / nullif(records - missing_time_records, 0) AS midnight_share,
            on_hour_records / nullif(records - missing_time_records, 0) AS on_hour_share,
            first_of_month_records / nullif(records - missing_time_records, 0) AS first_of_month_share,
            category = '{ALL}' OR records - missing_time_records >= $min_category_records AS judged
        FROM sums
    )
    SELECT category, timed_records, midnight_records, on_hour_records, first_of_month_records,
        midnight_share, on_hour_share, first_of_month_share,
        CASE WHEN judged THEN midnight_share END AS judged_midnight_share,
        CASE WHEN judged THEN on_hour_share END AS judged_on_hour_share,
        CASE WHEN judged THEN first_of_month_share END AS judged_first_of_month_share
    FROM shares
    ORDER BY category <> '{ALL}', timed_records DESC, category
"""

LOCATION_SQL = """
    SELECT
        sum(records)::BIGINT AS records,
        sum(records - missing_coordinates_records)::BIGINT AS records_with_coordinates,
        sum(out_of_bounds_records)::BIGINT AS outside_cells_records,
        sum(out_of_bounds_records) / nullif(sum(records - missing_coordinates_records), 0) AS outside_cells_share,
        sum(swapped_records)::BIGINT AS swapped_records,
        sum(swapped_repaired_records)::BIGINT AS swapped_repaired_records,
        sum(swapped_records) / sum(records) AS swapped_share
    FROM audit.audit_crime_calendar
    HAVING sum(records) > 0
"""

UNLOCATED_BY_MONTH_SQL = """
    WITH months AS (
        SELECT
            strftime(local_month, '%Y-%m') AS month,
            sum(records)::BIGINT AS records,
            sum(missing_coordinates_records + out_of_bounds_records)::BIGINT AS unlocated_records,
            sum(missing_coordinates_records)::BIGINT AS missing_coordinates_records,
            sum(out_of_bounds_records)::BIGINT AS out_of_bounds_records,
            sum(swapped_repaired_records)::BIGINT AS swapped_repaired_records
        FROM audit.audit_crime_calendar
        WHERE local_month IS NOT NULL
        GROUP BY 1
    ),
    shares AS (
        SELECT *, unlocated_records / records AS unlocated_share, records >= $min_month_records AS judged
        FROM months
    )
    SELECT month, records, unlocated_records, missing_coordinates_records, out_of_bounds_records,
        swapped_repaired_records, unlocated_share,
        unlocated_share - lag(unlocated_share) OVER (ORDER BY month) AS share_rise,
        CASE WHEN judged THEN unlocated_share END AS judged_unlocated_share,
        CASE WHEN judged AND lag(judged) OVER (ORDER BY month)
             THEN unlocated_share - lag(unlocated_share) OVER (ORDER BY month) END AS judged_share_rise
    FROM shares
    ORDER BY month
"""

UNLOCATED_BY_AREA_SQL = """
    SELECT area, records, unlocated_records, missing_coordinates_records, out_of_bounds_records,
        swapped_repaired_records, unlocated_share,
        CASE WHEN records >= $min_area_records THEN unlocated_share END AS judged_unlocated_share
    FROM audit.audit_crime_by_area
    ORDER BY unlocated_share DESC, area
"""

DUPLICATES_SQL = """
    SELECT *,
        duplicate_id_rows / raw_rows AS duplicate_id_share,
        copied_records / nullif(staged_records, 0) AS copied_record_share,
        records_sharing_case / nullif(staged_records, 0) AS shared_case_share
    FROM audit.audit_crime_duplicates
    WHERE raw_rows > 0
"""

UNKNOWN_CODES_SQL = """
    SELECT
        sum(records)::BIGINT AS records,
        sum(unknown_code_records)::BIGINT AS unknown_code_records,
        sum(unknown_code_records) / sum(records) AS unknown_code_share,
        (SELECT coalesce(string_agg(offense_code || ' (' || records || ')', ', ' ORDER BY records DESC, offense_code), '')
         FROM (SELECT offense_code, count(*) AS records FROM audit.audit_crime_records
               WHERE is_unknown_code GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20)) AS unknown_codes
    FROM audit.audit_crime_calendar
    HAVING sum(records) > 0
"""

BEAT_DISTRICT_SQL = """
    SELECT
        coalesce(sum(records) FILTER (WHERE is_consistent IS NOT NULL), 0)::BIGINT AS checked_records,
        coalesce(sum(records) FILTER (WHERE NOT is_consistent), 0)::BIGINT AS mismatched_records,
        coalesce(sum(records) FILTER (WHERE NOT is_consistent), 0)
            / nullif(sum(records) FILTER (WHERE is_consistent IS NOT NULL), 0) AS mismatch_share,
        (SELECT coalesce(string_agg('beat ' || beat || ' in district ' || district || ' (' || records || ')', ', '
                                    ORDER BY records DESC, beat), '')
         FROM (SELECT beat, district, records FROM audit.audit_crime_beat_district
               WHERE NOT is_consistent ORDER BY records DESC, beat LIMIT 10)) AS mismatch_examples
    FROM audit.audit_crime_beat_district
    HAVING sum(records) > 0
"""

DST_SQL = """
    SELECT
        year(local_month) AS year,
        sum(records)::BIGINT AS records,
        sum(nonexistent_time_records)::BIGINT AS nonexistent_records,
        sum(ambiguous_time_records)::BIGINT AS ambiguous_records,
        sum(nonexistent_time_records) / sum(records) AS nonexistent_share,
        sum(ambiguous_time_records) / sum(records) AS ambiguous_share
    FROM audit.audit_crime_calendar
    WHERE local_month IS NOT NULL
    GROUP BY 1
    ORDER BY 1
"""

LATE_UPDATES_SQL = """
    SELECT
        local_year AS year,
        count(*) AS records,
        count(update_lag_days) AS records_with_update,
        count(*) FILTER (WHERE update_lag_days > $late_update_days) AS late_records,
        count(*) FILTER (WHERE update_lag_days > $late_update_days) / count(update_lag_days) AS late_share,
        count(*) FILTER (WHERE update_lag_days < 0) AS negative_lag_records,
        quantile_cont(update_lag_days, 0.5) AS median_lag_days,
        quantile_cont(update_lag_days, 0.9) AS p90_lag_days,
        max(update_lag_days) AS max_lag_days
    FROM audit.audit_crime_records
    WHERE local_year IS NOT NULL
    GROUP BY 1
    HAVING count(update_lag_days) > 0
    ORDER BY 1
"""

ROW_ACCOUNTING_SQL = """
    WITH counts AS (
        SELECT
            (SELECT count(*) FROM raw.crime_incidents) AS raw_rows,
            (SELECT count(*) FROM raw.crime_incidents WHERE nullif(trim(id), '') IS NULL) AS rows_without_id,
            (SELECT count(DISTINCT trim(id)) FROM raw.crime_incidents WHERE nullif(trim(id), '') IS NOT NULL)
                AS distinct_ids,
            (SELECT count(*) FROM marts.quarantine_crime_raw_rows) AS quarantined_raw_rows,
            (SELECT count(*) FROM staging.stg_crimes__incidents) AS staged,
            (SELECT count(*) FROM intermediate.int_incidents__located WHERE quarantine_reason IS NULL) AS located,
            (SELECT count(*) FROM intermediate.int_incidents__located WHERE quarantine_reason IS NOT NULL)
                AS located_model_quarantined,
            (SELECT count(*) FROM marts.quarantine_crime_incidents) AS quarantined,
            (SELECT coalesce(sum(records), 0) FROM audit.audit_crime_calendar) AS audited
    )
    SELECT *,
        raw_rows - rows_without_id - distinct_ids AS superseded_versions,
        raw_rows - staged - (raw_rows - rows_without_id - distinct_ids) - quarantined_raw_rows AS raw_balance,
        staged - located - quarantined AS staged_balance,
        located_model_quarantined - quarantined AS quarantine_table_balance,
        audited - staged AS audited_balance
    FROM counts
"""

WEATHER_COVERAGE_SQL = """
    SELECT
        count(*) AS hours,
        count(*) FILTER (WHERE weather_missing) AS weather_missing_hours,
        count(*) FILTER (WHERE weather_missing) / count(*) AS weather_missing_share,
        count(*) FILTER (WHERE is_suspect) / count(*) AS suspect_share,
        count(*) FILTER (WHERE precipitation_is_trace) / count(*) AS trace_share
    FROM marts.fct_hourly_weather
    HAVING count(*) > 0
"""


def measure_row_level_input(connection: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> pd.DataFrame:
    """Read the staged incidents' columns that the row-level suite checks."""
    columns = ["incident_id", "occurred_at_utc", "offense_code", "latitude", "longitude"]
    present = {row[0] for row in connection.sql("DESCRIBE staging.stg_crimes__incidents").fetchall()}
    selected = ", ".join(f'"{name}"' for name in columns if name in present)
    return connection.sql(f"SELECT {selected} FROM staging.stg_crimes__incidents").fetch_arrow_table().to_pandas()


def measure_weather_ranges(connection: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> pd.DataFrame:
    return connection.sql("SELECT hour, temperature_f, relative_humidity, wind_speed_mph, precipitation_in "
                          "FROM marts.fct_hourly_weather").fetch_arrow_table().to_pandas()


def measure_quarantine_share(connection: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> pd.DataFrame:
    incidents = connection.sql("SELECT count(*) FROM intermediate.int_incidents__located").fetchone()[0]
    by_reason = connection.sql("SELECT quarantine_reason, count(*) FROM marts.quarantine_crime_incidents "
                               "GROUP BY 1 ORDER BY 1").fetchall()
    quarantined = sum(count for _, count in by_reason)
    return pd.DataFrame([{
        "incidents": incidents,
        "quarantined": quarantined,
        "quarantined_share": quarantined / incidents if incidents else 1.0,
        "by_reason": ", ".join(f"{reason}: {count}" for reason, count in by_reason),
    }])


def read_calendar(connection: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return connection.sql("SELECT local_month, audit_category, local_hour, local_dow, records "
                          "FROM audit.audit_crime_calendar WHERE local_month IS NOT NULL").df()


def measure_drift(connection: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> pd.DataFrame:
    return distribution_drift(read_calendar(connection), parameters["drift_baseline_months"],
                              parameters["drift_min_records"], parameters["drift_alpha"])


def measure_category_volume(connection: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> pd.DataFrame:
    monthly = connection.sql("SELECT local_month, audit_category AS category, sum(records) AS records "
                             "FROM audit.audit_crime_calendar WHERE local_month IS NOT NULL GROUP BY 1, 2").df()
    return category_volume(monthly, parameters["drift_baseline_months"], parameters["min_category_volume_records"])


def unmapped(*fields: str) -> Callable[[JurisdictionConfig], str | None]:
    """Skip a rule when the jurisdiction does not map every one of ``fields``."""

    def reason(jurisdiction: JurisdictionConfig) -> str | None:
        missing = [name for name in fields if name not in jurisdiction.crimes.columns]
        if missing:
            return f"the jurisdiction maps no crime field {', '.join(missing)}"
        return None

    return reason


def skip_area(jurisdiction: JurisdictionConfig) -> str | None:
    field = jurisdiction.audit.area_field
    if field is None:
        return "audit.area_field is not set"
    return unmapped(field)(jurisdiction)


def skip_beat_district(jurisdiction: JurisdictionConfig) -> str | None:
    if jurisdiction.audit.beat_district is None:
        return "audit.beat_district sets no rule for how a beat names its district"
    return unmapped("beat", "district")(jurisdiction)


def skip_dst(jurisdiction: JurisdictionConfig) -> str | None:
    if jurisdiction.crimes.time_basis == "utc":
        return "crime times are UTC instants, which have no skipped or doubled local hour"
    return None


def skip_weather(jurisdiction: JurisdictionConfig) -> str | None:
    if jurisdiction.weather is None:
        return "the jurisdiction has no weather source"
    return None


STAGED = "stg_crimes__incidents"
LOCATED = "int_incidents__located"
CALENDAR = "audit_crime_calendar"

CRIME_RULES: tuple[AuditRule, ...] = (
    AuditRule("crime_incidents_input_audit", STAGED, "stg_crimes__incidents",
              "Row-level input audit of staged incidents: rows present, required columns, unique ids, "
              "timestamps, offense codes, coordinates as delivered inside the bounding box (ERROR).",
              measure_row_level_input, blocking=True),
    AuditRule("crime_row_accounting", STAGED, "crime_row_accounting",
              "Counts in, out and quarantined reconcile exactly: raw rows = staged + superseded versions "
              "+ quarantined raw rows; staged = located + quarantined; the audit measures every staged "
              "record (ERROR).",
              sql_measure(ROW_ACCOUNTING_SQL), blocking=True,
              additional_deps=("raw_crime_incidents", "quarantine_crime_incidents", "quarantine_crime_raw_rows",
                               CALENDAR)),
    AuditRule("quarantine_share_check", "quarantine_crime_incidents", "quarantine_crime_incidents",
              "Share of incidents quarantined, by reason (WARN).", measure_quarantine_share,
              additional_deps=(LOCATED,)),
    AuditRule("crime_completeness", STAGED, "crime_completeness",
              "Completeness of timestamp, coordinates and offense code, overall and per category "
              "(WARN per category; ERROR when times are missing or most coordinates are).",
              sql_measure(COMPLETENESS_SQL), blocking=True, additional_deps=(CALENDAR,)),
    AuditRule("crime_time_heaping", STAGED, "crime_time_heaping",
              "Midnight, on-the-hour and first-of-month heaping, overall and per category (WARN).",
              sql_measure(HEAPING_SQL), additional_deps=(CALENDAR,)),
    AuditRule("crime_location_quality", LOCATED, "crime_location_quality",
              "Coordinates outside the jurisdiction's cells, and swapped latitude/longitude (WARN).",
              sql_measure(LOCATION_SQL), additional_deps=(CALENDAR,)),
    AuditRule("crime_unlocated_by_month", LOCATED, "crime_unlocated_by_month",
              "Unlocated share per month and its month-to-month rise (WARN; ERROR above "
              "audit.error_unlocated_share).",
              sql_measure(UNLOCATED_BY_MONTH_SQL), blocking=True, additional_deps=(CALENDAR,)),
    AuditRule("crime_unlocated_by_area", LOCATED, "crime_unlocated_by_area",
              "Unlocated share per area that the records name (WARN).",
              sql_measure(UNLOCATED_BY_AREA_SQL), additional_deps=("audit_crime_by_area",), skip_reason=skip_area),
    AuditRule("crime_duplicate_rows", "raw_crime_incidents", "crime_duplicate_rows",
              "Duplicate ids and exact duplicate rows in the raw extracts, and records copied under "
              "another id (WARN).",
              sql_measure(DUPLICATES_SQL), additional_deps=("audit_crime_duplicates",)),
    AuditRule("crime_shared_case_numbers", STAGED, "crime_shared_case_numbers",
              "Records sharing a case number, counted and kept (WARN).",
              sql_measure(DUPLICATES_SQL), additional_deps=("audit_crime_duplicates",),
              skip_reason=unmapped("case_number")),
    AuditRule("crime_unknown_offense_codes", STAGED, "crime_unknown_offense_codes",
              "Offense codes that the jurisdiction's offense_codes mapping does not list (WARN).",
              sql_measure(UNKNOWN_CODES_SQL), additional_deps=(CALENDAR,)),
    AuditRule("crime_beat_district_consistency", STAGED, "crime_beat_district_consistency",
              "Beats whose number names another district than the record's (WARN).",
              sql_measure(BEAT_DISTRICT_SQL), additional_deps=("audit_crime_beat_district",),
              skip_reason=skip_beat_district),
    AuditRule("crime_dst_local_times", STAGED, "crime_dst_local_times",
              "Records in the nonexistent spring-forward hour and the doubled fall-back hour (WARN).",
              sql_measure(DST_SQL), additional_deps=(CALENDAR,), skip_reason=skip_dst),
    AuditRule("crime_distribution_drift", STAGED, "crime_distribution_drift",
              "Drift by hour of day, day of week, month of year and yearly volume against a trailing "
              "baseline: chi-square test and Jensen-Shannon distance (WARN).",
              measure_drift, additional_deps=(CALENDAR,)),
    AuditRule("crime_category_volume", STAGED, "crime_category_volume",
              "Categories that vanish or appear from one month to the next (WARN).",
              measure_category_volume, additional_deps=(CALENDAR,)),
    AuditRule("crime_late_updates", STAGED, "crime_late_updates",
              "Lag between event time and update time, per event year (WARN).",
              sql_measure(LATE_UPDATES_SQL), additional_deps=("audit_crime_records",),
              skip_reason=unmapped("updated_on")),
)

WEATHER_RULES: tuple[AuditRule, ...] = (
    AuditRule("hourly_weather_drift_audit", "fct_hourly_weather", "fct_hourly_weather",
              "Plausible ranges of hourly weather values (WARN: weather is optional input).",
              measure_weather_ranges, skip_reason=skip_weather),
    AuditRule("hourly_weather_coverage", "fct_hourly_weather", "hourly_weather_coverage",
              "Hours without a routine weather report, and suspect values (WARN).",
              sql_measure(WEATHER_COVERAGE_SQL), skip_reason=skip_weather),
)

ALL_RULES: tuple[AuditRule, ...] = CRIME_RULES + WEATHER_RULES


def active_rules(jurisdiction: JurisdictionConfig) -> tuple[list[AuditRule], dict[str, str]]:
    """Split the rules into those that apply to the jurisdiction and those skipped, with the reason."""
    active = []
    skipped = {}
    for rule in ALL_RULES:
        reason = rule.skip_reason(jurisdiction)
        if reason is None:
            active.append(rule)
        else:
            skipped[rule.name] = reason
    return active, skipped
