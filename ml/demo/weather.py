"""Hourly weather simulation and the NOAA LCD hourly files written from it.

The simulation gives the true hourly temperature, humidity, wind and precipitation over
the run, and the incident process reads its temperature. The writer reports that weather
in the LCD layout: FM-15 routine reports, FM-16 specials and one SOD summary a day, in one
file per year of Local Standard Time. The weather files have trace, blank and suspect
precipitation values, rare missing temperatures and a few multi-hour gaps with no report.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.demo.clock import (
    LST_OFFSET_SECONDS,
    SECONDS_PER_HOUR,
    _day_of_year,
    _unix_day,
    _wall_years,
    _Window,
)
from ml.demo.files import _remove_stale_files, _write_gzip_csv

logger = logging.getLogger(__name__)

LCD_HEADER: tuple[str, ...] = (
    "STATION", "STATION_NAME", "ELEVATION", "LATITUDE", "LONGITUDE", "DATE", "REPORTTPYE",
    "HOURLYDRYBULBTEMPF", "HOURLYRelativeHumidity", "HOURLYWindSpeed", "HOURLYPrecip",
    "DAILYPrecip",
)
"""Subset of the NOAA LCD hourly header, with its spelling (including `REPORTTPYE`)."""

# Weather station and weather flaws.
STATION_ID = "WBAN:99999"
STATION_NAME = "DEMO FIELD STATION"
STATION_ELEVATION_M = "788.2"
STATION_LATITUDE = "40.0180"
STATION_LONGITUDE = "-99.9770"
ROUTINE_REPORT_MINUTE = 51
BLANK_PRECIP_SHARE = 0.20
DRY_HOUR_TRACE_SHARE = 0.125
SUSPECT_PRECIP_SHARE = 0.005
MISSING_TEMPERATURE_SHARE = 0.002
SPECIAL_REPORT_SHARE_DRY = 0.03
SPECIAL_REPORT_SHARE_RAIN = 0.25
REPORT_GAPS_PER_YEAR = 4


@dataclass(frozen=True)
class _Weather:
    """True hourly weather on the weather window, before any reporting flaws."""

    temperature_f: np.ndarray
    relative_humidity: np.ndarray
    wind_mph: np.ndarray
    precip_in: np.ndarray  # Inches, rounded to 0.01. Zero outside rain spells.
    raining: np.ndarray


def _simulate_weather(rng: np.random.Generator, window: _Window) -> _Weather:
    """Simulate true hourly weather over the weather window.

    Temperature is a seasonal cycle (coldest mid-January, 52 F mean) plus a daily cycle
    peaking at 15:00 LST, a slowly varying weather anomaly and small hourly noise.
    Rain falls in spells that start at random and last about 5 hours on average.
    """
    hour_count = window.weather_hours
    utc = window.weather_start_utc + SECONDS_PER_HOUR * np.arange(hour_count, dtype=np.int64)
    lst = utc + LST_OFFSET_SECONDS
    lst_hour = (lst // SECONDS_PER_HOUR) % 24
    season = np.cos(2 * np.pi * (_day_of_year(lst) - 18) / 365.25)

    anomaly = _smoothed_noise(rng, hour_count, decay_hours=36.0, sd=7.0)
    temperature = (52.0 - 24.0 * season + 9.0 * np.cos(2 * np.pi * (lst_hour - 15) / 24)
                   + anomaly + rng.normal(0.0, 1.0, hour_count))

    raining = _draw_rain_spells(rng, hour_count, season)
    precip = np.where(raining, np.round(rng.gamma(0.7, 0.06, hour_count), 2), 0.0)

    humidity = (62.0 + 14.0 * np.cos(2 * np.pi * (lst_hour - 5) / 24) - 0.25 * anomaly
                + 20.0 * raining + rng.normal(0.0, 6.0, hour_count))
    wind = np.round(rng.gamma(2.2, 4.5, hour_count))

    return _Weather(
        temperature_f=np.round(temperature).astype(np.int64),
        relative_humidity=np.clip(np.round(humidity), 12, 100).astype(np.int64),
        wind_mph=np.clip(wind, 0, 50).astype(np.int64),
        precip_in=precip,
        raining=raining,
    )


def _smoothed_noise(rng: np.random.Generator, length: int, decay_hours: float,
                    sd: float) -> np.ndarray:
    """Return noise with exponential autocorrelation and standard deviation near `sd`."""
    kernel = np.exp(-np.arange(int(6 * decay_hours)) / decay_hours)
    white = rng.normal(0.0, 1.0, length + kernel.size - 1)
    smoothed = np.convolve(white, kernel, mode="valid")
    return smoothed * (sd / math.sqrt(float(np.sum(kernel ** 2))))


def _draw_rain_spells(rng: np.random.Generator, hour_count: int,
                      season: np.ndarray) -> np.ndarray:
    """Mark rain hours. Spells start more often in summer (`season` near -1)."""
    start_probability = 0.010 * (1.0 - 0.4 * season)
    starts = np.flatnonzero(rng.random(hour_count) < start_probability)
    lengths = rng.geometric(0.2, starts.size)

    # Mark each spell as +1 at its start and -1 after its end, then sum up.
    steps = np.zeros(hour_count + 1, dtype=np.int64)
    np.add.at(steps, starts, 1)
    np.add.at(steps, np.minimum(starts + lengths, hour_count), -1)
    return np.cumsum(steps[:-1]) > 0


def _write_lcd_files(folder: Path, rng: np.random.Generator, window: _Window,
                     weather: _Weather) -> None:
    """Write one gzip LCD CSV per calendar year in Local Standard Time (UTC-6, no DST)."""
    table = _build_lcd_table(rng, window, weather)
    order = np.lexsort((table["report_rank"], table["lst_minute"]))
    years = _wall_years(table["lst_minute"][order] * 60)
    dates = np.char.replace(
        np.datetime_as_string(table["lst_minute"][order].astype("datetime64[m]"), unit="m"),
        "T", " ",
    )
    count = order.size
    columns = [
        np.full(count, STATION_ID, dtype=object),
        np.full(count, STATION_NAME, dtype=object),
        np.full(count, STATION_ELEVATION_M, dtype=object),
        np.full(count, STATION_LATITUDE, dtype=object),
        np.full(count, STATION_LONGITUDE, dtype=object),
        dates,
        table["report_type"][order],
        table["temperature"][order],
        table["humidity"][order],
        table["wind"][order],
        table["hourly_precip"][order],
        table["daily_precip"][order],
    ]
    written = []

    for year in range(window.start.year, window.end.year + 1):
        in_year = np.flatnonzero(years == year)
        path = folder / f"demo_lcd_hourly_{year}.csv.gz"
        _write_gzip_csv(path, LCD_HEADER, zip(*(column[in_year] for column in columns)))
        written.append(path)
        logger.info("Wrote %d synthetic LCD rows to %s", in_year.size, path)

    _remove_stale_files(folder, "demo_lcd_hourly_*.csv.gz", written)


def _build_lcd_table(rng: np.random.Generator, window: _Window,
                     weather: _Weather) -> dict[str, np.ndarray]:
    """Build FM-15, FM-16 and SOD rows as string columns keyed by LST minute."""
    day_count = (window.end - window.start).days + 1
    hour_count = 24 * day_count
    # LST midnight at the start of `start` is 06:00 UTC, one hour into the weather window.
    weather_index = 1 + np.arange(hour_count)
    first_lst_minute = _unix_day(window.start) * 24 * 60

    routine = _routine_reports(rng, weather, weather_index, first_lst_minute)
    special_hours, special = _special_reports(rng, weather, weather_index, first_lst_minute)
    summary = _summary_of_day_reports(weather, weather_index, routine["hourly_precip"],
                                      first_lst_minute, day_count)

    # Gaps remove the hourly reports of an outage but keep its summary of day.
    reported = ~_draw_report_gaps(rng, hour_count, day_count)
    special_reported = reported[special_hours]

    return {
        name: np.concatenate([routine[name][reported], special[name][special_reported],
                              summary[name]])
        for name in routine
    }


def _routine_reports(rng: np.random.Generator, weather: _Weather, weather_index: np.ndarray,
                     first_lst_minute: int) -> dict[str, np.ndarray]:
    """Build one FM-15 row per LST hour at minute ROUTINE_REPORT_MINUTE."""
    hour_count = weather_index.size
    temperature = weather.temperature_f[weather_index].astype(str).astype(object)
    temperature[rng.random(hour_count) < MISSING_TEMPERATURE_SHARE] = "M"

    return {
        "lst_minute": first_lst_minute + 60 * np.arange(hour_count) + ROUTINE_REPORT_MINUTE,
        "report_rank": np.zeros(hour_count, dtype=np.int64),
        "report_type": np.full(hour_count, "FM-15", dtype=object),
        "temperature": temperature,
        "humidity": weather.relative_humidity[weather_index].astype(str).astype(object),
        "wind": weather.wind_mph[weather_index].astype(str).astype(object),
        "hourly_precip": _format_hourly_precip(rng, weather.precip_in[weather_index],
                                               weather.raining[weather_index]),
        "daily_precip": np.full(hour_count, "", dtype=object),
    }


def _format_hourly_precip(rng: np.random.Generator, amount: np.ndarray,
                          raining: np.ndarray) -> np.ndarray:
    """Format hourly precipitation the LCD way: `0.00`, `0.04`, `T` (trace), blank, `0.02s`.

    About BLANK_PRECIP_SHARE of hours are blank. A rain hour that rounds to 0.00 in. is a
    trace, and a share of dry hours also report a trace, which makes about 10% `T` hours.
    """
    size = amount.size
    text = np.where(amount >= 0.01, np.char.mod("%.2f", amount), "0.00").astype(object)
    text[raining & (amount < 0.01)] = "T"
    text[~raining & (rng.random(size) < DRY_HOUR_TRACE_SHARE)] = "T"

    suspect = (text != "T") & (rng.random(size) < SUSPECT_PRECIP_SHARE)
    text[suspect] = text[suspect] + "s"
    text[rng.random(size) < BLANK_PRECIP_SHARE] = ""
    return text


def _special_reports(rng: np.random.Generator, weather: _Weather, weather_index: np.ndarray,
                     first_lst_minute: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Build FM-16 special reports and return their hour indexes and columns.

    A few dry hours and many rain hours get one special. A special falls at any minute of
    its hour except the routine minute and 59, so it never shares a time with an FM-15 row
    or the 23:59 SOD row.
    """
    raining = weather.raining[weather_index]
    share = np.where(raining, SPECIAL_REPORT_SHARE_RAIN, SPECIAL_REPORT_SHARE_DRY)
    hour = np.flatnonzero(rng.random(weather_index.size) < share)
    count = hour.size

    minute = rng.integers(0, 58, count)
    minute = np.where(minute >= ROUTINE_REPORT_MINUTE, minute + 1, minute)
    source = weather_index[hour]
    temperature = weather.temperature_f[source] + rng.integers(-1, 2, count)
    partial = np.round(weather.precip_in[source] * rng.uniform(0.2, 0.9, count), 2)
    precip = np.where(partial >= 0.01, np.char.mod("%.2f", partial), "T").astype(object)
    precip[~raining[hour]] = ""

    return hour, {
        "lst_minute": first_lst_minute + 60 * hour + minute,
        "report_rank": np.ones(count, dtype=np.int64),
        "report_type": np.full(count, "FM-16", dtype=object),
        "temperature": temperature.astype(str).astype(object),
        "humidity": weather.relative_humidity[source].astype(str).astype(object),
        "wind": weather.wind_mph[source].astype(str).astype(object),
        "hourly_precip": precip,
        "daily_precip": np.full(count, "", dtype=object),
    }


