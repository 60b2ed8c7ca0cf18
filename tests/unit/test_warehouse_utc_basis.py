"""Staging of a portal whose times are UTC instants and that publishes no revision time.

A Philadelphia-style extract (``dispatch_date_time`` with a ``+00`` offset, no ``updated_on``)
goes through a real Dagster run and a real dbt build. The local time is derived from the instant,
so the spring-forward night has no gap and no row is flagged ambiguous or nonexistent.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.jurisdiction import JURISDICTIONS_DIR
from orchestration.warehouse import connect
from tests.extracts import write_run_file, write_tracts

HEADER = "objectid,dc_key,dispatch_date_time,dispatch_date,dispatch_time,ucr_general,location_block,point_x,point_y"
ROWS = [
    # 07:30 UTC on 2024-03-10 is 01:30 CST, before Chicago's spring-forward jump at 02:00 local.
    "1,K1,2024-03-10 07:30:00+00,2024-03-10,01:30:00,300,100 BLOCK A ST,-87.66,41.87",
    # 08:30 UTC is 03:30 CDT: one hour later in UTC, two hours later on the wall clock.
    "2,K2,2024-03-10 08:30:00+00,2024-03-10,03:30:00,600,200 BLOCK B ST,-87.62,41.88",
    # The same id twice with no revision time: the row that appears last wins.
    "3,K3,2024-03-11 12:00:00+00,2024-03-11,08:00:00,600,300 BLOCK C ST,-87.62,41.88",
    "3,K3,2024-03-11 12:00:00+00,2024-03-11,08:00:00,400,300 BLOCK C ST,-87.62,41.88",
    # A code the mapping does not list stages as unknown.
    "4,K4,2024-03-12 00:00:00+00,2024-03-11,20:00:00,9999,400 BLOCK D ST,-87.62,41.88",
]


def write_jurisdiction(folder: Path) -> Path:
    content = yaml.safe_load((JURISDICTIONS_DIR / "philadelphia.yaml").read_text(encoding="utf-8"))
    content.update(name="utccity", time_zone="America/Chicago", data_start="2024-03-01",
                   bounding_box={"min_lat": 41.6, "max_lat": 42.1, "min_lon": -87.95, "max_lon": -87.5})
    content["crimes"]["files"] = "crimes/*.csv"
    content["boundaries"] = {"layers": [{"name": "tracts", "kind": "census_tract",
                                         "file": "boundaries/tracts.geojson", "id_property": "geoid10"}]}
    content["cells"] = {"spatial_unit": "census_tract", "layer": "tracts"}
    content.pop("demographics", None)
    path = folder / "utccity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("utc")
    extracts = folder / "extracts"
    (extracts / "crimes").mkdir(parents=True)
    (extracts / "crimes" / "incidents.csv").write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    write_tracts(extracts / "boundaries" / "tracts.geojson")
    run_file = write_run_file(folder, write_jurisdiction(folder), extracts,
                              ("2024-03-01", "2024-03-10"), ("2024-03-10", "2024-03-11"))

    result = build_definitions(run_file, folder / "home").resolve_job_def(WAREHOUSE_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral())

    assert result.success
    return folder / "home" / "utccity" / "warehouse.duckdb"


def staged(warehouse: Path) -> dict[str, tuple]:
    with connect(warehouse, read_only=True) as connection:
        rows = connection.sql(
            "SELECT incident_id, occurred_at_utc, occurred_at_local, ts_ambiguous, ts_nonexistent, "
            "updated_at_utc, offense_code FROM staging.stg_crimes__incidents").fetchall()
    return {row[0]: row[1:] for row in rows}


def test_utc_instants_are_kept(warehouse: Path) -> None:
    rows = staged(warehouse)

    assert rows["1"][0] == datetime(2024, 3, 10, 7, 30)
    assert rows["2"][0] == datetime(2024, 3, 10, 8, 30)


def test_local_time_derived_across_spring_forward(warehouse: Path) -> None:
    rows = staged(warehouse)

    assert rows["1"][1] == datetime(2024, 3, 10, 1, 30)
    assert rows["2"][1] == datetime(2024, 3, 10, 3, 30)
    assert not any(row[2] or row[3] for row in rows.values())


def test_no_revision_time_keeps_last_row(warehouse: Path) -> None:
    rows = staged(warehouse)

    assert len(rows) == 4
    assert rows["3"][5] == "400"
    assert rows["3"][4] is None


def test_categories_come_from_the_mapping(warehouse: Path) -> None:
    with connect(warehouse, read_only=True) as connection:
        rows = {row[0]: row[1:] for row in connection.sql(
            "SELECT incident_id, category, is_violent, offense_groups, is_unknown_code "
            "FROM intermediate.int_incidents__located").fetchall()}

    assert rows["1"] == ("violent", True, ["robbery"], False)
    assert rows["2"] == ("property", False, ["theft"], False)
    assert rows["3"] == ("violent", True, ["aggravated_assault"], False)
    assert rows["4"] == ("unknown", False, [], True)


def test_address_column_is_not_stored(warehouse: Path) -> None:
    with connect(warehouse, read_only=True) as connection:
        columns = [row[0] for row in connection.sql("DESCRIBE raw.crime_incidents").fetchall()]
        values = connection.sql("SELECT * FROM raw.crime_incidents").fetchall()

    assert "location_block" not in columns
    assert not any("BLOCK" in str(value) for row in values for value in row)


def test_portal_without_arrest_stages_null(warehouse: Path) -> None:
    with connect(warehouse, read_only=True) as connection:
        raw = connection.sql("SELECT count(*), count(arrest) FROM raw.crime_incidents").fetchone()
        staged = connection.sql("SELECT arrest, invalid_arrest_value, count(*) FROM staging.stg_crimes__incidents "
                                "GROUP BY ALL").fetchall()

    assert raw == (5, 0)
    assert staged == [(None, None, 4)]
