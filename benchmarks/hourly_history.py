"""dbt's part of an hourly increment on a long history: the hourly job's models on four Chicago city-years.

``hourly_increment.py`` measures the hourly job on a synthetic city with five months of data. The
hourly job rebuilds its dbt models as whole tables, so their time grows with the history. This
script builds the warehouse of four real Chicago city-years (2014 to 2017, 801 tracts) with
``warehouse_job``. Then it runs ``dbt build`` twice on exactly the models that
``hourly_increment_job`` selects, with their tests. The first run parses the project, and the
second is what each later hour repeats. It prints dbt's wall time, its own elapsed time, the summed times of models
and tests, and the slowest models. Run from the repository root:

    .venv/bin/python benchmarks/hourly_history.py [--folder DIR] [--record]

``--folder`` keeps the warehouse in DIR (built there when missing) instead of a temporary folder.
``--record`` adds the figures to docs/benchmarks.md (newest first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks.end_to_end import SHARED_CHICAGO, build_scenario, write_run_file  # noqa: E402
from benchmarks.ingest_crimes import commit, record  # noqa: E402
from benchmarks.hourly_increment import dbt_seconds  # noqa: E402
from orchestration.dbt import DBT_PROJECT_DIR, dbt_environment, dbt_executable, dbt_vars  # noqa: E402
from orchestration.definitions import HOURLY_JOB, WAREHOUSE_JOB  # noqa: E402
from orchestration.hourly import WAREHOUSE_GROUP  # noqa: E402
from orchestration.runner import prepare_run, run_job  # noqa: E402

SLOWEST = 6


def build_warehouse(folder: Path):
    """Build the four-year warehouse in ``folder`` unless it is there, and return the prepared run."""
    run_file = folder / "run.yaml"
    if not run_file.is_file():
        run_file = write_run_file(folder, build_scenario("four-years", False))
    context = prepare_run(run_file, folder / "home")
    if not context.settings.warehouse_path.is_file():
        with dg.DagsterInstance.ephemeral() as instance:
            run_job(context.definitions, instance, WAREHOUSE_JOB)
    return context


def hourly_models(definitions: dg.Definitions) -> list[str]:
    """Names of the dbt models that ``hourly_increment_job`` builds."""
    job = definitions.resolve_job_def(HOURLY_JOB)
    graph = definitions.resolve_asset_graph()
    return sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys
                  if graph.get(key).group_name == WAREHOUSE_GROUP)


def run_dbt(context, models: list[str], target: Path) -> float:
    """Run ``dbt build`` on ``models`` against the run's warehouse and return the wall time."""
    environment = {**os.environ, **dbt_environment(context.settings, context.run.memory_limit_gb),
                   "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(target)}
    arguments = [dbt_executable(), "build", "--vars", json.dumps(dbt_vars(context.jurisdiction)),
                 "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet",
                 "--select", *models]
    started = time.perf_counter()
    subprocess.run(arguments, env=environment, cwd=DBT_PROJECT_DIR, check=True)
    return time.perf_counter() - started


def slowest_models(target: Path) -> str:
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))["results"]
    models = sorted((result for result in results if result["unique_id"].startswith("model.")),
                    key=lambda result: -result["execution_time"])
    return ", ".join(f"{result['unique_id'].split('.')[-1]} {result['execution_time']:.1f} s"
                     for result in models[:SLOWEST])


def measure(folder: Path) -> dict:
    context = build_warehouse(folder)
    models = hourly_models(context.definitions)
    target = folder / "hourly-target"
    first = run_dbt(context, models, target)
    second = run_dbt(context, models, target)
    return {"models": len(models), "first": first, "second": second, "dbt": dbt_seconds(target),
            "slowest": slowest_models(target)}


def report(figures: dict) -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    dbt = figures["dbt"]
    return "\n".join([
        f"## {date.today().isoformat()}: the hourly job's dbt models on four Chicago city-years",
        "",
        "- Command: `.venv/bin/python benchmarks/hourly_history.py --record`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f} after the runs",
        "- Input: real Chicago extracts 2014 to 2017, 801 census tracts; the warehouse built by `warehouse_job`, "
        f"then `dbt build` of the {figures['models']} models that `hourly_increment_job` selects, with their tests",
        "",
        "| figure | value |",
        "|---|---|",
        f"| dbt build, first run (parses the project) | {figures['first']:.1f} s |",
        f"| dbt build, second run (what each later hour repeats) | {figures['second']:.1f} s |",
        f"| dbt's own elapsed time, second run | {dbt['elapsed']:.1f} s ({dbt['nodes']} nodes) |",
        f"| summed model times, summed test times | {dbt['model']:.1f} s, {dbt['test']:.1f} s |",
        f"| slowest models | {figures['slowest']} |",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="keep the warehouse in this folder")
    parser.add_argument("--record", action="store_true", help="add the figures to docs/benchmarks.md")
    arguments = parser.parse_args()
    if not SHARED_CHICAGO.is_dir():
        raise SystemExit(f"Chicago extracts not found in {SHARED_CHICAGO}; set RISKCAST_SHARED_DATA to the folder "
                         f"that contains chicago/")

    if arguments.folder is not None:
        figures = measure(arguments.folder)
    else:
        with tempfile.TemporaryDirectory(prefix="riskcast-hourly-history-") as scratch:
            figures = measure(Path(scratch))

    text = report(figures)
    print(text)
    if arguments.record:
        record(text)


if __name__ == "__main__":
    main()
