"""Run Riskcast's Dagster jobs in order from a terminal, with one progress line per job.

The ``riskcast`` commands (``orchestration.cli``) build their job lists here: the main job's six
jobs, a backtest's training runs, a backfill's features and scores over a range of hours. Each
job runs in process against a Dagster instance, so the UI shows the runs. The first failed run
stops the list with ``JobFailedError``. When the only failed steps are the bias release gate,
``ReleaseBlockedError`` reports that no ensemble was promoted. Progress goes to stderr, so stdout
keeps the results.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg

from orchestration.definitions import (
    CONFIG_VARIABLE,
    EVALUATE_JOB,
    FEATURES_JOB,
    RELEASE_JOB,
    SCORE_JOB,
    TRAIN_JOB,
    WAREHOUSE_JOB,
    build_definitions,
)
from orchestration.home_lock import home_lock
from orchestration.jurisdiction import JurisdictionConfig, RunConfig, load_jurisdiction, load_run_config
from orchestration.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    partition_key,
    refresh_key_format,
    refresh_partitions,
    training_partition_key,
)
from orchestration.scale_out import FEATURES_BACKFILL_JOB, SCORES_BACKFILL_JOB, run_parallel_backfill
from orchestration.settings import HOME_VARIABLE, RiskcastSettings

logger = logging.getLogger("riskcast")

PARTITION_TAG = "dagster/partition"

# Dagster's console logger prints every event at DEBUG, thousands of lines per partitioned run;
# INFO keeps the asset logs, step failures and run results.
CONSOLE_LOG_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}

GATE_CHECK = "bias_disparity_gate"

# One job of a command: its name and the run tags that pick its partitions (None: unpartitioned).
Step = tuple[str, dict[str, str] | None]


class JobFailedError(RuntimeError):
    """A Dagster run of the main job failed."""


class ReleaseBlockedError(JobFailedError):
    """The release job ran, and the bias release gate failed, so no ensemble was promoted to current."""


def run_job(definitions: dg.Definitions, instance: dg.DagsterInstance, name: str,
            tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    """Run job ``name`` in process and return its result; raise ``JobFailedError`` when it fails."""
    started = time.monotonic()
    result = definitions.resolve_job_def(name).execute_in_process(
        run_config=CONSOLE_LOG_CONFIG, instance=instance, tags=tags or {}, raise_on_error=False)
    elapsed = time.monotonic() - started
    if not result.success:
        failures = [f"{event.step_key}: {root_cause(event.event_specific_data.error)}"
                    for event in result.all_events if event.is_step_failure]
        detail = "\n".join(failures) or "see the run in the Dagster UI"
        if failures and all(failure.split(":")[0].endswith(GATE_CHECK) for failure in failures):
            raise ReleaseBlockedError(f"{name}: the bias release gate failed, so the ensembles were not promoted "
                                      f"to current (run {result.run_id})")
        raise JobFailedError(f"{name} failed (run {result.run_id}):\n{detail}")
    logger.info("%s finished in %.1f s (run %s)", name, elapsed, result.run_id)
    return result


def root_cause(error) -> str:
    """The message of the innermost error in a Dagster error chain: the user's exception, not Dagster's wrapper."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()


def range_tags(start: datetime, end: datetime) -> dict[str, str]:
    """Tags that make one run cover the hourly partitions of ``[start, end)``."""
    last = end - timedelta(hours=1)
    return {RANGE_START_TAG: partition_key(start), RANGE_END_TAG: partition_key(last)}


