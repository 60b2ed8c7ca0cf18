"""Real Chicago 311 sanitation complaints, 2011-2014, through the raw asset and the dbt models.

Dagster materializes the raw 311 table and the census tracts from ``../shared/data/chicago``, and
dbt builds the 311 models on them in its own process. The expected counts are computed here
independently, with polars straight from the CSV and shapely for the point-in-tract test.
Skipped when the shared data folder is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import shapely
import yaml

from orchestration.assets.raw_geography import raw_boundaries, raw_cells, raw_demographics
from orchestration.assets.raw_requests import raw_service_requests
from orchestration.dbt import DBT_PROJECT_DIR, dbt_environment, dbt_executable, dbt_vars
from orchestration.jurisdiction import RUNS_DIR, load_jurisdiction
from orchestration.resources import RiskcastResource
from orchestration.settings import RiskcastSettings
from orchestration.sources.boundaries import LocalBoundarySource
from orchestration.sources.demographics import LocalDemographicsSource
from orchestration.sources.service_requests import LocalServiceRequestSource
from orchestration.warehouse import connect
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration

CHICAGO = SHARED_DATA / "chicago"
SANITATION_FILE = CHICAGO / "311" / "sanitation_code_complaints_2011_2014.csv.gz"
TRACTS_FILE = CHICAGO / "boundaries" / "census_tracts_2010.geojson"
DUPLICATE_STATUSES = ["Completed - Dup", "Open - Dup"]
BOX = {"min_lat": 41.6, "max_lat": 42.1, "min_lon": -87.95, "max_lon": -87.5}


def expected_counts() -> dict[str, object]:
    """Compute every count the warehouse should hold, from the CSV and the tract polygons alone."""
    rows = pl.read_csv(SANITATION_FILE, infer_schema=False).with_row_index("position")
    latest = rows.sort("position").group_by("Service_Request_Number", maintain_order=True).last()
    latest = latest.with_columns(
        pl.col("Latitude").cast(pl.Float64).alias("lat"),
        pl.col("Longitude").cast(pl.Float64).alias("lon"),
        pl.col("Status").is_in(DUPLICATE_STATUSES).alias("is_duplicate"),
    )

    missing = latest["lat"].is_null() | latest["lon"].is_null()
    zero = ~missing & ((latest["lat"] == 0) | (latest["lon"] == 0))
    in_box = latest["lat"].is_between(BOX["min_lat"], BOX["max_lat"]) & latest["lon"].is_between(
        BOX["min_lon"], BOX["max_lon"])
    candidates = (~missing & ~zero & in_box).to_numpy()

    tract = tract_of_points(latest["lon"].to_numpy()[candidates], latest["lat"].to_numpy()[candidates])
    cell = np.full(latest.height, None, dtype=object)
    cell[np.flatnonzero(candidates)] = tract
    located = latest.with_columns(pl.Series("cell_id", cell, dtype=pl.String))

    reasons = Counter({"missing_coordinates": int(missing.sum()), "zero_coordinates": int(zero.sum()),
                       "outside_bounding_box": int((~missing & ~zero & ~in_box).sum()),
                       "outside_cells": int(sum(value is None for value in tract))})
    counted = located.filter(pl.col("cell_id").is_not_null() & ~pl.col("is_duplicate"))
    mart = counted.group_by("cell_id", "Creation_Date").len()
    return {
        "raw": rows.height,
        "repeated_id_rows": rows.filter(pl.col("Service_Request_Number").is_duplicated()).height,
        "duplicate_status_rows": rows.filter(pl.col("Status").is_in(DUPLICATE_STATUSES)).height,
        "staged": latest.height,
        "staged_duplicates": int(latest["is_duplicate"].sum()),
        "located": int(located["cell_id"].is_not_null().sum()),
        "located_duplicates": int(located.filter(pl.col("cell_id").is_not_null())["is_duplicate"].sum()),
        "quarantine": {reason: count for reason, count in reasons.items() if count},
        "mart_rows": mart.height,
        "mart_requests": counted.height,
    }


def tract_of_points(lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
    """Return the containing tract of each point, the smallest GEOID on a shared edge, else None."""
    collection = json.loads(TRACTS_FILE.read_text(encoding="utf-8"))
    ids = np.array([feature["properties"]["geoid10"] for feature in collection["features"]])
    polygons = shapely.from_geojson([json.dumps(feature["geometry"]) for feature in collection["features"]])
    tree = shapely.STRtree(polygons)

    point_index, polygon_index = tree.query(shapely.points(lon, lat), predicate="within")
    found: dict[int, str] = {}
    for point, polygon in zip(point_index.tolist(), polygon_index.tolist()):
        found[point] = min(found.get(point, ids[polygon]), ids[polygon])
    return [found.get(index) for index in range(lon.size)]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    if not SANITATION_FILE.is_file():
        pytest.skip(f"real Chicago 311 data not found at {SANITATION_FILE}; it lives in ../shared/data "
                    f"beside the repository")
    folder = tmp_path_factory.mktemp("requests_real")
    content = yaml.safe_load((RUNS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    content["extracts_folder"] = str(CHICAGO)
    run_file = folder / "chicago.yaml"
    run_file.write_text(yaml.safe_dump(content), encoding="utf-8")
    home = folder / "home"

    result = dg.materialize(
        [raw_service_requests, raw_boundaries, raw_cells, raw_demographics],
        resources={"riskcast": RiskcastResource(run_config_path=str(run_file), home=str(home)),
                   "requests_source": LocalServiceRequestSource(folder=str(CHICAGO)),
                   "boundary_source": LocalBoundarySource(folder=str(CHICAGO)),
                   "demographics_source": LocalDemographicsSource(folder=str(CHICAGO))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    metadata = {name: value.value for name, value in
                result.asset_materializations_for_node("raw_service_requests")[0].metadata.items()}

    settings = RiskcastSettings(home=home, jurisdiction="chicago")
    completed = subprocess.run(
        [dbt_executable(), "build", "--select", "+fct_cell_day_requests", "+quarantine_service_requests",
         "+dim_cells", "assert_date_only_requests_have_no_hour", "--indirect-selection", "cautious",
         "--vars", json.dumps(dbt_vars(load_jurisdiction("chicago"))),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(folder / "target")],
        env=os.environ | dbt_environment(settings), capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:]
    return settings.warehouse_path, metadata


@pytest.fixture(scope="module")
def expected() -> dict[str, object]:
    if not SANITATION_FILE.is_file():
        pytest.skip(f"real Chicago 311 data not found at {SANITATION_FILE}")
    return expected_counts()


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(sql).fetchall()


def test_raw_rows_match_file(warehouse: tuple[Path, dict], expected: dict[str, object]) -> None:
    path, metadata = warehouse

    assert query(path, "SELECT count(*) FROM raw.service_requests") == [(expected["raw"],)]
    assert metadata["dagster/row_count"] == expected["raw"]
    assert metadata["blank_rows_skipped"] == 0
    assert metadata["rows_without_id"] == 0


def test_raw_metadata_counts_repeats(warehouse: tuple[Path, dict], expected: dict[str, object]) -> None:
    metadata = warehouse[1]

    assert metadata["repeated_id_rows"] == expected["repeated_id_rows"]
    assert metadata["duplicate_status_rows"] == expected["duplicate_status_rows"]
    assert metadata["first_created"] == "2000-01-03"
    assert metadata["last_created"] == "2015-01-01"


def test_staging_one_row_per_request(warehouse: tuple[Path, dict], expected: dict[str, object]) -> None:
    staged, duplicates, with_hour = query(warehouse[0], """
        SELECT count(*), count(*) FILTER (WHERE is_duplicate), count(created_at_utc)
        FROM staging.stg_311__requests""")[0]

    assert staged == expected["staged"]
    assert duplicates == expected["staged_duplicates"]
    assert with_hour == 0


def test_quarantine_counts_by_reason(warehouse: tuple[Path, dict], expected: dict[str, object]) -> None:
    reasons = dict(query(warehouse[0], "SELECT quarantine_reason, count(*) FROM marts.quarantine_service_requests "
                                       "GROUP BY ALL"))

    assert reasons == expected["quarantine"]


def test_located_requests(warehouse: tuple[Path, dict], expected: dict[str, object]) -> None:
    located, duplicates = query(warehouse[0], """
        SELECT count(*), count(*) FILTER (WHERE is_duplicate)
        FROM intermediate.int_requests__located WHERE quarantine_reason IS NULL""")[0]

    assert located == expected["located"]
    assert duplicates == expected["located_duplicates"]
    assert located + sum(expected["quarantine"].values()) == expected["staged"]


def test_mart_counts(warehouse: tuple[Path, dict], expected: dict[str, object]) -> None:
    rows, requests, types = query(warehouse[0], """
        SELECT count(*), sum(requests), list(DISTINCT request_type) FROM marts.fct_cell_day_requests""")[0]

    assert rows == expected["mart_rows"]
    assert requests == expected["mart_requests"]
    assert requests == expected["located"] - expected["located_duplicates"]
    assert types == ["sanitation_code"]
