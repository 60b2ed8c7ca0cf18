"""Weather at forecast time: archived forecasts, stand-in forecasts and the weather features built from them.

A score issued at the start of UTC hour ``t`` for horizon ``h`` forecasts the target hour
``v = t + h - 1`` (horizon 1 is the issue hour itself, as in ``ml.model_data``). Its weather inputs
may use observations of hours before ``t`` only. For hours at or after ``t`` they use the latest
archived weather forecast issued at or before ``t`` that covers the hour, and otherwise a stand-in
forecast made from the observations before ``t``.

The stand-ins are the two reference forecasts of forecast verification and their linear
combination (Wilks, "Statistical Methods in the Atmospheric Sciences", Academic Press; Murphy 1992,
"Climatology, persistence, and their linear combination as standards of reference in skill
scores", Weather and Forecasting 7: 692-698):

- persistence: the last observed value, carried forward to every horizon;
- climatology: the mean of past years' observations at the same UTC hour of day within a window
  of days around the same day of the year;
- blend: ``w * persistence + (1 - w) * climatology``. For anomalies from climatology that follow a
  first-order autoregressive process, Murphy's weight that minimises the mean squared error is the
  lag-``h`` autocorrelation, ``exp(-h / tau)``. That is the default weight, with ``tau`` a setting;
  a fixed weight can be set instead.

Hours are keyed in UTC, like the weather inputs of ``ml.features``. UTC is a fixed offset from
local standard time, so a UTC hour of day is the same point of the daily cycle all year, while a
local clock hour moves by one hour at daylight-saving changes. Days of the year run from 1 to 365:
Feb 29 shares Feb 28's key, and later days of a leap year move back one day.

Precipitation enters the features as wet hours (an amount above zero, or a trace). A forecast
cannot tell with certainty whether an hour will be wet, so every hourly row carries
``precipitation_probability``: 0 or 1 for an observed hour, the archived probability (or whether
the amount is above zero) for an archived forecast, and the stand-in of the wet flag otherwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import numpy as np
import polars as pl

from ml.feature_registry import (
    PRECIPITATION_HISTORY_DAYS,
    TEMPERATURE_CHANGE_DAYS,
    WEATHER_IMPUTATION,
    WEATHER_LEVELS,
)

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAYS_IN_YEAR = 365
FEB_28_ORDINAL = 59
WET_PROBABILITY = "precipitation_probability"
VARIABLES = (*WEATHER_LEVELS, WET_PROBABILITY)
METHODS = ("persistence", "climatology", "blend")
DEFAULT_HORIZONS = range(1, 73)
UTC_HOUR = pl.Datetime("us", "UTC")

# Observations a feature row can reach back to: the longest temperature change plus one hour,
# or the longest precipitation window.
FEATURE_LOOKBACK_HOURS = max(max(TEMPERATURE_CHANGE_DAYS) * 24 + 1, max(PRECIPITATION_HISTORY_DAYS) * 24)


@dataclass(frozen=True)
class WeatherStandIn:
    """Stand-in forecast used where no archived forecast covers an hour.

    - ``method``: ``persistence``, ``climatology`` or ``blend``.
    - ``blend_weight``: a fixed weight of persistence in the blend, in [0, 1]; None uses
      ``exp(-h / blend_tau_hours)`` for horizon ``h``.
    - ``blend_tau_hours``: decorrelation time of weather anomalies in hours. The default of 24
      hours gives persistence a weight of 0.96 at horizon 1, 0.37 at 24 and 0.05 at 72. On the
      2017 O'Hare temperatures, anomalies correlate at 0.65 after 12 hours and 0.42 after 24
      (an implied tau of 27 hours) and at 0.06 after 48 (``benchmarks/weather_persistence.py``,
      with an in-sample climatology). Other variables and stations may decorrelate faster.
    - ``climatology_years``: how many years before the issue time the climatology reads.
    - ``smoothing_days``: half-width of the window of days of the year pooled into one
      climatology value (7 pools 15 days, so 3 years give 45 samples per hour of day).
    - ``persistence_max_gap_hours``: how far before the last complete hour persistence looks for
      a non-missing value. Older values are not used, so the persistence value is then missing.
    """

    method: Literal["persistence", "climatology", "blend"] = "blend"
    blend_weight: float | None = None
    blend_tau_hours: float = 24.0
    climatology_years: int = 3
    smoothing_days: int = 7
    persistence_max_gap_hours: int = 24

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"weather stand-in method {self.method!r} is invalid; use one of {list(METHODS)}")
        if self.blend_weight is not None and not 0.0 <= self.blend_weight <= 1.0:
            raise ValueError(f"blend_weight {self.blend_weight} is outside [0, 1]; set a weight of "
                             f"persistence between 0 and 1, or None for exp(-h / blend_tau_hours)")
        if not self.blend_tau_hours > 0:
            raise ValueError(f"blend_tau_hours {self.blend_tau_hours} must be a positive number of hours")
        if self.climatology_years < 1:
            raise ValueError(f"climatology_years {self.climatology_years} must be at least 1")
        if not 0 <= self.smoothing_days <= DAYS_IN_YEAR // 2:
            raise ValueError(f"smoothing_days {self.smoothing_days} must be between 0 and "
                             f"{DAYS_IN_YEAR // 2} (a window of days on each side of the day of the year)")
        if self.persistence_max_gap_hours < 0:
            raise ValueError(f"persistence_max_gap_hours {self.persistence_max_gap_hours} must be 0 or more")

    def persistence_weight(self, horizon: int) -> float:
        """Weight of persistence in the blend at ``horizon`` hours."""
        if self.blend_weight is not None:
            return self.blend_weight
        return math.exp(-horizon / self.blend_tau_hours)

    def manifest_entry(self) -> dict[str, Any]:
        """Settings as plain values, for a model manifest."""
        return asdict(self)


def check_issue_time(issue_time: datetime) -> None:
    if issue_time.tzinfo is None or issue_time.utcoffset() != timedelta(0):
        raise ValueError(f"issue time {issue_time.isoformat()} must be a UTC datetime "
                         f"(tzinfo=timezone.utc)")
    if issue_time.minute or issue_time.second or issue_time.microsecond:
        raise ValueError(f"issue time {issue_time.isoformat()} must be the start of an hour")


def check_horizons(horizons: Iterable[int]) -> list[int]:
    values = sorted(set(int(horizon) for horizon in horizons))
    if not values or values[0] < 1:
        raise ValueError(f"horizons {values} must be non-empty and at least 1 (horizon 1 is the issue hour)")
    return values


def wet_probability(frame: pl.DataFrame) -> pl.Expr:
    """Wet flag of observed hours as 0.0 or 1.0 (an amount above zero or a trace), null where unobserved."""
    trace = pl.col("precipitation_is_trace").fill_null(False) if "precipitation_is_trace" in frame.columns \
        else pl.lit(False)
    wet = (pl.col("precipitation_in") > 0) | trace
    return pl.when(pl.col("precipitation_in").is_null()).then(None).otherwise(wet.cast(pl.Float64))


def observations_before(observed: pl.DataFrame, before: datetime) -> pl.DataFrame:
    """Observed hours strictly before ``before``, with the variables as Float64 and the wet probability."""
    missing = [name for name in ("hour", *WEATHER_LEVELS) if name not in observed.columns]
    if missing:
        raise ValueError(f"observed weather lacks columns {missing}; pass rows of marts.fct_hourly_weather "
                         f"with hour and {list(WEATHER_LEVELS)}")
    rows = (
        observed.with_columns(pl.col("hour").cast(UTC_HOUR))
        .filter(pl.col("hour") < before)
        .with_columns(wet_probability(observed).alias(WET_PROBABILITY))
        .select("hour", *(pl.col(name).cast(pl.Float64) for name in VARIABLES))
        .sort("hour")
    )
    if rows["hour"].is_duplicated().any():
        repeated = rows.filter(pl.col("hour").is_duplicated())["hour"].unique().sort().head(3).to_list()
        raise ValueError(f"observed weather has more than one row for hours such as {repeated}; keep one "
                         f"row per UTC hour (marts.fct_hourly_weather does)")
    return rows


def day_of_year(hours: pl.Expr) -> pl.Expr:
    """Day of a 365-day year (1-365) of UTC hours: Feb 29 counts as Feb 28, later leap-year days move back one."""
    ordinal = hours.dt.ordinal_day().cast(pl.Int32)
    shift = (hours.dt.is_leap_year() & (ordinal > FEB_28_ORDINAL)).cast(pl.Int32)
    return ordinal - shift


def years_before(moment: datetime, years: int) -> datetime:
    """Return the same UTC date and time ``years`` years earlier (Feb 29 becomes Feb 28)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def circular_day_sums(array: np.ndarray, half_width: int) -> np.ndarray:
    """Sum each day-of-year row with the ``half_width`` rows on each side, wrapping at the year's end."""
    total = np.zeros_like(array)
    for offset in range(-half_width, half_width + 1):
        total += np.roll(array, offset, axis=0)
    return total


