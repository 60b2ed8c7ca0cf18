"""Crime rows built from simulated incidents, with the data flaws put in on purpose.

Each incident gets a uniform point inside its cell, a hundred-block address, a category
from a fixed table of Chicago-style IUCR codes, Arrest and Domestic flags, a case number
and an ID. Event times are converted from UTC to America/Chicago wall-clock time with
zoneinfo, so the fall-back hour holds two hours of events and no event has a time that
the spring-forward change skips.

The rows contain data flaws on purpose, so that data audits have something to find.
About 1% of rows have no coordinates. About 1% of events are heaped at 12:00:00 AM and
about 8% are rounded to the hour. About 20 rows a year are exact duplicates. About 0.5%
of IDs appear twice, first with another category and then as a revision with a later
`Updated On`, which is the truth. Some homicides have a second victim, so two IDs share
one `Case Number`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np

from ml.demo.clock import (
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    _ChicagoClock,
    _wall_years,
    _Window,
)
from ml.demo.grid import BLOCK_LENGTH_M, GRID_SOUTH_LAT, METERS_PER_DEGREE_LAT, _Grid
from ml.demo.incidents import _Events
from ml.demo.tables import (
    CATEGORIES,
    HOME_LOCATIONS,
    LOCATIONS_BY_FBI_CODE,
    STREET_NAMES,
    VIOLENT_FBI_CODES,
)

# Data flaws, as shares of events or rows.
MISSING_COORDINATE_SHARE = 0.01
MIDNIGHT_HEAPING_SHARE = 0.01
ON_THE_HOUR_SHARE = 0.08
REVISED_ID_SHARE = 0.005
SECOND_VICTIM_SHARE = 0.15  # Share of homicides with a second victim record.
DUPLICATE_ROWS_PER_YEAR = 20


@dataclass(frozen=True)
class _CrimeRows:
    """Crime CSV rows before formatting: the truth rows, stale revisions and duplicates."""

    record_id: np.ndarray
    case_number: np.ndarray
    date_wall: np.ndarray  # Chicago wall-clock seconds of `Date`.
    updated_utc: np.ndarray  # Unix seconds of `Updated On`.
    category: np.ndarray  # Index into CATEGORIES.
    cell: np.ndarray
    latitude: np.ndarray  # NaN when the row has no coordinates.
    longitude: np.ndarray
    block: np.ndarray
    location: np.ndarray
    arrest: np.ndarray
    domestic: np.ndarray


def _build_crime_rows(rng: np.random.Generator, grid: _Grid, window: _Window,
                      clock: _ChicagoClock, events: _Events) -> _CrimeRows:
    """Turn simulated events into crime rows with categories, places and data flaws."""
    order = np.argsort(events.utc, kind="stable")
    utc = events.utc[order]
    cell = events.cell[order]
    category = _draw_categories(rng, events.violent[order])

    latitude, longitude = _draw_points(rng, grid, cell)
    block = _format_blocks(rng, grid, cell, latitude, longitude)
    missing = rng.random(utc.size) < MISSING_COORDINATE_SHARE
    latitude[missing] = np.nan
    longitude[missing] = np.nan

    date_wall = _reported_wall_times(rng, clock, utc)
    arrest, domestic = _draw_flags(rng, category)
    location = _draw_locations(rng, category, domestic)
    case_number = _draw_case_numbers(rng, date_wall)

    truth = _CrimeRows(
        record_id=np.zeros(utc.size, dtype=np.int64),
        case_number=case_number,
        date_wall=date_wall,
        updated_utc=np.zeros(utc.size, dtype=np.int64),
        category=category,
        cell=cell,
        latitude=latitude,
        longitude=longitude,
        block=block,
        location=location,
        arrest=arrest,
        domestic=domestic,
    )
    truth = _add_second_victims(rng, truth)
    truth = _assign_ids(rng, clock, truth)

    rows = _add_revisions(rng, clock, truth)
    return _add_exact_duplicates(rng, rows, window)


def _draw_categories(rng: np.random.Generator, violent: np.ndarray) -> np.ndarray:
    """Draw a category index per event from the violent or non-violent shares."""
    shares = np.array([category.share for category in CATEGORIES])
    is_violent = np.array([category.fbi_code in VIOLENT_FBI_CODES for category in CATEGORIES])
    category = np.empty(violent.size, dtype=np.int64)

    for class_mask, event_mask in ((is_violent, violent), (~is_violent, ~violent)):
        choices = np.flatnonzero(class_mask)
        probabilities = shares[choices] / shares[choices].sum()
        category[event_mask] = rng.choice(choices, int(event_mask.sum()), p=probabilities)

    return category


def _draw_points(rng: np.random.Generator, grid: _Grid,
                 cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw a uniform point inside each event's cell, rounded to 6 decimals.

    The draw keeps 0.1% of the cell width from each edge, so rounding never moves a
    point onto the boundary or into the next cell.
    """
    row = grid.cell_row(cell)
    col = grid.cell_col(cell)
    lat_fraction = rng.uniform(0.001, 0.999, cell.size)
    lon_fraction = rng.uniform(0.001, 0.999, cell.size)

    lat_size = grid.lat_edges[row + 1] - grid.lat_edges[row]
    lon_size = grid.lon_edges[col + 1] - grid.lon_edges[col]
    latitude = grid.lat_edges[row] + lat_fraction * lat_size
    longitude = grid.lon_edges[col] + lon_fraction * lon_size
    return np.round(latitude, 6), np.round(longitude, 6)


