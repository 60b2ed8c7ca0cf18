"""Quarantine of incidents dated after the extract or before the data start, and the hour spine's end.

The dbt models ``int_incidents__located``, ``hour_spine`` and ``fct_cell_hour_crimes`` are rendered
with plain Jinja and Chicago's dbt variables (with a 2023-01-01 data start) and run in an in-memory
DuckDB on hand-made staged incidents and the two test tracts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import polars as pl
import pytest

from orchestration.assets.raw import offense_code_frame
from orchestration.dbt import FUTURE_TIME_TOLERANCE_HOURS, dbt_vars
from orchestration.jurisdiction import load_jurisdiction
from orchestration.warehouse import open_connection
from tests.extracts import TRACTS

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
CHICAGO = load_jurisdiction("chicago")
VARS = {**dbt_vars(CHICAGO), "data_start": "2023-01-01"}
DATA_START = datetime(2023, 1, 1)

WEST = (41.879, -87.658)
STAGED_COLUMNS = {"incident_id": pl.String, "case_number": pl.String, "occurred_at_utc": pl.Datetime("us"),
                  "updated_at_utc": pl.Datetime("us"), "offense_code": pl.String,
                  "latitude": pl.Float64, "longitude": pl.Float64, "source_file": pl.String,
                  "source_row": pl.Int64}


def render(model: str) -> str:
    """Render a dbt model with VARS, plain table names for ``ref`` and schema-qualified sources."""
    sql = (DBT_DIR / "models" / model).read_text(encoding="utf-8")
    return jinja2.Environment().from_string(sql).render(
        var=lambda name, default=None: VARS.get(name, default),
        ref=lambda name: name,
        source=lambda schema, table: f"{schema}.{table}",
        config=lambda **options: "",
    )


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield an in-memory DuckDB with Chicago's offense codes and the WEST and EAST tracts as cells."""
    connection = open_connection(Path(":memory:"), spatial=True)
    connection.execute("create schema raw")
    connection.register("code_rows", offense_code_frame(CHICAGO).to_arrow())
    connection.execute("create table raw.offense_codes as select * from code_rows")
    cells = pl.DataFrame({
        "cell_id": list(TRACTS),
        "wkt": [f"POLYGON(({', '.join(f'{lon} {lat}' for lon, lat in ring)}))" for ring in TRACTS.values()],
    })
    connection.register("cell_rows", cells.to_arrow())
    connection.execute("create table stg_cells as select cell_id, ST_GeomFromText(wkt) as geom from cell_rows")
    yield connection
    connection.close()