def _summary_of_day_reports(weather: _Weather, weather_index: np.ndarray,
                            hourly_precip: np.ndarray, first_lst_minute: int,
                            day_count: int) -> dict[str, np.ndarray]:
    """Build one SOD row per LST day at 23:59 with DAILYPrecip and blank hourly fields.

    DAILYPrecip is the day's true total, `T` when the day had only traces, else `0.00`.
    """
    total = weather.precip_in[weather_index].reshape(day_count, 24).sum(axis=1)
    had_trace = (hourly_precip == "T").reshape(day_count, 24).any(axis=1)
    daily = np.where(total >= 0.005, np.char.mod("%.2f", total),
                     np.where(had_trace, "T", "0.00")).astype(object)
    blank = np.full(day_count, "", dtype=object)

    return {
        "lst_minute": first_lst_minute + 24 * 60 * np.arange(day_count) + 23 * 60 + 59,
        "report_rank": np.full(day_count, 2, dtype=np.int64),
        "report_type": np.full(day_count, "SOD", dtype=object),
        "temperature": blank,
        "humidity": blank,
        "wind": blank,
        "hourly_precip": blank,
        "daily_precip": daily,
    }


def _draw_report_gaps(rng: np.random.Generator, hour_count: int, day_count: int) -> np.ndarray:
    """Mark hours inside about REPORT_GAPS_PER_YEAR outages of 3 to 8 hours each."""
    gap_count = round(REPORT_GAPS_PER_YEAR * day_count / 365)
    starts = rng.integers(0, hour_count, gap_count)
    lengths = rng.integers(3, 9, gap_count)

    in_gap = np.zeros(hour_count, dtype=bool)
    for gap_start, length in zip(starts, lengths):
        in_gap[gap_start:gap_start + length] = True
    return in_gap
