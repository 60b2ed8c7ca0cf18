"""Write a synthetic demo jurisdiction in the layout of real portal and NOAA exports.

Riskcast runs on a built-in demo jurisdiction when a machine has no network and no real
data. This module writes that jurisdiction as files in the same layouts as the City of
Chicago crime export and the NOAA Local Climatological Data (LCD) hourly file, so the same
ingest code reads demo and real extracts. ALL DATA WRITTEN HERE IS SYNTHETIC. No row
describes a real crime, person, address or weather observation. The grid starts at
latitude 40.0, longitude -100.0, just north of the Nebraska-Kansas border in a rural area
far from any large city, so it cannot be mistaken for a real one.

Incident model. Violent incidents come from an hourly, grid-cell version of the
continuous self-exciting point process of Mohler, Short, Brantingham, Schoenberg and Tita
(2011), "Self-exciting point process modeling of crime", Journal of the American
Statistical Association 106(493), DOI 10.1198/jasa.2011.ap09546. The expected number of violent events in cell c during
UTC hour t is

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
incident gets a minute-resolution time, a uniform point inside its cell, and a category
from a fixed table of Chicago-style IUCR codes. Events are simulated in UTC and converted
to America/Chicago wall-clock time with zoneinfo, so the fall-back hour holds two hours
of events and no event has a time that the spring-forward change skips.

At the defaults (8 x 8 cells, 2021-2023) about 0.7% of cell-hours hold a violent event,
about 25% of incidents are violent, and the crime files hold about 49,000 rows. These
are estimates from runs of the calibrated constants below. The unit tests check the
violent share and cell-hour rate within bands on one default-sized year.

The files contain data flaws on purpose, so that data audits have something to find.
About 1% of rows have no coordinates. About 1% of events are heaped at 12:00:00 AM and
about 8% are rounded to the hour. About 20 rows a year are exact duplicates. About 0.5%
of IDs appear twice, first with another category and then as a revision with a later
`Updated On`, which is the truth. Some homicides have a second victim, so two IDs share
one `Case Number`.
`X Coordinate` and `Y Coordinate` are always blank because the demo grid has no Illinois
State Plane position. The weather files have trace, blank and suspect precipitation
values, rare missing temperatures and a few multi-hour gaps with no report.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "CRIME_HEADER",
    "DemoSummary",
    "LCD_HEADER",
    "VIOLENT_FBI_CODES",
    "write_demo_extracts",
]

CRIME_HEADER: tuple[str, ...] = (
    "ID", "Case Number", "Date", "Block", "IUCR", "Primary Type", "Description",
    "Location Description", "Arrest", "Domestic", "Beat", "District", "Ward",
    "Community Area", "FBI Code", "X Coordinate", "Y Coordinate", "Updated On",
    "Latitude", "Longitude",
)
"""Column names of the City of Chicago crime export, in file order."""

LCD_HEADER: tuple[str, ...] = (
    "STATION", "STATION_NAME", "ELEVATION", "LATITUDE", "LONGITUDE", "DATE", "REPORTTPYE",
    "HOURLYDRYBULBTEMPF", "HOURLYRelativeHumidity", "HOURLYWindSpeed", "HOURLYPrecip",
    "DAILYPrecip",
)
"""Subset of the NOAA LCD hourly header, with its spelling (including `REPORTTPYE`)."""

VIOLENT_FBI_CODES: frozenset[str] = frozenset({"01A", "02", "03", "04A", "04B"})
"""FBI codes counted as violent: homicide, criminal sexual assault, robbery, aggravated
assault and aggravated battery."""

CHICAGO = ZoneInfo("America/Chicago")
LST_OFFSET_SECONDS = -6 * 3600
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86_400
EPOCH = date(1970, 1, 1)

# Grid geometry. The south-west corner of the grid is at GRID_SOUTH_LAT, GRID_WEST_LON.
GRID_SOUTH_LAT = 40.0
GRID_WEST_LON = -100.0
CELL_SIZE_M = 500.0
METERS_PER_DEGREE_LAT = 111_320.0
BLOCK_LENGTH_M = 201.0  # One Chicago-style address block (100 house numbers) per 1/8 mile.
CELLS_PER_DISTRICT_SIDE = 4
STREET_NAMES: tuple[str, ...] = (
    "DEMO", "SAMPLE", "MOCKUP", "PLACEHOLDER", "FICTION", "SYNTHETIC",
    "EXAMPLE", "TESTBED", "DUMMY", "PROTOTYPE", "SIMULATED", "IMAGINARY",
)

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

# Relative rates by local hour of day, 0 to 23. Each profile is scaled to a mean of 1.
VIOLENT_HOUR_PROFILE = np.array([
    1.45, 1.30, 1.15, 0.90, 0.65, 0.45, 0.40, 0.45, 0.60, 0.70, 0.80, 0.90,
    1.00, 1.00, 1.05, 1.10, 1.15, 1.20, 1.30, 1.40, 1.50, 1.55, 1.55, 1.50,
])
NONVIOLENT_HOUR_PROFILE = np.array([
    0.80, 0.65, 0.55, 0.45, 0.40, 0.35, 0.40, 0.55, 0.85, 1.05, 1.15, 1.25,
    1.40, 1.30, 1.30, 1.30, 1.30, 1.35, 1.35, 1.30, 1.20, 1.10, 1.00, 0.90,
])

# Data flaws, as shares of events or rows.
MISSING_COORDINATE_SHARE = 0.01
MIDNIGHT_HEAPING_SHARE = 0.01
ON_THE_HOUR_SHARE = 0.08
REVISED_ID_SHARE = 0.005
SECOND_VICTIM_SHARE = 0.15  # Share of homicides with a second victim record.
DUPLICATE_ROWS_PER_YEAR = 20

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
class DemoSummary:
    """Counts and date range of one written demo jurisdiction."""

    folder: Path
    cell_count: int
    incident_rows: int
    """Rows written to the crime CSVs, counting exact duplicates and stale revisions."""
    violent_incidents: int
    """Distinct IDs whose latest version (the greatest `Updated On`) has a violent FBI code."""
    first_day: date
    last_day: date


@dataclass(frozen=True)
class _Category:
    """One row of the crime category table."""

    iucr: str
    primary_type: str
    description: str
    fbi_code: str
    share: float  # Share of all incidents. Violent shares add up to 0.25, the rest to 0.75.
    arrest_rate: float
    domestic_rate: float


CATEGORIES: tuple[_Category, ...] = (
    _Category("0110", "HOMICIDE", "FIRST DEGREE MURDER", "01A", 0.005, 0.40, 0.05),
    _Category("0265", "CRIMINAL SEXUAL ASSAULT", "AGGRAVATED: OTHER", "02", 0.005, 0.10, 0.25),
    _Category("0281", "CRIMINAL SEXUAL ASSAULT", "NON-AGGRAVATED", "02", 0.010, 0.08, 0.30),
    _Category("031A", "ROBBERY", "ARMED: HANDGUN", "03", 0.035, 0.08, 0.01),
    _Category("031B", "ROBBERY", "ARMED: OTHER DANGEROUS WEAPON", "03", 0.010, 0.10, 0.01),
    _Category("0320", "ROBBERY", "STRONG ARM - NO WEAPON", "03", 0.025, 0.12, 0.02),
    _Category("051A", "ASSAULT", "AGGRAVATED: HANDGUN", "04A", 0.025, 0.15, 0.10),
    _Category("051B", "ASSAULT", "AGGRAVATED: OTHER DANG WEAPON", "04A", 0.015, 0.20, 0.20),
    _Category("0520", "ASSAULT", "AGGRAVATED:KNIFE/CUTTING INSTR", "04A", 0.010, 0.25, 0.25),
    _Category("041A", "BATTERY", "AGGRAVATED: HANDGUN", "04B", 0.050, 0.12, 0.05),
    _Category("0420", "BATTERY", "AGGRAVATED:KNIFE/CUTTING INSTR", "04B", 0.030, 0.25, 0.30),
    _Category("0430", "BATTERY", "AGGRAVATED: OTHER DANG WEAPON", "04B", 0.030, 0.22, 0.30),
    _Category("0810", "THEFT", "OVER $500", "06", 0.100, 0.04, 0.03),
    _Category("0820", "THEFT", "$500 AND UNDER", "06", 0.110, 0.08, 0.04),
    _Category("0860", "THEFT", "RETAIL THEFT", "06", 0.050, 0.45, 0.00),
    _Category("0890", "THEFT", "FROM BUILDING", "06", 0.020, 0.05, 0.05),
    _Category("0610", "BURGLARY", "FORCIBLE ENTRY", "05", 0.040, 0.05, 0.02),
    _Category("0620", "BURGLARY", "UNLAWFUL ENTRY", "05", 0.020, 0.06, 0.03),
    _Category("0910", "MOTOR VEHICLE THEFT", "AUTOMOBILE", "07", 0.050, 0.03, 0.01),
    _Category("0930", "MOTOR VEHICLE THEFT", "TRUCK, BUS, MOTOR HOME", "07", 0.010, 0.03, 0.01),
    _Category("0486", "BATTERY", "DOMESTIC BATTERY SIMPLE", "08B", 0.090, 0.20, 1.00),
    _Category("0460", "BATTERY", "SIMPLE", "08B", 0.060, 0.15, 0.05),
    _Category("0560", "ASSAULT", "SIMPLE", "08A", 0.070, 0.10, 0.15),
    _Category("1320", "CRIMINAL DAMAGE", "TO VEHICLE", "14", 0.050, 0.02, 0.02),
    _Category("1310", "CRIMINAL DAMAGE", "TO PROPERTY", "14", 0.040, 0.05, 0.10),
    _Category("2826", "OTHER OFFENSE", "HARASSMENT BY ELECTRONIC MEANS", "26", 0.020, 0.02, 0.30),
    _Category("1330", "CRIMINAL TRESPASS", "TO LAND", "26", 0.010, 0.50, 0.02),
    _Category("1811", "NARCOTICS", "POSS: CANNABIS 30GMS OR LESS", "18", 0.005, 0.95, 0.00),
    _Category("2027", "NARCOTICS", "POSS: CRACK", "18", 0.005, 0.97, 0.00),
)

# Location Description choices and weights per FBI code.
STREET_LOCATIONS = (("STREET", 0.45), ("SIDEWALK", 0.25), ("ALLEY", 0.10),
                    ("APARTMENT", 0.10), ("PARKING LOT / GARAGE (NON RESIDENTIAL)", 0.10))
HOME_LOCATIONS = (("APARTMENT", 0.50), ("RESIDENCE", 0.40), ("RESIDENCE - PORCH / HALLWAY", 0.10))
LOCATIONS_BY_FBI_CODE: dict[str, tuple[tuple[str, float], ...]] = {
    "01A": (("STREET", 0.60), ("ALLEY", 0.15), ("APARTMENT", 0.15), ("AUTO", 0.10)),
    "02": HOME_LOCATIONS,
    "03": STREET_LOCATIONS,
    "04A": STREET_LOCATIONS,
    "04B": STREET_LOCATIONS,
    "06": (("STREET", 0.30), ("SMALL RETAIL STORE", 0.25), ("DEPARTMENT STORE", 0.15),
           ("RESTAURANT", 0.10), ("RESIDENCE", 0.10),
           ("PARKING LOT / GARAGE (NON RESIDENTIAL)", 0.10)),
    "05": (("APARTMENT", 0.40), ("RESIDENCE", 0.35), ("COMMERCIAL / BUSINESS OFFICE", 0.15),
           ("RESIDENCE - GARAGE", 0.10)),
    "07": (("STREET", 0.75), ("PARKING LOT / GARAGE (NON RESIDENTIAL)", 0.20),
           ("RESIDENCE - GARAGE", 0.05)),
    "08B": (("APARTMENT", 0.40), ("RESIDENCE", 0.25), ("STREET", 0.20), ("SIDEWALK", 0.15)),
    "08A": (("STREET", 0.30), ("APARTMENT", 0.25), ("RESIDENCE", 0.20),
            ("SMALL RETAIL STORE", 0.15), ("SCHOOL, PUBLIC, BUILDING", 0.10)),
    "14": (("STREET", 0.50), ("RESIDENCE", 0.25), ("APARTMENT", 0.15),
           ("PARKING LOT / GARAGE (NON RESIDENTIAL)", 0.10)),
    "26": (("RESIDENCE", 0.45), ("APARTMENT", 0.35), ("STREET", 0.20)),
    "18": (("STREET", 0.60), ("SIDEWALK", 0.30), ("ALLEY", 0.10)),
}


@dataclass(frozen=True)
class _Grid:
    """Cell edges in degrees, rounded to 7 decimals. Cell index = row * cols + col."""

    lat_edges: np.ndarray  # grid_rows + 1 values, south to north.
    lon_edges: np.ndarray  # grid_cols + 1 values, west to east.
    rows: int
    cols: int

    @property
    def cell_count(self) -> int:
        return self.rows * self.cols

    def cell_row(self, cell: np.ndarray) -> np.ndarray:
        return cell // self.cols

    def cell_col(self, cell: np.ndarray) -> np.ndarray:
        return cell % self.cols


@dataclass(frozen=True)
class _Window:
    """Time spans of one run, as Unix seconds at UTC hour starts."""

    start: date
    end: date
    weather_start_utc: int  # Covers both windows below.
    weather_hours: int
    incident_start_utc: int  # Chicago local midnight at the start of `start`.
    incident_hours: int  # Up to Chicago local midnight at the end of `end`.


@dataclass(frozen=True)
class _Weather:
    """True hourly weather on the weather window, before any reporting flaws."""

    temperature_f: np.ndarray
    relative_humidity: np.ndarray
    wind_mph: np.ndarray
    precip_in: np.ndarray  # Inches, rounded to 0.01. Zero outside rain spells.
    raining: np.ndarray


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
    cells, about 500 m on a side) and `weather/demo_lcd_hourly_YYYY.csv.gz` (NOAA LCD
    layout, one per year in Local Standard Time). `end` is inclusive. The same arguments
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

    weather_seed, spatial_seed, incident_seed, flaw_seed, report_seed = (
        np.random.SeedSequence(seed).spawn(5))
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
    crime_row_count = _write_crime_files(folder / "crimes", grid, clock, rows, window)
    _write_lcd_files(folder / "weather", np.random.default_rng(report_seed), window, weather)

    summary = DemoSummary(
        folder=folder,
        cell_count=grid.cell_count,
        incident_rows=crime_row_count,
        violent_incidents=_count_violent_ids(rows),
        first_day=start,
        last_day=end,
    )
    logger.info(
        "Wrote synthetic demo extracts to %s: %d crime rows, %d violent incidents, %d cells",
        folder, summary.incident_rows, summary.violent_incidents, summary.cell_count,
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


# ---------------------------------------------------------------------------
# Grid and time windows
# ---------------------------------------------------------------------------


def _build_grid(grid_rows: int, grid_cols: int) -> _Grid:
    """Lay out square cells of about CELL_SIZE_M from the south-west corner."""
    lat_step = CELL_SIZE_M / METERS_PER_DEGREE_LAT
    lon_step = CELL_SIZE_M / (METERS_PER_DEGREE_LAT * math.cos(math.radians(GRID_SOUTH_LAT)))

    lat_edges = np.round(GRID_SOUTH_LAT + lat_step * np.arange(grid_rows + 1), 7)
    lon_edges = np.round(GRID_WEST_LON + lon_step * np.arange(grid_cols + 1), 7)
    return _Grid(lat_edges=lat_edges, lon_edges=lon_edges, rows=grid_rows, cols=grid_cols)


def _cell_ids(grid: _Grid) -> list[str]:
    """Return `RrrCcc` ids in cell index order. Row R00 is the southernmost row."""
    return [f"R{cell // grid.cols:02d}C{cell % grid.cols:02d}" for cell in range(grid.cell_count)]


def _build_window(start: date, end: date) -> _Window:
    """Span Chicago local days `start`..`end` and the same LST days with UTC hours."""
    chicago_start = datetime(start.year, start.month, start.day, tzinfo=CHICAGO)
    after_end = end + timedelta(days=1)
    chicago_stop = datetime(after_end.year, after_end.month, after_end.day, tzinfo=CHICAGO)
    incident_start_utc = int(chicago_start.timestamp())
    incident_stop_utc = int(chicago_stop.timestamp())

    # Chicago midnight is 05:00 or 06:00 UTC and LST midnight is always 06:00 UTC,
    # so the weather window runs from 05:00 UTC on `start` to 06:00 UTC after `end`.
    weather_start_utc = _unix_day(start) * SECONDS_PER_DAY + 5 * SECONDS_PER_HOUR
    weather_stop_utc = _unix_day(after_end) * SECONDS_PER_DAY + 6 * SECONDS_PER_HOUR

    return _Window(
        start=start,
        end=end,
        weather_start_utc=weather_start_utc,
        weather_hours=(weather_stop_utc - weather_start_utc) // SECONDS_PER_HOUR,
        incident_start_utc=incident_start_utc,
        incident_hours=(incident_stop_utc - incident_start_utc) // SECONDS_PER_HOUR,
    )


def _unix_day(day: date) -> int:
    return (day - EPOCH).days


@dataclass(frozen=True)
class _ChicagoClock:
    """America/Chicago UTC offsets per UTC hour, looked up with zoneinfo once per run.

    Since 1884 the Chicago offset has changed only at whole UTC hours (checked against the
    tz database with zoneinfo), so one value per hour is exact.
    """

    first_hour: int  # Unix hour number of offsets[0].
    offsets: np.ndarray  # Seconds to add to UTC to get the wall clock.

    @classmethod
    def covering(cls, first_utc: int, last_utc: int) -> _ChicagoClock:
        first_hour = first_utc // SECONDS_PER_HOUR - 1
        hours = range(first_hour, last_utc // SECONDS_PER_HOUR + 2)
        offsets = [
            int(datetime.fromtimestamp(hour * SECONDS_PER_HOUR, tz=CHICAGO).utcoffset()
                .total_seconds())
            for hour in hours
        ]
        return cls(first_hour=first_hour, offsets=np.array(offsets, dtype=np.int64))

    def offset_at(self, utc_seconds: np.ndarray) -> np.ndarray:
        index = utc_seconds // SECONDS_PER_HOUR - self.first_hour
        if index.size and (index.min() < 0 or index.max() >= self.offsets.size):
            raise ValueError(
            "Demo timestamp outside the precomputed Chicago UTC offsets. This is a bug in "
            "ml/demo.py, not in the arguments."
        )
        return self.offsets[index]

    def to_wall(self, utc_seconds: np.ndarray) -> np.ndarray:
        """Convert Unix seconds to wall-clock seconds (naive, counted as if UTC)."""
        return utc_seconds + self.offset_at(utc_seconds)

    def to_utc(self, wall_seconds: np.ndarray) -> np.ndarray:
        """Convert wall-clock seconds to Unix seconds.

        An ambiguous fall-back time maps to its first (daylight) instant, as with `fold=0`.
        Raises ValueError for a time that the spring-forward change skips.
        """
        utc = np.full(wall_seconds.shape, -1, dtype=np.int64)
        found = np.zeros(wall_seconds.shape, dtype=bool)
        for offset in np.unique(self.offsets)[::-1]:
            candidate = wall_seconds - offset
            matches = ~found & (self.offset_at(candidate) == offset)
            utc[matches] = candidate[matches]
            found |= matches

        if not found.all():
            raise ValueError(
            "Demo wall-clock time skipped by a spring-forward change. This is a bug in "
            "ml/demo.py, not in the arguments."
        )
        return utc


def _day_of_year(wall_seconds: np.ndarray) -> np.ndarray:
    days = (wall_seconds // SECONDS_PER_DAY).astype("datetime64[D]")
    return (days - days.astype("datetime64[Y]")).astype(np.int64) + 1


# ---------------------------------------------------------------------------
# Weather
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Incident process
# ---------------------------------------------------------------------------


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
    hour_starts = (window.incident_start_utc
                   + SECONDS_PER_HOUR * np.arange(window.incident_hours, dtype=np.int64))
    weather_index = (hour_starts - window.weather_start_utc) // SECONDS_PER_HOUR
    temperature = weather.temperature_f[weather_index]
    violent_factor, nonviolent_factor = _temporal_factors(clock.to_wall(hour_starts),
                                                          temperature)

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


# ---------------------------------------------------------------------------
# Crime records
# ---------------------------------------------------------------------------


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


def _wall_years(wall_seconds: np.ndarray) -> np.ndarray:
    days = (wall_seconds // SECONDS_PER_DAY).astype("datetime64[D]")
    return days.astype("datetime64[Y]").astype(np.int64) + 1970


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


# ---------------------------------------------------------------------------
# Crime files
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Boundaries
# ---------------------------------------------------------------------------


def _write_cells_geojson(path: Path, grid: _Grid) -> None:
    """Write the grid as a GeoJSON FeatureCollection of counter-clockwise square Polygons."""
    features = []
    for cell, cell_id in enumerate(_cell_ids(grid)):
        row, col = divmod(cell, grid.cols)
        south, north = float(grid.lat_edges[row]), float(grid.lat_edges[row + 1])
        west, east = float(grid.lon_edges[col]), float(grid.lon_edges[col + 1])
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        features.append({
            "type": "Feature",
            "properties": {"cell_id": cell_id, "name": f"Synthetic demo cell {cell_id}"},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        })

    collection = {"type": "FeatureCollection", "features": features}
    _write_bytes_atomically(path, (json.dumps(collection, indent=1) + "\n").encode("utf-8"))
    logger.info("Wrote %d synthetic demo cells to %s", len(features), path)


# ---------------------------------------------------------------------------
# Weather files
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# File output
# ---------------------------------------------------------------------------


def _write_gzip_csv(path: Path, header: tuple[str, ...], rows: Iterable[Iterable[str]]) -> None:
    """Write a gzip CSV with LF line ends and a zero gzip mtime, so the bytes are reproducible."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8")
    _write_bytes_atomically(path, gzip.compress(data, compresslevel=6, mtime=0))


def _write_bytes_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def _remove_stale_files(folder: Path, pattern: str, written: list[Path]) -> None:
    """Delete demo year files from an earlier run over other years."""
    for path in sorted(folder.glob(pattern)):
        if path not in written:
            path.unlink()
            logger.info("Deleted stale synthetic demo file %s", path)
