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

import math
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
    """Suite parameters: every numeric audit threshold by its field name, the bounding box, and the
    dates and notes of the known source-system changes as two parallel lists."""
    audit = jurisdiction.audit
    parameters = {name: value for name, value in audit.model_dump().items()
                  if isinstance(value, (int, float)) and not isinstance(value, bool)}
    box = jurisdiction.bounding_box
    parameters.update(min_lat=box.min_lat, max_lat=box.max_lat, min_lon=box.min_lon, max_lon=box.max_lon,
                      inside_box_share=audit.min_inside_box_share, time_zone=jurisdiction.time_zone,
                      boundary_expected_features={layer.name: layer.expected_features
                                                  for layer in jurisdiction.boundaries.layers
                                                  if layer.expected_features is not None},
                      source_change_dates=[change.date.isoformat() for change in audit.source_changes],
                      source_change_notes=[change.note for change in audit.source_changes])
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
    # Extra text metadata of the check, by key, computed from the measurement.
    summarize: Callable[[pd.DataFrame], dict[str, str]] | None = None


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


# Category breaks across a known source-system change. For each change, the compared months are
# the N whole months before the month of the change and the N whole months from the change on. A
# change in the middle of a month leaves that month out, because it mixes both systems. Every
# category gets every compared month, with zero for a month without records, and '(all)' is the
# whole table.
#
# mean_ratio is the ratio of the mean monthly counts after and before. A steady trend also moves
# those means apart (a count that rises by 10 a month from 100 gives 1.77 over two 12-month
# windows). So step_ratio draws one straight line per side with a shared slope and compares the
# two lines' levels at the change date, which is 1 for a trend without a jump. With more than 12
# months a side, the slope is the mean difference between months 12 apart on the same side, which
# a seasonal cycle does not bend. With 12 or fewer, it is the pooled within-side least-squares
# slope, which a seasonal cycle does bend. break_factor is the smaller of the two jumps when both
# ratios point the same way, and 1 when they disagree. It is infinite for a category that appears
# from no records or falls to none.
CATEGORY_BREAKS_SQL = f"""
    WITH changes AS (
        SELECT
            unnest($source_change_dates::DATE[]) AS change_date,
            unnest($source_change_notes::VARCHAR[]) AS change_note
    ),
    windows AS (
        SELECT *,
            (before_end - to_months($source_change_months))::DATE AS before_start,
            (after_start + to_months($source_change_months))::DATE AS after_end,
            datediff('month', before_end, after_start) / 2 AS change_position
        FROM (
            SELECT change_date, change_note,
                date_trunc('month', change_date)::DATE AS before_end,
                CASE WHEN day(change_date) = 1 THEN change_date
                     ELSE (date_trunc('month', change_date) + INTERVAL 1 MONTH)::DATE END AS after_start
            FROM changes
        )
    ),
    monthly AS (
        SELECT
            local_month::DATE AS month,
            CASE WHEN grouping(audit_category) = 1 THEN '{ALL}' ELSE audit_category END AS category,
            sum(records) AS records
        FROM audit.audit_crime_calendar
        WHERE local_month IS NOT NULL
        GROUP BY GROUPING SETS ((local_month, audit_category), (local_month))
    ),
    coverage AS (
        SELECT min(month) AS first_month, max(month) AS last_month FROM monthly
    ),
    categories AS (
        SELECT category FROM monthly UNION SELECT '{ALL}'
    ),
    window_months AS (
        SELECT change_date, month, month < before_end AS is_before,
            datediff('month', before_end, month) + 0.5 AS position
        FROM (
            SELECT change_date, before_end, after_start,
                unnest(generate_series(before_start, after_end - INTERVAL 1 MONTH, INTERVAL 1 MONTH))::DATE AS month
            FROM windows
        )
        WHERE month < before_end OR month >= after_start
    ),
    series AS (
        SELECT window_months.*, categories.category, coalesce(monthly.records, 0) AS records
        FROM window_months
        CROSS JOIN categories
        LEFT JOIN monthly ON monthly.month = window_months.month AND monthly.category = categories.category
    ),
    sides AS (
        SELECT change_date, category, is_before,
            sum(records) AS records, avg(records) AS mean_records, avg(position) AS mean_position,
            regr_sxx(records, position) AS sxx, regr_sxy(records, position) AS sxy
        FROM series
        GROUP BY ALL
    ),
    year_apart AS (
        SELECT later.change_date, later.category, avg(later.records - earlier.records) / 12 AS slope
        FROM series AS later
        JOIN series AS earlier ON earlier.change_date = later.change_date AND earlier.category = later.category
            AND earlier.is_before = later.is_before AND later.position - earlier.position = 12
        GROUP BY ALL
    ),
    pairs AS (
        SELECT
            before.change_date,
            before.category,
            before.records::BIGINT AS before_records,
            after.records::BIGINT AS after_records,
            before.mean_records AS before_mean,
            after.mean_records AS after_mean,
            coalesce(year_apart.slope, (before.sxy + after.sxy) / nullif(before.sxx + after.sxx, 0), 0)
                AS trend_per_month,
            before.mean_position AS before_position,
            after.mean_position AS after_position
        FROM sides AS before
        JOIN sides AS after ON after.change_date = before.change_date AND after.category = before.category
            AND before.is_before AND NOT after.is_before
        LEFT JOIN year_apart ON year_apart.change_date = before.change_date AND year_apart.category = before.category
    ),
    levels AS (
        SELECT pairs.*, windows.change_note, windows.change_position, windows.before_start, windows.after_end,
            greatest(before_mean + trend_per_month * (change_position - before_position), 0) AS before_level,
            greatest(after_mean + trend_per_month * (change_position - after_position), 0) AS after_level,
            coalesce(coverage.first_month <= windows.before_start
                     AND coverage.last_month >= windows.after_end - INTERVAL 1 MONTH, false) AS covered,
            coverage.first_month, coverage.last_month
        FROM pairs
        JOIN windows USING (change_date)
        CROSS JOIN coverage
    ),
    ratios AS (
        SELECT *,
            CASE WHEN before_mean > 0 THEN after_mean / before_mean
                 WHEN after_mean > 0 THEN 'infinity'::DOUBLE END AS mean_ratio,
            CASE WHEN before_level > 0 THEN after_level / before_level
                 WHEN after_level > 0 THEN 'infinity'::DOUBLE END AS step_ratio
        FROM levels
    ),
    factors AS (
        SELECT *,
            CASE
                WHEN mean_ratio > 1 AND step_ratio > 1 THEN least(mean_ratio, step_ratio)
                WHEN mean_ratio < 1 AND step_ratio < 1 THEN
                    CASE WHEN greatest(mean_ratio, step_ratio) = 0 THEN 'infinity'::DOUBLE
                         ELSE 1 / greatest(mean_ratio, step_ratio) END
                WHEN mean_ratio IS NOT NULL AND step_ratio IS NOT NULL THEN 1.0
            END AS break_factor,
            before_records + after_records >= $min_source_change_records AS enough_records
        FROM ratios
    )
    SELECT
        strftime(change_date, '%Y-%m-%d') AS change_date,
        category,
        before_records,
        after_records,
        before_mean,
        after_mean,
        mean_ratio,
        trend_per_month,
        step_ratio,
        break_factor,
        CASE WHEN break_factor > 1 AND mean_ratio > 1 THEN 'rise'
             WHEN break_factor > 1 THEN 'fall' ELSE 'none' END AS direction,
        CASE WHEN covered AND enough_records THEN break_factor END AS judged_break_factor,
        coalesce(covered AND enough_records AND break_factor > $max_source_change_factor, false) AS flagged,
        coalesce(CASE
            WHEN NOT covered THEN 'not judged: the data (' || coalesce(strftime(first_month, '%Y-%m'), 'none') || ' to '
                || coalesce(strftime(last_month, '%Y-%m'), 'none') || ') does not cover '
                || strftime(before_start, '%Y-%m') || ' to ' || strftime(after_end - INTERVAL 1 MONTH, '%Y-%m')
            WHEN NOT enough_records THEN 'not judged: fewer than ' || $min_source_change_records
                || ' records in the months compared'
        END, '') AS note,
        change_note
    FROM factors
    WHERE before_records + after_records > 0 OR category = '{ALL}'
    ORDER BY change_date, category <> '{ALL}', flagged DESC, break_factor DESC NULLS LAST, category
"""


