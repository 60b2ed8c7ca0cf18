"""Crash recovery and concurrent runs: SIGKILL at a named step, then check what readers and reruns see.

Each crash test runs one stage in a subprocess (``tests.crash_runner``) with ``RISKCAST_CRASH_AT``
set, so the process kills itself with SIGKILL at that step (``orchestration.crash_hook``). The
checks then read the outputs as a report would: every warehouse table and every file at its final
name must be a whole version (the one before the run, or the one an uninterrupted run writes).
A rerun without the kill must write outputs identical to an uninterrupted run's.

Ingest, dbt and features run on the 4 x 4 small demo. Training and scoring run on the tiny city
(four cells, a tiny ensemble), so each stage takes seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml.ensemble import RiskEnsemble
from ml.feature_store import MissingFeaturesError, day_file, days_in, read_window
from orchestration.crash_hook import CRASH_VARIABLE
from orchestration.home_lock import WAIT_VARIABLE, home_lock
from orchestration.settings import RiskcastSettings
from orchestration.warehouse import connect
from tests.crash_runner import FEATURES_WINDOW, SCORE_FIRST, SCORE_LAST
from tests.integration.test_demo_pipeline import write_small_demo
from tests.tiny_city import CELLS, NAME, build_tiny_home, write_tiny_city

pytestmark = pytest.mark.e2e

REPOSITORY = Path(__file__).resolve().parents[2]
RISKCAST = str(Path(sys.executable).parent / "riskcast")
DEMO = "smalldemo"
# Columns that record when a row was written, so two runs on the same inputs differ there.
WRITE_TIME_COLUMNS = {"updated_at", "ingested_at", "fetched_at", "registered_at"}
# Tables that dbt-duckdb builds under a temporary name and renames in place of the model's table.
DBT_SCRATCH_SUFFIXES = ("__dbt_tmp", "__dbt_backup")


# ---------------------------------------------------------------------------------------------
# Running a stage


def stage_environment(crash_at: str | None = None, lock_wait: float | None = None) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("RISKCAST_CONFIG", "DAGSTER_HOME", CRASH_VARIABLE, WAIT_VARIABLE)}
    environment["PYTHONPATH"] = str(REPOSITORY)
    if crash_at is not None:
        environment[CRASH_VARIABLE] = crash_at
    if lock_wait is not None:
        environment[WAIT_VARIABLE] = str(lock_wait)
    return environment


def stage_command(stage: str, run_file: Path, home: Path) -> list[str]:
    return [sys.executable, "-m", "tests.crash_runner", stage, str(run_file), str(home)]


def run_stage(stage: str, run_file: Path, home: Path, crash_at: str | None = None,
              lock_wait: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``stage`` in a new process group, so a crash point kills a dbt subprocess too."""
    return subprocess.run(stage_command(stage, run_file, home), cwd=REPOSITORY, capture_output=True, text=True,
                          env=stage_environment(crash_at, lock_wait), start_new_session=True, timeout=1200,
                          check=False)


