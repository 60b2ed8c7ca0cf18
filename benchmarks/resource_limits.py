"""Peak memory and wall time of the crime ingest on synthetic extracts of 1 to 10 Chicago city-years.

For each size, the script writes one gzip CSV in the portal's 22-column layout
(``ml.demo.bulk_crimes``, 260,000 rows per city-year, streamed to disk chunk by chunk). It then
runs each step in a fresh child process and reads that process's peak resident set size. The
figure is ``ru_maxrss`` from ``wait4``: the largest of the child and the processes it waited for,
such as dbt, not their sum.

- first ingest: the ``raw_crime_incidents`` asset into an empty warehouse;
- re-ingest: the same asset again, which also loads the stored table and compares the versions;
- warehouse job (with ``--warehouse-job``): the whole ``warehouse_job`` on a fresh warehouse,
  with the Chicago weather, 311, boundaries and demographics from ``RISKCAST_SHARED_DATA/chicago``
  (default ``../shared/data/chicago``), ``dbt build`` included;
- limit check: the first ingest with ``memory_limit_gb`` set below the estimate, which must fail
  before reading.

Run from the repository root:

    .venv/bin/python benchmarks/resource_limits.py [--years 1 2 4 10] [--warehouse-job] [--memory-limit-gb N] [--record]

``--record`` appends the figures to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from ml.demo.bulk_crimes import ROWS_PER_CITY_YEAR, write_bulk_crime_csv  # noqa: E402
from orchestration.jurisdiction import RUNS_DIR  # noqa: E402

SHARED_CHICAGO = Path(os.environ.get("RISKCAST_SHARED_DATA", REPOSITORY.parent / "shared" / "data")) / "chicago"
CHILD_FLAG = "--child"


@dataclass(frozen=True)
class StepFigures:
    step: str
    seconds: float
    peak_rss_bytes: int
    outcome: str


def write_extracts(folder: Path, years: int, with_context: bool) -> int:
    """Write ``years`` city-years of crimes under ``folder/crimes``; link weather and tracts when asked."""
    (folder / "crimes").mkdir(parents=True)
    path = folder / "crimes" / f"chicago_crimes_synthetic_{years}y.csv.gz"
    written = write_bulk_crime_csv(path, years * ROWS_PER_CITY_YEAR)
    if with_context:
        for name in ("weather", "boundaries", "311", "demographics"):
            (folder / name).symlink_to(SHARED_CHICAGO / name, target_is_directory=True)
    return written


def write_run_file(folder: Path, extracts: Path, memory_limit_gb: float | None) -> Path:
    text = (RUNS_DIR / "chicago.yaml").read_text(encoding="utf-8").replace(
        "extracts_folder: ../../../shared/data/chicago", f"extracts_folder: {extracts}")
    if memory_limit_gb is not None:
        text += f"\nmemory_limit_gb: {memory_limit_gb}\n"
    path = folder / f"run-{memory_limit_gb or 'default'}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_child(step: str, run_file: Path, home: Path) -> StepFigures:
    """Run one step in a child process and return its wall time, peak RSS and outcome."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, CHILD_FLAG, step, str(run_file), str(home)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    lines = [line for line in output.splitlines() if line.startswith("OUTCOME ")]
    outcome = lines[-1].removeprefix("OUTCOME ") if lines else f"exit status {status}: {output[-2000:]}"
    # ru_maxrss is in KiB on Linux.
    return StepFigures(step, seconds, usage.ru_maxrss * 1024, outcome)


def child(step: str, run_file: Path, home: Path) -> None:
    """Run one step in this process and print its outcome on a line starting with OUTCOME."""
    import dagster as dg

    from orchestration.assets.raw import raw_crime_incidents
    from orchestration.definitions import WAREHOUSE_JOB, build_definitions
    from orchestration.memory_limits import ExtractTooLargeError

    definitions = build_definitions(run_file, home)
    try:
        if step == "warehouse job":
            result = definitions.resolve_job_def(WAREHOUSE_JOB).execute_in_process(
                instance=dg.DagsterInstance.ephemeral())
        else:
            result = dg.materialize([raw_crime_incidents], resources=definitions.resources,
                                    instance=dg.DagsterInstance.ephemeral())
    except ExtractTooLargeError as error:
        print(f"OUTCOME rejected: {error}")
        return
    print("OUTCOME succeeded" if result.success else "OUTCOME failed")


