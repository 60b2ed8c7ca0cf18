"""Synthetic 311 service requests in two City of Chicago portal layouts, one gzip CSV per year.

`311/demo_sanitation_code_complaints_YYYY.csv.gz` follows the historical "Sanitation Code
Complaints" export: creation dates without a time of day, and complaints about an already reported
violation marked with the status "Completed - Dup" or "Open - Dup". A few request numbers appear
twice, the later row with the later completion date, as in the real export.

`311/demo_311_service_requests_YYYY.csv.gz` uses a subset of the columns of the unified
"311 Service Requests" export, with street light and graffiti requests distinguished by `SR_TYPE`.
Its times carry a time of day in the `MM/DD/YYYY hh:mm:ss AM` format, a `DUPLICATE` flag marks
repeat reports, and some requests appear twice: a stale open version listed after the final one,
with an earlier `LAST_MODIFIED_DATE`.

Requests fall in cells in proportion to the cells' crime background rates, and some rows have
no coordinates or zero coordinates, so that the warehouse has rows to quarantine.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ml.demo.clock import (
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    _ChicagoClock,
    _unix_day,
    _wall_years,
    _Window,
)
from ml.demo.crime_files import _admin_codes, _format_chicago_timestamps, _format_degrees
from ml.demo.files import _remove_stale_files, _write_gzip_csv
from ml.demo.grid import _Grid
from ml.demo.records import _draw_points
from ml.demo.tables import STREET_NAMES

logger = logging.getLogger(__name__)

SANITATION_HEADER: tuple[str, ...] = (
    "Creation_Date", "Status", "Completion_Date", "Service_Request_Number", "Type_of_Service_Request",
    "What_is_the_Nature_of_this_Code_Violation", "Street_Address", "ZIP_Code", "X_Coordinate",
    "Y_Coordinate", "Ward", "Police_District", "Community_Area", "Latitude", "Longitude", "Location",
)
"""Column names of the historical Chicago sanitation code complaints export, in file order."""

SERVICE_REQUEST_HEADER: tuple[str, ...] = (
    "SR_NUMBER", "SR_TYPE", "STATUS", "ORIGIN", "CREATED_DATE", "LAST_MODIFIED_DATE", "CLOSED_DATE",
    "STREET_ADDRESS", "COMMUNITY_AREA", "WARD", "POLICE_DISTRICT", "DUPLICATE", "LATITUDE",
    "LONGITUDE", "LOCATION",
)
"""A subset of the columns of the unified Chicago 311 export."""

# Mean requests per day, and the seasonal swing as a share of the mean with its peak day of year.
SANITATION_PER_DAY = (1.5, 0.4, 200)
STREET_LIGHTS_PER_DAY = (1.2, 0.3, 15)
GRAFFITI_PER_DAY = (0.8, 0.3, 200)

# Data flaws, as shares of requests.
MISSING_COORDINATE_SHARE = 0.01
ZERO_COORDINATE_SHARE = 0.003
SANITATION_STATUSES = (("Completed", 0.935), ("Completed - Dup", 0.04), ("Open - Dup", 0.005),
                       ("Open", 0.02))
REPEATED_NUMBER_SHARE = 0.005
SERVICE_REQUEST_STATUSES = (("Completed", 0.88), ("Open", 0.10), ("Canceled", 0.02))
DUPLICATE_FLAG_SHARE = 0.04
STALE_VERSION_SHARE = 0.02

VIOLATIONS = ("Garbage in alley", "Garbage in yard", "Overflowing carts", "Dumpster not being emptied",
              "Other")
ORIGINS = ("Phone Call", "Mobile Device", "Internet")
REQUEST_TYPES = ("Street Light Out Complaint", "Graffiti Removal Request")


def _write_service_request_files(folder: Path, rng: np.random.Generator, grid: _Grid, window: _Window,
                                 clock: _ChicagoClock, cell_rates: np.ndarray) -> int:
    """Write both 311 layouts under `folder` and return the number of rows written."""
    sanitation = _write_sanitation_files(folder, rng, grid, window, cell_rates)
    service_requests = _write_unified_files(folder, rng, grid, window, clock, cell_rates)
    return sanitation + service_requests


# Shared draws.

def _draw_days(rng: np.random.Generator, window: _Window, rate: tuple[float, float, int]) -> np.ndarray:
    """Draw the local creation day (Unix day) of each request from a seasonal Poisson rate."""
    mean, swing, peak_day = rate
    days = np.arange(_unix_day(window.start), _unix_day(window.end) + 1)
    day_of_year = (days.astype("datetime64[D]") - days.astype("datetime64[D]").astype("datetime64[Y]")).astype(np.int64)
    expected = mean * (1.0 + swing * np.cos(2 * np.pi * (day_of_year - peak_day) / 365.25))
    return np.repeat(days, rng.poisson(expected))


def _draw_places(rng: np.random.Generator, grid: _Grid, cell_rates: np.ndarray,
                 size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a cell per request in proportion to `cell_rates`, a point in it, and coordinate flaws."""
    cell = rng.choice(grid.cell_count, size, p=cell_rates / cell_rates.sum())
    latitude, longitude = _draw_points(rng, grid, cell)
    draw = rng.random(size)

    missing = draw < MISSING_COORDINATE_SHARE
    zero = (draw >= MISSING_COORDINATE_SHARE) & (draw < MISSING_COORDINATE_SHARE + ZERO_COORDINATE_SHARE)
    latitude = np.where(missing, np.nan, np.where(zero, 0.0, latitude))
    longitude = np.where(missing, np.nan, np.where(zero, 0.0, longitude))
    return cell, latitude, longitude


