"""Large synthetic crime CSVs in the City of Chicago portal layout, for memory benchmarks and tests.

The demo city (``ml.demo.extracts``) simulates crimes with known truth and keeps them in memory.
This module only needs volume: it writes rows of plausible values in the 22 columns of the
portal's full export, chunk by chunk, so a file of many city-years never exists in memory. One
Chicago city-year is about 260,000 rows (the portal's 2014 to 2017 exports hold 260,000 to
275,000 rows each).
"""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

ROWS_PER_CITY_YEAR = 260_000

PORTAL_HEADER: tuple[str, ...] = (
    "ID", "Case Number", "Date", "Block", "IUCR", "Primary Type", "Description",
    "Location Description", "Arrest", "Domestic", "Beat", "District", "Ward",
    "Community Area", "FBI Code", "X Coordinate", "Y Coordinate", "Year", "Updated On",
    "Latitude", "Longitude", "Location",
)
"""Column names of the portal's full "Crimes - 2001 to present" export, in file order."""

# (IUCR, primary type, description, FBI code): a few common Chicago offenses of each category.
OFFENSES: tuple[tuple[str, str, str, str], ...] = (
    ("0486", "BATTERY", "DOMESTIC BATTERY SIMPLE", "08B"),
    ("041A", "BATTERY", "AGGRAVATED: HANDGUN", "04B"),
    ("031A", "ROBBERY", "ARMED: HANDGUN", "03"),
    ("0320", "ROBBERY", "STRONGARM - NO WEAPON", "03"),
    ("0820", "THEFT", "$500 AND UNDER", "06"),
    ("0810", "THEFT", "OVER $500", "06"),
    ("0610", "BURGLARY", "FORCIBLE ENTRY", "05"),
    ("0910", "MOTOR VEHICLE THEFT", "AUTOMOBILE", "07"),
    ("1320", "CRIMINAL DAMAGE", "TO VEHICLE", "14"),
    ("1811", "NARCOTICS", "POSS: CANNABIS 30GMS OR LESS", "18"),
)
PLACES = ("STREET", "RESIDENCE", "APARTMENT", "SIDEWALK", "PARKING LOT/GARAGE(NON.RESID.)",
          "SMALL RETAIL STORE", "RESTAURANT", "ALLEY")
STREETS = ("S HALSTED ST", "W MADISON ST", "N CLARK ST", "S ASHLAND AVE", "W CHICAGO AVE",
           "S COTTAGE GROVE AVE", "N MILWAUKEE AVE", "W 63RD ST")
PORTAL_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"


def write_bulk_crime_csv(path: Path, rows: int, first_year: int = 2014, seed: int = 1,
                         chunk_rows: int = 200_000) -> int:
    """Write ``rows`` synthetic crimes to ``path`` (gzip when it ends in ``.gz``); return the bytes written.

    Dates run evenly from 1 January of ``first_year`` over as many years as ``rows`` fills at
    ``ROWS_PER_CITY_YEAR`` a year, so IDs, dates and case numbers are unique and ascending.
    Peak memory is that of one chunk of ``chunk_rows`` rows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(seed)
    start = datetime(first_year, 1, 1)
    seconds_per_row = 365.25 * 86_400 / ROWS_PER_CITY_YEAR

    with open_output(path) as handle:
        for offset in range(0, rows, chunk_rows):
            count = min(chunk_rows, rows - offset)
            chunk = crime_chunk(generator, offset, count, start, seconds_per_row)
            chunk.write_csv(handle, include_header=offset == 0)
    return path.stat().st_size


def open_output(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=1)
    return open(path, "wb")


def crime_chunk(generator: np.random.Generator, offset: int, count: int, start: datetime,
                seconds_per_row: float) -> pl.DataFrame:
    """Build rows ``offset`` to ``offset + count`` of the file as text columns in portal order."""
    index = np.arange(offset, offset + count, dtype=np.int64)
    jitter = generator.uniform(0, seconds_per_row, count)
    event_seconds = (index * seconds_per_row + jitter).astype(np.int64)
    offense = generator.integers(0, len(OFFENSES), count)
    latitude = generator.uniform(41.76, 41.95, count)
    longitude = generator.uniform(-87.72, -87.64, count)

    frame = pl.DataFrame({
        "index": index,
        "event": pl.Series(event_seconds * 1_000_000).cast(pl.Datetime("us")) + (start - datetime(1970, 1, 1)),
        "offense": offense,
        "place": generator.integers(0, len(PLACES), count),
        "street": generator.integers(0, len(STREETS), count),
        "house": generator.integers(1, 130, count),
        "arrest": generator.random(count) < 0.2,
        "domestic": generator.random(count) < 0.15,
        "beat": generator.integers(111, 2535, count),
        "ward": generator.integers(1, 51, count),
        "community": generator.integers(1, 78, count),
        "latitude": latitude,
        "longitude": longitude,
    })
    return frame.select(text_columns())


def text_columns() -> list[pl.Expr]:
    iucr, primary, description, fbi = (pl.Series(values) for values in zip(*OFFENSES))
    latitude = pl.col("latitude").round(9).cast(pl.String)
    longitude = pl.col("longitude").round(9).cast(pl.String)
    updated = pl.col("event") + timedelta(days=30)
    return [
        (pl.col("index") + 10_000_000).cast(pl.String).alias("ID"),
        pl.format("J{}", (pl.col("index") + 100_000_000).cast(pl.String)).alias("Case Number"),
        pl.col("event").dt.strftime(PORTAL_TIME_FORMAT).alias("Date"),
        pl.format("0{}XX {}", pl.col("house").cast(pl.String).str.zfill(2),
                  pl.col("street").replace_strict(range(len(STREETS)), STREETS)).alias("Block"),
        pl.col("offense").replace_strict(range(len(OFFENSES)), iucr).alias("IUCR"),
        pl.col("offense").replace_strict(range(len(OFFENSES)), primary).alias("Primary Type"),
        pl.col("offense").replace_strict(range(len(OFFENSES)), description).alias("Description"),
        pl.col("place").replace_strict(range(len(PLACES)), PLACES).alias("Location Description"),
        pl.col("arrest").cast(pl.String).alias("Arrest"),
        pl.col("domestic").cast(pl.String).alias("Domestic"),
        pl.col("beat").cast(pl.String).str.zfill(4).alias("Beat"),
        (pl.col("beat") // 100).cast(pl.String).str.zfill(3).alias("District"),
        pl.col("ward").cast(pl.String).alias("Ward"),
        pl.col("community").cast(pl.String).alias("Community Area"),
        pl.col("offense").replace_strict(range(len(OFFENSES)), fbi).alias("FBI Code"),
        ((pl.col("longitude") + 88.0) * 2_600_000).cast(pl.Int64).cast(pl.String).alias("X Coordinate"),
        ((pl.col("latitude") - 41.0) * 1_800_000).cast(pl.Int64).cast(pl.String).alias("Y Coordinate"),
        pl.col("event").dt.year().cast(pl.String).alias("Year"),
        updated.dt.strftime(PORTAL_TIME_FORMAT).alias("Updated On"),
        latitude.alias("Latitude"),
        longitude.alias("Longitude"),
        pl.format("({}, {})", latitude, longitude).alias("Location"),
    ]
