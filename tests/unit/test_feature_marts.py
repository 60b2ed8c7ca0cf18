"""The marts behind the lagged crime features: counts per crime group, and cell neighbours.

``fct_cell_hour_crime_groups`` runs through a real Dagster materialization of the raw assets and
dbt models on a hand-made extract. ``dim_cell_neighbours`` runs through ``dbt build`` on DuckDB
files whose ``raw.cells`` the tests write. The cells are a 3 x 3 grid, pairs of tracts with gaps
just inside and just outside the tolerance, an island, and the synthetic demo grid. When the
shared data is present, Chicago's 801 census tracts are checked too. Expected edge lengths come
from pyproj's geodesic lengths, independently of DuckDB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import pyproj
import pytest
import shapely

from ml.demo import write_demo_extracts
from orchestration.dbt import DBT_PROJECT_DIR, dbt_executable
from orchestration.definitions import build_definitions
from orchestration.warehouse import connect, spatial_extension_dir
from tests.conftest import SHARED_DATA
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction
from tests.geo_fixtures import rectangle

GEOD = pyproj.Geod(ellps="WGS84")
# Metres per degree of latitude, and of longitude at the test latitude, on the WGS 84 ellipsoid.
BASE_LAT = 41.86
BASE_LON = -87.70
METRES_PER_DEGREE_LAT = GEOD.line_length([BASE_LON, BASE_LON], [BASE_LAT - 0.0005, BASE_LAT + 0.0005]) / 0.001
METRES_PER_DEGREE_LON = GEOD.line_length([BASE_LON - 0.0005, BASE_LON + 0.0005], [BASE_LAT, BASE_LAT]) / 0.001
CHICAGO_TRACTS = SHARED_DATA / "chicago" / "boundaries" / "census_tracts_2010.geojson"
SIDE = 0.005  # Degrees: about 555 m north-south and 414 m east-west.


def lon_offset(metres: float) -> float:
    return metres / METRES_PER_DEGREE_LON


def lat_offset(metres: float) -> float:
    return metres / METRES_PER_DEGREE_LAT


# Crime-group counts.

CRIMES = [
    # WEST, 2023-07-04 05:00 UTC (12:15 AM CDT): a robbery, a larceny, an aggravated battery, a
    # homicide with two victims (two ids, one case) and a code that offense_codes does not list.
    crime_row("900201", "ZZ500001", "07/04/2023 12:15:00 AM", "03", "07/11/2023 03:41:00 PM", "41.879", "-87.658"),
    crime_row("900202", "ZZ500002", "07/04/2023 12:20:00 AM", "06", "07/11/2023 03:41:00 PM", "41.878", "-87.661"),
    crime_row("900203", "ZZ500003", "07/04/2023 12:30:00 AM", "04B", "07/11/2023 03:41:00 PM", "41.877", "-87.662"),
    crime_row("900204", "ZZ500004", "07/04/2023 12:45:00 AM", "01A", "07/11/2023 03:41:00 PM", "41.876", "-87.663"),
    crime_row("900205", "ZZ500004", "07/04/2023 12:45:00 AM", "01A", "07/11/2023 03:41:00 PM", "41.876", "-87.663"),
    crime_row("900206", "ZZ500005", "07/04/2023 12:50:00 AM", "99Z", "07/11/2023 03:41:00 PM", "41.875", "-87.664"),
    # WEST, the next hour: a second robbery.
    crime_row("900207", "ZZ500006", "07/04/2023 01:10:00 AM", "03", "07/11/2023 03:41:00 PM", "41.879", "-87.658"),
    # EAST, same hour as the first group: a simple battery (category other, no group).
    crime_row("900208", "ZZ500007", "07/04/2023 12:15:00 AM", "08B", "07/11/2023 03:41:00 PM", "41.88", "-87.62"),
    # Quarantined (no coordinates): counted nowhere.
    crime_row("900209", "ZZ500008", "07/04/2023 12:15:00 AM", "03", "07/11/2023 03:41:00 PM", "", ""),
]
FIRST_HOUR = datetime(2023, 7, 4, 5)
SECOND_HOUR = datetime(2023, 7, 4, 6)
GROUP_MODELS = ["fct_cell_hour_crime_groups", "fct_cell_hour_crimes"]


@pytest.fixture(scope="module")
def crime_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crime_groups")
    extracts = write_extracts(folder / "extracts", CRIMES, [])
    jurisdiction = write_test_jurisdiction(folder, "2023-07-01")
    run_file = write_run_file(folder, jurisdiction, extracts, ("2023-07-01", "2023-08-01"), ("2023-08-01", "2023-08-02"))
    definitions = build_definitions(run_file, folder / "home")

    # Cautious indirect selection keeps the dbt tests of unselected models (dim_cells) out.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_INDIRECT_SELECTION", "cautious")
        result = dg.materialize(
            assets=[*(definitions.assets or [])], resources=dict(definitions.resources or {}),
            selection=dg.AssetSelection.assets(*GROUP_MODELS).upstream(), instance=dg.DagsterInstance.ephemeral())

    assert result.success
    return folder / "home" / "testcity" / "warehouse.duckdb"


def group_counts(warehouse: Path) -> dict[tuple[str, datetime], dict[str, int]]:
    with connect(warehouse, read_only=True) as connection:
        rows = connection.sql("SELECT cell_id, hour, crime_group, incidents "
                              "FROM marts.fct_cell_hour_crime_groups").fetchall()
    counts: dict[tuple[str, datetime], dict[str, int]] = {}
    for cell_id, hour, crime_group, incidents in rows:
        counts.setdefault((cell_id, hour), {})[crime_group] = incidents
    return counts


def test_groups_count_category_and_groups(crime_warehouse: Path) -> None:
    counts = group_counts(crime_warehouse)

    assert counts[("WEST", FIRST_HOUR)] == {
        "violent": 3, "robbery": 1, "aggravated_assault": 1, "homicide": 1,
        "property": 1, "theft": 1, "unknown": 1,
    }


def test_groups_are_sparse_per_hour(crime_warehouse: Path) -> None:
    counts = group_counts(crime_warehouse)

    assert sorted(counts) == [("EAST", FIRST_HOUR), ("WEST", FIRST_HOUR), ("WEST", SECOND_HOUR)]
    assert counts[("WEST", SECOND_HOUR)] == {"violent": 1, "robbery": 1}
    assert counts[("EAST", FIRST_HOUR)] == {"other": 1}


def test_groups_agree_with_cell_hour_crimes(crime_warehouse: Path) -> None:
    counts = group_counts(crime_warehouse)
    with connect(crime_warehouse, read_only=True) as connection:
        crimes = connection.sql("SELECT cell_id, hour, crime_count, violent_count FROM marts.fct_cell_hour_crimes").fetchall()
    categories = {"violent", "property", "other", "unknown"}

    assert len(crimes) == 3
    for cell_id, hour, crime_count, violent_count in crimes:
        groups = counts[(cell_id, hour)]
        assert sum(value for name, value in groups.items() if name in categories) == crime_count, (cell_id, hour)
        assert groups.get("violent", 0) == violent_count, (cell_id, hour)


# Cell neighbours.

def square(column: int, row: int, west: float = BASE_LON, south: float = BASE_LAT) -> dict:
    return rectangle(west + column * SIDE, west + (column + 1) * SIDE, south + row * SIDE, south + (row + 1) * SIDE)


def hand_made_cells() -> dict[str, dict]:
    """Cells whose neighbours are known: see the comments for each group."""
    # A 3 x 3 grid of squares: G00 is the south-west corner, G11 the centre.
    cells = {f"G{column}{row}": square(column, row) for column in range(3) for row in range(3)}

    # Pairs of tracts 2 km east of the grid. An east-west gap of 0.9 m is inside the 1 m
    # tolerance, but a north-south gap of 1.1 m is not. In degrees the first gap is the larger one
    # (1.08e-5 against 0.99e-5), so a tolerance in degrees cannot get both right.
    west = BASE_LON + lon_offset(2000)
    cells["NEAR_A"] = rectangle(west, west + SIDE, BASE_LAT, BASE_LAT + SIDE)
    cells["NEAR_B"] = rectangle(west + SIDE + lon_offset(0.9), west + 2 * SIDE, BASE_LAT, BASE_LAT + SIDE)
    south = BASE_LAT + lat_offset(1000)
    cells["FAR_A"] = rectangle(west, west + SIDE, south, south + SIDE)
    cells["FAR_B"] = rectangle(west, west + SIDE, south + SIDE + lat_offset(1.1), south + 2 * SIDE)
    cells["WIDE_A"] = rectangle(west, west + SIDE, south + lat_offset(2000), south + lat_offset(2000) + SIDE)
    cells["WIDE_B"] = rectangle(west + SIDE + lon_offset(5), west + 2 * SIDE, south + lat_offset(2000),
                                south + lat_offset(2000) + SIDE)

    # Two tracts that overlap by a 0.5 m sliver, 4 km east of the grid.
    overlap_west = BASE_LON + lon_offset(4000)
    cells["OVER_A"] = rectangle(overlap_west, overlap_west + SIDE, BASE_LAT, BASE_LAT + SIDE)
    cells["OVER_B"] = rectangle(overlap_west + SIDE - lon_offset(0.5), overlap_west + 2 * SIDE, BASE_LAT, BASE_LAT + SIDE)

    # An island, 1 km south of the grid.
    cells["ISLAND"] = square(1, 0, south=BASE_LAT - lat_offset(1000) - SIDE)
    return cells


def write_raw_cells(warehouse: Path, cells: dict[str, dict]) -> None:
    with connect(warehouse) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS raw")
        connection.execute("CREATE OR REPLACE TABLE raw.cells (cell_id VARCHAR, geometry_geojson VARCHAR)")
        connection.executemany("INSERT INTO raw.cells VALUES (?, ?)",
                               [(cell_id, json.dumps(geometry)) for cell_id, geometry in cells.items()])


def build_neighbours(folder: Path, cells: dict[str, dict]) -> Path:
    """Write ``cells`` to a new warehouse and run ``dbt build`` on stg_cells and dim_cell_neighbours."""
    warehouse = folder / "warehouse.duckdb"
    write_raw_cells(warehouse, cells)
    environment = os.environ | {"RISKCAST_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                                "RISKCAST_DUCKDB_EXTENSION_DIR": str(spatial_extension_dir())}

    completed = subprocess.run([
        dbt_executable(), "build", "--select", "stg_cells", "dim_cell_neighbours", "--indirect-selection", "cautious",
        "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(folder / "target"), "--log-path", str(folder / "logs"),
    ], env=environment, capture_output=True, text=True, check=False)

    assert completed.returncode == 0, completed.stdout[-3000:]
    assert "assert_cell_neighbours_symmetric" in completed.stdout
    return warehouse


def neighbour_rows(warehouse: Path) -> dict[tuple[str, str], float]:
    with connect(warehouse, read_only=True) as connection:
        rows = connection.sql("SELECT cell_id, neighbour_id, shared_boundary_km FROM marts.dim_cell_neighbours").fetchall()
    return {(cell_id, neighbour_id): length for cell_id, neighbour_id, length in rows}


def neighbours_of(rows: dict[tuple[str, str], float], cell_id: str) -> set[str]:
    return {neighbour for cell, neighbour in rows if cell == cell_id}


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], float]:
    return neighbour_rows(build_neighbours(tmp_path_factory.mktemp("neighbours"), hand_made_cells()))


def test_grid_centre_has_eight(hand_made: dict[tuple[str, str], float]) -> None:
    expected = {"G00", "G01", "G02", "G10", "G12", "G20", "G21", "G22"}

    assert neighbours_of(hand_made, "G11") == expected


def test_grid_corner_and_edge(hand_made: dict[tuple[str, str], float]) -> None:
    assert neighbours_of(hand_made, "G00") == {"G01", "G10", "G11"}
    assert neighbours_of(hand_made, "G22") == {"G12", "G21", "G11"}
    assert neighbours_of(hand_made, "G10") == {"G00", "G20", "G01", "G11", "G21"}


def test_grid_shared_boundary_lengths(hand_made: dict[tuple[str, str], float]) -> None:
    north_south_km = GEOD.line_length([BASE_LON, BASE_LON], [BASE_LAT, BASE_LAT + SIDE]) / 1000
    east_west_km = GEOD.line_length([BASE_LON, BASE_LON + SIDE], [BASE_LAT + SIDE, BASE_LAT + SIDE]) / 1000

    # G00 and G10 share a north-south edge (555 m), G00 and G01 an east-west edge (414 m).
    assert hand_made[("G00", "G10")] == pytest.approx(north_south_km, abs=0.002)
    assert hand_made[("G00", "G01")] == pytest.approx(east_west_km, abs=0.002)
    assert hand_made[("G00", "G11")] == 0.0
    assert hand_made[("G02", "G11")] == 0.0


def test_neighbours_are_symmetric(hand_made: dict[tuple[str, str], float]) -> None:
    for (cell_id, neighbour_id), length in hand_made.items():
        assert hand_made[(neighbour_id, cell_id)] == length
        assert cell_id != neighbour_id


def test_gap_within_tolerance(hand_made: dict[tuple[str, str], float]) -> None:
    edge_km = GEOD.line_length([BASE_LON, BASE_LON], [BASE_LAT, BASE_LAT + SIDE]) / 1000

    assert neighbours_of(hand_made, "NEAR_A") == {"NEAR_B"}
    # The gap shortens the measured contact by about twice its width.
    assert hand_made[("NEAR_A", "NEAR_B")] == pytest.approx(edge_km, abs=0.004)


def test_overlapping_sliver_neighbours(hand_made: dict[tuple[str, str], float]) -> None:
    edge_km = GEOD.line_length([BASE_LON, BASE_LON], [BASE_LAT, BASE_LAT + SIDE]) / 1000

    assert neighbours_of(hand_made, "OVER_A") == {"OVER_B"}
    # The sliver lengthens the measured contact by about twice its width.
    assert hand_made[("OVER_A", "OVER_B")] == pytest.approx(edge_km, abs=0.003)


def test_gap_beyond_tolerance(hand_made: dict[tuple[str, str], float]) -> None:
    assert neighbours_of(hand_made, "FAR_A") == set()
    assert neighbours_of(hand_made, "FAR_B") == set()
    assert neighbours_of(hand_made, "WIDE_A") == set()


def test_island_has_no_rows(hand_made: dict[tuple[str, str], float]) -> None:
    assert all("ISLAND" not in pair for pair in hand_made)


def test_row_count(hand_made: dict[tuple[str, str], float]) -> None:
    # The 3 x 3 grid has 12 edge pairs and 8 corner pairs, in both directions. NEAR and OVER add 2 each.
    assert len(hand_made) == 2 * (12 + 8) + 2 + 2


@pytest.fixture(scope="module")
def demo_grid(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], float]:
    folder = tmp_path_factory.mktemp("demo_neighbours")
    write_demo_extracts(folder / "extracts", start=date(2022, 3, 1), end=date(2022, 3, 1))
    features = json.loads((folder / "extracts" / "boundaries" / "cells.geojson").read_text(encoding="utf-8"))["features"]
    cells = {feature["properties"]["cell_id"]: feature["geometry"] for feature in features}
    assert len(cells) == 64
    return neighbour_rows(build_neighbours(folder, cells))


def test_demo_grid_neighbour_counts(demo_grid: dict[tuple[str, str], float]) -> None:
    per_cell = Counter(cell_id for cell_id, _ in demo_grid)

    # An 8 x 8 grid: 4 corners with 3 neighbours, 24 edge cells with 5, 36 inner cells with 8.
    assert len(per_cell) == 64
    assert Counter(per_cell.values()) == {3: 4, 5: 24, 8: 36}


def test_demo_grid_edges_are_500_m(demo_grid: dict[tuple[str, str], float]) -> None:
    lengths = Counter(round(length, 2) for length in demo_grid.values())

    # 2 x 112 rook pairs share an edge of about 500 m, and 2 x 98 diagonal pairs share a corner.
    assert lengths == {0.5: 224, 0.0: 196}


def touching_pairs(cells: dict[str, dict]) -> set[tuple[str, str]]:
    """Return the ordered pairs of distinct cells whose polygons intersect, from shapely."""
    ids = list(cells)
    shapes = [shapely.geometry.shape(cells[cell_id]) for cell_id in ids]
    tree = shapely.STRtree(shapes)
    left, right = tree.query(shapes, predicate="intersects")
    return {(ids[a], ids[b]) for a, b in zip(left, right, strict=True) if a != b}


@pytest.mark.skipif(not CHICAGO_TRACTS.is_file(), reason=f"Chicago tracts not found at {CHICAGO_TRACTS}; "
                                                         f"they live in ../shared/data beside the repository")
def test_chicago_tracts_neighbours(tmp_path: Path) -> None:
    collection = json.loads(CHICAGO_TRACTS.read_text(encoding="utf-8"))
    cells = {feature["properties"]["geoid10"]: feature["geometry"] for feature in collection["features"]}

    rows = neighbour_rows(build_neighbours(tmp_path, cells))
    per_cell = Counter(cell_id for cell_id, _ in rows)
    counts = [per_cell.get(cell_id, 0) for cell_id in cells]

    assert len(cells) == 801
    # The layer has no island: every tract touches another.
    assert min(counts) >= 1
    assert 5 <= statistics.median(counts) <= 7
    # Chicago's tracts meet exactly and the nearest pair that does not touch is 4.5 m apart, so the
    # 1 m tolerance adds nothing to the pairs that touch in shapely.
    assert set(rows) == touching_pairs(cells)
    assert len(rows) == 2 * 2641
    # 748 pairs touch only at a corner.
    assert sum(1 for length in rows.values() if length == 0) == 2 * 748
