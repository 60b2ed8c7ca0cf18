"""Speed-up of the features and scoring backfills on Dagster's multiprocess executor, and one hourly increment.

The city is the synthetic demo on a 28 x 28 grid (784 cells, about Chicago's 801 tracts) with
crimes, 311 requests and weather from 2023-01-01 to 2023-05-31. After the warehouse job and one
ensemble (10 nets, 3 epochs: training is not what is measured), the script times:

- the features of 2023-02-04 to 2023-05-01 (86 days, 1,618,176 cell-hours) as one `features_job`
  range run in one process, then as `features_backfill_job` with 2 pieces in 2 processes;
- the scores of 72 issue hours from 2023-04-01 (784 cells x 72 horizons x 3 targets per issue
  hour, 12,192,768 rows) as one `score_job` range run, then as `scores_backfill_job` with 2 workers;
- one run of `hourly_increment_job` for the partition 2023-04-04-00:00 (ingest, dbt, audits,
  features and 72-hour scores of one hour), from the start of the run to the scores being committed.

The parallel runs execute through `dagster.execute_job` on a persistent instance, as
`riskcast backfill --workers 2` does. Run from the repository root:

    .venv/bin/python benchmarks/scale_out.py [--workers 2] [--record]

``--record`` adds the figures to docs/benchmarks.md (newest first).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg
import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks.ingest_crimes import commit, record  # noqa: E402
from ml.demo import write_demo_extracts  # noqa: E402
from orchestration.cli import PARTITION_TAG, run_job  # noqa: E402
from orchestration.definitions import (  # noqa: E402
    FEATURES_JOB,
    HOURLY_JOB,
    SCORE_JOB,
    TRAIN_JOB,
    WAREHOUSE_JOB,
    build_definitions,
)
from orchestration.jurisdiction import JURISDICTIONS_DIR  # noqa: E402
from orchestration.scale_out import FEATURES_BACKFILL_JOB, SCORES_BACKFILL_JOB, run_parallel_backfill  # noqa: E402
from orchestration.warehouse import connect  # noqa: E402

GRID = 28
FEATURES = ("2023-02-04-00:00", "2023-04-30-23:00")
SCORES = ("2023-04-01-00:00", "2023-04-03-23:00")
INCREMENT = "2023-04-04-00:00"


def write_run_file(folder: Path) -> Path:
    """Write the synthetic extracts and a run file for them; return the run file."""
    extracts = folder / "extracts"
    write_demo_extracts(extracts, start=date(2023, 1, 1), end=date(2023, 5, 31), grid_rows=GRID, grid_cols=GRID)
    content = yaml.safe_load((JURISDICTIONS_DIR / "demo.yaml").read_text(encoding="utf-8"))
    content["name"] = "scaledemo"
    content["data_start"] = "2023-01-01"
    jurisdiction = folder / "scaledemo.yaml"
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    run_file = folder / "run.yaml"
    run_file.write_text(yaml.safe_dump({
        "jurisdiction": str(jurisdiction),
        "extracts_folder": str(extracts),
        "train": {"start": "2023-02-04", "end": "2023-04-01"},
        "score": {"start": "2023-04-01", "end": "2023-04-04"},
        "ensemble": {"n_nets": 10, "epochs": 3},
    }), encoding="utf-8")
    return run_file


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def check(result: dg.JobExecutionResult) -> None:
    if not result.success:
        raise SystemExit(f"run {result.run_id} failed; see the log above")


def range_tags_of(keys: tuple[str, str]) -> dict[str, str]:
    from orchestration.partitions import RANGE_END_TAG, RANGE_START_TAG

    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[1]}


def scores_rows(warehouse: Path) -> int:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql("SELECT count(*) FROM main.risk_scores").fetchone()[0]


def measure(folder: Path, workers: int) -> dict[str, float]:
    run_file = write_run_file(folder)
    home = folder / "home"
    (folder / "dagster").mkdir()
    definitions = build_definitions(run_file, home)
    figures: dict[str, float] = {}
    with dg.DagsterInstance.local_temp(str(folder / "dagster")) as instance:
        run_job(definitions, instance, WAREHOUSE_JOB)
        figures["features_single"] = timed(lambda: run_job(definitions, instance, FEATURES_JOB,
                                                           range_tags_of(FEATURES)))
        run_job(definitions, instance, TRAIN_JOB, {PARTITION_TAG: "2023-03-25"})
        figures["scores_single"] = timed(lambda: run_job(definitions, instance, SCORE_JOB, range_tags_of(SCORES)))
        figures["score_rows"] = scores_rows(home / "scaledemo" / "warehouse.duckdb")

        shutil.rmtree(home / "scaledemo" / "features")
        figures["features_parallel"] = timed(lambda: check(run_parallel_backfill(
            FEATURES_BACKFILL_JOB, run_file, home, *FEATURES, workers, instance)))
        figures["scores_parallel"] = timed(lambda: check(run_parallel_backfill(
            SCORES_BACKFILL_JOB, run_file, home, *SCORES, workers, instance)))
        figures["increment"] = timed(lambda: run_job(definitions, instance, HOURLY_JOB, {PARTITION_TAG: INCREMENT}))
    return figures


def report(figures: dict[str, float], workers: int) -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    cell_hours = GRID * GRID * 86 * 24
    features_speedup = figures["features_single"] / figures["features_parallel"]
    scores_speedup = figures["scores_single"] / figures["scores_parallel"]
    return "\n".join([
        f"## {date.today().isoformat()}: backfills on the multiprocess executor, and one hourly increment",
        "",
        f"- Command: `.venv/bin/python benchmarks/scale_out.py --workers {workers} --record`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}",
        f"- Input: synthetic demo, {GRID} x {GRID} grid ({GRID * GRID} cells), 2023-01-01 to 2023-05-31; "
        f"features of {FEATURES[0]} to {FEATURES[1]} ({cell_hours:,} cell-hours); scores of 72 issue hours "
        f"from {SCORES[0]} ({int(figures['score_rows']):,} rows, 3 targets)",
        "",
        f"| backfill | one process (range run) | {workers} processes (fan-out job) | speed-up |",
        "|---|---|---|---|",
        f"| features | {figures['features_single']:.1f} s | {figures['features_parallel']:.1f} s | "
        f"{features_speedup:.2f}x |",
        f"| scores | {figures['scores_single']:.1f} s | {figures['scores_parallel']:.1f} s | {scores_speedup:.2f}x |",
        "",
        f"- Hourly increment (`hourly_increment_job`, partition {INCREMENT}, in process, the warehouse rebuilt "
        f"from the extracts): {figures['increment']:.1f} s from the run's start to the scores being committed.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="processes of the fan-out jobs (default 2)")
    parser.add_argument("--record", action="store_true", help="add the figures to docs/benchmarks.md")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="riskcast-scale-") as scratch:
        figures = measure(Path(scratch), arguments.workers)

    text = report(figures, arguments.workers)
    print(text)
    if arguments.record:
        record(text)


if __name__ == "__main__":
    main()
