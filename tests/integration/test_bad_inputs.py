"""The bad-input corpus in ``tests/data/bad_inputs``, run through the real pipeline.

Each case folder contains a small hand-made input file and an ``expected.yaml`` with its outcome.
A case whose outcome is ``error`` runs alone: the raw asset that reads its file is materialized
and must fail with a message that contains every listed substring (file, row, column, fix). A
``blocked`` case also runs alone, through the whole warehouse job, and a blocking audit check
must fail it. The other cases (``accepted`` or ``quarantine``) share one run of the warehouse
job, with every raw asset, the dbt build on DuckDB and the audit checks, because a dbt build
costs several seconds. Each of their files keeps its own name in ``source_file``, so the counts
of one case are read from the shared warehouse without the others' rows. The audit checks of the
shared run see every case at once, so a case lists only the warnings that name it.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.warehouse import connect
from tests.extracts import WEATHER_HEADER, write_run_file, write_test_jurisdiction, write_tracts

pytestmark = pytest.mark.integration

CASES_DIR = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
SOURCES = ("crimes", "weather", "boundaries", "demographics")
OUTCOMES = ("error", "blocked", "accepted", "quarantine")
# The raw assets that read each source. Demographics rows are matched to boundary features, so
# their case reads the boundaries first.
RAW_ASSETS = {
    "crimes": ["raw_crime_incidents"],
    "weather": ["raw_weather_observations"],
    "boundaries": ["raw_boundaries"],
    "demographics": ["raw_boundaries", "raw_demographics"],
}
BASE_WEATHER_ROW = "WBAN:94846,OHARE,201.8,41.995,-87.9336,2023-07-04 07:51,FM-15,70,80,5,0.00,"
# The column mapping that every demographics case file follows: counts per tract of the base city.
DEMOGRAPHICS_COLUMNS = {
    "population": "Total",
    "nh_white": "White alone not Hispanic",
    "nh_black": "Black alone not Hispanic",
    "nh_asian": "Asian alone not Hispanic",
    "hispanic": "Hispanic or Latino",
}


@dataclass(frozen=True)
class BadInputCase:
    """One case folder: its source, input file and the outcome that ``expected.yaml`` states."""

    name: str
    folder: Path
    expected: dict

    @property
    def source(self) -> str:
        return self.expected["source"]

    @property
    def outcome(self) -> str:
        return self.expected["outcome"]

    def placed_name(self) -> str:
        """Return the case's file name in the extracts folder, which raw rows keep as ``source_file``."""
        if self.source == "crimes":
            return f"{self.name}.csv.gz" if "gzip_keep_bytes" in self.expected else f"{self.name}.csv"
        if self.source == "weather":
            return f"ohare_lcd_hourly_{self.name}.csv"
        if self.source == "boundaries":
            return "census_tracts_2010.geojson"
        return f"{self.name}.csv"


def load_cases() -> list[BadInputCase]:
    cases = []
    for folder in sorted(path for path in CASES_DIR.iterdir() if path.is_dir()):
        expected = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
        cases.append(BadInputCase(folder.name, folder, expected))
    return cases


CASES = load_cases()
ERROR_CASES = [case for case in CASES if case.outcome == "error"]
BLOCKED_CASES = [case for case in CASES if case.outcome == "blocked"]
RUN_CASES = [case for case in CASES if case.outcome in ("accepted", "quarantine")]


def place_case(case: BadInputCase, extracts: Path) -> None:
    """Copy the case's input into the extracts folder where the jurisdiction file looks for it."""
    source = case.folder / case.expected["input"]
    # Each source's files sit in a folder of the same name, as the test jurisdiction's patterns expect.
    target = extracts / case.source / case.placed_name()
    target.parent.mkdir(parents=True, exist_ok=True)

    if "gzip_keep_bytes" in case.expected:
        # A download cut short: a valid gzip stream that ends after the given number of bytes.
        compressed = gzip.compress(source.read_bytes())
        assert len(compressed) > case.expected["gzip_keep_bytes"]
        target.write_bytes(compressed[:case.expected["gzip_keep_bytes"]])
    else:
        shutil.copyfile(source, target)


