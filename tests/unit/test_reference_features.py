"""The fast feature build against its two references: plain pandas and the earlier tool's DuckDB SQL.

``ml.features.build_cell_hour_features`` must give the same values as ``ml.reference_features``
(every panel column) and ``ml.reference_sql`` (its stated subset). The tests compare them on
small synthetic cities and on a real slice of Chicago 2017: the 801 census tracts, four weeks of
incidents before a three-day window, and the O'Hare hourly weather. The real slice is read straight from the
portal and NOAA files with polars and shapely, without the warehouse, and is skipped when
../shared/data is absent.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import polars as pl
import pyproj
import pytest
import shapely

from ml.feature_registry import FeatureLayout, panel_schema
from ml.features import LOOKBACK_HOURS, WEATHER_LOOKBACK_HOURS, FeatureInputs, build_cell_hour_features
from ml.reference_features import pandas_cell_hour_features
from ml.reference_sql import sql_cell_hour_features, sql_columns
from tests.conftest import SHARED_DATA

UTC = timezone.utc
LAYOUT = FeatureLayout(targets=("violent", "robbery"), groups=("other", "property", "robbery", "violent"),
                       categories=("other", "property", "violent"),
                       request_types=("graffiti", "sanitation_code"), data_start=date(2020, 2, 9))
# Float columns are stored as float32, so the references agree to float32 precision.
RELATIVE_TOLERANCE = 1e-5
ABSOLUTE_TOLERANCE = 1e-4
WINDOWS = {
    # Daylight saving time starts on 2020-03-08 in Chicago, and data_start (2020-02-09) is 28 days
    # before the middle of the window, so history_incomplete turns false inside it.
    "dst": (datetime(2020, 3, 6, tzinfo=UTC), datetime(2020, 3, 10, tzinfo=UTC)),
    # Martin Luther King Jr. Day is 2020-01-20, and data_start is after the window.
    "holiday": (datetime(2020, 1, 18, 12, tzinfo=UTC), datetime(2020, 1, 21, 6, tzinfo=UTC)),
}


def grid_city(rng: np.random.Generator, first: datetime, end: datetime) -> FeatureInputs:
    """A 3 x 4 grid plus one isolated cell, with random incidents, gappy weather and gappy 311 days."""
    cells = [f"G{row}{column}" for row in range(3) for column in range(4)] + ["Z_isolated"]
    pairs = [(f"G{row}{column}", f"G{row + dr}{column + dc}")
             for row in range(3) for column in range(4) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
             if (dr or dc) and 0 <= row + dr < 3 and 0 <= column + dc < 4]
    pairs += [("G00", "G00"), ("G00", "G01"), ("G11", "not_a_cell")]
    hours = pd.date_range(first, end, freq="h", inclusive="left", unit="us")

    n_incidents = 900
    incidents = pl.DataFrame({
        "cell_id": rng.choice(cells, n_incidents),
        "hour": pd.Series(hours[rng.integers(0, len(hours), n_incidents)]),
        "crime_group": rng.choice(["other", "property", "violent", "unknown", "stray_group"], n_incidents),
        "incidents": rng.integers(1, 3, n_incidents),
    })
    robberies = incidents.filter(pl.col("crime_group") == "violent").head(80) \
        .with_columns(pl.lit("robbery").alias("crime_group"))
    counts = pl.concat([incidents, robberies]).group_by("cell_id", "hour", "crime_group").agg(pl.col("incidents").sum())

    n_hours = len(hours)
    precipitation = np.where(rng.random(n_hours) < 0.15, rng.exponential(0.05, n_hours), 0.0)
    weather = pl.DataFrame({
        "hour": pd.Series(hours),
        "temperature_f": rng.normal(40, 10, n_hours),
        "precipitation_in": precipitation,
        "relative_humidity": rng.uniform(30, 95, n_hours),
        "wind_speed_mph": rng.gamma(2.0, 5.0, n_hours),
        "precipitation_is_trace": rng.random(n_hours) < 0.05,
    })
    # Drop a run of 40 hours (longer than a day, so some precipitation windows are missing)
    # and a scatter of single hours, and blank single values.
    kept_hours = np.ones(n_hours, dtype=bool)
    kept_hours[n_hours - 130:n_hours - 90] = False
    kept_hours[rng.random(n_hours) < 0.05] = False
    weather = weather.filter(pl.Series(kept_hours)).with_columns(
        pl.when(pl.Series(rng.random(int(kept_hours.sum())) < 0.05)).then(None).otherwise(pl.col("temperature_f"))
        .alias("temperature_f"))

    days = pd.date_range(first.date() - timedelta(days=2), end.date() + timedelta(days=1), freq="D")
    quiet_days = set(days[rng.choice(len(days), 3, replace=False)].date)
    rows = [(cell, day.date(), kind, int(rng.integers(1, 4)))
            for day in days if day.date() not in quiet_days
            for cell in cells for kind in ("graffiti", "sanitation_code", "pothole") if rng.random() < 0.3]
    requests = pl.DataFrame(rows, schema={"cell_id": pl.String, "local_date": pl.Date, "request_type": pl.String,
                                          "requests": pl.Int64}, orient="row")

    population = [float(value) for value in rng.uniform(500, 5000, len(cells))]
    population[3] = population[7] = None
    cells_frame = pl.DataFrame({"cell_id": cells, "area_km2": rng.uniform(0.5, 2.0, len(cells)),
                                "population": population})
    return FeatureInputs(cells_frame, pl.DataFrame(pairs, schema=["cell_id", "neighbour_id"], orient="row"),
                         counts, weather, requests)


def window_inputs(name: str) -> tuple[FeatureInputs, datetime, datetime]:
    start, end = WINDOWS[name]
    first = start - timedelta(hours=max(LOOKBACK_HOURS, WEATHER_LOOKBACK_HOURS))
    return grid_city(np.random.default_rng(11), first, end), start, end


def mismatches(fast: pl.DataFrame, reference: pl.DataFrame, columns: list[str]) -> list[str]:
    """Describe every column whose values differ, with its first differing row."""
    problems = []
    for name in columns:
        if name == "cell_id":
            same = np.array(fast[name].to_list()) == np.array(reference[name].to_list())
        elif name == "hour":
            same = fast[name].dt.epoch("us").to_numpy() == reference[name].dt.epoch("us").to_numpy()
        else:
            ours = fast[name].cast(pl.Float64).to_numpy()
            theirs = reference[name].cast(pl.Float64).to_numpy()
            same = np.isclose(ours, theirs, rtol=RELATIVE_TOLERANCE, atol=ABSOLUTE_TOLERANCE)
        if not same.all():
            row = int(np.argmin(same))
            problems.append(f"{name}: {int((~same).sum())} rows differ, first at {fast['cell_id'][row]} "
                            f"{fast['hour'][row]}: {fast[name][row]} != {reference[name][row]}")
    return problems


@pytest.fixture(scope="module", params=sorted(WINDOWS))
def synthetic_builds(request: pytest.FixtureRequest) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    inputs, start, end = window_inputs(request.param)
    fast = build_cell_hour_features(inputs, LAYOUT, start, end, "America/Chicago", "US", "IL")
    reference = pl.from_pandas(pandas_cell_hour_features(inputs, LAYOUT, start, end, "America/Chicago", "US", "IL"))
    sql = sql_cell_hour_features(inputs, LAYOUT, start, end)
    return fast, reference, sql


def test_pandas_matches_every_column(synthetic_builds: tuple[pl.DataFrame, ...]) -> None:
    fast, reference, _ = synthetic_builds

    assert reference.columns == list(panel_schema(LAYOUT))
    assert reference.height == fast.height
    assert mismatches(fast, reference, fast.columns) == []


def test_sql_matches_its_columns(synthetic_builds: tuple[pl.DataFrame, ...]) -> None:
    fast, _, sql = synthetic_builds

    assert sql.columns == sql_columns(LAYOUT)
    assert sql.height == fast.height
    assert mismatches(fast, sql, sql.columns) == []


def test_synthetic_slice_exercises_cases(synthetic_builds: tuple[pl.DataFrame, ...]) -> None:
    """Each kind of value the comparison relies on occurs, so equality is not between two empty columns."""
    fast, _, _ = synthetic_builds

    assert fast["violent_1d"].sum() > 0
    assert fast["robbery_28d"].sum() > 0
    assert fast["label_violent"].sum() > 0
    assert fast["hours_since_violent"].n_unique() > 10
    assert fast["nbr_violent_1d_missing"].any()
    assert fast["nbr_violent_7d"].n_unique() > 10
    assert fast["temperature_f_missing"].any()
    assert fast["temperature_change_1d_missing"].any()
    assert fast["precipitation_hours_1d"].n_unique() > 3
    assert fast["hours_since_precipitation"].n_unique() > 3
    assert fast["requests_graffiti_7d"].sum() > 0
    assert fast["requests_sanitation_code_1d_missing"].any()
    assert fast["population_missing"].any()


def test_windows_cover_dst_and_holiday() -> None:
    dst_inputs, dst_start, dst_end = window_inputs("dst")
    holiday_inputs, holiday_start, holiday_end = window_inputs("holiday")

    dst = build_cell_hour_features(dst_inputs, LAYOUT, dst_start, dst_end, "America/Chicago", "US", "IL")
    holiday = build_cell_hour_features(holiday_inputs, LAYOUT, holiday_start, holiday_end, "America/Chicago",
                                       "US", "IL")

    assert dst["history_incomplete"].n_unique() == 2
    assert dst.filter(pl.col("cell_id") == "G00")["local_hour"].value_counts().height == 24
    assert holiday["is_holiday"].n_unique() == 2


# The real slice: Chicago 2017.

REAL_START = datetime(2017, 3, 10, 6, tzinfo=UTC)
REAL_END = datetime(2017, 3, 13, 6, tzinfo=UTC)
CHICAGO_LAYOUT = FeatureLayout(targets=("violent", "robbery", "property"),
                               groups=("other", "property", "robbery", "violent"),
                               categories=("other", "property", "violent"), request_types=(),
                               data_start=date(2014, 1, 1))
LCD_STANDARD_OFFSET = timedelta(hours=-6)
TO_EQUAL_AREA = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True).transform


def read_tracts() -> tuple[list[str], list[shapely.Geometry]]:
    path = SHARED_DATA / "chicago" / "boundaries" / "census_tracts_2010.geojson"
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    return ([feature["properties"]["geoid10"] for feature in features],
            [shapely.geometry.shape(feature["geometry"]) for feature in features])


def tract_cells(names: list[str], shapes: list[shapely.Geometry]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Tracts as cells (equal-area km², population unknown) and their queen-contiguity pairs."""
    areas = [shapely.transform(shape, TO_EQUAL_AREA, interleaved=False).area / 1e6 for shape in shapes]
    cells = pl.DataFrame({"cell_id": names, "area_km2": areas, "population": [None] * len(names)},
                         schema={"cell_id": pl.String, "area_km2": pl.Float64, "population": pl.Float64})
    tree = shapely.STRtree(shapes)
    first, second = tree.query(shapes, predicate="intersects")
    pairs = pl.DataFrame({"cell_id": np.array(names)[first], "neighbour_id": np.array(names)[second]})
    return cells, pairs.filter(pl.col("cell_id") != pl.col("neighbour_id"))