def start_stage(stage: str, run_file: Path, home: Path, lock_wait: float | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(stage_command(stage, run_file, home), cwd=REPOSITORY, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=stage_environment(lock_wait=lock_wait),
                            start_new_session=True)


def assert_succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def assert_killed(result: subprocess.CompletedProcess[str]) -> None:
    """Check that the stage died of SIGKILL; each test then checks the step it died at from its outputs.

    The hook's log line is no proof, because Dagster sends a step's stderr to its compute log file.
    """
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


# ---------------------------------------------------------------------------------------------
# Reading outputs as a reader would


def column_text(name: str, data_type: str) -> str:
    """Return SQL for a column's value as text; doubles rounded to 9 decimals.

    DuckDB sums doubles in parallel, in no fixed order, so a model's sums can differ between two
    builds of the same rows in their last bits.
    """
    value = f'round("{name}", 9)' if data_type in ("DOUBLE", "FLOAT", "REAL") else f'"{name}"'
    return f"coalesce(CAST({value} AS VARCHAR), '<null>')"


def table_fingerprints(warehouse: Path) -> dict[str, tuple[int, str]]:
    """Return ``schema.table -> (rows, md5 of the sorted rows)`` of every base table, write times left out."""
    fingerprints = {}
    with connect(warehouse, read_only=True) as connection:
        tables = connection.sql("SELECT table_schema, table_name FROM information_schema.tables "
                                "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2").fetchall()
        for schema, table in tables:
            columns = [row for row in connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = ? ORDER BY ordinal_position", [schema, table]).fetchall()
                if row[0] not in WRITE_TIME_COLUMNS]
            row_text = f"concat_ws('|', {', '.join(column_text(name, kind) for name, kind in columns)})"
            fingerprints[f"{schema}.{table}"] = connection.sql(
                f"SELECT count(*), md5(coalesce(string_agg(row_text, chr(10) ORDER BY row_text), '')) "
                f'FROM (SELECT {row_text} AS row_text FROM "{schema}"."{table}")').fetchone()
    return fingerprints


def assert_tables_whole(warehouse: Path, reference: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """Check that every table the warehouse has is a whole version: the reference run's, or absent."""
    found = table_fingerprints(warehouse)
    for name, fingerprint in found.items():
        if name.endswith(DBT_SCRATCH_SUFFIXES):
            continue
        assert name in reference, f"{name} is not a table of an uninterrupted run"
        assert fingerprint == reference[name], f"{name} differs from the uninterrupted run's table"
    return found


def file_bytes(folder: Path, pattern: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob(pattern))}


def temporary_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob(".*.tmp")) + sorted(path.name for path in folder.glob(".*.old"))


# ---------------------------------------------------------------------------------------------
# Small demo: ingest, dbt and features


@dataclass(frozen=True)
class DemoReference:
    """An uninterrupted warehouse and features run on the small demo, and what it wrote."""

    run_file: Path
    home: Path
    tables: dict[str, tuple[int, str]]
    raw_files: dict[str, pl.DataFrame]
    feature_files: dict[str, bytes]

    @property
    def warehouse(self) -> Path:
        return self.home / DEMO / "warehouse.duckdb"


def raw_frames(raw_dir: Path) -> dict[str, pl.DataFrame]:
    return {path.name: pl.read_parquet(path) for path in sorted(raw_dir.glob("*.parquet"))}


@pytest.fixture(scope="module")
def demo_reference(tmp_path_factory: pytest.TempPathFactory) -> DemoReference:
    folder = tmp_path_factory.mktemp("crash_demo")
    run_file, _ = write_small_demo(folder)
    home = folder / "reference"
    assert_succeeded(run_stage("warehouse", run_file, home))
    assert_succeeded(run_stage("features", run_file, home))
    root = home / DEMO
    return DemoReference(run_file, home, table_fingerprints(root / "warehouse.duckdb"), raw_frames(root / "raw"),
                         file_bytes(root / "features", "*.parquet"))


def test_reference_tables_repeatable(demo_reference: DemoReference, tmp_path: Path) -> None:
    """A second uninterrupted run writes the same tables, so the crash tests can compare against the first."""
    home = tmp_path / "again"
    assert_succeeded(run_stage("warehouse", demo_reference.run_file, home))

    assert table_fingerprints(home / DEMO / "warehouse.duckdb") == demo_reference.tables
    assert "raw.crime_incidents" in demo_reference.tables
    assert "marts.fct_cell_hour_crimes" in demo_reference.tables


