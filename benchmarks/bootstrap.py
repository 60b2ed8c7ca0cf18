"""Time of the paired day bootstrap on a synthetic evaluation the size of half a Chicago year.

The rows are 180 days x 24 hours x 801 cells = 3,460,320 cell-hours. Cells have
unequal areas and gamma-distributed crime rates with a daily cycle, about 0.2% of
cell-hours have a crime, and model a ranks cells better than model b. The script
times the per-day statistics and the resampling separately and prints the table of
`ml.bootstrap.paired_day_bootstrap`. Run from the repository root:

    .venv/bin/python benchmarks/bootstrap.py [--n-boot 1000] [--record]

``--record`` adds the figures to docs/benchmarks.md (newest first).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks.ingest_crimes import commit, record  # noqa: E402
from ml.bootstrap import paired_day_bootstrap  # noqa: E402

N_DAYS = 180
N_HOURS = 24
N_CELLS = 801
BASE_RATE = 0.002


def synthetic_rows(seed: int) -> dict[str, np.ndarray]:
    """Return aligned arrays for N_DAYS x N_HOURS x N_CELLS cell-hours of two models."""
    rng = np.random.default_rng(seed)
    n_rows = N_DAYS * N_HOURS * N_CELLS

    cell_rate = rng.gamma(0.7, 1.0, N_CELLS)
    hour_cycle = 1 + 0.6 * np.sin(2 * np.pi * (np.arange(N_HOURS) - 15) / 24)
    rate = np.outer(hour_cycle, cell_rate).ravel()
    rate = np.tile(rate, N_DAYS)
    rate *= BASE_RATE / rate.mean()

    hour_index = np.repeat(np.arange(N_DAYS * N_HOURS), N_CELLS)
    crime_count = rng.poisson(rate)
    score_a = np.log(rate) + rng.normal(0, 0.5, n_rows)
    score_b = np.log(rate) + rng.normal(0, 1.0, n_rows)
    return {
        "day_ids": hour_index // N_HOURS,
        "slice_ids": hour_index,
        "crime_count": crime_count,
        "area_km2": np.tile(rng.uniform(0.3, 6.0, N_CELLS), N_DAYS * N_HOURS),
        "score_a": score_a,
        "score_b": score_b,
        "probability_a": 1 - np.exp(-np.exp(score_a)),
        "probability_b": 1 - np.exp(-np.exp(score_b)),
    }


def report(n_rows: int, n_boot: int, seconds: float, table: pl.DataFrame) -> str:
    """Format the benchmark entry for docs/benchmarks.md."""
    lines = ["| metric | model a | model b | difference, 95% interval | p-value |", "|---|---|---|---|---|"]
    for row in table.iter_rows(named=True):
        if row["estimate_a"] is None:
            continue
        lines.append(f"| {row['metric']} | {row['estimate_a']:.4g} | {row['estimate_b']:.4g} | "
                     f"{row['diff_ci_low']:.4g} to {row['diff_ci_high']:.4g} | {row['p_value']:.3g} |")
    summary_table = "\n".join(lines)
    return (
        f"## {date.today().isoformat()}: paired day bootstrap on synthetic cell-hours\n\n"
        f"- Command: `.venv/bin/python benchmarks/bootstrap.py --n-boot {n_boot} --record`\n"
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, Python {platform.python_version()}\n"
        f"- Input: {N_DAYS} days x {N_HOURS} hours x {N_CELLS} cells = {n_rows:,} rows, two models with "
        f"probabilities, coverage 0.05, {n_boot} resamples\n"
        f"- Wall time: {seconds:.1f} s\n\n{summary_table}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=1000, help="number of bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of the resampling")
    parser.add_argument("--record", action="store_true", help="add the figures to docs/benchmarks.md")
    arguments = parser.parse_args()

    rows = synthetic_rows(arguments.seed)
    n_rows = rows["crime_count"].size
    print(f"{n_rows:,} rows, {int((rows['crime_count'] > 0).sum()):,} with a crime")

    started = time.perf_counter()
    table = paired_day_bootstrap(**rows, coverage=0.05, n_boot=arguments.n_boot, seed=arguments.seed)
    seconds = time.perf_counter() - started

    with pl.Config(tbl_cols=-1, tbl_width_chars=200):
        print(table)
    print(f"paired_day_bootstrap: {seconds:.1f} s for {arguments.n_boot} resamples")
    if arguments.record:
        record(report(n_rows, arguments.n_boot, seconds, table))


if __name__ == "__main__":
    main()