def read_crime_counts(names: list[str], shapes: list[shapely.Geometry]) -> pl.DataFrame:
    """Incidents per tract, UTC hour and crime group, from the 2017 portal file and the Chicago offense codes."""
    from orchestration.jurisdiction import load_jurisdiction

    codes = load_jurisdiction("chicago").offense_codes
    group_rows = [(code, group) for code, spec in codes.items() for group in {spec.category, *spec.groups}]
    groups = pl.DataFrame(group_rows, schema=["FBI Code", "crime_group"], orient="row")

    path = SHARED_DATA / "chicago" / "crimes" / "chicago_crimes_2017.csv.gz"
    columns = ["Case Number", "Date", "FBI Code", "Latitude", "Longitude"]
    rows = pl.read_csv(path, columns=columns, infer_schema=False).with_columns(
        pl.col("Date").str.strptime(pl.Datetime("us"), "%m/%d/%Y %I:%M:%S %p")
        .dt.replace_time_zone("America/Chicago", ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC").dt.truncate("1h").alias("hour"),
        pl.col("Latitude").cast(pl.Float64), pl.col("Longitude").cast(pl.Float64))
    first = REAL_START - timedelta(hours=LOOKBACK_HOURS)
    rows = rows.filter(pl.col("hour").is_between(first, REAL_END, closed="left")).drop_nulls(
        ["hour", "Latitude", "Longitude"])

    points = shapely.points(rows["Longitude"].to_numpy(), rows["Latitude"].to_numpy())
    point_index, tract_index = shapely.STRtree(shapes).query(points, predicate="within")
    located = rows[point_index.tolist()].with_columns(pl.Series("cell_id", np.array(names)[tract_index]))
    return (located.join(groups, on="FBI Code", how="left")
            .with_columns(pl.col("crime_group").fill_null("unknown"))
            .group_by("cell_id", "hour", "crime_group").agg(pl.col("Case Number").n_unique().alias("incidents")))


def number(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars_end("s").cast(pl.Float64, strict=False)


def read_weather() -> pl.DataFrame:
    """Read O'Hare's routine hourly reports (FM-15) of 2017, one per UTC hour. Station times are UTC-6 all year."""
    path = SHARED_DATA / "chicago" / "weather" / "ohare_lcd_hourly_2017.csv.gz"
    columns = ["DATE", "REPORTTPYE", "HOURLYDRYBULBTEMPF", "HOURLYPrecip", "HOURLYRelativeHumidity",
               "HOURLYWindSpeed"]
    rows = pl.read_csv(path, columns=columns, infer_schema=False).filter(pl.col("REPORTTPYE") == "FM-15")
    standard = pl.col("DATE").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M")
    return rows.select(
        (standard - LCD_STANDARD_OFFSET).dt.replace_time_zone("UTC").dt.truncate("1h").alias("hour"),
        number("HOURLYDRYBULBTEMPF").alias("temperature_f"),
        pl.when(pl.col("HOURLYPrecip") == "T").then(0.0).otherwise(number("HOURLYPrecip")).alias("precipitation_in"),
        number("HOURLYRelativeHumidity").alias("relative_humidity"),
        number("HOURLYWindSpeed").alias("wind_speed_mph"),
        (pl.col("HOURLYPrecip") == "T").alias("precipitation_is_trace"),
    ).unique("hour", keep="first", maintain_order=True).sort("hour")


@pytest.fixture(scope="module")
def chicago_builds() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    if not (SHARED_DATA / "chicago" / "crimes" / "chicago_crimes_2017.csv.gz").is_file():
        pytest.skip(f"real Chicago data not found at {SHARED_DATA / 'chicago'}; it lives in ../shared/data "
                    f"beside the repository")
    names, shapes = read_tracts()
    cells, neighbours = tract_cells(names, shapes)
    inputs = FeatureInputs(cells, neighbours, read_crime_counts(names, shapes), read_weather())

    fast = build_cell_hour_features(inputs, CHICAGO_LAYOUT, REAL_START, REAL_END, "America/Chicago", "US", "IL")
    reference = pl.from_pandas(pandas_cell_hour_features(inputs, CHICAGO_LAYOUT, REAL_START, REAL_END,
                                                      "America/Chicago", "US", "IL"))
    sql = sql_cell_hour_features(inputs, CHICAGO_LAYOUT, REAL_START, REAL_END)
    return fast, reference, sql


@pytest.mark.integration
def test_chicago_pandas_matches(chicago_builds: tuple[pl.DataFrame, ...]) -> None:
    fast, reference, _ = chicago_builds

    assert fast.height == 801 * 72
    assert mismatches(fast, reference, fast.columns) == []


@pytest.mark.integration
def test_chicago_sql_matches(chicago_builds: tuple[pl.DataFrame, ...]) -> None:
    fast, _, sql = chicago_builds

    assert sql.height == fast.height
    assert mismatches(fast, sql, sql.columns) == []


@pytest.mark.integration
def test_chicago_slice_has_real_values(chicago_builds: tuple[pl.DataFrame, ...]) -> None:
    fast, _, _ = chicago_builds

    assert fast["property_28d"].sum() > 10_000
    assert fast["label_robbery"].sum() > 20
    assert fast["hours_since_robbery"].n_unique() > 100
    assert fast["nbr_violent_7d"].n_unique() > 100
    assert fast["temperature_f"].n_unique() > 10
    assert fast["temperature_f_missing"].sum() < fast.height // 10
    assert fast["precipitation_hours_7d"].max() > 0
    assert fast["local_hour"].n_unique() == 24