def test_raw_ingest_crash_leaves_whole_tables(demo_reference: DemoReference, tmp_path: Path) -> None:
    home = tmp_path / "home"
    crash = run_stage("warehouse", demo_reference.run_file, home, crash_at="raw_before_commit")

    assert_killed(crash)
    found = assert_tables_whole(home / DEMO / "warehouse.duckdb", demo_reference.tables)
    stored_raw = [name for name in found if name.startswith("raw.")]
    reference_raw = [name for name in demo_reference.tables if name.startswith("raw.")]
    assert len(stored_raw) < len(reference_raw), "the crash came after every raw table was committed"
    assert not [name for name in found if name.startswith(("staging.", "marts."))]
    for name, frame in raw_frames(home / DEMO / "raw").items():
        assert_frame_equal(frame, demo_reference.raw_files[name])

    assert_succeeded(run_stage("warehouse", demo_reference.run_file, home))
    assert table_fingerprints(home / DEMO / "warehouse.duckdb") == demo_reference.tables
    assert raw_frames(home / DEMO / "raw").keys() == demo_reference.raw_files.keys()
    assert temporary_files(home / DEMO / "raw") == []


def test_dbt_crash_leaves_whole_tables(demo_reference: DemoReference, tmp_path: Path) -> None:
    home = tmp_path / "home"
    crash = run_stage("warehouse", demo_reference.run_file, home, crash_at="dbt_between_models")

    assert_killed(crash)
    found = assert_tables_whole(home / DEMO / "warehouse.duckdb", demo_reference.tables)
    built = [name for name in found if name.startswith(("staging.", "intermediate.", "marts.", "audit."))]
    reference_built = [name for name in demo_reference.tables
                       if name.startswith(("staging.", "intermediate.", "marts.", "audit."))]
    assert 0 < len(built) < len(reference_built), "the crash did not come between dbt models"

    assert_succeeded(run_stage("warehouse", demo_reference.run_file, home))
    assert table_fingerprints(home / DEMO / "warehouse.duckdb") == demo_reference.tables


def copy_warehouse(reference: DemoReference, home: Path) -> Path:
    """Give ``home`` the reference run's warehouse, without its features."""
    root = home / DEMO
    root.mkdir(parents=True)
    shutil.copy2(reference.warehouse, root / "warehouse.duckdb")
    return root / "features"


def test_features_crash_leaves_whole_files(demo_reference: DemoReference, tmp_path: Path) -> None:
    home = tmp_path / "home"
    features = copy_warehouse(demo_reference, home)
    crash = run_stage("features", demo_reference.run_file, home, crash_at="features_half_written")

    assert_killed(crash)
    written = file_bytes(features, "*.parquet")
    assert len(written) == len(days_in(*FEATURES_WINDOW)) // 2
    for name, content in written.items():
        assert content == demo_reference.feature_files[name], f"{name} is not the whole file"
    with pytest.raises(MissingFeaturesError):
        read_window(features, *FEATURES_WINDOW, n_cells=16)

    assert_succeeded(run_stage("features", demo_reference.run_file, home))
    assert file_bytes(features, "*.parquet") == demo_reference.feature_files
    assert temporary_files(features) == []


def test_feature_reader_during_rewrite(demo_reference: DemoReference, tmp_path: Path) -> None:
    """A reader polling the day files while a run rewrites them reads whole files or none."""
    home = tmp_path / "home"
    features = copy_warehouse(demo_reference, home)
    paths = [day_file(features, day) for day in days_in(*FEATURES_WINDOW)]
    reads: list[tuple[str, bytes]] = []
    finished = threading.Event()

    def read_until_finished() -> None:
        while not finished.is_set():
            for path in paths:
                try:
                    reads.append((path.name, path.read_bytes()))
                except FileNotFoundError:
                    continue

    reader = threading.Thread(target=read_until_finished)
    reader.start()
    try:
        result = run_stage("features", demo_reference.run_file, home)
    finally:
        finished.set()
        reader.join()

    assert_succeeded(result)
    assert reads, "the reader never found a day file"
    assert all(content == demo_reference.feature_files[name] for name, content in reads)


# ---------------------------------------------------------------------------------------------
# Tiny city: training and scoring


@dataclass(frozen=True)
class TinyReference:
    """An uninterrupted training and scoring run on the tiny city, and what it wrote."""

    folder: Path
    run_file: Path
    registry: pl.DataFrame
    predictions: np.ndarray
    scores: pl.DataFrame


def tiny_warehouse(home: Path) -> Path:
    return home / NAME / "warehouse.duckdb"


