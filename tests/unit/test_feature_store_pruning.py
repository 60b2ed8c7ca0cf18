"""Reading a window of hourly features opens only the day files that the window touches.

Training reads its window and scoring reads its range, so neither may depend on, or pay for,
the rest of the stored history. The tests overwrite the day files outside a window with bytes
that are not Parquet: any reader that opens them fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from ml.feature_store import day_file, read_window, write_window

UTC = timezone.utc
CELLS = ("A", "B", "C")
HISTORY_START = datetime(2023, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 10


def feature_rows(start: datetime, end: datetime) -> pl.DataFrame:
    hours = pl.datetime_range(start, end - timedelta(hours=1), "1h", time_zone="UTC", eager=True)
    frame = pl.DataFrame({"hour": hours}).join(pl.DataFrame({"cell_id": list(CELLS)}), how="cross")
    return frame.select(
        "cell_id", "hour",
        (pl.col("hour").dt.epoch("s") // 3600).cast(pl.Int64).alias("hour_number"),
    )


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Ten days of feature files, the first and last three of them replaced by garbage."""
    end = HISTORY_START + timedelta(days=HISTORY_DAYS)
    write_window(tmp_path, feature_rows(HISTORY_START, end), HISTORY_START, end)
    for offset in (0, 1, 2, 7, 8, 9):
        day_file(tmp_path, (HISTORY_START + timedelta(days=offset)).date()).write_bytes(b"not parquet")
    return tmp_path


def test_history_has_one_file_per_day(history: Path) -> None:
    assert len(list(history.glob("day=*.parquet"))) == HISTORY_DAYS


def test_garbage_file_fails_to_read(history: Path) -> None:
    with pytest.raises(pl.exceptions.ComputeError):
        pl.read_parquet(day_file(history, HISTORY_START.date()))


def test_window_reads_only_its_days(history: Path) -> None:
    start = HISTORY_START + timedelta(days=3)
    end = HISTORY_START + timedelta(days=7)

    frame = read_window(history, start, end, len(CELLS))

    assert frame.height == 4 * 24 * len(CELLS)
    assert frame["hour"].min() == start
    assert frame["hour"].max() == end - timedelta(hours=1)
    assert frame.equals(feature_rows(start, end).sort(["hour", "cell_id"]))


def test_partial_day_window_reads_only_its_days(history: Path) -> None:
    # A scoring range of 72 hours that starts and ends inside a day touches four day files.
    start = HISTORY_START + timedelta(days=3, hours=5)
    end = start + timedelta(hours=72)

    frame = read_window(history, start, end, len(CELLS))

    assert frame.height == 72 * len(CELLS)
    assert frame.equals(feature_rows(start, end).sort(["hour", "cell_id"]))


def test_window_touching_garbage_day_fails(history: Path) -> None:
    start = HISTORY_START + timedelta(days=6, hours=23)

    with pytest.raises(pl.exceptions.ComputeError):
        read_window(history, start, start + timedelta(hours=2), len(CELLS))
