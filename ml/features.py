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

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import holidays
# The first country lookup imports every country module of ``holidays`` (0.06 to 0.2 s on a
# 2-core VM, holidays 0.109). Importing them here keeps that one-off cost out of the first
# feature build of a process.
import holidays.countries  # noqa: F401
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
    return list(cached_holiday_dates(country, subdivision, tuple(years)))


@functools.lru_cache(maxsize=64)
def cached_holiday_dates(country: str, subdivision: str | None, years: tuple[int, ...]) -> tuple[date, ...]:
    """Return the sorted holiday dates, cached because a month-by-month build requests the same years every month."""
    calendar = holidays.country_holidays(country, subdiv=subdivision, years=list(years))
    return tuple(sorted(calendar.keys()))


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
    """Scatter sparse (cell_id, hour, crime_group, incidents) rows into a [group, hour, cell] array.

    Rows outside the ``n_hours`` hours from ``first_hour`` are dropped before the joins, so counts
    that cover more than the window cost little extra.
    """
    array = np.zeros((len(names), n_hours, len(cells)), dtype=np.int32)
    if counts.height == 0:
        return array

    in_window = (
        counts.with_columns((pl.col("hour") - pl.lit(first_hour)).dt.total_hours().alias("hour_index"))
        .filter((pl.col("hour_index") >= 0) & (pl.col("hour_index") < n_hours))
    )
    cell_index = pl.DataFrame({"cell_id": cells, "cell_index": np.arange(len(cells), dtype=np.int32)})
    group_index = pl.DataFrame({"crime_group": names, "group_index": np.arange(len(names), dtype=np.int32)})
    indexed = in_window.join(cell_index, on="cell_id", how="inner").join(group_index, on="crime_group", how="inner")
    scatter_add(array, (indexed["group_index"].to_numpy(), indexed["hour_index"].to_numpy(),
                        indexed["cell_index"].to_numpy()), indexed["incidents"].to_numpy())
    return array


def scatter_add(array: np.ndarray, positions: tuple[np.ndarray, ...], values: np.ndarray) -> None:
    """Add ``values`` at ``positions`` (one index array per axis, repeats allowed) into an int32 array.

    ``np.add.at`` (numpy 2.x) takes a much faster path on a 1-D array with values of the array's
    dtype, so the positions are flattened and the values cast to int32 first. int32 sums wrap the same way whether the values
    are cast before or after adding, so the result is that of ``np.add.at(array, positions, values)``.
    """
    flat = np.ravel_multi_index(positions, array.shape)
    np.add.at(array.reshape(-1), flat, values.astype(np.int32))


def prefix_sums(array: np.ndarray, axis: int = 0) -> np.ndarray:
    """Return int32 cumulative sums along ``axis`` with a leading zero: ``prefix[k]`` sums ``[0, k)`` on that axis.

    Arrays of two or more dimensions are summed one slice at a time, because a numpy ``cumsum``
    along the hour axis of an [hour, cell] array is several times slower than a loop of slice
    additions.
    """
    shape = list(array.shape)
    shape[axis] += 1
    prefix = np.zeros(shape, dtype=np.int32)
    if array.ndim == 1:
        np.cumsum(array, out=prefix[1:])
        return prefix

    rows = np.moveaxis(array, axis, 0)
    sums = np.moveaxis(prefix, axis, 0)
    for row in range(rows.shape[0]):
        np.add(sums[row], rows[row], out=sums[row + 1])
    return prefix


def window_sums(prefix: np.ndarray, window: int, first_output: int, dtype: type = np.int32) -> np.ndarray:
    """Sum of rows ``[k - window, k)`` for every output row ``k >= first_output``, from ``prefix_sums``.

    The difference is taken in int32 and then cast to ``dtype``, as ``astype`` would cast it.
    """
    n_rows = prefix.shape[0] - 1
    upper = prefix[first_output:n_rows]
    if first_output >= window:
        lower = prefix[first_output - window:n_rows - window]
    else:
        lower = prefix[np.maximum(np.arange(first_output, n_rows) - window, 0)]
    sums = np.empty(upper.shape, dtype=dtype)
    np.subtract(upper, lower, out=sums, dtype=np.int32, casting="unsafe")
    return sums


