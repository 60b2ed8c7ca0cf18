"""Hourly cell features for crime-risk forecasting, built with polars and numpy.

A feature row for cell ``c`` and UTC hour ``h`` describes the state of the city at the START of
hour ``h``: it uses only events and observations before ``h``. Lag windows cover ``[h - w, h)`` and
never include hour ``h`` itself. Weather is that of hour ``h - 1``, the last complete hour, and 311
counts come from local days before the hour's local date. The row also carries one label column
per target, ``label_<target>``: the number of the target's incidents in hour ``h``. Labels are
never model inputs.

Every column is defined in ``ml.feature_registry``, with its missing-value policy. The arrays are
laid out ``[hour, cell]`` so that trailing windows are differences of cumulative sums, and
neighbour means are one sparse product per window (queen contiguity from ``marts.dim_cell_neighbours``;
spatial lags as in Anselin 1988, "Spatial Econometrics: Methods and Models", Kluwer).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import holidays
import numpy as np
import polars as pl
from scipy import sparse

from ml.feature_registry import (
    CALENDAR_COLUMNS,
    CRIME_LAG_DAYS,
    KEY_COLUMNS,
    HOURS_SINCE_CAP,
    PRECIPITATION_HISTORY_DAYS,
    PRECIPITATION_SINCE_CAP,
    REQUEST_LAG_DAYS,
    TEMPERATURE_CHANGE_DAYS,
    WEATHER_IMPUTATION,
    WEATHER_LEVELS,
    FeatureLayout,
    label_column,
    panel_schema,
)

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
LOOKBACK_HOURS = max(CRIME_LAG_DAYS) * 24
WEATHER_LOOKBACK_HOURS = max(max(TEMPERATURE_CHANGE_DAYS) * 24, PRECIPITATION_SINCE_CAP) + 1
REQUEST_LOOKBACK_DAYS = max(REQUEST_LAG_DAYS)
UNMAPPED_CATEGORY = "unknown"
NUMPY_TYPES = {pl.Int8: np.int8, pl.Int16: np.int16, pl.Int32: np.int32, pl.Float32: np.float32,
               pl.Boolean: np.bool_}


@dataclass(frozen=True)
class FeatureInputs:
    """Warehouse rows a feature window needs.

    - ``cells``: cell_id, area_km2, population (null where unknown), one row per cell;
    - ``neighbours``: cell_id, neighbour_id pairs, both directions;
    - ``crime_counts``: sparse cell_id, hour (UTC), crime_group, incidents, covering
      ``[start - LOOKBACK_HOURS, end)``;
    - ``weather``: hour (UTC) with the four weather levels and precipitation_is_trace (NULL where
      unobserved), covering ``[start - WEATHER_LOOKBACK_HOURS, end)``; None when the jurisdiction
      has no weather;
    - ``requests``: sparse cell_id, local_date, request_type, requests, covering local dates from
      ``REQUEST_LOOKBACK_DAYS`` before the window's first local date; None without 311 data.
    """

    cells: pl.DataFrame
    neighbours: pl.DataFrame
    crime_counts: pl.DataFrame
    weather: pl.DataFrame | None = None
    requests: pl.DataFrame | None = None


def hour_range(start: datetime, end: datetime) -> pl.Series:
    """UTC hour starts in ``[start, end)`` as a polars Datetime series."""
    return pl.datetime_range(start, end - HOUR, interval="1h", time_zone="UTC", eager=True,
                             time_unit="us").alias("hour")


def holiday_dates(country: str, subdivision: str | None, years: Iterable[int]) -> list[date]:
    calendar = holidays.country_holidays(country, subdiv=subdivision, years=list(years))
    return sorted(calendar.keys())


def calendar_features(hours: pl.Series, time_zone: str, country: str,
                      subdivision: str | None) -> pl.DataFrame:
    """Local hour of day, day of week (0 = Monday), month and holiday flag for UTC hours."""
    local = hours.dt.convert_time_zone(time_zone)
    years = range(local.dt.year().min() or 2000, (local.dt.year().max() or 2000) + 1)
    holiday_list = holiday_dates(country, subdivision, years)
    return pl.DataFrame({
        "hour": hours,
        "local_hour": local.dt.hour().cast(pl.Int8),
        "day_of_week": (local.dt.weekday() - 1).cast(pl.Int8),
        "month": local.dt.month().cast(pl.Int8),
        "is_holiday": local.dt.date().is_in(pl.Series(holiday_list, dtype=pl.Date).implode()),
    })


def hours_between(first: datetime, second: datetime) -> int:
    return int((second - first) / HOUR)


def dense_group_counts(counts: pl.DataFrame, names: list[str], cells: list[str], first_hour: datetime,
                       n_hours: int) -> np.ndarray:
    """Scatter sparse (cell_id, hour, crime_group, incidents) rows into a [group, hour, cell] array."""
    array = np.zeros((len(names), n_hours, len(cells)), dtype=np.int32)
    if counts.height == 0:
        return array

    cell_index = pl.DataFrame({"cell_id": cells, "cell_index": np.arange(len(cells), dtype=np.int32)})
    group_index = pl.DataFrame({"crime_group": names, "group_index": np.arange(len(names), dtype=np.int32)})
    indexed = (
        counts.join(cell_index, on="cell_id", how="inner")
        .join(group_index, on="crime_group", how="inner")
        .with_columns((pl.col("hour") - pl.lit(first_hour)).dt.total_hours().alias("hour_index"))
        .filter((pl.col("hour_index") >= 0) & (pl.col("hour_index") < n_hours))
    )
    np.add.at(array, (indexed["group_index"].to_numpy(), indexed["hour_index"].to_numpy(),
                      indexed["cell_index"].to_numpy()), indexed["incidents"].to_numpy())
    return array


def prefix_sums(array: np.ndarray) -> np.ndarray:
    """Cumulative sums along the first axis with a leading zero row: ``prefix[k]`` sums rows ``[0, k)``."""
    prefix = np.zeros((array.shape[0] + 1, *array.shape[1:]), dtype=np.int32)
    np.cumsum(array, axis=0, out=prefix[1:])
    return prefix


def window_sums(prefix: np.ndarray, window: int, first_output: int) -> np.ndarray:
    """Sum of rows ``[k - window, k)`` for every output row ``k >= first_output``, from ``prefix_sums``."""
    rows = np.arange(first_output, prefix.shape[0] - 1)
    return prefix[rows] - prefix[np.maximum(rows - window, 0)]


def trailing_sums(array: np.ndarray, window: int, first_output: int) -> np.ndarray:
    """Sum of rows ``[k - window, k)`` for every output row ``k >= first_output``."""
    return window_sums(prefix_sums(array), window, first_output)


def hours_since_last(array: np.ndarray, first_output: int, cap: int) -> np.ndarray:
    """Hours from the last row before ``k`` with a non-zero value to row ``k``, capped at ``cap``."""
    n_rows = array.shape[0]
    shape = (n_rows, *array.shape[1:])
    index = np.where(array > 0, np.arange(n_rows).reshape(-1, *([1] * (array.ndim - 1))), -(10**9))
    last_at_or_before = np.maximum.accumulate(np.broadcast_to(index, shape), axis=0)
    rows = np.arange(first_output, n_rows)
    if first_output > 0:
        last_before = last_at_or_before[rows - 1]
    else:
        last_before = np.full((len(rows), *array.shape[1:]), -(10**9))
    since = rows.reshape(-1, *([1] * (array.ndim - 1))) - last_before
    return np.minimum(since, cap).astype(np.float32)


def neighbour_matrix(neighbours: pl.DataFrame, cells: list[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Row-normalised adjacency (each row averages a cell's neighbours) and each cell's neighbour count."""
    position = {cell: index for index, cell in enumerate(cells)}
    pairs = [(position[a], position[b]) for a, b in neighbours.select("cell_id", "neighbour_id").iter_rows()
             if a in position and b in position and a != b]
    n_cells = len(cells)
    if not pairs:
        return sparse.csr_matrix((n_cells, n_cells), dtype=np.float32), np.zeros(n_cells, dtype=np.int16)
    rows, columns = np.array(pairs, dtype=np.int64).T
    adjacency = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)),
                                  shape=(n_cells, n_cells))
    adjacency.data[:] = 1.0
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    scale = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    return sparse.diags(scale.astype(np.float32)) @ adjacency, degree.astype(np.int16)


