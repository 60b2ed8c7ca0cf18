"""Boundaries and demographics of real Chicago and Philadelphia files, checked against independent counts.

Each expected number is recomputed in the test from the files with json, shapely, pyproj and
polars, and also pinned to the value measured on the shared data, so a change in either shows.
One Dagster run builds the Chicago geography (raw assets and dbt models, tracts as cells).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import h3
import polars as pl
import pyproj
import pytest
import shapely
import yaml

from orchestration.definitions import build_definitions
from orchestration.geography import read_layer_file
from orchestration.h3_grid import cover_cells
from orchestration.jurisdiction import JURISDICTIONS_DIR, BoundariesConfig, load_jurisdiction
from orchestration.warehouse import connect
from tests.conftest import SHARED_DATA
from tests.extracts import write_run_file

pytestmark = pytest.mark.integration

GEO_ASSETS = ["raw_boundaries", "raw_cells", "raw_demographics", "stg_boundaries__features", "stg_demographics__rows",
              "stg_cells", "int_boundaries__features", "int_demographics__areas", "int_cells__containing_features",
              "int_cells__demographics", "dim_cells", "dim_cell_demographics", "dim_boundaries",
              "quarantine_boundaries", "boundary_overlaps"]
# The boundaries block of philadelphia.yaml, as the report hands it to the crime configuration.
PHILADELPHIA_BOUNDARIES = """
layers:
  - name: tracts
    kind: census_tract
    file: boundaries/census_tracts_pop.geojson
    id_property: GEOID
    name_property: NAMELSAD
    population_property: total_pop
  - name: districts
    kind: police_district
    file: boundaries/police_districts.geojson
    id_property: dist_numc
    id_type: integer