def hours_since_last(array: np.ndarray, first_output: int, cap: int) -> np.ndarray:
    """Count the hours from the last row before ``k`` with a positive value to row ``k``, capped at ``cap``.

    Rows run along the first axis. For a 1-D array one ``np.maximum.accumulate`` finds the last
    positive row. Wider arrays carry that index forward one output row at a time with
    ``np.maximum``, because an accumulate along the first axis of an [hour, cell] array is several
    times slower than the loop.
    """
    n_rows = array.shape[0]
    column_shape = (-1, *([1] * (array.ndim - 1)))
    index = np.where(array > 0, np.arange(n_rows, dtype=np.int32).reshape(column_shape), np.int32(-(10**9)))

    last_before = np.full((n_rows - first_output, *array.shape[1:]), -(10**9), dtype=np.int32)
    if array.ndim == 1:
        last_at_or_before = np.maximum.accumulate(index)
        if first_output > 0:
            last_before[:] = last_at_or_before[first_output - 1:n_rows - 1]
        else:
            last_before[1:] = last_at_or_before[:n_rows - 1]
    else:
        if first_output > 0:
            np.max(index[:first_output], axis=0, out=last_before[0])
        for row in range(1, n_rows - first_output):
            np.maximum(last_before[row - 1], index[first_output + row - 1], out=last_before[row])

    since = np.subtract(np.arange(first_output, n_rows, dtype=np.int32).reshape(column_shape), last_before,
                        out=last_before)
    return np.minimum(since, cap, out=since).astype(np.float32)


