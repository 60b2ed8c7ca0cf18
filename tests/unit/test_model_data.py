"""Training and scoring matrices: horizons, labels from the target hour, and no look-ahead."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from ml.feature_registry import state_columns
from ml.model_data import build_scoring_frame, build_training_set, model_inputs
from tests.feature_inputs import features, violent_counts

UTC = timezone.utc


def panel(violent_hours: dict[str, list[datetime]], start: datetime, end: datetime) -> pl.DataFrame:
    rows = [(cell, hour) for cell, hours in violent_hours.items() for hour in hours]
    return features(sorted(violent_hours), violent_counts(rows), start, end, "America/Chicago")


@pytest.fixture
def two_cell_panel() -> pl.DataFrame:
    hours = [datetime(2024, 1, 3, h, tzinfo=UTC) for h in (2, 9, 20)]
    return panel({"A": hours, "B": []}, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 6, tzinfo=UTC))


def test_training_labels_match_target_hour() -> None:
    violent = [datetime(2024, 1, 3, h, tzinfo=UTC) for h in (2, 9, 20)]
    frame = panel({"A": violent}, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 6, tzinfo=UTC))
    training = build_training_set(frame, 1, 72, np.random.default_rng(1), "violent")
    violent_targets = [int(hour.timestamp() // 3600) for hour in violent]
    expected = np.isin(training.target_hours, violent_targets).astype(np.int8)

    assert expected.sum() > 0
    assert np.array_equal(training.labels, expected)


def test_horizons_cover_range_without_lookahead(two_cell_panel: pl.DataFrame) -> None:
    training = build_training_set(two_cell_panel, 2, 72, np.random.default_rng(2), "violent")
    horizon = training.features[:, training.feature_names.index("horizon_hours")]
    window_end_hour = int(datetime(2024, 1, 6, tzinfo=UTC).timestamp() // 3600)

    assert horizon.min() >= 1
    assert horizon.max() <= 72
    assert training.target_hours.max() < window_end_hour
    assert training.features.shape[1] == len(training.feature_names)
    assert training.features.dtype == np.float32


def test_state_comes_from_cutoff_hour() -> None:
    violent = [datetime(2024, 1, 3, 12, tzinfo=UTC)]
    frame = panel({"A": violent}, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 5, tzinfo=UTC))
    training = build_training_set(frame, 1, 1, np.random.default_rng(3), "violent")
    target_of_event = int(violent[0].timestamp() // 3600)
    row = int(np.flatnonzero(training.target_hours == target_of_event)[0])

    assert training.labels[row] == 1
    assert training.features[row, training.feature_names.index("violent_1d")] == 0
    assert training.features[row, training.feature_names.index("horizon_hours")] == 1


def test_same_seed_same_training_set(two_cell_panel: pl.DataFrame) -> None:
    first = build_training_set(two_cell_panel, 2, 72, np.random.default_rng(5), "violent")
    second = build_training_set(two_cell_panel, 2, 72, np.random.default_rng(5), "violent")

    assert np.array_equal(first.features, second.features, equal_nan=True)
    assert np.array_equal(first.labels, second.labels)


def test_ragged_panel_rejected(two_cell_panel: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="not a whole number of hours"):
        build_training_set(two_cell_panel.head(3), 2, 72, np.random.default_rng(0), "violent")


def test_scoring_frame_covers_every_horizon(two_cell_panel: pl.DataFrame) -> None:
    cutoff_rows = two_cell_panel.filter(pl.col("hour") < datetime(2024, 1, 4, 2, tzinfo=UTC)).filter(
        pl.col("hour") >= datetime(2024, 1, 4, 0, tzinfo=UTC))
    keys, features = build_scoring_frame(cutoff_rows, 72, "America/Chicago", "US", "IL")

    assert keys.height == 2 * 2 * 72
    assert features.shape == (2 * 2 * 72, len(model_inputs(state_columns(cutoff_rows.columns))))
    first = keys.filter((pl.col("cell_id") == "A") & (pl.col("issued_at") == datetime(2024, 1, 4, tzinfo=UTC)))
    assert first["horizon_hours"].to_list() == list(range(1, 73))
    assert first["hour"].min() == datetime(2024, 1, 4, tzinfo=UTC)
    assert first["hour"].max() == datetime(2024, 1, 6, 23, tzinfo=UTC)


def test_scoring_rejects_a_model_trained_on_other_features(two_cell_panel: pl.DataFrame) -> None:
    cutoff_rows = two_cell_panel.filter(pl.col("hour") == datetime(2024, 1, 3, 21, tzinfo=UTC))
    names = model_inputs(state_columns(cutoff_rows.columns))
    trained_on = [name for name in names if name != "all_crime_7d"] + ["violent_5d"]

    with pytest.raises(ValueError, match=r"model only: \['violent_5d'\]; rows only: \['all_crime_7d'\]"):
        build_scoring_frame(cutoff_rows, 72, "America/Chicago", "US", "IL", trained_on)


def test_training_needs_the_target_label(two_cell_panel: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="no label for target 'burglary'"):
        build_training_set(two_cell_panel, 2, 72, np.random.default_rng(0), "burglary")


def test_scoring_state_repeats_across_horizons(two_cell_panel: pl.DataFrame) -> None:
    cutoff_rows = two_cell_panel.filter(pl.col("hour") == datetime(2024, 1, 3, 21, tzinfo=UTC))
    keys, features = build_scoring_frame(cutoff_rows, 72, "America/Chicago", "US", "IL")
    names = model_inputs(state_columns(cutoff_rows.columns))
    column = names.index("violent_1d")
    cell_a_rows = (keys["cell_id"] == "A").to_numpy()

    assert np.all(features[cell_a_rows, column] == 3)
    assert np.all(features[~cell_a_rows, column] == 0)
    local_hours = features[cell_a_rows, names.index("target_local_hour")]
    assert local_hours[0] == 15
    assert local_hours[1] == 16
