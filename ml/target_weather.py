"""Weather of each target hour as known at the cut-off: the model's forecast-time weather inputs.

A forecast issued at the start of hour ``c`` for horizon ``h`` targets the hour ``v = c + h - 1``
(``ml.model_data``). Besides the state at the cut-off, the model can read the weather of ``v``.
Which weather depends on the mode, a run-file choice recorded in every model manifest:

- ``none``: no weather input at all (the cut-off's weather columns are dropped too);
- ``stand_in``: the weather a forecaster had at ``c``: the latest archived forecast issued at
  or before ``c`` where one covers ``v``, else the stand-in of ``ml.weather_forecast``
  (persistence, climatology or their blend, after Murphy 1992). This is the honest mode;
- ``observed``: the weather that was later observed at ``v``. No forecaster has it, so it is an
  upper bound ("oracle weather") for backtests and is refused for live scores.

The inputs are those of ``ml.weather_forecast.forecast_time_features`` with levels at ``v``: the
four weather levels, the one-day temperature change, and the expected wet hours of the one and
three days before ``v``, each with a missing indicator. Every term at an hour before ``c`` is an
observation, and every term at or after ``c`` comes from the mode's weather.

``forecast_time_features`` computes one issue time at a time. Training needs every cut-off hour
of a window, so ``TargetWeather`` computes the same values for many cut-offs at once with arrays.
One difference is deliberate: the climatology is the one of the cut-off's UTC day, built from the
observations before that day's midnight, so one table serves 24 cut-offs. At a midnight cut-off
the two agree exactly, which ``tests/unit/test_target_weather.py`` checks against the
reference function for every horizon.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import numpy as np
import polars as pl

from ml.feature_registry import MISSING_SUFFIX, WEATHER_IMPUTATION, WEATHER_LEVELS, weather_specs
from ml.weather_forecast import (
    FEATURE_LOOKBACK_HOURS,
    UTC_HOUR,
    VARIABLES,
    WET_PROBABILITY,
    WeatherStandIn,
    archived_wet_probability,
    climatology,
    day_of_year,
    observations_before,
)

logger = logging.getLogger(__name__)

WeatherMode = Literal["none", "stand_in", "observed"]
WEATHER_MODES: tuple[str, ...] = ("none", "stand_in", "observed")
PREFIX = "target_"
CHANGE_DAYS = (1,)
WET_HOURS_DAYS = (1, 3)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NO_OBSERVATIONS_BEFORE = datetime(9999, 1, 1, tzinfo=timezone.utc)


def base_names() -> list[str]:
    """Names of the forecast-time features the model reads, without the prefix, before their indicators."""
    return [*WEATHER_LEVELS, *(f"temperature_change_{days}d" for days in CHANGE_DAYS),
            *(f"precipitation_hours_{days}d" for days in WET_HOURS_DAYS)]


def target_weather_columns() -> list[str]:
    """Model input names of the target hour's weather: each feature followed by its indicator."""
    names = []
    for name in base_names():
        names += [f"{PREFIX}{name}", f"{PREFIX}{name}{MISSING_SUFFIX}"]
    return names


TARGET_WEATHER_COLUMNS = tuple(target_weather_columns())


def cutoff_weather_columns() -> set[str]:
    """Panel columns that hold the cut-off's observed weather, with their indicators."""
    names: set[str] = set()
    for spec in weather_specs():
        names.add(spec.name)
        if spec.indicator:
            names.add(spec.indicator)
    return names


@dataclass(frozen=True)
class WeatherInputs:
    """Weather inputs of a model: the mode and, for ``stand_in``, the stand-in forecast's settings."""

    mode: WeatherMode = "stand_in"
    stand_in: WeatherStandIn = field(default_factory=WeatherStandIn)

    def __post_init__(self) -> None:
        if self.mode not in WEATHER_MODES:
            raise ValueError(f"weather mode {self.mode!r} is invalid; use one of {list(WEATHER_MODES)}")

    @property
    def reads_target_weather(self) -> bool:
        return self.mode != "none"

    def state_columns(self, state: list[str]) -> list[str]:
        """Return the cut-off state inputs the model reads: all, or all but the weather ones in mode ``none``."""
        if self.mode != "none":
            return state
        weather = cutoff_weather_columns()
        return [name for name in state if name not in weather]

    def manifest_entry(self) -> dict[str, Any]:
        """Return the settings as plain values for a model manifest, with a label for oracle weather."""
        return {
            "mode": self.mode,
            "oracle_weather": self.mode == "observed",
            "stand_in": self.stand_in.manifest_entry() if self.mode == "stand_in" else None,
            "climatology_refresh": "UTC midnight of the cut-off's day" if self.mode == "stand_in" else None,
            "target_weather_columns": list(TARGET_WEATHER_COLUMNS) if self.reads_target_weather else [],
        }

    @classmethod
    def from_manifest(cls, entry: dict[str, Any] | None) -> WeatherInputs | None:
        """Rebuild the settings of a manifest's ``weather`` entry; None for manifests from before it existed."""
        if not entry:
            return None
        stand_in = WeatherStandIn(**entry["stand_in"]) if entry.get("stand_in") else WeatherStandIn()
        return cls(mode=entry["mode"], stand_in=stand_in)


