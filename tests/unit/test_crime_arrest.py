"""The portal's Arrest flag from a hand-made extract to the arrest audit's input.

One real Dagster run ingests the crimes, the offense codes and the two test tracts and builds the
crime staging and location models with dbt on DuckDB. The tests then read the staged flag, the
warn-severity check on invalid values and ``read_incidents_for_arrest_audit``. Two more cases use
a raw table stored before ingest mapped arrest: a dbt build of staging on it, and a Socrata merge
into it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ml.bias import DEFAULT_GROUPS, arrest_share_by_category, assign_groups
from orchestration.assets.raw import merge_crime_pull
from orchestration.bias_inputs import read_incidents_for_arrest_audit
from orchestration.dbt import DBT_PROJECT_DIR, dbt_environment, dbt_executable, dbt_vars
from orchestration.definitions import build_definitions
from orchestration.ingest import read_crime_extracts
from orchestration.jurisdiction import load_jurisdiction
from orchestration.settings import RiskcastSettings
from orchestration.sources.crimes import CrimePull
from orchestration.warehouse import connect
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

UPDATED = "08/02/2023 10:00:00 AM"
LATER = "08/09/2023 10:00:00 AM"
WEST = ("41.879", "-87.658")
EAST = ("41.88", "-87.62")
CRIMES = [
    crime_row("800001", "ZZ1", "07/03/2023 10:00:00 AM", "18", UPDATED, *WEST, arrest="true", primary_type="NARCOTICS"),
    crime_row("800002", "ZZ2", "07/03/2023 11:00:00 AM", "08B", UPDATED, *WEST, arrest="false"),
    crime_row("800003", "ZZ3", "07/03/2023 12:00:00 PM", "08B", UPDATED, *EAST, arrest=""),
    crime_row("800004", "ZZ4", "07/04/2023 10:00:00 AM", "18", UPDATED, *EAST, arrest="TRUE", primary_type="NARCOTICS"),
    crime_row("800005", "ZZ5", "07/04/2023 11:00:00 AM", "08B", UPDATED, *EAST, arrest=" False "),
    # Two values that are not flags: staging makes them NULL and the warn-severity test lists them.
    crime_row("800006", "ZZ6", "07/05/2023 10:00:00 AM", "08B", UPDATED, *EAST, arrest="yes"),
    crime_row("800007", "ZZ7", "07/05/2023 11:00:00 AM", "08B", UPDATED, *WEST, arrest="Y"),
    # A revised record: the later version, with an arrest, wins.
    crime_row("800008", "ZZ8", "07/06/2023 10:00:00 AM", "18", UPDATED, *WEST, arrest="false", primary_type="NARCOTICS"),
    crime_row("800008", "ZZ8", "07/06/2023 10:00:00 AM", "18", LATER, *WEST, arrest="true", primary_type="NARCOTICS"),
    # An invalid value in a superseded version is not counted.
    crime_row("800009", "ZZ9", "07/06/2023 11:00:00 AM", "08B", UPDATED, *WEST, arrest="maybe"),
    crime_row("800009", "ZZ9", "07/06/2023 11:00:00 AM", "08B", LATER, *WEST, arrest="false"),
    # No coordinates: no cell, but still an arrest record.
    crime_row("800010", "ZZ10", "07/07/2023 10:00:00 AM", "18", UPDATED, "", "", arrest="true", primary_type="NARCOTICS"),
    # 06/30 20:00 CDT is 07/01 01:00 UTC, inside a July window. 07/31 20:00 CDT is 08/01 01:00 UTC, after it.
    crime_row("800011", "ZZ11", "06/30/2023 08:00:00 PM", "08B", UPDATED, *EAST, arrest="true"),
    crime_row("800012", "ZZ12", "07/31/2023 08:00:00 PM", "08B", UPDATED, *EAST, arrest="true"),
]
WEATHER = ["WBAN:94846,OHARE,201.8,41.995,-87.9336,2023-07-04 01:51,FM-15,70,80,5,0.00,"]
ASSETS = ["raw_crime_incidents", "raw_offense_codes", "raw_boundaries", "raw_cells", "stg_crimes__incidents",
          "stg_cells", "int_incidents__located"]
JULY = (datetime(2023, 7, 1), datetime(2023, 8, 1))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dg.ExecuteInProcessResult]:
    """Return the run file, the warehouse and the result of one run that builds the arrest models."""
    folder = tmp_path_factory.mktemp("arrest")
    extracts = write_extracts(folder / "extracts", CRIMES, WEATHER)
    jurisdiction = write_test_jurisdiction(folder, "2023-01-01")
    run_file = write_run_file(folder, jurisdiction, extracts, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))
    definitions = build_definitions(run_file, folder / "home")

    # Cautious indirect selection keeps tests of models outside the selection out of this run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_INDIRECT_SELECTION", "cautious")
        result = dg.materialize(assets=[*(definitions.assets or [])], resources=dict(definitions.resources or {}),
                                selection=dg.AssetSelection.assets(*ASSETS), instance=dg.DagsterInstance.ephemeral())

    assert result.success
    return run_file, folder / "home" / "testcity" / "warehouse.duckdb", result


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(sql).fetchall()


def staged_arrests(warehouse: Path) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in query(
        warehouse, "SELECT incident_id, arrest, invalid_arrest_value FROM staging.stg_crimes__incidents")}


def test_extract_keeps_arrest_text(tmp_path: Path) -> None:
    extracts = write_extracts(tmp_path, CRIMES[:6], WEATHER)

    frame = read_crime_extracts(extracts, load_jurisdiction("chicago").crimes).frame

    assert frame["arrest"].to_list() == ["true", "false", None, "TRUE", " False ", "yes"]


def test_raw_table_has_arrest_text(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    rows = dict(query(built[1], "SELECT id, arrest FROM raw.crime_incidents WHERE id IN ('800001', '800003', '800006')"))

    assert rows == {"800001": "true", "800003": None, "800006": "yes"}


def test_staged_arrest_flags(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    staged = staged_arrests(built[1])

    assert staged["800001"] == (True, None)
    assert staged["800002"] == (False, None)
    assert staged["800003"] == (None, None)
    assert staged["800004"] == (True, None)
    assert staged["800005"] == (False, None)
    assert staged["800008"] == (True, None)
    assert staged["800009"] == (False, None)


def test_staged_arrest_is_boolean(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    types = dict(query(built[1], "SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_schema = 'staging' AND table_name = 'stg_crimes__incidents'"))

    assert types["arrest"] == "BOOLEAN"
    assert types["invalid_arrest_value"] == "VARCHAR"


def test_invalid_arrest_values_kept(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    staged = staged_arrests(built[1])
    invalid = {incident: value for incident, (_, value) in staged.items() if value is not None}

    assert invalid == {"800006": "yes", "800007": "Y"}
    assert staged["800006"][0] is None
    assert staged["800007"][0] is None


def test_invalid_arrest_check_warns_with_count(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    checks = {item.check_name: item for item in built[2].get_asset_check_evaluations()}
    check = checks["crime_arrest_values_parsed"]

    assert check.passed is False
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["dagster_dbt/failed_row_count"].value == 2


def test_reader_returns_window(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    frame = read_incidents_for_arrest_audit(built[1], *JULY)

    assert frame.columns == ["incident_id", "occurred_at_utc", "cell_id", "primary_type", "arrest"]
    assert frame["incident_id"].to_list() == ["800011", "800001", "800002", "800003", "800004", "800005",
                                              "800006", "800007", "800008", "800009", "800010"]
    assert frame["occurred_at_utc"][0] == datetime(2023, 7, 1, 1, 0)


def test_reader_cells_and_flags(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    rows = {row["incident_id"]: (row["cell_id"], row["primary_type"], row["arrest"])
            for row in read_incidents_for_arrest_audit(built[1], *JULY).iter_rows(named=True)}

    assert rows["800001"] == ("WEST", "NARCOTICS", True)
    assert rows["800003"] == ("EAST", "BATTERY", None)
    assert rows["800006"] == ("EAST", "BATTERY", None)
    assert rows["800010"] == (None, "NARCOTICS", True)


def test_reader_accepts_aware_times(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    start = datetime(2023, 7, 1, 1, 0, tzinfo=timezone.utc)
    end = datetime(2023, 7, 3, 16, 0, tzinfo=timezone.utc)

    frame = read_incidents_for_arrest_audit(built[1], start, end)

    # 07/03 10:00 CDT is 15:00 UTC, inside the window, and 11:00 CDT is 16:00 UTC, its excluded end.
    assert frame["incident_id"].to_list() == ["800011", "800001"]


def test_reader_rejects_empty_window(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        read_incidents_for_arrest_audit(built[1], JULY[1], JULY[0])


def test_reader_feeds_arrest_audit(built: tuple[Path, Path, dg.ExecuteInProcessResult]) -> None:
    incidents = read_incidents_for_arrest_audit(built[1], *JULY)
    demographics = pl.DataFrame({"cell_id": ["WEST", "EAST"], "population": [1000.0, 3000.0],
                                 "nh_black_share": [0.8, 0.1], "hispanic_share": [0.1, 0.2],
                                 "nh_white_share": [0.1, 0.7], "per_capita_income": [15000.0, 45000.0]})

    audit = arrest_share_by_category(incidents, assign_groups(demographics, DEFAULT_GROUPS))
    overall = {row["category"]: row for row in audit.filter(pl.col("group") == "all").iter_rows(named=True)}

    # NARCOTICS: 800001, 800004, 800008 and 800010, all with an arrest.
    assert overall["NARCOTICS"]["records"] == 4
    assert overall["NARCOTICS"]["arrest_share"] == 1.0
    # BATTERY: 7 records. 800003, 800006 and 800007 have no valid flag, and of the 4 others only 800011 has an arrest.
    assert overall["BATTERY"]["records"] == 7
    assert overall["BATTERY"]["arrests"] == 1
    assert overall["BATTERY"]["arrest_share"] == pytest.approx(1 / 4)


def test_reader_rejects_warehouse_without_arrest(built: tuple[Path, Path, dg.ExecuteInProcessResult],
                                                 tmp_path: Path) -> None:
    warehouse = tmp_path / "old.duckdb"
    shutil.copy(built[1], warehouse)
    with connect(warehouse) as connection:
        connection.execute("ALTER TABLE intermediate.int_incidents__located DROP COLUMN arrest")

    with pytest.raises(ValueError, match="Rebuild raw_crime_incidents"):
        read_incidents_for_arrest_audit(warehouse, *JULY)


def test_staging_reads_raw_table_without_arrest(built: tuple[Path, Path, dg.ExecuteInProcessResult],
                                                tmp_path: Path) -> None:
    """A raw table stored before arrest was mapped still stages, with every arrest NULL."""
    run_file, source, _ = built
    home = tmp_path / "home"
    warehouse = home / "testcity" / "warehouse.duckdb"
    warehouse.parent.mkdir(parents=True)
    shutil.copy(source, warehouse)
    with connect(warehouse) as connection:
        connection.execute("ALTER TABLE raw.crime_incidents DROP COLUMN arrest")
    settings = RiskcastSettings(home=home, jurisdiction="testcity")
    jurisdiction = load_jurisdiction(str(run_file.parent / "testcity.yaml"))

    # dbt runs in its own process, as DbtCliResource runs it, so that its DuckDB handle closes.
    completed = subprocess.run(
        [dbt_executable(), "build", "--select", "stg_crimes__incidents", "--vars", json.dumps(dbt_vars(jurisdiction)),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(tmp_path / "target")],
        env=os.environ | dbt_environment(settings), capture_output=True, text=True, check=False,
    )
    staged = staged_arrests(warehouse)

    assert completed.returncode == 0, completed.stdout
    assert "raw.crime_incidents has no arrest column" in completed.stdout
    assert len(staged) == 12
    assert set(staged.values()) == {(None, None)}


def pull_frame(rows: list[dict[str, str | None]]) -> pl.DataFrame:
    """Build a pulled crime frame in the raw layout, with source and position as a pull sets them."""
    return pl.DataFrame(rows).with_columns(
        pl.lit("socrata:ijzp-q8t2").alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("source_row"),
    )


def api_record(incident_id: str, arrest: str | None) -> dict[str, str | None]:
    return {"id": incident_id, "date": "2023-07-04T10:00:00.000", "offense_code": "18", "latitude": "41.879",
            "longitude": "-87.658", "updated_on": "2023-07-05T10:00:00.000", "case_number": f"ZZ{incident_id}",
            "iucr": "1811", "primary_type": "NARCOTICS", "location_description": "STREET", "beat": "1234",
            "district": "012", "community_area": "28", "arrest": arrest}


def test_socrata_merge_adds_arrest_to_old_table(tmp_path: Path) -> None:
    """A pull into a raw table without arrest adds the column, and rows not pulled again keep NULL."""
    warehouse = tmp_path / "warehouse.duckdb"
    jurisdiction = load_jurisdiction("chicago")
    old = pull_frame([api_record("700001", None), api_record("700002", None)]).drop("arrest")
    merge_crime_pull(warehouse, CrimePull(old, "socrata:ijzp-q8t2", "2024-06-01T00:00:00.000Z", []),
                     None, "2024-06-01T00:00:00.000Z", jurisdiction)

    pulled = pull_frame([api_record("700002", "true"), api_record("700003", "false")])
    counts = merge_crime_pull(warehouse, CrimePull(pulled, "socrata:ijzp-q8t2", "2024-06-02T00:00:00.000Z", []),
                              "2024-06-01T00:00:00.000Z", "2024-06-02T00:00:00.000Z", jurisdiction)
    rows = dict(query(warehouse, "SELECT id, arrest FROM raw.crime_incidents"))

    assert rows == {"700001": None, "700002": "true", "700003": "false"}
    assert (counts.new, counts.replaced, counts.unchanged, counts.stored) == (1, 1, 0, 3)
