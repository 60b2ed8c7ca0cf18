"""Tests for the ensemble members and RiskEnsemble on synthetic rare-event problems."""

import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml.ensemble import (
    LIGHTGBM_STREAM,
    NET_STREAM,
    EnsembleConfig,
    RiskEnsemble,
    derive_seed,
    recent_skill,
    skill_weights,
    week_decay,
    weekly_log_losses,
)
from ml.models import LightGBMMember, NetMember
from orchestration.jurisdiction import EnsembleSettings

N_CELLS = 100
FIRST_HOUR = 400_000
FEATURE_NAMES = [f"x{i}" for i in range(10)]
COEFFICIENTS = np.array([0.9, -0.7, 0.6, 0.5, -0.4, 0.3, 0.0, 0.0, 0.2, -0.2])
MISSING_COLUMNS = (2, 3)

# Small settings keep each fit to a few seconds on 2 cores, and these tests need no more accuracy than that.
FAST_CONFIG = EnsembleConfig(
    n_nets=3, epochs=4, batch_size=512, net_bootstrap_rows=None, lgbm_members=2, lgbm_n_estimators=80,
    validation_weeks=4, validation_fraction=0.35, num_threads=1, seed=7,
)
TINY_CONFIG = EnsembleConfig(
    n_nets=2, epochs=2, net_bootstrap_rows=2000, lgbm_members=1, lgbm_n_estimators=20,
    validation_weeks=1, num_threads=1, seed=7,
)


def logistic(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit))


