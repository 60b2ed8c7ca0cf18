"""Hourly cell features for crime-risk forecasting, built with polars and numpy.

A feature row for cell ``c`` and UTC hour ``h`` describes the state of the city at the START of
hour ``h``: it uses only events and observations before ``h``. Lag windows therefore cover
``[h - w, h)`` and never include hour ``h`` itself, and weather is the observation of hour
``h - 1``, the last complete hour. The row also carries ``violent_count``, the number of violent
incidents in hour ``h``: it is the label, never a model input.

The features are calendar terms for the daily and weekly cycles, weather levels, and recent counts
in the cell at several time scales. Recent counts carry repeat victimisation: places that just had
a crime are more likely to have another soon (Farrell & Pease 1993, "Once Bitten, Twice Bitten:
Repeat Victimisation and its Implications for Crime Prevention", Home Office Crime Prevention Unit
Paper 46).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import holidays
import numpy as np
import polars as pl

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
LAG_WINDOWS_HOURS = {"violent_1d": 24, "violent_3d": 72, "violent_7d": 168, "violent_28d": 672}
ALL_CRIME_WINDOW_HOURS = 168
LOOKBACK_HOURS = max(LAG_WINDOWS_HOURS.values())
WEATHER_COLUMNS = ("temperature_f", "precipitation_in", "relative_humidity", "wind_speed_mph")

FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "cell_id": pl.String,
    "hour": pl.Datetime("us", "UTC"),
    "local_hour": pl.Int8,
    "day_of_week": pl.Int8,
    "month": pl.Int8,
    "is_holiday": pl.Boolean,
    "violent_1d": pl.Int16,
    "violent_3d": pl.Int16,
    "violent_7d": pl.Int16,
    "violent_28d": pl.Int16,
    "crime_7d": pl.Int32,
    "hours_since_violent": pl.Float32,
    "temperature_f": pl.Float32,
    "precipitation_in": pl.Float32,
    "relative_humidity": pl.Float32,
    "wind_speed_mph": pl.Float32,
    "weather_missing": pl.Boolean,
    "label_violent": pl.Int16,
}


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
        "is_holiday": local.dt.date().is_in(pl.Series(holiday_list, dtype=pl.Date)),
    })


def dense_counts(counts: pl.DataFrame, cells: list[str], first_hour: datetime, n_hours: int,
                 column: str) -> np.ndarray:
    """Scatter sparse (cell_id, hour, count) rows into an [hours, cells] int32 array."""
    array = np.zeros((n_hours, len(cells)), dtype=np.int32)
    if counts.height == 0:
        return array

    cell_index = pl.DataFrame({"cell_id": cells, "cell_index": np.arange(len(cells), dtype=np.int32)})
    indexed = counts.join(cell_index, on="cell_id", how="inner").with_columns(
        ((pl.col("hour") - pl.lit(first_hour).dt.replace_time_zone("UTC")).dt.total_hours())
        .alias("hour_index")
    ).filter((pl.col("hour_index") >= 0) & (pl.col("hour_index") < n_hours))
    np.add.at(array, (indexed["hour_index"].to_numpy(), indexed["cell_index"].to_numpy()),
              indexed[column].to_numpy())
    return array


def trailing_sums(array: np.ndarray, window: int, first_output: int) -> np.ndarray:
    """Sum of rows ``[k - window, k)`` for every output row ``k >= first_output``."""
    prefix = np.zeros((array.shape[0] + 1, array.shape[1]), dtype=np.int64)
    np.cumsum(array, axis=0, out=prefix[1:])
    rows = np.arange(first_output, array.shape[0])
    return prefix[rows] - prefix[np.maximum(rows - window, 0)]


def hours_since_last(array: np.ndarray, first_output: int, cap: int) -> np.ndarray:
    """Hours since the last hour before ``k`` with a non-zero count, capped at ``cap``."""
    n_hours = array.shape[0]
    index = np.where(array > 0, np.arange(n_hours)[:, None], -(10**9))
    last_at_or_before = np.maximum.accumulate(index, axis=0)
    rows = np.arange(first_output, n_hours)
    last_before = last_at_or_before[rows - 1] if first_output > 0 else np.full((len(rows), array.shape[1]), -(10**9))
    return np.minimum(rows[:, None] - last_before, cap).astype(np.float32)


def build_cell_hour_features(
    cells: list[str],
    counts: pl.DataFrame,
    weather: pl.DataFrame | None,
    start: datetime,
    end: datetime,
    time_zone: str,
    holiday_country: str = "US",
    holiday_subdivision: str | None = None,
) -> pl.DataFrame:
    """Build one feature row per cell and UTC hour in ``[start, end)``, sorted by hour then cell.

    ``counts`` contains sparse (cell_id, hour, crime_count, violent_count) rows and must cover
    ``[start - 28 days, end)``; ``weather`` contains one row per UTC hour with the columns in
    ``WEATHER_COLUMNS`` (NULL where missing) and should cover ``[start - 1 h, end - 1 h)``.
    """
    if end <= start:
        raise ValueError(f"feature window end {end.isoformat()} must be after start {start.isoformat()}")
    cells = sorted(cells)
    first_hour = start - LOOKBACK_HOURS * HOUR
    n_hours = int((end - first_hour) / HOUR)

    violent = dense_counts(counts, cells, first_hour, n_hours, "violent_count")
    crimes = dense_counts(counts, cells, first_hour, n_hours, "crime_count")

    columns: dict[str, np.ndarray] = {}
    for name, window in LAG_WINDOWS_HOURS.items():
        columns[name] = trailing_sums(violent, window, LOOKBACK_HOURS).astype(np.int16)
    columns["crime_7d"] = trailing_sums(crimes, ALL_CRIME_WINDOW_HOURS, LOOKBACK_HOURS).astype(np.int32)
    columns["hours_since_violent"] = hours_since_last(violent, LOOKBACK_HOURS, LOOKBACK_HOURS)
    columns["label_violent"] = violent[LOOKBACK_HOURS:].astype(np.int16)

    hours = hour_range(start, end)
    n_cells = len(cells)
    frame = pl.DataFrame({
        "cell_id": np.tile(np.array(cells, dtype=object), hours.len()),
        "hour": hours.gather(np.repeat(np.arange(hours.len()), n_cells)),
        **{name: values.reshape(-1) for name, values in columns.items()},
    })

    calendar = calendar_features(hours, time_zone, holiday_country, holiday_subdivision)
    frame = frame.join(calendar, on="hour", how="left")
    frame = frame.join(previous_hour_weather(weather, hours), on="hour", how="left")
    frame = frame.with_columns(pl.col("weather_missing").fill_null(True))

    logger.info("built %d feature rows for %d cells, %s to %s", frame.height, n_cells,
                start.isoformat(), end.isoformat())
    return frame.select([pl.col(name).cast(dtype) for name, dtype in FEATURE_SCHEMA.items()])


def previous_hour_weather(weather: pl.DataFrame | None, hours: pl.Series) -> pl.DataFrame:
    """Weather known at the start of each hour: the observation of the hour before."""
    empty = pl.DataFrame({"hour": hours}).with_columns(
        [pl.lit(None, dtype=pl.Float32).alias(name) for name in WEATHER_COLUMNS]
        + [pl.lit(True).alias("weather_missing")]
    )
    if weather is None or weather.height == 0:
        return empty
    shifted = weather.select(
        (pl.col("hour").dt.replace_time_zone("UTC", non_existent="raise") if weather["hour"].dtype.time_zone is None
         else pl.col("hour")).cast(pl.Datetime("us", "UTC")).alias("source_hour"),
        *[pl.col(name).cast(pl.Float32) for name in WEATHER_COLUMNS],
        pl.col("weather_missing").cast(pl.Boolean),
    ).with_columns((pl.col("source_hour") + pl.duration(hours=1)).alias("hour")).drop("source_hour")
    return pl.DataFrame({"hour": hours}).join(shifted, on="hour", how="left")
