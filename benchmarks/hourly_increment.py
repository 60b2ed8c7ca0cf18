"""Wall time of one hourly increment, from the run's start to the scores being committed, step by step.

The city is the synthetic demo on a 28 x 28 grid (784 cells, about Chicago's 801 tracts) with
crimes, 311 requests and weather from 2023-01-01 to 2023-05-31. The script builds the warehouse,
the features of the training window and one small ensemble per target (10 nets, 3 epochs), because
training is not what is measured. Then it runs ``hourly_increment_job`` for the six partitions
2023-04-04-00:00 to 2023-04-04-05:00 on a persistent Dagster instance, in process, as the hourly
schedule's run would. The first run pays Python's imports and the models' first load. The later
runs are the ones a live deployment repeats every hour, and their median is checked against the
target, because single runs on two shared cores vary by a second or more.

For each run it prints the wall time and the time of every step from Dagster's step statistics.
It also prints dbt's own elapsed time with the summed times of its models and tests
(``run_results.json``), and the rest of the wall time (run start, planning, event storage) as
Dagster overhead. Last, it times what a run launched by the Dagster daemon adds before its first
step: a new process importing the code location. Run from the repository root:

    .venv/bin/python benchmarks/hourly_increment.py [--record]

``--record`` adds the figures to docs/benchmarks.md (newest first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks.ingest_crimes import commit, record  # noqa: E402
from benchmarks.scale_out import GRID, range_tags_of, write_run_file  # noqa: E402
from orchestration.cli import PARTITION_TAG, run_job  # noqa: E402
from orchestration.definitions import FEATURES_JOB, HOURLY_JOB, TRAIN_JOB, WAREHOUSE_JOB, build_definitions  # noqa: E402
from orchestration.settings import RiskcastSettings  # noqa: E402

TARGET_SECONDS = 10.0
TRAIN_FEATURES = ("2023-02-04-00:00", "2023-04-03-23:00")
INCREMENTS = tuple(f"2023-04-04-{hour:02d}:00" for hour in range(6))


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds of each step of a run, from its start and end events."""
    return {stats.step_key: (stats.end_time or 0.0) - (stats.start_time or 0.0)
            for stats in instance.get_run_step_stats(run_id)}


def dbt_seconds(target_dir: Path) -> dict[str, float]:
    """dbt's own figures for its last invocation: elapsed time, and the summed times of models and tests."""
    results = json.loads((target_dir / "run_results.json").read_text(encoding="utf-8"))
    by_kind = {"model": 0.0, "test": 0.0}
    for result in results["results"]:
        kind = result["unique_id"].split(".")[0]
        by_kind[kind] = by_kind.get(kind, 0.0) + result["execution_time"]
    return {"elapsed": results["elapsed_time"], "nodes": len(results["results"]), **by_kind}


# The work of a launched run's process before its first step: import the code location and build it.
LOAD_SCRIPT = """
import sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from orchestration.definitions import HOURLY_JOB, build_definitions
build_definitions(Path(sys.argv[2]), Path(sys.argv[3])).resolve_job_def(HOURLY_JOB)
print(time.perf_counter() - started)
"""


def code_location_seconds(run_file: Path, home: Path) -> float:
    """Seconds a new Python process takes to import Riskcast's code location and resolve the hourly job."""
    output = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(REPOSITORY), str(run_file), str(home)],
                            capture_output=True, text=True, check=True, timeout=600).stdout
    return float(output.strip().splitlines()[-1])


def measure(folder: Path) -> list[dict]:
    run_file = write_run_file(folder)
    home = folder / "home"
    (folder / "dagster").mkdir()
    definitions = build_definitions(run_file, home)
    runs = []
    with dg.DagsterInstance.local_temp(str(folder / "dagster")) as instance:
        run_job(definitions, instance, WAREHOUSE_JOB)
        run_job(definitions, instance, FEATURES_JOB, range_tags_of(TRAIN_FEATURES))
        run_job(definitions, instance, TRAIN_JOB, {PARTITION_TAG: "2023-03-25"})
        for partition in INCREMENTS:
            started = time.perf_counter()
            result = run_job(definitions, instance, HOURLY_JOB, {PARTITION_TAG: partition})
            wall = time.perf_counter() - started
            runs.append({"partition": partition, "wall": wall, "steps": step_seconds(instance, result.run_id),
                         "dbt": dbt_seconds(RiskcastSettings(home=home, jurisdiction="scaledemo").dbt_target_dir)})
    runs[-1]["code_location"] = code_location_seconds(run_file, home)
    return runs


def report(runs: list[dict]) -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    load = os.getloadavg()[0]
    lines = [
        f"## {date.today().isoformat()}: one hourly increment, step by step",
        "",
        "- Command: `.venv/bin/python benchmarks/hourly_increment.py --record`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}; load average {load:.1f} after the runs",
        f"- Input: synthetic demo, {GRID} x {GRID} grid ({GRID * GRID} cells), 2023-01-01 to 2023-05-31; "
        f"`hourly_increment_job` in process on a persistent instance, partitions {INCREMENTS[0]} to {INCREMENTS[-1]}",
        "",
        "| partition | wall time | slowest steps | dbt: elapsed, nodes, models, tests | Dagster overhead |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        steps = sorted(run["steps"].items(), key=lambda item: -item[1])
        overhead = run["wall"] - sum(seconds for _, seconds in steps)
        slowest = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps[:4])
        dbt = run["dbt"]
        dbt_text = (f"{dbt['elapsed']:.1f} s, {dbt['nodes']}, {dbt['model']:.1f} s, {dbt['test']:.1f} s")
        lines.append(f"| {run['partition']} | {run['wall']:.1f} s | {slowest} | {dbt_text} | {overhead:.1f} s |")
    repeated = statistics.median(run["wall"] for run in runs[1:])
    outcome = "PASS" if repeated <= TARGET_SECONDS else "MISS"
    lines += [
        "",
        f"Median wall time of the runs after the first: {repeated:.1f} s, against <= {TARGET_SECONDS:.0f} s: "
        f"{outcome}.",
        "",
        f"The runs above execute in this process, as `riskcast` commands do. A run that the Dagster daemon "
        f"launches starts a new process, which imports the code location and builds the definitions before "
        f"its first step: {runs[-1]['code_location']:.1f} s here, on top of the wall time.",
    ]
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="add the figures to docs/benchmarks.md")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="riskcast-increment-") as scratch:
        runs = measure(Path(scratch))

    text = report(runs)
    print(text)
    for run in runs:
        print(f"{run['partition']}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in
                                                  sorted(run["steps"].items(), key=lambda item: -item[1])))
    if arguments.record:
        record(text)


if __name__ == "__main__":
    main()