def counted_groups(layout: FeatureLayout) -> list[str]:
    """Return the crime groups the builder reads: tracked groups, categories and unmapped codes."""
    return sorted(set(layout.groups) | set(layout.categories) | {UNMAPPED_CATEGORY})


def crime_columns(inputs: FeatureInputs, layout: FeatureLayout, cells: list[str], start: datetime,
                  end: datetime) -> dict[str, np.ndarray]:
    """Lagged counts per group, all-crime count, near-repeat hours, neighbour means and labels."""
    first_hour = start - LOOKBACK_HOURS * HOUR
    n_hours = hours_between(first_hour, end)
    all_names = counted_groups(layout)
    counts = dense_group_counts(inputs.crime_counts, all_names, cells, first_hour, n_hours)
    index = {name: position for position, name in enumerate(all_names)}
    weights, degree = neighbour_matrix(inputs.neighbours, cells)

    columns: dict[str, np.ndarray] = {}
    for group in layout.groups:
        prefix = prefix_sums(counts[index[group]])
        for days in CRIME_LAG_DAYS:
            columns[f"{group}_{days}d"] = window_sums(prefix, days * 24, LOOKBACK_HOURS)

    categories = [index[name] for name in sorted(set(layout.categories) | {UNMAPPED_CATEGORY})]
    columns["all_crime_7d"] = trailing_sums(counts[categories].sum(axis=0), 168, LOOKBACK_HOURS)

    for target in layout.targets:
        columns[f"hours_since_{target}"] = hours_since_last(counts[index[target]], LOOKBACK_HOURS,
                                                            HOURS_SINCE_CAP)
    for target in layout.targets:
        for days in CRIME_LAG_DAYS:
            own = columns[f"{target}_{days}d"].astype(np.float32)
            columns[f"nbr_{target}_{days}d"] = np.asarray((weights @ own.T).T, dtype=np.float32)
            columns[f"nbr_{target}_{days}d_missing"] = np.broadcast_to(degree == 0, own.shape)
    for target in layout.targets:
        columns[label_column(target)] = counts[index[target], LOOKBACK_HOURS:]

    n_out = n_hours - LOOKBACK_HOURS
    data_start = datetime.combine(layout.data_start, datetime.min.time(), tzinfo=timezone.utc)
    lookback_start = np.array([start + (k - LOOKBACK_HOURS) * HOUR < data_start for k in range(n_out)])
    columns["history_incomplete"] = np.broadcast_to(lookback_start[:, None], (n_out, len(cells)))
    columns["neighbour_count"] = np.broadcast_to(degree, (n_out, len(cells)))
    return columns


