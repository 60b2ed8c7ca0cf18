"""Self-exciting point process that places demo incidents in grid cells and UTC hours.

Violent incidents come from an hourly, grid-cell version of the continuous self-exciting
point process of Mohler, Short, Brantingham, Schoenberg and Tita (2011), "Self-exciting
point process modeling of crime", Journal of the American Statistical Association
106(493), DOI 10.1198/jasa.2011.ap09546. The expected number of violent events in cell c
during UTC hour t is

    lambda_c(t) = b * mu_c * h(t) * w(t) * s(t) * exp(beta * (T(t) - 52 F)) + g_c(t)

where b is the base rate per cell-hour, mu_c a per-cell factor drawn from a seeded
lognormal (so a few cells are hot), h an hour-of-day cycle (lowest at 5-7 AM local time,
highest in the late evening), w a boost for Friday and Saturday nights (18:00 to 04:00
local time), s a seasonal cycle that peaks in mid-July, and T(t) the synthetic hourly
temperature, so warm hours are slightly more violent (beta = 0.006 per degree F).
The triggering term g_c(t) adds, for each earlier violent event in c or one of its 8
neighbours, a rate that decays exponentially with a time constant of 36 hours. Each
violent event triggers 0.3 further violent events on average (the branching ratio),
70% of them in its own cell, which gives the demo a near-repeat pattern for models to
find. Non-violent incidents (theft, burglary, simple battery and the like) share mu_c but
have their own daily and seasonal cycles, and no temperature effect or triggering. Each
incident gets a minute-resolution UTC time here, and ml/demo/records.py gives it a point,
a category and a wall-clock time.

At the defaults (8 x 8 cells, 2021-2023) about 0.7% of cell-hours hold a violent event,
about 25% of incidents are violent, and the crime files hold about 49,000 rows. These
are estimates from runs of the calibrated constants below. The unit tests check the
violent share and cell-hour rate within bands on one default-sized year.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from ml.demo.clock import (
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    _ChicagoClock,
    _day_of_year,
    _Window,
)
from ml.demo.grid import _Grid
from ml.demo.weather import _Weather

# Incident process. The background rates are expected events per cell-hour before the
# cycles and triggering scale them. They were tuned by running the generator at the
# defaults until the totals came close to the targets in the module docstring.
VIOLENT_BACKGROUND_RATE = 0.0050
NONVIOLENT_BACKGROUND_RATE = 0.0215
CELL_RATE_LOG_SD = 0.9
BRANCHING_RATIO = 0.3
TRIGGER_DECAY_HOURS = 36.0
TRIGGER_OWN_CELL_SHARE = 0.7  # The 8 neighbours share the rest equally.
TEMPERATURE_EFFECT_PER_F = 0.006
TEMPERATURE_REFERENCE_F = 52.0
WEEKEND_NIGHT_FACTOR_VIOLENT = 1.3
WEEKEND_NIGHT_FACTOR_NONVIOLENT = 1.1
SEASONAL_AMPLITUDE_VIOLENT = 0.25
SEASONAL_AMPLITUDE_NONVIOLENT = 0.12
SEASONAL_PEAK_DAY_OF_YEAR = 196  # Mid-July.

# Generations summed for the expected violent counts. Generation k holds BRANCHING_RATIO**k of
# the background at most, so the sum stops well before the cap.
MAX_GENERATIONS = 100
GENERATION_TOLERANCE = 1e-12

# Relative rates by local hour of day, 0 to 23. Each profile is scaled to a mean of 1.
VIOLENT_HOUR_PROFILE = np.array([
    1.45, 1.30, 1.15, 0.90, 0.65, 0.45, 0.40, 0.45, 0.60, 0.70, 0.80, 0.90,
    1.00, 1.00, 1.05, 1.10, 1.15, 1.20, 1.30, 1.40, 1.50, 1.55, 1.55, 1.50,
])
NONVIOLENT_HOUR_PROFILE = np.array([
    0.80, 0.65, 0.55, 0.45, 0.40, 0.35, 0.40, 0.55, 0.85, 1.05, 1.15, 1.25,
    1.40, 1.30, 1.30, 1.30, 1.30, 1.35, 1.35, 1.30, 1.20, 1.10, 1.00, 0.90,
])


def _draw_cell_rates(rng: np.random.Generator, cell_count: int) -> np.ndarray:
    """Draw lognormal relative background rates per cell, scaled to a mean of 1."""
    rates = rng.lognormal(0.0, CELL_RATE_LOG_SD, cell_count)
    return rates / rates.mean()


@dataclass(frozen=True)
class _Events:
    """Simulated incidents, one entry per event, in no particular order."""

    utc: np.ndarray  # Unix seconds, whole minutes.
    cell: np.ndarray
    violent: np.ndarray


def _simulate_incidents(rng: np.random.Generator, grid: _Grid, window: _Window,
                        clock: _ChicagoClock, weather: _Weather,
                        cell_rates: np.ndarray) -> _Events:
    """Simulate violent and non-violent incidents per cell and UTC hour."""
    hour_starts = _incident_hour_starts(window)
    violent_factor, nonviolent_factor = _hourly_factors(window, clock, weather)

    violent_hours, violent_cells = _simulate_violent_events(
        rng, VIOLENT_BACKGROUND_RATE * np.outer(violent_factor, cell_rates), grid,
    )
    other_hours, other_cells = _expand_counts(
        rng.poisson(NONVIOLENT_BACKGROUND_RATE * np.outer(nonviolent_factor, cell_rates))
    )
    hours = np.concatenate([violent_hours, other_hours])
    minutes = rng.integers(0, 60, hours.size)

    return _Events(
        utc=hour_starts[hours] + 60 * minutes,
        cell=np.concatenate([violent_cells, other_cells]),
        violent=np.concatenate([np.ones(violent_hours.size, dtype=bool),
                                np.zeros(other_hours.size, dtype=bool)]),
    )


def _incident_hour_starts(window: _Window) -> np.ndarray:
    return (window.incident_start_utc
            + SECONDS_PER_HOUR * np.arange(window.incident_hours, dtype=np.int64))


def _hourly_factors(window: _Window, clock: _ChicagoClock,
                    weather: _Weather) -> tuple[np.ndarray, np.ndarray]:
    """Return relative violent and non-violent rates for each UTC hour of the incident window."""
    hour_starts = _incident_hour_starts(window)
    weather_index = (hour_starts - window.weather_start_utc) // SECONDS_PER_HOUR
    temperature = weather.temperature_f[weather_index]
    return _temporal_factors(clock.to_wall(hour_starts), temperature)


def _temporal_factors(wall_hour_starts: np.ndarray,
                      temperature_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return relative violent and non-violent rates per hour from local time and weather."""
    hour = (wall_hour_starts // SECONDS_PER_HOUR) % 24
    weekday = (wall_hour_starts // SECONDS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday.
    season = np.cos(2 * np.pi * (_day_of_year(wall_hour_starts) - SEASONAL_PEAK_DAY_OF_YEAR)
                    / 365.25)

    # Friday and Saturday nights, 18:00 to 04:00 the next morning.
    weekend_night = (((weekday == 4) | (weekday == 5)) & (hour >= 18)) | (
        ((weekday == 5) | (weekday == 6)) & (hour < 4))

    violent = (VIOLENT_HOUR_PROFILE[hour] / VIOLENT_HOUR_PROFILE.mean()
               * np.where(weekend_night, WEEKEND_NIGHT_FACTOR_VIOLENT, 1.0)
               * (1.0 + SEASONAL_AMPLITUDE_VIOLENT * season)
               * np.exp(TEMPERATURE_EFFECT_PER_F * (temperature_f - TEMPERATURE_REFERENCE_F)))
    nonviolent = (NONVIOLENT_HOUR_PROFILE[hour] / NONVIOLENT_HOUR_PROFILE.mean()
                  * np.where(weekend_night, WEEKEND_NIGHT_FACTOR_NONVIOLENT, 1.0)
                  * (1.0 + SEASONAL_AMPLITUDE_NONVIOLENT * season))
    return violent, nonviolent


def _simulate_violent_events(rng: np.random.Generator, background_rate: np.ndarray,
                             grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the self-exciting violent process and return (hour index, cell) per event.

    The simulation uses the branching (cluster) form of the Hawkes process, which has the
    same distribution as stepping the intensity hour by hour. Background events come from
    `background_rate` (shape hours x cells). Every event then has a Poisson number of
    children with mean BRANCHING_RATIO. A child falls a geometric number of hours later,
    which is exponential decay with a time constant of TRIGGER_DECAY_HOURS, in the
    parent's cell with probability TRIGGER_OWN_CELL_SHARE and otherwise in one of its 8
    neighbours. Children that land outside the grid or the time window are dropped.
    Each generation is one vectorized step, and generations shrink by the branching ratio.
    """
    hour_count, _ = background_rate.shape
    hours, cells = _expand_counts(rng.poisson(background_rate))
    all_hours, all_cells = [hours], [cells]

    neighbour_rows = np.array([0, -1, -1, -1, 0, 0, 1, 1, 1])
    neighbour_cols = np.array([0, -1, 0, 1, -1, 1, -1, 0, 1])
    neighbour_share = (1.0 - TRIGGER_OWN_CELL_SHARE) / 8.0
    placement = np.array([TRIGGER_OWN_CELL_SHARE] + [neighbour_share] * 8)
    decay = math.exp(-1.0 / TRIGGER_DECAY_HOURS)

    while hours.size:
        child_counts = rng.poisson(BRANCHING_RATIO, hours.size)
        parent_hours = np.repeat(hours, child_counts)
        parent_cells = np.repeat(cells, child_counts)

        child_hours = parent_hours + rng.geometric(1.0 - decay, parent_hours.size)
        offset = rng.choice(placement.size, parent_hours.size, p=placement)
        child_rows = grid.cell_row(parent_cells) + neighbour_rows[offset]
        child_cols = grid.cell_col(parent_cells) + neighbour_cols[offset]

        inside = ((child_hours < hour_count) & (child_rows >= 0) & (child_rows < grid.rows)
                  & (child_cols >= 0) & (child_cols < grid.cols))
        hours = child_hours[inside]
        cells = child_rows[inside] * grid.cols + child_cols[inside]
        all_hours.append(hours)
        all_cells.append(cells)

    return np.concatenate(all_hours), np.concatenate(all_cells)


def _expand_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (hour index, cell index) per event, repeating each cell-hour by its count."""
    hours, cells = np.nonzero(counts)
    repeats = counts[hours, cells].astype(np.int64)
    return np.repeat(hours, repeats), np.repeat(cells, repeats)


def _expected_violent_counts(grid: _Grid, violent_factor: np.ndarray,
                             cell_rates: np.ndarray) -> np.ndarray:
    """Return the expected number of violent events per cell over the whole incident window.

    The background rate is the product of an hourly factor and a per-cell factor, and a
    child's delay and its placement each act on one of the two, so every generation of the
    branching process stays such a product. Generation k+1 takes generation k's hourly
    profile through the geometric delay (children after the window are lost) and its cell
    profile through the placement kernel (children off the grid are lost), both scaled by
    BRANCHING_RATIO. The sum over generations is the exact expectation of
    `_simulate_violent_events`, edges included.
    """
    decay = math.exp(-1.0 / TRIGGER_DECAY_HOURS)
    hourly = VIOLENT_BACKGROUND_RATE * np.asarray(violent_factor, dtype=float)
    spatial = np.asarray(cell_rates, dtype=float).reshape(grid.rows, grid.cols)
    expected = np.zeros((grid.rows, grid.cols))

    for _ in range(MAX_GENERATIONS):
        generation = hourly.sum() * spatial
        expected += generation
        if generation.sum() <= GENERATION_TOLERANCE * expected.sum():
            break

        # A child lands k >= 1 hours after its parent with probability (1 - decay) * decay**(k - 1).
        hourly = BRANCHING_RATIO * lfilter([0.0, 1.0 - decay], [1.0, -decay], hourly)
        spatial = _place_children(spatial)

    return expected.reshape(-1)


def _place_children(parents: np.ndarray) -> np.ndarray:
    """Spread a rows x cols array of parent weights over each cell and its 8 neighbours."""
    rows, cols = parents.shape
    padded = np.pad(parents, 1)
    neighbour_share = (1.0 - TRIGGER_OWN_CELL_SHARE) / 8.0
    children = TRIGGER_OWN_CELL_SHARE * parents

    for row_shift in (-1, 0, 1):
        for col_shift in (-1, 0, 1):
            if row_shift or col_shift:
                children = children + neighbour_share * padded[1 + row_shift:1 + row_shift + rows,
                                                                1 + col_shift:1 + col_shift + cols]
    return children
