"""Partition ranges that cannot be run: an inverted range, or one past the last partition.

Dagster runs such ranges when they come as run tags and hands the asset an inverted or future
window. The features asset must stop before it reads or writes anything, naming the bad bound.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from orchestration.partitions import PartitionRangeError, check_window
from orchestration.settings import RiskcastSettings
from tests.tiny_city import NAME, materialize, score_range, write_tiny_city

UTC = timezone.utc
HOURLY = dg.HourlyPartitionsDefinition(start_date="2023-01-01-00:00", timezone="UTC")


def failed_range(tmp_path: Path, first: datetime, last: datetime) -> tuple[str, Path]:
    """Materialize cell_hour_features over ``first`` to ``last``; return the error and the features folder."""
    run_file = write_tiny_city(tmp_path, ["violent"])
    home = tmp_path / "home"
    with pytest.raises(Exception) as raised:
        materialize(run_file, home, "cell_hour_features", dg.DagsterInstance.ephemeral(),
                    tags=score_range(first, last))
    error = raised.value
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__
    return "\n".join(messages), RiskcastSettings(home=home, jurisdiction=NAME).features_dir


def test_inverted_range_names_both_keys(tmp_path: Path) -> None:
    message, features_dir = failed_range(tmp_path, datetime(2023, 1, 20, 10, tzinfo=UTC),
                                         datetime(2023, 1, 20, 5, tzinfo=UTC))

    assert "partition range end 2023-01-20-05:00 is before its start 2023-01-20-10:00" in message
    assert not any(features_dir.glob("*.parquet"))


def test_range_past_last_partition_names_the_end(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    future = now + timedelta(days=2)
    message, features_dir = failed_range(tmp_path, now - timedelta(hours=3), future)

    assert f"partition range end {future:%Y-%m-%d-%H:%M} is past the last existing partition" in message
    assert not any(features_dir.glob("*.parquet"))


def test_window_check_accepts_the_last_partition() -> None:
    last = HOURLY.get_last_partition_window()

    check_window(last.start - timedelta(hours=5), last.end, "first", HOURLY.get_last_partition_key(), HOURLY)


def test_window_check_rejects_a_single_inverted_hour() -> None:
    start = datetime(2023, 2, 1, 5, tzinfo=UTC)

    with pytest.raises(PartitionRangeError, match="end 2023-02-01-05:00 is before its start 2023-02-01-05:00"):
        check_window(start, start, "2023-02-01-05:00", "2023-02-01-05:00", HOURLY)
