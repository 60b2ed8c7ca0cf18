"""Hourly weather in the dbt warehouse, from small hand-made LCD files: a real Dagster run of the
warehouse job and a real dbt build on DuckDB.

O'Hare (first in the fallback order) reports in the LCD v2 layout, Midway (second) in LCD v1.
Times in the files are Local Standard Time, UTC-6 all year, so every expected UTC hour below is
the LST hour plus 6. The O'Hare rows of 2023-06-10 follow NOAA's pattern in a rain hour: a
synoptic report on the hour, specials with running precipitation totals, then the routine report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.dbt import DBT_PROJECT_DIR, dbt_executable
from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.warehouse import connect, spatial_extension_dir
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction
from tests.weather_server import LCD_V2_HEADER, lcd_csv, lcd_report

ORD = "72530094846"
MDW = "72534014819"
DATA_START = datetime(2023, 3, 11)
# The last crime, 2023-11-06 01:00 CST, ends the hour spine at 07:00 UTC.
LAST_HOUR = datetime(2023, 11, 6, 7)
SPINE_HOURS = int((LAST_HOUR - DATA_START) / timedelta(hours=1)) + 1
CRIMES = [
    crime_row("900101", "ZZ100001", "07/04/2023 02:15:00 PM", "08B", "07/11/2023 03:41:00 PM", "41.879", "-87.658"),
    crime_row("900102", "ZZ100002", "11/06/2023 01:00:00 AM", "06", "11/07/2023 10:00:00 AM", "41.88", "-87.62"),
]


def ord_report(lst: str, report_type: str, temperature: str = "", precipitation: str = "", humidity: str = "",
               direction: str = "", speed: str = "", daily: str = "") -> list[str]:
    """An O'Hare LCD v2 row; a routine report's remark carries its METAR time group (UTC = LST + 6 h)."""
    remark = ""
    if report_type == "FM-15":
        utc = datetime.fromisoformat(lst) + timedelta(hours=6)
        remark = f"MET10{lst[5:7]}/{lst[8:10]}/23 METAR KORD {utc:%d%H%M}Z 23008KT 10SM"
    return lcd_report(ORD, lst, report_type, temperature, precipitation, humidity, direction, speed, daily, remark)


ORD_REPORTS = [
    # Spring forward (2023-03-12): 02:51 LST is a valid standard time although 02:51 CDT does not exist.
    ord_report("2023-03-12T00:51:00", "FM-15", "30", "0.00", "80", "200", "5"),
    ord_report("2023-03-12T01:51:00", "FM-15", "30", "0.00", "80", "200", "5"),
    ord_report("2023-03-12T02:51:00", "FM-15", "31", "0.00", "81", "210", "6"),
    ord_report("2023-03-12T03:51:00", "FM-15", "31", "0.00", "82", "210", "7"),
    ord_report("2023-03-12T04:51:00", "FM-15", "32", "0.00", "82", "220", "7"),
    # Summer: 13:51 LST is 19:51 UTC, the observation of the local hour 14:00 CDT.
    ord_report("2023-07-04T13:51:00", "FM-15", "84", "0.00", "50", "180", "10"),
    # Fall back (2023-11-05): 01:51 LST happens once, although 01:51 local clock time happens twice.
    ord_report("2023-11-04T23:51:00", "FM-15", "46", "0.00", "70", "190", "4"),
    ord_report("2023-11-05T00:51:00", "FM-15", "45", "0.00", "71", "190", "4"),
    ord_report("2023-11-05T01:51:00", "FM-15", "44", "0.00", "72", "190", "4"),
    ord_report("2023-11-05T02:51:00", "FM-15", "43", "0.00", "73", "190", "4"),
    # A rain day.
    ord_report("2023-06-10T13:00:00", "FM-12", "71", "", "55", "200", "9"),
    ord_report("2023-06-10T13:07:00", "FM-16", "70", "0.12", "57", "210", "14"),
    ord_report("2023-06-10T13:31:00", "FM-16", "68", "0.20", "58", "VRB", "5"),
    ord_report("2023-06-10T13:51:00", "FM-15", "67", "0.24", "60", "230", "8"),
    ord_report("2023-06-10T14:51:00", "FM-15", "66s", "T", "62", "240", "7"),
    ord_report("2023-06-10T15:51:00", "FM-15", "66", "0.00", "63", "VRB", "6"),
    # No routine report at 16 LST: the last special gives temperature and wind, not precipitation.
    ord_report("2023-06-10T16:00:00", "FM-12", "60", "", "64", "260", "12"),
    ord_report("2023-06-10T16:20:00", "FM-16", "61", "0.05", "65", "270", "10"),
    ord_report("2023-06-10T16:40:00", "FM-16", "62", "0.08", "66", "280", "11"),
    # Only a synoptic report at 17 LST.
    ord_report("2023-06-10T17:00:00", "FM-12", "59", "", "67", "290", "12"),
    ord_report("2023-06-10T18:51:00", "FM-15", "M", "0.00", "", "300", "5"),
    ord_report("2023-06-10T19:51:00", "FM-15", "57", "0.02s", "70", "310", "4"),
    ord_report("2023-06-10T20:51:00", "FM-15", "56", "0.00", "71", "310", "4"),
    ord_report("2023-06-10T21:51:00", "FM-15", "56", "0.00", "72", "310", "4"),
    ord_report("2023-06-10T22:51:00", "FM-15", "55", "0.00", "73", "310", "4"),
    ord_report("2023-06-10T23:51:00", "FM-15", "55", "0.00", "74", "310", "4"),
    ord_report("2023-06-10T23:59:00", "SOD  ", daily="0.26"),
    # No station reports from 00:51 to 03:51 LST on 2023-06-11.
    ord_report("2023-06-11T04:51:00", "FM-15", "54", "0.00", "75", "320", "3"),
]
MIDWAY_ROWS = [
    "WBAN:14819,CHICAGO MIDWAY,186.5,41.786,-87.752,2023-06-10 13:51,FM-15,69,6O,4,0.30,",
    "WBAN:14819,CHICAGO MIDWAY,186.5,41.786,-87.752,2023-06-10 16:51,FM-15,63,70,9,0.10,",
    "WBAN:14819,CHICAGO MIDWAY,186.5,41.786,-87.752,2023-06-10 18:51,FM-15,58,75,6,0.01,",
    # A station the jurisdiction does not configure.
    "WBAN:99999,ELSEWHERE,100.0,41.0,-88.0,2023-06-10 18:51,FM-15,10,10,1,0.50,",
]


@pytest.fixture(scope="module")
def warehouse_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    folder = tmp_path_factory.mktemp("weather_warehouse")
    extracts = write_extracts(folder / "extracts", CRIMES, MIDWAY_ROWS)
    (extracts / "weather" / "lcd_v2_ord_2023.csv").write_bytes(lcd_csv(LCD_V2_HEADER, ORD_REPORTS))
    jurisdiction = write_test_jurisdiction(folder, DATA_START.date().isoformat())
    content = yaml.safe_load(jurisdiction.read_text(encoding="utf-8"))
    content["weather"]["files"].append({"pattern": "weather/lcd_v2_*.csv", "layout": "lcd_v2"})
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    run_file = write_run_file(folder, jurisdiction, extracts, ("2023-04-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))

    result = build_definitions(run_file, folder / "home").resolve_job_def(WAREHOUSE_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral())

    assert result.success
    return folder / "home" / "testcity" / "warehouse.duckdb", result


@pytest.fixture(scope="module")
def warehouse(warehouse_run: tuple[Path, dg.ExecuteInProcessResult]) -> Path:
    return warehouse_run[0]


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(sql).fetchall()


def hour_row(warehouse: Path, hour: datetime, columns: str) -> tuple:
    rows = query(warehouse, f"SELECT {columns} FROM marts.fct_hourly_weather WHERE hour = TIMESTAMP '{hour}'")
    assert len(rows) == 1
    return rows[0]


# Time basis.

def test_lst_to_utc_uses_fixed_offset(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT observed_at_lst, observed_at_utc FROM staging.stg_weather__observations "
                            "WHERE station = '72530094846' AND (observed_at_lst::DATE IN "
                            "('2023-03-12', '2023-07-04') OR observed_at_lst BETWEEN '2023-11-05' AND '2023-11-05 02:00') "
                            "ORDER BY observed_at_lst")

    assert [(lst.isoformat(" "), utc.isoformat(" ")) for lst, utc in rows] == [
        ("2023-03-12 00:51:00", "2023-03-12 06:51:00"),
        ("2023-03-12 01:51:00", "2023-03-12 07:51:00"),
        ("2023-03-12 02:51:00", "2023-03-12 08:51:00"),
        ("2023-03-12 03:51:00", "2023-03-12 09:51:00"),
        ("2023-03-12 04:51:00", "2023-03-12 10:51:00"),
        ("2023-07-04 13:51:00", "2023-07-04 19:51:00"),
        ("2023-11-05 00:51:00", "2023-11-05 06:51:00"),
        ("2023-11-05 01:51:00", "2023-11-05 07:51:00"),
    ]


def test_spring_forward_has_no_gap(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT hour, temperature_f, weather_missing FROM marts.fct_hourly_weather "
                            "WHERE hour BETWEEN '2023-03-12 05:00' AND '2023-03-12 11:00' ORDER BY hour")

    assert rows == [
        (datetime(2023, 3, 12, 5), None, True),
        (datetime(2023, 3, 12, 6), 30.0, False),
        (datetime(2023, 3, 12, 7), 30.0, False),
        (datetime(2023, 3, 12, 8), 31.0, False),
        (datetime(2023, 3, 12, 9), 31.0, False),
        (datetime(2023, 3, 12, 10), 32.0, False),
        (datetime(2023, 3, 12, 11), None, True),
    ]


def test_fall_back_has_no_duplicate(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT hour, temperature_f FROM marts.fct_hourly_weather "
                            "WHERE hour BETWEEN '2023-11-05 05:00' AND '2023-11-05 08:00' ORDER BY hour")

    assert rows == [(datetime(2023, 11, 5, 5), 46.0), (datetime(2023, 11, 5, 6), 45.0),
                    (datetime(2023, 11, 5, 7), 44.0), (datetime(2023, 11, 5, 8), 43.0)]


def test_minutes_are_kept(warehouse: Path) -> None:
    assert hour_row(warehouse, datetime(2023, 7, 4, 19), "observed_at_utc, temperature_f") == (
        datetime(2023, 7, 4, 19, 51), 84.0)


def test_metar_time_groups_match(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT count(*), count(*) FILTER (WHERE metar_time_matches) "
                            "FROM staging.stg_weather__observations WHERE metar_time_group IS NOT NULL")

    assert rows == [(20, 20)]


def test_one_row_per_spine_hour(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT count(*), count(DISTINCT hour), min(hour), max(hour) FROM marts.fct_hourly_weather")

    assert rows == [(SPINE_HOURS, SPINE_HOURS, DATA_START, LAST_HOUR)]


# One observation per station-hour.

def test_routine_report_chosen(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT hour, report_type, observed_at_utc, reports_in_hour, precipitation_in "
                            "FROM intermediate.int_weather__station_hours WHERE station = '72530094846' "
                            "AND hour BETWEEN '2023-06-10 19:00' AND '2023-06-10 23:00' ORDER BY hour")

    assert rows == [
        (datetime(2023, 6, 10, 19), "FM-15", datetime(2023, 6, 10, 19, 51), 4, 0.24),
        (datetime(2023, 6, 10, 20), "FM-15", datetime(2023, 6, 10, 20, 51), 1, 0.0),
        (datetime(2023, 6, 10, 21), "FM-15", datetime(2023, 6, 10, 21, 51), 1, 0.0),
        (datetime(2023, 6, 10, 22), "FM-16", datetime(2023, 6, 10, 22, 40), 3, None),
        (datetime(2023, 6, 10, 23), "FM-12", datetime(2023, 6, 10, 23, 0), 1, None),
    ]


def test_summary_rows_never_hourly(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT count(*) FROM intermediate.int_weather__station_hours WHERE report_type = 'SOD'")
    staged = query(warehouse, "SELECT report_class FROM staging.stg_weather__observations WHERE report_type = 'SOD'")

    assert rows == [(0,)]
    assert staged == [("summary",)]


def test_one_row_per_station_hour(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT station, count(*), count(DISTINCT hour) FROM intermediate.int_weather__station_hours "
                            "GROUP BY station ORDER BY station")

    assert rows == [(ORD, 22, 22), (MDW, 3, 3)]


# Values and markers.

def test_precipitation_from_routine_report_only(warehouse: Path) -> None:
    row = hour_row(warehouse, datetime(2023, 6, 10, 19),
                   "precipitation_in, temperature_f, wind_direction_deg, wind_speed_mph, station, stations_reporting")

    assert row == (0.24, 67.0, 230.0, 8.0, ORD, 2)


def test_trace_and_suspect(warehouse: Path) -> None:
    row = hour_row(warehouse, datetime(2023, 6, 10, 20),
                   "precipitation_in, precipitation_is_trace, temperature_f, temperature_suspect, is_suspect")

    assert row == (0.0, True, 66.0, True, True)


def test_suspect_precipitation_used(warehouse: Path) -> None:
    row = hour_row(warehouse, datetime(2023, 6, 11, 1), "precipitation_in, precipitation_suspect, precipitation_is_trace")

    assert row == (0.02, True, False)


def test_variable_wind_direction(warehouse: Path) -> None:
    row = hour_row(warehouse, datetime(2023, 6, 10, 21),
                   "wind_direction_deg, wind_variable, wind_direction_station, wind_speed_mph")

    assert row == (None, True, ORD, 6.0)


def test_unparsed_value_counted(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT station, relative_humidity FROM staging.stg_weather__observations "
                            "WHERE has_unparsed_value")

    assert rows == [(MDW, None)]


# Fallback between stations.

def test_special_hour_takes_precipitation_from_next_station(warehouse: Path) -> None:
    row = hour_row(warehouse, datetime(2023, 6, 10, 22), "temperature_f, temperature_station, wind_direction_deg, "
                   "precipitation_in, precipitation_station, fallback_used, station")

    assert row == (62.0, ORD, 280.0, 0.1, MDW, True, ORD)


def test_synoptic_only_hour(warehouse: Path) -> None:
    row = hour_row(warehouse, datetime(2023, 6, 10, 23),
                   "temperature_f, precipitation_in, precipitation_missing, weather_missing, fallback_used")

    assert row == (59.0, None, True, False, False)


def test_fallback_per_variable(warehouse: Path) -> None:
    row = hour_row(warehouse, datetime(2023, 6, 11, 0), "temperature_f, temperature_station, relative_humidity, "
                   "relative_humidity_station, wind_speed_mph, wind_speed_station, precipitation_in, precipitation_station")

    assert row == (58.0, MDW, 75.0, MDW, 5.0, ORD, 0.0, ORD)


def test_first_station_wins_when_both_report(warehouse: Path) -> None:
    row = hour_row(warehouse, datetime(2023, 6, 10, 19), "temperature_station, precipitation_station, fallback_used")

    assert row == (ORD, ORD, False)


# Hours without observations.

def test_hour_range_without_reports_is_missing(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT hour, weather_missing, temperature_f, precipitation_in, station "
                            "FROM marts.fct_hourly_weather "
                            "WHERE hour BETWEEN '2023-06-11 05:00' AND '2023-06-11 10:00' ORDER BY hour")

    assert rows == [
        (datetime(2023, 6, 11, 5), False, 55.0, 0.0, ORD),
        (datetime(2023, 6, 11, 6), True, None, None, None),
        (datetime(2023, 6, 11, 7), True, None, None, None),
        (datetime(2023, 6, 11, 8), True, None, None, None),
        (datetime(2023, 6, 11, 9), True, None, None, None),
        (datetime(2023, 6, 11, 10), False, 54.0, 0.0, ORD),
    ]


def test_coverage_counts_missing_hours(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT station, hours, hours_with_observation, hours_without_observation, "
                            "hours_without_temperature, hours_without_precipitation "
                            "FROM marts.weather_station_coverage ORDER BY station_rank NULLS LAST")

    # O'Hare: 22 hours with a usable report; 21 with temperature (18:51 LST is "M", so 00:00 UTC
    # has none) and 20 with precipitation (not 16 and 17 LST, the special and synoptic hours).
    # Fallback: Midway reports only in hours O'Hare also reports, but fills temperature at 00:00 UTC
    # and precipitation at 22:00 UTC.
    assert rows == [
        (ORD, SPINE_HOURS, 22, SPINE_HOURS - 22, SPINE_HOURS - 21, SPINE_HOURS - 20),
        (MDW, SPINE_HOURS, 3, SPINE_HOURS - 3, SPINE_HOURS - 3, SPINE_HOURS - 3),
        ("WBAN:04807", SPINE_HOURS, 0, SPINE_HOURS, SPINE_HOURS, SPINE_HOURS),
        ("WBAN:04831", SPINE_HOURS, 0, SPINE_HOURS, SPINE_HOURS, SPINE_HOURS),
        ("(fallback)", SPINE_HOURS, 22, SPINE_HOURS - 22, SPINE_HOURS - 22, SPINE_HOURS - 21),
    ]


def test_raw_metadata_counts_left_out_station(warehouse_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    events = [event for event in warehouse_run[1].get_asset_materialization_events()
              if event.asset_key.path == ["raw_weather_observations"]]
    metadata = {name: value.value for name, value in events[0].materialization.metadata.items()}

    assert metadata["dagster/row_count"] == len(ORD_REPORTS) + 3
    assert metadata["rows_of_unconfigured_stations"] == 1
    assert metadata["unconfigured_stations"] == {"WBAN:99999": 1}


# Daily precipitation check.

def test_daily_total_matches_routine_hours(warehouse: Path) -> None:
    rows = query(warehouse, "SELECT station, lst_date, daily_precipitation_in, hourly_precipitation_in, "
                            "hours_without_precipitation, agrees FROM marts.weather_daily_precipitation_check")

    assert len(rows) == 1
    station, day, daily, hourly, without, agrees = rows[0]
    assert (station, day.isoformat(), daily, without, agrees) == (ORD, "2023-06-10", 0.26, 2, True)
    assert hourly == pytest.approx(0.26)


# LST consistency check against the METAR remarks.

def test_metar_check_flags_wrong_offset(warehouse: Path, tmp_path: Path) -> None:
    compiled = (warehouse.parent / "dbt" / "target" / "compiled" / "riskcast" / "tests"
                / "weather_lst_offset_matches_metar.sql").read_text(encoding="utf-8")
    # The compiled SQL names the catalog after the file, so the copy keeps the file name.
    copy = tmp_path / warehouse.name
    shutil.copy(warehouse, copy)

    with connect(copy) as connection:
        before = connection.sql(compiled).fetchall()
        # As if the file were clock time with daylight saving: the remarks are 5 hours after DATE.
        connection.execute("UPDATE raw.weather_observations SET metar_time_group = "
                           "strftime(strptime(date, '%Y-%m-%dT%H:%M:%S') + INTERVAL 5 HOUR, '%d%H%M') "
                           "WHERE metar_time_group IS NOT NULL")
        after = connection.sql(compiled).fetchall()

    assert before == []
    assert after == [(ORD, 20, 20)]


# A jurisdiction without weather.

def test_models_build_without_weather(warehouse: Path, tmp_path: Path) -> None:
    copy = tmp_path / warehouse.name
    shutil.copy(warehouse, copy)
    with connect(copy) as connection:
        connection.execute("DELETE FROM raw.weather_observations")
    environment = os.environ | {"RISKCAST_WAREHOUSE": str(copy), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                                "RISKCAST_DUCKDB_EXTENSION_DIR": str(spatial_extension_dir())}
    variables = {"weather_stations": [], "weather_layouts": [], "data_start": DATA_START.date().isoformat()}

    completed = subprocess.run([
        dbt_executable(), "build", "--select", "stg_weather__observations+", "--vars", json.dumps(variables),
        "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
    ], env=environment, capture_output=True, text=True, check=False)

    assert completed.returncode == 0, completed.stdout[-3000:]
    with connect(copy, read_only=True) as connection:
        mart = connection.sql("SELECT count(*), count(*) FILTER (WHERE weather_missing) "
                              "FROM marts.fct_hourly_weather").fetchall()
        coverage = connection.sql("SELECT station, hours_without_observation FROM marts.weather_station_coverage").fetchall()
    assert mart == [(SPINE_HOURS, SPINE_HOURS)]
    assert coverage == [("(fallback)", SPINE_HOURS)]
