"""Unit tests for ml.simulation: the known-truth city, the patrol feedback loop and the Lum-Isaac check.

The feedback and Lum-Isaac tests run fixed seeds and assert bounds around the
measured values, with margins that a broken simulation (no feedback, no
correction, or recording ignored) would not meet.
"""

import numpy as np
import polars as pl
import pytest

from ml.simulation import (
    FEEDBACK_SETTINGS,
    LightGBMPredictor,
    allocate_patrols,
    discover,
    lag_features,
    lum_isaac_check,
    record_day,
    simulate_city,
    simulate_feedback,
    total_variation,
)

HISTORY_DAYS = 28
SIMULATED_DAYS = 730


@pytest.fixture(scope="module")
def city():
    """A 20-cell city with a lognormal risk surface, 28 history days and two simulated years."""
    return simulate_city(20, HISTORY_DAYS + SIMULATED_DAYS, seed=7)


@pytest.fixture(scope="module")
def feedback(city):
    """The three settings with a 56-day trailing-mean predictor and full detection."""
    return simulate_feedback(city, seed=7, history_days=HISTORY_DAYS, window_days=56)


def setting_rows(result, setting: str) -> pl.DataFrame:
    return result.daily.filter(pl.col("setting") == setting).sort("day")


# city


def test_city_shapes_and_mean_rate(city) -> None:
    assert city.true_counts.shape == (HISTORY_DAYS + SIMULATED_DAYS, 20)
    assert city.reported_counts.shape == city.true_counts.shape
    assert city.true_rate.mean() == pytest.approx(10.0)
    assert city.true_share.sum() == pytest.approx(1.0)


def test_city_reports_about_half(city) -> None:
    share = city.reported_counts.sum() / city.true_counts.sum()
    assert np.all(city.reported_counts <= city.true_counts)
    assert share == pytest.approx(0.5, abs=0.01)


def test_city_same_seed_same_counts() -> None:
    first = simulate_city(5, 10, seed=3)
    second = simulate_city(5, 10, seed=3)
    other = simulate_city(5, 10, seed=4)
    assert np.array_equal(first.true_counts, second.true_counts)
    assert np.array_equal(first.reported_counts, second.reported_counts)
    assert not np.array_equal(first.true_counts, other.true_counts)


def test_city_reporting_by_area() -> None:
    city = simulate_city(3, 50, seed=1, true_rate=np.array([5.0, 5.0, 5.0]), reporting_probability=np.array([0.0, 1.0, 0.5]))
    assert city.reported_counts[:, 0].sum() == 0
    assert np.array_equal(city.reported_counts[:, 1], city.true_counts[:, 1])
    assert 0 < city.reported_counts[:, 2].sum() < city.true_counts[:, 2].sum()


def test_city_daily_frame(city) -> None:
    frame = city.daily_frame()
    assert frame.height == (HISTORY_DAYS + SIMULATED_DAYS) * 20
    assert frame["true_count"].sum() == city.true_counts.sum()
    assert frame["reported_count"].sum() == city.reported_counts.sum()
    day_3 = frame.filter((pl.col("day") == 3) & (pl.col("cell_id") == "cell_004"))
    assert day_3["true_count"].item() == city.true_counts[3, 4]


def test_city_hourly_spine() -> None:
    city = simulate_city(4, 3, seed=2)
    hourly = city.hourly_reported(seed=5)
    assert hourly.height == 4 * 3 * 24
    assert hourly.schema["hour"] == pl.Datetime("us", "UTC")
    per_cell_day = (
        hourly.with_columns(day=(pl.col("hour") - pl.lit(city.start)).dt.total_days())
        .group_by("cell_id", "day")
        .agg(pl.col("crime_count").sum())
    )
    cell_2_day_1 = per_cell_day.filter((pl.col("cell_id") == "cell_002") & (pl.col("day") == 1))
    assert cell_2_day_1["crime_count"].item() == city.reported_counts[1, 2]
    assert hourly["crime_count"].sum() == city.reported_counts.sum()


def test_city_rejects_bad_reporting() -> None:
    with pytest.raises(ValueError, match="reporting_probability must be in"):
        simulate_city(3, 5, seed=0, reporting_probability=np.array([0.5, 1.5, 0.5]))


def test_city_rejects_wrong_rate_shape() -> None:
    with pytest.raises(ValueError, match="one value per cell"):
        simulate_city(3, 5, seed=0, true_rate=np.array([1.0, 2.0]))


