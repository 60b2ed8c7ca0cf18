"""Simulated crimes for baseline tests: Poisson hotspots and self-exciting (Hawkes) grid processes.

The Hawkes simulation uses the branching (cluster) representation of Hawkes
processes: background crimes arrive as a Poisson process per cell, and each
crime starts a Poisson(theta) number of children after exponential delays
with rate omega, generation by generation.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

START = datetime(2017, 1, 2, 6, tzinfo=timezone.utc)


def grid_cells(n_side: int, spacing_m: float) -> pl.DataFrame:
    """Return an n_side x n_side grid of square cells named c000, c001, ... with centroids `spacing_m` apart."""
    ix, iy = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="xy")
    n_cells = n_side * n_side
    return pl.DataFrame(
        {
            "cell_id": [f"c{index:03d}" for index in range(n_cells)],
            "x_m": (ix.ravel() * spacing_m).astype(np.float64),
            "y_m": (iy.ravel() * spacing_m).astype(np.float64),
            "area_km2": np.full(n_cells, (spacing_m / 1000) ** 2),
        }
    )


def simulate_hawkes(
    background_rate: np.ndarray,
    theta: float,
    omega: float,
    n_hours: int,
    seed: int,
    neighbours: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (cell index, continuous time in hours) of crimes of a grid Hawkes process on [0, n_hours).

    `background_rate` is crimes per hour per cell. Each crime triggers
    Poisson(theta) children after Exp(omega) delays, in its own cell, or, when
    `neighbours` is given, in a cell drawn uniformly from neighbours[cell]
    (which should list the cell itself to keep some children at home).
    """
    rng = np.random.default_rng(seed)

    n_background = rng.poisson(background_rate * n_hours)
    cells = np.repeat(np.arange(background_rate.size), n_background)
    times = rng.uniform(0, n_hours, cells.size)
    all_cells = [cells]
    all_times = [times]

    while cells.size:
        n_children = rng.poisson(theta, cells.size)
        parent_cells = np.repeat(cells, n_children)
        times = np.repeat(times, n_children) + rng.exponential(1 / omega, parent_cells.size)
        if neighbours is None:
            cells = parent_cells
        else:
            cells = np.array([rng.choice(neighbours[cell]) for cell in parent_cells], dtype=np.int64)
        inside = times < n_hours
        cells = cells[inside]
        times = times[inside]
        all_cells.append(cells)
        all_times.append(times)

    return np.concatenate(all_cells), np.concatenate(all_times)


def counts_frame(cell_ids: list[str], cells: np.ndarray, times: np.ndarray, start: datetime = START) -> pl.DataFrame:
    """Return the sparse history (cell_id, hour, crime_count) of crimes at continuous hours since `start`."""
    frame = pl.DataFrame({"cell_index": cells.astype(np.int64), "hour_index": np.floor(times).astype(np.int64)})
    counted = frame.group_by("cell_index", "hour_index").agg(crime_count=pl.len().cast(pl.Int64))
    names = pl.Series(cell_ids)
    return counted.select(
        cell_id=names.gather(counted["cell_index"]),
        hour=pl.lit(start).dt.convert_time_zone("UTC") + pl.duration(hours=pl.col("hour_index")),
        crime_count=pl.col("crime_count"),
    ).sort("cell_id", "hour")


def complete_spine(cell_ids: list[str], sparse: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """Return every cell-hour in [start, end) with the counts of `sparse` and zeros elsewhere."""
    hours = pl.datetime_range(start, end - timedelta(hours=1), "1h", eager=True, time_zone="UTC").alias("hour")
    spine = pl.DataFrame({"cell_id": cell_ids}).join(pl.DataFrame(hours), how="cross")
    joined = spine.join(sparse, on=["cell_id", "hour"], how="left", maintain_order="left")
    return joined.with_columns(pl.col("crime_count").fill_null(0))


def cell_hour_targets(cell_ids: list[str], start: datetime, n_hours: int) -> pl.DataFrame:
    """Return every cell for each of the `n_hours` hours from `start`."""
    hours = pl.datetime_range(start, start + timedelta(hours=n_hours - 1), "1h", eager=True, time_zone="UTC")
    return pl.DataFrame({"cell_id": cell_ids}).join(pl.DataFrame({"hour": hours}), how="cross")


def observed_counts(targets: pl.DataFrame, sparse: pl.DataFrame) -> np.ndarray:
    """Return the crime count of each target cell-hour, 0 where `sparse` has no row."""
    joined = targets.join(sparse, on=["cell_id", "hour"], how="left", maintain_order="left")
    return joined["crime_count"].fill_null(0).to_numpy()
