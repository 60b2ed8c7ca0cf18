"""The dbt warehouse on a small hand-made extract: real Dagster run, real dbt build on DuckDB."""

from __future__ import annotations

import inspect
from datetime import datetime
from pathlib import Path

import dagster as dg
import dagster_dbt.core.resource as dagster_dbt_resource
import dbt.version
import pytest
from dagster_dbt import DbtCliResource
from packaging import version

from orchestration.assets.warehouse import dbt_resource
from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.warehouse import connect
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

CRIMES = [
    crime_row("900101", "ZZ100001", "07/04/2023 12:15:00 AM", "08B", "07/11/2023 03:41:00 PM", "41.879", "-87.658"),
    crime_row("900102", "ZZ100002", "07/04/2023 12:15:00 PM", "06", "07/11/2023 03:41:00 PM", "41.879", "-87.658"),
    crime_row("900103", "ZZ100003", "11/05/2023 01:30:00 AM", "03", "11/12/2023 09:00:00 AM", "41.88", "-87.62"),
    crime_row("900104", "ZZ100004", "03/10/2024 02:30:00 AM", "04B", "03/17/2024 09:00:00 AM", "41.88", "-87.62"),
    # A revised record: the later Updated On wins, with its new category and coordinates.
    crime_row("910001", "ZZ200001", "01/20/2023 09:10:00 PM", "08B", "01/27/2023 03:40:00 PM", "41.8801", "-87.6301"),
    crime_row("910001", "ZZ200001", "01/20/2023 09:10:00 PM", "04A", "02/20/2023 03:40:00 PM", "41.8811", "-87.6712"),
    crime_row("910001", "ZZ200001", "01/20/2023 09:10:00 PM", "04A", "02/20/2023 03:40:00 PM", "41.8811", "-87.6712"),
    # A homicide with two victims: two ids, one case.
    crime_row("910002", "ZZ200002", "01/21/2023 02:05:00 AM", "01A", "01/28/2023 03:40:00 PM", "41.8702", "-87.6852"),
    crime_row("910003", "ZZ200002", "01/21/2023 02:05:00 AM", "01A", "01/28/2023 03:40:00 PM", "41.8702", "-87.6852"),
    crime_row("920001", "ZZ300001", "02/01/2023 10:00:00 AM", "06", "02/02/2023 10:00:00 AM", "", ""),
    crime_row("920002", "ZZ300002", "02/01/2023 11:00:00 AM", "06", "02/02/2023 10:00:00 AM", "-87.62", "41.88"),
    crime_row("920003", "ZZ300003", "02/01/2023 12:00:00 PM", "06", "02/02/2023 10:00:00 AM", "41.70", "-87.62"),
]
WEATHER = [
    "WBAN:94846,OHARE,201.8,41.995,-87.9336,2023-03-12 01:51,FM-15,30,80,5,0.00,",
    "WBAN:94846,OHARE,201.8,41.995,-87.9336,2023-03-12 02:10,FM-16,30,80,5,0.05,",
    "WBAN:94846,OHARE,201.8,41.995,-87.9336,2023-03-12 02:51,FM-15,31,81,6,T,",
    "WBAN:94846,OHARE,201.8,41.995,-87.9336,2023-03-12 03:51,FM-15,31,82,7,0.02s,",
    "WBAN:94846,OHARE,201.8,41.995,-87.9336,2023-03-12 23:59,SOD,,,,,0.02",
]


@pytest.fixture(scope="module")
def warehouse_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    folder = tmp_path_factory.mktemp("warehouse")
    extracts = write_extracts(folder / "extracts", CRIMES, WEATHER)
    jurisdiction = write_test_jurisdiction(folder, "2023-01-01")
    run_file = write_run_file(folder, jurisdiction, extracts, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))
    definitions = build_definitions(run_file, folder / "home")

    result = definitions.resolve_job_def(WAREHOUSE_JOB).execute_in_process(instance=dg.DagsterInstance.ephemeral())

    assert result.success
    return folder / "home" / "testcity" / "warehouse.duckdb", result


@pytest.fixture(scope="module")
def warehouse(warehouse_run: tuple[Path, dg.ExecuteInProcessResult]) -> Path:
    return warehouse_run[0]


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(sql).fetchall()


def test_staging_keeps_one_row_per_id(warehouse: Path) -> None:
    assert query(warehouse, "SELECT count(*) FROM staging.stg_crimes__incidents") == [(10,)]


def test_staging_drops_free_text(warehouse: Path) -> None:
    columns = {row[0] for row in query(warehouse, "DESCRIBE staging.stg_crimes__incidents")}

    assert "block" not in columns
    assert "description" not in columns
    assert "incident_id" in columns


