"""The extract-files sensor, evaluated with Dagster's test context on a real folder."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.jurisdiction import load_jurisdiction
from orchestration.sensors import build_extracts_sensor, changed_files
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

CHICAGO = load_jurisdiction("chicago")
ROWS = [crime_row("1", "A1", "07/04/2023 12:15:00 AM", "06", "07/11/2023 03:41:00 PM", "41.879", "-87.658")]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    extracts = tmp_path / "extracts"
    write_extracts(extracts, ROWS, [])
    (extracts / "crimes" / "chicago_crimes_2023.csv").rename(extracts / "crimes" / "chicago_crimes_2023.csv.gz")
    return extracts


def tick(folder: Path, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    sensor = build_extracts_sensor(folder, CHICAGO, WAREHOUSE_JOB)
    with dg.instance_for_test() as instance:
        return sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_first_tick_requests_a_run(folder: Path) -> None:
    result = tick(folder, None)

    assert isinstance(result, dg.SensorResult)
    assert len(result.run_requests) == 1
    changed = result.run_requests[0].tags["riskcast/changed_files"]
    assert changed == ("boundaries/census_tracts_2010.geojson, crimes/chicago_crimes_2023.csv.gz, "
                       "weather/ohare_lcd_hourly_2023.csv")


def test_unchanged_folder_is_skipped(folder: Path) -> None:
    first = tick(folder, None)

    second = tick(folder, first.cursor)

    assert isinstance(second, dg.SkipReason)
    assert "no change in the 3 extract files" in second.skip_message


def test_new_file_requests_another_run(folder: Path) -> None:
    first = tick(folder, None)
    (folder / "crimes" / "chicago_crimes_2024.csv.gz").write_bytes(b"ID\n")

    second = tick(folder, first.cursor)

    assert isinstance(second, dg.SensorResult)
    assert second.run_requests[0].tags["riskcast/changed_files"] == "crimes/chicago_crimes_2024.csv.gz"
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_rewritten_file_requests_a_run(folder: Path) -> None:
    first = tick(folder, None)
    path = folder / "crimes" / "chicago_crimes_2023.csv.gz"
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))

    second = tick(folder, first.cursor)

    assert isinstance(second, dg.SensorResult)
    assert second.run_requests[0].tags["riskcast/changed_files"] == "crimes/chicago_crimes_2023.csv.gz"


def test_files_outside_the_patterns_are_ignored(folder: Path) -> None:
    first = tick(folder, None)
    (folder / "crimes" / "notes.txt").write_text("not an extract", encoding="utf-8")

    assert isinstance(tick(folder, first.cursor), dg.SkipReason)


def test_missing_folder_is_skipped_with_the_fix(tmp_path: Path) -> None:
    result = tick(tmp_path / "absent", None)

    assert isinstance(result, dg.SkipReason)
    assert "fix extracts_folder in the run file" in result.skip_message


def test_removed_file_counts_as_changed() -> None:
    assert changed_files({"a.csv": [1, 2], "b.csv": [3, 4]}, {"a.csv": [1, 2]}) == ["b.csv"]


def test_sensor_is_in_the_definitions(tmp_path: Path, folder: Path) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    run_file = write_run_file(tmp_path, jurisdiction, folder, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))

    definitions = build_definitions(run_file, tmp_path / "home")

    sensor = definitions.resolve_sensor_def("testcity_extract_files")
    assert sensor.job_name == WAREHOUSE_JOB