"""
TO_EQUAL_AREA = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True).transform


def load_features(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["features"]


def area_m2(geometry: shapely.Geometry) -> float:
    return shapely.transform(geometry, TO_EQUAL_AREA, interleaved=False).area


@pytest.fixture(scope="module")
def philadelphia_data() -> Path:
    folder = SHARED_DATA / "philadelphia"
    if not (folder / "boundaries").is_dir():
        pytest.skip(f"real Philadelphia data not found at {folder}; it lives in ../shared/data beside the repository")
    return folder


@pytest.fixture(scope="module")
def chicago_folder() -> Path:
    folder = SHARED_DATA / "chicago"
    if not (folder / "boundaries").is_dir():
        pytest.skip(f"real Chicago data not found at {folder}; it lives in ../shared/data beside the repository")
    return folder


@pytest.fixture(scope="module")
def chicago_run(chicago_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dg.ExecuteInProcessResult]]:
    folder = tmp_path_factory.mktemp("chicago_geo")
    content = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    content["name"] = "chicago_geo"
    jurisdiction = folder / "chicago_geo.yaml"
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    run_file = write_run_file(folder, jurisdiction, chicago_folder, ("2017-01-01", "2017-10-01"),
                              ("2017-10-01", "2017-10-08"))
    definitions = build_definitions(run_file, folder / "home")

    # Cautious indirect selection keeps the crime models' tests out of this geography-only run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_INDIRECT_SELECTION", "cautious")
        result = dg.materialize(assets=[*(definitions.assets or [])], resources=dict(definitions.resources or {}),
                                selection=dg.AssetSelection.assets(*GEO_ASSETS),
                                instance=dg.DagsterInstance.ephemeral())
    assert result.success
    yield folder / "home" / "chicago_geo" / "warehouse.duckdb", result


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True, spatial=True) as connection:
        return connection.sql(sql).fetchall()


# Chicago layers, read as the raw asset reads them.

def test_chicago_layer_feature_counts(chicago_folder: Path) -> None:
    config = load_jurisdiction("chicago")
    tables = {layer.name: read_layer_file(chicago_folder, layer) for layer in config.boundaries.layers}
    beats = load_features(chicago_folder / "boundaries" / "police_beats.geojson")

    assert tables["tracts"].frame.height == len(load_features(chicago_folder / "boundaries" / "census_tracts_2010.geojson")) == 801
    assert tables["community_areas"].frame.height == len(load_features(chicago_folder / "boundaries" / "community_areas.geojson")) == 77
    assert tables["beats"].frame.height == len(beats) == 277
    assert tables["beats"].frame["feature_id"].n_unique() == len({f["properties"]["beat_num"] for f in beats}) == 275
    assert tables["districts"].frame["feature_id"].n_unique() == len({int(f["properties"]["district"]) for f in beats}) == 23
    for table in tables.values():
        assert table.problem_counts() == {}


def test_chicago_polygons_are_valid(chicago_folder: Path) -> None:
    for name in ("census_tracts_2010", "community_areas", "police_beats"):
        shapes = [shapely.geometry.shape(f["geometry"]) for f in load_features(chicago_folder / "boundaries" / f"{name}.geojson")]

        assert all(shape.is_valid and not shape.is_empty for shape in shapes), name


def test_chicago_h3_grid_at_resolution_8(chicago_folder: Path) -> None:
    tracts = [shapely.geometry.shape(f["geometry"]) for f in load_features(chicago_folder / "boundaries" / "census_tracts_2010.geojson")]
    union = shapely.union_all(tracts)

    cells = cover_cells(shapely.geometry.mapping(union), 8, "overlap")
    hexagons = shapely.union_all([shapely.Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(cell)]) for cell in cells])

    assert len(cells) == 983
    assert area_m2(union.difference(hexagons)) < 1.0
    assert area_m2(hexagons) / 1e6 == pytest.approx(len(cells) * 0.744, rel=0.01)


# Demographics, recomputed with polars.

def block_group_tracts(chicago_folder: Path) -> pl.DataFrame:
    frame = pl.read_csv(chicago_folder / "demographics" / "cook_block_groups_acs2014_b03002.csv",
                        infer_schema=False, skip_rows_after_header=1)
    return (frame.with_columns(pl.col("GEO.id2").str.slice(0, 11).alias("tract"),
                               pl.col("HD01_VD01").cast(pl.Int64).alias("population"),
                               pl.col("HD01_VD04").cast(pl.Int64).alias("nh_black"))
            .group_by("tract").agg(pl.col("population").sum(), pl.col("nh_black").sum(), pl.len().alias("block_groups")))


def test_block_groups_cover_every_tract(chicago_folder: Path) -> None:
    tracts = block_group_tracts(chicago_folder)
    chicago = {f["properties"]["geoid10"] for f in load_features(chicago_folder / "boundaries" / "census_tracts_2010.geojson")}
    in_city = tracts.filter(pl.col("tract").is_in(sorted(chicago)))

    assert tracts["block_groups"].sum() == 3993
    assert tracts.height == 1319
    assert in_city.height == 801
    assert in_city["population"].sum() == 2_735_500
    assert in_city.filter(pl.col("population") == 0).height == 3


def test_perc_inc14_sums_tract_values(chicago_folder: Path) -> None:
    acs = pl.read_csv(chicago_folder / "demographics" / "community_areas_acs2014.csv")
    socioeconomic = pl.read_csv(chicago_folder / "demographics" / "community_areas_socioeconomic_2008_2012.csv")
    joined = acs.with_columns(pl.col("ComAreaID").cast(pl.Int64)).join(
        socioeconomic, left_on="ComAreaID", right_on="COMMUNITY_AREA_NUMBER")
    ratios = joined.select(
        (pl.col("PerCInc14") / pl.col("PER_CAPITA_INCOME")).alias("raw"),
        (pl.col("PerCInc14") / pl.col("TRACTCnt") / pl.col("PER_CAPITA_INCOME")).alias("per_tract"),
        pl.col("TRACTCnt"))

    assert joined.height == 77
    # Read as a per-capita value it is about ten times the 2008-2012 per-capita income, and the
    # factor is the number of tracts in the area.
    assert ratios["raw"].median() == pytest.approx(9.80, abs=0.01)
    assert ratios.select(pl.corr("raw", "TRACTCnt")).item() > 0.99
    assert ratios["per_tract"].median() == pytest.approx(1.00, abs=0.01)
    assert (ratios["per_tract"] - 1).abs().median() < 0.06


def test_philadelphia_tract_population(philadelphia_data: Path) -> None:
    layers = BoundariesConfig(**yaml.safe_load(PHILADELPHIA_BOUNDARIES))
    table = read_layer_file(philadelphia_data, layers.layer("tracts"))
    features = load_features(philadelphia_data / "boundaries" / "census_tracts_pop.geojson")

    populations = table.frame["population"].cast(pl.Int64)
    assert table.frame.height == len(features) == 408
    assert populations.sum() == sum(f["properties"]["total_pop"] for f in features) == 1_581_531
    assert (populations == 0).sum() == 17
    assert table.problem_counts() == {}


def test_philadelphia_districts_overlap_slightly(philadelphia_data: Path) -> None:
    layers = BoundariesConfig(**yaml.safe_load(PHILADELPHIA_BOUNDARIES))
    table = read_layer_file(philadelphia_data, layers.layer("districts"))
    shapes = [shapely.geometry.shape(f["geometry"]) for f in load_features(philadelphia_data / "boundaries" / "police_districts.geojson")]
    overlap = sum(area_m2(shapes[i].intersection(shapes[j])) for i in range(len(shapes)) for j in range(i + 1, len(shapes)))

    assert table.frame.height == 21
    assert 50 < overlap < layers.max_overlap_m2


# The Chicago warehouse.

def test_warehouse_layers(chicago_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    warehouse, _ = chicago_run
    rows = {layer: (features, sources) for layer, features, sources in query(
        warehouse, "SELECT layer, count(*), sum(source_features) FROM marts.dim_boundaries GROUP BY layer")}

    assert rows == {"tracts": (801, 801), "community_areas": (77, 77), "beats": (275, 277), "districts": (23, 277)}
    assert query(warehouse, "SELECT count(*) FROM marts.quarantine_boundaries") == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM staging.stg_boundaries__features WHERE was_repaired") == [(0,)]
    assert query(warehouse, "SELECT sum(overlap_m2) FROM marts.boundary_overlaps") == [(0.0,)]


def test_warehouse_tract_demographics(chicago_run: tuple[Path, dg.ExecuteInProcessResult], chicago_folder: Path) -> None:
    warehouse, _ = chicago_run
    expected = block_group_tracts(chicago_folder)
    rows = query(warehouse, "SELECT count(*), count(population), sum(population), count(nh_black_share), "
                            "count(per_capita_income) FROM marts.dim_cell_demographics")
    black = dict(query(warehouse, "SELECT cell_id, nh_black FROM marts.dim_cell_demographics"))

    assert rows == [(801, 801, 2_735_500.0, 798, 801)]
    for tract, count in expected.filter(pl.col("tract").is_in(list(black))).select("tract", "nh_black").iter_rows():
        assert black[tract] == count


def test_warehouse_community_area_income(chicago_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    warehouse, _ = chicago_run
    # Tract 17031010100 lies in Rogers Park (area 1), whose 2008-2012 per-capita income is 23939.
    rows = query(warehouse, "SELECT community_area_id, police_district_id FROM marts.dim_cells WHERE cell_id = '17031010100'")
    income = query(warehouse, "SELECT per_capita_income, poverty_percent FROM marts.dim_cell_demographics "
                              "WHERE cell_id = '17031010100'")

    assert rows == [("1", "24")]
    assert income == [(23939.0, 23.6)]
    assert query(warehouse, "SELECT count(*) FROM marts.dim_cells WHERE community_area_id IS NULL "
                            "OR police_beat_id IS NULL") == [(0,)]


def test_warehouse_cell_areas_match_pyproj(chicago_run: tuple[Path, dg.ExecuteInProcessResult], chicago_folder: Path) -> None:
    warehouse, _ = chicago_run
    areas = dict(query(warehouse, "SELECT cell_id, area_km2 FROM marts.dim_cells"))
    features = load_features(chicago_folder / "boundaries" / "census_tracts_2010.geojson")[:50]

    for feature in features:
        expected = area_m2(shapely.geometry.shape(feature["geometry"])) / 1e6
        assert areas[feature["properties"]["geoid10"]] == pytest.approx(expected, rel=1e-6)


def test_raw_metadata(chicago_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    _, result = chicago_run
    boundaries = result.asset_materializations_for_node("raw_boundaries")[0].metadata
    demographics = result.asset_materializations_for_node("raw_demographics")[0].metadata
    tables = {row["table"]: row for row in demographics["tables"].value}

    assert boundaries["dagster/row_count"].value == 801 + 77 + 277 + 277
    assert boundaries["invalid_polygons_to_repair"].value == 0
    assert boundaries["quarantined_features"].value == 0
    assert tables["tract_race_ethnicity_acs2014"]["rows"] == 3993
    assert tables["tract_race_ethnicity_acs2014"]["areas_in_layer"] == 801
    assert tables["community_area_socioeconomic_2008_2012"]["areas_in_layer"] == 77
    assert os.path.basename(tables["community_area_acs2014"]["file"]) == "community_areas_acs2014.csv"
