"""Jurisdiction and run files: parsed fields, UTC windows and configuration errors."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from orchestration.jurisdiction import JURISDICTIONS_DIR, ConfigError, load_jurisdiction, load_run_config
from tests.extracts import write_run_file

UTC = timezone.utc
TRAIN = ("2023-01-01", "2023-06-01")
SCORE = ("2023-06-01", "2023-06-04")


def chicago_content() -> dict:
    return yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))


def write_jurisdiction(folder: Path, content: dict) -> Path:
    path = folder / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def jurisdiction_error(folder: Path, content: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        load_jurisdiction(str(write_jurisdiction(folder, content)))
    return str(caught.value)


def run_error(folder: Path, train: tuple[str, str] = TRAIN, score: tuple[str, str] = SCORE,
              **extra: object) -> str:
    path = write_run_file(folder, "demo", None, train, score, **extra)
    with pytest.raises(ConfigError) as caught:
        load_run_config(path)
    return str(caught.value)


# Jurisdiction files.

def test_chicago_fields() -> None:
    config = load_jurisdiction("chicago")

    assert config.name == "chicago"
    assert config.synthetic is False
    assert config.time_zone == "America/Chicago"
    assert config.holiday_subdivision == "IL"
    assert config.data_start == date(2014, 1, 1)
    assert (config.bounding_box.min_lat, config.bounding_box.max_lat) == (41.6, 42.1)
    assert (config.bounding_box.min_lon, config.bounding_box.max_lon) == (-87.95, -87.5)


def test_chicago_crime_mapping() -> None:
    crimes = load_jurisdiction("chicago").crimes

    assert crimes.files == "crimes/chicago_crimes_*.csv*"
    assert crimes.timestamp_format == "%m/%d/%Y %I:%M:%S %p"
    assert crimes.columns["date"] == "Date"
    assert crimes.columns["updated_on"] == "Updated On"
    assert crimes.columns["offense_code"] == "FBI Code"


def test_chicago_weather_and_cells() -> None:
    config = load_jurisdiction("chicago")

    assert config.weather is not None
    assert config.weather.stations[0].utc_offset_hours == -6
    assert config.weather.layouts["lcd_v1"].report_types["FM-15"] == "routine"
    assert config.weather.layouts["lcd_v1"].columns["report_type"] == "REPORTTPYE"
    assert config.cells.spatial_unit == "census_tract"
    assert config.cells.layer == "tracts"
    assert config.boundaries.layer("tracts").id_property == "geoid10"


def test_chicago_partitions_start_utc() -> None:
    start = load_jurisdiction("chicago").partitions_start

    assert start == datetime(2014, 1, 1, tzinfo=UTC)
    assert start.utcoffset() == timedelta(0)


def test_demo_fields() -> None:
    config = load_jurisdiction("demo")

    assert config.synthetic is True
    assert config.data_start == date(2021, 1, 1)
    assert config.crimes.files == "crimes/demo_crimes_*.csv.gz"
    assert config.cells.spatial_unit == "grid_cell"
    assert config.cells.layer == "cells"
    assert config.boundaries.layer("cells").id_property == "cell_id"


def test_demo_partitions_start_utc() -> None:
    start = load_jurisdiction("demo").partitions_start

    assert start == datetime(2021, 1, 1, tzinfo=UTC)
    assert start.utcoffset() == timedelta(0)


def test_audit_defaults() -> None:
    audit = load_jurisdiction("chicago").audit

    assert audit.min_inside_box_share == 0.999
    assert audit.max_quarantined_share == 0.05


def test_load_by_path(tmp_path: Path) -> None:
    content = chicago_content()
    content["name"] = "testcity"

    config = load_jurisdiction(str(write_jurisdiction(tmp_path, content)))

    assert config.name == "testcity"


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ConfigError) as caught:
        load_jurisdiction("gotham")

    assert "unknown jurisdiction 'gotham'" in str(caught.value)
    assert "['chicago', 'demo', 'philadelphia']" in str(caught.value)


def test_missing_path_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown jurisdiction"):
        load_jurisdiction(str(tmp_path / "absent.yaml"))


def test_missing_crime_field(tmp_path: Path) -> None:
    content = chicago_content()
    del content["crimes"]["columns"]["date"]

    message = jurisdiction_error(tmp_path, content)

    assert "no mapping for required fields ['date']" in message


def test_unknown_crime_field(tmp_path: Path) -> None:
    content = chicago_content()
    content["crimes"]["columns"]["block"] = "Block"

    message = jurisdiction_error(tmp_path, content)

    assert "maps unknown fields ['block']" in message


def test_missing_weather_field(tmp_path: Path) -> None:
    content = chicago_content()
    del content["weather"]["layouts"]["lcd_v1"]["columns"]["report_type"]

    message = jurisdiction_error(tmp_path, content)

    assert "'report_type'" in message


def test_error_names_file(tmp_path: Path) -> None:
    content = chicago_content()
    del content["crimes"]["columns"]["date"]

    message = jurisdiction_error(tmp_path, content)

    assert str(tmp_path / "testcity.yaml") in message


@pytest.mark.parametrize(("key", "low", "high"), [("lat", 42.1, 41.6), ("lon", -87.5, -87.95), ("lat", 41.6, 41.6)])
def test_bounding_box_order(tmp_path: Path, key: str, low: float, high: float) -> None:
    content = chicago_content()
    content["bounding_box"][f"min_{key}"] = low
    content["bounding_box"][f"max_{key}"] = high

    message = jurisdiction_error(tmp_path, content)

    assert "bounding box minimums must be below maximums" in message


def test_misspelled_key_rejected(tmp_path: Path) -> None:
    content = chicago_content()
    content["timezone"] = content.pop("time_zone")

    message = jurisdiction_error(tmp_path, content)

    assert "timezone" in message


def test_unknown_spatial_unit(tmp_path: Path) -> None:
    content = chicago_content()
    content["cells"]["spatial_unit"] = "hexagon"

    message = jurisdiction_error(tmp_path, content)

    assert "spatial_unit" in message


# Run files.

def test_windows_parsed_as_utc(tmp_path: Path) -> None:
    config = load_run_config(write_run_file(tmp_path, "demo", None, TRAIN, SCORE))

    assert config.train.start == datetime(2023, 1, 1, tzinfo=UTC)
    assert config.train.end == datetime(2023, 6, 1, tzinfo=UTC)
    assert config.score.start == datetime(2023, 6, 1, tzinfo=UTC)
    assert config.score.start.utcoffset() == timedelta(0)


def test_yaml_dates_are_midnight_utc(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    # Unquoted, so YAML loads them as dates rather than strings.
    path.write_text("jurisdiction: demo\n"
                    "train: {start: 2023-01-01, end: 2023-06-01}\n"
                    "refresh: {period: daily}\n"
                    "score: {start: 2023-06-01, end: 2023-06-04}\n", encoding="utf-8")

    config = load_run_config(path)

    assert config.score.end == datetime(2023, 6, 4, tzinfo=UTC)


def test_offset_converted_to_utc(tmp_path: Path) -> None:
    path = write_run_file(tmp_path, "demo", None, TRAIN, ("2023-06-01T00:00:00-05:00", "2023-06-04T00:00:00-05:00"))

    config = load_run_config(path)

    assert config.score.start == datetime(2023, 6, 1, 5, tzinfo=UTC)
    assert config.score.start.utcoffset() == timedelta(0)


def test_window_hours(tmp_path: Path) -> None:
    config = load_run_config(write_run_file(tmp_path, "demo", None, TRAIN, SCORE))

    assert config.score.hours == 72


def test_score_before_train_end(tmp_path: Path) -> None:
    message = run_error(tmp_path, score=("2023-05-31T23:00:00", "2023-06-04"))

    assert "score window starts 2023-05-31T23:00:00+00:00" in message
    assert "training window ends (2023-06-01T00:00:00+00:00)" in message


def test_score_at_train_end_allowed(tmp_path: Path) -> None:
    config = load_run_config(write_run_file(tmp_path, "demo", None, TRAIN, ("2023-06-01", "2023-06-02")))

    assert config.score.start == config.train.end


@pytest.mark.parametrize("end", ["2023-05-31", "2023-06-01"])
def test_window_end_not_after_start(tmp_path: Path, end: str) -> None:
    message = run_error(tmp_path, score=("2023-06-01", end))

    assert "must be after its start" in message


@pytest.mark.parametrize("start", ["2023-06-01T00:30:00", "2023-06-01T00:00:15", "2023-06-01T00:00:00.500000"],
                         ids=["minute", "second", "microsecond"])
def test_window_whole_hours(tmp_path: Path, start: str) -> None:
    message = run_error(tmp_path, score=(start, "2023-06-04"))

    assert "window bounds must be whole hours" in message


def test_relative_extracts_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    path = write_run_file(runs, "chicago", Path("../extracts"), TRAIN, SCORE)

    config = load_run_config(path)

    assert config.extracts_folder == tmp_path / "extracts"


def test_absolute_extracts_folder_kept(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    path = write_run_file(runs, "chicago", tmp_path / "elsewhere", TRAIN, SCORE)

    config = load_run_config(path)

    assert config.extracts_folder == tmp_path / "elsewhere"


def test_no_extracts_folder(tmp_path: Path) -> None:
    config = load_run_config(write_run_file(tmp_path, "demo", None, TRAIN, SCORE))

    assert config.extracts_folder is None


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("jurisdiction: demo\ntrain: [\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_run_config(path)


@pytest.mark.parametrize("text", ["- demo\n- chicago\n", "demo\n", ""], ids=["list", "scalar", "empty"])
def test_top_level_not_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match="must contain a YAML mapping at the top level"):
        load_run_config(path)


def test_run_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_run_config(tmp_path / "absent.yaml")


def test_unknown_run_key(tmp_path: Path) -> None:
    message = run_error(tmp_path, horizon=72)

    assert "horizon" in message


@pytest.mark.parametrize("coverage", [0, 1.5])
def test_coverage_out_of_range(tmp_path: Path, coverage: float) -> None:
    message = run_error(tmp_path, coverage=coverage)

    assert "coverage must be in (0, 1]" in message


def test_evaluate_defaults_to_score(tmp_path: Path) -> None:
    config = load_run_config(write_run_file(tmp_path, "demo", None, TRAIN, SCORE))

    assert config.evaluate_window == config.score


def test_evaluate_window_explicit(tmp_path: Path) -> None:
    evaluate = {"start": "2023-06-02", "end": "2023-06-03"}
    config = load_run_config(write_run_file(tmp_path, "demo", None, TRAIN, SCORE, evaluate=evaluate))

    assert config.evaluate_window.start == datetime(2023, 6, 2, tzinfo=UTC)
    assert config.evaluate_window.hours == 24


# Offense codes and time basis.

def test_philadelphia_reads_utc_instants_without_revision_time() -> None:
    config = load_jurisdiction("philadelphia")

    assert config.crimes.time_basis == "utc"
    assert config.crimes.columns["date"] == "dispatch_date_time"
    assert "updated_on" not in config.crimes.columns
    assert config.weather is None


def test_offense_codes_map_categories_and_groups() -> None:
    codes = load_jurisdiction("chicago").offense_codes

    assert (codes["03"].category, codes["03"].groups) == ("violent", ["robbery"])
    assert (codes["05"].category, codes["05"].groups) == ("property", ["burglary"])
    assert sorted(code for code, meaning in codes.items() if meaning.category == "violent") == \
        ["01A", "02", "03", "04A", "04B"]


def test_offense_codes_are_trimmed_and_upper_cased(tmp_path: Path) -> None:
    content = chicago_content()
    content["offense_codes"] = {" 04a ": {"offense": "Aggravated assault", "category": "violent"}}

    config = load_jurisdiction(str(write_jurisdiction(tmp_path, content)))

    assert list(config.offense_codes) == ["04A"]


def test_same_code_twice_after_normalising_is_rejected(tmp_path: Path) -> None:
    content = chicago_content()
    content["offense_codes"] = {"04a": {"offense": "a", "category": "violent"},
                                "04A": {"offense": "b", "category": "violent"}}

    assert "lists the same code twice" in jurisdiction_error(tmp_path, content)


def test_empty_offense_codes_are_rejected(tmp_path: Path) -> None:
    content = chicago_content()
    content["offense_codes"] = {}

    assert "offense_codes" in jurisdiction_error(tmp_path, content)


def test_default_targets_are_those_the_mapping_names(tmp_path: Path) -> None:
    content = chicago_content()
    content["offense_codes"] = {"03": {"offense": "Robbery", "category": "violent", "groups": ["robbery"]},
                                "18": {"offense": "Narcotics", "category": "other"}}

    config = load_jurisdiction(str(write_jurisdiction(tmp_path, content)))

    assert config.targets == ["violent", "robbery"]
    assert config.crime_groups == ["other", "robbery", "violent"]


def test_target_missing_from_the_mapping_is_rejected(tmp_path: Path) -> None:
    content = chicago_content()
    content["targets"] = ["violent", "burglary", "arson"]

    message = jurisdiction_error(tmp_path, content)

    assert "targets ['arson']" in message
    assert "offense_codes" in message


def test_group_names_must_be_identifiers(tmp_path: Path) -> None:
    content = chicago_content()
    content["offense_codes"] = {"03": {"offense": "Robbery", "category": "violent", "groups": ["Armed Robbery"]}}

    assert "'Armed Robbery'" in jurisdiction_error(tmp_path, content)


def test_unknown_time_basis_is_rejected(tmp_path: Path) -> None:
    content = chicago_content()
    content["crimes"]["time_basis"] = "gmt"

    message = jurisdiction_error(tmp_path, content)

    assert "time_basis" in message
    assert "'local' or 'utc'" in message


def test_api_without_updated_on_is_rejected(tmp_path: Path) -> None:
    content = chicago_content()
    del content["crimes"]["api"]["columns"]["updated_on"]

    assert "crimes.api.columns has no mapping for updated_on" in jurisdiction_error(tmp_path, content)


def test_offense_code_is_required(tmp_path: Path) -> None:
    content = chicago_content()
    del content["crimes"]["columns"]["offense_code"]

    assert "no mapping for required fields ['offense_code']" in jurisdiction_error(tmp_path, content)


@pytest.mark.parametrize("zone", ["CST", "UTC-6", "America/Chicgo"])
def test_wrong_time_zone_names_the_value(tmp_path: Path, zone: str) -> None:
    content = chicago_content()
    content["time_zone"] = zone

    message = jurisdiction_error(tmp_path, content)

    assert f"time_zone {zone!r} is not an IANA time zone name" in message
