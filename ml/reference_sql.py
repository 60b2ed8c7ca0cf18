"""The earlier tool's way of building cell-hour features, in DuckDB SQL, kept as a reference for ``ml.features``.

The earlier tool made a spine of every cell and hour with ``generate_series``. It filled each
column of each spine row with a correlated subquery, such as ``SELECT sum(...) FROM crimes WHERE
cell_id = spine.cell_id AND hour in the row's window`` for a crime lag, or a count over the
weather table for the row's precipitation history. This module writes that approach for a subset
of the panel's columns, so tests can check it against ``build_cell_hour_features`` value for
value and ``benchmarks/compare_features.py`` can time it. DuckDB 1.4 plans each correlated
subquery as a join (its EXPLAIN shows a ``DELIM_JOIN``), so the timing is that of DuckDB's plan,
not of a row-by-row loop.

Covered columns (``sql_columns``): the crime lag counts per group, ``all_crime_7d``,
``hours_since_<target>``, ``history_incomplete``, the labels, the four weather levels of the
previous hour with their ``_missing`` indicators, the temperature changes, and the
precipitation history (``precipitation_hours_<days>d``, ``hours_since_precipitation`` and
their indicators). Not covered: neighbour means, 311 counts, calendar and cell columns.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl

from ml.feature_registry import (
    CRIME_LAG_DAYS,
    HOURS_SINCE_CAP,
    PRECIPITATION_HISTORY_DAYS,
    PRECIPITATION_SINCE_CAP,
    TEMPERATURE_CHANGE_DAYS,
    WEATHER_IMPUTATION,
    WEATHER_LEVELS,
    FeatureLayout,
    label_column,
)
from ml.features import LOOKBACK_HOURS, UNMAPPED_CATEGORY, FeatureInputs

WEATHER_SCHEMA = {"hour": pl.Datetime("us"), **{name: pl.Float64 for name in WEATHER_LEVELS},
                  "precipitation_is_trace": pl.Boolean}


def sql_columns(layout: FeatureLayout) -> list[str]:
    """Names of the panel columns that ``sql_cell_hour_features`` builds, keys first."""
    names = ["cell_id", "hour"]
    names += [f"{group}_{days}d" for group in layout.groups for days in CRIME_LAG_DAYS]
    names += ["all_crime_7d", *[f"hours_since_{target}" for target in layout.targets], "history_incomplete"]
    for name in WEATHER_LEVELS:
        names += [name, f"{name}_missing"]
    for days in TEMPERATURE_CHANGE_DAYS:
        names += [f"temperature_change_{days}d", f"temperature_change_{days}d_missing"]
    for days in PRECIPITATION_HISTORY_DAYS:
        names += [f"precipitation_hours_{days}d", f"precipitation_hours_{days}d_missing"]
    names += ["hours_since_precipitation", "hours_since_precipitation_missing"]
    return names + [label_column(target) for target in layout.targets]


def quoted(values: list[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def crime_count(groups: list[str], lower: str, upper: str) -> str:
    """Correlated subquery: incidents of ``groups`` in the spine row's cell with ``lower <= hour < upper``."""
    return (f"(SELECT coalesce(sum(k.incidents), 0) FROM crimes k WHERE k.cell_id = s.cell_id "
            f"AND k.crime_group IN ({quoted(groups)}) AND k.hour >= {lower} AND k.hour < {upper})")


def weather_count(condition: str, hours: int) -> str:
    """Correlated subquery: weather hours in the ``hours`` before the spine row's hour that meet ``condition``."""
    return (f"(SELECT count(*) FROM weather w WHERE w.hour >= s.hour - INTERVAL {hours} HOUR "
            f"AND w.hour < s.hour AND {condition})")


def inner_select(layout: FeatureLayout) -> list[str]:
    """Per spine row: raw counts and previous-hour weather, before imputation."""
    observed = "w.precipitation_in IS NOT NULL"
    wet = f"{observed} AND (w.precipitation_in > 0 OR coalesce(w.precipitation_is_trace, false))"
    items = ["s.cell_id", "s.hour"]
    for group in layout.groups:
        for days in CRIME_LAG_DAYS:
            items.append(f"{crime_count([group], f's.hour - INTERVAL {days * 24} HOUR', 's.hour')} "
                         f"AS \"{group}_{days}d\"")
    categories = sorted(set(layout.categories) | {UNMAPPED_CATEGORY})
    items.append(f"{crime_count(categories, 's.hour - INTERVAL 168 HOUR', 's.hour')} AS all_crime_7d")
    for target in layout.targets:
        items.append(
            f"(SELECT max(k.hour) FROM crimes k WHERE k.cell_id = s.cell_id AND k.crime_group = {quoted([target])} "
            f"AND k.hour >= s.hour - INTERVAL {HOURS_SINCE_CAP} HOUR AND k.hour < s.hour) AS \"last_{target}\"")
        items.append(f"{crime_count([target], 's.hour', 's.hour + INTERVAL 1 HOUR')} AS \"{label_column(target)}\"")

    for name in WEATHER_LEVELS:
        items.append(f"(SELECT w.{name} FROM weather w WHERE w.hour = s.hour - INTERVAL 1 HOUR) AS {name}")
    for days in TEMPERATURE_CHANGE_DAYS:
        items.append(f"(SELECT w.temperature_f FROM weather w WHERE w.hour = s.hour - INTERVAL {1 + days * 24} HOUR) "
                     f"AS temperature_before_{days}d")
    for days in PRECIPITATION_HISTORY_DAYS:
        items.append(f"{weather_count(observed, days * 24)} AS seen_{days}d")
        items.append(f"{weather_count(wet, days * 24)} AS rained_{days}d")
    items.append(f"(SELECT max(w.hour) FROM weather w WHERE w.hour >= s.hour - INTERVAL {PRECIPITATION_SINCE_CAP} HOUR "
                 f"AND w.hour < s.hour AND {wet}) AS last_wet")
    items.append(f"{weather_count(observed, PRECIPITATION_SINCE_CAP)} AS seen_since")
    return items