def measure_size(scratch: Path, years: int, warehouse_job: bool,
                 memory_limit_gb: float | None) -> tuple[int, list[StepFigures]]:
    extracts = scratch / f"extracts-{years}y"
    file_bytes = write_extracts(extracts, years, warehouse_job)
    run_file = write_run_file(scratch, extracts, memory_limit_gb)

    home = scratch / f"home-{years}y"
    steps = [run_child("first ingest", run_file, home), run_child("re-ingest", run_file, home)]
    if warehouse_job:
        steps.append(run_child("warehouse job", run_file, scratch / f"home-{years}y-job"))

    low_limit = write_run_file(scratch, extracts, 1.0)
    steps.append(run_child("limit check (memory_limit_gb: 1)", low_limit, scratch / f"home-{years}y-low"))
    return file_bytes, steps


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY, capture_output=True,
                          text=True, check=False).stdout.strip() or "unknown"


def report(results: dict[int, tuple[int, list[StepFigures]]], command: str, memory_limit: float | None) -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    load = os.getloadavg()[0]
    lines = [
        f"## {date.today().isoformat()}: crime ingest memory on 1 to 10 synthetic Chicago city-years",
        "",
        f"- Command: `.venv/bin/python benchmarks/resource_limits.py {command}`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}; load average {load:.1f} at the end (other sessions "
        f"shared the cores, so wall times are upper bounds)",
        f"- Input: one gzip CSV per size in the portal's 22-column layout, {ROWS_PER_CITY_YEAR:,} rows "
        f"per city-year (`ml.demo.bulk_crimes`); peak RSS is `ru_maxrss` of the child process",
        "- Target: 4 city-years end to end within 4 GB peak RSS",
        f"- Run file: memory_limit_gb {memory_limit if memory_limit is not None else 'unset (55% of RAM)'}; "
        "the limit check sets 1",
        "",
        "| city-years | rows | gzip file | step | wall time | peak RSS | outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    for years, (file_bytes, steps) in results.items():
        for step in steps:
            outcome = step.outcome if len(step.outcome) < 60 else step.outcome[:57] + "..."
            lines.append(f"| {years} | {years * ROWS_PER_CITY_YEAR:,} | {file_bytes / 1e6:.0f} MB | {step.step} "
                         f"| {step.seconds:.1f} s | {step.peak_rss_bytes / 1e9:.2f} GB | {outcome} |")
    rejected = [step.outcome for _, steps in results.values() for step in steps if step.outcome.startswith("rejected")]
    if rejected:
        lines += ["", f"The limit check's message: \"{rejected[-1].removeprefix('rejected: ')}\""]
    return "\n".join(lines + [""])


def record(text: str) -> None:
    """Insert the entry after the title and intro of docs/benchmarks.md, so the newest comes first."""
    path = REPOSITORY / "docs" / "benchmarks.md"
    content = path.read_text(encoding="utf-8")
    marker = content.index("\n## ")
    path.write_text(content[:marker] + "\n" + text + content[marker:], encoding="utf-8")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, nargs="+", default=[1, 2, 4, 10],
                        help="sizes to measure, in Chicago city-years")
    parser.add_argument("--warehouse-job", action="store_true",
                        help="also run the whole warehouse_job (dbt build included) at each size")
    parser.add_argument("--memory-limit-gb", type=float, default=None,
                        help="memory_limit_gb of the run file in GiB (default: unset, 55%% of physical memory)")
    parser.add_argument("--record", action="store_true", help="append the figures to docs/benchmarks.md")
    arguments = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory(prefix="riskcast-memory-") as scratch:
        for years in arguments.years:
            results[years] = measure_size(Path(scratch), years, arguments.warehouse_job, arguments.memory_limit_gb)
            for step in results[years][1]:
                print(f"{years} city-years, {step.step}: {step.seconds:.1f} s, "
                      f"{step.peak_rss_bytes / 1e9:.2f} GB peak RSS, {step.outcome}", flush=True)

    text = report(results, " ".join(sys.argv[1:]), arguments.memory_limit_gb)
    print(text)
    if arguments.record:
        record(text)


if __name__ == "__main__":
    main()
