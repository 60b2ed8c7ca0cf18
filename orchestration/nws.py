"""Hourly forecasts from the US National Weather Service API (api.weather.gov), as one row per hour.

The API serves a forecast in three steps. ``GET {base_url}/points/{lat},{lon}`` (at most four
decimals) names the forecast office and grid cell of a point (``gridId``, ``gridX``, ``gridY``).
``GET {base_url}/gridpoints/{office}/{x},{y}/forecast/hourly`` returns GeoJSON whose
``properties.periods`` are one-hour periods with temperature, probability of precipitation,
relative humidity and wind speed. The precipitation amount is only in the raw grid data,
``GET {base_url}/gridpoints/{office}/{x},{y}``, as ``quantitativePrecipitation`` values that each
cover an ISO 8601 interval (``2017-07-01T05:00:00+00:00/PT6H``).

The client builds the gridpoint URLs from ``gridId``, ``gridX`` and ``gridY`` under ``base_url``
rather than following the URLs in the points document, so every request goes to the configured
host. Every request sends the configured User-Agent, which NWS requires. Throttling (429), server
errors (5xx), timeouts, dropped connections and bodies that are not valid JSON are retried with a
doubling wait capped at ``max_backoff_seconds`` (or the server's ``Retry-After``, under the same
cap), and the last failure raises ``NwsError``.

``parse_forecast`` turns the hourly forecast and the grid data into a frame of
``FORECAST_SCHEMA``. All times are naive UTC. A period that does not parse is left out and listed
with its reason. A grid interval's amount is spread evenly over its hours.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl

from orchestration.http_retry import RetryPolicy, get_with_retries

logger = logging.getLogger(__name__)

MILLIMETRES_PER_INCH = 25.4
KILOMETRES_PER_MILE = 1.609344
MPH_PER_KNOT = 1.150779448
HOUR = timedelta(hours=1)

FORECAST_SCHEMA: dict[str, pl.DataType] = {
    "issued_at": pl.Datetime("us"),
    "valid_hour": pl.Datetime("us"),
    "temperature_f": pl.Float64,
    "precipitation_probability": pl.Float64,
    "precipitation_in": pl.Float64,
    "relative_humidity": pl.Float64,
    "wind_speed_mph": pl.Float64,
    "fetched_at": pl.Datetime("us"),
    "source": pl.String,
}

# Speeds such as "10 mph", "5 to 10 mph" or "20 km/h". The word "calm" is handled before this pattern.
WIND_SPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)(?:\s*to\s*(\d+(?:\.\d+)?))?\s*(mph|km/h|kt|kn)\s*$", re.IGNORECASE)
# The ISO 8601 durations that NWS grid data uses: days and hours, such as PT6H, P1D or P1DT12H.
DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


class NwsError(RuntimeError):
    """A request to the NWS API failed or returned unusable data. The message names the fix."""


@dataclass(frozen=True)
class NwsService:
    """The NWS API endpoint, the forecast point and the HTTP settings of the requests."""

    base_url: str
    latitude: float
    longitude: float
    user_agent: str = "Riskcast/0.1 (weather forecast archive)"
    # Applies to each socket operation (connect, each read), not to a whole request.
    timeout_seconds: float = 30.0
    max_retries: int = 5
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not -90 <= self.latitude <= 90 or not -180 <= self.longitude <= 180:
            raise ValueError(f"forecast point ({self.latitude}, {self.longitude}) is not a valid latitude "
                             f"and longitude. Set forecast.point to decimal degrees")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.backoff_seconds < 0 or self.max_backoff_seconds < self.backoff_seconds:
            raise ValueError(f"backoff_seconds ({self.backoff_seconds}) must be 0 or more and at most "
                             f"max_backoff_seconds ({self.max_backoff_seconds})")

    @property
    def root(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def points_url(self) -> str:
        return f"{self.root}/points/{format_coordinate(self.latitude)},{format_coordinate(self.longitude)}"


def format_coordinate(value: float) -> str:
    """Write a coordinate with at most four decimals, because the API redirects longer ones."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class GridPoint:
    """The forecast office and grid cell that cover the forecast point."""

    office: str
    x: int
    y: int

    @property
    def source(self) -> str:
        return f"nws:{self.office}/{self.x},{self.y}"

    @property
    def path(self) -> str:
        return f"/gridpoints/{self.office}/{self.x},{self.y}"