def neighbour_matrix(neighbours: pl.DataFrame, cells: list[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Row-normalised adjacency (each row averages a cell's neighbours) and each cell's neighbour count."""
    cell_index = pl.DataFrame({"cell_id": cells, "row": np.arange(len(cells), dtype=np.int64)})
    pairs = (
        neighbours.select("cell_id", "neighbour_id")
        .filter(pl.col("cell_id") != pl.col("neighbour_id"))
        .join(cell_index, on="cell_id", how="inner")
        .join(cell_index.rename({"cell_id": "neighbour_id", "row": "column"}), on="neighbour_id", how="inner")
    )
    n_cells = len(cells)
    if pairs.height == 0:
        return sparse.csr_matrix((n_cells, n_cells), dtype=np.float32), np.zeros(n_cells, dtype=np.int16)
    rows, columns = pairs["row"].to_numpy(), pairs["column"].to_numpy()
    adjacency = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)),
                                  shape=(n_cells, n_cells))
    adjacency.data[:] = 1.0
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    scale = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    return sparse.diags(scale.astype(np.float32)) @ adjacency, degree.astype(np.int16)


def transpose(array: np.ndarray, block: int = 64) -> np.ndarray:
    """Copy a 2-D array into its C-ordered transpose, a band of ``block`` source rows at a time.

    Each output row then receives ``block`` contiguous values per band, and the band's source
    rows stay in the CPU cache, where ``np.ascontiguousarray(array.T)`` walks the whole source
    array for every output row. On a 2-core AMD EPYC VM (numpy 2.4), bands of source rows were
    1.3 to 3 times faster than bands of source columns for 801 cells and 744 to 1,417 hours.
    """
    result = np.empty((array.shape[1], array.shape[0]), dtype=array.dtype)
    for first in range(0, array.shape[0], block):
        result[:, first:first + block] = array[first:first + block].T
    return result


def neighbour_means(weights: sparse.csr_matrix, prefix: np.ndarray, first_output: int) -> dict[int, np.ndarray]:
    """Average the trailing sums over each cell's neighbours, for every window in ``CRIME_LAG_DAYS``.

    ``prefix`` is an [hour, cell] array from ``prefix_sums``, and the result maps days to float32
    [hour, cell] arrays for the rows from ``first_output`` on. The sums are cast to float32 before
    the sparse product, and the product runs on the [cell, hour] transpose, because scipy
    multiplies a sparse matrix by a C-ordered dense one without a copy. Each value is the same
    float32 sum, in the same order, as ``(weights @ sums.T).T``.
    """
    longest = max(CRIME_LAG_DAYS) * 24
    if first_output < longest:
        raise ValueError(f"first_output {first_output} is shorter than the longest window ({longest} hours); "
                         f"start the prefix sums at least that many hours before the first output row")
    by_cell = transpose(prefix)
    n_rows = by_cell.shape[1] - 1
    own = np.empty((by_cell.shape[0], n_rows - first_output), dtype=np.float32)
    means = {}
    for days in CRIME_LAG_DAYS:
        window = days * 24
        np.subtract(by_cell[:, first_output:n_rows], by_cell[:, first_output - window:n_rows - window], out=own,
                    dtype=np.int32, casting="unsafe")
        means[days] = transpose(weights @ own).astype(np.float32, copy=False)
    return means


def counted_groups(layout: FeatureLayout) -> list[str]:
    """Return the crime groups the builder reads: tracked groups, categories and unmapped codes."""
    return sorted(set(layout.groups) | set(layout.categories) | {UNMAPPED_CATEGORY})


def history_incomplete(start: datetime, n_out: int, data_start: date) -> np.ndarray:
    """Flag each output hour whose four-week lookback starts before ``data_start`` (midnight UTC)."""
    data_start_utc = datetime.combine(data_start, datetime.min.time(), tzinfo=timezone.utc)
    microseconds_to_data_start = (data_start_utc - start) // timedelta(microseconds=1)
    lookback_offsets = (np.arange(n_out, dtype=np.int64) - LOOKBACK_HOURS) * (HOUR // timedelta(microseconds=1))
    return lookback_offsets < microseconds_to_data_start


def crime_columns(inputs: FeatureInputs, layout: FeatureLayout, cells: list[str], start: datetime,
                  end: datetime) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Lagged counts per group, all-crime count, near-repeat hours, neighbour means and labels.

    Returns three dicts of columns in their stored dtypes: [hour, cell] arrays, per-hour vectors
    and per-cell vectors.
    """
    first_hour = start - LOOKBACK_HOURS * HOUR
    n_hours = hours_between(first_hour, end)
    n_out = n_hours - LOOKBACK_HOURS
    all_names = counted_groups(layout)
    counts = dense_group_counts(inputs.crime_counts, all_names, cells, first_hour, n_hours)
    index = {name: position for position, name in enumerate(all_names)}
    weights, degree = neighbour_matrix(inputs.neighbours, cells)

    # Prefix sums along the hour axis of the [group, hour, cell] array, so that each group's
    # [hour, cell] slab stays contiguous.
    prefix = prefix_sums(counts, axis=1)
    group_prefix = {name: prefix[position] for position, name in enumerate(all_names)}

    per_cell_hour: dict[str, np.ndarray] = {}
    for group in layout.groups:
        for days in CRIME_LAG_DAYS:
            per_cell_hour[f"{group}_{days}d"] = window_sums(group_prefix[group], days * 24, LOOKBACK_HOURS,
                                                            np.int16)

    # Integer sums wrap the same way in any order, so the sum of the categories' weekly sums equals
    # the weekly sum of their total.
    categories = sorted(set(layout.categories) | {UNMAPPED_CATEGORY})
    all_crime = window_sums(group_prefix[categories[0]], 168, LOOKBACK_HOURS)
    for category in categories[1:]:
        all_crime += window_sums(group_prefix[category], 168, LOOKBACK_HOURS)
    per_cell_hour["all_crime_7d"] = all_crime

    for target in layout.targets:
        per_cell_hour[f"hours_since_{target}"] = hours_since_last(counts[index[target]], LOOKBACK_HOURS,
                                                                  HOURS_SINCE_CAP)

    for target in layout.targets:
        for days, means in neighbour_means(weights, group_prefix[target], LOOKBACK_HOURS).items():
            per_cell_hour[f"nbr_{target}_{days}d"] = means
    for target in layout.targets:
        per_cell_hour[label_column(target)] = counts[index[target], LOOKBACK_HOURS:].astype(np.int16)

    isolated = degree == 0
    per_cell = {"neighbour_count": degree}
    for target in layout.targets:
        for days in CRIME_LAG_DAYS:
            per_cell[f"nbr_{target}_{days}d_missing"] = isolated
    per_hour = {"history_incomplete": history_incomplete(start, n_out, layout.data_start)}
    return per_cell_hour, per_hour, per_cell


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
                    local_dates: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """311 counts per type over the local days before each hour's local date, with indicators.

    Returns the counts as [hour, cell] int16 arrays and the indicators as per-hour vectors.
    """
    if not layout.request_types:
        return {}, {}
    first_day = local_dates.min() - np.timedelta64(REQUEST_LOOKBACK_DAYS, "D")
    n_days = int((local_dates.max() - first_day) / np.timedelta64(1, "D")) + 1
    array = np.zeros((len(layout.request_types), n_days, len(cells)), dtype=np.int32)
    if requests is not None and requests.height:
        cell_index = pl.DataFrame({"cell_id": cells, "cell_index": np.arange(len(cells), dtype=np.int32)})
        type_index = pl.DataFrame({"request_type": list(layout.request_types),
                                   "type_index": np.arange(len(layout.request_types), dtype=np.int32)})
        indexed = (
            requests.with_columns((pl.col("local_date") - pl.lit(first_day.astype(object))).dt.total_days()
                                  .alias("day_index"))
            .filter((pl.col("day_index") >= 0) & (pl.col("day_index") < n_days))
            .join(cell_index, on="cell_id", how="inner").join(type_index, on="request_type", how="inner")
        )
        scatter_add(array, (indexed["type_index"].to_numpy(), indexed["day_index"].to_numpy(),
                            indexed["cell_index"].to_numpy()), indexed["requests"].to_numpy())

    empty_day = array.sum(axis=(0, 2)) == 0
    day_of_hour = ((local_dates - first_day) / np.timedelta64(1, "D")).astype(np.int64)
    per_cell_hour: dict[str, np.ndarray] = {}
    per_hour: dict[str, np.ndarray] = {}
    for position, request_type in enumerate(layout.request_types):
        prefix = prefix_sums(array[position])
        for days in REQUEST_LAG_DAYS:
            sums = window_sums(prefix, days, 0, np.int16)
            missing = window_counts(empty_day, np.arange(n_days), days) > 0
            per_cell_hour[f"requests_{request_type}_{days}d"] = sums[day_of_hour]
            per_hour[f"requests_{request_type}_{days}d_missing"] = missing[day_of_hour]
    return per_cell_hour, per_hour


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

    calendar = calendar_features(hours, time_zone, holiday_country, holiday_subdivision)
    local_dates = hours.dt.convert_time_zone(time_zone).dt.date().to_numpy().astype("datetime64[D]")
    per_cell_hour, per_hour, per_cell = crime_columns(inputs, layout, cells, start, end)
    request_per_cell_hour, request_per_hour = request_columns(inputs.requests, layout, cells, local_dates)
    per_cell_hour.update(request_per_cell_hour)
    per_hour.update(request_per_hour)
    per_hour.update(weather_columns(inputs.weather, start, end))
    per_hour.update({name: calendar[name].to_numpy() for name in CALENDAR_COLUMNS})
    per_cell.update(cell_columns(cells_frame))

    frame = assemble_frame(panel_schema(layout), cells, hours, per_cell_hour, per_hour, per_cell)
    logger.info("built %d feature rows (%d columns) for %d cells, %s to %s", frame.height, frame.width,
                len(cells), start.isoformat(), end.isoformat())
    return frame


def assemble_frame(schema: dict[str, pl.DataType], cells: list[str], hours: pl.Series,
                   per_cell_hour: dict[str, np.ndarray], per_hour: dict[str, np.ndarray],
                   per_cell: dict[str, np.ndarray]) -> pl.DataFrame:
    """Lay the columns out in ``schema`` order, one row per hour and cell, hour-major.

    Per-hour vectors are repeated for every cell and per-cell vectors are tiled for every hour.
    Each vector is cast to its stored type before it is repeated, which gives the same values as
    a cast after.
    """
    n_hours, n_cells = hours.len(), len(cells)
    hour_starts = np.repeat(hours.dt.epoch("us").to_numpy(), n_cells)
    series = [
        pl.concat([pl.Series("cell_id", cells, dtype=pl.String)] * n_hours, rechunk=True),
        pl.Series("hour", hour_starts).cast(hours.dtype),
    ]
    for name, dtype in schema.items():
        if name in KEY_COLUMNS:
            continue
        numpy_type = NUMPY_TYPES[dtype]
        if name in per_cell_hour:
            values = per_cell_hour[name].astype(numpy_type, copy=False).reshape(-1)
        elif name in per_hour:
            values = np.repeat(per_hour[name].astype(numpy_type, copy=False), n_cells)
        elif name in per_cell:
            values = np.tile(per_cell[name].astype(numpy_type, copy=False), n_hours)
        else:
            raise KeyError(f"feature {name} is in the registry but no builder makes it")
        series.append(pl.Series(name, values))
    return pl.DataFrame(series).cast(schema)