def _format_blocks(rng: np.random.Generator, grid: _Grid, cell: np.ndarray,
                   latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Format a synthetic hundred-block address such as `012XX W DEMO ST` per event.

    House numbers grow westward from the east edge on east-west streets (`W ... ST`) and
    southward from the north edge on north-south streets (`S ... AVE`), in the style of
    Chicago addresses.
    """
    meters_per_degree_lon = METERS_PER_DEGREE_LAT * math.cos(math.radians(GRID_SOUTH_LAT))
    west_m = (grid.lon_edges[-1] - longitude) * meters_per_degree_lon
    south_m = (grid.lat_edges[-1] - latitude) * METERS_PER_DEGREE_LAT
    west_blocks = (west_m // BLOCK_LENGTH_M).astype(np.int64)
    south_blocks = (south_m // BLOCK_LENGTH_M).astype(np.int64)
    on_east_west_street = rng.random(cell.size) < 0.5

    # The key packs (street direction, block west, block south), so each address is
    # formatted once. Block counts stay below 1000 for any grid that passes validation.
    key = on_east_west_street * 1_000_000 + west_blocks * 1000 + south_blocks
    return _format_each_distinct(key, _format_block_key)


def _format_block_key(key: int) -> str:
    east_west, rest = divmod(key, 1_000_000)
    west_block, south_block = divmod(rest, 1000)
    if east_west:
        name = STREET_NAMES[south_block % len(STREET_NAMES)]
        return f"{west_block:03d}XX W {name} ST"
    name = STREET_NAMES[(west_block + 5) % len(STREET_NAMES)]
    return f"{south_block:03d}XX S {name} AVE"


def _format_each_distinct(values: np.ndarray, formatter: Callable[[int], str]) -> np.ndarray:
    """Apply `formatter` once per distinct integer in `values` and spread the results."""
    distinct, inverse = np.unique(values, return_inverse=True)
    texts = np.array([formatter(int(value)) for value in distinct], dtype=object)
    return texts[inverse]


def _reported_wall_times(rng: np.random.Generator, clock: _ChicagoClock,
                         utc: np.ndarray) -> np.ndarray:
    """Convert event instants to Chicago wall clock, then heap some at midnight or the hour."""
    wall = clock.to_wall(utc)
    draw = rng.random(utc.size)

    midnight = draw < MIDNIGHT_HEAPING_SHARE
    on_the_hour = (draw >= MIDNIGHT_HEAPING_SHARE) & (
        draw < MIDNIGHT_HEAPING_SHARE + ON_THE_HOUR_SHARE)
    wall = np.where(midnight, wall - wall % SECONDS_PER_DAY, wall)
    return np.where(on_the_hour, wall - wall % SECONDS_PER_HOUR, wall)


def _draw_flags(rng: np.random.Generator,
                category: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw the Arrest and Domestic flags from each category's rates."""
    arrest_rate = np.array([item.arrest_rate for item in CATEGORIES])[category]
    domestic_rate = np.array([item.domestic_rate for item in CATEGORIES])[category]
    arrest = rng.random(category.size) < arrest_rate
    domestic = rng.random(category.size) < domestic_rate
    return arrest, domestic


def _draw_locations(rng: np.random.Generator, category: np.ndarray,
                    domestic: np.ndarray) -> np.ndarray:
    """Draw a Location Description per event. Domestic incidents happen at home."""
    fbi_code = np.array([item.fbi_code for item in CATEGORIES])[category]
    location = np.empty(category.size, dtype=object)

    for code, choices in LOCATIONS_BY_FBI_CODE.items():
        mask = (fbi_code == code) & ~domestic
        location[mask] = _choose_weighted(rng, choices, int(mask.sum()))

    location[domestic] = _choose_weighted(rng, HOME_LOCATIONS, int(domestic.sum()))
    return location


def _choose_weighted(rng: np.random.Generator, choices: tuple[tuple[str, float], ...],
                     size: int) -> np.ndarray:
    names = np.array([name for name, _ in choices], dtype=object)
    weights = np.array([weight for _, weight in choices])
    return rng.choice(names, size, p=weights / weights.sum())


def _draw_case_numbers(rng: np.random.Generator, date_wall: np.ndarray) -> np.ndarray:
    """Draw a `JE123456`-style case number per event, unique within each year.

    The two-letter prefix advances one letter a year (JA for 2017, JE for 2021), in the
    style of Chicago case numbers. Numbers grow with the event time within a year.
    """
    years = _wall_years(date_wall)
    case_number = np.empty(date_wall.size, dtype=object)

    for year in np.unique(years):
        members = np.flatnonzero(years == year)
        if members.size > 900_000:
            raise ValueError(
                f"Too many demo incidents in {year}: {members.size}, but 6-digit case numbers "
                "allow 900000 a year. Use a smaller grid."
            )
        prefix = "J" + chr(ord("A") + (int(year) - 2017) % 26)
        numbers = np.sort(rng.choice(900_000, members.size, replace=False)) + 100_000
        members_by_time = members[np.argsort(date_wall[members], kind="stable")]
        case_number[members_by_time] = [f"{prefix}{number}" for number in numbers]

    return case_number


def _add_second_victims(rng: np.random.Generator, rows: _CrimeRows) -> _CrimeRows:
    """Copy some homicide rows as a second victim with the same case number."""
    is_homicide = np.array([item.fbi_code == "01A" for item in CATEGORIES])
    homicide = np.flatnonzero(is_homicide[rows.category])
    victims = homicide[rng.random(homicide.size) < SECOND_VICTIM_SHARE]
    return _append_rows(rows, victims)


def _append_rows(rows: _CrimeRows, source: np.ndarray, **replacements: np.ndarray) -> _CrimeRows:
    """Return `rows` followed by copies of rows `source`, with some fields replaced."""
    fields = {}
    for name in _CrimeRows.__dataclass_fields__:
        column = getattr(rows, name)
        copied = replacements.get(name, column[source])
        fields[name] = np.concatenate([column, copied])
    return _CrimeRows(**fields)


def _assign_ids(rng: np.random.Generator, clock: _ChicagoClock, rows: _CrimeRows) -> _CrimeRows:
    """Assign increasing IDs in time order (with gaps) and truth `Updated On` times.

    `Updated On` is 1 day and 1 hour to 60 days less 1 hour after `Date` in UTC, so it
    stays 1 to 60 days after `Date` on the wall clock across daylight-saving changes.
    """
    order = np.argsort(rows.date_wall, kind="stable")
    gaps = rng.integers(1, 4, order.size)
    record_id = np.empty(order.size, dtype=np.int64)
    record_id[order] = 90_000_000 + np.cumsum(gaps)

    delay = rng.integers(SECONDS_PER_DAY + SECONDS_PER_HOUR,
                         60 * SECONDS_PER_DAY - SECONDS_PER_HOUR, order.size)
    fields = {name: getattr(rows, name) for name in _CrimeRows.__dataclass_fields__}
    fields["record_id"] = record_id
    fields["updated_utc"] = clock.to_utc(rows.date_wall) + delay
    return _CrimeRows(**fields)


def _add_revisions(rng: np.random.Generator, clock: _ChicagoClock,
                   rows: _CrimeRows) -> _CrimeRows:
    """Add an earlier version with another category for some IDs.

    Only rows updated at least 2 days after `Date` are revised. In UTC, the earlier
    version's `Updated On` lies between 1 day and 1 hour after `Date` and 2 hours before
    the truth row's. A daylight-saving change moves the wall clock by 1 hour at most, so
    the earlier version stays 1 day or more after `Date`, and the truth row stays the
    latest version of its ID.
    """
    date_utc = clock.to_utc(rows.date_wall)
    truth_delay = rows.updated_utc - date_utc
    eligible = truth_delay >= 2 * SECONDS_PER_DAY
    revised = np.flatnonzero(eligible & (rng.random(rows.record_id.size) < REVISED_ID_SHARE))
    other_category = (rows.category[revised]
                      + rng.integers(1, len(CATEGORIES), revised.size)) % len(CATEGORIES)

    shortest = SECONDS_PER_DAY + SECONDS_PER_HOUR
    longest = truth_delay[revised] - 2 * SECONDS_PER_HOUR
    stale_delay = shortest + (rng.random(revised.size) * (longest - shortest)).astype(np.int64)
    stale_updated = date_utc[revised] + stale_delay

    return _append_rows(rows, revised, category=other_category, updated_utc=stale_updated)


def _add_exact_duplicates(rng: np.random.Generator, rows: _CrimeRows,
                          window: _Window) -> _CrimeRows:
    """Repeat about DUPLICATE_ROWS_PER_YEAR rows per year, pro rata for partial years."""
    years = _wall_years(rows.date_wall)
    unique_ids, id_counts = np.unique(rows.record_id, return_counts=True)
    single_version = np.isin(rows.record_id, unique_ids[id_counts == 1])
    duplicates = []

    for year in range(window.start.year, window.end.year + 1):
        first = max(window.start, date(year, 1, 1))
        last = min(window.end, date(year, 12, 31))
        duplicate_count = max(1, round(DUPLICATE_ROWS_PER_YEAR * ((last - first).days + 1) / 365))
        candidates = np.flatnonzero((years == year) & single_version)
        duplicates.append(rng.choice(candidates, min(duplicate_count, candidates.size),
                                     replace=False))

    return _append_rows(rows, np.sort(np.concatenate(duplicates)))


def _count_violent_ids(rows: _CrimeRows) -> int:
    """Count distinct IDs whose latest version has a violent FBI code."""
    if rows.record_id.size == 0:
        return 0

    order = np.lexsort((rows.updated_utc, rows.record_id))
    is_last = np.append(rows.record_id[order][1:] != rows.record_id[order][:-1], True)
    latest = order[is_last]
    violent = np.array([item.fbi_code in VIOLENT_FBI_CODES for item in CATEGORIES])
    return int(violent[rows.category[latest]].sum())