def read_registry(home: Path) -> pl.DataFrame:
    with connect(tiny_warehouse(home), read_only=True) as connection:
        exists = connection.sql("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_name = 'model_registry'").fetchone()[0]
        if not exists:
            return pl.DataFrame()
        return connection.sql("SELECT * EXCLUDE (registered_at) FROM main.model_registry ORDER BY model_id").pl()


def read_scores(home: Path) -> pl.DataFrame:
    with connect(tiny_warehouse(home), read_only=True) as connection:
        return connection.sql("SELECT * FROM main.risk_scores "
                              "ORDER BY target, issued_at, horizon_hours, cell_id").pl()


def registered_predictions(home: Path) -> np.ndarray:
    """Predict a fixed input with every registered model, each loaded from the folder the registry names."""
    registry = read_registry(home)
    outputs = []
    for path in registry["path"]:
        ensemble = RiskEnsemble.load(Path(path))
        features = np.random.default_rng(3).random((20, len(ensemble.feature_names)))
        outputs.append(ensemble.predict_proba(features))
    return np.concatenate(outputs)


def comparable(registry: pl.DataFrame) -> pl.DataFrame:
    """Leave out the folder path, which names the home folder."""
    return registry.drop("path")


def tiny_home(folder: Path, name: str) -> Path:
    home = folder / name
    build_tiny_home(folder / "run.yaml", home)
    return home


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory: pytest.TempPathFactory) -> TinyReference:
    folder = tmp_path_factory.mktemp("crash_tiny")
    run_file = write_tiny_city(folder, ["violent"])
    home = tiny_home(folder, "reference")
    assert_succeeded(run_stage("train", run_file, home))
    assert_succeeded(run_stage("score", run_file, home))
    return TinyReference(folder, run_file, read_registry(home), registered_predictions(home), read_scores(home))


def test_training_crash_keeps_registered_model(tiny_reference: TinyReference) -> None:
    home = tiny_home(tiny_reference.folder, "training")
    models = home / NAME / "models"

    first = run_stage("train", tiny_reference.run_file, home, crash_at="training_member_saved")
    assert_killed(first)
    assert read_registry(home).height == 0
    assert [path.name for path in models.iterdir() if not path.name.startswith(".")] == []

    assert_succeeded(run_stage("train", tiny_reference.run_file, home))
    assert_frame_equal(comparable(read_registry(home)), comparable(tiny_reference.registry))
    np.testing.assert_array_equal(registered_predictions(home), tiny_reference.predictions)
    assert temporary_files(models) == []

    again = run_stage("train", tiny_reference.run_file, home, crash_at="training_member_saved")
    assert_killed(again)
    assert_frame_equal(comparable(read_registry(home)), comparable(tiny_reference.registry))
    np.testing.assert_array_equal(registered_predictions(home), tiny_reference.predictions)
    assert len(temporary_files(models)) == 1, "the killed retraining left no partial folder"

    assert_succeeded(run_stage("train", tiny_reference.run_file, home))
    assert_frame_equal(comparable(read_registry(home)), comparable(tiny_reference.registry))
    np.testing.assert_array_equal(registered_predictions(home), tiny_reference.predictions)
    assert temporary_files(models) == []


def double_risks(home: Path) -> pl.DataFrame:
    """Change the stored scores, so the version before a run differs from the one it writes."""
    with connect(tiny_warehouse(home)) as connection:
        connection.execute("UPDATE main.risk_scores SET risk = risk * 2")
    return read_scores(home)


def trained_tiny_home(reference: TinyReference, name: str) -> Path:
    home = tiny_home(reference.folder, name)
    assert_succeeded(run_stage("train", reference.run_file, home))
    return home


