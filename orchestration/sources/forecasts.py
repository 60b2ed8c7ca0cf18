"""Hourly weather forecasts: an archive folder of Parquet files, or the live NWS API.

``ForecastSource`` is the resource behind ``raw_weather_forecasts``. Both implementations return
frames of ``FORECAST_SCHEMA`` (orchestration.nws), one row per issue time and valid hour.

The archive layout is one Parquet file per issue, ``<folder>/issued=<YYYY-MM-DDTHHMMZ>.parquet``,
named by the issue time in UTC. ``write_forecast_archive`` writes each file to a temporary name
and renames it, so a reader never sees half a file and writing the same issue again replaces it.
``LocalForecastSource`` reads every file of such a folder. ``NwsForecastSource`` fetches the
current forecast of the jurisdiction's ``forecast.point``.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.jurisdiction import ConfigError, ForecastConfig
from orchestration.nws import FORECAST_SCHEMA, NwsClient, NwsService, empty_forecast_frame, parse_forecast

logger = logging.getLogger(__name__)

ARCHIVE_TIME_FORMAT = "%Y-%m-%dT%H%MZ"
ARCHIVE_PREFIX = "issued="
DEFAULT_EXPECTED_HOURS = 156


@dataclass
class ForecastBatch:
    """Forecast rows from one read, with what was left out and where they came from."""

    frame: pl.DataFrame
    # True for live fetches, whose issues the asset writes to the archive folder under RISKCAST_HOME.
    archive: bool
    expected_hours: int = DEFAULT_EXPECTED_HOURS
    files: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    rejected_periods: list[str] = field(default_factory=list)
    rejected_precipitation: list[str] = field(default_factory=list)


class ForecastSource(dg.ConfigurableResource, ABC):
    """A source of hourly weather forecasts for the jurisdiction."""

    @abstractmethod
    def read_forecasts(self, config: ForecastConfig | None) -> ForecastBatch:
        """Return the forecast rows to store; ``config`` is the jurisdiction's forecast block."""


class LocalForecastSource(ForecastSource):
    """A folder of archived forecasts, one Parquet file per issue (``issued=<time>.parquet``)."""

    folder: str

    def read_forecasts(self, config: ForecastConfig | None) -> ForecastBatch:
        folder = Path(self.folder)
        if not folder.is_dir():
            raise ConfigError(f"the run reads archived forecasts, but the folder {folder} does not exist. "
                              f"Put issued=<YYYY-MM-DDTHHMMZ>.parquet files there, or set forecast_source: none")
        frame, files = read_forecast_archive(folder)
        expected = config.api.expected_hours if config is not None else DEFAULT_EXPECTED_HOURS
        logger.info("read %d forecast rows from %d archive files in %s", frame.height, len(files), folder)
        return ForecastBatch(frame=frame, archive=False, expected_hours=expected, files=files)


class NwsForecastSource(ForecastSource):
    """The current hourly forecast of ``forecast.point``, fetched from the NWS API (``forecast.api``)."""

    base_url_override: str | None = None

    def service(self, config: ForecastConfig) -> NwsService:
        api = config.api
        return NwsService(base_url=self.base_url_override or api.base_url, latitude=config.point.latitude,
                          longitude=config.point.longitude, user_agent=api.user_agent_header(),
                          timeout_seconds=api.timeout_seconds, max_retries=api.max_retries,
                          backoff_seconds=api.backoff_seconds, max_backoff_seconds=api.max_backoff_seconds)

    def read_forecasts(self, config: ForecastConfig | None) -> ForecastBatch:
        if config is None:
            raise ConfigError("the run fetches forecasts from NWS, but the jurisdiction has no forecast block. "
                              "Add forecast.point, or set forecast_source: archive or none")
        client = NwsClient(self.service(config))
        grid = client.point()
        hourly = client.hourly_forecast(grid)
        grid_data = client.grid_data(grid)
        parsed = parse_forecast(hourly, grid_data, grid.source, fetched_at=datetime.now(timezone.utc))

        logger.info("NWS %s issue %s: %d of %d periods kept, %d rejected", grid.source, parsed.issued_at,
                    parsed.frame.height, parsed.periods_received, len(parsed.rejected_periods))
        return ForecastBatch(frame=parsed.frame, archive=True, expected_hours=config.api.expected_hours,
                             requests=client.requests, rejected_periods=parsed.rejected_periods,
                             rejected_precipitation=parsed.rejected_precipitation)


def archive_file_name(issued_at: datetime) -> str:
    return f"{ARCHIVE_PREFIX}{issued_at.strftime(ARCHIVE_TIME_FORMAT)}.parquet"


def write_forecast_archive(frame: pl.DataFrame, folder: Path) -> list[Path]:
    """Write one Parquet file per issue time of ``frame`` into ``folder`` and return their paths.

    Each file is written under a temporary name in the same folder and renamed over the old one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for (issued_at,), issue in frame.sort("issued_at", "valid_hour").group_by("issued_at", maintain_order=True):
        path = folder / archive_file_name(issued_at)
        temporary = folder / f".{path.name}.{os.getpid()}.tmp"
        issue.select(list(FORECAST_SCHEMA)).write_parquet(temporary, compression="zstd")
        os.replace(temporary, path)
        paths.append(path)
    return paths


def read_forecast_archive(folder: Path) -> tuple[pl.DataFrame, list[str]]:
    """Read every ``issued=*.parquet`` file of ``folder`` and return the rows and the file names.

    Raises ``ConfigError`` when a file lacks a column of ``FORECAST_SCHEMA`` or contains an issue time
    other than the one its name gives.
    """
    paths = sorted(folder.glob(f"{ARCHIVE_PREFIX}*.parquet"))
    frames = [read_archive_file(path) for path in paths]
    frame = pl.concat(frames, how="vertical") if frames else empty_forecast_frame()
    return frame, [path.name for path in paths]


def read_archive_file(path: Path) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    missing = [name for name in FORECAST_SCHEMA if name not in frame.columns]
    if missing:
        raise ConfigError(f"forecast archive file {path} has no columns {missing}. Write archive files with "
                          f"write_forecast_archive, or remove the file")
    try:
        frame = frame.select([pl.col(name).cast(dtype) for name, dtype in FORECAST_SCHEMA.items()])
    except pl.exceptions.PolarsError as error:
        raise ConfigError(f"forecast archive file {path} has columns of the wrong type ({error}). Write "
                          f"archive files with write_forecast_archive, or remove the file") from error

    nulls = frame.select(pl.col("issued_at").null_count() + pl.col("valid_hour").null_count()).item()
    if nulls:
        raise ConfigError(f"forecast archive file {path} has {nulls} rows without issued_at or valid_hour. "
                          f"Remove the file or those rows")
    names = {archive_file_name(issued_at) for issued_at in frame["issued_at"].unique().to_list()}
    if names - {path.name}:
        raise ConfigError(f"forecast archive file {path} contains issue times {sorted(names)} other than the "
                          f"one its name gives. Rename the file or split it, one issue per file")
    return frame
