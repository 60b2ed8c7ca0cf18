"""Property-based tests of time parsing, cell placement, category mapping and feature lags.

The time and placement rules live in dbt SQL, so these tests render the real macros and the
``int_incidents__located`` model with plain Jinja and Chicago's dbt variables. ``ref`` and
``source`` point at hand-made tables in an in-memory DuckDB with the spatial extension. The Python side (``orchestration.revisions.parse_times`` and ``utc_hours``, and
``ml.features``) is called directly.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import jinja2
import numpy as np
import polars as pl
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ml.feature_registry import CRIME_LAG_DAYS
from orchestration.assets.raw import offense_code_frame
from orchestration.dbt import dbt_vars
from orchestration.h3_grid import bounding_box_geometry, h3_grid
from orchestration.ingest import check_timestamps
from orchestration.jurisdiction import BoundingBox, load_jurisdiction
from orchestration.revisions import parse_times, utc_hours
from orchestration.warehouse import open_connection
from tests.feature_inputs import LAYOUT, crime_counts, features

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
CHICAGO = load_jurisdiction("chicago")
VARS = dbt_vars(CHICAGO)
ZONE = ZoneInfo(CHICAGO.time_zone)
UTC = timezone.utc
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# A few kilometres of the Near West Side, well inside Chicago's bounding box.
GRID_BOX = BoundingBox(min_lat=41.86, max_lat=41.885, min_lon=-87.68, max_lon=-87.64)


def render(sql: str, macro_files: tuple[str, ...] = ()) -> str:
    """Render dbt SQL with the project's macros, Chicago's variables and plain table names."""
    macros = "".join((DBT_DIR / "macros" / name).read_text(encoding="utf-8") for name in macro_files)
    template = jinja2.Environment().from_string(macros + sql)
    return template.render(
        var=lambda name, default=None: VARS.get(name, default),
        ref=lambda name: name,
        source=lambda schema, table: f"{schema}.{table}",
        config=lambda **options: "",
    )


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_connection(Path(":memory:"), spatial=True)
    yield connection
    connection.close()


# --- date parser and local time -------------------------------------------------------------

def dst_transitions(year: int) -> tuple[datetime, datetime]:
    """Return the local wall-clock starts of the US spring-forward and fall-back hours (rules since 2007)."""
    march = [day for day in calendar.Calendar().itermonthdates(year, 3) if day.month == 3 and day.weekday() == 6]
    november = [day for day in calendar.Calendar().itermonthdates(year, 11) if day.month == 11 and day.weekday() == 6]
    return (datetime.combine(march[1], datetime.min.time()).replace(hour=2),
            datetime.combine(november[0], datetime.min.time()).replace(hour=1))


@st.composite
def local_times(draw: st.DrawFn) -> datetime:
    """Naive Chicago wall-clock times to the second, half of them within three hours of a DST change."""
    if draw(st.booleans()):
        return draw(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2030, 12, 31)))\
            .replace(microsecond=0)
    spring, fall = dst_transitions(draw(st.integers(2007, 2030)))
    edge = draw(st.sampled_from([spring, fall]))
    return edge + timedelta(seconds=draw(st.integers(-3 * 3600, 3 * 3600)))


def is_nonexistent(local: datetime) -> bool:
    zoned = local.replace(tzinfo=ZONE)
    return zoned.astimezone(UTC).astimezone(ZONE).replace(tzinfo=None) != local


def is_ambiguous(local: datetime) -> bool:
    return (local.replace(tzinfo=ZONE, fold=0).utcoffset() != local.replace(tzinfo=ZONE, fold=1).utcoffset()
            and not is_nonexistent(local))


def expected_utc(local: datetime) -> datetime:
    """Return the staging rule's UTC instant: the earlier of two ambiguous instants, a gap time moved forward."""
    if is_nonexistent(local):
        local = local + timedelta(hours=1)
    return local.replace(tzinfo=ZONE, fold=0).astimezone(UTC).replace(tzinfo=None)


@FAST
@given(st.lists(local_times(), min_size=1, max_size=30))
def test_timestamp_format_round_trips(times: list[datetime]) -> None:
    text = [moment.strftime("%m/%d/%Y %I:%M:%S %p") for moment in times]
    frame = pl.DataFrame({"date": text, "source_row": list(range(2, len(text) + 2))})

    parsed = frame.select(parse_times(pl.col("date"), CHICAGO))["date"].to_list()
    check_timestamps(frame, Path("crimes.csv"), "date", "Date", CHICAGO.crimes.timestamp_format)

    assert parsed == times


