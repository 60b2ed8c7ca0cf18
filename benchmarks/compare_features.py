"""Feature build rate of Riskcast against plain pandas and against the earlier tool's SQL, in one run.

All three build from the same synthetic Chicago-size inputs as ``build_features.py`` (801 cells on
a queen-contiguity grid, about 260,000 incidents, hourly weather, 311 requests):

- Riskcast: ``ml.features.build_cell_hour_features`` over ``--riskcast-days`` days (default a
  whole year, 8,760 hours), in the 31-day pieces that the ``cell_hour_features`` asset builds. It is
  also timed on the small window below, so that the per-cell-hour rates compare like with like.
- pandas: ``ml.reference_features.pandas_cell_hour_features``, all panel columns, over the
  small window of ``--reference-days`` days (default 31, the asset's chunk) starting on 1 March.
- SQL: ``ml.reference_sql.sql_cell_hour_features``, a ``generate_series`` spine and correlated
  subqueries in DuckDB, over the same small window, for its subset of columns (crime lags, hours
  since, labels, weather, temperature changes and precipitation history: 56 of the 98 columns).

The references run on one month because a whole year of the SQL build would take several
minutes (an estimate: 7 million cell-hours at its rate of about 17,000 per second on 2 cores). Rates are in cell-hours per second,
and the ratios divide Riskcast's rate by the reference's. Every build first reads four weeks of
lookback, so a shorter window has a lower rate: with 7 days, the pandas rate is about half of
its rate over a month. The run also
checks that the three builds agree on the small window, so a figure never comes from a wrong
build. Run from the repository root:

    .venv/bin/python benchmarks/compare_features.py [--riskcast-days 365] [--reference-days 31] [--record]

``--record`` appends the figures to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks.build_features import INCIDENTS, LAYOUT, N_CELLS, REQUESTS, synthetic_inputs  # noqa: E402
from benchmarks.ingest_crimes import commit, record  # noqa: E402
from ml.features import FeatureInputs, build_cell_hour_features  # noqa: E402
from ml.reference_features import pandas_cell_hour_features  # noqa: E402
from ml.reference_sql import sql_cell_hour_features, sql_columns  # noqa: E402
from orchestration.assets.features import CHUNK  # noqa: E402
from orchestration.partitions import chunks  # noqa: E402

UTC = timezone.utc
YEAR = 2017
TIME_ZONE = "America/Chicago"
REFERENCE_START = datetime(YEAR, 3, 1, tzinfo=UTC)


def time_riskcast(inputs: FeatureInputs, start: datetime, end: datetime) -> tuple[int, float]:
    rows = 0
    began = time.perf_counter()
    for piece_start, piece_end in chunks(start, end, CHUNK):
        rows += build_cell_hour_features(inputs, LAYOUT, piece_start, piece_end, TIME_ZONE, "US", "IL").height
    return rows, time.perf_counter() - began


def assert_same(fast: pl.DataFrame, reference: pl.DataFrame, columns: list[str], label: str) -> None:
    """Stop the benchmark when a reference build disagrees with Riskcast on a compared column."""
    for name in columns:
        if name in ("cell_id", "hour"):
            same = fast[name].cast(pl.String).equals(reference[name].cast(pl.String))
        else:
            same = bool(np.allclose(fast[name].cast(pl.Float64).to_numpy(),
                                    reference[name].cast(pl.Float64).to_numpy(), rtol=1e-5, atol=1e-4))
        if not same:
            raise SystemExit(f"the {label} build differs from Riskcast in column {name}. Run "
                             f"tests/unit/test_reference_features.py to see the rows")


def run(riskcast_days: int, reference_days: int, sql_threads: int | None) -> dict[str, float]:
    inputs = synthetic_inputs(YEAR, np.random.default_rng(7))
    year_start = datetime(YEAR, 1, 1, tzinfo=UTC)
    reference_end = REFERENCE_START + timedelta(days=reference_days)

    riskcast_rows, riskcast_seconds = time_riskcast(inputs, year_start, year_start + timedelta(days=riskcast_days))
    small_rows, small_seconds = time_riskcast(inputs, REFERENCE_START, reference_end)
    fast = build_cell_hour_features(inputs, LAYOUT, REFERENCE_START, reference_end, TIME_ZONE, "US", "IL")

    began = time.perf_counter()
    reference = pandas_cell_hour_features(inputs, LAYOUT, REFERENCE_START, reference_end, TIME_ZONE, "US", "IL")
    pandas_seconds = time.perf_counter() - began
    assert_same(fast, pl.from_pandas(reference), fast.columns, "pandas")

    began = time.perf_counter()
    sql = sql_cell_hour_features(inputs, LAYOUT, REFERENCE_START, reference_end, threads=sql_threads)
    sql_seconds = time.perf_counter() - began
    assert_same(fast, sql, sql.columns, "SQL")

    return {"riskcast_rows": riskcast_rows, "riskcast": riskcast_seconds, "small_rows": small_rows,
            "riskcast_small": small_seconds, "pandas": pandas_seconds, "sql": sql_seconds,
            "columns": fast.width, "sql_columns": len(sql_columns(LAYOUT))}


def report(arguments: argparse.Namespace, figures: dict[str, float], load_before: float) -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    small_rows = figures["small_rows"]
    rates = {
        "riskcast": figures["riskcast_rows"] / figures["riskcast"],
        "riskcast_small": small_rows / figures["riskcast_small"],
        "pandas": small_rows / figures["pandas"],
        "sql": small_rows / figures["sql"],
    }
    window = f"{REFERENCE_START:%Y-%m-%d} + {arguments.reference_days} days"
    threads = "DuckDB default threads" if arguments.sql_threads is None else f"{arguments.sql_threads} DuckDB threads"
    sharing = ""
    if load_before >= 1.0:
        sharing = " (other work shared the cores, so the wall times are upper bounds)"
    return "\n".join([
        f"## {date.today().isoformat()}: feature build, Riskcast against pandas and the earlier tool's SQL",
        "",
        f"- Command: `.venv/bin/python benchmarks/compare_features.py --riskcast-days {arguments.riskcast_days} "
        f"--reference-days {arguments.reference_days} --record`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}; load average {load_before:.1f} before the run{sharing}",
        f"- Input: synthetic Chicago-size city, {N_CELLS} cells, {INCIDENTS:,} incidents, {REQUESTS:,} 311 "
        f"requests in {YEAR}; Riskcast over {figures['riskcast_rows']:,.0f} cell-hours from {YEAR}-01-01, the "
        f"references over {small_rows:,.0f} cell-hours ({window})",
        f"- Columns: Riskcast and pandas build all {figures['columns']}; the SQL builds "
        f"{figures['sql_columns']} (no neighbour means, 311 counts, calendar or cell columns), with {threads}",
        "- All three agreed on every compared value of the small window before the figures were kept",
        "",
        "| build | window | wall time | cell-hours per second | Riskcast / this |",
        "|---|---|---|---|---|",
        f"| Riskcast (numpy and polars) | {figures['riskcast_rows']:,.0f} cell-hours | {figures['riskcast']:.1f} s "
        f"| {rates['riskcast']:,.0f} | 1 |",
        f"| Riskcast (numpy and polars) | {window} | {figures['riskcast_small']:.2f} s "
        f"| {rates['riskcast_small']:,.0f} | 1 |",
        f"| pandas reference | {window} | {figures['pandas']:.1f} s | {rates['pandas']:,.0f} "
        f"| {rates['riskcast'] / rates['pandas']:,.0f}x (same window: "
        f"{rates['riskcast_small'] / rates['pandas']:,.0f}x) |",
        f"| SQL, generate_series and correlated subqueries | {window} | {figures['sql']:.1f} s "
        f"| {rates['sql']:,.0f} | {rates['riskcast'] / rates['sql']:,.0f}x (same window: "
        f"{rates['riskcast_small'] / rates['sql']:,.0f}x) |",
        "",
        "The ratios in the last column divide Riskcast's full-run rate by the reference's rate on its "
        "smaller window; the ratios in brackets use Riskcast's rate on that same window.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--riskcast-days", type=int, default=365,
                        help="days of Riskcast's timed build from 1 January (default 365, the whole year)")
    parser.add_argument("--reference-days", type=int, default=31,
                        help="days of the window that all three builds time and compare, from 1 March (default 31)")
    parser.add_argument("--sql-threads", type=int, default=None,
                        help="DuckDB threads for the SQL build (default: DuckDB's own, one per core)")
    parser.add_argument("--record", action="store_true", help="append the figures to docs/benchmarks.md")
    arguments = parser.parse_args()
    if not 1 <= arguments.riskcast_days <= 365 or not 1 <= arguments.reference_days <= 300:
        raise SystemExit(f"--riskcast-days {arguments.riskcast_days} must be 1 to 365 and --reference-days "
                         f"{arguments.reference_days} 1 to 300, so both windows stay inside {YEAR}")

    load_before = os.getloadavg()[0]
    figures = run(arguments.riskcast_days, arguments.reference_days, arguments.sql_threads)
    text = report(arguments, figures, load_before)
    print(text)
    if arguments.record:
        record(text)


if __name__ == "__main__":
    main()
