"""Entry point that writes a whole demo jurisdiction: grid, districts, demographics, crime, weather
and 311 files.

One run seed is split into independent child seeds for the weather, the cell rates, the
incidents, the data flaws, the weather reports, the 311 requests, the district demographics and
the observation draws of the known-truth mode. Child seeds keep their order, so a seed added last
leaves the files of the others unchanged.

By default every simulated incident is written. The known-truth mode (`equal_risk`, `reporting`
or `discovered`, see ml/demo/observation.py) plants the true risk surface, writes only the
incidents that victims reported or police discovered, and writes the truth per cell to
`truth/cells.csv`.
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
from ml.demo.incidents import (
    _draw_cell_rates,
    _Events,
    _expected_violent_counts,
    _hourly_factors,
    _simulate_incidents,
)
from ml.demo.observation import (
    Discovery,
    Reporting,
    _discovery_probabilities,
    _Observation,
    _keep_events,
    _observe,
    _remove_truth_file,
    _reporting_probabilities,
    _write_truth_file,
)
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
    truth_file: Path | None = None
    """`truth/cells.csv` in known-truth mode, else None."""


def write_demo_extracts(
    folder: Path,
    *,
    seed: int = 20240101,
    start: date = date(2021, 1, 1),
    end: date = date(2023, 12, 31),
    grid_rows: int = 8,
    grid_cols: int = 8,
    equal_risk: bool = False,
    reporting: Reporting | None = None,
    discovered: Discovery | None = None,
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

    Any of the last three arguments turns on the known-truth mode of ml/demo/observation.py.
    `equal_risk` gives every cell the planted factor mu_c = 1 in place of the lognormal draw.
    `reporting` is the probability that a victim reports an incident: one float for all
    cells, one per cell in cell index order (row * cols + col, row 0 in the south), or a
    pattern name such as "west_half_low" (0.3 in the west half, 0.9 in the east). It
    defaults to 1. `discovered` lets police find unreported incidents in proportion to
    their patrol share. The mode writes `truth/cells.csv` and its path is in the summary.
    Without it the files are exactly those of earlier versions, and a truth file left by an
    earlier run is deleted.

    Raises ValueError if `end` is before `start`, the grid size is out of range, a
    probability or patrol share is invalid, or a year has more incidents than 6-digit case
    numbers allow.
    """
    folder = Path(folder)
    _validate_arguments(start, end, grid_rows, grid_cols)
    grid = _build_grid(grid_rows, grid_cols)
    known_truth = equal_risk or reporting is not None or discovered is not None
    reporting_probability = _reporting_probabilities(1.0 if reporting is None else reporting, grid)
    patrol_share, discovery_probability = (
        (None, None) if discovered is None else _discovery_probabilities(discovered, grid))
    logger.info(
        "Writing synthetic demo extracts to %s: seed %d, %s to %s, %d x %d cells",
        folder, seed, start, end, grid_rows, grid_cols,
    )

    # Spawned children depend only on their position, so a seed added last leaves the earlier
    # seeds and their files unchanged.
    (weather_seed, spatial_seed, incident_seed, flaw_seed, report_seed, request_seed,
     demographics_seed, observation_seed) = (
        np.random.SeedSequence(seed).spawn(8))
    window = _build_window(start, end)
    # Updated On falls up to 60 days after the last event, so the clock covers 61 more days.
    clock = _ChicagoClock.covering(
        window.weather_start_utc,
        window.weather_start_utc + SECONDS_PER_HOUR * window.weather_hours + 61 * SECONDS_PER_DAY,
    )

    weather = _simulate_weather(np.random.default_rng(weather_seed), window)
    if equal_risk:
        cell_rates = np.ones(grid.cell_count)
    else:
        cell_rates = _draw_cell_rates(np.random.default_rng(spatial_seed), grid.cell_count)
    events = _simulate_incidents(np.random.default_rng(incident_seed), grid, window, clock,
                                 weather, cell_rates)

    truth_file = None
    if known_truth:
        observation = _observe(np.random.default_rng(observation_seed), events,
                               reporting_probability, patrol_share, discovery_probability)
        days = (end - start).days + 1
        expected_violent = _expected_violent_counts(
            grid, _hourly_factors(window, clock, weather)[0], cell_rates)
        truth_file = _write_truth_file(folder, grid, events, observation, cell_rates,
                                       expected_violent / days)
        _log_observation(events, observation)
        events = _keep_events(events, observation.written)
    else:
        _remove_truth_file(folder)
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
        truth_file=truth_file,
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


def _log_observation(events: _Events, observation: _Observation) -> None:
    logger.info(
        "Known-truth demo: %d true incidents (%d violent), %d reported, %d discovered, "
        "%d written (%d violent)",
        events.cell.size, int(events.violent.sum()), int(observation.reported.sum()),
        int(observation.discovered.sum()), int(observation.written.sum()),
        int((events.violent & observation.written).sum()),
    )
