"""Fit and predict times of every baseline on a synthetic city of 800 cells.

The city is a 40 x 20 grid of 800 square cells 800 m apart. Crimes follow a
grid Hawkes process (theta 0.4, mean triggering delay 12 hours) with about
30,000 crimes a year, the size of Chicago's violent crime. CompStat gets the
complete spine of 3 years and a day (800 x 26,328 = 21,062,400 rows); the others get the
sparse history of crime rows. For each baseline the script prints the time of
one fit at the cutoff and of one predict of 800 cells x 24 hours. For SEPP it
also prints a second fit one day later, which keeps the EM parameters.
Run from the repository root:

    .venv/bin/python benchmarks/baselines.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from ml.baselines import BASELINE_NAMES, make_baseline  # noqa: E402

START = datetime(2014, 6, 30, 5, tzinfo=timezone.utc)
N_YEARS = 3
N_DAYS = 1096  # the 3 years before the cutoff 2017-07-01, with 29 February 2016
N_COLUMNS = 40
N_ROWS = 20
SPACING_M = 800.0
THETA = 0.4
OMEGA = 1 / 12


def build_cells() -> pl.DataFrame:
    """Return the 800 grid cells as cell_id, x_m, y_m and area_km2."""
    column, row = np.meshgrid(np.arange(N_COLUMNS), np.arange(N_ROWS))
    n_cells = N_COLUMNS * N_ROWS
    return pl.DataFrame(
        {
            "cell_id": [f"cell{index:04d}" for index in range(n_cells)],
            "x_m": column.ravel() * SPACING_M,
            "y_m": row.ravel() * SPACING_M,
            "area_km2": np.full(n_cells, (SPACING_M / 1000) ** 2),
        }
    )


def simulate_crimes(cell_ids: list[str], n_hours: int, seed: int) -> pl.DataFrame:
    """Return a sparse history (cell_id, hour, crime_count) of a grid Hawkes process with about 30,000 crimes a year."""
    rng = np.random.default_rng(seed)
    yearly_background = 30_000 * (1 - THETA)
    background = rng.gamma(1.5, 1.0, len(cell_ids))
    background *= yearly_background / 8760 / background.sum()

    cells = np.repeat(np.arange(len(cell_ids)), rng.poisson(background * n_hours))
    times = rng.uniform(0, n_hours, cells.size)
    all_cells, all_times = [cells], [times]
    while cells.size:
        n_children = rng.poisson(THETA, cells.size)
        cells = np.repeat(cells, n_children)
        times = np.repeat(times, n_children) + rng.exponential(1 / OMEGA, cells.size)
        all_cells.append(cells[times < n_hours])
        all_times.append(times[times < n_hours])
        cells, times = all_cells[-1], all_times[-1]

    frame = pl.DataFrame({"cell_index": np.concatenate(all_cells), "hour_index": np.concatenate(all_times).astype(np.int64)})
    counted = frame.group_by("cell_index", "hour_index").agg(crime_count=pl.len().cast(pl.Int64))
    return counted.select(
        cell_id=pl.Series(cell_ids).gather(counted["cell_index"]),
        hour=pl.lit(START).dt.convert_time_zone("UTC") + pl.duration(hours=pl.col("hour_index")),
        crime_count="crime_count",
    ).sort("cell_id", "hour")


def build_spine(cell_ids: list[str], sparse: pl.DataFrame, n_hours: int) -> pl.DataFrame:
    """Return every cell-hour with its count, zeros included."""
    hours = pl.datetime_range(START, START + timedelta(hours=n_hours - 1), "1h", eager=True, time_zone="UTC")
    spine = pl.DataFrame({"cell_id": cell_ids}).join(pl.DataFrame({"hour": hours}), how="cross")
    return spine.join(sparse, on=["cell_id", "hour"], how="left").with_columns(pl.col("crime_count").fill_null(0))


def timed(action: Callable[[], object]) -> tuple[float, object]:
    """Return the wall-clock seconds of `action()` and its result."""
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    cells = build_cells()
    cell_ids = cells["cell_id"].to_list()
    n_hours = N_DAYS * 24 + 24
    cutoff = START + timedelta(days=N_DAYS)

    sparse = simulate_crimes(cell_ids, n_hours, seed=1)
    spine = build_spine(cell_ids, sparse, n_hours)
    hours = pl.datetime_range(cutoff, cutoff + timedelta(hours=23), "1h", eager=True, time_zone="UTC")
    targets = pl.DataFrame({"cell_id": cell_ids}).join(pl.DataFrame({"hour": hours}), how="cross")
    n_crimes = int(sparse["crime_count"].sum())
    print(f"{len(cell_ids)} cells, {n_crimes} crimes in {N_YEARS} years ({sparse.height} cell-hours with crimes), "
          f"spine {spine.height} rows, {targets.height} target rows")

    for name in BASELINE_NAMES:
        history = spine if name in ("compstat", "compstat_day", "naive") else sparse
        model = make_baseline(name, cells=cells, time_zone="America/Chicago", seed=0)
        fit_seconds, _ = timed(lambda: model.fit(history, cutoff))
        predict_seconds, _ = timed(lambda: model.predict(targets))
        line = f"{name:22s} fit {fit_seconds:7.3f} s   predict {predict_seconds:7.3f} s"
        if name == "sepp":
            next_day = cutoff + timedelta(days=1)
            refit_seconds, _ = timed(lambda: model.fit(history, next_day))
            result = model.fit_result
            line += (f"   next-day fit {refit_seconds:6.3f} s (EM {model.ran_em}); theta {result.theta:.3f}, "
                     f"omega {result.omega:.4f}, {result.n_iterations} iterations, converged {result.converged}")
        print(line)


if __name__ == "__main__":
    main()