def test_latest_revision_wins(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT offense_code, latitude FROM staging.stg_crimes__incidents WHERE incident_id = '910001'")

    assert rows == [("04A", 41.8811)]


def test_am_pm_times_convert_to_utc(warehouse: Path) -> None:
    rows = dict(query(warehouse, "SELECT incident_id, occurred_at_utc FROM staging.stg_crimes__incidents "
                                 "WHERE incident_id IN ('900101', '900102')"))

    assert rows["900101"] == datetime(2023, 7, 4, 5, 15)
    assert rows["900102"] == datetime(2023, 7, 4, 17, 15)


def test_ambiguous_time_takes_first_occurrence(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT occurred_at_utc, ts_ambiguous, ts_nonexistent FROM staging.stg_crimes__incidents "
                            "WHERE incident_id = '900103'")

    assert rows == [(datetime(2023, 11, 5, 6, 30), True, False)]


def test_nonexistent_time_moves_forward(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT occurred_at_utc, ts_ambiguous, ts_nonexistent FROM staging.stg_crimes__incidents "
                            "WHERE incident_id = '900104'")

    assert rows == [(datetime(2024, 3, 10, 8, 30), False, True)]


def test_violent_flag_comes_from_offense_codes(warehouse: Path) -> None:
    rows = dict(query(warehouse, "SELECT incident_id, is_violent FROM intermediate.int_incidents__located"))

    assert rows["900103"] is True
    assert rows["900101"] is False
    assert rows["910001"] is True


def test_points_land_in_their_tract(warehouse: Path) -> None:
    rows = dict(query(warehouse, "SELECT incident_id, cell_id FROM intermediate.int_incidents__located "
                                 "WHERE quarantine_reason IS NULL"))

    assert rows["900101"] == "WEST"
    assert rows["900103"] == "EAST"
    assert rows["910001"] == "WEST"


def test_unplaceable_rows_are_quarantined_with_reason(warehouse: Path) -> None:
    rows = dict(query(warehouse, "SELECT incident_id, quarantine_reason FROM marts.quarantine_crime_incidents"))

    assert rows == {"920001": "missing_coordinates", "920003": "outside_cells"}


def test_swapped_coordinates_are_repaired(warehouse: Path) -> None:
    # 920002 arrives as (-87.62, 41.88); swapped back it lies in EAST, so it is placed there.
    rows = query(warehouse, "SELECT cell_id, location_status, coordinates_swapped, latitude, located_latitude, "
                            "located_longitude FROM intermediate.int_incidents__located WHERE incident_id = '920002'")

    assert rows == [("EAST", "swapped_repaired", True, -87.62, 41.88, -87.62)]


def test_multi_victim_case_counts_once(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT crime_count, violent_count FROM marts.fct_cell_hour_crimes "
                            "WHERE cell_id = 'WEST' AND hour = TIMESTAMP '2023-01-21 08:00:00'")

    assert rows == [(1, 1)]


def test_spine_is_complete(warehouse: Path) -> None:
    hours = query(warehouse, "SELECT count(*), min(hour), max(hour) FROM marts.hour_spine")[0]
    panel = query(warehouse, "SELECT count(*), sum(violent_count) FROM marts.cell_hour_spine")[0]
    expected_hours = int((datetime(2024, 3, 10, 8) - datetime(2023, 1, 1)).total_seconds() // 3600) + 1

    assert hours == (expected_hours, datetime(2023, 1, 1), datetime(2024, 3, 10, 8))
    assert panel == (2 * expected_hours, 4)


def test_weather_uses_fixed_standard_time_offset(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT hour, temperature_f, precipitation_in, precipitation_is_trace, is_suspect "
                            "FROM marts.fct_hourly_weather WHERE NOT weather_missing ORDER BY hour")

    assert rows == [
        (datetime(2023, 3, 12, 7), 30.0, 0.0, False, False),
        (datetime(2023, 3, 12, 8), 31.0, 0.0, True, False),
        (datetime(2023, 3, 12, 9), 31.0, 0.02, False, True),
    ]


def test_hours_without_weather_are_marked_missing(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT weather_missing, temperature_f FROM marts.fct_hourly_weather "
                            "WHERE hour = TIMESTAMP '2023-03-12 10:00:00'")

    assert rows == [(True, None)]


def test_cell_areas_are_equal_area_km2(warehouse: Path) -> None:
    areas = dict(query(warehouse, "SELECT cell_id, area_km2 FROM marts.dim_cells"))

    # 0.05 degrees of longitude by 0.05 of latitude near 41.875 N is about 4.14 x 5.56 km.
    assert areas["WEST"] == pytest.approx(23.0, rel=0.01)


def test_row_accounting_balances(warehouse: Path) -> None:
    raw = query(warehouse, "SELECT count(*) FROM raw.crime_incidents")[0][0]
    staged = query(warehouse, "SELECT count(*) FROM staging.stg_crimes__incidents")[0][0]
    located = query(warehouse, "SELECT count(*) FROM intermediate.int_incidents__located "
                               "WHERE quarantine_reason IS NULL")[0][0]
    quarantined = query(warehouse, "SELECT count(*) FROM marts.quarantine_crime_incidents")[0][0]

    assert raw == 12
    assert staged == 10
    assert located + quarantined == staged


def test_audit_checks_pass_on_fixture(warehouse_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    evaluations = {item.check_name: item for item in warehouse_run[1].get_asset_check_evaluations()}

    assert evaluations["crime_row_accounting"].passed
    assert evaluations["crime_row_accounting"].metadata["superseded_versions"].value == 2
    assert evaluations["crime_incidents_input_audit"].passed
    assert not evaluations["quarantine_share_check"].passed
    assert evaluations["quarantine_share_check"].metadata["quarantined"].value == 2


# The dbt resource reads dbt's version from the installed package instead of running `dbt --version`.

def test_dbt_version_read_without_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    def reject_subprocess(*args: object, **kwargs: object) -> bytes:
        raise AssertionError(f"unexpected subprocess {args}")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", reject_subprocess)

    assert dbt_resource()._cli_version == version.parse(dbt.version.__version__)


def test_dagster_dbt_still_reads_cli_version() -> None:
    # The override in LocalDbtCliResource only saves time while DbtCliResource.cli reads this member.
    assert "self._cli_version" in inspect.getsource(DbtCliResource.cli)
    assert isinstance(dbt_resource(), DbtCliResource)


def test_no_dbt_adapter_in_dagster_process() -> None:
    # dagster-dbt builds its in-process adapter through this method, and only column-metadata and
    # row-count fetches read it.
    source = inspect.getsource(DbtCliResource.cli)
    assert "self._initialize_dbt_core_adapter(" in source
    assert dbt_resource()._initialize_dbt_core_adapter(["build"]) is None
