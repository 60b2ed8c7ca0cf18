"""Tests for the synthetic demo jurisdiction writer in ml/demo.

Most checks read one generated year (2022, default 8 x 8 grid and seed) back from the
files, the way ingest would, so they test the written format and not internal arrays.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from ml.demo import DemoSummary, write_demo_extracts

CHICAGO_CRIME_HEADER = (
    "ID,Case Number,Date,Block,IUCR,Primary Type,Description,Location Description,Arrest,"
    "Domestic,Beat,District,Ward,Community Area,FBI Code,X Coordinate,Y Coordinate,"
    "Updated On,Latitude,Longitude"
)
SANITATION_HEADER = (
    "Creation_Date,Status,Completion_Date,Service_Request_Number,Type_of_Service_Request,"
    "What_is_the_Nature_of_this_Code_Violation,Street_Address,ZIP_Code,X_Coordinate,Y_Coordinate,"
    "Ward,Police_District,Community_Area,Latitude,Longitude,Location"
)
NOAA_LCD_HEADER = (
    "STATION,STATION_NAME,ELEVATION,LATITUDE,LONGITUDE,DATE,REPORTTPYE,HOURLYDRYBULBTEMPF,"
    "HOURLYRelativeHumidity,HOURLYWindSpeed,HOURLYPrecip,DAILYPrecip"
)
CHICAGO_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
VIOLENT_CODES = {"01A", "02", "03", "04A", "04B"}
YEAR = 2022
HOURS_IN_YEAR = 365 * 24


@pytest.fixture(scope="module")
def demo_year(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    folder = tmp_path_factory.mktemp("demo_year")
    return write_demo_extracts(folder, start=date(YEAR, 1, 1), end=date(YEAR, 12, 31))


@pytest.fixture(scope="module")
def crimes(demo_year: DemoSummary) -> pd.DataFrame:
    frame = pd.read_csv(demo_year.folder / "crimes" / f"demo_crimes_{YEAR}.csv.gz",
                        dtype=str, keep_default_na=False)
    frame["date"] = pd.to_datetime(frame["Date"], format=CHICAGO_TIME_FORMAT)
    frame["updated"] = pd.to_datetime(frame["Updated On"], format=CHICAGO_TIME_FORMAT)
    return frame


@pytest.fixture(scope="module")
def latest(crimes: pd.DataFrame) -> pd.DataFrame:
    """Keep the latest version of each ID, the rule ingest applies."""
    return crimes.sort_values("updated", kind="stable").drop_duplicates("ID", keep="last")


@pytest.fixture(scope="module")
def violent(latest: pd.DataFrame) -> pd.DataFrame:
    return latest[latest["FBI Code"].isin(VIOLENT_CODES)]


@pytest.fixture(scope="module")
def weather(demo_year: DemoSummary) -> pd.DataFrame:
    return pd.read_csv(demo_year.folder / "weather" / f"demo_lcd_hourly_{YEAR}.csv.gz",
                       dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def sanitation(demo_year: DemoSummary) -> pd.DataFrame:
    return pd.read_csv(demo_year.folder / "311" / f"demo_sanitation_code_complaints_{YEAR}.csv.gz",
                       dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def service_requests(demo_year: DemoSummary) -> pd.DataFrame:
    frame = pd.read_csv(demo_year.folder / "311" / f"demo_311_service_requests_{YEAR}.csv.gz",
                        dtype=str, keep_default_na=False)
    frame["created"] = pd.to_datetime(frame["CREATED_DATE"], format=CHICAGO_TIME_FORMAT)
    frame["modified"] = pd.to_datetime(frame["LAST_MODIFIED_DATE"], format=CHICAGO_TIME_FORMAT)
    return frame


@pytest.fixture(scope="module")
def cells(demo_year: DemoSummary) -> dict:
    return json.loads((demo_year.folder / "boundaries" / "cells.geojson").read_text())


def first_line(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return handle.readline().rstrip("\n")


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def seconds(times: pd.Series) -> np.ndarray:
    return times.to_numpy().astype("datetime64[s]").astype(np.int64)


def next_event_share(event_seconds: np.ndarray, cell_keys: np.ndarray,
                     window_seconds: int) -> float:
    """Share of events followed by another event in the same cell within the window."""
    order = np.lexsort((event_seconds, cell_keys))
    times = event_seconds[order]
    keys = cell_keys[order]
    gap = times[1:] - times[:-1]
    followed = (keys[1:] == keys[:-1]) & (gap > 0) & (gap <= window_seconds)
    return float(followed.sum() / times.size)


# ---------------------------------------------------------------------------
# File layout
# ---------------------------------------------------------------------------


def test_crime_header_matches_chicago_export(demo_year: DemoSummary) -> None:
    path = demo_year.folder / "crimes" / f"demo_crimes_{YEAR}.csv.gz"
    assert first_line(path) == CHICAGO_CRIME_HEADER


def test_lcd_header_matches_noaa_layout(demo_year: DemoSummary) -> None:
    path = demo_year.folder / "weather" / f"demo_lcd_hourly_{YEAR}.csv.gz"
    assert first_line(path) == NOAA_LCD_HEADER


def test_writes_one_file_per_year(tmp_path: Path) -> None:
    write_demo_extracts(tmp_path, start=date(2021, 12, 30), end=date(2022, 1, 2),
                        grid_rows=2, grid_cols=2)

    crime_files = sorted(path.name for path in (tmp_path / "crimes").iterdir())
    weather_files = sorted(path.name for path in (tmp_path / "weather").iterdir())
    request_files = sorted(path.name for path in (tmp_path / "311").iterdir())
    assert crime_files == ["demo_crimes_2021.csv.gz", "demo_crimes_2022.csv.gz"]
    assert weather_files == ["demo_lcd_hourly_2021.csv.gz", "demo_lcd_hourly_2022.csv.gz"]
    assert request_files == ["demo_311_service_requests_2021.csv.gz", "demo_311_service_requests_2022.csv.gz",
                             "demo_sanitation_code_complaints_2021.csv.gz",
                             "demo_sanitation_code_complaints_2022.csv.gz"]


def test_crime_rows_fall_in_their_file_year(crimes: pd.DataFrame) -> None:
    assert (crimes["date"].dt.year == YEAR).all()


def test_summary_matches_files(demo_year: DemoSummary, crimes: pd.DataFrame,
                               violent: pd.DataFrame, sanitation: pd.DataFrame,
                               service_requests: pd.DataFrame) -> None:
    assert demo_year.cell_count == 64
    assert demo_year.service_request_rows == len(sanitation) + len(service_requests)
    assert demo_year.incident_rows == len(crimes)
    assert demo_year.violent_incidents == len(violent)
    assert demo_year.first_day == date(YEAR, 1, 1)
    assert demo_year.last_day == date(YEAR, 12, 31)


# ---------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    arguments = {"seed": 7, "start": date(2022, 3, 1), "end": date(2022, 3, 20)}
    write_demo_extracts(tmp_path / "first", **arguments)
    write_demo_extracts(tmp_path / "second", **arguments)

    first = file_bytes(tmp_path / "first")
    second = file_bytes(tmp_path / "second")
    assert sorted(first) == ["311/demo_311_service_requests_2022.csv.gz",
                             "311/demo_sanitation_code_complaints_2022.csv.gz",
                             "boundaries/cells.geojson", "boundaries/districts.geojson",
                             "crimes/demo_crimes_2022.csv.gz", "demographics/demo_district_demographics.csv",
                             "weather/demo_lcd_hourly_2022.csv.gz"]
    assert first == second


def test_other_seed_writes_other_bytes(tmp_path: Path) -> None:
    span = {"start": date(2022, 3, 1), "end": date(2022, 3, 20)}
    write_demo_extracts(tmp_path / "first", seed=7, **span)
    write_demo_extracts(tmp_path / "second", seed=8, **span)

    first = file_bytes(tmp_path / "first")
    second = file_bytes(tmp_path / "second")
    assert first["crimes/demo_crimes_2022.csv.gz"] != second["crimes/demo_crimes_2022.csv.gz"]
    assert (first["311/demo_311_service_requests_2022.csv.gz"]
            != second["311/demo_311_service_requests_2022.csv.gz"])
    assert (first["weather/demo_lcd_hourly_2022.csv.gz"]
            != second["weather/demo_lcd_hourly_2022.csv.gz"])


def test_rerun_overwrites_and_removes_stale_years(tmp_path: Path) -> None:
    write_demo_extracts(tmp_path / "reused", start=date(2021, 12, 20), end=date(2022, 1, 10))
    write_demo_extracts(tmp_path / "reused", start=date(2022, 1, 1), end=date(2022, 1, 10))
    write_demo_extracts(tmp_path / "fresh", start=date(2022, 1, 1), end=date(2022, 1, 10))

    assert file_bytes(tmp_path / "reused") == file_bytes(tmp_path / "fresh")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"start": date(2022, 2, 1), "end": date(2022, 1, 1)}, "before start"),
        ({"grid_rows": 0}, "at least one cell"),
        ({"grid_rows": 48, "grid_cols": 48}, "at most 99"),
    ],
)
def test_invalid_arguments_raise(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_demo_extracts(tmp_path, **arguments)


def test_single_cell_single_day_runs(tmp_path: Path) -> None:
    summary = write_demo_extracts(tmp_path, start=date(2022, 6, 1), end=date(2022, 6, 1),
                                  grid_rows=1, grid_cols=1)

    assert summary.cell_count == 1
    assert first_line(tmp_path / "crimes" / "demo_crimes_2022.csv.gz") == CHICAGO_CRIME_HEADER


# ---------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------


def test_cells_are_closed_counter_clockwise_squares(cells: dict) -> None:
    assert cells["type"] == "FeatureCollection"
    assert len(cells["features"]) == 64

    for feature in cells["features"]:
        ring = feature["geometry"]["coordinates"][0]
        assert feature["geometry"]["type"] == "Polygon"
        assert ring[0] == ring[-1]
        assert len(ring) == 5
        assert shapely.LinearRing(ring).is_ccw


def test_cells_are_about_500_m_near_latitude_40(cells: dict) -> None:
    ring = np.array(cells["features"][0]["geometry"]["coordinates"][0])
    height_m = (ring[:, 1].max() - ring[:, 1].min()) * 111_320
    width_m = (ring[:, 0].max() - ring[:, 0].min()) * 111_320 * np.cos(np.radians(ring[0, 1]))

    assert 490 < height_m < 510
    assert 490 < width_m < 510
    assert 39.9 < ring[0, 1] < 40.2
    assert -100.1 < ring[0, 0] < -99.8


def test_cell_ids_follow_row_column_pattern(cells: dict) -> None:
    ids = [feature["properties"]["cell_id"] for feature in cells["features"]]

    assert ids[0] == "R00C00"
    assert "R03C05" in ids
    assert len(set(ids)) == 64
    assert all(feature["properties"]["name"] for feature in cells["features"])


def test_cell_coordinates_have_at_most_7_decimals(cells: dict) -> None:
    values = np.array([feature["geometry"]["coordinates"][0] for feature in cells["features"]])
    assert np.array_equal(values, np.round(values, 7))


def test_points_fall_inside_one_cell_per_beat(cells: dict, crimes: pd.DataFrame) -> None:
    located = crimes[crimes["Latitude"] != ""]
    longitude = located["Longitude"].astype(float).to_numpy()
    latitude = located["Latitude"].astype(float).to_numpy()
    ids = np.array([feature["properties"]["cell_id"] for feature in cells["features"]])
    polygons = [shapely.Polygon(feature["geometry"]["coordinates"][0])
                for feature in cells["features"]]
    inside = np.array([shapely.contains_xy(polygon, longitude, latitude) for polygon in polygons])

    assert (inside.sum(axis=0) == 1).all()

    cell_of_point = ids[inside.argmax(axis=0)]
    cells_per_beat = pd.Series(cell_of_point).groupby(located["Beat"].to_numpy()).nunique()
    assert (cells_per_beat == 1).all()
    assert cells_per_beat.size == 64


def test_coordinates_have_6_decimals(crimes: pd.DataFrame) -> None:
    located = crimes[crimes["Latitude"] != ""]
    assert located["Latitude"].str.fullmatch(r"40\.\d{6}").all()
    assert located["Longitude"].str.fullmatch(r"-(100|99)\.\d{6}").all()


def test_x_and_y_coordinates_are_blank(crimes: pd.DataFrame) -> None:
    assert (crimes["X Coordinate"] == "").all()
    assert (crimes["Y Coordinate"] == "").all()


# ---------------------------------------------------------------------------
# Crime fields and time
# ---------------------------------------------------------------------------


def test_dates_use_12_hour_chicago_format(crimes: pd.DataFrame) -> None:
    assert crimes["Date"].str.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d [AP]M").all()
    assert crimes["Updated On"].str.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d [AP]M").all()
    assert crimes["date"].notna().all()


def test_midnight_is_written_as_12_am(crimes: pd.DataFrame) -> None:
    at_midnight = crimes[crimes["date"].dt.hour == 0]
    assert at_midnight["Date"].str.contains(" 12:").all()


def test_updated_on_delay_in_range(crimes: pd.DataFrame) -> None:
    delay = crimes["updated"] - crimes["date"]
    assert delay.min() >= pd.Timedelta(days=1)
    assert delay.max() <= pd.Timedelta(days=60)


def test_no_event_in_spring_forward_hour(crimes: pd.DataFrame) -> None:
    skipped = (crimes["date"].dt.date == date(YEAR, 3, 13)) & (crimes["date"].dt.hour == 2)
    assert not skipped.any()


def test_iucr_maps_to_one_category(crimes: pd.DataFrame) -> None:
    categories = crimes.groupby("IUCR")[["Primary Type", "Description", "FBI Code"]].nunique()
    assert (categories == 1).all().all()
    assert crimes["FBI Code"].isin(VIOLENT_CODES | {"06", "05", "07", "08B", "08A", "14", "26",
                                                      "18"}).all()


def test_admin_codes_have_chicago_widths(crimes: pd.DataFrame) -> None:
    assert crimes["Beat"].str.fullmatch(r"\d{4}").all()
    assert crimes["District"].str.fullmatch(r"\d{3}").all()
    assert crimes["Ward"].str.fullmatch(r"\d{1,2}").all()
    assert crimes["Arrest"].isin(["true", "false"]).all()
    assert crimes["Domestic"].isin(["true", "false"]).all()


def test_case_numbers_use_year_prefix(latest: pd.DataFrame) -> None:
    assert latest["Case Number"].str.fullmatch(r"JF\d{6}").all()


# ---------------------------------------------------------------------------
# Injected data flaws
# ---------------------------------------------------------------------------


def test_some_rows_are_exact_duplicates(crimes: pd.DataFrame) -> None:
    duplicates = crimes.drop(columns=["date", "updated"]).duplicated().sum()
    assert 10 <= duplicates <= 30


def test_revised_ids_change_category(crimes: pd.DataFrame) -> None:
    versions = crimes.drop(columns=["date", "updated"]).drop_duplicates()
    revised = versions[versions["ID"].duplicated(keep=False)]
    per_id = revised.groupby("ID").agg(iucr=("IUCR", "nunique"), updated=("Updated On", "nunique"))

    assert len(per_id) > 0
    assert (per_id["iucr"] == 2).all()
    assert (per_id["updated"] == 2).all()


def test_revised_id_share_is_about_half_percent(crimes: pd.DataFrame,
                                                latest: pd.DataFrame) -> None:
    versions = crimes.drop(columns=["date", "updated"]).drop_duplicates()
    revised_ids = versions["ID"].duplicated().sum()
    assert 0.002 < revised_ids / len(latest) < 0.01


def test_some_rows_lack_coordinates(latest: pd.DataFrame) -> None:
    missing = (latest["Latitude"] == "") & (latest["Longitude"] == "")
    assert 0.003 < missing.mean() < 0.02


def test_some_times_heap_at_midnight(latest: pd.DataFrame) -> None:
    midnight = latest["Date"].str.endswith(" 12:00:00 AM")
    assert 0.005 < midnight.mean() < 0.03


def test_some_times_sit_on_the_hour(latest: pd.DataFrame) -> None:
    on_the_hour = latest["date"].dt.minute == 0
    assert 0.05 < on_the_hour.mean() < 0.2


def test_some_homicides_share_a_case_number(latest: pd.DataFrame) -> None:
    homicides = latest[latest["FBI Code"] == "01A"]
    ids_per_case = homicides.groupby("Case Number")["ID"].nunique()
    assert (ids_per_case == 2).sum() > 0


# ---------------------------------------------------------------------------
# Incident process
# ---------------------------------------------------------------------------


def test_violent_share_is_about_a_quarter(latest: pd.DataFrame, violent: pd.DataFrame) -> None:
    assert 0.20 < len(violent) / len(latest) < 0.30


def test_violent_cell_hour_rate_in_target_band(violent: pd.DataFrame) -> None:
    cell_hours = violent.groupby(["Beat", violent["date"].dt.floor("h")]).size()
    rate = len(cell_hours) / (64 * HOURS_IN_YEAR)
    assert 0.005 <= rate <= 0.01


def test_evening_violence_exceeds_early_morning(violent: pd.DataFrame) -> None:
    by_hour = violent["date"].dt.hour.value_counts().reindex(range(24), fill_value=0)
    evening = by_hour.loc[19:22].mean()
    early_morning = by_hour.loc[5:7].mean()
    assert evening > 1.5 * early_morning


def test_summer_has_more_violence_than_winter(violent: pd.DataFrame) -> None:
    by_month = violent["date"].dt.month.value_counts()
    assert by_month.loc[[6, 7, 8]].sum() > 1.6 * by_month.loc[[12, 1, 2]].sum()


def test_weekend_nights_have_more_violence(violent: pd.DataFrame) -> None:
    late = violent[violent["date"].dt.hour.isin([20, 21, 22, 23])]
    weekend = late["date"].dt.day_of_week.isin([4, 5]).sum() / 2
    weekday = late["date"].dt.day_of_week.isin([0, 1, 2, 3]).sum() / 4
    assert weekend > 1.1 * weekday


def test_violent_rates_differ_between_cells(violent: pd.DataFrame) -> None:
    per_cell = violent["Beat"].value_counts()
    assert per_cell.max() > 3 * per_cell.median()


def test_near_repeats_exceed_shuffled_baseline(violent: pd.DataFrame) -> None:
    event_seconds = seconds(violent["date"])
    cell_keys = violent["Beat"].astype(int).to_numpy()
    window = 48 * 3600
    observed = next_event_share(event_seconds, cell_keys, window)

    rng = np.random.default_rng(0)
    shuffled = np.mean([next_event_share(rng.permutation(event_seconds), cell_keys, window)
                        for _ in range(5)])
    assert observed > shuffled + 0.02


# ---------------------------------------------------------------------------
# Weather
# ---------------------------------------------------------------------------


def test_lcd_rows_use_demo_station(weather: pd.DataFrame) -> None:
    assert (weather["STATION"] == "WBAN:99999").all()
    assert (weather["STATION_NAME"] == "DEMO FIELD STATION").all()
    assert weather["DATE"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d").all()


def test_lcd_keeps_spring_forward_hour(weather: pd.DataFrame) -> None:
    routine = weather[weather["REPORTTPYE"] == "FM-15"]
    on_day = routine[routine["DATE"].str.startswith(f"{YEAR}-03-13 ")]

    assert on_day["DATE"].str.slice(11, 13).nunique() == 24
    assert f"{YEAR}-03-13 02:51" in set(on_day["DATE"])


def test_lcd_routine_reports_at_minute_51(weather: pd.DataFrame) -> None:
    routine = weather[weather["REPORTTPYE"] == "FM-15"]
    assert routine["DATE"].str.endswith(":51").all()
    assert routine["DATE"].is_unique


def test_lcd_has_specials_and_summaries(weather: pd.DataFrame) -> None:
    report_types = set(weather["REPORTTPYE"])
    summaries = weather[weather["REPORTTPYE"] == "SOD"]

    assert report_types == {"FM-15", "FM-16", "SOD"}
    assert len(summaries) == 365
    assert summaries["DATE"].str.endswith(" 23:59").all()
    assert (summaries["HOURLYDRYBULBTEMPF"] == "").all()
    assert (summaries["DAILYPrecip"] != "").all()


def test_lcd_has_report_gaps(weather: pd.DataFrame) -> None:
    routine_count = (weather["REPORTTPYE"] == "FM-15").sum()
    assert HOURS_IN_YEAR - 60 < routine_count < HOURS_IN_YEAR


def test_lcd_precipitation_codes(weather: pd.DataFrame) -> None:
    precip = weather.loc[weather["REPORTTPYE"] == "FM-15", "HOURLYPrecip"]

    assert 0.05 < (precip == "T").mean() < 0.15
    assert 0.15 < (precip == "").mean() < 0.25
    assert precip.str.endswith("s").sum() > 0
    assert precip.str.fullmatch(r"|T|\d\.\d\ds?").all()


def test_lcd_temperatures_are_plausible(weather: pd.DataFrame) -> None:
    routine = weather[weather["REPORTTPYE"] == "FM-15"]
    temperature = pd.to_numeric(routine["HOURLYDRYBULBTEMPF"], errors="coerce")
    month = routine["DATE"].str.slice(5, 7)

    assert 0 < (routine["HOURLYDRYBULBTEMPF"] == "M").sum() < 100
    assert temperature[month == "07"].mean() > temperature[month == "01"].mean() + 30
    assert -30 < temperature.min()
    assert temperature.max() < 115


# ---------------------------------------------------------------------------
# 311 service requests
# ---------------------------------------------------------------------------


def test_sanitation_header_matches_chicago_export(demo_year: DemoSummary) -> None:
    path = demo_year.folder / "311" / f"demo_sanitation_code_complaints_{YEAR}.csv.gz"
    assert first_line(path) == SANITATION_HEADER


def test_sanitation_dates_have_no_time(sanitation: pd.DataFrame) -> None:
    assert sanitation["Creation_Date"].str.fullmatch(rf"{YEAR}-\d\d-\d\d").all()
    assert sanitation["Completion_Date"].str.fullmatch(r"|\d{4}-\d\d-\d\d").all()
    assert (sanitation["Completion_Date"] >= sanitation["Creation_Date"]).where(
        sanitation["Completion_Date"] != "", True).all()


def test_sanitation_statuses_mark_duplicates(sanitation: pd.DataFrame) -> None:
    shares = sanitation["Status"].value_counts(normalize=True)

    assert set(shares.index) == {"Completed", "Completed - Dup", "Open - Dup", "Open"}
    assert 0.02 < shares["Completed - Dup"] < 0.07
    assert (sanitation.loc[sanitation["Status"].str.startswith("Open"), "Completion_Date"] == "").all()


def test_repeated_number_completes_later(sanitation: pd.DataFrame) -> None:
    repeated = sanitation[sanitation["Service_Request_Number"].duplicated(keep=False)]
    pairs = repeated.groupby("Service_Request_Number")["Completion_Date"].agg(["first", "last", "size"])

    assert len(pairs) > 0
    assert (pairs["size"] == 2).all()
    assert (pairs["last"] > pairs["first"]).all()


def test_service_request_types_and_flags(service_requests: pd.DataFrame) -> None:
    assert set(service_requests["SR_TYPE"]) == {"Street Light Out Complaint", "Graffiti Removal Request"}
    assert set(service_requests["DUPLICATE"]) == {"true", "false"}
    assert 0.02 < (service_requests["DUPLICATE"] == "true").mean() < 0.07
    assert service_requests["SR_NUMBER"].str.fullmatch(rf"SR{YEAR % 100}-\d{{8}}").all()


def test_service_request_times_have_hours(service_requests: pd.DataFrame) -> None:
    hours = service_requests["created"].dt.hour

    assert hours.between(6, 22).all()
    assert hours.nunique() == 17
    assert (service_requests["modified"] > service_requests["created"]).all()


def test_stale_version_follows_final_one(service_requests: pd.DataFrame) -> None:
    repeated = service_requests[service_requests["SR_NUMBER"].duplicated(keep=False)]
    versions = repeated.groupby("SR_NUMBER").agg(statuses=("STATUS", list), modified=("modified", list))

    assert len(versions) > 0
    assert all(statuses == ["Completed", "Open"] for statuses in versions["statuses"])
    assert all(modified[0] > modified[1] for modified in versions["modified"])


def test_some_requests_are_unlocated(sanitation: pd.DataFrame, service_requests: pd.DataFrame) -> None:
    latitude = pd.concat([sanitation["Latitude"], service_requests["LATITUDE"]])

    assert 0.004 < (latitude == "").mean() < 0.02
    assert (latitude == "0.000000").sum() > 0
    assert latitude[(latitude != "") & (latitude != "0.000000")].str.fullmatch(r"40\.\d{6}").all()