def measure_category_breaks(connection: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> pd.DataFrame:
    """Measure each category's jump in monthly counts across every configured source change."""
    if not parameters["source_change_dates"]:
        raise ValueError("audit.source_changes is empty, so there is no change to measure: list the "
                         "known source-system changes there")
    return run_sql(connection, CATEGORY_BREAKS_SQL, parameters)


def describe_ratio(ratio: float) -> str:
    """Write a ratio of after to before, naming a category that appears from, or falls to, no records."""
    if math.isinf(ratio):
        return "from no records"
    if ratio == 0:
        return "to no records"
    return f"x{ratio:.2f}"


def summarize_category_breaks(frame: pd.DataFrame) -> dict[str, str]:
    """Name the categories flagged as possible definition changes, and the changes the data does not cover."""
    if frame.empty:
        return {"flagged_categories": "none", "changes_not_covered": "none"}

    flagged = frame[frame["flagged"]]
    named = [f"{row.category} at {row.change_date} ({describe_ratio(row.mean_ratio)}: {row.before_mean:.1f} to "
             f"{row.after_mean:.1f} records a month)" for row in flagged.itertuples()]

    uncovered = frame[frame["note"].str.startswith("not judged: the data")].drop_duplicates("change_date")
    notes = [f"{row.change_date}: {row.note.removeprefix('not judged: ')}" for row in uncovered.itertuples()]
    return {"flagged_categories": "; ".join(named) or "none", "changes_not_covered": "; ".join(notes) or "none"}


def skip_source_changes(jurisdiction: JurisdictionConfig) -> str | None:
    if not jurisdiction.audit.source_changes:
        return "audit.source_changes lists no known source-system change"
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
    AuditRule("crime_category_breaks", STAGED, "crime_category_breaks",
              "Categories whose monthly count jumps by more than audit.max_source_change_factor across a "
              "known source-system change: a possible definition change, not a trend (WARN).",
              measure_category_breaks, additional_deps=(CALENDAR,), skip_reason=skip_source_changes,
              summarize=summarize_category_breaks),
    AuditRule("crime_late_updates", STAGED, "crime_late_updates",
              "Lag between event time and update time, per event year (WARN).",
              sql_measure(LATE_UPDATES_SQL), additional_deps=("audit_crime_records",),
              skip_reason=unmapped("updated_on")),
)