def outer_select(layout: FeatureLayout, data_start: datetime) -> list[str]:
    """Per spine row: the panel columns, with the caps, imputations and indicators of the registry."""
    items = ["cell_id", "hour"]
    items += [f"\"{group}_{days}d\"" for group in layout.groups for days in CRIME_LAG_DAYS]
    items.append("all_crime_7d")
    for target in layout.targets:
        items.append(f"coalesce(least(date_diff('hour', \"last_{target}\", hour), {HOURS_SINCE_CAP}), "
                     f"{HOURS_SINCE_CAP}) AS \"hours_since_{target}\"")
    items.append(f"hour - INTERVAL {LOOKBACK_HOURS} HOUR < TIMESTAMP '{data_start.isoformat(sep=' ')}' "
                 f"AS history_incomplete")

    for name, imputed in WEATHER_IMPUTATION.items():
        items += [f"coalesce({name}, {imputed}) AS {name}", f"{name} IS NULL AS {name}_missing"]
    for days in TEMPERATURE_CHANGE_DAYS:
        change = f"temperature_f - temperature_before_{days}d"
        items += [f"coalesce({change}, 0.0) AS temperature_change_{days}d",
                  f"{change} IS NULL AS temperature_change_{days}d_missing"]
    for days in PRECIPITATION_HISTORY_DAYS:
        window = days * 24
        items += [f"CASE WHEN seen_{days}d * 2 < {window} THEN 0.0 ELSE rained_{days}d * {window} / seen_{days}d END "
                  f"AS precipitation_hours_{days}d",
                  f"seen_{days}d * 2 < {window} AS precipitation_hours_{days}d_missing"]
    cap = PRECIPITATION_SINCE_CAP
    items += [f"CASE WHEN seen_since = 0 THEN {cap} "
              f"ELSE coalesce(least(date_diff('hour', last_wet, hour), {cap}), {cap}) END AS hours_since_precipitation",
              "seen_since = 0 AS hours_since_precipitation_missing"]
    return items + [f"\"{label_column(target)}\"" for target in layout.targets]


def feature_query(layout: FeatureLayout, start: datetime, end: datetime) -> str:
    """Compose the query: a cell x hour spine from ``generate_series`` and one subquery per column."""
    data_start = datetime(layout.data_start.year, layout.data_start.month, layout.data_start.day)
    last_hour = naive_utc(end) - timedelta(hours=1)
    return (
        "WITH spine AS (\n"
        "  SELECT c.cell_id, h.generate_series AS hour FROM cells c,\n"
        f"  generate_series(TIMESTAMP '{naive_utc(start).isoformat(sep=' ')}', "
        f"TIMESTAMP '{last_hour.isoformat(sep=' ')}', INTERVAL 1 HOUR) h\n"
        "),\n"
        "counted AS (\n  SELECT " + ",\n    ".join(inner_select(layout)) + "\n  FROM spine s\n)\n"
        "SELECT " + ",\n  ".join(outer_select(layout, data_start)) + "\nFROM counted ORDER BY hour, cell_id"
    )


def naive_utc(moment: datetime) -> datetime:
    """UTC wall-clock time without a zone, the form the query compares (DuckDB TIMESTAMP)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def sql_cell_hour_features(inputs: FeatureInputs, layout: FeatureLayout, start: datetime, end: datetime,
                           threads: int | None = None) -> pl.DataFrame:
    """Build the ``sql_columns(layout)`` of ``[start, end)`` with one DuckDB query, sorted by hour then cell.

    ``start`` and ``end`` must carry a time zone. ``threads`` limits DuckDB's thread pool (None keeps
    DuckDB's default of one thread per core).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"feature window {start} to {end} has no time zone: pass UTC datetimes")
    cells = inputs.cells.select("cell_id")
    crimes = inputs.crime_counts.select("cell_id", pl.col("hour").dt.replace_time_zone(None), "crime_group",
                                        "incidents")
    weather = inputs.weather
    if weather is None:
        weather = pl.DataFrame(schema=WEATHER_SCHEMA)
    elif "precipitation_is_trace" not in weather.columns:
        weather = weather.with_columns(pl.lit(False).alias("precipitation_is_trace"))
    weather = weather.select(pl.col("hour").dt.replace_time_zone(None), *WEATHER_LEVELS, "precipitation_is_trace")

    with duckdb.connect() as connection:
        if threads is not None:
            connection.execute(f"SET threads = {int(threads)}")
        connection.register("cells", cells.to_arrow())
        connection.register("crimes", crimes.to_arrow())
        connection.register("weather", weather.to_arrow())
        frame = connection.sql(feature_query(layout, start, end)).pl()
    return frame.with_columns(pl.col("hour").dt.replace_time_zone("UTC"))