@pytest.mark.parametrize("crash_at", ["scores_staged", "scores_mid_publish"])
def test_scoring_crash_keeps_old_scores(tiny_reference: TinyReference, crash_at: str) -> None:
    home = trained_tiny_home(tiny_reference, f"scoring_{crash_at}")
    assert_succeeded(run_stage("score", tiny_reference.run_file, home))
    old = double_risks(home)

    crash = run_stage("score", tiny_reference.run_file, home, crash_at=crash_at)

    assert_killed(crash)
    assert_frame_equal(read_scores(home), old)
    staging = home / NAME / "staging"
    assert any(staging.rglob("*.parquet")), "the killed run staged no score files"

    assert_succeeded(run_stage("score", tiny_reference.run_file, home))
    assert_frame_equal(read_scores(home), tiny_reference.scores)
    assert list(staging.iterdir()) == []


def test_score_reader_during_publish(tiny_reference: TinyReference) -> None:
    """A reader polling main.risk_scores while a run replaces them reads the old or the new scores."""
    home = trained_tiny_home(tiny_reference, "reader")
    assert_succeeded(run_stage("score", tiny_reference.run_file, home))
    old = double_risks(home)
    versions = {"old": (old.height, float(old["risk"].sum())),
                "new": (tiny_reference.scores.height, float(tiny_reference.scores["risk"].sum()))}
    seen: list[tuple[int, float]] = []
    finished = threading.Event()

    def read_until_finished() -> None:
        while not finished.is_set():
            with connect(tiny_warehouse(home), read_only=True) as connection:
                seen.append(connection.sql("SELECT count(*), sum(risk) FROM main.risk_scores").fetchone())
            # Each read holds DuckDB's file lock, so a pause lets the writer open the file in between.
            time.sleep(0.05)

    reader = threading.Thread(target=read_until_finished)
    reader.start()
    try:
        result = run_stage("score", tiny_reference.run_file, home)
    finally:
        finished.set()
        reader.join()

    assert_succeeded(result)
    assert seen
    for rows, risk_sum in seen:
        assert (rows, pytest.approx(risk_sum)) in [(count, pytest.approx(total)) for count, total in versions.values()]
    assert_frame_equal(read_scores(home), tiny_reference.scores)


# ---------------------------------------------------------------------------------------------
# Concurrent runs


def test_second_run_fails_while_locked(tiny_reference: TinyReference) -> None:
    home = trained_tiny_home(tiny_reference, "locked")
    settings = RiskcastSettings(home=home, jurisdiction=NAME)

    with home_lock(settings, wait_seconds=0):
        result = run_stage("score", tiny_reference.run_file, home, lock_wait=1)

    assert result.returncode == 2, result.stderr[-3000:]
    assert "another riskcast process holds the lock" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert WAIT_VARIABLE in result.stderr
    with connect(tiny_warehouse(home), read_only=True) as connection:
        tables = connection.sql("SELECT table_name FROM information_schema.tables").fetchall()
    assert ("risk_scores",) not in tables


def test_cli_backfill_fails_while_locked(demo_reference: DemoReference, tmp_path: Path) -> None:
    home = tmp_path / "home"
    features = copy_warehouse(demo_reference, home)
    settings = RiskcastSettings(home=home, jurisdiction=DEMO)
    environment = stage_environment()
    command = [RISKCAST, "--home", str(home), "backfill", "--no-score", "--from", "2023-02-01", "--to",
               "2023-02-02", "--config", str(demo_reference.run_file)]

    with home_lock(settings, wait_seconds=0):
        result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600, check=False)

    assert result.returncode == 1, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("riskcast: another riskcast process holds the lock")
    assert list(features.glob("*.parquet")) == []


def test_concurrent_scoring_runs_serialize(tiny_reference: TinyReference) -> None:
    home = trained_tiny_home(tiny_reference, "concurrent")

    runs = [start_stage("score", tiny_reference.run_file, home, lock_wait=600) for _ in range(2)]
    outcomes = [run.communicate(timeout=1200) for run in runs]

    for run, (_, stderr) in zip(runs, outcomes, strict=True):
        assert run.returncode == 0, stderr[-3000:]
    assert_frame_equal(read_scores(home), tiny_reference.scores)
    assert read_scores(home).height == len(CELLS) * 48 * 72