# Weather, 311, boundaries and demographics.

WEATHER_STATIONS_SQL = """
    SELECT
        station,
        hours,
        hours_with_observation,
        hours_without_observation,
        hours_without_observation / hours AS missing_share,
        CASE WHEN station <> '(fallback)' THEN hours_without_observation / hours END AS station_missing_share,
        CASE WHEN station = '(fallback)' THEN hours_without_observation / hours END AS fallback_missing_share,
        CASE WHEN station = '(fallback)' THEN hours_with_observation END AS fallback_hours_with_observation,
        first_hour,
        last_hour
    FROM marts.weather_station_coverage
    WHERE hours > 0
    ORDER BY station_rank NULLS LAST, station
"""

# Runs of consecutive missing hours: the hour series of the mart has no holes, so the difference
# of two row numbers is constant within a run (gaps and islands).
WEATHER_GAPS_SQL = """
    WITH flagged AS (
        SELECT hour, weather_missing, precipitation_in, precipitation_is_trace,
            row_number() OVER (ORDER BY hour)
                - row_number() OVER (PARTITION BY weather_missing ORDER BY hour) AS run
        FROM marts.fct_hourly_weather
    ),
    gaps AS (
        SELECT min(hour) AS gap_start, count(*) AS gap_hours
        FROM flagged
        WHERE weather_missing
        GROUP BY run
    ),
    summary AS (
        SELECT
            (SELECT count(*) FROM flagged) AS hours,
            (SELECT count(*) FROM gaps) AS gaps,
            (SELECT coalesce(max(gap_hours), 0) FROM gaps) AS longest_gap_hours,
            (SELECT min(gap_start) FROM gaps WHERE gap_hours = (SELECT max(gap_hours) FROM gaps))
                AS longest_gap_start,
            (SELECT count(precipitation_in) FROM flagged) AS hours_with_precipitation,
            (SELECT count(*) FROM flagged WHERE precipitation_is_trace) AS trace_hours
    )
    SELECT *, trace_hours / nullif(hours_with_precipitation, 0) AS trace_share
    FROM summary
    WHERE hours > 0
"""

