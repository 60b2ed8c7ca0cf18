"""Entry point that writes a whole demo jurisdiction: grid, districts, demographics, crime, weather
and 311 files.

One run seed is split into independent child seeds for the weather, the cell rates, the
incidents, the data flaws, the weather reports, the 311 requests and the district demographics.
Child seeds keep their order, so a seed added last leaves the files of the others unchanged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from ml.demo.clock import SECONDS_PER_DAY, SECONDS_PER_HOUR, _build_window, _ChicagoClock
from ml.demo.crime_files import _write_crime_files
from ml.demo.geography import _write_district_demographics, _write_districts_geojson
from ml.demo.grid import CELLS_PER_DISTRICT_SIDE, _build_grid, _write_cells_geojson
from ml.demo.incidents import _draw_cell_rates, _simulate_incidents
from ml.demo.records import _build_crime_rows, _count_violent_ids
from ml.demo.service_requests import _write_service_request_files
from ml.demo.weather import _simulate_weather, _write_lcd_files

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSummary:
    """Counts and date range of one written demo jurisdiction."""

    folder: Path
    cell_count: int
    incident_rows: int
    """Rows written to the crime CSVs, counting exact duplicates and stale revisions."""
    violent_incidents: int
    """Distinct IDs whose latest version (the greatest `Updated On`) has a violent FBI code."""
    service_request_rows: int
    """Rows written to both 311 layouts, counting repeated request numbers and stale versions."""
    first_day: date
    last_day: date


def write_demo_extracts(
    folder: Path,
    *,
    seed: int = 20240101,
    start: date = date(2021, 1, 1),
    end: date = date(2023, 12, 31),
    grid_rows: int = 8,
    grid_cols: int = 8,
) -> DemoSummary:
    """Write a synthetic demo jurisdiction under `folder` and return its counts.

    The synthetic files are `crimes/demo_crimes_YYYY.csv.gz` (Chicago crime export layout,
    one per calendar year of local `Date`), `boundaries/cells.geojson` (the grid of square
    cells, about 500 m on a side), `boundaries/districts.geojson` (police districts of 4 x 4
    cells), `demographics/demo_district_demographics.csv` (population, groups and income per
    district), `weather/demo_lcd_hourly_YYYY.csv.gz` (NOAA LCD layout, one per year in Local
    Standard Time) and two 311 layouts per year of local creation date,
    `311/demo_sanitation_code_complaints_YYYY.csv.gz` and
    `311/demo_311_service_requests_YYYY.csv.gz`. `end` is inclusive. The same arguments
    give byte-identical files on any machine with the same numpy, zlib and time zone
    database versions. Existing files are overwritten, and demo year files left from a run
    over other years are deleted so that ingest never mixes two runs.

    Raises ValueError if `end` is before `start`, the grid size is out of range, or a year
    has more incidents than 6-digit case numbers allow.
    """
    folder = Path(folder)
    _validate_arguments(start, end, grid_rows, grid_cols)
    logger.info(
        "Writing synthetic demo extracts to %s: seed %d, %s to %s, %d x %d cells",
        folder, seed, start, end, grid_rows, grid_cols,
    )

    # Spawned children depend only on their position, so a seed added last leaves the earlier
    # seeds and their files unchanged.
    (weather_seed, spatial_seed, incident_seed, flaw_seed, report_seed, request_seed,
     demographics_seed) = (
        np.random.SeedSequence(seed).spawn(7))
    grid = _build_grid(grid_rows, grid_cols)
    window = _build_window(start, end)
    # Updated On falls up to 60 days after the last event, so the clock covers 61 more days.
    clock = _ChicagoClock.covering(
        window.weather_start_utc,
        window.weather_start_utc + SECONDS_PER_HOUR * window.weather_hours + 61 * SECONDS_PER_DAY,
    )

    weather = _simulate_weather(np.random.default_rng(weather_seed), window)
    cell_rates = _draw_cell_rates(np.random.default_rng(spatial_seed), grid.cell_count)
    events = _simulate_incidents(np.random.default_rng(incident_seed), grid, window, clock,
                                 weather, cell_rates)
    rows = _build_crime_rows(np.random.default_rng(flaw_seed), grid, window, clock, events)

    _write_cells_geojson(folder / "boundaries" / "cells.geojson", grid)
    _write_districts_geojson(folder / "boundaries" / "districts.geojson", grid)
    _write_district_demographics(folder / "demographics" / "demo_district_demographics.csv",
                                 np.random.default_rng(demographics_seed), grid)
    crime_row_count = _write_crime_files(folder / "crimes", grid, clock, rows, window)
    _write_lcd_files(folder / "weather", np.random.default_rng(report_seed), window, weather)
    request_row_count = _write_service_request_files(
        folder / "311", np.random.default_rng(request_seed), grid, window, clock, cell_rates)

    summary = DemoSummary(
        folder=folder,
        cell_count=grid.cell_count,
        incident_rows=crime_row_count,
        violent_incidents=_count_violent_ids(rows),
        service_request_rows=request_row_count,
        first_day=start,
        last_day=end,
    )
    logger.info(
        "Wrote synthetic demo extracts to %s: %d crime rows, %d violent incidents, %d 311 rows, "
        "%d cells",
        folder, summary.incident_rows, summary.violent_incidents, summary.service_request_rows,
        summary.cell_count,
    )
    return summary


def _validate_arguments(start: date, end: date, grid_rows: int, grid_cols: int) -> None:
    if end < start:
        raise ValueError(f"Invalid demo date range: end {end} is before start {start}.")

    if grid_rows < 1 or grid_cols < 1:
        raise ValueError(
            f"Invalid demo grid {grid_rows} x {grid_cols}: both sides need at least one cell."
        )

    district_count = (math.ceil(grid_rows / CELLS_PER_DISTRICT_SIDE)
                      * math.ceil(grid_cols / CELLS_PER_DISTRICT_SIDE))
    if district_count > 99:
        raise ValueError(
            f"Invalid demo grid {grid_rows} x {grid_cols}: it needs {district_count} districts "
            "of 4 x 4 cells, but 4-digit beats allow at most 99. Use a smaller grid, such as "
            "36 x 40 cells."
        )
