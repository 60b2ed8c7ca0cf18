"""Hourly weather from the real NOAA files: 2017 O'Hare LCD and the 2014 four-station QCLCD extract.

One warehouse run reads both files with the Chicago weather configuration; a two-row crime file
ends the hour spine on the last hour of 2017. Every expected count is recomputed here with
polars from the files themselves, independently of the ingest code and the dbt models.
Skipped when ../shared/data is absent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.jurisdiction import JURISDICTIONS_DIR
from orchestration.warehouse import connect
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

pytestmark = pytest.mark.integration

LCD_FILE = "ohare_lcd_hourly_2017.csv.gz"
QCLCD_FILE = "chicago_qclcd_4stations_2014-01_2014-09.csv.gz"
ORD = "72530094846"
MDW = "72534014819"
STATIONS = [ORD, MDW, "WBAN:04807", "WBAN:04831"]
# How the files spell the configured stations.
SPELLINGS = {"WBAN:94846": ORD, "94846": ORD, "14819": MDW, "4807": "WBAN:04807", "4831": "WBAN:04831"}
FIRST_HOUR = datetime(2014, 1, 1)
# The last crime, 2017-12-31 23:15 CST, ends the hour spine at 2018-01-01 05:00 UTC.
LAST_HOUR = datetime(2018, 1, 1, 5)
CLASSES = {"FM-15": 1, "SY-MT": 1, "AA": 1, "SP": 2, "FM-16": 2, "FM-12": 3}


@pytest.fixture(scope="module")
def weather_folder() -> Path:
    from tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "chicago" / "weather"
    if not (folder / LCD_FILE).is_file() or not (folder / QCLCD_FILE).is_file():
        pytest.skip(f"real NOAA files not found in {folder}; they live in ../shared/data beside the repository")
    return folder


@pytest.fixture(scope="module")
def warehouse_run(weather_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    folder = tmp_path_factory.mktemp("weather_real")
    crimes = [crime_row("900101", "ZZ1", "07/04/2017 02:15:00 PM", "08B", "07/11/2017 03:41:00 PM", "41.879", "-87.658"),
              crime_row("900102", "ZZ2", "12/31/2017 11:15:00 PM", "06", "01/02/2018 10:00:00 AM", "41.88", "-87.62")]
    extracts = write_extracts(folder / "extracts", crimes, [])
    (extracts / "weather" / "ohare_lcd_hourly_2023.csv").unlink()
    for name in (LCD_FILE, QCLCD_FILE):
        (extracts / "weather" / name).symlink_to(weather_folder / name)

    jurisdiction = write_test_jurisdiction(folder, FIRST_HOUR.date().isoformat())
    content = yaml.safe_load(jurisdiction.read_text(encoding="utf-8"))
    chicago = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    content["weather"] = chicago["weather"]
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    run_file = write_run_file(folder, jurisdiction, extracts, ("2017-01-01", "2017-06-01"), ("2017-06-01", "2017-06-02"))

    result = build_definitions(run_file, folder / "home").resolve_job_def(WAREHOUSE_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral())

    assert result.success
    return folder / "home" / "testcity" / "warehouse.duckdb", result


@pytest.fixture(scope="module")
def warehouse(warehouse_run: tuple[Path, dg.ExecuteInProcessResult]) -> Path:
    return warehouse_run[0]


@pytest.fixture(scope="module")
def reports(weather_folder: Path) -> pl.DataFrame:
    """Every report of both files: station id, LST time, trimmed report type and precipitation text."""
    lcd = pl.read_csv(weather_folder / LCD_FILE, infer_schema=False).select(
        pl.col("STATION").alias("station"),
        pl.col("DATE").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M").alias("lst"),
        pl.col("REPORTTPYE").str.strip_chars().alias("report_type"),
        pl.col("HOURLYPrecip").alias("precipitation"),
        pl.col("HOURLYDRYBULBTEMPF").alias("temperature"),
        pl.lit("lcd").alias("file"),
    )
    qclcd = pl.read_csv(weather_folder / QCLCD_FILE, infer_schema=False).select(
        pl.col("wban_code").alias("station"),
        pl.col("datetime").str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S").alias("lst"),
        pl.col("report_type").str.strip_chars().alias("report_type"),
        pl.col("hourly_precip").alias("precipitation"),
        pl.col("drybulb_fahrenheit").alias("temperature"),
        pl.lit("qclcd").alias("file"),
    )
    both = pl.concat([lcd, qclcd])
    return both.with_columns(
        pl.col("station").replace_strict(SPELLINGS),
        (pl.col("lst") + timedelta(hours=6)).dt.truncate("1h").alias("hour"),
        pl.col("report_type").replace_strict(CLASSES, default=None, return_dtype=pl.Int64).alias("class_order"),
    )


@pytest.fixture(scope="module")
def chosen(reports: pl.DataFrame) -> pl.DataFrame:
    """One report per station and UTC hour: the best class, then the latest time, then the later row."""
    usable = reports.with_row_index("row").filter(pl.col("class_order").is_not_null())
    return (usable.sort(["station", "hour", "class_order", "lst", "row"], descending=[False, False, False, True, True])
            .group_by(["station", "hour"], maintain_order=True).first())


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(sql).fetchall()


def mart_hours() -> int:
    return int((LAST_HOUR - FIRST_HOUR) / timedelta(hours=1)) + 1


# Rows in.

def test_rows_in_per_file(warehouse: Path, weather_folder: Path) -> None:
    expected = {LCD_FILE: pl.read_csv(weather_folder / LCD_FILE, infer_schema=False).height,
                QCLCD_FILE: pl.read_csv(weather_folder / QCLCD_FILE, infer_schema=False).height}

    rows = dict(query(warehouse, "SELECT source_file, count(*) FROM raw.weather_observations GROUP BY 1"))

    assert rows == expected
    assert expected == {LCD_FILE: 12910, QCLCD_FILE: 28782}


def test_reports_per_station_and_type(warehouse: Path, reports: pl.DataFrame) -> None:
    expected = {(station, report_type): count for station, report_type, count in
                reports.group_by("station", "report_type").len().iter_rows()}

    rows = query(warehouse, "SELECT station, report_type, count(*) FROM staging.stg_weather__observations GROUP BY ALL")

    assert {(station, report_type): count for station, report_type, count in rows} == expected
    assert expected[(ORD, "FM-15")] == 8752
    assert expected[(ORD, "SOD")] == 365


def test_no_value_left_unparsed(warehouse: Path) -> None:
    assert query(warehouse, "SELECT count(*) FROM staging.stg_weather__observations WHERE has_unparsed_value") == [(0,)]


# Hours out.

def test_mart_has_one_row_per_hour(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT count(*), count(DISTINCT hour), min(hour), max(hour) FROM marts.fct_hourly_weather")

    assert rows == [(mart_hours(), mart_hours(), FIRST_HOUR, LAST_HOUR)]


def test_station_hours_match_rule(warehouse: Path, chosen: pl.DataFrame) -> None:
    expected = {(station, report_type): count for station, report_type, count in
                chosen.group_by("station", "report_type").len().iter_rows()}

    rows = query(warehouse, "SELECT station, report_type, count(*) FROM intermediate.int_weather__station_hours GROUP BY ALL")

    assert {(station, report_type): count for station, report_type, count in rows} == expected


def test_hours_without_observation_per_station(warehouse: Path, chosen: pl.DataFrame) -> None:
    in_range = chosen.filter(pl.col("hour").is_between(FIRST_HOUR, LAST_HOUR))
    expected = {station: mart_hours() - in_range.filter(pl.col("station") == station).height for station in STATIONS}
    expected["(fallback)"] = mart_hours() - in_range["hour"].n_unique()

    rows = dict(query(warehouse, "SELECT station, hours_without_observation FROM marts.weather_station_coverage"))

    assert rows == expected


def test_hours_missing_after_fallback(warehouse: Path, chosen: pl.DataFrame) -> None:
    observed = chosen.filter(pl.col("hour").is_between(FIRST_HOUR, LAST_HOUR))["hour"].n_unique()

    rows = query(warehouse, "SELECT count(*) FILTER (WHERE weather_missing) FROM marts.fct_hourly_weather")

    assert rows == [(mart_hours() - observed,)]


def test_2017_hours_without_ohare_report(warehouse: Path, chosen: pl.DataFrame) -> None:
    start, end = datetime(2017, 1, 1, 6), datetime(2018, 1, 1, 5)
    observed = chosen.filter((pl.col("station") == ORD) & pl.col("hour").is_between(start, end)).height
    hours = int((end - start) / timedelta(hours=1)) + 1

    rows = query(warehouse, "SELECT count(*) FILTER (WHERE weather_missing) FROM marts.fct_hourly_weather "
                            "WHERE hour BETWEEN '2017-01-01 06:00' AND '2018-01-01 05:00'")

    assert rows == [(hours - observed,)]


# Precipitation markers.

def test_2017_trace_and_missing_precipitation_share(warehouse: Path, chosen: pl.DataFrame) -> None:
    ohare = chosen.filter((pl.col("station") == ORD) & (pl.col("hour") >= datetime(2017, 1, 1)))
    routine = pl.col("class_order") == 1
    trace = ohare.filter(routine & (pl.col("precipitation") == "T")).height
    missing = ohare.filter(~routine | pl.col("precipitation").is_null() | (pl.col("precipitation") == "M")).height
    hours = ohare.height

    rows = query(warehouse, "SELECT count(*), count(*) FILTER (WHERE precipitation_is_trace), "
                            "count(*) FILTER (WHERE precipitation_missing) FROM marts.fct_hourly_weather "
                            "WHERE hour >= '2017-01-01' AND NOT weather_missing")

    assert rows == [(hours, trace, missing)]
    assert trace / hours == pytest.approx(0.080, abs=0.001)
    assert missing / hours == pytest.approx(0.0002, abs=0.0002)


def test_2014_trace_values_per_station(warehouse: Path, chosen: pl.DataFrame) -> None:
    in_2014 = chosen.filter((pl.col("hour") < datetime(2015, 1, 1)) & (pl.col("class_order") == 1))
    expected = {station: count for station, count in
                in_2014.filter(pl.col("precipitation") == "0.005").group_by("station").len().iter_rows()}

    rows = query(warehouse, "SELECT station, count(*) FROM intermediate.int_weather__station_hours "
                            "WHERE precipitation_trace AND hour < '2015-01-01' GROUP BY station")

    assert dict(rows) == expected


def test_2014_blank_precipitation_is_zero(warehouse: Path, chosen: pl.DataFrame) -> None:
    blank = chosen.filter((pl.col("hour") < datetime(2015, 1, 1)) & (pl.col("class_order") == 1)
                          & pl.col("precipitation").is_null()).height

    rows = query(warehouse, "SELECT count(*), count(*) FILTER (WHERE precipitation_in = 0.0) "
                            "FROM intermediate.int_weather__station_hours WHERE precipitation_blank")

    assert rows == [(blank, blank)]


def test_2017_suspect_precipitation(warehouse: Path, chosen: pl.DataFrame) -> None:
    ohare = chosen.filter((pl.col("station") == ORD) & (pl.col("hour") >= datetime(2017, 1, 1))
                          & (pl.col("class_order") == 1))
    expected = ohare.filter(pl.col("precipitation").str.ends_with("s")).height

    rows = query(warehouse, "SELECT count(*) FILTER (WHERE precipitation_suspect) FROM marts.fct_hourly_weather "
                            "WHERE hour >= '2017-01-01'")

    assert rows == [(expected,)]
    assert expected == 17


def test_2017_daily_totals_agree(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT count(*), count(*) FILTER (WHERE agrees) FROM marts.weather_daily_precipitation_check")

    assert rows == [(365, 363)]
