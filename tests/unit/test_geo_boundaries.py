"""Boundary layers from GeoJSON: ids, properties, geometry problems and configuration errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from orchestration.geography import geometry_problem, normalize_id, read_layer_file
from orchestration.ingest import ExtractError
from orchestration.jurisdiction import JURISDICTIONS_DIR, ConfigError, load_jurisdiction
from tests.geo_fixtures import BOW_TIE, feature, rectangle, tract_layer, write_collection

SQUARE = rectangle(-87.70, -87.69, 41.85, 41.86)
TRACTS_FILE = "boundaries/tracts.geojson"


def tract(geoid: object, geometry: dict | None = SQUARE, **properties: object) -> dict:
    return feature({"geoid10": geoid, "namelsad10": f"Census Tract {geoid}", **properties}, geometry)


def read(folder: Path, features: list[dict] | str, **overrides: object):
    write_collection(folder / TRACTS_FILE, features)
    return read_layer_file(folder, tract_layer(**overrides))


# Rows and properties.

def test_rows_keep_layer_id_name_and_geometry(tmp_path: Path) -> None:
    table = read(tmp_path, [tract("17031000100"), tract("17031000200", rectangle(-87.69, -87.68, 41.85, 41.86))])
    frame = table.frame

    assert frame["layer"].to_list() == ["tracts", "tracts"]
    assert frame["kind"].to_list() == ["census_tract", "census_tract"]
    assert frame["feature_id"].to_list() == ["17031000100", "17031000200"]
    assert frame["name"].to_list() == ["Census Tract 17031000100", "Census Tract 17031000200"]
    assert frame["feature_index"].to_list() == [0, 1]
    assert frame["source_file"].to_list() == ["tracts.geojson", "tracts.geojson"]
    assert json.loads(frame["geometry_geojson"][0]) == SQUARE
    assert frame["geometry_problem"].to_list() == [None, None]


def test_population_property_as_number_text(tmp_path: Path) -> None:
    features = [tract("1", pop=3873), tract("2", pop="12.5"), tract("3", pop=None)]

    frame = read(tmp_path, features, population_property="pop").frame

    assert frame["population"].to_list() == ["3873", "12.5", None]


def test_population_not_a_number(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match=r"feature 1 \(2\), property 'pop': 'many' is not a number"):
        read(tmp_path, [tract("1", pop=10), tract("2", pop="many")], population_property="pop")


def test_integer_ids_join_across_spellings() -> None:
    assert normalize_id(35, "integer", "here") == "35"
    assert normalize_id(35.0, "integer", "here") == "35"
    assert normalize_id(" 35.0 ", "integer", "here") == "35"
    assert normalize_id("0035", "integer", "here") == "35"


def test_text_ids_keep_leading_zeros() -> None:
    assert normalize_id("042101012204", "text", "here") == "042101012204"
    assert normalize_id(17031010100, "text", "here") == "17031010100"
    assert normalize_id("  ", "text", "here") is None


def test_integer_id_with_fraction_rejected() -> None:
    with pytest.raises(ExtractError, match="here: id '35.5' is not a whole number"):
        normalize_id("35.5", "integer", "here")


# Geometry problems: kept as raw rows with a reason, for staging to quarantine.

def test_self_intersecting_polygon_is_kept_for_repair(tmp_path: Path) -> None:
    frame = read(tmp_path, [tract("17031000300", BOW_TIE)]).frame

    assert frame["geometry_problem"].to_list() == [None]
    assert json.loads(frame["geometry_geojson"][0]) == BOW_TIE


def test_empty_geometry_gets_reason(tmp_path: Path) -> None:
    features = [tract("1"), tract("2", {"type": "Polygon", "coordinates": []}),
                tract("3", {"type": "MultiPolygon", "coordinates": [[[]], []]})]

    table = read(tmp_path, features)

    assert table.frame["geometry_problem"].to_list() == [None, "empty_geometry", "empty_geometry"]
    assert table.problem_counts() == {"empty_geometry": 2}


def test_null_geometry_gets_reason(tmp_path: Path) -> None:
    frame = read(tmp_path, [tract("1"), tract("2", None)]).frame

    assert frame["geometry_problem"].to_list() == [None, "missing_geometry"]
    assert frame["geometry_geojson"].to_list()[1] is None


@pytest.mark.parametrize(
    ("geometry", "problem"),
    [
        ({"type": "Point", "coordinates": [-87.6, 41.8]}, "not_a_polygon"),
        ({"type": "LineString", "coordinates": [[-87.6, 41.8], [-87.5, 41.9]]}, "not_a_polygon"),
        ({"type": "Polygon", "coordinates": "none"}, "malformed_coordinates"),
        ({"type": "Polygon", "coordinates": [[[-87.6, "41.8"]]]}, "malformed_coordinates"),
        ({"type": "Polygon", "coordinates": [[[-87.6, 41.8], [-87.5, 41.8], [-87.5, 41.9]]]},
         "malformed_coordinates"),
        ({"type": "Polygon", "coordinates": [[[-87.6, 41.8], [-87.5, 41.8], [-87.5, 41.9], [-87.6, 41.9]]]},
         "malformed_coordinates"),
        ({"coordinates": [[[-87.6, 41.8]]]}, "malformed_coordinates"),
        (BOW_TIE, None),
        ({"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]}, None),
    ],
)
def test_geometry_problem_cases(geometry: dict, problem: str | None) -> None:
    assert geometry_problem(geometry) == problem


# Errors that make a layer unusable.

def test_missing_id_property_names_file_and_feature(tmp_path: Path) -> None:
    nameless = feature({"namelsad10": "Census Tract 1"}, SQUARE)

    with pytest.raises(ExtractError) as caught:
        read(tmp_path, [tract("17031000100"), nameless])

    message = str(caught.value)
    assert "tracts.geojson, feature 1: property 'geoid10' is missing" in message
    assert "id_property of layer 'tracts'" in message


def test_not_a_feature_collection(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match=r"tracts.geojson must hold a GeoJSON FeatureCollection, found 'Feature'"):
        read(tmp_path, json.dumps(tract("1")))


def test_top_level_array(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="found 'list'"):
        read(tmp_path, json.dumps([tract("1")]))


def test_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="tracts.geojson is not valid GeoJSON"):
        read(tmp_path, '{"type": "FeatureCollection", "features": [')


def test_feature_that_is_not_a_feature(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="feature 1 is not a GeoJSON Feature object"):
        read(tmp_path, [tract("1"), SQUARE])


def test_empty_collection(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="contains no features"):
        read(tmp_path, [])


def test_repeated_ids_without_dissolve(tmp_path: Path) -> None:
    # A number and its text are the same id once ids are text.
    features = [tract("17031000100"), tract(17031000100), tract("17031000200")]

    with pytest.raises(ExtractError, match=r"not unique: \['17031000100'\]. Set dissolve: true"):
        read(tmp_path, features)


def test_repeated_ids_with_dissolve(tmp_path: Path) -> None:
    features = [tract("3100"), tract("3100", rectangle(-87.69, -87.68, 41.85, 41.86)), tract("3200")]

    frame = read(tmp_path, features, kind="police_beat", dissolve=True).frame

    assert frame["feature_id"].to_list() == ["3100", "3100", "3200"]


def test_projected_coordinates_rejected(tmp_path: Path) -> None:
    feet = rectangle(1_150_000, 1_160_000, 1_890_000, 1_900_000)

    with pytest.raises(ExtractError, match=r"feature 0 \(1\): position \(1150000, 1890000\) is not a longitude/latitude"):
        read(tmp_path, [tract("1", feet)])


def test_declared_projected_crs_rejected(tmp_path: Path) -> None:
    collection = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:3435"}},
                  "features": [tract("1")]}

    with pytest.raises(ExtractError, match="declares coordinate reference system 'EPSG:3435'"):
        read(tmp_path, json.dumps(collection))


def test_crs84_accepted(tmp_path: Path) -> None:
    collection = {"type": "FeatureCollection",
                  "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
                  "features": [tract("1")]}

    assert read(tmp_path, json.dumps(collection)).frame.height == 1


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="boundary file of layer 'tracts' not found"):
        read_layer_file(tmp_path, tract_layer())


# Configuration.

def chicago_content() -> dict:
    return yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))


def jurisdiction_error(folder: Path, content: dict) -> str:
    path = folder / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_jurisdiction(str(path))
    return str(caught.value)


def test_chicago_layers() -> None:
    config = load_jurisdiction("chicago")

    assert [layer.name for layer in config.boundaries.layers] == ["tracts", "community_areas", "beats", "districts"]
    assert [layer.kind for layer in config.boundaries.layers] == [
        "census_tract", "community_area", "police_beat", "police_district"]
    assert config.boundaries.layer("beats").dissolve is True
    assert config.boundaries.layer("community_areas").api.id_property == "area_numbe"
    assert config.demographics.counts_layer == "tracts"
    assert config.demographics.income_layer == "community_areas"
    assert config.demographics.tables[0].id_length == 11


def test_demo_layers() -> None:
    config = load_jurisdiction("demo")

    assert [layer.name for layer in config.boundaries.layers] == ["cells", "districts"]
    assert config.demographics.tables[0].layer == "districts"


def test_h3_cells_default_resolution(tmp_path: Path) -> None:
    content = chicago_content()
    content["cells"] = {"spatial_unit": "h3_cell", "h3": {"cover_layer": "tracts"}}
    path = tmp_path / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")

    cells = load_jurisdiction(str(path)).cells

    assert cells.h3.resolution == 8
    assert cells.h3.containment == "overlap"
    assert cells.layer is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda content: content["cells"].update(layer="wards"),
         "cells.layer names boundary layer 'wards', but boundaries.layers has only"),
        (lambda content: content["cells"].update(spatial_unit="grid_cell"),
         "cells.spatial_unit is grid_cell but layer 'tracts' has kind census_tract"),
        (lambda content: content.update(cells={"spatial_unit": "h3_cell", "layer": "tracts"}),
         "an h3_cell grid takes its extent from cells.h3.cover_layer"),
        (lambda content: content.update(cells={"spatial_unit": "h3_cell", "h3": {"resolution": 16}}),
         "resolution"),
        (lambda content: content.update(cells={"spatial_unit": "h3_cell", "h3": {"cover_layer": "city"}}),
         "cells.h3.cover_layer names boundary layer 'city'"),
        (lambda content: content["demographics"].update(income_layer="wards"),
         "demographics.income_layer names boundary layer 'wards'"),
        (lambda content: content["boundaries"]["layers"][2].update(kind="police_district"),
         "at most one boundary layer per kind, repeated: ['police_district']"),
        (lambda content: content["boundaries"]["layers"][2].update(name="tracts"),
         "boundary layer names must be unique, repeated: ['tracts']"),
        (lambda content: content["boundaries"]["layers"][0].update(dissolve=True),
         "the cells layer 'tracts' cannot use dissolve"),
        (lambda content: content["boundaries"]["layers"][0].pop("file") and content["boundaries"]["layers"][0].pop("api"),
         "boundary layer 'tracts' needs a file, an api block or both"),
        (lambda content: content["demographics"]["tables"][0]["columns"].update(median_age="HD01_VD99"),
         "maps unknown fields ['median_age']"),
        (lambda content: content["demographics"]["tables"][1]["columns"].update(
            per_capita_income="PerCInc14"),
         "field 'per_capita_income' of layer 'community_areas' is mapped by both"),
        (lambda content: content["demographics"]["tables"][0]["columns"].update(
            per_capita_income="HD01_VD99") or content["demographics"]["tables"][0]["columns"].pop("population"),
         "aggregates rows (id_length) but has no population column to weight"),
    ],
)
def test_geography_configuration_errors(tmp_path: Path, change, expected: str) -> None:
    content = chicago_content()
    change(content)

    assert expected in jurisdiction_error(tmp_path, content)


def test_layer_name_must_be_identifier() -> None:
    with pytest.raises(ValidationError, match="name"):
        tract_layer(name="Census Tracts")


def test_extracts_folder_not_found(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="extracts folder not found: .*nowhere"):
        read_layer_file(tmp_path / "nowhere", tract_layer())
