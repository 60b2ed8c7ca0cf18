"""Police districts of the demo grid and a synthetic demographics table per district.

A district is a block of CELLS_PER_DISTRICT_SIDE x CELLS_PER_DISTRICT_SIDE cells, numbered as
the crime rows' District column numbers them (001 in the south-west, row by row), so the
boundary layer and the incidents agree. The demographics table has the columns of a typical
census profile: total population, four race and ethnicity groups, per-capita income and the
percent of people below poverty. ALL OF IT IS SYNTHETIC, drawn from a seeded generator. It plants
no relation between demographics and the demo's crime rates.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

import numpy as np

from ml.demo.files import _write_bytes_atomically
from ml.demo.grid import CELLS_PER_DISTRICT_SIDE, _Grid

logger = logging.getLogger(__name__)

DEMOGRAPHICS_HEADER = ("DISTRICT", "TOTAL_POPULATION", "WHITE_NOT_HISPANIC", "BLACK_NOT_HISPANIC",
                       "ASIAN_NOT_HISPANIC", "HISPANIC", "PER_CAPITA_INCOME", "PERCENT_BELOW_POVERTY")
# Mean people per cell (a 500 m square of a dense city neighborhood) and the Dirichlet weights of
# the groups: non-Hispanic white, Black and Asian, Hispanic, and everyone else.
PEOPLE_PER_CELL = 2500
GROUP_WEIGHTS = (3.0, 3.0, 0.8, 2.5, 0.4)


def _district_bounds(grid: _Grid) -> list[tuple[str, int, int, int, int]]:
    """Return (district code, first row, end row, first col, end col) per district, in number order."""
    side = CELLS_PER_DISTRICT_SIDE
    districts = []
    for district_row in range(math.ceil(grid.rows / side)):
        for district_col in range(math.ceil(grid.cols / side)):
            number = 1 + district_row * math.ceil(grid.cols / side) + district_col
            row_start, col_start = district_row * side, district_col * side
            districts.append((f"{number:03d}", row_start, min(row_start + side, grid.rows),
                              col_start, min(col_start + side, grid.cols)))
    return districts


def _write_districts_geojson(path: Path, grid: _Grid) -> None:
    """Write the police districts as a FeatureCollection of counter-clockwise rectangles."""
    features = []
    for code, row_start, row_end, col_start, col_end in _district_bounds(grid):
        south, north = float(grid.lat_edges[row_start]), float(grid.lat_edges[row_end])
        west, east = float(grid.lon_edges[col_start]), float(grid.lon_edges[col_end])
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        features.append({
            "type": "Feature",
            "properties": {"district": code, "name": f"Synthetic demo district {code}"},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        })

    collection = {"type": "FeatureCollection", "features": features}
    _write_bytes_atomically(path, (json.dumps(collection, indent=1) + "\n").encode("utf-8"))
    logger.info("Wrote %d synthetic demo police districts to %s", len(features), path)


def _write_district_demographics(path: Path, rng: np.random.Generator, grid: _Grid) -> None:
    """Write one synthetic row per district: population, group counts, income and poverty."""
    rows = []
    for code, row_start, row_end, col_start, col_end in _district_bounds(grid):
        cells = (row_end - row_start) * (col_end - col_start)
        population = int(rng.poisson(PEOPLE_PER_CELL * cells))
        shares = rng.dirichlet(GROUP_WEIGHTS)
        # Rounding down keeps the four groups within the population, and the rest is "other".
        white, black, asian, hispanic = (int(population * share) for share in shares[:4])
        income = int(round(rng.lognormal(mean=math.log(30_000), sigma=0.35), -1))
        poverty = round(float(rng.uniform(5.0, 35.0)), 1)
        rows.append((code, population, white, black, asian, hispanic, income, poverty))

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(DEMOGRAPHICS_HEADER)
    writer.writerows(rows)
    _write_bytes_atomically(path, text.getvalue().encode("utf-8"))
    logger.info("Wrote synthetic demographics of %d demo districts to %s", len(rows), path)