def write_base_city(folder: Path, cases: list[BadInputCase]) -> Path:
    """Write the base extracts (two tracts, one weather report), place the cases, return the run file."""
    extracts = folder / "extracts"
    write_tracts(extracts / "boundaries" / "census_tracts_2010.geojson")
    (extracts / "weather").mkdir(parents=True, exist_ok=True)
    (extracts / "weather" / "ohare_lcd_hourly_base.csv").write_text(
        f"{WEATHER_HEADER}\n{BASE_WEATHER_ROW}\n", encoding="utf-8")
    (extracts / "crimes").mkdir(parents=True, exist_ok=True)
    for case in cases:
        place_case(case, extracts)

    jurisdiction = write_test_jurisdiction(folder, "2023-01-01")
    content = yaml.safe_load(jurisdiction.read_text(encoding="utf-8"))
    content["crimes"]["files"] = "crimes/*.csv*"
    demographics = [case for case in cases if case.source == "demographics"]
    if demographics:
        content["demographics"] = {"counts_layer": "tracts", "tables": [
            {"name": case.name, "file": f"demographics/{case.placed_name()}", "layer": "tracts",
             "id_column": "GEOID", "columns": DEMOGRAPHICS_COLUMNS} for case in demographics]}
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    return write_run_file(folder, jurisdiction, extracts, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))


@dataclass(frozen=True)
class WarehouseRun:
    warehouse: Path
    result: dg.ExecuteInProcessResult