# A complete day has all 24 hourly precipitation values; other days disagree for lack of hours.
DAILY_PRECIPITATION_SQL = """
    SELECT
        station,
        count(*) AS days,
        count(*) FILTER (WHERE NOT agrees) AS disagreeing_days,
        count(*) FILTER (WHERE hours_with_precipitation >= 24) AS complete_days,
        count(*) FILTER (WHERE hours_with_precipitation >= 24 AND NOT agrees) AS complete_disagreeing_days,
        count(*) FILTER (WHERE hours_with_precipitation >= 24 AND NOT agrees)
            / nullif(count(*) FILTER (WHERE hours_with_precipitation >= 24), 0) AS disagreement_share,
        max(abs(difference_in)) AS max_difference_in
    FROM marts.weather_daily_precipitation_check
    GROUP BY station
    ORDER BY station
"""

REQUESTS_SQL = """
    WITH staged AS (
        SELECT
            request_type,
            count(*) AS records,
            count(*) FILTER (WHERE is_date_only) AS date_only_records,
            count(created_at_utc) FILTER (WHERE NOT is_date_only) AS timed_records,
            count(*) FILTER (WHERE NOT is_date_only
                             AND strftime(timezone($time_zone, timezone('UTC', created_at_utc)), '%H:%M:%S')
                                 = '00:00:00') AS midnight_records,
            count(*) FILTER (WHERE is_duplicate) AS duplicate_status_records
        FROM staging.stg_311__requests
        GROUP BY request_type
    ),
    raw_rows AS (
        SELECT request_type, count(*) AS raw_rows, count(*) FILTER (WHERE copies > 1) AS repeated_number_rows
        FROM (SELECT request_type, count(*) OVER (PARTITION BY request_type, trim(id)) AS copies
              FROM raw.service_requests
              WHERE nullif(trim(id), '') IS NOT NULL)
        GROUP BY request_type
    ),
    located AS (
        SELECT request_type, count(*) FILTER (WHERE quarantine_reason IS NOT NULL) AS unlocated_records
        FROM intermediate.int_requests__located
        GROUP BY request_type
    )
    SELECT
        staged.request_type,
        records,
        date_only_records,
        date_only_records / records AS date_only_share,
        timed_records,
        midnight_records,
        midnight_records / nullif(timed_records, 0) AS timed_midnight_share,
        CASE WHEN timed_records >= $min_category_records THEN midnight_records / timed_records END
            AS judged_midnight_share,
        coalesce(raw_rows, 0) AS raw_rows,
        coalesce(repeated_number_rows, 0) AS repeated_number_rows,
        repeated_number_rows / nullif(raw_rows, 0) AS repeated_number_share,
        duplicate_status_records,
        duplicate_status_records / records AS duplicate_status_share,
        coalesce(unlocated_records, 0) AS unlocated_records,
        coalesce(unlocated_records, 0) / records AS unlocated_share
    FROM staged
    LEFT JOIN raw_rows ON raw_rows.request_type = staged.request_type
    LEFT JOIN located ON located.request_type = staged.request_type
    ORDER BY records DESC, staged.request_type
"""

BOUNDARIES_SQL = """
    WITH staged AS (
        SELECT
            layer,
            count(*) AS delivered_features,
            count(*) FILTER (WHERE was_repaired) AS repaired_features,
            count(*) FILTER (WHERE quarantine_reason IS NOT NULL) AS quarantined_features
        FROM staging.stg_boundaries__features
        GROUP BY layer
    ),
    usable AS (
        SELECT layer, count(*) AS features, sum(area_km2) AS area_km2
        FROM marts.dim_boundaries
        GROUP BY layer
    )
    SELECT
        staged.layer,
        delivered_features,
        repaired_features,
        repaired_features / delivered_features AS repaired_share,
        quarantined_features,
        coalesce(usable.features, 0) AS features,
        usable.area_km2,
        coalesce(shared.overlapping_pairs, 0) AS overlapping_pairs,
        coalesce(shared.overlap_m2, 0.0) AS overlap_m2,
        coalesce(shared.overlap_m2, 0.0) / nullif(usable.area_km2 * 1e6, 0) AS overlap_share
    FROM staged
    LEFT JOIN usable ON usable.layer = staged.layer
    LEFT JOIN marts.boundary_overlaps AS shared ON shared.layer = staged.layer
    ORDER BY staged.layer
"""