def climatology(observed: pl.DataFrame, issued_before: datetime, variables: Iterable[str] = VARIABLES,
                years: int = 3, smoothing_days: int = 7) -> pl.DataFrame:
    """Mean of each variable per (day_of_year, hour_of_day) from observations before ``issued_before``.

    Reads the hours in ``[issued_before - years, issued_before)``. The value of a key pools its UTC
    hour of day over the days of the year within ``smoothing_days`` of its day, wrapping from
    Dec 31 to Jan 1. Returns all 365 x 24 keys with the mean (null where no sample exists) and
    ``<variable>_samples``, the number of observations behind it.
    """
    check_issue_time(issued_before)
    names = list(variables)
    unknown = [name for name in names if name not in VARIABLES]
    if unknown:
        raise ValueError(f"climatology variables {unknown} are unknown; use names from {list(VARIABLES)}")
    start = years_before(issued_before, years)
    rows = observations_before(observed, issued_before).filter(pl.col("hour") >= start)
    rows = rows.with_columns(day_of_year(pl.col("hour")).alias("day_of_year"),
                             pl.col("hour").dt.hour().cast(pl.Int32).alias("hour_of_day"))

    day_index = rows["day_of_year"].to_numpy() - 1
    hour_index = rows["hour_of_day"].to_numpy()
    columns: dict[str, Any] = {
        "day_of_year": np.repeat(np.arange(1, DAYS_IN_YEAR + 1, dtype=np.int32), 24),
        "hour_of_day": np.tile(np.arange(24, dtype=np.int32), DAYS_IN_YEAR),
    }
    for name in names:
        values = rows[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        seen = ~np.isnan(values)
        sums = np.zeros((DAYS_IN_YEAR, 24))
        counts = np.zeros((DAYS_IN_YEAR, 24))
        np.add.at(sums, (day_index[seen], hour_index[seen]), values[seen])
        np.add.at(counts, (day_index[seen], hour_index[seen]), 1.0)

        sums = circular_day_sums(sums, smoothing_days)
        counts = circular_day_sums(counts, smoothing_days)
        mean = np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)
        columns[name] = pl.Series(name, mean.reshape(-1)).fill_nan(None)
        columns[f"{name}_samples"] = counts.reshape(-1).astype(np.int32)

    logger.info("climatology before %s from %d observed hours since %s (+/- %d days)",
                issued_before.isoformat(), rows.height, start.isoformat(), smoothing_days)
    return pl.DataFrame(columns)