def run_warehouse_job(folder: Path, cases: list[BadInputCase]) -> WarehouseRun:
    """Run the warehouse job (raw assets, dbt build, audit checks) on the base city plus the cases."""
    run_file = write_base_city(folder, cases)
    definitions = build_definitions(run_file, folder / "home")
    result = definitions.resolve_job_def(WAREHOUSE_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    return WarehouseRun(folder / "home" / "testcity" / "warehouse.duckdb", result)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> WarehouseRun:
    """Run the warehouse job once over every case that should neither fail nor be blocked."""
    run = run_warehouse_job(tmp_path_factory.mktemp("bad_inputs"), RUN_CASES)

    assert run.result.success, f"the shared run failed: {failure_messages(run.result)}"
    return run


def run_raw_assets(case: BadInputCase, folder: Path) -> dg.ExecuteInProcessResult:
    """Materialize only the raw assets that read the case's source, on the base city plus the case."""
    run_file = write_base_city(folder, [case])
    definitions = build_definitions(run_file, folder / "home")
    job = definitions.resolve_implicit_global_asset_job_def()
    selection = [dg.AssetKey(name) for name in RAW_ASSETS[case.source]]
    return job.execute_in_process(asset_selection=selection, instance=dg.DagsterInstance.ephemeral(),
                                  raise_on_error=False)


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Collect the message of every failed step, with the messages of the errors that caused it."""
    messages = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.step_failure_data.error
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return messages


def scalar(warehouse: Path, sql: str, parameters: list) -> object:
    with connect(warehouse, read_only=True) as connection:
        return connection.execute(sql, parameters).fetchone()[0]


def rows(warehouse: Path, sql: str, parameters: list) -> list[tuple]:
    with connect(warehouse, read_only=True) as connection:
        return connection.execute(sql, parameters).fetchall()


def crime_counts(warehouse: Path, source_file: str) -> dict:
    """Count the rows of one crime file at each step, under the keys that ``expected.yaml`` uses."""
    where = [source_file]
    quarantined = rows(warehouse, "SELECT quarantine_reason, count(*) FROM marts.quarantine_crime_incidents "
                                  "WHERE source_file = ? GROUP BY ALL ORDER BY ALL", where)
    with_id = scalar(warehouse, "SELECT count(*) FROM raw.crime_incidents "
                                "WHERE source_file = ? AND nullif(trim(id), '') IS NOT NULL", where)
    staged = scalar(warehouse, "SELECT count(*) FROM staging.stg_crimes__incidents WHERE source_file = ?", where)
    return {
        "raw_rows": scalar(warehouse, "SELECT count(*) FROM raw.crime_incidents WHERE source_file = ?", where),
        "raw_rows_quarantined": scalar(
            warehouse, "SELECT count(*) FROM marts.quarantine_crime_raw_rows WHERE source_file = ?", where),
        "staged": staged,
        "superseded": with_id - staged,
        "located": scalar(warehouse, "SELECT count(*) FROM intermediate.int_incidents__located "
                                     "WHERE source_file = ? AND quarantine_reason IS NULL", where),
        "swapped_repaired": scalar(warehouse, "SELECT count(*) FROM intermediate.int_incidents__located "
                                              "WHERE source_file = ? AND location_status = 'swapped_repaired'", where),
        "unknown_category": scalar(warehouse, "SELECT count(*) FROM intermediate.int_incidents__located "
                                              "WHERE source_file = ? AND category = 'unknown'", where),
        "quarantined": dict(quarantined),
    }


def crime_incident(warehouse: Path, incident_id: str) -> dict[str, str | None]:
    """Read one located incident's fields as text, for the per-record checks of ``expected.yaml``."""
    with connect(warehouse, read_only=True) as connection:
        frame = connection.execute(
            "SELECT cell_id, offense_code, category, location_status, quarantine_reason, "
            "strftime(occurred_at_local, '%Y-%m-%d %H:%M:%S') AS occurred_at_local, "
            "source_row::varchar AS source_row "
            "FROM intermediate.int_incidents__located WHERE incident_id = ?", [incident_id]).pl()
    assert frame.height == 1, f"incident {incident_id} has {frame.height} located rows, expected 1"
    return frame.row(0, named=True)


def weather_counts(warehouse: Path, source_file: str) -> dict:
    """Count the staged weather reports of one file, and those that carry each value marker."""
    return dict(zip(
        ["staged", "temperature_missing", "temperature_suspect", "precipitation_missing",
         "precipitation_trace", "precipitation_suspect", "precipitation_deferred", "daily_precipitation_trace"],
        rows(warehouse, """
            SELECT count(*),
                   count(*) FILTER (WHERE temperature_f IS NULL AND report_class <> 'summary'),
                   count(*) FILTER (WHERE temperature_suspect),
                   count(*) FILTER (WHERE precipitation_in IS NULL AND report_class <> 'summary'),
                   count(*) FILTER (WHERE precipitation_trace),
                   count(*) FILTER (WHERE precipitation_suspect),
                   count(*) FILTER (WHERE precipitation_deferred),
                   count(*) FILTER (WHERE daily_precipitation_trace)
            FROM staging.stg_weather__observations WHERE source_file = ?""", [source_file])[0],
        strict=True))


def boundary_counts(warehouse: Path, source_file: str) -> dict:
    """Count the tract features of one file (delivered, repaired, quarantined by reason) and list the cells."""
    where = [source_file]
    quarantined = rows(warehouse, "SELECT quarantine_reason, count(*) FROM marts.quarantine_boundaries "
                                  "WHERE source_file = ? AND layer = 'tracts' GROUP BY ALL ORDER BY ALL", where)
    return {
        "features": scalar(warehouse, "SELECT count(*) FROM staging.stg_boundaries__features "
                                      "WHERE source_file = ? AND layer = 'tracts'", where),
        "repaired": scalar(warehouse, "SELECT count(*) FROM staging.stg_boundaries__features "
                                      "WHERE source_file = ? AND layer = 'tracts' AND was_repaired", where),
        "quarantined": dict(quarantined),
        "cells": sorted(row[0] for row in rows(warehouse, "SELECT cell_id FROM marts.dim_cells", [])),
    }


COUNTERS = {"crimes": crime_counts, "weather": weather_counts, "boundaries": boundary_counts}


def check_text(result: dg.ExecuteInProcessResult, check_name: str) -> tuple[dg.AssetCheckEvaluation, str]:
    """Return a check's evaluation and its metadata joined as text, for substring assertions."""
    evaluations = {item.check_name: item for item in result.get_asset_check_evaluations()}
    assert check_name in evaluations, f"check {check_name} did not run; ran {sorted(evaluations)}"
    evaluation = evaluations[check_name]
    return evaluation, "\n".join(f"{key}: {value.value}" for key, value in evaluation.metadata.items())


def assert_counts(case: BadInputCase, warehouse: Path) -> None:
    counts = COUNTERS[case.source](warehouse, case.placed_name())

    for key, value in case.expected["counts"].items():
        assert counts[key] == value, f"{case.name}: {key} is {counts[key]!r}, expected {value!r}"
    for incident_id, fields in case.expected.get("incidents", {}).items():
        incident = crime_incident(warehouse, str(incident_id))
        for field, value in fields.items():
            expected_text = None if value is None else str(value)
            assert incident[field] == expected_text, (f"{case.name}: incident {incident_id} {field} is "
                                                      f"{incident[field]!r}, expected {value!r}")


def test_corpus_is_well_formed() -> None:
    names = [case.name for case in CASES]

    assert len(CASES) >= 20
    for case in CASES:
        assert case.source in SOURCES, f"{case.name}: unknown source {case.source!r}"
        assert case.outcome in OUTCOMES, f"{case.name}: unknown outcome {case.outcome!r}"
        assert (case.folder / case.expected["input"]).is_file(), f"{case.name}: input file missing"
        if case.outcome == "error":
            assert case.expected["error_contains"], f"{case.name}: an error case lists message substrings"
        else:
            assert case.expected["counts"], f"{case.name}: a case that reaches the warehouse lists counts"
    assert len(set(names)) == len(names)


def test_readme_lists_every_case() -> None:
    readme = (CASES_DIR / "README.md").read_text(encoding="utf-8")

    for case in CASES:
        assert f"`{case.name}`" in readme, f"{case.name} is not in the corpus README"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda case: case.name)
