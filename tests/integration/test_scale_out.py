"""Backfills on Dagster's multiprocess executor give the same features and scores as one process.

The small demo run built features and scores with one run per range. Here a copy of its folder
loses a range of feature files and a day of scores, and the two fan-out jobs of
``orchestration.scale_out`` rebuild them in two processes. Every rebuilt value must equal the
one-process value, and the Dagster instance must list every rebuilt hourly partition.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml.feature_store import day_file
from orchestration.definitions import build_definitions
from orchestration.scale_out import (
    FEATURES_BACKFILL_JOB,
    SCORES_BACKFILL_JOB,
    hour_keys,
    run_parallel_backfill,
)
from orchestration.warehouse import connect

FEATURE_START = datetime(2023, 3, 25, tzinfo=timezone.utc)
FEATURE_END = datetime(2023, 4, 2, tzinfo=timezone.utc)
SCORE_START = datetime(2023, 4, 1, tzinfo=timezone.utc)
SCORE_END = datetime(2023, 4, 2, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def copied_run(small_demo_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the demo run's home, so the shared run stays as the other modules expect it."""
    home = tmp_path_factory.mktemp("scale_out") / "home"
    shutil.copytree(small_demo_run.folder / "home", home, ignore=shutil.ignore_patterns("dagster"))
    return small_demo_run.run_file, home


def read_scores(warehouse: Path, start: datetime, end: datetime) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.execute(
            "SELECT * FROM main.risk_scores WHERE issued_at >= ? AND issued_at < ? "
            "ORDER BY target, issued_at, horizon_hours, cell_id",
            [start.replace(tzinfo=None), end.replace(tzinfo=None)]).pl()


def days(start: datetime, end: datetime) -> list:
    return [(start + timedelta(days=offset)).date() for offset in range((end - start).days)]


def failures(result: dg.JobExecutionResult) -> list[str]:
    return [str(event.event_specific_data.error) for event in result.all_events if event.is_step_failure]


def step_keys(result: dg.JobExecutionResult, prefix: str) -> set[str]:
    return {event.step_key for event in result.all_events
            if event.is_step_success and event.step_key and event.step_key.startswith(prefix)}


def test_backfill_jobs_match_one_process(copied_run: tuple[Path, Path], tmp_path: Path) -> None:
    run_file, home = copied_run
    features = home / "smalldemo" / "features"
    warehouse = home / "smalldemo" / "warehouse.duckdb"
    reference_days = {day: pl.read_parquet(day_file(features, day)) for day in days(FEATURE_START, FEATURE_END)}
    reference_scores = read_scores(warehouse, SCORE_START, SCORE_END)
    assert reference_scores.height > 0

    for day in reference_days:
        day_file(features, day).unlink()
    with connect(warehouse) as connection:
        connection.execute("DELETE FROM main.risk_scores WHERE issued_at >= ? AND issued_at < ?",
                           [SCORE_START.replace(tzinfo=None), SCORE_END.replace(tzinfo=None)])

    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        built = run_parallel_backfill(FEATURES_BACKFILL_JOB, run_file, home, "2023-03-25-00:00", "2023-04-01-23:00", 2, instance)
        assert built.success, failures(built)
        assert len(step_keys(built, "build_feature_piece")) == 2
        for day, frame in reference_days.items():
            assert_frame_equal(pl.read_parquet(day_file(features, day)), frame)
        assert instance.get_materialized_partitions(dg.AssetKey("cell_hour_features")) == \
            set(hour_keys(FEATURE_START, FEATURE_END))

        scored = run_parallel_backfill(SCORES_BACKFILL_JOB, run_file, home, "2023-04-01-00:00", "2023-04-01-23:00", 2, instance)
        assert scored.success, failures(scored)
        assert len(step_keys(scored, "score_feature_piece")) == 2
        assert_frame_equal(read_scores(warehouse, SCORE_START, SCORE_END), reference_scores)
        assert instance.get_materialized_partitions(dg.AssetKey("risk_scores")) == \
            set(hour_keys(SCORE_START, SCORE_END))
    assert not any((home / "smalldemo" / "staging").glob("scores_*"))


def test_backfill_inverted_range_fails(copied_run: tuple[Path, Path], tmp_path: Path) -> None:
    run_file, home = copied_run
    before = read_scores(home / "smalldemo" / "warehouse.duckdb", SCORE_START, SCORE_END)

    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        result = run_parallel_backfill(SCORES_BACKFILL_JOB, run_file, home, "2023-04-01-05:00", "2023-04-01-01:00", 2, instance)

    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "2023-04-01-01:00 is before its start 2023-04-01-05:00" in str(failure.event_specific_data.error)
    assert_frame_equal(read_scores(home / "smalldemo" / "warehouse.duckdb", SCORE_START, SCORE_END), before)


def test_definitions_list_backfill_jobs(copied_run: tuple[Path, Path]) -> None:
    run_file, home = copied_run
    definitions = build_definitions(run_file, home)

    job = definitions.resolve_job_def(SCORES_BACKFILL_JOB)

    assert job.executor_def.name == "multiprocess"
    assert {node.name for node in job.nodes} == {"plan_score_pieces", "score_feature_piece", "publish_score_pieces"}