def persistence(observed: pl.DataFrame, issue_time: datetime,
                max_gap_hours: int) -> dict[str, tuple[float | None, int | None]]:
    """Last non-missing value of each variable at or before ``issue_time - 1 hour``, and its age.

    The age is the number of hours skipped back from the last complete hour (0 when that hour has
    the value). A variable with no value within ``max_gap_hours`` of that hour gets (None, None).
    """
    last_complete = issue_time - HOUR
    rows = observations_before(observed, issue_time).filter(
        pl.col("hour") >= last_complete - max_gap_hours * HOUR)

    values: dict[str, tuple[float | None, int | None]] = {}
    for name in VARIABLES:
        present = rows.filter(pl.col(name).is_not_null())
        if present.height == 0:
            values[name] = (None, None)
            continue
        hour, value = present.select("hour", name).row(-1)
        values[name] = (float(value), int((last_complete - hour) / HOUR))
    return values


def valid_hours(issue_time: datetime, horizons: list[int]) -> pl.DataFrame:
    """Horizons with their target hours: horizon ``h`` is the hour ``issue_time + h - 1``."""
    return pl.DataFrame({
        "issued_at": [issue_time] * len(horizons),
        "horizon_hours": horizons,
        "valid_hour": [issue_time + (horizon - 1) * HOUR for horizon in horizons],
    }, schema={"issued_at": UTC_HOUR, "horizon_hours": pl.Int32, "valid_hour": UTC_HOUR})


