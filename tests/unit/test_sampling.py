"""Tests for balanced downsampling, prior correction and the time-based split."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ml.sampling import (
    HOURS_PER_WEEK,
    bootstrap_downsample,
    check_negative_ratio,
    downsample_balanced,
    prior_correct,
    recent_weeks_split,
    time_split,
)


def make_labels(n_pos: int, n_neg: int, seed: int = 0) -> np.ndarray:
    y = np.array([1] * n_pos + [0] * n_neg, dtype=np.int8)
    return np.random.default_rng(seed).permutation(y)


def test_downsample_counts_and_beta():
    y = make_labels(n_pos=10, n_neg=90)

    sample = downsample_balanced(y, np.random.default_rng(1))

    assert sample.n_pos == 10
    assert sample.n_neg_total == 90
    assert sample.n_neg_sampled == 10
    assert sample.beta == 10 / 90
    assert sample.indices.dtype == np.int64
    assert sample.indices.shape == (20,)
    assert np.all(np.diff(sample.indices) > 0)
    assert set(np.flatnonzero(y == 1)) <= set(sample.indices.tolist())
    assert int(y[sample.indices].sum()) == 10


def test_downsample_ratio_scales_negatives():
    y = make_labels(n_pos=10, n_neg=90)

    sample = downsample_balanced(y, np.random.default_rng(1), ratio=2.5)

    assert sample.n_neg_sampled == 25
    assert sample.beta == 25 / 90
    assert sample.indices.shape == (35,)


def test_downsample_keeps_all_negatives_when_few():
    y = make_labels(n_pos=10, n_neg=4)

    sample = downsample_balanced(y, np.random.default_rng(1), ratio=3.0)

    assert sample.n_neg_sampled == 4
    assert sample.beta == 1.0
    assert np.array_equal(sample.indices, np.arange(14))


def test_downsample_repeatable_for_seed():
    y = make_labels(n_pos=50, n_neg=5000)

    first = downsample_balanced(y, np.random.default_rng(3))
    second = downsample_balanced(y, np.random.default_rng(3))
    other = downsample_balanced(y, np.random.default_rng(4))

    assert np.array_equal(first.indices, second.indices)
    assert not np.array_equal(first.indices, other.indices)


def test_downsample_rejects_no_positives():
    with pytest.raises(ValueError, match=r"0 positives among 30 rows"):
        downsample_balanced(np.zeros(30, dtype=np.int8), np.random.default_rng(0))


def test_downsample_rejects_no_negatives():
    with pytest.raises(ValueError, match=r"0 negatives among 30 rows \(30 positives\)"):
        downsample_balanced(np.ones(30, dtype=np.int8), np.random.default_rng(0))


def test_downsample_rejects_non_binary_labels():
    y = np.array([0, 1, 2, 0, 3])

    with pytest.raises(ValueError, match=r"2 values are neither .*\[2, 3\]"):
        downsample_balanced(y, np.random.default_rng(0))


@pytest.mark.parametrize("ratio", [0, -1.0, float("nan"), float("inf")])
def test_downsample_rejects_invalid_ratio(ratio):
    with pytest.raises(ValueError, match=rf"negative ratio must be a finite number > 0 .*got {ratio}"):
        downsample_balanced(make_labels(5, 50), np.random.default_rng(0), ratio=ratio)


def test_check_negative_ratio_accepts_three():
    assert check_negative_ratio(3) == 3.0


def test_prior_correct_known_value():
    corrected = prior_correct(np.array([0.5]), beta=0.01)

    assert corrected[0] == pytest.approx(0.005 / 0.505, rel=1e-12)
    assert corrected[0] == pytest.approx(0.0099, abs=1e-4)


def test_prior_correct_endpoints_and_identity():
    p = np.array([0.0, 0.2, 0.7, 1.0])

    corrected = prior_correct(p, beta=0.05)

    assert corrected[0] == 0.0
    assert corrected[-1] == 1.0
    assert corrected.dtype == np.float64
    assert np.allclose(prior_correct(p, beta=1.0), p)


def test_prior_correct_monotone():
    p = np.linspace(0.0, 1.0, 1001)

    corrected = prior_correct(p, beta=0.003)

    assert np.all(np.diff(corrected) > 0)
    assert np.all(corrected <= p)


@pytest.mark.parametrize("beta", [0.0, -0.1, 1.5])
def test_prior_correct_rejects_invalid_beta(beta):
    with pytest.raises(ValueError, match=rf"beta .* must be in \(0, 1\], got {beta}"):
        prior_correct(np.array([0.5]), beta)


@pytest.mark.parametrize("ratio", [1.0, 3.0])
def test_prior_correct_restores_base_rate(ratio):
    """A correctly specified model on a downsample, corrected, matches the known rate on held-out rows."""
    rng = np.random.default_rng(11)
    n_rows = 800_000
    X = rng.standard_normal((n_rows, 3))
    true_probability = 1.0 / (1.0 + np.exp(-(-5.3 + X @ np.array([0.8, -0.5, 0.3]))))
    y = (rng.random(n_rows) < true_probability).astype(np.int8)
    train, held_out = slice(0, n_rows // 2), slice(n_rows // 2, n_rows)
    true_rate = true_probability[held_out].mean()

    sample = downsample_balanced(y[train], rng, ratio)
    model = LogisticRegression().fit(X[train][sample.indices], y[train][sample.indices])
    p_sampled = model.predict_proba(X[held_out])[:, 1]
    p_corrected = prior_correct(p_sampled, sample.beta)

    assert 0.003 < true_rate < 0.02
    assert sample.n_neg_sampled == round(ratio * sample.n_pos)
    assert p_sampled.mean() > 5 * true_rate
    assert abs(p_corrected.mean() - true_rate) / true_rate < 0.05


def test_bootstrap_keeps_class_balance():
    y = make_labels(n_pos=200, n_neg=20_000, seed=2)
    rng = np.random.default_rng(5)
    sample = downsample_balanced(y, rng, ratio=3.0)

    bag = bootstrap_downsample(y, sample, rng, n_rows=400)

    assert bag.n_pos == 100
    assert bag.n_neg == 300
    assert int(y[bag.indices].sum()) == 100
    assert bag.beta == pytest.approx((300 / 20_000) / (100 / 200), rel=1e-12)
    assert set(bag.indices.tolist()) <= set(sample.indices.tolist())
    assert set(bag.out_of_bag.tolist()) == set(sample.indices.tolist()) - set(bag.indices.tolist())


def test_bootstrap_full_size_by_default():
    y = make_labels(n_pos=50, n_neg=5_000, seed=2)
    rng = np.random.default_rng(5)
    sample = downsample_balanced(y, rng)

    bag = bootstrap_downsample(y, sample, rng, n_rows=None)

    assert bag.indices.shape == (100,)
    assert bag.beta == pytest.approx(sample.beta, rel=1e-12)
    assert np.unique(bag.indices).shape[0] < 100
    assert bag.out_of_bag.shape[0] > 0


def test_recent_weeks_split_counts_back_from_last_hour():
    hours = np.repeat(np.arange(1000, 1000 + 10 * HOURS_PER_WEEK, dtype=np.int64), 3)
    last_hour = 1000 + 10 * HOURS_PER_WEEK - 1

    split = recent_weeks_split(hours, validation_weeks=2, max_validation_fraction=0.5)

    assert split.n_weeks == 2
    assert split.first_validation_hour == last_hour - 2 * HOURS_PER_WEEK + 1
    assert int(split.validation.sum()) == 2 * HOURS_PER_WEEK * 3
    assert split.week[hours == last_hour].tolist() == [0, 0, 0]
    assert split.week[hours == last_hour - HOURS_PER_WEEK].tolist() == [1, 1, 1]
    assert split.week[hours == split.first_validation_hour - 1].tolist() == [-1, -1, -1]
    assert hours[split.fit].max() < hours[split.validation].min()


def test_recent_weeks_split_caps_short_windows():
    hours = np.arange(0, 3 * HOURS_PER_WEEK, dtype=np.int64)

    split = recent_weeks_split(hours, validation_weeks=4, max_validation_fraction=0.25)

    assert int(split.validation.sum()) == 126
    assert split.n_weeks == 1


def test_recent_weeks_split_rejects_tiny_window():
    with pytest.raises(ValueError, match=r"a window of 2 hours leaves no room for validation"):
        recent_weeks_split(np.array([5, 6], dtype=np.int64), validation_weeks=1, max_validation_fraction=0.25)


def test_time_split_puts_latest_hours_in_validation():
    rng = np.random.default_rng(0)
    hours = rng.permutation(np.repeat(np.arange(1000, 1020, dtype=np.int64), 7))

    fit, validation = time_split(hours, validation_fraction=0.25)

    assert fit.dtype == bool
    assert validation.dtype == bool
    assert np.array_equal(fit, ~validation)
    assert hours[fit].max() < hours[validation].min()
    assert np.array_equal(np.unique(hours[validation]), np.arange(1015, 1020))
    assert validation.sum() == 5 * 7


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_time_split_rejects_fraction_outside_unit_interval(fraction):
    with pytest.raises(ValueError, match=rf"must be in \(0, 1\), got {fraction}"):
        time_split(np.arange(10, dtype=np.int64), fraction)


def test_time_split_rejects_empty_validation():
    with pytest.raises(ValueError, match=r"of 10 distinct hours leaves 10 fit hours and 0 validation hours"):
        time_split(np.arange(10, dtype=np.int64), 0.01)


def test_time_split_rejects_empty_fit():
    with pytest.raises(ValueError, match=r"of 1 distinct hours leaves 0 fit hours and 1 validation hours"):
        time_split(np.full(50, 7, dtype=np.int64), 0.9)
