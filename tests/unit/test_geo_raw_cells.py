"""raw_cells' helpers on a real DuckDB file: usable cells of a layer, and the H3 cover."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import shapely
import yaml

from orchestration.assets.raw import store_raw_table
from orchestration.assets.raw_geography import cover_geometry, layer_cells
from orchestration.geography import LayerProperties, empty_boundary_frame, parse_feature_collection
from orchestration.ingest import ExtractError
from orchestration.jurisdiction import JURISDICTIONS_DIR, JurisdictionConfig
from tests.geo_fixtures import BOW_TIE, feature, rectangle

WEST = rectangle(-87.70, -87.69, 41.85, 41.87)
EAST = rectangle(-87.69, -87.68, 41.85, 41.87)
# A closed ring whose points lie on one line: structurally sound, but with no area after repair.
FLAT = {"type": "Polygon", "coordinates": [[[-87.70, 41.85], [-87.69, 41.85], [-87.68, 41.85], [-87.70, 41.85]]]}


def jurisdiction(cells: dict | None = None) -> JurisdictionConfig:
    content = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    if cells is not None:
        content["cells"] = cells
    return JurisdictionConfig(**content)


def store_tracts(folder: Path, features: list[dict]) -> Path:
    config = jurisdiction()
    layer = config.boundaries.layer("tracts")
    frame = parse_feature_collection({"type": "FeatureCollection", "features": features}, layer,
                                     LayerProperties.of_file(layer), "tracts.geojson")
    warehouse = folder / "warehouse.duckdb"
    store_raw_table(warehouse, folder / "raw", "boundaries", frame)
    return warehouse


def tract(geoid: str, geometry: dict | None) -> dict:
    return feature({"geoid10": geoid}, geometry)


def test_layer_cells_leave_out_unusable(tmp_path: Path) -> None:
    warehouse = store_tracts(tmp_path, [tract("1", WEST), tract("2", None), tract("3", BOW_TIE),
                                        tract("4", FLAT), tract("5", {"type": "Polygon", "coordinates": []})])

    frame, left_out = layer_cells(warehouse, jurisdiction())

    assert frame["cell_id"].to_list() == ["1", "3"]
    assert left_out == {"empty_after_repair": 1, "empty_geometry": 1, "missing_geometry": 1}


def test_layer_without_usable_cell_is_an_error(tmp_path: Path) -> None:
    warehouse = store_tracts(tmp_path, [tract("2", None), tract("4", FLAT)])

    with pytest.raises(ExtractError) as caught:
        layer_cells(warehouse, jurisdiction())

    message = str(caught.value)
    assert "the cells layer 'tracts' (boundaries/census_tracts_2010.geojson) has no usable polygon" in message
    assert "2 features" in message
    assert "'empty_after_repair': 1" in message
    assert "'missing_geometry': 1" in message


def test_cover_is_union_of_layer(tmp_path: Path) -> None:
    warehouse = store_tracts(tmp_path, [tract("1", WEST), tract("2", EAST), tract("3", None)])
    config = jurisdiction({"spatial_unit": "h3_cell", "h3": {"cover_layer": "tracts"}})

    cover = shapely.geometry.shape(cover_geometry(warehouse, config))

    expected = shapely.geometry.shape(rectangle(-87.70, -87.68, 41.85, 41.87))
    assert cover.symmetric_difference(expected).area == pytest.approx(0, abs=1e-12)


def test_cover_defaults_to_bounding_box(tmp_path: Path) -> None:
    config = jurisdiction({"spatial_unit": "h3_cell", "h3": {"resolution": 7}})

    cover = shapely.geometry.shape(cover_geometry(tmp_path / "unused.duckdb", config))

    assert cover.bounds == (-87.95, 41.6, -87.5, 42.1)


def test_cover_layer_without_polygons(tmp_path: Path) -> None:
    warehouse = store_tracts(tmp_path, [tract("2", None)])
    config = jurisdiction({"spatial_unit": "h3_cell", "h3": {"cover_layer": "tracts"}})

    with pytest.raises(ExtractError, match="the H3 cover layer 'tracts' has no usable polygon"):
        cover_geometry(warehouse, config)


def test_raw_schema_survives_empty_layers(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    store_raw_table(warehouse, tmp_path / "raw", "boundaries", empty_boundary_frame())

    frame = pl.read_parquet(tmp_path / "raw" / "boundaries.parquet")
    assert frame.height == 0
    assert frame.columns == ["layer", "kind", "feature_id", "name", "population", "geometry_geojson",
                             "geometry_problem", "source_file", "feature_index"]