def persistence_columns(frame: pl.DataFrame, observed: pl.DataFrame, issue_time: datetime,
                        settings: WeatherStandIn) -> pl.DataFrame:
    carried = persistence(observed, issue_time, settings.persistence_max_gap_hours)
    stale = {name: age for name, (_, age) in carried.items() if age}
    unknown = [name for name, (value, _) in carried.items() if value is None]
    if stale or unknown:
        logger.info("persistence at %s: hours skipped back per variable %s; no value within %d hours for %s",
                    issue_time.isoformat(), stale, settings.persistence_max_gap_hours, unknown)
    ages = [age for _, age in carried.values() if age is not None]
    return frame.with_columns(
        *(pl.lit(value, dtype=pl.Float64).alias(f"{name}_persistence") for name, (value, _) in carried.items()),
        pl.lit(max(ages) if ages else None, dtype=pl.Int32).alias("persistence_gap_hours"),
    )


def climatology_columns(frame: pl.DataFrame, observed: pl.DataFrame, issue_time: datetime,
                        settings: WeatherStandIn) -> pl.DataFrame:
    table = climatology(observed, issue_time, VARIABLES, settings.climatology_years, settings.smoothing_days)
    table = table.select("day_of_year", "hour_of_day",
                         *(pl.col(name).alias(f"{name}_climatology") for name in VARIABLES))
    keyed = frame.with_columns(day_of_year(pl.col("valid_hour")).alias("day_of_year"),
                               pl.col("valid_hour").dt.hour().cast(pl.Int32).alias("hour_of_day"))
    return keyed.join(table, on=["day_of_year", "hour_of_day"], how="left",
                      maintain_order="left").drop("day_of_year", "hour_of_day")


def blended(name: str, weights: pl.Expr) -> pl.Expr:
    """Blend of the two stand-ins, or the one that exists where the other is missing."""
    carried, mean = pl.col(f"{name}_persistence"), pl.col(f"{name}_climatology")
    return (
        pl.when(carried.is_null()).then(mean)
        .when(mean.is_null()).then(carried)
        .otherwise(weights * carried + (1 - weights) * mean)
        .alias(name)
    )


def stand_in_forecast(observed: pl.DataFrame, issue_time: datetime,
                      horizons: Iterable[int] = DEFAULT_HORIZONS,
                      settings: WeatherStandIn | None = None) -> pl.DataFrame:
    """Stand-in forecast of each weather variable for each horizon, from observations before ``issue_time``.

    Returns one row per horizon: ``issued_at``, ``horizon_hours``, ``valid_hour`` (``issue_time +
    horizon - 1`` hours), the variables of ``VARIABLES``, ``weather_source`` (the method) and
    ``persistence_gap_hours``. The gap is the number of hours persistence skipped back past missing
    observations, the largest over the variables, and null for climatology. Rows of ``observed`` at or after
    ``issue_time`` are never read. A blend uses the other stand-in where one is missing.
    """
    settings = settings or WeatherStandIn()
    check_issue_time(issue_time)
    frame = valid_hours(issue_time, check_horizons(horizons))

    if settings.method in ("persistence", "blend"):
        frame = persistence_columns(frame, observed, issue_time, settings)
    if settings.method in ("climatology", "blend"):
        frame = climatology_columns(frame, observed, issue_time, settings)

    if settings.method == "persistence":
        values = [pl.col(f"{name}_persistence").alias(name) for name in VARIABLES]
    elif settings.method == "climatology":
        values = [pl.col(f"{name}_climatology").alias(name) for name in VARIABLES]
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int32).alias("persistence_gap_hours"))
    else:
        weights = pl.Series([settings.persistence_weight(h) for h in frame["horizon_hours"]], dtype=pl.Float64)
        values = [blended(name, pl.lit(weights)) for name in VARIABLES]

    frame = frame.with_columns(*values, pl.lit(settings.method).alias("weather_source"))
    return frame.select("issued_at", "horizon_hours", "valid_hour", *VARIABLES, "weather_source",
                        "persistence_gap_hours")


def archived_wet_probability(forecasts: pl.DataFrame) -> pl.Expr:
    """Check an archive's columns and return its wet probability: the archived one, else whether the amount is above zero."""
    missing = [name for name in ("issued_at", "valid_hour", *WEATHER_LEVELS) if name not in forecasts.columns]
    if missing:
        raise ValueError(f"forecast archive lacks columns {missing}; it needs issued_at, valid_hour and "
                         f"{list(WEATHER_LEVELS)}")
    amount_wet = (pl.col("precipitation_in") > 0).cast(pl.Float64)
    if WET_PROBABILITY not in forecasts.columns:
        return amount_wet
    return pl.col(WET_PROBABILITY).cast(pl.Float64).fill_null(amount_wet)


