"""Grid of square demo cells, about 500 m on a side, and its GeoJSON boundary file.

Cell index is row * cols + col, with row 0 in the south and column 0 in the west. The
block length of synthetic addresses (in meters) and the side of a police district (in
cells) are also set here because both are measured on the grid.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.demo.files import _write_bytes_atomically

logger = logging.getLogger(__name__)

# Grid geometry. The south-west corner of the grid is at GRID_SOUTH_LAT, GRID_WEST_LON.
GRID_SOUTH_LAT = 40.0
GRID_WEST_LON = -100.0
CELL_SIZE_M = 500.0
METERS_PER_DEGREE_LAT = 111_320.0
BLOCK_LENGTH_M = 201.0  # One Chicago-style address block (100 house numbers) per 1/8 mile.
CELLS_PER_DISTRICT_SIDE = 4


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
