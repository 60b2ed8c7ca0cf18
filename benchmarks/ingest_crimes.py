"""Crime ingest throughput on one year of real Chicago crimes: raw ingest, then the warehouse job.

Two figures, each in rows per second of the year's extract:

- raw ingest: reading the portal CSV into canonical text columns (header and timestamp checks
  included) and storing it in ``raw.crime_incidents`` with its Parquet copy;
- warehouse job: the whole Dagster ``warehouse_job`` (raw assets, then ``dbt build`` with typing,
  local-to-UTC conversion, deduplication, the tract join and the data tests, then the input audit).

The extracts folder is a temporary folder of symbolic links to ``../shared/data/chicago``, holding
only the chosen year's crime file, so nothing is copied. Run from the repository root:

    .venv/bin/python benchmarks/ingest_crimes.py [--year 2017] [--record]

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
from datetime import date
from pathlib import Path

import dagster as dg

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from orchestration.assets.raw import store_raw_table  # noqa: E402
from orchestration.definitions import WAREHOUSE_JOB, build_definitions  # noqa: E402
from orchestration.ingest import read_crime_extracts  # noqa: E402
from orchestration.jurisdiction import RUNS_DIR, load_jurisdiction  # noqa: E402

SHARED_CHICAGO = Path(os.environ.get("RISKCAST_SHARED_DATA", REPOSITORY.parent / "shared" / "data")) / "chicago"


def linked_extracts(folder: Path, year: int) -> Path:
    """Make an extracts folder that links one year of crimes, the weather and the tracts."""
    for name in ("weather", "boundaries"):
        (folder / name).symlink_to(SHARED_CHICAGO / name, target_is_directory=True)
    (folder / "crimes").mkdir()
    source = SHARED_CHICAGO / "crimes" / f"chicago_crimes_{year}.csv.gz"
    if not source.is_file():
        raise SystemExit(f"{source} not found; the benchmark needs ../shared/data/chicago beside the repository")
    (folder / "crimes" / source.name).symlink_to(source)
    return folder


def time_raw_ingest(extracts: Path, home: Path) -> tuple[int, float]:
    jurisdiction = load_jurisdiction("chicago")
    started = time.perf_counter()
    extract = read_crime_extracts(extracts, jurisdiction.crimes)
    store_raw_table(home / "raw-only.duckdb", home / "raw", "crime_incidents", extract.frame)
    return extract.frame.height, time.perf_counter() - started


def time_warehouse_job(extracts: Path, home: Path, year: int) -> float:
    run_file = home / "run.yaml"
    run_file.write_text(
        (RUNS_DIR / "chicago.yaml").read_text(encoding="utf-8").replace(
            "extracts_folder: ../../../shared/data/chicago", f"extracts_folder: {extracts}"),
        encoding="utf-8")
    definitions = build_definitions(run_file, home / "home")
    started = time.perf_counter()
    result = definitions.resolve_job_def(WAREHOUSE_JOB).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    if not result.success:
        raise SystemExit(f"warehouse_job failed on the {year} extract")
    return time.perf_counter() - started


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY, capture_output=True,
                          text=True, check=False).stdout.strip() or "unknown"


def report(year: int, rows: int, raw_seconds: float, job_seconds: float) -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return "\n".join([
        f"## {date.today().isoformat()}: crime ingest throughput, Chicago {year}",
        "",
        "- Command: `.venv/bin/python benchmarks/ingest_crimes.py --year "
        f"{year} --record`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}",
        f"- Input: chicago_crimes_{year}.csv.gz, {rows:,} rows; O'Hare LCD 2017; 801 census tracts",
        "",
        "| step | wall time | rows per second |",
        "|---|---|---|",
        f"| raw ingest (read, check, store) | {raw_seconds:.1f} s | {rows / raw_seconds:,.0f} |",
        f"| warehouse job (raw assets, dbt build, audits) | {job_seconds:.1f} s | {rows / job_seconds:,.0f} |",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", type=int, default=2017, choices=[2014, 2015, 2016, 2017])
    parser.add_argument("--record", action="store_true", help="append the figures to docs/benchmarks.md")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="riskcast-ingest-") as scratch:
        folder = Path(scratch)
        (folder / "extracts").mkdir()
        extracts = linked_extracts(folder / "extracts", arguments.year)
        rows, raw_seconds = time_raw_ingest(extracts, folder)
        job_seconds = time_warehouse_job(extracts, folder, arguments.year)

    text = report(arguments.year, rows, raw_seconds, job_seconds)
    print(text)
    if arguments.record:
        record(text)


def record(text: str) -> None:
    """Insert the entry after the title and intro of docs/benchmarks.md, so the newest comes first."""
    path = REPOSITORY / "docs" / "benchmarks.md"
    content = path.read_text(encoding="utf-8")
    marker = content.index("\n## ")
    path.write_text(content[:marker] + "\n" + text + content[marker:], encoding="utf-8")


if __name__ == "__main__":
    main()