def test_city_rejects_one_cell() -> None:
    with pytest.raises(ValueError, match="n_cells must be a whole number >= 2"):
        simulate_city(1, 5, seed=0)


# building blocks


def test_allocate_patrols_hand_values() -> None:
    shares = allocate_patrols(np.array([3.0, 1.0, 0.0, 0.0]), exploration=0.2)
    assert shares.tolist() == pytest.approx([0.65, 0.25, 0.05, 0.05])


def test_allocate_patrols_no_record() -> None:
    assert allocate_patrols(np.zeros(4), exploration=0.0).tolist() == [0.25, 0.25, 0.25, 0.25]


def test_total_variation_hand_values() -> None:
    assert total_variation(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert total_variation(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == 0.0


def test_discover_follows_patrols() -> None:
    rng = np.random.default_rng(0)
    found = discover(np.array([7, 9, 4]), np.array([0.0, 1.0, 0.0]), detection_rate=1.0, rng=rng)
    assert found.tolist() == [0, 9, 0]


def test_record_day_weights_inverse_share() -> None:
    recorded = record_day("corrected", np.array([2, 0, 1]), np.array([5, 5, 5]), np.array([0.5, 0.25, 0.25]))
    assert recorded.tolist() == [4.0, 0.0, 4.0]


def test_record_day_discovered_and_reported() -> None:
    discovered = np.array([2, 0, 1])
    reported = np.array([5, 6, 7])
    shares = np.array([0.5, 0.25, 0.25])
    assert record_day("discovered", discovered, reported, shares).tolist() == [2.0, 0.0, 1.0]
    assert record_day("reported", discovered, reported, shares).tolist() == [5.0, 6.0, 7.0]


# feedback loop


def test_feedback_frame_layout(feedback) -> None:
    assert feedback.daily.height == len(FEEDBACK_SETTINGS) * SIMULATED_DAYS
    assert feedback.cells.height == len(FEEDBACK_SETTINGS) * SIMULATED_DAYS * 20
    assert feedback.daily["day"].min() == HISTORY_DAYS
    share_sums = feedback.cells.group_by("setting", "day").agg(pl.col("patrol_share").sum())
    assert share_sums["patrol_share"].to_numpy() == pytest.approx(np.ones(share_sums.height))


def test_feedback_same_start(feedback) -> None:
    first_day = feedback.daily.filter(pl.col("day") == HISTORY_DAYS)
    assert first_day["divergence"].n_unique() == 1
    assert first_day["divergence"][0] == pytest.approx(0.032, abs=0.002)


def test_feedback_recorded_counts_match(feedback, city) -> None:
    discovered = setting_rows(feedback, "discovered")
    reported = setting_rows(feedback, "reported")
    assert discovered["recorded_count"].to_list() == discovered["discovered_count"].cast(pl.Float64).to_list()
    assert reported["recorded_count"].to_list() == reported["reported_count"].cast(pl.Float64).to_list()
    assert reported["recorded_total"][-1] == city.reported_counts.sum()


def test_discovered_only_runs_away(feedback) -> None:
    rows = setting_rows(feedback, "discovered")
    initial = rows["divergence"][0]
    final = rows["divergence"][-1]
    # Measured: 0.032 on the first day, 0.878 on the last, with every patrol in one cell.
    assert final > 3 * initial
    assert final > 0.8
    assert rows["top_share"][-1] > 0.95


def test_discovered_only_lower_true_count(feedback, city) -> None:
    # Police discover only in the patrolled cell, so the record falls far below the true total.
    rows = setting_rows(feedback, "discovered")
    true_total = city.true_counts[HISTORY_DAYS:].sum()
    assert rows["discovered_count"].sum() < 0.2 * true_total


def test_reported_only_is_damped(feedback) -> None:
    rows = setting_rows(feedback, "reported")
    # Measured: at most 0.034 over the two years, ending at 0.025.
    assert rows["divergence"].max() < 0.05
    assert rows["divergence"][-1] <= rows["divergence"][0]
    assert rows["top_share"].max() < 0.2


def test_corrected_stays_near_truth(feedback) -> None:
    rows = setting_rows(feedback, "corrected")
    # Measured: at most 0.145 and 0.120 on the last day, against 0.878 without the correction.
    assert rows["divergence"].max() < 0.2
    assert rows["top_share"].max() < 0.3


def test_feedback_same_seed_same_frames(city) -> None:
    first = simulate_feedback(city, seed=11, window_days=28)
    second = simulate_feedback(city, seed=11, window_days=28)
    assert first.daily.equals(second.daily)


def test_two_region_urn() -> None:
    # The two-neighbourhood urn: recorded counts over all days, true rates 6 and 4 a day.
    city = simulate_city(2, HISTORY_DAYS + SIMULATED_DAYS, seed=7, true_rate=np.array([6.0, 4.0]))
    result = simulate_feedback(city, seed=7, window_days=None)
    discovered = setting_rows(result, "discovered")
    corrected = setting_rows(result, "corrected")

    # Measured: the first region's share rises from 0.575 to 0.830 without the correction
    # and ends at 0.599 (true share 0.6) with it.
    assert discovered["true_top_share"][-1] > 0.8
    assert discovered["divergence"][-1] > 3 * discovered["divergence"][0]
    assert corrected["divergence"][-1] < 0.01


def test_feedback_rejects_bad_parameters(city) -> None:
    with pytest.raises(ValueError, match="detection_rate must be in"):
        simulate_feedback(city, seed=0, detection_rate=0.0)
    with pytest.raises(ValueError, match="settings must be a non-empty subset"):
        simulate_feedback(city, seed=0, settings=("arrests",))
    with pytest.raises(ValueError, match="history_days"):
        simulate_feedback(city, seed=0, history_days=city.n_days)
    with pytest.raises(ValueError, match="exploration must be in"):
        simulate_feedback(city, seed=0, exploration=1.0)


def test_feedback_rejects_bad_forecaster(city) -> None:
    with pytest.raises(ValueError, match=r"forecaster must be one of \['trailing_mean', 'lightgbm'\], got 'xgboost'"):
        simulate_feedback(city, seed=0, forecaster="xgboost")
    with pytest.raises(ValueError, match="retrain_days must be a whole number >= 1, got 0"):
        simulate_feedback(city, seed=0, forecaster="lightgbm", retrain_days=0)


# learned forecaster

LEARNED_DAYS = 365


@pytest.fixture(scope="module")
def learned_city():
    """A 20-cell city with 28 history days and one simulated year."""
    return simulate_city(20, HISTORY_DAYS + LEARNED_DAYS, seed=7)


@pytest.fixture(scope="module")
def learned_feedback(learned_city):
    """The three settings steered by the LightGBM forecaster, with 5% of patrols spread evenly."""
    return simulate_feedback(
        learned_city, seed=7, history_days=HISTORY_DAYS, window_days=56, exploration=0.05, forecaster="lightgbm"
    )


def test_lag_features_hand_values() -> None:
    recorded = np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 4.0]])
    # Day 0 is a Sunday, so target day 1 is a Monday (0) and day 3 a Wednesday (2).
    features = lag_features(recorded, np.array([1, 3]), first_weekday=6)
    assert features.tolist() == [
        [1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [2.0, 2.0, 2.0, 2.0, 2.0],
        [4.0, 2.0, 2.0, 2.0, 2.0],
    ]


def test_lag_features_trailing_windows() -> None:
    recorded = np.arange(40, dtype=np.float64).reshape(40, 1)
    features = lag_features(recorded, np.array([10, 40]), first_weekday=0)
    # Day 10: previous day 9, days 3 to 9 average 6, days 0 to 9 average 4.5, weekday 3.
    assert features[0].tolist() == [9.0, 6.0, 4.5, 4.5, 3.0]
    # Day 40: previous day 39, days 33 to 39 average 36, days 12 to 39 average 25.5, all days 19.5.
    assert features[1].tolist() == [39.0, 36.0, 25.5, 19.5, 5.0]


def test_learned_predictor_retrains_weekly(learned_city) -> None:
    recorded = learned_city.reported_counts.astype(np.float64)
    predictor = LightGBMPredictor(window_days=56, retrain_days=7, first_weekday=0, seed=1)
    for day in range(HISTORY_DAYS, HISTORY_DAYS + 15):
        predicted = predictor.predict_rate(recorded, day)
    assert predictor.trainings == 3
    assert predictor.trained_day == HISTORY_DAYS + 14
    assert predicted.shape == (20,)
    assert np.all(predicted > 0)


def test_learned_discovered_runs_away(learned_feedback) -> None:
    rows = setting_rows(learned_feedback, "discovered")
    final = rows["divergence"].tail(30).mean()
    # Measured: 0.054 on the first day, 0.673 over the last 30 days, top cell 0.769 on the last day.
    assert final > 0.55
    assert final > 8 * rows["divergence"][0]
    assert rows["top_share"][-1] > 0.65


def test_learned_corrected_stays_near_truth(learned_feedback) -> None:
    rows = setting_rows(learned_feedback, "corrected")
    discovered = setting_rows(learned_feedback, "discovered")
    # Measured: 0.128 over the last 30 days and at most 0.255, against 0.673 without the correction.
    assert rows["divergence"].tail(30).mean() < 0.2
    assert rows["divergence"].max() < 0.35
    assert rows["top_share"].max() < 0.3
    assert discovered["divergence"].tail(30).mean() > 3 * rows["divergence"].tail(30).mean()


def test_learned_reported_stays_low(learned_feedback) -> None:
    rows = setting_rows(learned_feedback, "reported")
    # Measured: 0.053 over the last 30 days and at most 0.079.
    assert rows["divergence"].tail(30).mean() < 0.1
    assert rows["divergence"].max() < 0.12


def test_learned_forecaster_steers_patrols(learned_feedback, learned_city) -> None:
    trailing = simulate_feedback(
        learned_city, seed=7, history_days=HISTORY_DAYS, window_days=56, exploration=0.05, settings=("reported",)
    )
    learned_first = learned_feedback.daily.filter(pl.col("day") == HISTORY_DAYS)["divergence"]
    trailing_first = trailing.daily["divergence"][0]
    assert learned_feedback.forecaster == "lightgbm"
    assert trailing.forecaster == "trailing_mean"
    # Measured: 0.054 with the learned model and 0.026 with the trailing mean on the same record.
    assert learned_first.n_unique() == 1
    assert learned_first[0] == pytest.approx(0.054, abs=0.002)
    assert trailing_first == pytest.approx(0.026, abs=0.002)


def test_learned_same_seed_same_frames() -> None:
    city = simulate_city(10, HISTORY_DAYS + 60, seed=5)
    first = simulate_feedback(city, seed=3, forecaster="lightgbm", retrain_days=5)
    second = simulate_feedback(city, seed=3, forecaster="lightgbm", retrain_days=5)
    assert first.daily.equals(second.daily)
    assert first.cells.equals(second.cells)


def test_learned_empty_record_spreads_patrols() -> None:
    # Victims report no incident, so the record starts empty and the first model waits for discoveries.
    city = simulate_city(4, HISTORY_DAYS + 10, seed=1, reporting_probability=0.0)
    result = simulate_feedback(city, seed=1, forecaster="lightgbm", retrain_days=7, settings=("discovered",))
    shares = result.cells.sort("day", "cell_id")["patrol_share"].to_numpy().reshape(10, 4)
    assert shares[:7].tolist() == [[0.25] * 4] * 7
    assert not np.allclose(shares[7], 0.25)
    assert shares[7].sum() == pytest.approx(1.0)


# Lum and Isaac


@pytest.fixture(scope="module")
def lum_isaac():
    return lum_isaac_check(seed=3)


def test_lum_isaac_ranks_by_recording(lum_isaac) -> None:
    # Measured: 0.979 with recording and 0.101 with the true rates.
    assert lum_isaac.spearman_recording > 0.8
    assert abs(lum_isaac.spearman_true) < 0.3


def test_lum_isaac_group_ratio(lum_isaac) -> None:
    # Offending is equal in both groups, but the model learns about 2.4 times the rate in group_a.
    assert lum_isaac.true_ratio == pytest.approx(1.0, abs=0.03)
    assert lum_isaac.learned_ratio > 2.0


def test_lum_isaac_cells_frame(lum_isaac) -> None:
    cells = lum_isaac.cells
    assert cells.height == 40
    assert cells["group"].value_counts().sort("group")["count"].to_list() == [20, 20]
    assert sorted(cells["learned_rank"].to_list()) == list(range(1, 41))
    top_ten = cells.filter(pl.col("learned_rank") <= 10)
    assert top_ten["group"].to_list() == ["group_a"] * 10


def test_lum_isaac_learns_recorded_rate(lum_isaac) -> None:
    # 182 days are 26 whole weeks, so the day-of-week means average to the recorded count per day.
    cells = lum_isaac.cells
    expected = (cells["recorded_count"] / 182).to_numpy()
    assert cells["learned_rate"].to_numpy() == pytest.approx(expected)