class NwsClient:
    """HTTP client for the NWS API that retries failures and records every URL."""

    def __init__(self, service: NwsService, sleep: Callable[[float], None] = time.sleep) -> None:
        self.service = service
        self.sleep = sleep
        self.requests: list[str] = []
        self.headers = {"User-Agent": service.user_agent, "Accept": "application/geo+json"}
        self.policy = RetryPolicy(label="NWS", service_noun="API", settings="forecast.api",
                                  max_retries=service.max_retries, backoff_seconds=service.backoff_seconds,
                                  max_wait_seconds=service.max_backoff_seconds)

    def point(self) -> GridPoint:
        """Look up the office and grid cell of the configured point."""
        url = self.service.points_url
        properties = document_properties(self.get_json(url), url)
        try:
            grid = GridPoint(office=str(properties["gridId"]), x=int(properties["gridX"]),
                             y=int(properties["gridY"]))
        except (KeyError, TypeError, ValueError) as error:
            raise NwsError(f"the points document {url} has no valid gridId, gridX and gridY ({error!r}). "
                           f"Check that forecast.point lies in the United States") from error
        logger.info("NWS point %s is in grid %s", url, grid.source)
        return grid

    def hourly_forecast(self, grid: GridPoint) -> dict[str, Any]:
        return self.get_json(f"{self.service.root}{grid.path}/forecast/hourly")

    def grid_data(self, grid: GridPoint) -> dict[str, Any]:
        return self.get_json(f"{self.service.root}{grid.path}")

    def get_json(self, url: str) -> dict[str, Any]:
        """Return the JSON object of a successful response, retrying transient failures."""
        return get_with_retries(url, self.get_once, self.policy, NwsError, advice_for_status,
                                (json.JSONDecodeError, UnicodeDecodeError), describe_bad_body, self.sleep,
                                self.requests)

    def get_once(self, url: str) -> dict[str, Any]:
        request = urllib.request.Request(url, headers=self.headers)
        with urllib.request.urlopen(request, timeout=self.service.timeout_seconds) as response:
            body = response.read()
        document = json.loads(body)
        if not isinstance(document, dict):
            raise NwsError(f"NWS response {url} is JSON but not an object. Check forecast.api.base_url")
        return document


def describe_bad_body(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"a body that is not valid JSON ({error.msg} at character {error.pos})"
    assert isinstance(error, UnicodeDecodeError)
    return f"a body that is not valid UTF-8 ({error.reason} at byte {error.start})"


def advice_for_status(status: int) -> str:
    if status == 404:
        return "Check forecast.api.base_url and that forecast.point lies in the United States"
    if status == 403:
        return "Set forecast.api.user_agent to name the application and a contact, as NWS requires"
    return "Check forecast.api and forecast.point"


def document_properties(document: dict[str, Any], url: str) -> dict[str, Any]:
    properties = document.get("properties")
    if not isinstance(properties, dict):
        raise NwsError(f"NWS response {url} has no properties object. Check forecast.api.base_url")
    return properties


@dataclass
class ParsedForecast:
    """One issue of the hourly forecast: its rows and the periods and grid values left out."""

    issued_at: datetime
    frame: pl.DataFrame
    periods_received: int
    # One "<startTime>: <reason>" entry per period or grid value that did not parse.
    rejected_periods: list[str] = field(default_factory=list)
    rejected_precipitation: list[str] = field(default_factory=list)


def parse_forecast(hourly: dict[str, Any], grid: dict[str, Any] | None, source: str,
                   fetched_at: datetime) -> ParsedForecast:
    """Turn an hourly forecast and the grid data of the same point into one row per valid hour (UTC).

    ``issued_at`` is ``updateTime``, else ``generatedAt``, truncated to the minute, because the
    archive names a file by the minute. Raises ``NwsError`` when the forecast has neither.
    """
    properties = document_properties(hourly, source)
    issued_at = issue_time(properties, source)
    periods = properties.get("periods")
    if not isinstance(periods, list):
        raise NwsError(f"the hourly forecast of {source} has no periods list. Check forecast.api.base_url")

    precipitation, rejected_precipitation = hourly_precipitation(grid)
    rows: dict[datetime, dict[str, Any]] = {}
    rejected: list[str] = []
    for period in periods:
        try:
            row = parse_period(period)
        except ValueError as error:
            start = period.get("startTime") if isinstance(period, dict) else None
            rejected.append(f"{start}: {error}")
            continue
        if row["valid_hour"] in rows:
            rejected.append(f"{row['valid_hour'].isoformat()}: repeats an earlier period's hour")
            continue
        row["precipitation_in"] = precipitation.get(row["valid_hour"])
        rows[row["valid_hour"]] = row

    fetched = as_naive_utc(fetched_at)
    records = [{"issued_at": issued_at, **row, "fetched_at": fetched, "source": source}
               for row in sorted(rows.values(), key=lambda item: item["valid_hour"])]
    frame = pl.DataFrame(records, schema=FORECAST_SCHEMA) if records else empty_forecast_frame()
    return ParsedForecast(issued_at=issued_at, frame=frame.select(list(FORECAST_SCHEMA)),
                          periods_received=len(periods), rejected_periods=rejected,
                          rejected_precipitation=rejected_precipitation)


def empty_forecast_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=FORECAST_SCHEMA)


