"""Time of the bias audit's group metrics on a synthetic backtest the size of Chicago 2017 H2.

The rows are 184 days x 24 hours x 801 cells = 3,536,736 cell-hours with two models
(ensemble and compstat) and six groups: the five default groups of `ml.bias` and the
top two quintiles of Asian share. Crime rates are gamma-distributed per cell with a
daily cycle, and the cells' Black share rises with their rate, so the groups differ.
Run from the repository root:

    .venv/bin/python benchmarks/bias.py [--n-boot 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from ml.bias import DEFAULT_GROUPS, GroupDefinition, assign_groups, disparity_gate, group_metrics  # noqa: E402

N_DAYS = 184
N_HOURS = 24
N_CELLS = 801
BASE_RATE = 0.002
GROUPS = (*DEFAULT_GROUPS, GroupDefinition("asian_share_q45", "nh_asian_share", (4, 5)))


def synthetic_demographics(rng: np.random.Generator, cell_rate: np.ndarray) -> pl.DataFrame:
    """Return one demographics row per cell, with Black share rising with the cell's crime rate."""
    rank = cell_rate.argsort().argsort() / (N_CELLS - 1)
    black = np.clip(rank * 0.8 + rng.uniform(0, 0.2, N_CELLS), 0, 1)
    hispanic = (1 - black) * rng.uniform(0, 0.6, N_CELLS)
    asian = (1 - black - hispanic) * rng.uniform(0, 0.3, N_CELLS)
    return pl.DataFrame({
        "cell_id": [f"{number:04d}" for number in range(N_CELLS)],
        "population": rng.integers(500, 8000, N_CELLS).astype(np.float64),
        "nh_black_share": black,
        "hispanic_share": hispanic,
        "nh_asian_share": asian,
        "nh_white_share": 1 - black - hispanic - asian,
        "per_capita_income": 60000 * (1 - rank) + rng.normal(0, 5000, N_CELLS),
    })


def synthetic_frame(rng: np.random.Generator, cell_rate: np.ndarray) -> pl.DataFrame:
    """Return N_DAYS x N_HOURS x N_CELLS cell-hours with incidents and two models' risks."""
    hour_cycle = 1 + 0.6 * np.sin(2 * np.pi * (np.arange(N_HOURS) - 15) / 24)
    rate = np.tile(np.outer(hour_cycle, cell_rate).ravel(), N_DAYS)
    rate *= BASE_RATE / rate.mean()
    n_rows = rate.size

    start = datetime(2017, 7, 1, 5, tzinfo=timezone.utc)
    hours = pl.datetime_range(start, start + timedelta(hours=N_DAYS * N_HOURS - 1), "1h", eager=True, time_zone="UTC")
    return pl.DataFrame({
        "cell_id": np.tile([f"{number:04d}" for number in range(N_CELLS)], N_DAYS * N_HOURS),
        "hour": np.repeat(hours.to_numpy(), N_CELLS),
        "crime_count": rng.poisson(rate),
        "area_km2": np.tile(rng.uniform(0.3, 6.0, N_CELLS), N_DAYS * N_HOURS),
        "ensemble": np.log(rate) + rng.normal(0, 0.5, n_rows),
        "compstat": np.log(rate) + rng.normal(0, 1.0, n_rows),
    }).with_columns(pl.col("hour").dt.replace_time_zone("UTC"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=200, help="number of bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of the resampling")
    arguments = parser.parse_args()

    rng = np.random.default_rng(arguments.seed)
    cell_rate = rng.gamma(0.7, 1.0, N_CELLS)
    groups = assign_groups(synthetic_demographics(rng, cell_rate), GROUPS)
    frame = synthetic_frame(rng, cell_rate)
    print(f"{frame.height:,} rows, {int((frame['crime_count'] > 0).sum()):,} with a crime")

    started = time.perf_counter()
    metrics = group_metrics(frame, groups, GROUPS, coverage=0.05, n_boot=arguments.n_boot, seed=arguments.seed)
    seconds = time.perf_counter() - started

    summary_rows = metrics.filter(pl.col("metric").is_in(["flag_rate", "tpr", "exposure_to_population"]))
    with pl.Config(tbl_cols=-1, tbl_rows=40, tbl_width_chars=160, fmt_str_lengths=40):
        print(summary_rows.select("model", "group", "metric", "value", "ci_low", "ci_high", "reference_value", "ratio"))
    print(disparity_gate(metrics).message)
    print(f"group_metrics: {seconds:.1f} s for {len(GROUPS)} groups, 2 models, {arguments.n_boot} resamples")


if __name__ == "__main__":
    main()
