"""Crime CSVs in the City of Chicago export layout, one gzip file per year of local `Date`.

Beat, District, Ward and Community Area are derived from the cell. `X Coordinate` and
`Y Coordinate` are always blank because the demo grid has no Illinois State Plane position.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from pathlib import Path

import numpy as np

from ml.demo.clock import (
    EPOCH,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    _ChicagoClock,
    _wall_years,
    _Window,
)
from ml.demo.files import _remove_stale_files, _write_gzip_csv
from ml.demo.grid import CELLS_PER_DISTRICT_SIDE, _Grid
from ml.demo.records import _CrimeRows, _format_each_distinct
from ml.demo.tables import CATEGORIES

logger = logging.getLogger(__name__)

CRIME_HEADER: tuple[str, ...] = (
    "ID", "Case Number", "Date", "Block", "IUCR", "Primary Type", "Description",
    "Location Description", "Arrest", "Domestic", "Beat", "District", "Ward",
    "Community Area", "FBI Code", "X Coordinate", "Y Coordinate", "Updated On",
    "Latitude", "Longitude",
)
"""Column names of the City of Chicago crime export, in file order."""


def _write_crime_files(folder: Path, grid: _Grid, clock: _ChicagoClock, rows: _CrimeRows,
                       window: _Window) -> int:
    """Write one gzip CSV per calendar year of local `Date` and return the row count."""
    order = np.lexsort((rows.updated_utc, rows.record_id, rows.date_wall))
    years = _wall_years(rows.date_wall[order])
    columns = _format_crime_columns(grid, clock, rows, order)
    written = []

    for year in range(window.start.year, window.end.year + 1):
        in_year = np.flatnonzero(years == year)
        path = folder / f"demo_crimes_{year}.csv.gz"
        _write_gzip_csv(path, CRIME_HEADER, zip(*(column[in_year] for column in columns)))
        written.append(path)
        logger.info("Wrote %d synthetic crime rows to %s", in_year.size, path)

    _remove_stale_files(folder, "demo_crimes_*.csv.gz", written)
    return int(order.size)


def _format_crime_columns(grid: _Grid, clock: _ChicagoClock, rows: _CrimeRows,
                          order: np.ndarray) -> list[np.ndarray]:
    """Format every crime column as strings, in CRIME_HEADER order, for rows `order`."""
    category = rows.category[order]
    codes = _admin_codes(grid, rows.cell[order])
    blank = np.full(order.size, "", dtype=object)

    def pick(attribute: str) -> np.ndarray:
        return np.array([getattr(item, attribute) for item in CATEGORIES], dtype=object)[category]

    return [
        rows.record_id[order].astype(str),
        rows.case_number[order],
        _format_chicago_timestamps(rows.date_wall[order]),
        rows.block[order],
        pick("iucr"),
        pick("primary_type"),
        pick("description"),
        rows.location[order],
        np.where(rows.arrest[order], "true", "false"),
        np.where(rows.domestic[order], "true", "false"),
        codes["beat"],
        codes["district"],
        codes["ward"],
        codes["community_area"],
        pick("fbi_code"),
        blank,  # X Coordinate stays blank because the demo grid has no State Plane position.
        blank,  # Y Coordinate, blank for the same reason.
        _format_chicago_timestamps(clock.to_wall(rows.updated_utc[order])),
        _format_degrees(rows.latitude[order]),
        _format_degrees(rows.longitude[order]),
    ]


def _format_degrees(values: np.ndarray) -> np.ndarray:
    """Format degrees with 6 decimals, and NaN (no coordinates) as a blank."""
    return np.array(["" if math.isnan(value) else f"{value:.6f}" for value in values.tolist()],
                    dtype=object)


def _admin_codes(grid: _Grid, cell: np.ndarray) -> dict[str, np.ndarray]:
    """Derive Beat, District, Ward and Community Area strings from each cell.

    A district is a block of 4 x 4 cells and each cell is its own beat, so a beat
    (district * 100 + sector * 10 + beat in sector) names exactly one cell. Wards cover
    2 x 2 cells and community areas 3 x 3 cells, and their numbers wrap after 50 and 77,
    the counts of Chicago wards and community areas.
    """
    row = grid.cell_row(cell)
    col = grid.cell_col(cell)
    side = CELLS_PER_DISTRICT_SIDE

    district = 1 + (row // side) * math.ceil(grid.cols / side) + col // side
    beat = district * 100 + (row % side + 1) * 10 + (col % side + 1)
    ward = 1 + ((row // 2) * math.ceil(grid.cols / 2) + col // 2) % 50
    community_area = 1 + ((row // 3) * math.ceil(grid.cols / 3) + col // 3) % 77

    return {
        "beat": _format_each_distinct(beat, lambda value: f"{value:04d}"),
        "district": _format_each_distinct(district, lambda value: f"{value:03d}"),
        "ward": _format_each_distinct(ward, str),
        "community_area": _format_each_distinct(community_area, str),
    }


def _format_chicago_timestamps(wall_seconds: np.ndarray) -> np.ndarray:
    """Format wall-clock seconds as `MM/DD/YYYY hh:mm:ss AM`.

    The 12-hour clock is built by hand because `%p` follows the machine's locale.
    """
    days, seconds = np.divmod(wall_seconds, SECONDS_PER_DAY)
    return (_format_each_distinct(days, _format_us_date)
            + _format_each_distinct(seconds, _format_12_hour_time))


def _format_us_date(unix_day: int) -> str:
    day = EPOCH + timedelta(days=unix_day)
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d} "


def _format_12_hour_time(second_of_day: int) -> str:
    hour, rest = divmod(second_of_day, SECONDS_PER_HOUR)
    minute, second = divmod(rest, 60)
    half = "AM" if hour < 12 else "PM"
    return f"{hour % 12 or 12:02d}:{minute:02d}:{second:02d} {half}"
