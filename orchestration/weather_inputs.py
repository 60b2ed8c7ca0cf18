"""Warehouse reads behind the ensemble's forecast-time weather (``ml.target_weather``).

Training, scoring and the backtests build a ``TargetWeather`` from the observed hours of
``marts.fct_hourly_weather`` and, where the run archives forecasts, from ``raw.weather_forecasts``.
A trained model records its weather mode in ``manifest.json``, and scoring reads it back from
there, so a model is always scored with the weather inputs it was trained on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from ml.target_weather import TargetWeather, WeatherInputs
from ml.weather_forecast import FEATURE_LOOKBACK_HOURS, UTC_HOUR
from orchestration.warehouse import connect

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
FORECAST_TABLE = "weather_forecasts"
# Forecasts issued this long before the first cut-off can still cover its target hours.
FORECAST_REACH = timedelta(days=8)


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def observed_start(inputs: WeatherInputs, first_cutoff: datetime) -> datetime:
    """First hour the weather of cut-offs from ``first_cutoff`` can read: the climatology years and lookback."""
    years = inputs.stand_in.climatology_years if inputs.mode == "stand_in" else 0
    return first_cutoff - timedelta(days=366 * years + 1) - FEATURE_LOOKBACK_HOURS * HOUR


def table_exists(connection, schema: str, table: str) -> bool:
    return bool(connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table]).fetchone()[0])


def read_observed_weather(warehouse: Path, start: datetime, end: datetime) -> pl.DataFrame:
    """Observed hours ``[start, end)`` of ``marts.fct_hourly_weather``, hours in UTC.

    A warehouse without the weather mart gives no rows, with a warning: every target hour's
    weather is then missing and imputed, and its indicators mark it.
    """
    with connect(warehouse, read_only=True) as connection:
        if not table_exists(connection, "marts", "fct_hourly_weather"):
            logger.warning("%s has no marts.fct_hourly_weather; the target-hour weather of %s to %s is imputed",
                           warehouse, start.isoformat(), end.isoformat())
            return pl.DataFrame(schema={"hour": UTC_HOUR, "temperature_f": pl.Float64, "precipitation_in": pl.Float64,
                                        "relative_humidity": pl.Float64, "wind_speed_mph": pl.Float64,
                                        "precipitation_is_trace": pl.Boolean})
        return connection.execute(
            "SELECT hour, temperature_f, precipitation_in, relative_humidity, wind_speed_mph, "
            "precipitation_is_trace FROM marts.fct_hourly_weather WHERE hour >= ? AND hour < ? ORDER BY hour",
            [naive(start), naive(end)],
        ).pl().with_columns(pl.col("hour").dt.replace_time_zone("UTC"))


def read_forecast_archive(warehouse: Path, first_cutoff: datetime, last_cutoff: datetime) -> pl.DataFrame | None:
    """Archived forecasts issued in ``[first_cutoff - 8 days, last_cutoff]``, or None without an archive."""
    with connect(warehouse, read_only=True) as connection:
        if not table_exists(connection, "raw", FORECAST_TABLE):
            return None
        frame = connection.execute(
            f"SELECT * FROM raw.{FORECAST_TABLE} WHERE issued_at >= ? AND issued_at <= ?",
            [naive(first_cutoff - FORECAST_REACH), naive(last_cutoff)]).pl()
    if frame.height == 0:
        return None
    return frame.with_columns(pl.col("issued_at").cast(UTC_HOUR), pl.col("valid_hour").cast(UTC_HOUR))


def target_weather(warehouse: Path, inputs: WeatherInputs | None, horizon_hours: int,
                   first_cutoff: datetime, last_cutoff: datetime) -> TargetWeather | None:
    """Build the target-hour weather of cut-offs ``first_cutoff`` to ``last_cutoff``; None when the mode reads none.

    Mode ``observed`` reads the observations of the target hours themselves (the oracle); mode
    ``stand_in`` reads observations before each cut-off only, and the forecast archive.
    """
    if inputs is None or not inputs.reads_target_weather:
        return None
    end = last_cutoff + horizon_hours * HOUR if inputs.mode == "observed" else last_cutoff
    observed = read_observed_weather(warehouse, observed_start(inputs, first_cutoff), end)
    forecasts = read_forecast_archive(warehouse, first_cutoff, last_cutoff) if inputs.mode == "stand_in" else None
    return TargetWeather(observed, inputs, horizon_hours, forecasts)


def model_weather_inputs(model_folder: Path) -> WeatherInputs | None:
    """Read the weather mode a saved model was trained with from its manifest; None for older models."""
    path = Path(model_folder) / "manifest.json"
    if not path.exists():
        return None
    return WeatherInputs.from_manifest(json.loads(path.read_text()).get("weather"))


@dataclass
class WeatherCoverage:
    """Target hours whose weather came from archived forecasts, the stand-in, or observations."""

    forecast: int = 0
    stand_in: int = 0
    observed: int = 0

    def add(self, weather: TargetWeather | None) -> None:
        if weather is None:
            return
        self.forecast += weather.coverage["forecast"]
        self.stand_in += weather.coverage["stand_in"]
        self.observed += weather.coverage["observed"]

    @property
    def total(self) -> int:
        return self.forecast + self.stand_in + self.observed

    def note(self) -> str:
        if self.total == 0:
            return "no target-hour weather (mode none, or models trained before the weather modes)"
        return (f"{self.forecast} of {self.total} issue-hour x horizon pairs from archived forecasts, "
                f"{self.stand_in} from the stand-in forecast, {self.observed} from observations")