def step_label(name: str, tags: dict[str, str] | None) -> str:
    """Name a step with its partitions, such as ``features_job (2017-01-01-00:00 .. 2017-06-30-23:00)``."""
    tags = tags or {}
    if RANGE_START_TAG in tags:
        return f"{name} ({tags[RANGE_START_TAG]} .. {tags[RANGE_END_TAG]})"
    if PARTITION_TAG in tags:
        return f"{name} ({tags[PARTITION_TAG]})"
    return name


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_steps(definitions: dg.Definitions, instance: dg.DagsterInstance, steps: list[Step],
              progress: Callable[[str], None] = print_progress) -> None:
    """Run ``steps`` in order and report each one's start and duration through ``progress``.

    The first failed run reports ``failed after`` and raises ``JobFailedError`` (or
    ``ReleaseBlockedError``), so later steps do not run.
    """
    total = len(steps)
    for index, (name, tags) in enumerate(steps, start=1):
        progress(f"[{index}/{total}] {step_label(name, tags)} ...")
        started = time.monotonic()

        try:
            run_job(definitions, instance, name, tags)
        except JobFailedError:
            progress(f"[{index}/{total}] {name} failed after {time.monotonic() - started:.1f} s")
            raise

        progress(f"[{index}/{total}] {name} done in {time.monotonic() - started:.1f} s")


@dataclass(frozen=True)
class RunContext:
    """A loaded run file with its jurisdiction, output paths and Dagster definitions."""

    config_path: Path
    run: RunConfig
    jurisdiction: JurisdictionConfig
    settings: RiskcastSettings
    definitions: dg.Definitions


def prepare_run(config_path: Path, home: Path) -> RunContext:
    """Load a run file, create the output folders and build its definitions.

    Sets ``RISKCAST_HOME``, ``RISKCAST_CONFIG`` and ``DAGSTER_HOME`` in this process, so
    ``DagsterInstance.get()`` opens the instance under ``home``. Raises ``ConfigError`` for a
    missing or invalid run file.
    """
    run = load_run_config(config_path)
    jurisdiction = load_jurisdiction(run.jurisdiction)
    settings = RiskcastSettings(home=home, jurisdiction=jurisdiction.name)
    settings.ensure_dirs()
    os.environ[HOME_VARIABLE] = str(home)
    os.environ[CONFIG_VARIABLE] = str(config_path.resolve())
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)

    definitions = build_definitions(config_path.resolve(), home)
    return RunContext(config_path, run, jurisdiction, settings, definitions)


def run_with_instance(context: RunContext, steps: list[Step], instance: dg.DagsterInstance | None = None) -> None:
    """Run ``steps`` on ``instance``, or on the persistent instance under the home folder when None.

    Holds the jurisdiction folder's lock (``orchestration.home_lock``) for all the steps, and
    raises ``HomeLockedError`` when another process holds it.
    """
    with home_lock(context.settings):
        if instance is not None:
            run_steps(context.definitions, instance, steps)
            return
        with dg.DagsterInstance.get() as persistent:
            run_steps(context.definitions, persistent, steps)


def run_main_job(config_path: Path, home: Path, instance: dg.DagsterInstance | None = None,
                 backtest: bool = False) -> RiskcastSettings:
    """Run the six jobs of the main job in order; ``instance`` defaults to the persistent one.

    The release job runs last. When its bias gate fails, every other job has finished and
    ``ReleaseBlockedError`` reports that no ensemble was promoted to current.

    With ``backtest``, training covers every refresh partition of the backtest window
    (``backtest_steps``) instead of the one that ends at ``train.end``.
    """
    context = prepare_run(config_path, home)
    if backtest:
        steps = backtest_steps(context.run, context.jurisdiction)
    else:
        steps = main_steps(context.run, context.jurisdiction)
    run_with_instance(context, steps, instance)
    return context.settings


def main_steps(run: RunConfig, jurisdiction: JurisdictionConfig) -> list[Step]:
    """Jobs of the main job: training runs the one refresh partition that ends at ``train.end``."""
    features_end = max(run.score.end, run.evaluate_window.end, run.backtest_window.end)
    training_partition = training_partition_key(run, jurisdiction, refresh_partitions(run, jurisdiction))
    return [
        (WAREHOUSE_JOB, None),
        (FEATURES_JOB, range_tags(run.train.start, features_end)),
        (TRAIN_JOB, {PARTITION_TAG: training_partition}),
        (SCORE_JOB, range_tags(run.score.start, run.score.end)),
        (EVALUATE_JOB, None),
        (RELEASE_JOB, None),
    ]


