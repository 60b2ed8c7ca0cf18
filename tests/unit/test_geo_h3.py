"""The H3 grid: cells covering a known polygon, checked against shapely and pyproj."""

from __future__ import annotations

import json

import h3
import pyproj
import pytest
import shapely

from orchestration.h3_grid import bounding_box_geometry, cover_cells, h3_grid
from orchestration.jurisdiction import BoundingBox

# An L-shaped polygon of about 27 km² in Chicago: a 6 km x 3 km bar with a 3 km x 3 km block on top.
L_SHAPE = {"type": "Polygon", "coordinates": [[
    [-87.70, 41.85], [-87.628, 41.85], [-87.628, 41.877], [-87.664, 41.877], [-87.664, 41.904],
    [-87.70, 41.904], [-87.70, 41.85]]]}
# WGS 84 longitude/latitude to EPSG:6933, the equal-area projection the warehouse uses.
TO_EQUAL_AREA = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True).transform


def equal_area_km2(geometry: shapely.Geometry) -> float:
    return shapely.transform(geometry, TO_EQUAL_AREA, interleaved=False).area / 1e6


def candidate_cells(polygon: shapely.Geometry, resolution: int) -> set[str]:
    """Every cell within a generous ring around the polygon's centroid."""
    center = h3.latlng_to_cell(polygon.centroid.y, polygon.centroid.x, resolution)
    return set(h3.grid_disk(center, 40))


def hexagon(cell: str) -> shapely.Polygon:
    return shapely.Polygon([(longitude, latitude) for latitude, longitude in h3.cell_to_boundary(cell)])


def test_center_cells_match_shapely() -> None:
    polygon = shapely.geometry.shape(L_SHAPE)
    expected = {cell for cell in candidate_cells(polygon, 9)
                if polygon.contains(shapely.Point(h3.cell_to_latlng(cell)[::-1]))}

    cells = cover_cells(L_SHAPE, 9, "center")

    assert set(cells) == expected
    assert len(cells) == len(expected)


def test_overlap_cells_cover_polygon() -> None:
    polygon = shapely.geometry.shape(L_SHAPE)
    touching = {cell for cell in candidate_cells(polygon, 9) if hexagon(cell).intersects(polygon)}

    cells = cover_cells(L_SHAPE, 9, "overlap")
    union = shapely.union_all([hexagon(cell) for cell in cells])

    assert set(cells) <= touching
    # Only hexagons that barely touch the outline may differ between h3 and shapely.
    assert len(touching - set(cells)) <= 2
    assert polygon.difference(union).area == pytest.approx(0.0, abs=1e-12)


def test_center_cells_area_near_polygon_area() -> None:
    polygon = shapely.geometry.shape(L_SHAPE)
    cells = cover_cells(L_SHAPE, 9, "center")

    union_km2 = equal_area_km2(shapely.union_all([hexagon(cell) for cell in cells]))
    polygon_km2 = equal_area_km2(polygon)
    h3_km2 = sum(h3.cell_area(cell, "km^2") for cell in cells)

    assert polygon_km2 == pytest.approx(26.9, rel=0.01)
    assert union_km2 == pytest.approx(polygon_km2, rel=0.05)
    assert h3_km2 == pytest.approx(union_km2, rel=0.005)


def test_resolution_from_config() -> None:
    for resolution in (7, 8, 9):
        cells = cover_cells(L_SHAPE, resolution, "overlap")

        assert {h3.get_resolution(cell) for cell in cells} == {resolution}
    assert len(cover_cells(L_SHAPE, 7, "overlap")) < len(cover_cells(L_SHAPE, 8, "overlap"))


def test_grid_rows_are_closed_hexagons() -> None:
    frame = h3_grid(L_SHAPE, 8, "overlap")

    assert frame.columns == ["cell_id", "geometry_geojson"]
    assert frame["cell_id"].to_list() == sorted(frame["cell_id"].to_list())
    for cell, text in zip(frame["cell_id"], frame["geometry_geojson"]):
        geometry = json.loads(text)
        ring = geometry["coordinates"][0]
        assert geometry["type"] == "Polygon"
        assert ring[0] == ring[-1]
        assert len(ring) == 7
        assert shapely.Polygon(ring).is_valid
        assert shapely.Polygon(ring).contains(shapely.Point(h3.cell_to_latlng(cell)[::-1]))


def test_bounding_box_cover() -> None:
    box = BoundingBox(min_lat=41.85, max_lat=41.90, min_lon=-87.70, max_lon=-87.60)
    rectangle = shapely.geometry.shape(bounding_box_geometry(box))

    cells = cover_cells(bounding_box_geometry(box), 8, "overlap")

    assert rectangle.bounds == (-87.70, 41.85, -87.60, 41.90)
    assert rectangle.exterior.is_ccw
    assert rectangle.difference(shapely.union_all([hexagon(cell) for cell in cells])).area == pytest.approx(0, abs=1e-12)


def test_cover_must_be_polygonal() -> None:
    with pytest.raises(ValueError, match="got Point"):
        cover_cells({"type": "Point", "coordinates": [-87.6, 41.8]}, 8, "overlap")
