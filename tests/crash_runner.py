"""Run one pipeline stage in this process, for crash and concurrency tests that start it as a subprocess.

``python -m tests.crash_runner STAGE RUN_FILE HOME`` runs one of ``STAGES`` under the jurisdiction
folder's lock, as a ``riskcast`` command would. ``warehouse`` and ``features`` run the jobs of the
small demo on the persistent Dagster instance under HOME. ``train`` and ``score`` materialize the
tiny city's assets (``tests.tiny_city``). A crash point set in ``RISKCAST_CRASH_AT`` kills the
process midway. Exits 0 when the stage succeeded, 1 when it failed, 2 when the lock was taken.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from orchestration.definitions import FEATURES_JOB, WAREHOUSE_JOB
from orchestration.home_lock import HomeLockedError, home_lock
from orchestration.runner import JobFailedError, prepare_run, range_tags, run_with_instance
from orchestration.settings import RiskcastSettings
from tests.tiny_city import NAME, materialize, score_range

UTC = timezone.utc
# Eight days of the small demo: the features crash point fires after the fourth day file.
FEATURES_WINDOW = (datetime(2023, 2, 1, tzinfo=UTC), datetime(2023, 2, 9, tzinfo=UTC))
TRAIN_PARTITION = "2023-01-15"
# Two days of issue hours, scored by the model of TRAIN_PARTITION (train_end 2023-01-22): two staging files.
SCORE_FIRST = datetime(2023, 1, 23, tzinfo=UTC)
SCORE_LAST = datetime(2023, 1, 24, 23, tzinfo=UTC)
STAGES = ("warehouse", "features", "train", "score")


def run_demo_job(run_file: Path, home: Path, job: str, tags: dict[str, str] | None) -> None:
    context = prepare_run(run_file, home)
    run_with_instance(context, [(job, tags)])


def run_tiny_asset(run_file: Path, home: Path, asset: str, partition_key: str | None,
                   tags: dict[str, str] | None) -> None:
    settings = RiskcastSettings(home=home, jurisdiction=NAME)
    with home_lock(settings), dg.DagsterInstance.ephemeral() as instance:
        result = materialize(run_file, home, asset, instance, partition_key=partition_key, tags=tags)
    if not result.success:
        raise JobFailedError(f"{asset} failed (run {result.run_id})")


def run_stage(stage: str, run_file: Path, home: Path) -> None:
    if stage == "warehouse":
        run_demo_job(run_file, home, WAREHOUSE_JOB, None)
    elif stage == "features":
        run_demo_job(run_file, home, FEATURES_JOB, range_tags(*FEATURES_WINDOW))
    elif stage == "train":
        run_tiny_asset(run_file, home, "risk_ensemble", TRAIN_PARTITION, None)
    elif stage == "score":
        run_tiny_asset(run_file, home, "risk_scores", None, score_range(SCORE_FIRST, SCORE_LAST))
    else:
        raise ValueError(f"unknown stage {stage!r}; use one of {STAGES}")


def main(argv: list[str]) -> int:
    stage, run_file, home = argv
    try:
        run_stage(stage, Path(run_file), Path(home))
    except HomeLockedError as error:
        print(f"crash_runner: {error}", file=sys.stderr)
        return 2
    except JobFailedError as error:
        print(f"crash_runner: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
