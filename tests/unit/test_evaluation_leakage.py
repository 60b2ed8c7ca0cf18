"""No look-ahead in evaluation: time-ordered splits, lag windows that end before the target hour,
and per-cell statistics fitted on training hours only.

The fixture is a 240-hour panel (2024-01-01 00:00 to 2024-01-10 23:00 UTC) with one incident at
2024-01-05 10:15 UTC, and a test fraction of 0.2.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from ml.baselines import CompstatBaseline
from ml.sampling import time_split
from tests.feature_inputs import features as build_features
from tests.feature_inputs import violent_counts

UTC = timezone.utc
START = datetime(2024, 1, 1, tzinfo=UTC)
HOURS = np.array([START + timedelta(hours=step) for step in range(240)], dtype="datetime64[us]")


def test_time_split_holds_out_the_last_48_hours() -> None:
    fit, test = time_split(HOURS, 0.2)

    assert test.sum() == 48
    assert HOURS[test].min() == np.datetime64("2024-01-09T00:00")
    assert HOURS[test].max() == np.datetime64("2024-01-10T23:00")
    assert HOURS[fit].max() == np.datetime64("2024-01-08T23:00")


def test_time_split_ignores_row_order() -> None:
    shuffled = np.random.default_rng(3).permutation(HOURS)

    fit, test = time_split(shuffled, 0.2)

    assert shuffled[fit].max() < shuffled[test].min()
    assert test.sum() == 48


def one_incident_counts() -> pl.DataFrame:
    return violent_counts([("T1", datetime(2024, 1, 5, 10, tzinfo=UTC))])


def test_previous_24_hours_exclude_the_target_hour() -> None:
    features = build_features(["T1"], one_incident_counts(), START, START + timedelta(hours=240), "America/Chicago")
    value = {row["hour"]: row["violent_1d"] for row in features.select("hour", "violent_1d").to_dicts()}

    assert value[datetime(2024, 1, 5, 10, tzinfo=UTC)] == 0
    assert value[datetime(2024, 1, 5, 11, tzinfo=UTC)] == 1
    assert value[datetime(2024, 1, 6, 10, tzinfo=UTC)] == 1
    assert value[datetime(2024, 1, 6, 11, tzinfo=UTC)] == 0


def test_label_is_the_target_hour_itself() -> None:
    features = build_features(["T1"], one_incident_counts(), START, START + timedelta(hours=240), "America/Chicago")

    labelled = features.filter(pl.col("label_violent") > 0)["hour"].to_list()

    assert labelled == [datetime(2024, 1, 5, 10, tzinfo=UTC)]


def panel(test_count: int) -> pl.DataFrame:
    hours = [START + timedelta(hours=step) for step in range(240)]
    counts = [0] * 240
    counts[24 * 4 + 10] = 1
    counts[24 * 9 + 3] = test_count
    return pl.DataFrame({"cell_id": ["T1"] * 240, "hour": hours, "crime_count": counts},
                        schema={"cell_id": pl.String, "hour": pl.Datetime("us", "UTC"), "crime_count": pl.Int64})


def test_cell_statistics_ignore_test_period_counts() -> None:
    cutoff = datetime(2024, 1, 9, tzinfo=UTC)

    quiet = CompstatBaseline(years=3).fit(panel(0), cutoff).hour_of_week_means
    busy = CompstatBaseline(years=3).fit(panel(50), cutoff).hour_of_week_means

    assert quiet.equals(busy)
    assert quiet["risk"].sum() == 1.0
