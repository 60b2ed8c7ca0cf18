"""Hourly cell features: lag windows, weather timing, calendar, and window-by-window storage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml.feature_store import MissingFeaturesError, read_window, write_window
from tests.feature_inputs import features as build, violent_counts

UTC = timezone.utc


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def counts_frame(rows: list[tuple[str, datetime, int, int]]) -> pl.DataFrame:
    return violent_counts([(cell, hour) for cell, hour, _, violent in rows for _ in range(violent)])


def weather_frame(rows: list[tuple[datetime, float | None]]) -> pl.DataFrame:
    return pl.DataFrame({
        "hour": [row[0] for row in rows],
        "temperature_f": [row[1] for row in rows],
        "precipitation_in": [0.0 if row[1] is not None else None for row in rows],
        "relative_humidity": [50.0 if row[1] is not None else None for row in rows],
        "wind_speed_mph": [5.0 if row[1] is not None else None for row in rows],
        "precipitation_is_trace": [False for _ in rows],
    }).with_columns(pl.col("hour").cast(pl.Datetime("us", "UTC")))


@pytest.fixture
def one_incident() -> pl.DataFrame:
    return counts_frame([("A", at(2024, 1, 5, 10), 1, 1)])


def value(frame: pl.DataFrame, cell: str, hour: datetime, column: str) -> object:
    return frame.filter((pl.col("cell_id") == cell) & (pl.col("hour") == hour))[column].item()


@pytest.mark.parametrize(("hour", "expected"), [
    (at(2024, 1, 5, 10), 0),
    (at(2024, 1, 5, 11), 1),
    (at(2024, 1, 6, 10), 1),
    (at(2024, 1, 6, 11), 0),
])
def test_previous_day_excludes_target_hour(one_incident: pl.DataFrame, hour: datetime, expected: int) -> None:
    features = build(["A", "B"], one_incident, at(2024, 1, 1), at(2024, 1, 11),
                     "America/Chicago")

    assert value(features, "A", hour, "violent_1d") == expected


def test_label_is_count_in_hour(one_incident: pl.DataFrame) -> None:
    features = build(["A", "B"], one_incident, at(2024, 1, 5), at(2024, 1, 6),
                     "America/Chicago")

    assert value(features, "A", at(2024, 1, 5, 10), "label_violent") == 1
    assert features["label_violent"].sum() == 1


def test_longer_windows_and_recency(one_incident: pl.DataFrame) -> None:
    features = build(["A"], one_incident, at(2024, 1, 1), at(2024, 2, 10),
                     "America/Chicago")

    assert value(features, "A", at(2024, 1, 8, 10), "violent_3d") == 1
    assert value(features, "A", at(2024, 1, 8, 11), "violent_3d") == 0
    assert value(features, "A", at(2024, 1, 12, 10), "violent_7d") == 1
    assert value(features, "A", at(2024, 1, 12, 11), "violent_7d") == 0
    assert value(features, "A", at(2024, 2, 2, 10), "violent_28d") == 1
    assert value(features, "A", at(2024, 2, 2, 11), "violent_28d") == 0
    assert value(features, "A", at(2024, 1, 5, 15), "hours_since_violent") == 5.0


def test_lags_read_counts_before_window(one_incident: pl.DataFrame) -> None:
    features = build(["A"], one_incident, at(2024, 1, 6), at(2024, 1, 7),
                     "America/Chicago")

    assert value(features, "A", at(2024, 1, 6, 9), "violent_1d") == 1


def test_weather_is_previous_hour() -> None:
    weather = weather_frame([(at(2024, 7, 4, 18), 80.0), (at(2024, 7, 4, 19), 84.0), (at(2024, 7, 4, 20), None)])
    features = build(["A"], counts_frame([]), at(2024, 7, 4, 19), at(2024, 7, 4, 23),
                     "America/Chicago", weather=weather)

    assert value(features, "A", at(2024, 7, 4, 19), "temperature_f") == 80.0
    assert value(features, "A", at(2024, 7, 4, 19), "temperature_f_missing") is False
    assert value(features, "A", at(2024, 7, 4, 20), "temperature_f") == 84.0
    assert value(features, "A", at(2024, 7, 4, 21), "temperature_f_missing") is True
    assert value(features, "A", at(2024, 7, 4, 21), "temperature_f") == 50.0
    assert value(features, "A", at(2024, 7, 4, 22), "temperature_f_missing") is True


def test_calendar_is_local_time() -> None:
    features = build(["A"], counts_frame([]), at(2024, 7, 4, 0), at(2024, 7, 4, 12),
                     "America/Chicago", country="US", subdivision="IL")

    assert value(features, "A", at(2024, 7, 4, 5), "local_hour") == 0
    assert value(features, "A", at(2024, 7, 4, 5), "is_holiday") is True
    assert value(features, "A", at(2024, 7, 4, 4), "is_holiday") is False
    assert value(features, "A", at(2024, 7, 4, 5), "day_of_week") == 3


def test_dst_day_has_every_utc_hour() -> None:
    features = build(["A", "B"], counts_frame([]), at(2023, 11, 5, 5), at(2023, 11, 6, 6),
                     "America/Chicago")

    assert features.height == 25 * 2
    assert features["hour"].n_unique() == 25
    assert features.filter(pl.col("cell_id") == "A")["local_hour"].to_list().count(1) == 2


def test_empty_window_rejected() -> None:
    with pytest.raises(ValueError, match="must be after start"):
        build(["A"], counts_frame([]), at(2024, 1, 2), at(2024, 1, 1), "UTC")


def range_features(start: datetime, end: datetime) -> pl.DataFrame:
    counts = counts_frame([("A", at(2023, 11, 5, 6), 1, 1), ("A", at(2023, 11, 5, 7), 1, 1),
                           ("B", at(2023, 11, 5, 20), 2, 1)])
    return build(["A", "B"], counts, start, end, "America/Chicago")


def read_all(root: Path) -> pl.DataFrame:
    return read_window(root, at(2023, 11, 5, 5), at(2023, 11, 6, 6), 2)


def test_backfill_shapes_give_identical_files(tmp_path: Path) -> None:
    start, end = at(2023, 11, 5, 5), at(2023, 11, 6, 6)
    write_window(tmp_path / "one_run", range_features(start, end), start, end)
    for hour in range(25):
        piece_start = start + timedelta(hours=hour)
        piece_end = piece_start + timedelta(hours=1)
        write_window(tmp_path / "per_hour", range_features(piece_start, piece_end), piece_start, piece_end)
    for offset, size in ((0, 10), (10, 10), (20, 5), (10, 10)):
        piece_start = start + timedelta(hours=offset)
        piece_end = piece_start + timedelta(hours=size)
        write_window(tmp_path / "chunks", range_features(piece_start, piece_end), piece_start, piece_end)

    one_run = read_all(tmp_path / "one_run")

    assert one_run.height == 50
    assert one_run["label_violent"].sum() == 3
    assert one_run.equals(read_all(tmp_path / "per_hour"))
    assert one_run.equals(read_all(tmp_path / "chunks"))
    for name in ("day=2023-11-05.parquet", "day=2023-11-06.parquet"):
        assert (tmp_path / "one_run" / name).read_bytes() == (tmp_path / "chunks" / name).read_bytes()


def test_missing_hours_are_reported(tmp_path: Path) -> None:
    start, end = at(2023, 11, 5, 5), at(2023, 11, 5, 10)
    write_window(tmp_path, range_features(start, end), start, end)

    with pytest.raises(MissingFeaturesError, match="expected 20 feature rows"):
        read_window(tmp_path, start, at(2023, 11, 5, 15), 2)
    with pytest.raises(MissingFeaturesError, match="2 days \\(first: day=2023-11-06"):
        read_window(tmp_path, start, at(2023, 11, 7, 15), 2)


def test_rows_outside_window_rejected(tmp_path: Path) -> None:
    frame = range_features(at(2023, 11, 5, 5), at(2023, 11, 5, 10))

    with pytest.raises(ValueError, match="outside the window"):
        write_window(tmp_path, frame, at(2023, 11, 5, 6), at(2023, 11, 5, 10))


def test_features_have_no_missing_lags() -> None:
    features = range_features(at(2023, 11, 5, 5), at(2023, 11, 6, 6))

    for column in ("violent_1d", "violent_3d", "violent_7d", "violent_28d", "all_crime_7d", "hours_since_violent"):
        assert features[column].null_count() == 0
    assert np.all(features["hours_since_violent"].to_numpy() <= 672)
