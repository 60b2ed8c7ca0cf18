"""Tests for the ensemble members and RiskEnsemble on a synthetic rare-event problem."""

import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml.ensemble import AUC_WEIGHT_FLOOR, EnsembleConfig, RiskEnsemble, auc_margin_weights
from ml.models import LightGBMMember, NetMember

N_CELLS = 100
FEATURE_NAMES = [f"x{i}" for i in range(10)]
COEFFICIENTS = np.array([0.9, -0.7, 0.6, 0.5, -0.4, 0.3, 0.0, 0.0, 0.2, -0.2])
MISSING_COLUMNS = (2, 3)

# Small settings keep each fit to a few seconds on 2 cores, and these tests need no more accuracy than that.
FAST_CONFIG = EnsembleConfig(n_nets=3, epochs=4, lgbm_n_estimators=80, seed=7)
TINY_CONFIG = EnsembleConfig(n_nets=2, epochs=2, lgbm_n_estimators=20, seed=7)


def make_cell_hours(n_hours: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ordered by hour, N_CELLS cells per hour, logistic ground truth with a base rate near 1%.

    Columns 2 and 3 are 20% NaN after the labels are drawn, the way missing
    weather hides a value that still affected the outcome.
    """
    rng = np.random.default_rng(seed)
    n_rows = n_hours * N_CELLS
    hours = np.repeat(np.arange(400_000, 400_000 + n_hours, dtype=np.int64), N_CELLS)

    X = rng.standard_normal((n_rows, len(FEATURE_NAMES))).astype(np.float32)
    logit = -5.6 + X.astype(np.float64) @ COEFFICIENTS
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)

    for column in MISSING_COLUMNS:
        X[rng.random(n_rows) < 0.2, column] = np.nan
    return X, y, hours


@pytest.fixture(scope="module")
def problem():
    """2,400 hours x 100 cells: the first 2,000 hours train, the last 400 are held out."""
    X, y, hours = make_cell_hours(2400)
    train = hours < 400_000 + 2000
    return {
        "X_train": X[train],
        "y_train": y[train],
        "hours_train": hours[train],
        "X_test": X[~train],
        "y_test": y[~train],
    }


@pytest.fixture(scope="module")
def fitted(problem):
    return RiskEnsemble(FAST_CONFIG).fit(
        problem["X_train"], problem["y_train"], problem["hours_train"], FEATURE_NAMES
    )


@pytest.fixture(scope="module")
def small_problem():
    return make_cell_hours(500, seed=3)


def test_synthetic_problem_is_rare(problem):
    base_rate = problem["y_train"].mean()

    assert 0.005 < base_rate < 0.02
    assert problem["y_test"].sum() > 200


def test_ensemble_auc_on_later_rows(fitted, problem):
    X_test, y_test = problem["X_test"], problem["y_test"]

    p = fitted.predict_proba(X_test)

    assert p.dtype == np.float64
    assert p.shape == (X_test.shape[0],)
    assert roc_auc_score(y_test, p) > 0.7


def test_each_member_auc_on_later_rows(fitted, problem):
    X_test, y_test = problem["X_test"], problem["y_test"]

    net_probabilities = [net.predict_proba(X_test) for net in fitted.nets]

    for net_probability in net_probabilities:
        assert roc_auc_score(y_test, net_probability) > 0.6
    assert roc_auc_score(y_test, np.mean(net_probabilities, axis=0)) > 0.6
    assert roc_auc_score(y_test, fitted.lightgbm.predict_proba(X_test)) > 0.6


def test_mean_probability_near_base_rate(fitted, problem):
    base_rate = problem["y_test"].mean()

    mean_probability = fitted.predict_proba(problem["X_test"]).mean()

    assert abs(mean_probability - base_rate) / base_rate < 0.3


def test_weights_follow_auc_margin_rule(fitted):
    auc_nets = fitted.validation_metrics["nets"]["roc_auc"]
    auc_lightgbm = fitted.validation_metrics["lightgbm"]["roc_auc"]
    margin_nets = max(auc_nets - 0.5, AUC_WEIGHT_FLOOR)
    margin_lightgbm = max(auc_lightgbm - 0.5, AUC_WEIGHT_FLOOR)

    assert set(fitted.weights) == {"nets", "lightgbm"}
    assert sum(fitted.weights.values()) == pytest.approx(1.0, abs=1e-12)
    assert fitted.weights["nets"] == pytest.approx(margin_nets / (margin_nets + margin_lightgbm), rel=1e-12)
    assert fitted.weights["lightgbm"] == pytest.approx(margin_lightgbm / (margin_nets + margin_lightgbm), rel=1e-12)


def test_auc_margin_weights_floor():
    weights = auc_margin_weights({"nets": 0.8, "lightgbm": 0.7})
    floored = auc_margin_weights({"nets": 0.4, "lightgbm": 0.9})

    assert weights["nets"] == pytest.approx(0.3 / 0.5)
    assert weights["lightgbm"] == pytest.approx(0.2 / 0.5)
    assert floored["nets"] == pytest.approx(0.01 / 0.41)
    assert floored["lightgbm"] == pytest.approx(0.40 / 0.41)


def test_member_report_rows(fitted):
    report = fitted.member_report
    kinds = [row["kind"] for row in report]
    expected_keys = {"kind", "bag", "log_loss", "brier", "roc_auc", "weight", "n_pos", "n_neg_sampled", "beta"}

    assert kinds == ["net"] * FAST_CONFIG.n_nets + ["lightgbm"]
    assert [row["bag"] for row in report[:-1]] == list(range(FAST_CONFIG.n_nets))
    for row in report:
        assert expected_keys <= set(row)
        assert 0.0 < row["beta"] < 1.0
        assert row["n_neg_sampled"] == row["n_pos"]
        assert "refit_beta" in row
    assert sum(row["weight"] for row in report) == pytest.approx(1.0, abs=1e-12)
    assert report[-1]["weight"] == fitted.weights["lightgbm"]


def test_refit_uses_all_rows(fitted, problem):
    n_pos_all = int(problem["y_train"].sum())

    assert fitted.lightgbm.sample.n_pos == n_pos_all
    assert fitted.member_report[-1]["n_pos"] < n_pos_all
    assert fitted.member_report[-1]["refit_n_pos"] == n_pos_all


def test_save_load_identical_predictions(fitted, problem, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = RiskEnsemble.load(tmp_path / "model")
    document = json.loads((tmp_path / "model" / "ensemble.json").read_text())

    assert np.array_equal(loaded.predict_proba(problem["X_test"]), fitted.predict_proba(problem["X_test"]))
    assert loaded.weights == fitted.weights
    assert loaded.config == fitted.config
    assert loaded.feature_names == FEATURE_NAMES
    assert document["weighting_rule"]["name"] == "auc_margin"
    assert document["weighting_rule"]["floor"] == AUC_WEIGHT_FLOOR
    assert not list((tmp_path / "model").rglob("*.pkl"))
    assert not list((tmp_path / "model").rglob("*.pt"))


def test_same_seed_repeats_and_other_seed_differs(small_problem):
    X, y, hours = small_problem

    first = RiskEnsemble(TINY_CONFIG).fit(X, y, hours, FEATURE_NAMES).predict_proba(X[:5000])
    second = RiskEnsemble(TINY_CONFIG).fit(X, y, hours, FEATURE_NAMES).predict_proba(X[:5000])
    other = RiskEnsemble(replace(TINY_CONFIG, seed=8)).fit(X, y, hours, FEATURE_NAMES).predict_proba(X[:5000])

    assert np.array_equal(first, second)
    assert not np.allclose(first, other)


def test_without_refit_keeps_fit_part_members(small_problem):
    X, y, hours = small_problem
    ensemble = RiskEnsemble(replace(TINY_CONFIG, refit_full=False)).fit(X, y, hours, FEATURE_NAMES)

    assert ensemble.lightgbm.sample.n_pos == ensemble.member_report[-1]["n_pos"]
    assert ensemble.lightgbm.sample.n_pos < int(y.sum())
    assert "refit_beta" not in ensemble.member_report[-1]


def test_net_member_missing_indicators(small_problem):
    X, y, _ = small_problem

    member = NetMember(epochs=1, seed=1).fit(X, y)
    inputs = member.transform(X[:1000])

    assert member.missing_columns.tolist() == list(MISSING_COLUMNS)
    assert inputs.shape == (1000, len(FEATURE_NAMES) + len(MISSING_COLUMNS))
    assert not np.isnan(inputs.numpy()).any()
    assert np.array_equal(inputs[:, -2].numpy(), np.isnan(X[:1000, 2]).astype(np.float32))


def test_net_member_save_load(small_problem, tmp_path):
    X, y, _ = small_problem
    member = NetMember(epochs=1, seed=1).fit(X, y)

    member.save(tmp_path / "net")
    loaded = NetMember.load(tmp_path / "net")

    assert np.array_equal(loaded.predict_proba(X[:2000]), member.predict_proba(X[:2000]))
    assert loaded.sample == member.sample


def test_lightgbm_member_save_load(small_problem, tmp_path):
    X, y, _ = small_problem
    member = LightGBMMember(n_estimators=20, seed=1).fit(X, y)

    member.save(tmp_path / "lightgbm")
    loaded = LightGBMMember.load(tmp_path / "lightgbm")

    assert np.array_equal(loaded.predict_proba(X[:2000]), member.predict_proba(X[:2000]))
    assert (tmp_path / "lightgbm" / "model.txt").is_file()


def test_fit_rejects_length_mismatch(small_problem):
    X, y, hours = small_problem

    with pytest.raises(ValueError, match=rf"X has {X.shape[0]} rows but y has shape \({X.shape[0] - 1},\)"):
        RiskEnsemble(TINY_CONFIG).fit(X, y[:-1], hours, FEATURE_NAMES)


def test_fit_rejects_feature_names_mismatch(small_problem):
    X, y, hours = small_problem

    with pytest.raises(ValueError, match=r"feature_names has 3 names but X has 10 columns"):
        RiskEnsemble(TINY_CONFIG).fit(X, y, hours, ["a", "b", "c"])


def test_fit_rejects_infinity(small_problem):
    X, y, hours = small_problem
    X_bad = X.copy()
    X_bad[5, 4] = np.inf
    X_bad[9, 4] = -np.inf

    with pytest.raises(ValueError, match=r"2 \+inf/-inf values in columns \['x4'\]"):
        RiskEnsemble(TINY_CONFIG).fit(X_bad, y, hours, FEATURE_NAMES)


def test_fit_rejects_validation_without_positives(small_problem):
    X, y, hours = small_problem
    y_early = y.copy()
    y_early[hours >= np.quantile(hours, 0.5)] = 0
    n_total = int(y_early.sum())

    expected = rf"has 0 positives, and the whole training set has {n_total}.*longer training window"

    with pytest.raises(ValueError, match=expected):
        RiskEnsemble(TINY_CONFIG).fit(X, y_early, hours, FEATURE_NAMES)


def test_predict_rejects_wrong_width(fitted, problem):
    with pytest.raises(ValueError, match=r"X has 9 columns but the model expects 10 features"):
        fitted.predict_proba(problem["X_test"][:, :9])


def test_predict_rejects_infinity(fitted, problem):
    X_bad = problem["X_test"][:100].copy()
    X_bad[3, 7] = -np.inf

    with pytest.raises(ValueError, match=r"1 \+inf/-inf values in columns \['x7'\]"):
        fitted.predict_proba(X_bad)


def test_predict_before_fit_raises():
    with pytest.raises(RuntimeError, match=r"not fitted"):
        RiskEnsemble().predict_proba(np.zeros((2, 10), dtype=np.float32))


def test_config_rejects_invalid_values():
    with pytest.raises(ValueError, match=r"n_nets must be >= 1, got 0"):
        EnsembleConfig(n_nets=0)
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\), got 1.0"):
        EnsembleConfig(validation_fraction=1.0)
