"""The synthetic demo's police districts and district demographics, read back from the files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import shapely

from ml.demo import write_demo_extracts
from orchestration.geography import read_layer_file
from orchestration.jurisdiction import load_jurisdiction
from orchestration.sources.demographics import read_demographic_table


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo_geo")
    write_demo_extracts(folder, start=date(2022, 3, 1), end=date(2022, 3, 10))
    return folder


def shapes(path: Path, id_property: str) -> dict[str, shapely.Geometry]:
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    return {feature["properties"][id_property]: shapely.geometry.shape(feature["geometry"]) for feature in features}


def test_districts_are_blocks_of_16_cells(demo: Path) -> None:
    districts = shapes(demo / "boundaries" / "districts.geojson", "district")
    cells = shapes(demo / "boundaries" / "cells.geojson", "cell_id")

    assert sorted(districts) == ["001", "002", "003", "004"]
    for code, district in districts.items():
        inside = [cell for cell, shape in cells.items() if district.contains(shape.representative_point())]
        assert len(inside) == 16, code
        assert shapely.union_all([cells[cell] for cell in inside]).symmetric_difference(district).area < 1e-12
    assert shapely.union_all(list(districts.values())).equals(shapely.union_all(list(cells.values())))


def test_district_codes_match_crime_rows(demo: Path) -> None:
    crimes = pd.read_csv(demo / "crimes" / "demo_crimes_2022.csv.gz", dtype=str, keep_default_na=False)
    located = crimes[crimes["Latitude"] != ""]
    districts = shapes(demo / "boundaries" / "districts.geojson", "district")

    sample = located.iloc[::50]
    for _, row in sample.iterrows():
        point = shapely.Point(float(row["Longitude"]), float(row["Latitude"]))
        assert districts[row["District"]].contains(point)


def test_demographics_groups_within_population(demo: Path) -> None:
    table = pd.read_csv(demo / "demographics" / "demo_district_demographics.csv", dtype={"DISTRICT": str})
    groups = table[["WHITE_NOT_HISPANIC", "BLACK_NOT_HISPANIC", "ASIAN_NOT_HISPANIC", "HISPANIC"]].sum(axis=1)

    assert table["DISTRICT"].tolist() == ["001", "002", "003", "004"]
    assert (groups <= table["TOTAL_POPULATION"]).all()
    assert table["TOTAL_POPULATION"].between(30_000, 50_000).all()
    assert table["PERCENT_BELOW_POVERTY"].between(5, 35).all()


def test_demo_jurisdiction_reads_both(demo: Path) -> None:
    config = load_jurisdiction("demo")

    districts = read_layer_file(demo, config.boundaries.layer("districts"))
    demographics = read_demographic_table(demo, config.demographics.tables[0])

    assert districts.frame["feature_id"].to_list() == ["001", "002", "003", "004"]
    assert demographics.frame["area_id"].to_list() == ["001", "002", "003", "004"]
    assert demographics.frame["other"].to_list() == [None] * 4


def test_small_grid_has_one_district(tmp_path: Path) -> None:
    write_demo_extracts(tmp_path, start=date(2022, 3, 1), end=date(2022, 3, 2), grid_rows=4, grid_cols=4)

    districts = shapes(tmp_path / "boundaries" / "districts.geojson", "district")
    table = pd.read_csv(tmp_path / "demographics" / "demo_district_demographics.csv", dtype={"DISTRICT": str})

    assert list(districts) == ["001"]
    assert table["DISTRICT"].tolist() == ["001"]