def archived_forecasts(forecasts: pl.DataFrame, issue_time: datetime) -> pl.DataFrame:
    """Select the latest complete archived row per valid hour among forecasts issued at or before ``issue_time``.

    A row is complete when all weather levels are present. Its wet probability is the archived
    ``precipitation_probability`` where given, else 1.0 when the amount is above zero and 0.0 otherwise.
    """
    probability = archived_wet_probability(forecasts)

    issued = forecasts.with_columns(pl.col("issued_at").cast(UTC_HOUR), pl.col("valid_hour").cast(UTC_HOUR)) \
        .filter(pl.col("issued_at") <= issue_time)
    complete = issued.filter(pl.all_horizontal(pl.col(name).is_not_null() for name in WEATHER_LEVELS))
    if complete.height < issued.height:
        logger.info("forecast archive at %s: %d of %d rows issued by then lack a weather level and are skipped",
                    issue_time.isoformat(), issued.height - complete.height, issued.height)
    return (
        complete.with_columns(probability.alias(WET_PROBABILITY))
        .sort("issued_at")
        .group_by("valid_hour", maintain_order=True).last()
        .select("valid_hour", pl.col("issued_at").alias("forecast_issued_at"),
                *(pl.col(name).cast(pl.Float64) for name in VARIABLES))
    )


def forecast_time_weather(observed: pl.DataFrame, forecasts: pl.DataFrame | None, issue_time: datetime,
                          horizons: Iterable[int] = DEFAULT_HORIZONS,
                          settings: WeatherStandIn | None = None) -> pl.DataFrame:
    """Weather a forecaster had at ``issue_time`` for each horizon's target hour.

    Each valid hour takes the latest complete archived forecast issued at or before
    ``issue_time`` that covers it (``weather_source`` "forecast", with ``forecast_issued_at``).
    An hour that no such forecast covers takes the stand-in of ``settings``, so a gap in the
    archive falls back for that hour only. Columns are those of ``stand_in_forecast`` plus
    ``forecast_issued_at``.
    """
    stand_in = stand_in_forecast(observed, issue_time, horizons, settings)
    if forecasts is None:
        return stand_in.with_columns(pl.lit(None, dtype=UTC_HOUR).alias("forecast_issued_at"))

    archived = archived_forecasts(forecasts, issue_time)
    joined = stand_in.join(archived, on="valid_hour", how="left", suffix="_archived", maintain_order="left")
    covered = pl.col("forecast_issued_at").is_not_null()
    result = joined.with_columns(
        *(pl.when(covered).then(pl.col(f"{name}_archived")).otherwise(pl.col(name)).alias(name)
          for name in VARIABLES),
        pl.when(covered).then(pl.lit("forecast")).otherwise(pl.col("weather_source")).alias("weather_source"),
        pl.when(covered).then(None).otherwise(pl.col("persistence_gap_hours")).alias("persistence_gap_hours"),
    )

    n_covered = int(result["forecast_issued_at"].is_not_null().sum())
    logger.info("forecast-time weather at %s: %d of %d valid hours from archived forecasts, %d from the %s stand-in",
                issue_time.isoformat(), n_covered, result.height, result.height - n_covered,
                stand_in["weather_source"][0])
    return result.select(*stand_in.columns, "forecast_issued_at")


