"""Boundaries and demographics through the raw assets and dbt, on hand-made layers and tables.

One Dagster materialization of the geography assets and models on a small jurisdiction: four grid
cells, two tracts beside them, a community area around everything, beats and a layer with a known
overlap. Expected areas come from pyproj and shapely, independently of DuckDB.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyproj
import pytest
import shapely
import yaml

from orchestration.definitions import build_definitions
from orchestration.jurisdiction import JURISDICTIONS_DIR
from orchestration.warehouse import connect
from tests.extracts import write_run_file
from tests.geo_fixtures import BOW_TIE, feature, rectangle, write_collection, write_text

GRID = {
    "G1": rectangle(-87.70, -87.69, 41.85, 41.86),
    "G2": rectangle(-87.69, -87.68, 41.85, 41.86),
    "G3": rectangle(-87.70, -87.69, 41.86, 41.87),
    "G4": rectangle(-87.69, -87.68, 41.86, 41.87),
}
WEST_TRACT = rectangle(-87.70, -87.69, 41.85, 41.87)
EAST_TRACT = rectangle(-87.69, -87.68, 41.85, 41.87)
BOW_TIE_SQUARE = rectangle(-87.68, -87.67, 41.85, 41.86)
ZONE_A = rectangle(-87.70, -87.69, 41.85, 41.86)
ZONE_B = rectangle(-87.695, -87.685, 41.855, 41.865)
# A closed ring of points on one line: well formed, but with no area once repaired.
FLAT = {"type": "Polygon", "coordinates": [[[-87.70, 41.88], [-87.69, 41.88], [-87.68, 41.88], [-87.70, 41.88]]]}
# A block-group table as American FactFinder exports it, with a per-capita income column.
BLOCK_GROUPS = """GEO.id2,HD01_VD01,HD01_VD03,HD01_VD04,HD01_VD06,HD01_VD12,INCOME
Id2,Total,White alone,Black alone,Asian alone,Hispanic,Per capita income
170310001001,100,50,20,5,20,10000
170310001002,300,30,180,15,60,20000
170310002001,200,100,0,40,50,30000
170310003001,0,0,0,0,0,
170310099001,500,100,100,100,100,15000
,1100,280,300,160,230,
"""
INCOME = "COMMUNITY_AREA_NUMBER,PER_CAPITA_INCOME,PERCENT_HOUSEHOLDS_BELOW_POVERTY\n1.0,25000,12.5\n2.0,18000,30.1\n"
GEO_MODELS = ["stg_boundaries__features", "stg_demographics__rows", "stg_cells", "int_boundaries__features",
              "int_demographics__areas", "int_cells__containing_features", "int_cells__demographics",
              "dim_cells", "dim_cell_demographics", "dim_boundaries", "quarantine_boundaries",
              "boundary_overlaps"]
RAW_ASSETS = ["raw_boundaries", "raw_cells", "raw_demographics"]
TO_EQUAL_AREA = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True).transform


def area_m2(geometry: dict | shapely.Geometry) -> float:
    shape = geometry if isinstance(geometry, shapely.Geometry) else shapely.geometry.shape(geometry)
    return shapely.transform(shape, TO_EQUAL_AREA, interleaved=False).area


def write_geography(folder: Path) -> None:
    boundaries = folder / "boundaries"
    write_collection(boundaries / "grid.geojson", [
        *(feature({"cell": cell}, geometry) for cell, geometry in GRID.items()),
        feature({"cell": "G5"}, {"type": "Polygon", "coordinates": []}),
    ])
    write_collection(boundaries / "tracts.geojson", [
        feature({"geoid10": "17031000100"}, WEST_TRACT),
        feature({"geoid10": "17031000200"}, EAST_TRACT),
        feature({"geoid10": "17031000300"}, BOW_TIE),
        feature({"geoid10": "17031000400"}, {"type": "Polygon", "coordinates": []}),
        feature({"geoid10": "17031000500"}, None),
        feature({"geoid10": "17031000600"}, {"type": "Point", "coordinates": [-87.66, 41.86]}),
        feature({"geoid10": "17031000700"}, FLAT),
    ])
    write_collection(boundaries / "community_areas.geojson", [
        feature({"area_number": 1, "community": "TESTVILLE", "pop": 1234}, rectangle(-87.70, -87.67, 41.85, 41.87)),
    ])
    write_collection(boundaries / "beats.geojson", [
        feature({"beat_num": "0111"}, GRID["G1"]),
        feature({"beat_num": "0111"}, GRID["G3"]),
        feature({"beat_num": "0112"}, rectangle(-87.69, -87.67, 41.85, 41.87)),
    ])
    write_collection(boundaries / "zones.geojson", [
        feature({"zone": "A"}, ZONE_A),
        feature({"zone": "B"}, ZONE_B),
    ])
    write_text(folder / "demographics" / "block_groups.csv", BLOCK_GROUPS)
    write_text(folder / "demographics" / "income.csv", INCOME)


def write_jurisdiction(folder: Path) -> Path:
    content = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    content["name"] = "geocity"
    content["boundaries"] = {"max_overlap_m2": 300_000, "layers": [
        {"name": "grid", "kind": "grid_cell", "file": "boundaries/grid.geojson", "id_property": "cell"},
        {"name": "tracts", "kind": "census_tract", "file": "boundaries/tracts.geojson", "id_property": "geoid10"},
        {"name": "community_areas", "kind": "community_area", "file": "boundaries/community_areas.geojson",
         "id_property": "area_number", "id_type": "integer", "name_property": "community",
         "population_property": "pop"},
        {"name": "beats", "kind": "police_beat", "file": "boundaries/beats.geojson", "id_property": "beat_num",
         "dissolve": True},
        {"name": "zones", "kind": "other", "file": "boundaries/zones.geojson", "id_property": "zone"},
    ]}
    content["cells"] = {"spatial_unit": "grid_cell", "layer": "grid"}
    content["demographics"] = {"counts_layer": "tracts", "income_layer": "community_areas", "tables": [
        {"name": "tract_race", "file": "demographics/block_groups.csv", "layer": "tracts", "id_column": "GEO.id2",
         "id_length": 11, "label_rows": 1,
         "columns": {"population": "HD01_VD01", "nh_white": "HD01_VD03", "nh_black": "HD01_VD04",
                     "nh_asian": "HD01_VD06", "hispanic": "HD01_VD12", "per_capita_income": "INCOME"}},
        {"name": "area_income", "file": "demographics/income.csv", "layer": "community_areas",
         "id_column": "COMMUNITY_AREA_NUMBER", "id_type": "integer",
         "columns": {"per_capita_income": "PER_CAPITA_INCOME",
                     "poverty_percent": "PERCENT_HOUSEHOLDS_BELOW_POVERTY"}},
    ]}
    path = folder / "geocity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def geo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    folder = tmp_path_factory.mktemp("geo_warehouse")
    write_geography(folder / "extracts")
    run_file = write_run_file(folder, write_jurisdiction(folder), folder / "extracts",
                              ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))
    definitions = build_definitions(run_file, folder / "home")

    # Cautious indirect selection runs only the dbt tests whose models are all selected, so the
    # relationship test from the crime counts to dim_cells stays out of this crime-free subset.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_INDIRECT_SELECTION", "cautious")
        result = dg.materialize(
            assets=[*(definitions.assets or [])], resources=dict(definitions.resources or {}),
            selection=dg.AssetSelection.assets(*RAW_ASSETS, *GEO_MODELS), instance=dg.DagsterInstance.ephemeral())

    assert result.success
    return folder / "home" / "geocity" / "warehouse.duckdb", result


@pytest.fixture(scope="module")
def warehouse(geo_run: tuple[Path, dg.ExecuteInProcessResult]) -> Path:
    return geo_run[0]


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True, spatial=True) as connection:
        return connection.sql(sql).fetchall()


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in events[0].metadata.items()}


# Raw assets.

def test_raw_boundaries_keep_every_feature(warehouse: Path) -> None:
    counts = dict(query(warehouse, "SELECT layer, count(*) FROM raw.boundaries GROUP BY layer"))

    assert counts == {"grid": 5, "tracts": 7, "community_areas": 1, "beats": 3, "zones": 2}


def test_raw_boundaries_metadata_counts_problems(geo_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    values = metadata(geo_run[1], "raw_boundaries")

    assert values["dagster/row_count"] == 18
    assert values["invalid_polygons_to_repair"] == 1
    assert values["quarantined_features"] == 5
    assert "| tracts | 7 | 7 | 1 | 4 (empty_after_repair: 1, empty_geometry: 1, missing_geometry: 1, " \
           "not_a_polygon: 1) |" in values["layers"]


def test_raw_cells_leave_out_empty_cell(geo_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    warehouse, result = geo_run
    values = metadata(result, "raw_cells")

    assert [row[0] for row in query(warehouse, "SELECT cell_id FROM raw.cells ORDER BY cell_id")] == list(GRID)
    assert values["features_left_out"] == 1
    assert values["spatial_unit"] == "grid_cell"


def test_raw_demographics_count_areas_in_layer(geo_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    values = metadata(geo_run[1], "raw_demographics")
    tables = {row["table"]: row for row in values["tables"]}

    assert values["dagster/row_count"] == 7
    assert values["rows_without_id"] == 1
    assert (tables["tract_race"]["areas"], tables["tract_race"]["areas_in_layer"]) == (4, 3)
    assert (tables["area_income"]["areas"], tables["area_income"]["areas_in_layer"]) == (2, 1)


# Geometry repair and quarantine.

def test_self_intersecting_tract_is_repaired(warehouse: Path) -> None:
    rows = query(warehouse, """
        SELECT was_repaired, ST_IsValid(geom), area_km2 * 1e6 FROM intermediate.int_boundaries__features
        WHERE layer = 'tracts' AND feature_id = '17031000300'""")
    repaired, valid, area = rows[0]

    assert repaired is True
    assert valid is True
    assert area == pytest.approx(area_m2(BOW_TIE_SQUARE) / 2, rel=1e-3)
    assert area == pytest.approx(area_m2(shapely.make_valid(shapely.geometry.shape(BOW_TIE))), rel=1e-6)


def test_only_the_bow_tie_was_repaired(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT layer, feature_id FROM staging.stg_boundaries__features WHERE was_repaired")

    assert rows == [("tracts", "17031000300")]


def test_quarantine_lists_reasons(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT layer, feature_id, quarantine_reason, source_file, feature_index "
                            "FROM marts.quarantine_boundaries")

    assert rows == [
        ("grid", "G5", "empty_geometry", "grid.geojson", 4),
        ("tracts", "17031000400", "empty_geometry", "tracts.geojson", 3),
        ("tracts", "17031000500", "missing_geometry", "tracts.geojson", 4),
        ("tracts", "17031000600", "not_a_polygon", "tracts.geojson", 5),
        ("tracts", "17031000700", "empty_after_repair", "tracts.geojson", 6),
    ]


def test_dissolved_beat_is_one_feature(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT feature_id, source_features, area_km2 * 1e6 FROM marts.dim_boundaries "
                            "WHERE layer = 'beats' ORDER BY feature_id")

    assert [(row[0], row[1]) for row in rows] == [("0111", 2), ("0112", 1)]
    assert rows[0][2] == pytest.approx(area_m2(WEST_TRACT), rel=1e-6)


def test_overlap_area_per_layer(warehouse: Path) -> None:
    rows = {layer: (pairs, overlap) for layer, pairs, overlap in
            query(warehouse, "SELECT layer, overlapping_pairs, overlap_m2 FROM marts.boundary_overlaps")}
    expected = area_m2(shapely.geometry.shape(ZONE_A).intersection(shapely.geometry.shape(ZONE_B)))

    assert rows["zones"][0] == 1
    assert rows["zones"][1] == pytest.approx(expected, rel=1e-6)
    assert 200_000 < expected < 300_000
    assert rows["beats"] == (0, 0)
    assert rows["tracts"] == (0, 0)


# Demographics per area.

def area_row(warehouse: Path, layer: str, area_id: str) -> dict:
    with connect(warehouse, read_only=True) as connection:
        frame = connection.execute("SELECT * FROM intermediate.int_demographics__areas WHERE layer = ? AND area_id = ?",
                                   [layer, area_id]).pl()
    assert frame.height == 1
    return frame.row(0, named=True)


def test_block_groups_sum_to_tract(warehouse: Path) -> None:
    row = area_row(warehouse, "tracts", "17031000100")

    assert (row["population"], row["nh_white"], row["nh_black"], row["nh_asian"], row["hispanic"], row["other"]) == (
        400, 80, 200, 20, 80, 20)
    assert row["nh_white_share"] == pytest.approx(0.2)
    assert row["nh_black_share"] == pytest.approx(0.5)
    assert row["nh_asian_share"] == pytest.approx(0.05)
    assert row["hispanic_share"] == pytest.approx(0.2)
    assert row["other_share"] == pytest.approx(0.05)
    assert row["in_layer"] is True
    assert row["population_source"] == "table"


def test_income_weighted_by_population(warehouse: Path) -> None:
    # (100 * 10000 + 300 * 20000) / 400
    assert area_row(warehouse, "tracts", "17031000100")["per_capita_income"] == pytest.approx(17500)
    assert area_row(warehouse, "tracts", "17031000200")["per_capita_income"] == pytest.approx(30000)


def test_single_block_group_tract(warehouse: Path) -> None:
    row = area_row(warehouse, "tracts", "17031000200")

    assert row["population"] == 200
    assert row["other"] == 10
    assert row["nh_black_share"] == 0
    assert row["hispanic_share"] == pytest.approx(0.25)


def test_zero_population_has_no_shares(warehouse: Path) -> None:
    row = area_row(warehouse, "tracts", "17031000300")

    assert row["population"] == 0
    assert row["nh_white_share"] is None
    assert row["per_capita_income"] is None


def test_tract_outside_layer_is_flagged(warehouse: Path) -> None:
    assert area_row(warehouse, "tracts", "17031009900")["in_layer"] is False


def test_area_population_from_boundary_property(warehouse: Path) -> None:
    row = area_row(warehouse, "community_areas", "1")

    assert row["population"] == 1234
    assert row["population_source"] == "boundary_property"
    assert row["per_capita_income"] == 25000
    assert row["poverty_percent"] == 12.5


# Cells.

def cell_rows(warehouse: Path, table: str) -> dict[str, dict]:
    with connect(warehouse, read_only=True) as connection:
        frame = connection.sql(f"SELECT * FROM marts.{table}").pl()
    return {row["cell_id"]: row for row in frame.iter_rows(named=True)}


def test_cell_population_by_overlapping_area(warehouse: Path) -> None:
    cells = cell_rows(warehouse, "dim_cell_demographics")
    west, east = area_m2(WEST_TRACT), area_m2(EAST_TRACT)

    assert cells["G1"]["population"] == pytest.approx(400 * area_m2(GRID["G1"]) / west, rel=1e-6)
    assert cells["G3"]["population"] == pytest.approx(400 * area_m2(GRID["G3"]) / west, rel=1e-6)
    assert cells["G2"]["population"] == pytest.approx(200 * area_m2(GRID["G2"]) / east, rel=1e-6)
    assert cells["G1"]["population"] + cells["G3"]["population"] == pytest.approx(400, rel=1e-9)
    assert cells["G1"]["population"] != pytest.approx(200, rel=1e-6)


def test_cell_shares_follow_their_tract(warehouse: Path) -> None:
    cells = cell_rows(warehouse, "dim_cell_demographics")

    assert cells["G1"]["nh_black_share"] == pytest.approx(0.5)
    assert cells["G4"]["nh_white_share"] == pytest.approx(0.5)
    assert cells["G4"]["other_share"] == pytest.approx(0.05)


def test_cell_income_from_containing_area(warehouse: Path) -> None:
    cells = cell_rows(warehouse, "dim_cell_demographics")

    assert {cell["per_capita_income"] for cell in cells.values()} == {25000}
    assert {cell["poverty_percent"] for cell in cells.values()} == {12.5}


def test_dim_cells_containing_features(warehouse: Path) -> None:
    cells = cell_rows(warehouse, "dim_cells")

    assert sorted(cells) == ["G1", "G2", "G3", "G4"]
    assert {cell: row["police_beat_id"] for cell, row in cells.items()} == {
        "G1": "0111", "G2": "0112", "G3": "0111", "G4": "0112"}
    assert {cell: row["census_tract_id"] for cell, row in cells.items()} == {
        "G1": "17031000100", "G2": "17031000200", "G3": "17031000100", "G4": "17031000200"}
    assert {row["community_area_id"] for row in cells.values()} == {"1"}
    assert {row["police_district_id"] for row in cells.values()} == {None}


def test_dim_cells_population_matches_demographics(warehouse: Path) -> None:
    cells = cell_rows(warehouse, "dim_cells")
    demographics = cell_rows(warehouse, "dim_cell_demographics")

    for cell_id, row in cells.items():
        assert row["population"] == demographics[cell_id]["population"]
