"""Weather configuration and the local reader: layouts, repeated columns, stations and bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
import yaml

from orchestration.jurisdiction import JURISDICTIONS_DIR, ConfigError, WeatherSourceConfig, load_jurisdiction
from orchestration.weather_extracts import RAW_WEATHER_COLUMNS, WeatherExtractError, read_weather_files
from tests.weather_server import LCD_V2_HEADER, lcd_csv, lcd_report

ORD = "72530094846"
MDW = "72534014819"
# LCD v1 rows with the real 2017 O'Hare header subset, in its column order.
LCD_V1_HEADER = ("STATION,STATION_NAME,ELEVATION,LATITUDE,LONGITUDE,DATE,REPORTTPYE,HOURLYDRYBULBTEMPF,"
                 "HOURLYRelativeHumidity,HOURLYWindSpeed,HOURLYWindDirection,HOURLYPrecip,DAILYPrecip")
LCD_V1_ROWS = [
    "WBAN:94846,CHICAGO OHARE,201.8,41.995,-87.9336,2017-01-01 00:51,FM-12,23,85,5,250,,",
    "WBAN:94846,CHICAGO OHARE,201.8,41.995,-87.9336,2017-01-01 01:51,FM-15,21,85,0,000,T,",
    "WBAN:94846,CHICAGO OHARE,201.8,41.995,-87.9336,2017-01-01 02:51,FM-15,M,88,5,VRB,0.02s,",
    "WBAN:94846,CHICAGO OHARE,201.8,41.995,-87.9336,2017-01-01 23:59,SOD  ,,,,,,0.02",
]
QCLCD_HEADER = ("wind_speed,sealevel_pressure,old_station_type,station_type,sky_condition,wind_direction,"
                "sky_condition_top,visibility,datetime,wind_direction_cardinal,relative_humidity,hourly_precip,"
                "drybulb_fahrenheit,report_type,dewpoint_fahrenheit,station_pressure,weather_types,"
                "wetbulb_fahrenheit,wban_code")
QCLCD_ROWS = [
    "3,30.09,,11,OVC028,10,OVC028,3,2014-01-31T23:51:00,N,78,0.01,22,AA,16,29.34,,20,94846",
    "0,,,11,OVC036,,OVC036,3,2014-01-31T22:51:00,,81,0.005,21,AA,16,29.35,,20,14819",
    "0,30.11,,11,OVC036,,OVC036,6,2014-01-31T21:51:00,,68,,22,AA,13,29.37,,19,4807",
    "5,30.10,,0,CLR,200,CLR,10,2014-01-31T21:55:00,S,60,,20,AA,12,29.30,,18,99999",
]


@pytest.fixture(scope="module")
def weather() -> WeatherSourceConfig:
    config = load_jurisdiction("chicago").weather
    assert config is not None
    return config


def chicago_weather_content() -> dict:
    return yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))


def write_text(folder: Path, name: str, lines: list[str], compress: bool = False) -> Path:
    path = folder / "weather" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if compress:
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def config_with_files(config: WeatherSourceConfig, pattern: str, layout: str) -> WeatherSourceConfig:
    content = config.model_dump()
    content["files"] = [{"pattern": pattern, "layout": layout}]
    return WeatherSourceConfig(**content)


# Configuration.

def test_chicago_stations_in_fallback_order(weather: WeatherSourceConfig) -> None:
    assert [station.id for station in weather.stations] == [ORD, MDW, "WBAN:04807", "WBAN:04831"]
    assert {station.utc_offset_hours for station in weather.stations} == {-6}


def test_station_spellings_map_to_id(weather: WeatherSourceConfig) -> None:
    ids = weather.station_ids()

    assert ids["WBAN:94846"] == ORD
    assert ids["94846"] == ORD
    assert ids["4807"] == "WBAN:04807"
    assert ids[MDW] == MDW


def test_layout_reference_must_exist(tmp_path: Path) -> None:
    content = chicago_weather_content()
    content["weather"]["files"][0]["layout"] = "lcd_v3"
    path = tmp_path / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")

    with pytest.raises(ConfigError, match=r"weather.files\[0\].layout 'lcd_v3' is not defined"):
        load_jurisdiction(str(path))


def test_shared_alias_rejected(tmp_path: Path) -> None:
    content = chicago_weather_content()
    content["weather"]["stations"][1]["aliases"].append("94846")
    path = tmp_path / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")

    with pytest.raises(ConfigError, match=r"two stations share the ids or aliases \['94846'\]"):
        load_jurisdiction(str(path))


def test_layout_without_routine_type_rejected(tmp_path: Path) -> None:
    content = chicago_weather_content()
    content["weather"]["layouts"]["lcd_v1"]["report_types"] = {"FM-16": "special"}
    path = tmp_path / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")

    with pytest.raises(ConfigError, match="names no routine report type"):
        load_jurisdiction(str(path))


def test_unknown_weather_field_rejected(tmp_path: Path) -> None:
    content = chicago_weather_content()
    content["weather"]["layouts"]["lcd_v1"]["columns"]["station_name"] = "STATION_NAME"
    path = tmp_path / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")

    with pytest.raises(ConfigError, match=r"maps unknown fields \['station_name'\]"):
        load_jurisdiction(str(path))


def test_offset_in_whole_minutes(tmp_path: Path) -> None:
    content = chicago_weather_content()
    content["weather"]["stations"][0]["utc_offset_hours"] = -6.01
    path = tmp_path / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")

    with pytest.raises(ConfigError, match="whole number of minutes"):
        load_jurisdiction(str(path))


# LCD v1 files.

def test_lcd_v1_rows_are_canonical(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    write_text(tmp_path, "ohare_lcd_hourly_2017.csv", [LCD_V1_HEADER, *LCD_V1_ROWS])

    rows = read_weather_files(tmp_path, config_with_files(weather, "weather/ohare_*.csv", "lcd_v1"))

    assert rows.frame.columns == list(RAW_WEATHER_COLUMNS)
    assert rows.frame["station"].to_list() == [ORD] * 4
    assert rows.frame["date"].to_list() == ["2017-01-01 00:51", "2017-01-01 01:51", "2017-01-01 02:51",
                                            "2017-01-01 23:59"]
    assert rows.frame["source_row"].to_list() == [2, 3, 4, 5]
    assert rows.frame["source_file"].to_list() == ["ohare_lcd_hourly_2017.csv"] * 4
    assert rows.frame["layout"].to_list() == ["lcd_v1"] * 4


def test_markers_stay_text(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    write_text(tmp_path, "ohare_lcd_hourly_2017.csv", [LCD_V1_HEADER, *LCD_V1_ROWS])

    frame = read_weather_files(tmp_path, config_with_files(weather, "weather/ohare_*.csv", "lcd_v1")).frame

    assert frame["precipitation_in"].to_list() == [None, "T", "0.02s", None]
    assert frame["temperature_f"].to_list() == ["23", "21", "M", None]
    assert frame["wind_direction"].to_list() == ["250", "000", "VRB", None]
    assert frame["report_type"].to_list() == ["FM-12", "FM-15", "FM-15", "SOD  "]
    assert frame["daily_precipitation_in"].to_list() == [None, None, None, "0.02"]


def test_gzip_matches_plain(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    write_text(tmp_path / "plain", "ohare_lcd_hourly_2017.csv", [LCD_V1_HEADER, *LCD_V1_ROWS])
    write_text(tmp_path / "gzip", "ohare_lcd_hourly_2017.csv.gz", [LCD_V1_HEADER, *LCD_V1_ROWS], compress=True)
    config = config_with_files(weather, "weather/ohare_*.csv*", "lcd_v1")

    plain = read_weather_files(tmp_path / "plain", config).frame
    compressed = read_weather_files(tmp_path / "gzip", config).frame

    assert plain.drop("source_file").equals(compressed.drop("source_file"))


def test_missing_mapped_column_names_file(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    header = LCD_V1_HEADER.replace("HOURLYPrecip", "HOURLYPrecipitation")
    path = write_text(tmp_path, "ohare_lcd_hourly_2017.csv", [header, *LCD_V1_ROWS])

    with pytest.raises(WeatherExtractError) as caught:
        read_weather_files(tmp_path, config_with_files(weather, "weather/ohare_*.csv", "lcd_v1"))

    message = str(caught.value)
    assert str(path) in message
    assert "precipitation_in (column 'HOURLYPrecip')" in message
    assert "weather layout 'lcd_v1'" in message


def test_bad_timestamp_names_row_and_format(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    rows = [LCD_V1_ROWS[0], LCD_V1_ROWS[1].replace("2017-01-01 01:51", "01/01/2017 01:51"), LCD_V1_ROWS[2]]
    path = write_text(tmp_path, "ohare_lcd_hourly_2017.csv", [LCD_V1_HEADER, *rows])

    with pytest.raises(WeatherExtractError) as caught:
        read_weather_files(tmp_path, config_with_files(weather, "weather/ohare_*.csv", "lcd_v1"))

    message = str(caught.value)
    assert f"{path}, row 3, column 'DATE'" in message
    assert "cannot parse '01/01/2017 01:51' with format '%Y-%m-%d %H:%M' (1 such rows)" in message


def test_empty_date_rejected(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    rows = [LCD_V1_ROWS[0], LCD_V1_ROWS[1].replace("2017-01-01 01:51", "")]
    write_text(tmp_path, "ohare_lcd_hourly_2017.csv", [LCD_V1_HEADER, *rows])

    with pytest.raises(WeatherExtractError, match="row 3, column 'DATE': the date is empty"):
        read_weather_files(tmp_path, config_with_files(weather, "weather/ohare_*.csv", "lcd_v1"))


def test_no_matching_file_rejected(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    (tmp_path / "weather").mkdir()

    with pytest.raises(WeatherExtractError, match="no weather files match 'weather/ohare_\\*.csv'"):
        read_weather_files(tmp_path, config_with_files(weather, "weather/ohare_*.csv", "lcd_v1"))


def test_blank_lines_counted(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    blank = ",,,,,,,,,,,,"
    write_text(tmp_path, "ohare_lcd_hourly_2017.csv", [LCD_V1_HEADER, LCD_V1_ROWS[0], blank, LCD_V1_ROWS[1]])

    rows = read_weather_files(tmp_path, config_with_files(weather, "weather/ohare_*.csv", "lcd_v1"))

    assert rows.frame.height == 2
    assert rows.blank_rows == 1
    assert rows.frame["source_row"].to_list() == [2, 4]


# QCLCD (Plenario) files.

def test_qclcd_stations_mapped_and_others_counted(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    write_text(tmp_path, "chicago_qclcd_2014.csv", [QCLCD_HEADER, *QCLCD_ROWS])

    rows = read_weather_files(tmp_path, config_with_files(weather, "weather/chicago_qclcd_*.csv", "qclcd_plenario"))

    assert rows.frame["station"].to_list() == [ORD, MDW, "WBAN:04807"]
    assert rows.frame["precipitation_in"].to_list() == ["0.01", "0.005", None]
    assert rows.frame["date"].to_list() == ["2014-01-31T23:51:00", "2014-01-31T22:51:00", "2014-01-31T21:51:00"]
    assert dict(rows.other_station_rows) == {"99999": 1}


# LCD v2 (the live service's CSV) with repeated REPORT_TYPE and SOURCE columns.

def test_repeated_columns_keep_first(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    body = lcd_csv(LCD_V2_HEADER, [lcd_report(ORD, "2023-06-10T23:59:00", "SOD  ", daily="0.24"),
                                   lcd_report(ORD, "2023-06-10T13:51:00", "FM-15", "67", "0.24",
                                              remark="MET12306/10/23 13:51:02 METAR KORD 101951Z 23008KT")])
    path = tmp_path / "weather" / "lcd_v2.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(body)

    frame = read_weather_files(tmp_path, config_with_files(weather, "weather/lcd_v2.csv", "lcd_v2")).frame

    assert frame["report_type"].to_list() == ["SOD  ", "FM-15"]
    assert frame["daily_precipitation_in"].to_list() == ["0.24", None]
    assert frame["metar_time_group"].to_list() == [None, "101951"]


def test_remark_text_not_stored(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    body = lcd_csv(LCD_V2_HEADER, [lcd_report(ORD, "2023-06-10T13:51:00", "FM-15", "67",
                                              remark="MET12306/10/23 13:51:02 METAR KORD 101951Z 23008KT")])
    path = tmp_path / "weather" / "lcd_v2.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(body)

    frame = read_weather_files(tmp_path, config_with_files(weather, "weather/lcd_v2.csv", "lcd_v2")).frame

    assert "METAR" not in " ".join(str(value) for value in frame.row(0))


def test_differing_repeated_columns_rejected(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    row = lcd_report(ORD, "2023-06-10T13:51:00", "FM-15", "67")
    row[-2] = "FM-16"
    path = tmp_path / "weather" / "lcd_v2.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(lcd_csv(LCD_V2_HEADER, [row]))

    with pytest.raises(WeatherExtractError) as caught:
        read_weather_files(tmp_path, config_with_files(weather, "weather/lcd_v2.csv", "lcd_v2"))

    message = str(caught.value)
    assert "column 'REPORT_TYPE' appears twice and the copies differ on 1 rows" in message
    assert "row 2 ('FM-15' and 'FM-16')" in message


def test_frame_types_are_text(tmp_path: Path, weather: WeatherSourceConfig) -> None:
    write_text(tmp_path, "ohare_lcd_hourly_2017.csv", [LCD_V1_HEADER, *LCD_V1_ROWS])

    frame = read_weather_files(tmp_path, config_with_files(weather, "weather/ohare_*.csv", "lcd_v1")).frame

    assert frame.drop("source_row").dtypes == [pl.String] * (frame.width - 1)
    assert frame["source_row"].dtype == pl.Int64