def test_error_case(case: BadInputCase, tmp_path: Path) -> None:
    result = run_raw_assets(case, tmp_path)
    messages = failure_messages(result)
    text = "\n".join(messages)

    assert not result.success
    assert messages, f"{case.name}: the run failed without a step failure"
    for part in case.expected["error_contains"]:
        assert part in text, f"{case.name}: {part!r} not in the error message:\n{text}"


@pytest.mark.parametrize("case", BLOCKED_CASES, ids=lambda case: case.name)
def test_blocked_case(case: BadInputCase, tmp_path: Path) -> None:
    run = run_warehouse_job(tmp_path, [case])

    assert not run.result.success
    for check_name, parts in case.expected["blocked_by"].items():
        evaluation, text = check_text(run.result, check_name)
        assert not evaluation.passed, f"{case.name}: check {check_name} passed"
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR
        for part in parts:
            assert part in text, f"{case.name}: {part!r} not in the metadata of {check_name}:\n{text}"
    assert_counts(case, run.warehouse)


@pytest.mark.parametrize("case", RUN_CASES, ids=lambda case: case.name)
def test_run_case(case: BadInputCase, shared_run: WarehouseRun) -> None:
    assert_counts(case, shared_run.warehouse)

    for check_name, parts in case.expected.get("checks", {}).items():
        evaluation, text = check_text(shared_run.result, check_name)
        assert not evaluation.passed, f"{case.name}: check {check_name} passed"
        for part in parts:
            assert part in text, f"{case.name}: {part!r} not in the metadata of {check_name}:\n{text}"


def test_shared_run_accounting_balances(shared_run: WarehouseRun) -> None:
    evaluation, text = check_text(shared_run.result, "crime_row_accounting")

    assert evaluation.passed, text


def test_shared_run_spine_ignores_bad_dates(shared_run: WarehouseRun) -> None:
    # crimes_dates_out_of_range contains a 2031 record, which must not run the spine on to 2031.
    first, last, hours = rows(shared_run.warehouse, "SELECT min(hour), max(hour), count(*) FROM marts.hour_spine", [])[0]
    latest_valid = scalar(shared_run.warehouse,
                          "SELECT max(hour) FROM intermediate.int_incidents__located "
                          "WHERE coalesce(quarantine_reason, '') NOT IN ('future_time', 'before_data_start')", [])

    assert first == datetime(2023, 1, 1)
    assert last == latest_valid
    assert last < datetime(2025, 1, 1)
    assert hours == (last - first) // timedelta(hours=1) + 1
