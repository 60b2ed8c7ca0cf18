"""Hourly weather sources: NOAA reports from local files or from NCEI's Access Data Service.

``WeatherSource`` is the resource behind ``raw_weather_observations``. ``LocalWeatherSource`` reads
the files that the jurisdiction's ``weather.files`` entries match, in their configured layouts, and
its rows replace the raw table. ``NoaaLcdWeatherSource`` pulls the configured stations from the
live service month by month, starting from each station's watermark less a lookback, and its rows
are merged into the raw table by (station, date, report type).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import dagster as dg
import polars as pl

from orchestration.jurisdiction import ConfigError, WeatherApiConfig, WeatherSourceConfig
from orchestration.noaa import NoaaClient, NoaaService, month_chunks
from orchestration.resources import ensure_extracts_folder
from orchestration.weather_extracts import (
    WeatherRows,
    canonical_weather_rows,
    empty_weather_rows,
    read_csv_text,
    read_weather_files,
)

logger = logging.getLogger(__name__)

# Watermarks are stored in Local Standard Time, in the ISO form of the live layout's DATE column.
WATERMARK_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass
class WeatherBatch:
    """Raw weather rows from one read, and how the raw table takes them."""

    rows: WeatherRows
    # "replace": the rows are the whole table. "merge": they update it by (station, date, report type).
    mode: Literal["replace", "merge"]
    # Station id -> the latest report time pulled (LST), for merged pulls only.
    watermarks: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    stations_not_pulled: list[str] = field(default_factory=list)


class WeatherSource(dg.ConfigurableResource, ABC):
    """A source of NOAA weather reports for the jurisdiction's configured stations."""

    @abstractmethod
    def read_observations(self, config: WeatherSourceConfig,
                          watermarks: dict[str, str | None]) -> WeatherBatch:
        """Return the reports to store; ``watermarks`` maps station ids to their stored watermark."""


class LocalWeatherSource(WeatherSource):
    """Weather files in a folder of extracts, matched by the jurisdiction's ``weather.files``."""

    folder: str
    generate_demo: bool = False

    def read_observations(self, config: WeatherSourceConfig,
                          watermarks: dict[str, str | None]) -> WeatherBatch:
        folder = ensure_extracts_folder(Path(self.folder), self.generate_demo)
        if not config.files:
            raise ConfigError("the run reads weather from files, but the jurisdiction's weather block "
                              "has no files entries. Add weather.files, or set weather_source: noaa")
        return WeatherBatch(rows=read_weather_files(folder, config), mode="replace")


class NoaaLcdWeatherSource(WeatherSource):
    """LCD reports pulled live from NOAA NCEI's Access Data Service (``weather.api``)."""

    base_url_override: str | None = None

    def api_config(self, config: WeatherSourceConfig) -> WeatherApiConfig:
        if config.api is None:
            raise ConfigError("the run pulls weather from NOAA, but the jurisdiction's weather block "
                              "has no api block. Add weather.api, or set weather_source: extracts")
        return config.api

    def service(self, api: WeatherApiConfig) -> NoaaService:
        return NoaaService(base_url=self.base_url_override or api.base_url, dataset=api.dataset,
                           timeout_seconds=api.timeout_seconds, max_retries=api.max_retries,
                           backoff_seconds=api.backoff_seconds, user_agent=api.user_agent)

    def read_observations(self, config: WeatherSourceConfig,
                          watermarks: dict[str, str | None]) -> WeatherBatch:
        api = self.api_config(config)
        client = NoaaClient(self.service(api))
        end = api.end_date or datetime.now(timezone.utc).date()
        batch = WeatherBatch(rows=empty_weather_rows(), mode="merge")

        for station in config.stations:
            if station.noaa_id is None:
                batch.stations_not_pulled.append(station.id)
                logger.warning("weather station %s has no noaa_id, so it is not pulled live", station.id)
                continue
            start = pull_start(watermarks.get(station.id), api)
            station_rows = pull_station(client, config, api, station.noaa_id, start, end)
            batch.rows.extend(station_rows)

            latest = latest_report_time(station_rows.frame, station.id, config.layouts[api.layout].timestamp_format)
            previous = watermarks.get(station.id)
            watermark = max(filter(None, (previous, latest)), default=None)
            if watermark is not None:
                batch.watermarks[station.id] = watermark
            logger.info("weather station %s: pulled %d reports from %s to %s, watermark %s -> %s",
                        station.id, station_rows.frame.height, start, end, previous, watermark)

        batch.requests = client.requests
        return batch


def pull_start(watermark: str | None, api: WeatherApiConfig) -> date:
    """Return the first LST date to pull: the watermark's date less the lookback, or the start date."""
    if watermark is None:
        return api.start_date
    try:
        moment = datetime.strptime(watermark, WATERMARK_FORMAT)
    except ValueError as error:
        raise ValueError(f"stored weather watermark {watermark!r} is not in the form {WATERMARK_FORMAT}. "
                         f"Delete its row from raw.ingest_state to pull from weather.api.start_date "
                         f"again") from error
    return max(api.start_date, (moment - timedelta(days=api.lookback_days)).date())


def pull_station(client: NoaaClient, config: WeatherSourceConfig, api: WeatherApiConfig, noaa_id: str,
                 start: date, end: date) -> WeatherRows:
    """Pull one station month by month from ``start`` to ``end`` (LST dates, both inclusive)."""
    layout = config.layouts[api.layout]
    station_ids = config.station_ids()
    rows = empty_weather_rows()

    for chunk_start, chunk_end in month_chunks(start, end):
        chunk = client.get_chunk(noaa_id, chunk_start, chunk_end)
        frame = read_csv_text(chunk.body, chunk.url)
        chunk_rows = canonical_weather_rows(frame, chunk.url, api.layout, layout, station_ids)
        chunk_rows.frame = chunk_rows.frame.with_columns(
            pl.lit(f"noaa:{noaa_id}:{chunk_start.isoformat()}/{chunk_end.isoformat()}").alias("source_file"))
        rows.extend(chunk_rows)
    return rows


def latest_report_time(frame: pl.DataFrame, station: str, timestamp_format: str) -> str | None:
    """Return the latest report time of ``station`` in ``frame`` as watermark text, or None."""
    times = frame.filter(pl.col("station") == station).select(
        pl.col("date").str.strip_chars().str.strptime(pl.Datetime, timestamp_format).max())
    latest = times.item() if times.height else None
    return latest.strftime(WATERMARK_FORMAT) if latest is not None else None