# Each group count, and their sum, may not exceed the population (a small tolerance absorbs
# rounding of fractional counts). Income far above its table's median looks like an area total.
DEMOGRAPHIC_ROWS_SQL = """
    WITH typed AS (
        SELECT *,
            median(per_capita_income) OVER (PARTITION BY table_name) AS median_income,
            nh_white + nh_black + hispanic + nh_asian + coalesce(other, 0) AS groups_sum
        FROM staging.stg_demographics__rows
    )
    SELECT
        table_name,
        layer,
        count(*) AS rows,
        count(*) FILTER (WHERE population < 0) AS negative_population_rows,
        count(*) FILTER (WHERE least(nh_white, nh_black, hispanic, nh_asian, other) < 0) AS negative_count_rows,
        count(*) FILTER (WHERE greatest(nh_white, nh_black, hispanic, nh_asian, other) > population + 1e-6
                         OR groups_sum > population * (1 + 1e-6) + 1e-6) AS groups_above_population_rows,
        count(*) FILTER (WHERE poverty_percent < 0 OR poverty_percent > 100) AS poverty_out_of_range_rows,
        any_value(median_income) AS median_per_capita_income,
        max(per_capita_income) AS max_per_capita_income,
        count(*) FILTER (WHERE per_capita_income > $max_income_to_median_ratio * median_income)
            AS sum_like_income_rows,
        coalesce(string_agg(area_id, ', ' ORDER BY area_id)
                 FILTER (WHERE per_capita_income > $max_income_to_median_ratio * median_income), '')
            AS sum_like_income_areas
    FROM typed
    GROUP BY table_name, layer
    ORDER BY table_name
"""

SHARES = ("nh_white_share", "nh_black_share", "hispanic_share", "nh_asian_share", "other_share")
CELL_DEMOGRAPHICS_SQL = f"""
    SELECT
        count(*) AS cells,
        count(population) AS cells_with_population,
        count(*) FILTER (WHERE population < 0) AS negative_population_cells,
        count(*) FILTER (WHERE least({", ".join(SHARES)}) < 0 OR greatest({", ".join(SHARES)}) > 1 + 1e-9)
            AS share_out_of_range_cells,
        min(least({", ".join(SHARES)})) AS min_share,
        max(greatest({", ".join(SHARES)})) AS max_share,
        count(*) FILTER (WHERE poverty_percent < 0 OR poverty_percent > 100) AS poverty_out_of_range_cells
    FROM marts.dim_cell_demographics
"""


# Every month from the first to the last request, so that a month without any request still
# shows a type vanishing.
REQUEST_MONTHS_SQL = """
    WITH counts AS (
        SELECT date_trunc('month', created_date) AS local_month, request_type, count(*) AS records
        FROM staging.stg_311__requests
        WHERE created_date IS NOT NULL
        GROUP BY 1, 2
    ),
    months AS (
        SELECT unnest(generate_series(min(local_month), max(local_month), INTERVAL 1 MONTH)) AS local_month
        FROM counts
    )
    SELECT months.local_month, types.request_type AS category, coalesce(counts.records, 0) AS records
    FROM months
    CROSS JOIN (SELECT DISTINCT request_type FROM counts) AS types
    LEFT JOIN counts ON counts.local_month = months.local_month AND counts.request_type = types.request_type
"""


