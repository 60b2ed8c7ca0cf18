"""The arrest audit on real Chicago records of July to December 2017, read from the warehouse.

One Dagster run ingests the 2017 crime export, the boundaries and the demographics, and builds the
crime staging and location models and ``marts.dim_cell_demographics``. The arrest shares are
checked against counts taken straight from the export with polars, and against what Lum & Isaac
(2016) describe: narcotics records nearly always carry an arrest and concentrate in Black
neighbourhoods more than victim-reported battery does. Skipped when ../shared/data is absent.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest
import yaml

from ml.bias import DEFAULT_GROUPS, arrest_share_by_category, assign_groups
from orchestration.bias_inputs import read_incidents_for_arrest_audit
from orchestration.definitions import build_definitions
from orchestration.jurisdiction import JURISDICTIONS_DIR
from orchestration.warehouse import connect
from tests.conftest import SHARED_DATA
from tests.extracts import write_run_file

pytestmark = pytest.mark.integration

CHICAGO = ZoneInfo("America/Chicago")
START = datetime(2017, 7, 1, tzinfo=CHICAGO)
END = datetime(2018, 1, 1, tzinfo=CHICAGO)
ASSETS = ["raw_crime_incidents", "raw_offense_codes", "raw_boundaries", "raw_cells", "raw_demographics",
          "stg_crimes__incidents", "stg_cells", "int_incidents__located", "stg_boundaries__features",
          "stg_demographics__rows", "int_boundaries__features", "int_demographics__areas",
          "int_cells__containing_features", "int_cells__demographics", "dim_cell_demographics"]


@pytest.fixture(scope="module")
def chicago_folder() -> Path:
    folder = SHARED_DATA / "chicago"
    if not (folder / "crimes").is_dir():
        pytest.skip(f"real Chicago data not found at {folder}; it lives in ../shared/data beside the repository")
    return folder


@pytest.fixture(scope="module")
def warehouse(chicago_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the crime and demographic models of Chicago from the 2017 export only."""
    folder = tmp_path_factory.mktemp("arrest_audit")
    content = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    content["name"] = "chicago_arrests"
    content["crimes"]["files"] = "crimes/chicago_crimes_2017.csv*"
    jurisdiction = folder / "chicago_arrests.yaml"
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    run_file = write_run_file(folder, jurisdiction, chicago_folder, ("2017-01-01", "2017-10-01"),
                              ("2017-10-01", "2017-10-08"))
    definitions = build_definitions(run_file, folder / "home")

    # Cautious indirect selection keeps the tests of models outside the selection out of this run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_INDIRECT_SELECTION", "cautious")
        result = dg.materialize(assets=[*(definitions.assets or [])], resources=dict(definitions.resources or {}),
                                selection=dg.AssetSelection.assets(*ASSETS), instance=dg.DagsterInstance.ephemeral())

    assert result.success
    return folder / "home" / "chicago_arrests" / "warehouse.duckdb"


@pytest.fixture(scope="module")
def audit(warehouse: Path) -> pl.DataFrame:
    incidents = read_incidents_for_arrest_audit(warehouse, START, END)
    with connect(warehouse, read_only=True) as connection:
        demographics = connection.sql("SELECT * FROM marts.dim_cell_demographics").pl()

    return arrest_share_by_category(incidents, assign_groups(demographics, DEFAULT_GROUPS))


@pytest.fixture(scope="module")
def export_h2(chicago_folder: Path) -> pl.DataFrame:
    """Return the export's records of July to December 2017 (local Date), one row per ID."""
    frame = pl.read_csv(chicago_folder / "crimes" / "chicago_crimes_2017.csv.gz", infer_schema=False,
                        columns=["ID", "Date", "Primary Type", "Arrest"])
    local = pl.col("Date").str.strptime(pl.Datetime("us"), "%m/%d/%Y %I:%M:%S %p")
    return frame.filter(local >= START.replace(tzinfo=None), local < END.replace(tzinfo=None)).unique("ID")


def value(audit: pl.DataFrame, category: str, group: str, column: str) -> float:
    return audit.filter((pl.col("category") == category) & (pl.col("group") == group))[column].item()


def test_records_and_arrests_match_export(audit: pl.DataFrame, export_h2: pl.DataFrame) -> None:
    expected = export_h2.group_by("Primary Type").agg(
        pl.len().alias("records"), (pl.col("Arrest") == "true").sum().alias("arrests"))
    found = audit.filter(pl.col("group") == "all").select(
        pl.col("category").alias("Primary Type"), "records", "arrests")

    assert found.sort("Primary Type").rows() == expected.sort("Primary Type").cast({"arrests": pl.Int64}).rows()
    assert found["records"].sum() == 137407


def test_every_h2_record_has_an_arrest_flag(warehouse: Path) -> None:
    incidents = read_incidents_for_arrest_audit(warehouse, START, END)

    assert incidents.height == 137407
    assert incidents["arrest"].null_count() == 0
    assert incidents["cell_id"].null_count() == 2282


def test_narcotics_nearly_always_arrests(audit: pl.DataFrame) -> None:
    share = value(audit, "NARCOTICS", "all", "arrest_share")

    assert share > 0.9
    assert share == pytest.approx(5571 / 5573)


def test_battery_seldom_arrests(audit: pl.DataFrame) -> None:
    share = value(audit, "BATTERY", "all", "arrest_share")

    assert share < 0.3
    assert share == pytest.approx(4978 / 25063)


def test_narcotics_concentrate_in_black_neighbourhoods(audit: pl.DataFrame) -> None:
    narcotics = value(audit, "NARCOTICS", "black_share_q45", "record_to_population")
    battery = value(audit, "BATTERY", "black_share_q45", "record_to_population")

    assert narcotics > battery
    assert narcotics == pytest.approx(2.080, abs=0.001)
    assert battery == pytest.approx(1.718, abs=0.001)