@FAST
@given(st.lists(local_times(), min_size=1, max_size=30))
def test_staging_parses_timestamp_format(duck: duckdb.DuckDBPyConnection, times: list[datetime]) -> None:
    text = [moment.strftime("%m/%d/%Y %I:%M:%S %p") for moment in times]
    sql = render("select {{ parse_crime_time('value') }} from unnest(?) as t(value)", ("parse_crime_time.sql",))

    parsed = [row[0] for row in duck.execute(sql, [text]).fetchall()]

    assert parsed == times


@FAST
@given(st.lists(local_times(), min_size=1, max_size=30))
def test_local_utc_local_round_trip(duck: duckdb.DuckDBPyConnection, times: list[datetime]) -> None:
    sql = render(
        "select {{ local_to_utc('ts') }}, {{ utc_to_local(local_to_utc('ts')) }}, "
        "{{ is_ambiguous_local('ts') }}, {{ is_nonexistent_local('ts') }} "
        "from unnest(?::timestamp[]) with ordinality as t(ts, position) order by position",
        ("local_to_utc.sql",))

    rows = duck.execute(sql, [times]).fetchall()

    for local, (utc, back, ambiguous, nonexistent) in zip(times, rows, strict=True):
        assert utc == expected_utc(local), local
        assert ambiguous == is_ambiguous(local), local
        assert nonexistent == is_nonexistent(local), local
        if nonexistent:
            assert back == local + timedelta(hours=1), local
        else:
            assert back == local, local


@FAST
@given(st.lists(local_times(), min_size=1, max_size=30))
def test_ingest_hours_match_staging(duck: duckdb.DuckDBPyConnection, times: list[datetime]) -> None:
    text = [moment.strftime("%m/%d/%Y %I:%M:%S %p") for moment in times]

    hours = utc_hours(pl.Series(text), CHICAGO).to_list()

    assert hours == [expected_utc(local).replace(minute=0, second=0) for local in times]


# --- cell placement and category mapping ----------------------------------------------------

LOCATED_SQL = render((DBT_DIR / "models" / "intermediate" / "int_incidents__located.sql").read_text(encoding="utf-8"))
INCIDENT_COLUMNS = {"incident_id": pl.String, "occurred_at_utc": pl.Datetime("us"),
                    "updated_at_utc": pl.Datetime("us"), "offense_code": pl.String,
                    "latitude": pl.Float64, "longitude": pl.Float64}
BOX = CHICAGO.bounding_box
CODES = sorted(CHICAGO.offense_codes)