def issue_time(properties: dict[str, Any], source: str) -> datetime:
    for name in ("updateTime", "generatedAt"):
        value = properties.get(name)
        if value:
            try:
                return parse_instant(str(value)).replace(second=0, microsecond=0)
            except ValueError as error:
                raise NwsError(f"the hourly forecast of {source} has an invalid {name} {value!r}: {error}. "
                               f"It must be ISO 8601 with an offset") from error
    raise NwsError(f"the hourly forecast of {source} has neither updateTime nor generatedAt, so its issue "
                   f"time is unknown and it cannot be archived. Retry later")


def parse_instant(value: str) -> datetime:
    """Parse an ISO 8601 time with an offset and return it as naive UTC."""
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return as_naive_utc(moment)


def as_naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def parse_period(period: Any) -> dict[str, Any]:
    """Return the values of one hourly period. Raises ``ValueError`` naming the field that is invalid."""
    if not isinstance(period, dict):
        raise ValueError(f"the period is a {type(period).__name__}, not an object")
    start = parse_instant(required_text(period, "startTime"))
    end = parse_instant(required_text(period, "endTime"))
    if end - start != HOUR:
        raise ValueError(f"the period lasts {end - start}, not one hour")
    if start.minute or start.second or start.microsecond:
        raise ValueError(f"the period starts at {start.time()} UTC, not on a whole hour")

    return {
        "valid_hour": start,
        "temperature_f": temperature_fahrenheit(period),
        "precipitation_probability": percent_share(period, "probabilityOfPrecipitation"),
        "relative_humidity": percent(period, "relativeHumidity"),
        "wind_speed_mph": wind_speed_mph(period.get("windSpeed")),
    }


def required_text(period: dict[str, Any], name: str) -> str:
    value = period.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} is missing")
    return value


def temperature_fahrenheit(period: dict[str, Any]) -> float:
    """Return the period's temperature in °F from a number with ``temperatureUnit`` or a quantity object."""
    value = period.get("temperature")
    unit = period.get("temperatureUnit")
    if isinstance(value, dict):
        unit = {"wmoUnit:degF": "F", "wmoUnit:degC": "C"}.get(str(value.get("unitCode")), value.get("unitCode"))
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"temperature {value!r} is not a number")
    if unit == "F":
        return float(value)
    if unit == "C":
        return float(value) * 9 / 5 + 32
    raise ValueError(f"temperatureUnit {unit!r} is neither F nor C")