def _choose(rng: np.random.Generator, choices: tuple[tuple[str, float], ...], size: int) -> np.ndarray:
    names = np.array([name for name, _ in choices], dtype=object)
    weights = np.array([weight for _, weight in choices])
    return rng.choice(names, size, p=weights / weights.sum())


def _format_addresses(rng: np.random.Generator, size: int) -> np.ndarray:
    numbers = rng.integers(1, 100, size) * 100 + rng.integers(0, 50, size) * 2
    directions = rng.choice(np.array(["N", "S", "E", "W"], dtype=object), size)
    streets = rng.choice(np.array(STREET_NAMES, dtype=object), size)
    return np.array([f"{number} {direction} {street} ST" for number, direction, street
                     in zip(numbers.tolist(), directions, streets)], dtype=object)


def _format_locations(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Format the portal's `(lat, lon)` location text, blank without coordinates."""
    return np.array(["" if math.isnan(lat) else f"({lat:.6f}, {lon:.6f})"
                     for lat, lon in zip(latitude.tolist(), longitude.tolist())], dtype=object)


def _number_by_year(rng: np.random.Generator, years: np.ndarray, prefix: str) -> np.ndarray:
    """Number requests in file order within each year, `{prefix}YY-NNNNNNNN`, with gaps."""
    numbers = np.empty(years.size, dtype=object)
    for year in np.unique(years):
        members = np.flatnonzero(years == year)
        sequence = 1_000_000 + np.cumsum(rng.integers(1, 40, members.size))
        numbers[members] = [f"{prefix}{int(year) % 100:02d}-{value:08d}" for value in sequence.tolist()]
    return numbers


def _write_by_year(folder: Path, pattern: str, header: tuple[str, ...], years: np.ndarray,
                   columns: list[np.ndarray], window: _Window) -> None:
    written = []
    for year in range(window.start.year, window.end.year + 1):
        in_year = np.flatnonzero(years == year)
        path = folder / pattern.replace("*", str(year))
        _write_gzip_csv(path, header, zip(*(column[in_year] for column in columns)))
        written.append(path)
        logger.info("Wrote %d synthetic 311 rows to %s", in_year.size, path)
    _remove_stale_files(folder, pattern, written)


# Sanitation code complaints: dates only.

def _format_iso_days(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(object)


def _write_sanitation_files(folder: Path, rng: np.random.Generator, grid: _Grid, window: _Window,
                            cell_rates: np.ndarray) -> int:
    """Write the sanitation complaints and return their row count."""
    day = np.sort(_draw_days(rng, window, SANITATION_PER_DAY))
    size = day.size
    cell, latitude, longitude = _draw_places(rng, grid, cell_rates, size)
    status = _choose(rng, SANITATION_STATUSES, size)
    completed_day = day + rng.geometric(0.3, size)
    request_number = _number_by_year(rng, _wall_years(day * SECONDS_PER_DAY), "")

    # A repeated request number: a second row right after the first, completed later.
    repeated = np.flatnonzero((status == "Completed") & (rng.random(size) < REPEATED_NUMBER_SHARE))
    order = np.sort(np.concatenate([np.arange(size), repeated]), kind="stable")
    is_repeat = np.zeros(order.size, dtype=bool)
    is_repeat[1:] = order[1:] == order[:-1]
    completed_day = completed_day[order] + np.where(is_repeat, rng.integers(10, 400, order.size), 0)

    codes = _admin_codes(grid, cell[order])
    completion = np.where(np.char.startswith(status[order].astype(str), "Open"), "",
                          _format_iso_days(completed_day)).astype(object)
    blank = np.full(order.size, "", dtype=object)
    columns = [
        _format_iso_days(day[order]),
        status[order],
        completion,
        request_number[order],
        np.full(order.size, "Sanitation Code Violation", dtype=object),
        rng.choice(np.array(VIOLATIONS, dtype=object), size)[order],
        _format_addresses(rng, size)[order],
        blank,  # ZIP_Code: the synthetic grid has no postal codes.
        blank,  # X_Coordinate: no Illinois State Plane position, as in the crime files.
        blank,  # Y_Coordinate, blank for the same reason.
        codes["ward"],
        codes["district"],
        codes["community_area"],
        _format_degrees(latitude[order]),
        _format_degrees(longitude[order]),
        _format_locations(latitude[order], longitude[order]),
    ]
    _write_by_year(folder, "demo_sanitation_code_complaints_*.csv.gz", SANITATION_HEADER,
                   _wall_years(day[order] * SECONDS_PER_DAY), columns, window)
    return int(order.size)


# Unified 311 requests: times of day, a type column and a duplicate flag.

def _write_unified_files(folder: Path, rng: np.random.Generator, grid: _Grid, window: _Window,
                         clock: _ChicagoClock, cell_rates: np.ndarray) -> int:
    """Write the street light and graffiti requests and return their row count."""
    street_lights = _draw_days(rng, window, STREET_LIGHTS_PER_DAY)
    graffiti = _draw_days(rng, window, GRAFFITI_PER_DAY)
    day = np.concatenate([street_lights, graffiti])
    request_type = np.repeat(np.array(REQUEST_TYPES, dtype=object), [street_lights.size, graffiti.size])
    size = day.size

    # Reports arrive between 06:00 and 23:00 local time, which no daylight-saving change skips.
    created_wall = day * SECONDS_PER_DAY + rng.integers(6 * SECONDS_PER_HOUR, 23 * SECONDS_PER_HOUR, size)
    created_utc = clock.to_utc(created_wall)
    modified_utc = created_utc + rng.integers(SECONDS_PER_HOUR, 10 * SECONDS_PER_DAY, size)
    by_time = np.argsort(created_utc, kind="stable")

    cell, latitude, longitude = _draw_places(rng, grid, cell_rates, size)
    status = _choose(rng, SERVICE_REQUEST_STATUSES, size)
    duplicate = np.where(rng.random(size) < DUPLICATE_FLAG_SHARE, "true", "false").astype(object)
    request_number = np.empty(size, dtype=object)
    request_number[by_time] = _number_by_year(rng, _wall_years(created_wall[by_time]), "SR")

    # A stale open version of some completed requests, listed after the final version.
    stale = np.flatnonzero((status == "Completed") & (rng.random(size) < STALE_VERSION_SHARE))
    order = np.concatenate([by_time, stale])
    is_stale = np.arange(order.size) >= size
    order_sort = np.lexsort((is_stale, created_utc[order]))
    order, is_stale = order[order_sort], is_stale[order_sort]

    final_modified = modified_utc[order]
    stale_modified = created_utc[order] + (final_modified - created_utc[order]) // 2
    row_modified = np.where(is_stale, stale_modified, final_modified)
    row_status = np.where(is_stale, "Open", status[order]).astype(object)
    closed = np.where(row_status == "Open", "", _format_chicago_timestamps(clock.to_wall(row_modified)))

    codes = _admin_codes(grid, cell[order])
    columns = [
        request_number[order],
        request_type[order],
        row_status,
        rng.choice(np.array(ORIGINS, dtype=object), size)[order],
        _format_chicago_timestamps(created_wall[order]),
        _format_chicago_timestamps(clock.to_wall(row_modified)),
        closed.astype(object),
        _format_addresses(rng, size)[order],
        codes["community_area"],
        codes["ward"],
        codes["district"],
        duplicate[order],
        _format_degrees(latitude[order]),
        _format_degrees(longitude[order]),
        _format_locations(latitude[order], longitude[order]),
    ]
    _write_by_year(folder, "demo_311_service_requests_*.csv.gz", SERVICE_REQUEST_HEADER,
                   _wall_years(created_wall[order]), columns, window)
    return int(order.size)