def mixed_hourly_series(observed: pl.DataFrame, weather: pl.DataFrame, issue_time: datetime,
                        first_hour: datetime, n_hours: int) -> dict[str, np.ndarray]:
    """Hourly arrays from ``first_hour``: observations before ``issue_time``, ``weather`` rows from it on.

    NaN marks an hour with neither. An observed row at or after ``issue_time`` is never read.
    """
    series = {name: np.full(n_hours, np.nan) for name in VARIABLES}
    sources = [(observations_before(observed, issue_time), pl.col("hour")),
               (weather.filter(pl.col("valid_hour") >= issue_time), pl.col("valid_hour"))]
    for rows, hour in sources:
        rows = rows.with_columns(((hour - pl.lit(first_hour)).dt.total_hours()).alias("hour_index"))
        rows = rows.filter((pl.col("hour_index") >= 0) & (pl.col("hour_index") < n_hours))
        positions = rows["hour_index"].to_numpy()
        for name in VARIABLES:
            series[name][positions] = rows[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return series


def window_total(values: np.ndarray, ends: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum over known hours and number of known hours in ``[end - window, end)`` for each end."""
    known = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(known, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(known, dtype=np.int64)])
    return sums[ends] - sums[ends - window], counts[ends] - counts[ends - window]


def forecast_time_features(observed: pl.DataFrame, weather: pl.DataFrame, issue_time: datetime,
                           level_hour: Literal["valid", "previous"] = "valid") -> pl.DataFrame:
    """Weather levels, temperature changes and precipitation history per horizon at forecast time.

    ``weather`` is the output of ``forecast_time_weather`` for horizons 1..H with no gaps. For
    target hour ``v``, the reference hour ``r`` is ``v`` (``level_hour="valid"``) or ``v - 1``
    (``"previous"``, the last-complete-hour timing of the panel in ``ml.features``). Every hourly
    term at an hour ``u`` is the observation when ``u < issue_time`` and the forecast value
    otherwise:

    - ``<level>``: the value at ``r``, imputed as in ``ml.feature_registry`` where missing;
    - ``temperature_change_{d}d``: temperature at ``r`` minus temperature at ``r - 24 d`` hours;
    - ``precipitation_hours_{d}d``: expected wet hours in ``[v - 24 d, v)`` (the sum of the wet
      probabilities), scaled up from the known hours to the window and missing when fewer than
      half are known, as in the panel;
    - ``precipitation_total_{d}d``: precipitation in inches in the same window, scaled the same way.

    Each of them has a ``_missing`` indicator.
    """
    check_issue_time(issue_time)
    horizons = weather.sort("horizon_hours")["horizon_hours"].to_numpy()
    if len(horizons) == 0 or not np.array_equal(horizons, np.arange(1, len(horizons) + 1)):
        raise ValueError("forecast-time features need the weather of every horizon from 1 to the last one; "
                         "call forecast_time_weather with horizons=range(1, H + 1)")
    if level_hour not in ("valid", "previous"):
        raise ValueError(f"level_hour {level_hour!r} is invalid; use 'valid' or 'previous'")

    first_hour = issue_time - FEATURE_LOOKBACK_HOURS * HOUR
    n_hours = FEATURE_LOOKBACK_HOURS + len(horizons)
    series = mixed_hourly_series(observed, weather, issue_time, first_hour, n_hours)
    valid = FEATURE_LOOKBACK_HOURS + horizons - 1
    reference = valid - (1 if level_hour == "previous" else 0)

    columns: dict[str, Any] = {"issued_at": [issue_time] * len(horizons), "horizon_hours": horizons,
                               "valid_hour": [issue_time + (int(h) - 1) * HOUR for h in horizons]}
    for name, imputed in WEATHER_IMPUTATION.items():
        values = series[name][reference]
        columns[name] = np.where(np.isnan(values), imputed, values)
        columns[f"{name}_missing"] = np.isnan(values)

    temperature = series["temperature_f"]
    for days in TEMPERATURE_CHANGE_DAYS:
        change = temperature[reference] - temperature[reference - days * 24]
        columns[f"temperature_change_{days}d"] = np.nan_to_num(change, nan=0.0)
        columns[f"temperature_change_{days}d_missing"] = np.isnan(change)

    for days in PRECIPITATION_HISTORY_DAYS:
        window = days * 24
        for feature, name in (("precipitation_hours", WET_PROBABILITY), ("precipitation_total", "precipitation_in")):
            total, known = window_total(series[name], valid, window)
            sparse = known * 2 < window
            scaled = np.divide(total * window, known, out=np.zeros(len(valid)), where=known > 0)
            columns[f"{feature}_{days}d"] = np.where(sparse, 0.0, scaled)
            columns[f"{feature}_{days}d_missing"] = sparse

    frame = pl.DataFrame(columns).with_columns(pl.col("issued_at").cast(UTC_HOUR),
                                               pl.col("valid_hour").cast(UTC_HOUR),
                                               pl.col("horizon_hours").cast(pl.Int32))
    logger.info("forecast-time weather features at %s: %d horizons, levels at the %s hour",
                issue_time.isoformat(), frame.height, level_hour)
    return frame
