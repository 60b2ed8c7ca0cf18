"""An H3 grid of forecasting cells that covers a city.

H3 is Uber's hierarchical hexagonal grid (https://h3geo.org). At resolution 8 a cell averages
0.74 km2 with 0.53 km edges, about a three-block radius in a North American city. The grid
covers either the union of a boundary layer (the city's census tracts) or the jurisdiction's
bounding box. Each cell becomes a row of ``raw.cells`` with its hexagon as a GeoJSON Polygon, so
H3 cells pass through the same staging as tract cells.

The cells come from ``h3shape_to_cells_experimental`` of h3-py 4.5.0, which adds containment
modes to ``polygon_to_cells``. ``overlap`` keeps every cell that touches the cover, so every
incident inside the city lands in a cell. ``center`` keeps the cells whose center lies inside.
"""

from __future__ import annotations

import json
import logging

import h3
import polars as pl

from orchestration.jurisdiction import BoundingBox

logger = logging.getLogger(__name__)

CELL_SCHEMA = {"cell_id": pl.String, "geometry_geojson": pl.String}


def bounding_box_geometry(box: BoundingBox) -> dict:
    """Return the box as a GeoJSON Polygon, counter-clockwise from the south-west corner."""
    ring = [[box.min_lon, box.min_lat], [box.max_lon, box.min_lat], [box.max_lon, box.max_lat],
            [box.min_lon, box.max_lat], [box.min_lon, box.min_lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def cell_polygon(cell: str) -> dict:
    """Return an H3 cell's hexagon (or pentagon) as a closed GeoJSON Polygon in longitude/latitude."""
    ring = [[longitude, latitude] for latitude, longitude in h3.cell_to_boundary(cell)]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def cover_cells(cover: dict, resolution: int, containment: str) -> list[str]:
    """Return the sorted H3 cells of ``resolution`` that cover a GeoJSON Polygon or MultiPolygon."""
    if cover.get("type") not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"an H3 grid covers a Polygon or MultiPolygon, got {cover.get('type')}")
    shape = h3.geo_to_h3shape(cover)
    return sorted(h3.h3shape_to_cells_experimental(shape, resolution, contain=containment))


def h3_grid(cover: dict, resolution: int, containment: str) -> pl.DataFrame:
    """Return one row per H3 cell covering ``cover``: the cell index and its polygon as GeoJSON."""
    cells = cover_cells(cover, resolution, containment)
    rows = [{"cell_id": cell, "geometry_geojson": json.dumps(cell_polygon(cell), separators=(",", ":"))}
            for cell in cells]
    logger.info("generated %d H3 cells at resolution %d (%s containment)", len(cells), resolution, containment)
    return pl.DataFrame(rows, schema=CELL_SCHEMA)