def percent(period: dict[str, Any], name: str) -> float | None:
    """Return ``period[name].value`` in percent (0 to 100), or None when the API gives null."""
    quantity = period.get(name)
    if quantity is None:
        return None
    if not isinstance(quantity, dict):
        raise ValueError(f"{name} {quantity!r} is not an object with a value")
    value = quantity.get("value")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ValueError(f"{name}.value {value!r} is not a percentage from 0 to 100")
    return float(value)


def percent_share(period: dict[str, Any], name: str) -> float | None:
    value = percent(period, name)
    return None if value is None else value / 100


def wind_speed_mph(text: Any) -> float | None:
    """Return a wind speed in mph: the upper value of a range such as "5 to 10 mph", converted from km/h or knots."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"windSpeed {text!r} is not text")
    if text.strip().lower() == "calm":
        return 0.0
    match = WIND_SPEED.match(text)
    if match is None:
        raise ValueError(f"windSpeed {text!r} is not a speed such as '10 mph' or '5 to 10 mph'")
    speed = float(match.group(2) or match.group(1))
    unit = match.group(3).lower()
    if unit == "km/h":
        return speed / KILOMETRES_PER_MILE
    if unit in ("kt", "kn"):
        return speed * MPH_PER_KNOT
    return speed


def hourly_precipitation(grid: dict[str, Any] | None) -> tuple[dict[datetime, float], list[str]]:
    """Spread each ``quantitativePrecipitation`` amount evenly over its interval's hours, in inches.

    Returns the amount per UTC hour and the values left out, with reasons. A value whose interval
    overlaps an earlier one is left out whole, so no hour counts rain twice.
    """
    if grid is None:
        return {}, []
    layer = (grid.get("properties") or {}).get("quantitativePrecipitation")
    if not isinstance(layer, dict):
        return {}, ["quantitativePrecipitation: missing from the grid data"]
    unit = layer.get("uom")
    if unit not in ("wmoUnit:mm", "wmoUnit:in"):
        return {}, [f"quantitativePrecipitation: unit {unit!r} is neither wmoUnit:mm nor wmoUnit:in"]

    hourly: dict[datetime, float] = {}
    rejected: list[str] = []
    for entry in layer.get("values") or []:
        valid_time = entry.get("validTime") if isinstance(entry, dict) else None
        try:
            start, hours = parse_interval(valid_time)
            amount = entry.get("value")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                raise ValueError(f"value {amount!r} is not an amount of 0 or more")
        except ValueError as error:
            rejected.append(f"{valid_time}: {error}")
            continue
        covered = [start + index * HOUR for index in range(hours)]
        if any(hour in hourly for hour in covered):
            rejected.append(f"{valid_time}: overlaps an earlier interval")
            continue
        inches = amount / MILLIMETRES_PER_INCH if unit == "wmoUnit:mm" else float(amount)
        for hour in covered:
            hourly[hour] = inches / hours
    return hourly, rejected


def parse_interval(value: Any) -> tuple[datetime, int]:
    """Parse ``<start>/<duration>`` and return the start (naive UTC) and the number of whole hours."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError("validTime is not an interval such as 2017-07-01T05:00:00+00:00/PT6H")
    start_text, duration_text = value.split("/", 1)
    start = parse_instant(start_text)
    match = DURATION.match(duration_text.strip())
    if match is None or duration_text.strip() in ("P", "PT"):
        raise ValueError(f"duration {duration_text!r} is not days and hours such as PT6H or P1DT12H")
    days, hours, minutes = (int(group or 0) for group in match.groups())
    total = days * 24 + hours
    if minutes or total == 0 or start.minute or start.second:
        raise ValueError("the interval does not start and end on whole hours")
    return start, total


def missing_hours(frame: pl.DataFrame, expected_hours: int) -> dict[datetime, int]:
    """Count, per issue, the hours of the ``expected_hours`` from its first valid hour that have no row.

    Rejected periods count as missing too, because they have no row.
    """
    counts: dict[datetime, int] = {}
    for (issued_at,), issue in frame.group_by("issued_at"):
        first = issue["valid_hour"].min()
        window_end = first + expected_hours * HOUR
        present = issue.filter(pl.col("valid_hour") < window_end)["valid_hour"].n_unique()
        counts[issued_at] = expected_hours - present
    return counts