def build(duck: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    """Stage incidents given as (id, occurred UTC, updated UTC, latitude, longitude) and build the models.

    Returns the located rows by incident id. The hour spine and the counts are left in ``duck``.
    """
    staged = pl.DataFrame(
        [(incident_id, f"JA{incident_id}", occurred, updated, "08B", lat, lon, "crimes.csv", position)
         for position, (incident_id, occurred, updated, lat, lon) in enumerate(rows, start=2)],
        schema=STAGED_COLUMNS, orient="row")
    duck.register("staged_rows", staged.to_arrow())
    duck.execute("create or replace table stg_crimes__incidents as select * from staged_rows")

    duck.execute(f"create or replace table int_incidents__located as {render('intermediate/int_incidents__located.sql')}")
    duck.execute(f"create or replace table hour_spine as {render('marts/hour_spine.sql')}")
    duck.execute(f"create or replace table fct_cell_hour_crimes as {render('marts/fct_cell_hour_crimes.sql')}")
    duck.execute(f"create or replace table quarantine_crime_incidents as "
                 f"{render('marts/quarantine_crime_incidents.sql')}")

    located = duck.execute("select * from int_incidents__located").pl()
    return {row["incident_id"]: row for row in located.iter_rows(named=True)}


def spine_range(duck: duckdb.DuckDBPyConnection) -> tuple[int, datetime, datetime]:
    return duck.execute("select count(*), min(hour), max(hour) from hour_spine").fetchone()


def counted_hours(duck: duckdb.DuckDBPyConnection) -> list[datetime]:
    return [row[0] for row in duck.execute("select hour from fct_cell_hour_crimes order by hour").fetchall()]


def test_year_2031_is_future_time(duck: duckdb.DuckDBPyConnection) -> None:
    updated = datetime(2023, 7, 11, 20, 41)
    located = build(duck, [
        ("1", datetime(2023, 7, 4, 19, 15), updated, *WEST),
        ("2", datetime(2031, 7, 4, 19, 15), updated, *WEST),
    ])

    assert located["1"]["quarantine_reason"] is None
    assert located["1"]["cell_id"] == "WEST"
    assert located["2"]["quarantine_reason"] == "future_time"
    assert counted_hours(duck) == [datetime(2023, 7, 4, 19)]


def test_spine_ends_at_latest_real_incident(duck: duckdb.DuckDBPyConnection) -> None:
    updated = datetime(2023, 7, 11, 20, 41)
    build(duck, [
        ("1", datetime(2023, 1, 2, 5, 30), updated, *WEST),
        ("2", datetime(2023, 7, 4, 19, 15), updated, *WEST),
        ("3", datetime(2031, 7, 4, 19, 15), updated, *WEST),
        ("4", datetime(2203, 7, 4, 19, 15), updated, *WEST),
    ])

    hours, first, last = spine_range(duck)

    assert first == DATA_START
    assert last == datetime(2023, 7, 4, 19)
    assert hours == (datetime(2023, 7, 4, 19) - DATA_START) // timedelta(hours=1) + 1


def test_place_quarantine_still_sets_spine_end(duck: duckdb.DuckDBPyConnection) -> None:
    updated = datetime(2023, 7, 11, 20, 41)
    located = build(duck, [
        ("1", datetime(2023, 7, 4, 19, 15), updated, *WEST),
        ("2", datetime(2023, 7, 5, 3, 0), updated, None, None),
    ])

    assert located["2"]["quarantine_reason"] == "missing_coordinates"
    assert spine_range(duck)[2] == datetime(2023, 7, 5, 3)


def test_before_data_start_is_quarantined(duck: duckdb.DuckDBPyConnection) -> None:
    updated = datetime(2023, 7, 11, 20, 41)
    located = build(duck, [
        ("1", DATA_START - timedelta(seconds=1), updated, *WEST),
        ("2", DATA_START, updated, *WEST),
        ("3", datetime(2022, 12, 31, 23, 30), updated, *WEST),
    ])

    assert located["1"]["quarantine_reason"] == "before_data_start"
    assert located["2"]["quarantine_reason"] is None
    assert located["3"]["quarantine_reason"] == "before_data_start"
    assert counted_hours(duck) == [DATA_START]
    assert spine_range(duck) == (1, DATA_START, DATA_START)


def test_reference_is_latest_updated_on(duck: duckdb.DuckDBPyConnection) -> None:
    # Every incident lies years in the past, so only the extract's latest updated_on separates 3
    # from 4, and the outcome does not depend on the clock of the run.
    latest_update = datetime(2023, 7, 11, 20, 41)
    tolerance = timedelta(hours=FUTURE_TIME_TOLERANCE_HOURS)
    located = build(duck, [
        ("1", datetime(2023, 7, 4, 19, 15), datetime(2023, 7, 5, 8, 0), *WEST),
        ("2", datetime(2023, 7, 10, 12, 0), latest_update, *WEST),
        ("3", latest_update + tolerance, datetime(2023, 7, 5, 8, 0), *WEST),
        ("4", latest_update + tolerance + timedelta(seconds=1), datetime(2023, 7, 5, 8, 0), *WEST),
    ])

    assert located["1"]["quarantine_reason"] is None
    assert located["2"]["quarantine_reason"] is None
    assert located["3"]["quarantine_reason"] is None
    assert located["4"]["quarantine_reason"] == "future_time"


def test_no_updated_on_uses_run_clock(duck: duckdb.DuckDBPyConnection) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    located = build(duck, [
        ("1", datetime(2023, 7, 4, 19, 15), None, *WEST),
        ("2", now - timedelta(days=2), None, *WEST),
        ("3", now + timedelta(days=30), None, *WEST),
    ])

    assert located["1"]["quarantine_reason"] is None
    assert located["2"]["quarantine_reason"] is None
    assert located["3"]["quarantine_reason"] == "future_time"


def test_mistyped_updated_on_capped_at_clock(duck: duckdb.DuckDBPyConnection) -> None:
    # A 2031 updated_on must not raise the reference to 2031 and let a 2031 incident through.
    located = build(duck, [
        ("1", datetime(2023, 7, 4, 19, 15), datetime(2031, 7, 11, 20, 41), *WEST),
        ("2", datetime(2031, 7, 4, 19, 15), datetime(2023, 7, 11, 20, 41), *WEST),
    ])

    assert located["1"]["quarantine_reason"] is None
    assert located["2"]["quarantine_reason"] == "future_time"


def test_time_reason_wins_over_place(duck: duckdb.DuckDBPyConnection) -> None:
    updated = datetime(2023, 7, 11, 20, 41)
    located = build(duck, [
        ("1", datetime(2031, 7, 4, 19, 15), updated, None, None),
        ("2", datetime(2022, 6, 1, 12, 0), updated, 0.0, 0.0),
        ("3", datetime(2031, 7, 4, 19, 15), updated, WEST[1], WEST[0]),
    ])

    assert located["1"]["quarantine_reason"] == "future_time"
    assert located["1"]["location_status"] == "missing"
    assert located["2"]["quarantine_reason"] == "before_data_start"
    assert located["3"]["quarantine_reason"] == "future_time"
    assert located["3"]["location_status"] == "swapped_repaired"


def test_quarantine_table_names_rule(duck: duckdb.DuckDBPyConnection) -> None:
    updated = datetime(2023, 7, 11, 20, 41)
    build(duck, [
        ("1", datetime(2023, 7, 4, 19, 15), updated, *WEST),
        ("2", datetime(2031, 7, 4, 19, 15), updated, *WEST),
        ("3", datetime(2022, 12, 31, 23, 30), updated, *WEST),
    ])

    rules = dict(duck.execute("select quarantine_reason, quarantine_rule from quarantine_crime_incidents").fetchall())
    staged = duck.execute("select count(*) from stg_crimes__incidents").fetchone()[0]
    located = duck.execute("select count(*) from int_incidents__located where quarantine_reason is null").fetchone()[0]

    assert rules == {"future_time": "time_not_after_extract", "before_data_start": "time_on_or_after_data_start"}
    assert staged == located + len(rules)