def make_cell_hours(
    n_hours: int, seed: int = 0, intercept: float = -5.6
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows ordered by hour, N_CELLS cells per hour, logistic ground truth with a base rate near 1% by default.

    Returns (X, y, hours, true probability). Columns 2 and 3 are 20% NaN after the
    labels are drawn, the way missing weather hides a value that still affected the outcome.
    """
    rng = np.random.default_rng(seed)
    n_rows = n_hours * N_CELLS
    hours = np.repeat(np.arange(FIRST_HOUR, FIRST_HOUR + n_hours, dtype=np.int64), N_CELLS)

    X = rng.standard_normal((n_rows, len(FEATURE_NAMES))).astype(np.float32)
    probability = logistic(intercept + X.astype(np.float64) @ COEFFICIENTS)
    y = (rng.random(n_rows) < probability).astype(np.int8)

    for column in MISSING_COLUMNS:
        X[rng.random(n_rows) < 0.2, column] = np.nan
    return X, y, hours, probability


def make_banded_problem(n_hours: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Risk that alternates over 18 bands of x0: trees split on it, a 2-unit net cannot follow it."""
    rng = np.random.default_rng(seed)
    n_rows = n_hours * N_CELLS
    hours = np.repeat(np.arange(FIRST_HOUR, FIRST_HOUR + n_hours, dtype=np.int64), N_CELLS)

    X = rng.standard_normal((n_rows, 3)).astype(np.float32)
    X[:, 0] = rng.uniform(-3.0, 3.0, n_rows).astype(np.float32)
    band_sign = np.where(np.floor(X[:, 0] * 3.0) % 2 == 0, 1.0, -1.0)
    y = (rng.random(n_rows) < logistic(-4.0 + 1.5 * band_sign)).astype(np.int8)
    return X, y, hours


@pytest.fixture(scope="module")
def problem():
    """2,400 hours x 100 cells: the first 2,000 hours train, the last 400 are held out."""
    X, y, hours, probability = make_cell_hours(2400)
    train = hours < FIRST_HOUR + 2000
    return {
        "X_train": X[train],
        "y_train": y[train],
        "hours_train": hours[train],
        "X_test": X[~train],
        "y_test": y[~train],
        "p_test": probability[~train],
    }


@pytest.fixture(scope="module")
def fitted(problem):
    return RiskEnsemble(FAST_CONFIG).fit(
        problem["X_train"], problem["y_train"], problem["hours_train"], FEATURE_NAMES
    )


@pytest.fixture(scope="module")
def small_problem():
    X, y, hours, _ = make_cell_hours(500, seed=3)
    return X, y, hours


def test_synthetic_problem_is_rare(problem):
    base_rate = problem["y_train"].mean()

    assert 0.005 < base_rate < 0.02
    assert problem["y_test"].sum() > 200


def test_ensemble_auc_on_later_rows(fitted, problem):
    X_test, y_test = problem["X_test"], problem["y_test"]

    p = fitted.predict_proba(X_test)

    assert p.dtype == np.float64
    assert p.shape == (X_test.shape[0],)
    assert roc_auc_score(y_test, p) > 0.75


def test_each_member_auc_on_later_rows(fitted, problem):
    X_test, y_test = problem["X_test"], problem["y_test"]

    for net in fitted.nets:
        assert roc_auc_score(y_test, net.predict_proba(X_test)) > 0.6
    for member in fitted.lightgbm_members:
        assert roc_auc_score(y_test, member.predict_proba(X_test)) > 0.6


def test_prediction_mean_matches_true_rate(fitted, problem):
    true_rate = problem["p_test"].mean()

    mean_probability = fitted.predict_proba(problem["X_test"]).mean()

    assert abs(mean_probability - true_rate) / true_rate < 0.15


@pytest.fixture(scope="module")
def common_problem():
    """A base rate near 4%, so that each 1:1 downsample has about 8,000 positives and members are well fitted."""
    X, y, hours, probability = make_cell_hours(2400, seed=9, intercept=-4.0)
    train = hours < FIRST_HOUR + 2000
    return X[train], y[train], hours[train], X[~train], probability[~train]


@pytest.mark.parametrize("ratio", [1.0, 3.0])
def test_prior_correction_recovers_true_rate(common_problem, ratio):
    X_train, y_train, hours_train, X_test, p_test = common_problem
    config = replace(
        FAST_CONFIG, negative_ratio=ratio, n_nets=2, lgbm_members=1, refit_full=False,
        lgbm_num_leaves=7, lgbm_learning_rate=0.05, lgbm_min_child_samples=200,
    )
    ensemble = RiskEnsemble(config).fit(X_train, y_train, hours_train, FEATURE_NAMES)
    true_rate = p_test.mean()
    net = ensemble.nets[0]

    corrected = net.predict_proba(X_test).mean()
    uncorrected = (1.0 / (1.0 + np.exp(-net.predict_logits(net.scaling.transform(X_test))))).mean()
    ensemble_mean = ensemble.predict_proba(X_test).mean()

    assert net.sample.n_neg_sampled == round(ratio * net.sample.n_pos)
    assert abs(corrected - true_rate) / true_rate < 0.03
    assert abs(ensemble_mean - true_rate) / true_rate < 0.1
    assert uncorrected > 3 * true_rate


def test_weights_follow_skill_rule(fitted):
    skill_nets = fitted.validation_metrics["nets"]["skill"]
    skill_lightgbm = fitted.validation_metrics["lightgbm"]["skill"]
    clipped_nets = max(skill_nets, FAST_CONFIG.weight_floor)
    clipped_lightgbm = max(skill_lightgbm, FAST_CONFIG.weight_floor)

    assert set(fitted.weights) == {"nets", "lightgbm"}
    assert sum(fitted.weights.values()) == pytest.approx(1.0, abs=1e-12)
    assert fitted.weights["nets"] == pytest.approx(clipped_nets / (clipped_nets + clipped_lightgbm), rel=1e-12)
    assert skill_nets > 0.02
    assert skill_lightgbm > 0.02


def test_weekly_skill_recomputes(fitted):
    metrics = fitted.validation_metrics["nets"]
    weekly = metrics["weekly"]
    losses = np.array([week["log_loss"] for week in weekly])
    reference = np.array([week["reference_log_loss"] for week in weekly])
    counts = np.array([week["n_rows"] for week in weekly])

    assert [week["week"] for week in weekly] == [0, 1, 2, 3]
    assert counts.tolist() == [168 * N_CELLS] * 4
    assert [week["decay"] for week in weekly] == [1.0, 0.5 ** 0.5, 0.5, 0.5 ** 1.5]
    assert recent_skill(losses, reference, counts, week_decay(4, 2.0)) == pytest.approx(metrics["skill"], rel=1e-12)


def test_skill_weights_known_values():
    losses = np.array([0.10, 0.20])
    reference = np.array([0.125, 0.25])
    counts = np.array([100, 100])

    skill = recent_skill(losses, reference, counts, week_decay(2, 1.0))
    weights = skill_weights({"nets": 0.03, "lightgbm": 0.06}, floor=0.001)
    floored = skill_weights({"nets": -0.2, "lightgbm": 0.049}, floor=0.001)

    assert skill == pytest.approx(1 - (10 + 0.5 * 20) / (12.5 + 0.5 * 25), rel=1e-12)
    assert weights["nets"] == pytest.approx(1 / 3, rel=1e-12)
    assert weights["lightgbm"] == pytest.approx(2 / 3, rel=1e-12)
    assert floored["nets"] == pytest.approx(0.001 / 0.05, rel=1e-12)


def test_skill_separates_close_log_losses():
    """Log losses 0.135 and 0.130 against a base-rate loss of 0.140: inverse loss is near equal, skill is not."""
    weights = skill_weights({"nets": 1 - 0.135 / 0.140, "lightgbm": 1 - 0.130 / 0.140}, floor=0.001)
    inverse_loss_nets = (1 / 0.135) / (1 / 0.135 + 1 / 0.130)

    assert inverse_loss_nets == pytest.approx(0.4906, abs=1e-4)
    assert weights["nets"] == pytest.approx(1 / 3, rel=1e-9)


def test_weekly_log_losses_known_values():
    y = np.array([1.0, 0.0, 0.0, 1.0])
    p = np.array([0.5, 0.5, 0.2, 0.8])
    week = np.array([0, 0, 1, 1])

    losses = weekly_log_losses(y, p, week, 2)

    assert losses[0] == pytest.approx(np.log(2), rel=1e-12)
    assert losses[1] == pytest.approx(-np.log(0.8), rel=1e-12)


def test_weights_favour_trees_on_banded_risk():
    X, y, hours = make_banded_problem(1200)
    config = replace(
        TINY_CONFIG, n_nets=2, hidden_sizes=(2,), epochs=2, net_bootstrap_rows=3000,
        lgbm_n_estimators=60, lgbm_min_child_samples=20, validation_weeks=2,
    )

    ensemble = RiskEnsemble(config).fit(X, y, hours, ["x0", "x1", "x2"])
    metrics = ensemble.validation_metrics

    assert metrics["lightgbm"]["skill"] > 0.05
    assert metrics["lightgbm"]["skill"] > metrics["nets"]["skill"] + 0.03
    assert ensemble.weights["lightgbm"] > 0.7


def test_weights_favour_nets_over_stump_lightgbm(small_problem):
    X, y, hours = small_problem
    config = replace(
        TINY_CONFIG, n_nets=3, epochs=4, net_bootstrap_rows=None,
        lgbm_num_leaves=2, lgbm_n_estimators=1, lgbm_learning_rate=0.01, validation_weeks=1,
    )

    ensemble = RiskEnsemble(config).fit(X, y, hours, FEATURE_NAMES)
    metrics = ensemble.validation_metrics

    assert metrics["nets"]["skill"] > metrics["lightgbm"]["skill"] + 0.01
    assert ensemble.weights["nets"] > 0.7


def test_member_report_rows(fitted):
    report = fitted.member_report
    expected_keys = {"name", "kind", "bag", "seed", "log_loss", "skill", "roc_auc", "weight", "weekly",
                     "n_pos", "n_neg_sampled", "beta", "refit_beta"}

    assert [row["kind"] for row in report] == ["lightgbm", "lightgbm", "net", "net", "net"]
    assert [row["name"] for row in report] == ["lightgbm_00", "lightgbm_01", "net_000", "net_001", "net_002"]
    for row in report:
        assert expected_keys <= set(row)
        assert 0.0 < row["beta"] < 1.0
        assert row["n_neg_sampled"] == row["n_pos"]
        assert len(row["weekly"]) == 4
    assert sum(row["weight"] for row in report) == pytest.approx(1.0, abs=1e-12)
    assert report[0]["weight"] == pytest.approx(fitted.weights["lightgbm"] / 2, rel=1e-12)


def test_member_seeds_from_kind_and_index(fitted):
    seeds = {row["name"]: row["seed"] for row in fitted.member_report}

    assert seeds["lightgbm_01"] == derive_seed(FAST_CONFIG.seed, LIGHTGBM_STREAM, 1)
    assert seeds["net_002"] == derive_seed(FAST_CONFIG.seed, NET_STREAM, 2)
    assert len(set(seeds.values())) == len(seeds)


def test_refit_uses_all_rows(fitted, problem):
    n_pos_all = int(problem["y_train"].sum())

    assert fitted.lightgbm.sample.n_pos == n_pos_all
    assert fitted.member_report[0]["n_pos"] < n_pos_all
    assert fitted.member_report[0]["refit_n_pos"] == n_pos_all


def test_save_load_identical_predictions(fitted, problem, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = RiskEnsemble.load(tmp_path / "model")
    document = json.loads((tmp_path / "model" / "ensemble.json").read_text())

    assert loaded.predict_proba(problem["X_test"]).tobytes() == fitted.predict_proba(problem["X_test"]).tobytes()
    assert loaded.weights == fitted.weights
    assert loaded.config == fitted.config
    assert loaded.feature_names == FEATURE_NAMES
    assert document["weighting_rule"]["name"] == "recent_log_loss_skill"
    assert document["weighting_rule"]["half_life_weeks"] == 2.0
    assert document["validation_metrics"]["ensemble"]["weekly"][0]["week"] == 0
    assert document["member_report"][2]["weekly"][3]["n_rows"] == 168 * N_CELLS
    assert not list((tmp_path / "model").rglob("*.pkl"))
    assert not list((tmp_path / "model").rglob("*.pt"))


def test_same_seed_repeats_and_other_seed_differs(small_problem):
    X, y, hours = small_problem

    first = RiskEnsemble(TINY_CONFIG).fit(X, y, hours, FEATURE_NAMES).predict_proba(X[:5000])
    second = RiskEnsemble(TINY_CONFIG).fit(X, y, hours, FEATURE_NAMES).predict_proba(X[:5000])
    other = RiskEnsemble(replace(TINY_CONFIG, seed=8)).fit(X, y, hours, FEATURE_NAMES).predict_proba(X[:5000])

    assert first.tobytes() == second.tobytes()
    assert not np.allclose(first, other)


def test_two_workers_match_one_worker(small_problem):
    X, y, hours = small_problem
    config = replace(TINY_CONFIG, n_nets=3, lgbm_members=2)

    one = RiskEnsemble(config).fit(X, y, hours, FEATURE_NAMES)
    two = RiskEnsemble(replace(config, num_threads=2)).fit(X, y, hours, FEATURE_NAMES)

    assert two.predict_proba(X[:5000]).tobytes() == one.predict_proba(X[:5000]).tobytes()
    assert two.weights == one.weights
    assert [row["log_loss"] for row in two.member_report] == [row["log_loss"] for row in one.member_report]


def test_without_refit_keeps_fit_part_members(small_problem):
    X, y, hours = small_problem
    ensemble = RiskEnsemble(replace(TINY_CONFIG, refit_full=False)).fit(X, y, hours, FEATURE_NAMES)

    assert ensemble.lightgbm.sample.n_pos == ensemble.member_report[0]["n_pos"]
    assert ensemble.lightgbm.sample.n_pos < int(y.sum())
    assert "refit_beta" not in ensemble.member_report[0]


def test_net_member_missing_indicators(small_problem):
    X, y, _ = small_problem

    member = NetMember(epochs=1, seed=1).fit(X, y)
    inputs = member.scaling.transform(X[:1000])

    assert member.scaling.missing_columns.tolist() == list(MISSING_COLUMNS)
    assert inputs.shape == (1000, len(FEATURE_NAMES) + len(MISSING_COLUMNS))
    assert not np.isnan(inputs).any()
    assert np.array_equal(inputs[:, -2], np.isnan(X[:1000, 2]).astype(np.float32))


def test_net_member_early_stopping(small_problem):
    X, y, _ = small_problem

    member = NetMember(epochs=30, patience=1, learning_rate=0.05, bootstrap_rows=800, seed=1).fit(X, y)

    assert member.epochs_run < 30
    assert member.epochs_run == member.best_epoch + 1
    assert member.sample.bag_rows == 800
    assert 400 < member.sample.out_of_bag_rows < 600


def test_net_member_save_load(small_problem, tmp_path):
    X, y, _ = small_problem
    member = NetMember(epochs=1, seed=1).fit(X, y)

    member.save(tmp_path / "net")
    loaded = NetMember.load(tmp_path / "net")

    assert loaded.predict_proba(X[:2000]).tobytes() == member.predict_proba(X[:2000]).tobytes()
    assert loaded.sample == member.sample


def test_lightgbm_member_save_load(small_problem, tmp_path):
    X, y, _ = small_problem
    member = LightGBMMember(n_estimators=20, seed=1).fit(X, y)

    member.save(tmp_path / "lightgbm")
    loaded = LightGBMMember.load(tmp_path / "lightgbm")

    assert loaded.predict_proba(X[:2000]).tobytes() == member.predict_proba(X[:2000]).tobytes()
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
    y_late_empty = y.copy()
    y_late_empty[hours > hours.max() - 168] = 0
    n_total = int(y_late_empty.sum())

    expected = rf"latest 125 hours in 1 weeks \(12500 rows\), has 0 positives, and the whole training set has {n_total}"

    with pytest.raises(ValueError, match=expected):
        RiskEnsemble(TINY_CONFIG).fit(X, y_late_empty, hours, FEATURE_NAMES)


def test_fit_rejects_window_too_short(small_problem):
    X, y, hours = small_problem
    short = hours < FIRST_HOUR + 3

    with pytest.raises(ValueError, match=r"a window of 3 hours leaves no room for validation"):
        RiskEnsemble(TINY_CONFIG).fit(X[short], y[short], hours[short], FEATURE_NAMES)


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


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("negative_ratio", 0.0, r"negative_ratio: negative ratio must be a finite number > 0 .*got 0.0"),
        ("negative_ratio", float("nan"), r"negative_ratio: .*got nan"),
        ("n_nets", 0, r"n_nets must be an integer >= 1, got 0"),
        ("lgbm_members", 0, r"lgbm_members must be an integer >= 1, got 0"),
        ("validation_weeks", 0, r"validation_weeks must be an integer >= 1, got 0"),
        ("num_threads", 0, r"num_threads must be an integer >= 1, got 0"),
        ("weight_half_life_weeks", 0.0, r"weight_half_life_weeks must be a finite number > 0, got 0.0"),
        ("weight_decay", -0.1, r"weight_decay must be a finite number >= 0, got -0.1"),
        ("net_bootstrap_rows", 10, r"net_bootstrap_rows must be >= 100 or None .*got 10"),
        ("hidden_sizes", (), r"hidden_sizes must be one or more positive widths, got \(\)"),
        ("validation_fraction", 1.0, r"validation_fraction must be in \(0, 1\), got 1.0"),
    ],
)
def test_config_rejects_invalid_value(setting, value, message):
    with pytest.raises(ValueError, match=message):
        EnsembleConfig(**{setting: value})


def test_settings_defaults_match_config():
    settings = EnsembleSettings().model_dump()
    config = EnsembleConfig().to_json()

    assert settings == {name: config[name] for name in settings}
    assert set(config) - set(settings) == {"seed"}


def test_settings_reject_zero_ratio():
    with pytest.raises(ValueError, match=r"negative_ratio\n  Input should be greater than 0"):
        EnsembleSettings(negative_ratio=0)


def test_small_shared_memory_trains_in_process(small_problem, monkeypatch, caplog):
    X, y, hours = small_problem
    monkeypatch.setattr("ml.ensemble.shared_memory_fits", lambda n_bytes: False)

    expected = RiskEnsemble(TINY_CONFIG).fit(X, y, hours, FEATURE_NAMES).predict_proba(X[:2000])
    ensemble = RiskEnsemble(replace(TINY_CONFIG, num_threads=2)).fit(X, y, hours, FEATURE_NAMES)

    assert ensemble.predict_proba(X[:2000]).tobytes() == expected.tobytes()
    assert ensemble.worker_peak_rss_bytes is None
    assert "less than the" in caplog.text
    assert "train in this process" in caplog.text
