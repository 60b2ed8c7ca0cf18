"""Philadelphia, a second city from configuration alone: the main job on March 2017 incidents.

The jurisdiction file maps Philadelphia's own columns (UTC ``dispatch_date_time``, UCR general
codes, ``point_x``/``point_y``), and there is no weather source. The expected counts are computed
here straight from the portal CSV with polars, independently of the pipeline. Skipped when
../shared/data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from orchestration.cli import ReleaseBlockedError, run_main_job
from orchestration.jurisdiction import RUNS_DIR
from orchestration.warehouse import connect

pytestmark = pytest.mark.integration

HORIZON = 72
SCORE_HOURS = 24
VIOLENT_UCR = {"100", "200", "300", "400"}


@pytest.fixture(scope="module")
def extracts() -> Path:
    from tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "philadelphia"
    if not (folder / "incidents_2017-03.csv.gz").is_file():
        pytest.skip(f"real Philadelphia data not found at {folder}; it lives in ../shared/data beside the repository")
    return folder


@pytest.fixture(scope="module")
def portal_csv(extracts: Path) -> pl.DataFrame:
    return pl.read_csv(extracts / "incidents_2017-03.csv.gz", infer_schema=False)


@pytest.fixture(scope="module")
def warehouse(extracts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("philadelphia")
    content = yaml.safe_load((RUNS_DIR / "philadelphia.yaml").read_text(encoding="utf-8"))
    content["extracts_folder"] = str(extracts)
    content["score"] = {"start": "2017-03-22T05:00:00", "end": "2017-03-23T05:00:00"}
    run_file = folder / "philadelphia.yaml"
    run_file.write_text(yaml.safe_dump(content), encoding="utf-8")

    with pytest.raises(ReleaseBlockedError):
        # The tract layer gives population only, so no demographic group can be measured and the gate blocks.
        run_main_job(run_file, folder / "home", instance=dg.DagsterInstance.ephemeral())
    return folder / "home" / "philadelphia" / "warehouse.duckdb"


def scalar(warehouse: Path, sql: str) -> object:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(sql).fetchone()[0]


def test_every_row_is_ingested_and_staged(warehouse: Path, portal_csv: pl.DataFrame) -> None:
    assert scalar(warehouse, "SELECT count(*) FROM raw.crime_incidents") == portal_csv.height
    assert scalar(warehouse, "SELECT count(*) FROM staging.stg_crimes__incidents") == portal_csv["objectid"].n_unique()


def test_missing_coordinates_are_quarantined(warehouse: Path, portal_csv: pl.DataFrame) -> None:
    expected = portal_csv.filter(pl.col("point_x").is_null() | pl.col("point_y").is_null()).height

    found = scalar(warehouse, "SELECT count(*) FROM marts.quarantine_crime_incidents "
                              "WHERE quarantine_reason = 'missing_coordinates'")

    assert expected == 140
    assert found == expected


def test_located_plus_quarantined_is_staged(warehouse: Path) -> None:
    located = scalar(warehouse, "SELECT count(*) FROM intermediate.int_incidents__located WHERE cell_id IS NOT NULL")
    quarantined = scalar(warehouse, "SELECT count(*) FROM marts.quarantine_crime_incidents")

    assert located + quarantined == scalar(warehouse, "SELECT count(*) FROM staging.stg_crimes__incidents")


def test_violent_count_matches_ucr_codes(warehouse: Path, portal_csv: pl.DataFrame) -> None:
    expected = portal_csv.filter(pl.col("ucr_general").is_in(sorted(VIOLENT_UCR))).height

    assert scalar(warehouse, "SELECT count(*) FROM intermediate.int_incidents__located WHERE is_violent") == expected


def test_local_time_matches_dispatch_date_and_time(warehouse: Path, portal_csv: pl.DataFrame) -> None:
    """dispatch_date and dispatch_time are the local clock: the staged local time must equal them."""
    expected = portal_csv.select(
        pl.col("objectid"),
        (pl.col("dispatch_date") + " " + pl.col("dispatch_time")).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S")
        .alias("expected"),
    )
    with connect(warehouse, read_only=True) as connection:
        staged = pl.from_arrow(connection.sql(
            "SELECT incident_id AS objectid, occurred_at_local FROM staging.stg_crimes__incidents").arrow())

    joined = expected.join(staged, on="objectid")

    assert joined.height == portal_csv.height
    assert joined.filter(pl.col("expected") != pl.col("occurred_at_local")).height == 0


def test_cells_are_the_tracts(warehouse: Path, extracts: Path) -> None:
    collection = json.loads((extracts / "boundaries" / "census_tracts_pop.geojson").read_text(encoding="utf-8"))

    assert scalar(warehouse, "SELECT count(*) FROM marts.dim_cells") == len(collection["features"])


def test_scores_cover_every_tract(warehouse: Path) -> None:
    cells = scalar(warehouse, "SELECT count(*) FROM marts.dim_cells")

    targets = scalar(warehouse, "SELECT count(DISTINCT target) FROM main.risk_scores")

    assert targets == 3
    assert scalar(warehouse, "SELECT count(*) FROM main.risk_scores") == cells * SCORE_HOURS * HORIZON * targets


def test_weather_is_absent_not_invented(warehouse: Path) -> None:
    assert scalar(warehouse, "SELECT count(*) FROM raw.weather_observations") == 0


def test_release_is_blocked_without_demographic_groups(warehouse: Path) -> None:
    with connect(warehouse, read_only=True) as connection:
        metrics = connection.sql("SELECT count(*) FROM main.bias_group_metrics").fetchone()[0]
        releases = connection.sql("SELECT DISTINCT status, message FROM main.model_releases").fetchall()
        arrests = connection.sql("SELECT count(*) FROM main.bias_input_audit").fetchone()[0]

    assert metrics == 0
    assert [status for status, _ in releases] == ["blocked"]
    assert "no demographic group could be measured" in releases[0][1]
    assert arrests == 0
