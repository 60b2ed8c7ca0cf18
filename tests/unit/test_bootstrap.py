"""Unit tests for ml.bootstrap: binned AUCs, p-values, estimates and coverage on simulated data."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ml.bootstrap import (
    METRICS,
    binned_pr_auc,
    binned_roc_auc,
    bootstrap_p_value,
    day_bootstrap_ci,
    paired_day_bootstrap,
    resample_weights,
    roc_auc_binning_bound,
    score_histograms,
)
from ml.metrics import brier_score, log_loss, pei_at_area_coverage, pr_auc, roc_auc

N_CELLS = 30
SLICES_PER_DAY = 2


def simulated_days(seed: int, n_days: int, noise_a: float, noise_b: float) -> dict[str, np.ndarray]:
    """Cells with gamma rates over n_days days of SLICES_PER_DAY slices, and two noisy scores of the log rate."""
    rng = np.random.default_rng(seed)
    n_slices = n_days * SLICES_PER_DAY

    cell_rate = rng.gamma(1.0, 0.1, N_CELLS)
    rate = np.tile(cell_rate, n_slices) * np.repeat(rng.gamma(4.0, 0.25, n_slices), N_CELLS)
    slice_ids = np.repeat(np.arange(n_slices), N_CELLS)
    score_a = np.log(np.tile(cell_rate, n_slices)) + rng.normal(0, noise_a, rate.size)
    score_b = np.log(np.tile(cell_rate, n_slices)) + rng.normal(0, noise_b, rate.size)
    return {
        "day_ids": slice_ids // SLICES_PER_DAY,
        "slice_ids": slice_ids,
        "crime_count": rng.poisson(rate),
        "area_km2": np.tile(rng.uniform(0.5, 3.0, N_CELLS), n_slices),
        "score_a": score_a,
        "score_b": score_b,
    }


def by_metric(table) -> dict[str, dict]:
    return {row["metric"]: row for row in table.iter_rows(named=True)}


# Binned AUCs


def test_binned_auc_close_to_sklearn() -> None:
    rng = np.random.default_rng(5)
    score = rng.normal(size=200_000)
    actual = rng.random(score.size) < 0.01 / (1 + np.exp(-2 * score)) * 2
    day_number = rng.integers(0, 50, score.size)

    positives, negatives = score_histograms(actual, score, day_number, 50, n_bins=2000)
    pooled_positives = positives.sum(axis=0)
    pooled_negatives = negatives.sum(axis=0)

    exact_roc = roc_auc_score(actual, score)
    exact_pr = average_precision_score(actual, score)
    assert abs(binned_roc_auc(pooled_positives, pooled_negatives) - exact_roc) < 0.002
    assert abs(binned_pr_auc(pooled_positives, pooled_negatives) - exact_pr) < 0.002
    assert abs(binned_roc_auc(pooled_positives, pooled_negatives) - exact_roc) <= roc_auc_binning_bound(pooled_positives, pooled_negatives)
    assert roc_auc_binning_bound(pooled_positives, pooled_negatives) < 0.0005


def test_binned_auc_exact_on_tied_scores() -> None:
    # Three distinct scores give three bins, so binning loses nothing.
    score = np.array([0.1, 0.1, 0.5, 0.5, 0.9, 0.9, 0.9])
    actual = np.array([False, True, False, False, True, True, False])

    positives, negatives = score_histograms(actual, score, np.zeros(7, dtype=np.int64), 1, n_bins=10)

    assert binned_roc_auc(positives[0], negatives[0]) == pytest.approx(roc_auc(actual, score))
    assert binned_pr_auc(positives[0], negatives[0]) == pytest.approx(pr_auc(actual, score))


# Resampling and p-values


def test_p_value_formula() -> None:
    # 3 of 9 differences are <= 0: p = 2 * (1 + 3) / (9 + 1).
    differences = np.array([-0.2, 0.0, -0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])

    assert bootstrap_p_value(differences) == pytest.approx(0.8)
    assert bootstrap_p_value(np.full(999, 0.1)) == pytest.approx(2 / 1000)
    assert bootstrap_p_value(np.zeros(5)) == 1.0
    assert bootstrap_p_value(np.array([np.nan])) is None


def test_resample_weights_count_days() -> None:
    weights = resample_weights(n_days=7, n_boot=50, seed=3)

    assert weights.shape == (50, 7)
    assert (weights.sum(axis=1) == 7).all()
    np.testing.assert_array_equal(weights, resample_weights(n_days=7, n_boot=50, seed=3))
    assert not np.array_equal(weights, resample_weights(n_days=7, n_boot=50, seed=4))


# paired_day_bootstrap


def test_estimates_match_metrics() -> None:
    data = simulated_days(seed=1, n_days=20, noise_a=0.5, noise_b=1.0)
    actual = data["crime_count"] > 0
    probability_a = 1 / (1 + np.exp(-data["score_a"]))
    probability_b = 1 / (1 + np.exp(-data["score_b"]))

    table = paired_day_bootstrap(**data, probability_a=probability_a, probability_b=probability_b, coverage=0.1, n_boot=200)

    rows = by_metric(table)
    assert table["metric"].to_list() == list(METRICS)
    hotspots = pei_at_area_coverage(data["score_a"], data["crime_count"], data["area_km2"], data["slice_ids"], coverage=0.1)
    assert rows["pai"]["estimate_a"] == pytest.approx(hotspots.pai)
    assert rows["hit_rate"]["estimate_a"] == pytest.approx(hotspots.hit_rate)
    assert rows["pei"]["estimate_a"] == pytest.approx(hotspots.pei)
    assert rows["pei_star"]["estimate_a"] == pytest.approx(hotspots.pei_star)
    assert rows["roc_auc"]["estimate_b"] == pytest.approx(roc_auc(actual, data["score_b"]))
    assert rows["pr_auc"]["estimate_b"] == pytest.approx(pr_auc(actual, data["score_b"]))
    assert rows["brier"]["estimate_a"] == pytest.approx(brier_score(actual, probability_a))
    assert rows["log_loss"]["estimate_b"] == pytest.approx(log_loss(actual, probability_b))
    assert rows["roc_auc"]["difference"] == pytest.approx(rows["roc_auc"]["estimate_a"] - rows["roc_auc"]["estimate_b"])
    assert rows["pai"]["n_days"] == 20
    assert rows["pai"]["n_boot"] == 200
    assert rows["roc_auc"]["a_ci_low"] < rows["roc_auc"]["estimate_a"] < rows["roc_auc"]["a_ci_high"]


def test_probability_rows_null_without_probabilities() -> None:
    data = simulated_days(seed=2, n_days=10, noise_a=0.5, noise_b=1.0)

    rows = by_metric(paired_day_bootstrap(**data, probability_a=1 / (1 + np.exp(-data["score_a"])), n_boot=50))

    for metric in ("brier", "log_loss"):
        assert rows[metric]["estimate_a"] is None
        assert rows[metric]["diff_ci_low"] is None
        assert rows[metric]["p_value"] is None
    assert rows["pai"]["p_value"] is not None


def test_same_model_has_zero_difference() -> None:
    data = simulated_days(seed=3, n_days=10, noise_a=0.5, noise_b=1.0)
    data["score_b"] = data["score_a"]

    rows = by_metric(paired_day_bootstrap(**data, n_boot=100))

    assert rows["roc_auc"]["difference"] == 0.0
    assert rows["roc_auc"]["diff_ci_low"] == 0.0
    assert rows["roc_auc"]["diff_ci_high"] == 0.0
    assert rows["pai"]["p_value"] == 1.0


def test_same_seed_same_table() -> None:
    data = simulated_days(seed=4, n_days=10, noise_a=0.5, noise_b=1.0)

    first = paired_day_bootstrap(**data, n_boot=100, seed=7)
    second = paired_day_bootstrap(**data, n_boot=100, seed=7)

    assert first.equals(second)


def test_slice_spanning_days_raises() -> None:
    data = simulated_days(seed=5, n_days=3, noise_a=0.5, noise_b=1.0)
    data["day_ids"] = data["day_ids"].copy()
    data["day_ids"][0] = 2

    with pytest.raises(ValueError, match="Slice 0 spans 2 days"):
        paired_day_bootstrap(**data, n_boot=10)


def test_rejects_invalid_n_boot() -> None:
    data = simulated_days(seed=5, n_days=3, noise_a=0.5, noise_b=1.0)

    with pytest.raises(ValueError, match="n_boot must be a whole number >= 1, got 0"):
        paired_day_bootstrap(**data, n_boot=0)


def test_null_case_coverage() -> None:
    # Both models add noise of the same size to the same log rates, so their expected performance is equal.
    n_replications = 200
    covers = {"roc_auc": 0, "pai": 0}
    rejects = {"roc_auc": 0, "pai": 0}

    for seed in range(n_replications):
        data = simulated_days(seed=seed, n_days=30, noise_a=1.0, noise_b=1.0)
        rows = by_metric(paired_day_bootstrap(**data, coverage=0.1, n_boot=300, seed=seed, n_score_bins=500))
        for metric in covers:
            covers[metric] += rows[metric]["diff_ci_low"] <= 0 <= rows[metric]["diff_ci_high"]
            rejects[metric] += rows[metric]["p_value"] < 0.05

    for metric in covers:
        assert 0.90 <= covers[metric] / n_replications <= 0.99, (metric, covers[metric])
        assert 0.01 <= rejects[metric] / n_replications <= 0.10, (metric, rejects[metric])


def test_better_model_is_significant() -> None:
    data = simulated_days(seed=11, n_days=40, noise_a=0.3, noise_b=3.0)

    rows = by_metric(paired_day_bootstrap(**data, coverage=0.1, n_boot=500))

    assert rows["roc_auc"]["p_value"] < 0.01
    assert rows["pai"]["p_value"] < 0.01
    assert rows["roc_auc"]["diff_ci_low"] > 0


# day_bootstrap_ci


def test_single_model_intervals() -> None:
    data = simulated_days(seed=6, n_days=20, noise_a=0.5, noise_b=1.0)
    probability = 1 / (1 + np.exp(-data["score_a"]))

    table = day_bootstrap_ci(data["day_ids"], data["slice_ids"], data["crime_count"], data["area_km2"], data["score_a"],
                             probability=probability, n_boot=200)

    rows = by_metric(table)
    assert table.columns == ["metric", "estimate", "ci_low", "ci_high", "n_days", "n_boot"]
    assert rows["brier"]["estimate"] == pytest.approx(brier_score(data["crime_count"] > 0, probability))
    assert rows["brier"]["ci_low"] < rows["brier"]["estimate"] < rows["brier"]["ci_high"]
    paired = by_metric(paired_day_bootstrap(**data, n_boot=200))
    assert rows["pai"]["ci_low"] == paired["pai"]["a_ci_low"]


def test_missing_day_id_raises() -> None:
    data = simulated_days(seed=5, n_days=3, noise_a=0.5, noise_b=1.0)
    data["day_ids"] = data["day_ids"].astype(float)
    data["day_ids"][4] = np.nan

    with pytest.raises(ValueError, match="day_ids has a missing id at row 4"):
        paired_day_bootstrap(**data, n_boot=10)