@pytest.fixture(scope="module")
def located_db(duck: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Load Chicago's offense codes and an H3 grid over ``GRID_BOX`` into DuckDB as the model's inputs."""
    cells = h3_grid(bounding_box_geometry(GRID_BOX), 8, "center")
    duck.execute("create schema if not exists raw")
    duck.register("code_rows", offense_code_frame(CHICAGO).to_arrow())
    duck.execute("create or replace table raw.offense_codes as select * from code_rows")
    duck.register("cell_rows", cells.to_arrow())
    duck.execute("create or replace table stg_cells as "
                 "select cell_id, ST_GeomFromGeoJSON(geometry_geojson) as geom from cell_rows")
    shapes = {row["cell_id"]: shapely.from_geojson(row["geometry_geojson"]) for row in cells.iter_rows(named=True)}
    return {"cells": shapes, "cover": shapely.union_all(list(shapes.values())), "ids": sorted(shapes)}


def locate(duck: duckdb.DuckDBPyConnection, rows: list[tuple[str, str | None, float | None, float | None]]) -> dict:
    """Run the model on incidents given as (id, offense code, latitude, longitude); return rows by id."""
    incidents = pl.DataFrame(
        [(incident_id, datetime(2024, 1, 1), datetime(2024, 1, 8), code, lat, lon)
         for incident_id, code, lat, lon in rows],
        schema=INCIDENT_COLUMNS, orient="row")
    duck.register("incident_rows", incidents.to_arrow())
    duck.execute("create or replace table stg_crimes__incidents as select * from incident_rows")
    result = duck.execute(LOCATED_SQL).pl()
    assert result["incident_id"].sort().to_list() == incidents["incident_id"].sort().to_list()
    return {row["incident_id"]: row for row in result.iter_rows(named=True)}


inside_point = st.tuples(st.floats(GRID_BOX.min_lat, GRID_BOX.max_lat), st.floats(GRID_BOX.min_lon, GRID_BOX.max_lon))


@FAST
@given(st.lists(inside_point, min_size=1, max_size=25))
def test_point_in_grid_gets_one_cell(duck: duckdb.DuckDBPyConnection, located_db: dict, points: list) -> None:
    rows = [(str(index), "08B", lat, lon) for index, (lat, lon) in enumerate(points)]

    located = locate(duck, rows)

    assert sorted(located) == sorted(row[0] for row in rows)
    for incident_id, _, lat, lon in rows:
        row = located[incident_id]
        point = shapely.Point(lon, lat)
        if located_db["cover"].contains(point):
            assert row["cell_id"] is not None, (lat, lon)
            assert located_db["cells"][row["cell_id"]].intersects(point), (lat, lon)
            assert row["quarantine_reason"] is None
            assert row["location_status"] == "ok"
        elif row["cell_id"] is None:
            assert row["quarantine_reason"] == "outside_cells"


@FAST
@given(st.lists(inside_point, min_size=1, max_size=25))
def test_swapped_point_never_silently_placed(duck: duckdb.DuckDBPyConnection, located_db: dict,
                                             points: list) -> None:
    rows = [(str(index), "08B", lon, lat) for index, (lat, lon) in enumerate(points)]
    straight = locate(duck, [(str(index), "08B", lat, lon) for index, (lat, lon) in enumerate(points)])

    located = locate(duck, rows)

    for incident_id, _, lat, lon in rows:
        row = located[incident_id]
        assert row["coordinates_swapped"] is True
        assert row["location_status"] != "ok"
        if row["cell_id"] is not None:
            assert row["location_status"] == "swapped_repaired"
            assert row["cell_id"] == straight[incident_id]["cell_id"]
            assert (row["located_latitude"], row["located_longitude"]) == (lon, lat)
        else:
            assert row["quarantine_reason"] == "outside_bounding_box"


@FAST
@given(st.data())
def test_point_on_border_gets_smallest_cell(duck: duckdb.DuckDBPyConnection, located_db: dict,
                                            data: st.DataObject) -> None:
    cell_id = data.draw(st.sampled_from(located_db["ids"]))
    ring = list(located_db["cells"][cell_id].exterior.coords)
    corner = data.draw(st.integers(0, len(ring) - 2))
    fraction = data.draw(st.sampled_from([0.0, 0.5]) | st.floats(0.0, 1.0))
    (lon_a, lat_a), (lon_b, lat_b) = ring[corner], ring[corner + 1]
    lon, lat = lon_a + fraction * (lon_b - lon_a), lat_a + fraction * (lat_b - lat_a)
    point = shapely.Point(lon, lat)
    # A point between two corners can round to about 1e-14 degrees outside the grid's outer edge,
    # where no cell takes it. Corners are exact.
    assume(fraction == 0.0 or located_db["cover"].intersects(point))
    touching = sorted(other for other, shape in located_db["cells"].items() if shape.intersects(point))

    row = locate(duck, [("1", "08B", lat, lon)])["1"]

    assert row["quarantine_reason"] is None, (lat, lon)
    assert row["location_status"] == "ok"
    assert located_db["cells"][row["cell_id"]].distance(point) < 1e-9
    if fraction == 0.0:
        assert row["cell_id"] == touching[0], touching


out_of_box = st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))


@FAST
@given(st.lists(out_of_box, min_size=1, max_size=25))
def test_out_of_range_is_quarantined(duck: duckdb.DuckDBPyConnection, located_db: dict, points: list) -> None:
    def in_box(lat: float, lon: float) -> bool:
        return BOX.min_lat <= lat <= BOX.max_lat and BOX.min_lon <= lon <= BOX.max_lon
    points = [(lat, lon) for lat, lon in points if not in_box(lat, lon) and not in_box(lon, lat)]
    assume(points)
    rows = [(str(index), "08B", lat, lon) for index, (lat, lon) in enumerate(points)]

    located = locate(duck, rows)

    for incident_id, *_ in rows:
        assert located[incident_id]["cell_id"] is None
        assert located[incident_id]["quarantine_reason"] in ("zero_coordinates", "outside_bounding_box")
        assert located[incident_id]["location_status"] == "out_of_bounds"


code_text = st.one_of(st.sampled_from(CODES), st.text(alphabet="0123456789ABX ", max_size=4), st.none())


@FAST
@given(st.lists(st.tuples(code_text, inside_point), min_size=1, max_size=40))
def test_categories_account_for_every_row(duck: duckdb.DuckDBPyConnection, located_db: dict, rows: list) -> None:
    incidents = [(str(index), code, lat, lon) for index, (code, (lat, lon)) in enumerate(rows)]

    located = locate(duck, incidents)

    categories = Counter(row["category"] for row in located.values())
    assert sum(categories.values()) == len(incidents)
    for incident_id, code, *_ in incidents:
        meaning = CHICAGO.offense_codes.get(code) if code is not None else None
        assert located[incident_id]["category"] == (meaning.category if meaning else "unknown"), code
        assert located[incident_id]["is_unknown_code"] == (meaning is None), code


# --- feature lags ---------------------------------------------------------------------------

WINDOW_START = datetime(2024, 3, 8, tzinfo=UTC)
WINDOW_END = datetime(2024, 3, 11, tzinfo=UTC)
FIRST_HOUR = WINDOW_START - timedelta(days=max(CRIME_LAG_DAYS))
HOURS = int((WINDOW_END - FIRST_HOUR) / timedelta(hours=1))
CELLS = ["A", "B", "C"]

incident_rows = st.lists(
    st.tuples(st.sampled_from(CELLS), st.integers(0, HOURS - 1), st.sampled_from(LAYOUT.groups), st.integers(1, 3)),
    max_size=40)


def count_frame(rows: list[tuple[str, int, str, int]]) -> pl.DataFrame:
    return crime_counts([(cell, FIRST_HOUR + timedelta(hours=hour), group, incidents)
                         for cell, hour, group, incidents in rows])


@FAST
@given(incident_rows, incident_rows, st.integers(0, int((WINDOW_END - WINDOW_START) / timedelta(hours=1)) - 1))
def test_lags_ignore_hour_and_later(before: list, replacement: list, cut_offset: int) -> None:
    cut = int((WINDOW_START - FIRST_HOUR) / timedelta(hours=1)) + cut_offset
    cut_hour = FIRST_HOUR + timedelta(hours=cut)
    past = [row for row in before if row[1] < cut]
    future = [row for row in replacement if row[1] >= cut]

    original = features(CELLS, count_frame(before), WINDOW_START, WINDOW_END)
    perturbed = features(CELLS, count_frame(past + future), WINDOW_START, WINDOW_END)

    inputs = [name for name in original.columns if not name.startswith("label_")]
    up_to_cut = pl.col("hour") <= cut_hour
    assert original.filter(up_to_cut).select(inputs).equals(perturbed.filter(up_to_cut).select(inputs))


@FAST
@given(incident_rows)
def test_lag_windows_equal_shifted_counts(rows: list) -> None:
    dense = np.zeros((len(LAYOUT.groups), HOURS, len(CELLS)), dtype=np.int64)
    for cell, hour, group, incidents in rows:
        dense[LAYOUT.groups.index(group), hour, CELLS.index(cell)] += incidents

    panel = features(CELLS, count_frame(rows), WINDOW_START, WINDOW_END)

    first_output = int((WINDOW_START - FIRST_HOUR) / timedelta(hours=1))
    for row in panel.iter_rows(named=True):
        k = first_output + int((row["hour"] - WINDOW_START) / timedelta(hours=1))
        cell = CELLS.index(row["cell_id"])
        for position, group in enumerate(LAYOUT.groups):
            for days in CRIME_LAG_DAYS:
                expected = dense[position, max(k - days * 24, 0):k, cell].sum()
                assert row[f"{group}_{days}d"] == expected, (group, days, row["hour"], row["cell_id"])
        assert row["label_violent"] == dense[LAYOUT.groups.index("violent"), k, cell]
