"""Parquet storage for hourly feature rows: one file per UTC day, rewritten window by window.

Writing a window ``[start, end)`` replaces exactly the rows of those hours: for each day it
touches, rows outside the window are kept, rows inside are replaced, and the file is written to a
temporary name and renamed into place. The same window written twice therefore gives the same
bytes, and one run over a range, one run per hour, or chunks in any order give the same files.

The columns depend on the jurisdiction's targets, crime groups and 311 types
(``ml.feature_registry.panel_schema``). A day file built with other columns is replaced whole when
the window covers the day. A partial rewrite of such a day raises an error, and so does reading a
window whose days differ in their columns, because a model would otherwise see misaligned inputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from ml.atomic_files import remove_stale_temporaries, temporary_path
from ml.features import HOUR

logger = logging.getLogger(__name__)


class MissingFeaturesError(LookupError):
    """Feature rows for some requested hours have not been built."""


class FeatureLayoutError(ValueError):
    """Stored feature files were built with other columns than the ones at hand."""


def day_file(root: Path, day: date) -> Path:
    return root / f"day={day.isoformat()}.parquet"


def days_in(start: datetime, end: datetime) -> list[date]:
    first = start.date()
    last = (end - HOUR).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def write_window(root: Path, frame: pl.DataFrame, start: datetime, end: datetime,
                 after_day: Callable[[int, int], None] | None = None) -> int:
    """Replace the feature rows of hours in ``[start, end)``; return the rows written.

    Each day file is written to a temporary name and renamed into place, so a reader never finds
    half a file at a day's name, even after the writer is killed. A window of several days is not replaced as
    one unit, though: a writer killed midway leaves some days new and the rest old, until the
    window is written again. Temporary files of killed writers are removed first.
    ``after_day(written, total)`` runs after each day file is renamed into place.
    """
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)
    outside = frame.filter((pl.col("hour") < start) | (pl.col("hour") >= end))
    if outside.height:
        raise ValueError(f"{outside.height} feature rows fall outside the window {start} to {end}")

    days = days_in(start, end)
    for written, day in enumerate(days, start=1):
        path = day_file(root, day)
        new_rows = frame.filter(pl.col("hour").dt.date() == day)
        if path.exists() and not covers_day(day, start, end):
            kept = pl.read_parquet(path).filter((pl.col("hour") < start) | (pl.col("hour") >= end))
            check_same_columns(path, kept.columns, frame.columns, start, end)
            new_rows = pl.concat([kept, new_rows])
        new_rows = new_rows.sort(["hour", "cell_id"])
        temporary = temporary_path(path)
        new_rows.write_parquet(temporary, compression="zstd", statistics=True)
        os.replace(temporary, path)
        if after_day is not None:
            after_day(written, len(days))
    logger.info("wrote %d feature rows for %s to %s under %s", frame.height, start.isoformat(),
                end.isoformat(), root)
    return frame.height


def covers_day(day: date, start: datetime, end: datetime) -> bool:
    """Return whether ``[start, end)`` contains every UTC hour of ``day``."""
    day_start = datetime(day.year, day.month, day.day, tzinfo=start.tzinfo)
    return start <= day_start and day_start + timedelta(days=1) <= end


def check_same_columns(path: Path, stored: list[str], built: list[str], start: datetime, end: datetime) -> None:
    if stored == built:
        return
    only_stored = [name for name in stored if name not in built]
    only_built = [name for name in built if name not in stored]
    raise FeatureLayoutError(
        f"{path} contains feature columns from another configuration (only stored: {only_stored[:5]}; only "
        f"new: {only_built[:5]}); rebuilding {start.isoformat()} to {end.isoformat()} would mix them. "
        f"Materialize cell_hour_features for whole days (or the whole range) after changing the "
        f"jurisdiction's targets, offense codes or 311 datasets")


def window_paths(root: Path, start: datetime, end: datetime) -> tuple[list[Path], list[str]]:
    """Return the day files of ``[start, end)`` and their common columns; raise if a day is missing or differs."""
    paths = [day_file(root, day) for day in days_in(start, end)]
    missing_days = [path.name for path in paths if not path.exists()]
    if missing_days:
        raise MissingFeaturesError(
            f"feature files missing under {root} for {len(missing_days)} days "
            f"(first: {missing_days[0]}); materialize cell_hour_features for {start.isoformat()} "
            f"to {end.isoformat()} first"
        )
    schemas = {path: list(pl.read_parquet_schema(path)) for path in paths}
    first = schemas[paths[0]]
    for path, columns in schemas.items():
        check_same_columns(path, columns, first, start, end)
    return paths, first


def check_row_count(height: int, start: datetime, end: datetime, n_cells: int) -> None:
    expected = int((end - start) / HOUR) * n_cells
    if height != expected:
        raise MissingFeaturesError(
            f"expected {expected} feature rows for {start.isoformat()} to {end.isoformat()} "
            f"({n_cells} cells), found {height}; re-materialize cell_hour_features for that range"
        )


def read_window(root: Path, start: datetime, end: datetime, n_cells: int) -> pl.DataFrame:
    """Read feature rows for ``[start, end)``, sorted by hour then cell; raise if any are missing."""
    paths, _ = window_paths(root, start, end)
    frame = (
        pl.scan_parquet(paths)
        .filter((pl.col("hour") >= start) & (pl.col("hour") < end))
        .sort(["hour", "cell_id"])
        .collect()
    )
    check_row_count(frame.height, start, end, n_cells)
    return frame


@dataclass(frozen=True)
class WindowReader:
    """The feature rows of ``[start, end)``, read a few columns at a time in hour-then-cell order.

    A training window read whole has every column in memory at once; read in groups of columns, it
    has one group in memory. Day files are written sorted by hour and cell, and read in day order, so
    each read is in that order without a sort. ``read`` checks it against the keys read first.
    """

    paths: list[Path]
    start: datetime
    end: datetime
    columns: list[str]
    hours: pl.Series
    cell_ids: pl.Series

    @property
    def height(self) -> int:
        return self.hours.len()

    def scan(self, names: list[str]) -> pl.DataFrame:
        return (pl.scan_parquet(self.paths)
                .filter((pl.col("hour") >= self.start) & (pl.col("hour") < self.end))
                .select(names)
                .collect())

    def read(self, names: list[str]) -> pl.DataFrame:
        """Return the columns ``names`` of every row; raise if the rows came in another order than the keys'."""
        keys = ["hour", "cell_id"]
        frame = self.scan([*keys, *[name for name in names if name not in keys]])
        if not (frame["hour"].equals(self.hours) and frame["cell_id"].equals(self.cell_ids)):
            raise FeatureLayoutError(f"the feature files {self.paths[0].name} to {self.paths[-1].name} returned "
                                     f"their rows in another order on a second read; rebuild them with "
                                     f"cell_hour_features")
        return frame.select(names)


def open_window(root: Path, start: datetime, end: datetime, n_cells: int) -> WindowReader:
    """Return a ``WindowReader`` of ``[start, end)``; raise if rows are missing or out of hour-then-cell order."""
    paths, columns = window_paths(root, start, end)
    reader = WindowReader(paths, start, end, columns, pl.Series("hour", []), pl.Series("cell_id", []))
    keys = reader.scan(["hour", "cell_id"])
    check_row_count(keys.height, start, end, n_cells)
    ordered = keys.select((pl.col("hour").diff() > 0) | ((pl.col("hour").diff() == 0) & (pl.col("cell_id") >
                                                                                         pl.col("cell_id").shift())))
    if not ordered.to_series().slice(1).all():
        raise FeatureLayoutError(f"the feature files {paths[0].name} to {paths[-1].name} are not sorted by hour "
                                 f"and cell; rebuild them with cell_hour_features for {start.isoformat()} to "
                                 f"{end.isoformat()}")
    return WindowReader(paths, start, end, columns, keys["hour"], keys["cell_id"])