def hourly_weather(weather: pl.DataFrame | None, first_hour: datetime, n_hours: int) -> dict[str, np.ndarray]:
    """Weather levels as float arrays over ``n_hours`` hours from ``first_hour`` (NaN where unobserved)."""
    levels = {name: np.full(n_hours, np.nan, dtype=np.float64) for name in WEATHER_LEVELS}
    levels["precipitation_is_trace"] = np.zeros(n_hours, dtype=np.float64)
    if weather is None or weather.height == 0:
        return levels

    rows = weather.with_columns((pl.col("hour") - pl.lit(first_hour)).dt.total_hours().alias("hour_index"))
    rows = rows.filter((pl.col("hour_index") >= 0) & (pl.col("hour_index") < n_hours))
    positions = rows["hour_index"].to_numpy()
    for name in WEATHER_LEVELS:
        levels[name][positions] = rows[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
    trace = rows["precipitation_is_trace"].cast(pl.Float64).fill_null(0.0).to_numpy() \
        if "precipitation_is_trace" in rows.columns else np.zeros(len(positions))
    levels["precipitation_is_trace"][positions] = trace
    return levels


def window_counts(flags: np.ndarray, positions: np.ndarray, window: int) -> np.ndarray:
    """Number of true flags in ``[p - window, p)`` for each position ``p``."""
    prefix = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return prefix[positions] - prefix[np.maximum(positions - window, 0)]


def weather_columns(weather: pl.DataFrame | None, start: datetime, end: datetime) -> dict[str, np.ndarray]:
    """Per-hour weather inputs (levels, changes, precipitation history) with their indicators."""
    first_hour = start - WEATHER_LOOKBACK_HOURS * HOUR
    n_hours = hours_between(first_hour, end)
    series = hourly_weather(weather, first_hour, n_hours)
    positions = np.arange(WEATHER_LOOKBACK_HOURS, n_hours)
    previous = positions - 1

    columns: dict[str, np.ndarray] = {}
    for name, imputed in WEATHER_IMPUTATION.items():
        values = series[name][previous]
        columns[f"{name}_missing"] = np.isnan(values)
        columns[name] = np.where(np.isnan(values), imputed, values)

    temperature = series["temperature_f"]
    for days in TEMPERATURE_CHANGE_DAYS:
        change = temperature[previous] - temperature[previous - days * 24]
        columns[f"temperature_change_{days}d_missing"] = np.isnan(change)
        columns[f"temperature_change_{days}d"] = np.nan_to_num(change, nan=0.0)

    observed = ~np.isnan(series["precipitation_in"])
    wet = observed & ((np.nan_to_num(series["precipitation_in"]) > 0) | (series["precipitation_is_trace"] > 0))
    for days in PRECIPITATION_HISTORY_DAYS:
        window = days * 24
        seen = window_counts(observed, positions, window)
        rained = window_counts(wet, positions, window)
        scaled = np.divide(rained * window, seen, out=np.zeros(len(positions)), where=seen > 0)
        columns[f"precipitation_hours_{days}d_missing"] = seen * 2 < window
        columns[f"precipitation_hours_{days}d"] = np.where(seen * 2 < window, 0.0, scaled)

    since = hours_since_last(wet.astype(np.int8), WEATHER_LOOKBACK_HOURS, PRECIPITATION_SINCE_CAP)
    unseen = window_counts(observed, positions, PRECIPITATION_SINCE_CAP) == 0
    columns["hours_since_precipitation_missing"] = unseen
    columns["hours_since_precipitation"] = np.where(unseen, float(PRECIPITATION_SINCE_CAP), since)
    return columns


def request_columns(requests: pl.DataFrame | None, layout: FeatureLayout, cells: list[str],
                    local_dates: np.ndarray) -> dict[str, np.ndarray]:
    """311 counts per type over the local days before each hour's local date, with indicators."""
    if not layout.request_types:
        return {}
    first_day = local_dates.min() - np.timedelta64(REQUEST_LOOKBACK_DAYS, "D")
    n_days = int((local_dates.max() - first_day) / np.timedelta64(1, "D")) + 1
    array = np.zeros((len(layout.request_types), n_days, len(cells)), dtype=np.int32)
    if requests is not None and requests.height:
        cell_index = pl.DataFrame({"cell_id": cells, "cell_index": np.arange(len(cells), dtype=np.int32)})
        type_index = pl.DataFrame({"request_type": list(layout.request_types),
                                   "type_index": np.arange(len(layout.request_types), dtype=np.int32)})
        indexed = (
            requests.join(cell_index, on="cell_id", how="inner").join(type_index, on="request_type", how="inner")
            .with_columns((pl.col("local_date") - pl.lit(first_day.astype(object))).dt.total_days().alias("day_index"))
            .filter((pl.col("day_index") >= 0) & (pl.col("day_index") < n_days))
        )
        np.add.at(array, (indexed["type_index"].to_numpy(), indexed["day_index"].to_numpy(),
                          indexed["cell_index"].to_numpy()), indexed["requests"].to_numpy())

    empty_day = array.sum(axis=(0, 2)) == 0
    day_of_hour = ((local_dates - first_day) / np.timedelta64(1, "D")).astype(np.int64)
    columns: dict[str, np.ndarray] = {}
    for position, request_type in enumerate(layout.request_types):
        prefix = prefix_sums(array[position])
        for days in REQUEST_LAG_DAYS:
            sums = window_sums(prefix, days, 0)
            missing = window_counts(empty_day, np.arange(n_days), days) > 0
            columns[f"requests_{request_type}_{days}d"] = sums[day_of_hour]
            columns[f"requests_{request_type}_{days}d_missing"] = np.broadcast_to(
                missing[day_of_hour][:, None], (len(day_of_hour), len(cells)))
    return columns


def cell_columns(cells_frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Area and population per cell (population imputed with the median where unknown)."""
    population = cells_frame["population"].cast(pl.Float64)
    known = population.drop_nulls()
    median = float(known.median()) if known.len() else 0.0
    return {
        "area_km2": cells_frame["area_km2"].cast(pl.Float64).to_numpy(),
        "population_missing": population.is_null().to_numpy(),
        "population": population.fill_null(median).to_numpy(),
    }


def build_cell_hour_features(
    inputs: FeatureInputs,
    layout: FeatureLayout,
    start: datetime,
    end: datetime,
    time_zone: str,
    holiday_country: str = "US",
    holiday_subdivision: str | None = None,
) -> pl.DataFrame:
    """Build one feature row per cell and UTC hour in ``[start, end)``, sorted by hour then cell.

    The columns and their order are ``ml.feature_registry.panel_schema(layout)``.
    """
    if end <= start:
        raise ValueError(f"feature window end {end.isoformat()} must be after start {start.isoformat()}")
    cells_frame = inputs.cells.sort("cell_id")
    cells = cells_frame["cell_id"].to_list()
    if not cells:
        raise ValueError("no cells to build features for; materialize dim_cells first")
    hours = hour_range(start, end)
    n_hours, n_cells = hours.len(), len(cells)

    calendar = calendar_features(hours, time_zone, holiday_country, holiday_subdivision)
    local_dates = hours.dt.convert_time_zone(time_zone).dt.date().to_numpy().astype("datetime64[D]")
    per_cell_hour = crime_columns(inputs, layout, cells, start, end)
    per_cell_hour.update(request_columns(inputs.requests, layout, cells, local_dates))
    per_hour = weather_columns(inputs.weather, start, end)
    per_cell = cell_columns(cells_frame)

    series = [
        pl.Series("cell_id", cells, dtype=pl.String).gather(np.tile(np.arange(n_cells), n_hours)),
        hours.gather(np.repeat(np.arange(n_hours), n_cells)),
    ]
    for name in CALENDAR_COLUMNS:
        series.append(pl.Series(name, np.repeat(calendar[name].to_numpy(), n_cells)))
    schema = panel_schema(layout)
    for name, dtype in schema.items():
        if name in KEY_COLUMNS or name in CALENDAR_COLUMNS:
            continue
        if name in per_cell_hour:
            values = per_cell_hour[name].reshape(-1)
        elif name in per_hour:
            values = np.repeat(per_hour[name], n_cells)
        elif name in per_cell:
            values = np.tile(per_cell[name], n_hours)
        else:
            raise KeyError(f"feature {name} is in the registry but no builder makes it")
        series.append(pl.Series(name, values.astype(NUMPY_TYPES[dtype], copy=False)))
    frame = pl.DataFrame(series).cast(schema)

    logger.info("built %d feature rows (%d columns) for %d cells, %s to %s", frame.height, frame.width,
                n_cells, start.isoformat(), end.isoformat())
    return frame