def epoch_hours(moments: pl.Series) -> np.ndarray:
    """Whole hours since 1970-01-01 UTC of a datetime series."""
    return (moments.cast(UTC_HOUR).dt.epoch("s").to_numpy() // 3600).astype(np.int64)


def as_moment(hour: int) -> datetime:
    return EPOCH + timedelta(hours=int(hour))


def hourly_arrays(observed: pl.DataFrame, first_hour: int, n_hours: int) -> dict[str, np.ndarray]:
    """Observed variables (with the wet probability) as arrays from ``first_hour``, NaN where unobserved."""
    rows = observations_before(observed, NO_OBSERVATIONS_BEFORE)
    positions = epoch_hours(rows["hour"]) - first_hour
    inside = (positions >= 0) & (positions < n_hours)
    arrays = {}
    for name in VARIABLES:
        values = np.full(n_hours, np.nan)
        values[positions[inside]] = rows[name].fill_null(np.nan).to_numpy()[inside]
        arrays[name] = values
    return arrays


def last_known(values: np.ndarray) -> np.ndarray:
    """Index of the last non-NaN value at or before each position (-1 before the first)."""
    indices = np.where(~np.isnan(values), np.arange(values.size), -1)
    return np.maximum.accumulate(indices)


def prefix_known(values: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums of the known values and of the known count along ``axis``, with a leading zero."""
    known = ~np.isnan(values)
    sums = np.cumsum(np.where(known, values, 0.0), axis=axis)
    counts = np.cumsum(known, axis=axis, dtype=np.int64)
    pad = [(0, 0)] * values.ndim
    pad[axis] = (1, 0)
    return np.pad(sums, pad), np.pad(counts, pad)


class TargetWeather:
    """Forecast-time weather inputs for many (cut-off hour, horizon) pairs.

    ``observed`` has hourly observations (``hour`` and the weather levels, as in
    ``marts.fct_hourly_weather``). ``forecasts`` is the archive of issued forecasts
    (``issued_at``, ``valid_hour`` and the levels, as in ``raw.weather_forecasts``), read in mode
    ``stand_in`` only. ``coverage`` counts, after each call, the (cut-off, hour) pairs whose weather
    came from the archive and from the stand-in.
    """

    def __init__(self, observed: pl.DataFrame, inputs: WeatherInputs, horizon_hours: int,
                 forecasts: pl.DataFrame | None = None) -> None:
        if not inputs.reads_target_weather:
            raise ValueError("weather mode 'none' reads no target-hour weather; build no TargetWeather for it")
        self.observed = observed
        self.inputs = inputs
        self.horizon_hours = horizon_hours
        self.forecasts = forecasts if forecasts is not None and forecasts.height else None
        self.coverage = {"forecast": 0, "stand_in": 0, "observed": 0}
        self.climatologies: dict[int, dict[str, np.ndarray]] = {}

    def reset_coverage(self) -> None:
        self.coverage = {"forecast": 0, "stand_in": 0, "observed": 0}

    def columns(self, cutoff_hours: np.ndarray, horizons: np.ndarray) -> dict[str, np.ndarray]:
        """Inputs of each row's target hour: ``cutoff_hours`` in hours since 1970 UTC, ``horizons`` 1..H."""
        horizons = np.asarray(horizons, dtype=np.int64)
        if horizons.size and (horizons.min() < 1 or horizons.max() > self.horizon_hours):
            raise ValueError(f"horizons must be 1 to {self.horizon_hours}, got {horizons.min()} to {horizons.max()}")
        if horizons.size == 0:
            return {name: np.empty(0, dtype=np.float32) for name in TARGET_WEATHER_COLUMNS}
        cutoffs, row_cutoff = np.unique(np.asarray(cutoff_hours, dtype=np.int64), return_inverse=True)
        table = self.pair_table(cutoffs)
        return {name: values[row_cutoff, horizons - 1] for name, values in table.items()}

    def pair_table(self, cutoffs: np.ndarray) -> dict[str, np.ndarray]:
        """Compute every input for every (distinct cut-off, horizon) pair, as float32 arrays of shape (J, H)."""
        first_hour = int(cutoffs.min()) - FEATURE_LOOKBACK_HOURS
        n_hours = int(cutoffs.max()) - first_hour + self.horizon_hours
        series = hourly_arrays(self.observed, first_hour, n_hours)
        positions = cutoffs - first_hour
        weather = self.target_hour_weather(series, cutoffs, positions)

        table: dict[str, np.ndarray] = {}
        for name, imputed in WEATHER_IMPUTATION.items():
            self.put(table, name, weather[name], imputed)
        for days in CHANGE_DAYS:
            self.put(table, f"temperature_change_{days}d",
                     self.temperature_change(series, weather, positions, days), 0.0)
        for days in WET_HOURS_DAYS:
            self.put(table, f"precipitation_hours_{days}d", self.wet_hours(series, weather, positions, days), 0.0)
        return table

    @staticmethod
    def put(table: dict[str, np.ndarray], name: str, values: np.ndarray, imputed: float) -> None:
        missing = np.isnan(values)
        table[f"{PREFIX}{name}"] = np.where(missing, imputed, values).astype(np.float32)
        table[f"{PREFIX}{name}{MISSING_SUFFIX}"] = missing.astype(np.float32)

    def target_hour_weather(self, series: dict[str, np.ndarray], cutoffs: np.ndarray,
                            positions: np.ndarray) -> dict[str, np.ndarray]:
        """Return each variable at each cut-off's horizons 1..H, shape (J, H): observed, archived or stand-in."""
        offsets = positions[:, None] + np.arange(self.horizon_hours)[None, :]
        if self.inputs.mode == "observed":
            self.coverage["observed"] += offsets.size
            return {name: series[name][offsets] for name in VARIABLES}

        weather = self.stand_in(series, cutoffs, positions)
        covered = np.zeros(offsets.shape, dtype=bool)
        if self.forecasts is not None:
            covered = self.apply_archive(weather, cutoffs)
        self.coverage["forecast"] += int(covered.sum())
        self.coverage["stand_in"] += int(covered.size - covered.sum())
        return weather

    def stand_in(self, series: dict[str, np.ndarray], cutoffs: np.ndarray,
                 positions: np.ndarray) -> dict[str, np.ndarray]:
        """Compute the stand-in forecast of ``ml.weather_forecast.stand_in_forecast`` for every cut-off at once."""
        settings = self.inputs.stand_in
        horizons = np.arange(1, self.horizon_hours + 1)
        carried = {name: self.persistence(series[name], positions, settings.persistence_max_gap_hours)
                   for name in VARIABLES} if settings.method in ("persistence", "blend") else {}
        means = self.climatology_values(cutoffs) if settings.method in ("climatology", "blend") else {}

        weather = {}
        for name in VARIABLES:
            if settings.method == "persistence":
                weather[name] = np.repeat(carried[name][:, None], self.horizon_hours, axis=1)
                continue
            if settings.method == "climatology":
                weather[name] = means[name]
                continue
            weights = np.array([settings.persistence_weight(int(h)) for h in horizons])[None, :]
            persistent = np.repeat(carried[name][:, None], self.horizon_hours, axis=1)
            mean = means[name]
            blend = weights * persistent + (1 - weights) * mean
            weather[name] = np.where(np.isnan(persistent), mean, np.where(np.isnan(mean), persistent, blend))
        return weather

    @staticmethod
    def persistence(values: np.ndarray, positions: np.ndarray, max_gap_hours: int) -> np.ndarray:
        """Last value at or before each cut-off's previous hour, if at most ``max_gap_hours`` older."""
        last = last_known(values)[positions - 1]
        fresh = (last >= 0) & (positions - 1 - last <= max_gap_hours)
        return np.where(fresh, values[np.maximum(last, 0)], np.nan)

    def climatology_values(self, cutoffs: np.ndarray) -> dict[str, np.ndarray]:
        """Climatology at each cut-off's target hours, from the table of the cut-off's UTC day."""
        settings = self.inputs.stand_in
        valid = (cutoffs[:, None] + np.arange(self.horizon_hours)[None, :]).reshape(-1)
        valid_moments = pl.Series("hour", valid * 3_600_000_000, dtype=pl.Int64).cast(UTC_HOUR)
        doy = day_of_year(valid_moments).to_numpy().reshape(len(cutoffs), -1) - 1
        hod = (valid % 24).reshape(len(cutoffs), -1)

        values = {name: np.full((len(cutoffs), self.horizon_hours), np.nan) for name in VARIABLES}
        days = cutoffs // 24
        for day in np.unique(days):
            rows = days == day
            tables = self.day_climatology(int(day), settings)
            for name in VARIABLES:
                values[name][rows] = tables[name][doy[rows], hod[rows]]
        return values

    def day_climatology(self, day: int, settings: WeatherStandIn) -> dict[str, np.ndarray]:
        if day not in self.climatologies:
            table = climatology(self.observed, as_moment(day * 24), VARIABLES, settings.climatology_years,
                                settings.smoothing_days)
            self.climatologies[day] = {
                name: table[name].cast(pl.Float64).fill_null(np.nan).to_numpy().reshape(365, 24)
                for name in VARIABLES}
        return self.climatologies[day]

    def apply_archive(self, weather: dict[str, np.ndarray], cutoffs: np.ndarray) -> np.ndarray:
        """Replace stand-in values by the latest complete archived forecast issued at or before each cut-off.

        Follows ``ml.weather_forecast.archived_forecasts``: a row is complete when every level is
        present, and its wet probability falls back to whether the amount is above zero.
        """
        archive = complete_archive(self.forecasts)
        n_cutoffs, horizons = len(cutoffs), self.horizon_hours
        pairs = pl.DataFrame({
            "pair": np.arange(n_cutoffs * horizons, dtype=np.int64),
            "cutoff": np.repeat(cutoffs, horizons),
            "valid": (cutoffs[:, None] + np.arange(horizons)[None, :]).reshape(-1),
        }).sort("cutoff")
        matched = pairs.join_asof(archive, left_on="cutoff", right_on="issued", by_left="valid",
                                  by_right="valid_hour", strategy="backward",
                                  check_sortedness=False).filter(pl.col("issued").is_not_null())

        covered = np.zeros(n_cutoffs * horizons, dtype=bool)
        index = matched["pair"].to_numpy()
        covered[index] = True
        for name in VARIABLES:
            flat = weather[name].reshape(-1).copy()
            flat[index] = matched[name].to_numpy()
            weather[name] = flat.reshape(n_cutoffs, horizons)
        return covered.reshape(n_cutoffs, horizons)

    def temperature_change(self, series: dict[str, np.ndarray], weather: dict[str, np.ndarray],
                           positions: np.ndarray, days: int) -> np.ndarray:
        """Temperature at the target hour minus ``days`` days earlier, observed before the cut-off."""
        horizons = np.arange(self.horizon_hours)[None, :]
        back = horizons - days * 24
        observed = series["temperature_f"][np.maximum(positions[:, None] + back, 0)]
        forecast = np.take_along_axis(weather["temperature_f"], np.maximum(back, 0).repeat(len(positions), 0), 1)
        earlier = np.where(back < 0, observed, forecast)
        return weather["temperature_f"] - earlier

    def wet_hours(self, series: dict[str, np.ndarray], weather: dict[str, np.ndarray],
                  positions: np.ndarray, days: int) -> np.ndarray:
        """Expected wet hours in the ``days`` days before the target hour, scaled to the window."""
        window = days * 24
        horizon_index = np.arange(self.horizon_hours)[None, :]
        start = horizon_index - window

        observed_sums, observed_counts = prefix_known(series[WET_PROBABILITY])
        first = positions[:, None] + np.minimum(start, 0)
        observed_total = observed_sums[positions][:, None] - observed_sums[first]
        observed_known = observed_counts[positions][:, None] - observed_counts[first]

        forecast_sums, forecast_counts = prefix_known(weather[WET_PROBABILITY], axis=1)
        begin = np.maximum(start, 0).repeat(len(positions), 0)
        end = horizon_index.repeat(len(positions), 0)
        forecast_total = np.take_along_axis(forecast_sums, end, 1) - np.take_along_axis(forecast_sums, begin, 1)
        forecast_known = np.take_along_axis(forecast_counts, end, 1) - np.take_along_axis(forecast_counts, begin, 1)

        total = observed_total + forecast_total
        known = observed_known + forecast_known
        scaled = np.divide(total * window, known, out=np.zeros(total.shape), where=known > 0)
        return np.where(known * 2 < window, np.nan, scaled)


def complete_archive(forecasts: pl.DataFrame) -> pl.DataFrame:
    """Archived forecast rows with every level present, one per (issue, valid hour), in issue order."""
    probability = archived_wet_probability(forecasts)
    hours = pl.col("issued_at").cast(UTC_HOUR).dt.epoch("s") // 3600
    return (
        forecasts.filter(pl.all_horizontal(pl.col(name).is_not_null() for name in WEATHER_LEVELS))
        .with_columns(probability.alias(WET_PROBABILITY), hours.alias("issued"),
                      (pl.col("valid_hour").cast(UTC_HOUR).dt.epoch("s") // 3600).alias("valid_hour"))
        .unique(subset=["issued", "valid_hour"], keep="last", maintain_order=True)
        .sort("issued")
        .select("issued", "valid_hour", *(pl.col(name).cast(pl.Float64) for name in VARIABLES))
    )