def backtest_steps(run, jurisdiction) -> list[tuple[str, dict[str, str] | None]]:
    """Jobs of a backtest: the main job's steps with one training run per refresh partition.

    Every refresh partition that ends from ``train.end`` up to the backtest window's last issue
    time is trained, so each daily forecast comes from a model trained only on data before it.
    """
    window = run.backtest_window
    features_end = max(run.score.end, run.evaluate_window.end, window.end)
    refresh = refresh_partitions(run, jurisdiction)
    first_key = training_partition_key(run, jurisdiction, refresh)
    steps: list[tuple[str, dict[str, str] | None]] = [
        (WAREHOUSE_JOB, None),
        (FEATURES_JOB, range_tags(run.train.start, features_end)),
    ]
    end = run.train.end
    key = first_key
    while end < window.end:
        steps.append((TRAIN_JOB, {PARTITION_TAG: key}))
        end += run.refresh.length
        key = (end - run.refresh.length).strftime(refresh_key_format(run))
    steps += [(SCORE_JOB, range_tags(run.score.start, run.score.end)), (EVALUATE_JOB, None), (RELEASE_JOB, None)]
    return steps


def backfill_steps(start: datetime, end: datetime, score: bool = True) -> list[Step]:
    """Jobs of a backfill of the hours ``[start, end)``: features, then the scores issued at those hours."""
    steps: list[Step] = [(FEATURES_JOB, range_tags(start, end))]
    if score:
        steps.append((SCORE_JOB, range_tags(start, end)))
    return steps


def backfill_range(definitions: dg.Definitions, instance: dg.DagsterInstance, start: datetime, end: datetime,
                   score: bool = True, progress: Callable[[str], None] = print_progress) -> None:
    """Materialize the features, then the scores, of the hourly partitions in ``[start, end)``.

    Each job covers the whole range in one run, tagged with the range as a single-run backfill is.
    ``start`` and ``end`` are whole UTC hours that the caller has checked against the partitions.
    """
    run_steps(definitions, instance, backfill_steps(start, end, score), progress)


def parallel_backfill_range(context: RunContext, instance: dg.DagsterInstance, start: datetime, end: datetime,
                            workers: int, score: bool = True,
                            progress: Callable[[str], None] = print_progress) -> None:
    """Run the backfill of ``backfill_range`` with each job split into ``workers`` parallel processes.

    Runs ``features_backfill_job`` and then ``scores_backfill_job`` (``orchestration.scale_out``) on
    Dagster's multiprocess executor. The outputs are the same as ``backfill_range``'s.
    """
    jobs = [FEATURES_BACKFILL_JOB] + ([SCORES_BACKFILL_JOB] if score else [])
    first, last = partition_key(start), partition_key(end - timedelta(hours=1))
    for index, name in enumerate(jobs, start=1):
        progress(f"[{index}/{len(jobs)}] {name} ({first} .. {last}, {workers} processes) ...")
        started = time.monotonic()

        result = run_parallel_backfill(name, context.config_path, context.settings.home, first, last, workers,
                                       instance)

        if not result.success:
            progress(f"[{index}/{len(jobs)}] {name} failed after {time.monotonic() - started:.1f} s")
            failures = [f"{event.step_key}: {root_cause(event.event_specific_data.error)}"
                        for event in result.all_events if event.is_step_failure]
            raise JobFailedError(f"{name} failed (run {result.run_id}):\n"
                                 f"{chr(10).join(failures) or 'see the run in the Dagster UI'}")
        progress(f"[{index}/{len(jobs)}] {name} done in {time.monotonic() - started:.1f} s")