def measure_request_volume(connection: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> pd.DataFrame:
    monthly = connection.sql(REQUEST_MONTHS_SQL).df()
    volume = category_volume(monthly, parameters["drift_baseline_months"], parameters["min_request_volume_records"])
    return volume.rename(columns={"category": "request_type"})


def measure_boundaries(connection: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> pd.DataFrame:
    """Per layer counts and overlap, with the configured feature count where the layer has one."""
    frame = run_sql(connection, BOUNDARIES_SQL, parameters)

    expected = parameters.get("boundary_expected_features", {})
    targets = [expected.get(layer) for layer in frame["layer"]]
    differences = [None if target is None else int(features) - target
                   for features, target in zip(frame["features"], targets, strict=True)]
    frame["expected_features"] = pd.array(targets, dtype="Int64")
    frame["feature_count_difference"] = pd.array(differences, dtype="Int64")
    return frame


def skip_requests(jurisdiction: JurisdictionConfig) -> str | None:
    if not jurisdiction.service_requests:
        return "the jurisdiction has no 311 source"
    return None


def skip_boundaries(jurisdiction: JurisdictionConfig) -> str | None:
    if not jurisdiction.boundaries.layers:
        return "the jurisdiction has no boundary layers"
    return None


def skip_demographics(jurisdiction: JurisdictionConfig) -> str | None:
    if jurisdiction.demographics is None or not jurisdiction.demographics.tables:
        return "the jurisdiction has no demographic tables"
    return None


SOURCE_RULES: tuple[AuditRule, ...] = (
    AuditRule("weather_station_coverage", "weather_station_coverage", "weather_station_coverage",
              "Hours without a report per station and after the fallback between stations (WARN).",
              sql_measure(WEATHER_STATIONS_SQL), skip_reason=skip_weather),
    AuditRule("hourly_weather_gaps", "fct_hourly_weather", "hourly_weather_gaps",
              "Longest run of hours without weather, and the share of trace precipitation (WARN).",
              sql_measure(WEATHER_GAPS_SQL), skip_reason=skip_weather),
    AuditRule("weather_daily_precipitation", "weather_daily_precipitation_check", "weather_daily_precipitation",
              "Hourly precipitation summed per day against the summary-of-day total, per station (WARN).",
              sql_measure(DAILY_PRECIPITATION_SQL), skip_reason=skip_weather),
    AuditRule("service_request_quality", "stg_311__requests", "service_request_quality",
              "Per 311 request type: date-only records, repeated request numbers, duplicate status and "
              "unlocated share (WARN).",
              sql_measure(REQUESTS_SQL), additional_deps=("raw_service_requests", "int_requests__located"),
              skip_reason=skip_requests),
    AuditRule("service_request_volume", "stg_311__requests", "service_request_volume",
              "311 request types that vanish or appear from one month to the next (WARN).",
              measure_request_volume, skip_reason=skip_requests),
    AuditRule("boundary_layer_quality", "dim_boundaries", "boundary_layer_quality",
              "Per boundary layer: repaired and quarantined geometries, overlap area as a share of the "
              "layer, and the configured feature count (WARN).",
              measure_boundaries, additional_deps=("stg_boundaries__features", "boundary_overlaps"),
              skip_reason=skip_boundaries),
    AuditRule("demographic_rows", "stg_demographics__rows", "demographic_rows",
              "Demographic table rows: populations and counts not negative, group counts within the "
              "population, poverty within 0-100, per-capita income that looks like a sum (WARN).",
              sql_measure(DEMOGRAPHIC_ROWS_SQL), skip_reason=skip_demographics),
    AuditRule("cell_demographics", "dim_cell_demographics", "cell_demographics",
              "Cell demographics: group shares within [0, 1] and populations not negative (WARN).",
              sql_measure(CELL_DEMOGRAPHICS_SQL), skip_reason=skip_demographics),
)

WEATHER_RULES: tuple[AuditRule, ...] = (
    AuditRule("hourly_weather_drift_audit", "fct_hourly_weather", "fct_hourly_weather",
              "Plausible ranges of hourly weather values (WARN: weather is optional input).",
              measure_weather_ranges, skip_reason=skip_weather),
    AuditRule("hourly_weather_coverage", "fct_hourly_weather", "hourly_weather_coverage",
              "Hours without a routine weather report, and suspect values (WARN).",
              sql_measure(WEATHER_COVERAGE_SQL), skip_reason=skip_weather),
)

ALL_RULES: tuple[AuditRule, ...] = CRIME_RULES + WEATHER_RULES + SOURCE_RULES


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
