"""Block scoring matrices: the block path gives the dense path's matrix and probabilities."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from ml.block_rows import BlockRows, StackedNets
from ml.ensemble import EnsembleConfig, RiskEnsemble
from ml.feature_registry import state_columns
from ml.features import calendar_features
from ml.model_data import build_scoring_blocks, model_inputs
from ml.models import FeatureScaling, NetMember
from tests.feature_inputs import features, violent_counts

UTC = timezone.utc
N_STATES, N_ISSUES, HORIZONS, N_STATE, N_TARGET = 1500, 3, 72, 6, 3
STATE_NAMES = [f"s{index}" for index in range(N_STATE)]
TARGET_NAMES = [f"t{index}" for index in range(N_TARGET)]
CONFIG = EnsembleConfig(n_nets=5, epochs=2, net_bootstrap_rows=3000, lgbm_members=1, lgbm_n_estimators=20,
                        validation_weeks=1, num_threads=1, seed=11)


def two_block_rows(seed: int) -> BlockRows:
    """1,500 state rows over 3 issue hours (not in order), 72 horizons, NaN in one column of each block."""
    rng = np.random.default_rng(seed)
    state = rng.standard_normal((N_STATES, N_STATE)).astype(np.float32)
    target = rng.standard_normal((N_ISSUES * HORIZONS, N_TARGET)).astype(np.float32)
    state[rng.random(N_STATES) < 0.3, 1] = np.nan
    target[rng.random(N_ISSUES * HORIZONS) < 0.3, 2] = np.nan
    issue_index = np.repeat([2, 0, 1, 0], [400, 500, 300, 300])
    return BlockRows(state=state, issue_index=issue_index, target=target, horizons=HORIZONS)


def labels_and_hours(rows: BlockRows, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rows.dense()
    logit = -3.0 + 1.2 * np.nan_to_num(X[:, 0]) - 0.8 * np.nan_to_num(X[:, N_STATE])
    y = (rng.random(X.shape[0]) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    hours = 400_000 + (rows.target_index % HORIZONS).astype(np.int64) * 10 + np.repeat(rows.issue_index, HORIZONS)
    return y, hours


@pytest.fixture(scope="module")
def blocks_and_ensembles() -> tuple[BlockRows, dict[str, RiskEnsemble]]:
    rows = two_block_rows(3)
    y, hours = labels_and_hours(rows, 4)
    order = np.argsort(hours, kind="stable")
    X = rows.dense()[order]
    names = STATE_NAMES + TARGET_NAMES
    ensembles = {
        "one hidden layer": RiskEnsemble(CONFIG).fit(X, y[order], hours[order], names),
        "two hidden layers": RiskEnsemble(replace(CONFIG, hidden_sizes=(8, 4))).fit(X, y[order], hours[order], names),
    }
    return rows, ensembles


def test_dense_matrix_rebuilds_the_rows(blocks_and_ensembles: tuple[BlockRows, dict]) -> None:
    rows, _ = blocks_and_ensembles
    dense = rows.dense()
    row = 450 * HORIZONS + 17

    assert dense.shape == rows.shape == (N_STATES * HORIZONS, N_STATE + N_TARGET)
    np.testing.assert_array_equal(dense[row, :N_STATE], rows.state[450])
    np.testing.assert_array_equal(dense[row, N_STATE:], rows.target[0 * HORIZONS + 17])
    assert rows.issue_runs() == [(2, 0, 400), (0, 400, 900), (1, 900, 1200), (0, 1200, 1500)]


@pytest.mark.parametrize("architecture", ["one hidden layer", "two hidden layers"])
def test_block_probabilities_equal_dense(blocks_and_ensembles: tuple[BlockRows, dict], architecture: str) -> None:
    rows, ensembles = blocks_and_ensembles
    ensemble = ensembles[architecture]

    dense = ensemble.predict_proba(rows.dense())
    blocked = ensemble.predict_proba(rows)

    assert ensemble.stacked_nets() is not None
    assert ensemble.nets[0].scaling.missing_columns.tolist() == [1, N_STATE + 2]
    np.testing.assert_allclose(blocked, dense, rtol=2e-5, atol=1e-9)
    assert np.corrcoef(blocked, dense)[0, 1] > 0.999999
    assert dense.std() > 0.01


def test_stacked_nets_equal_net_average(blocks_and_ensembles: tuple[BlockRows, dict]) -> None:
    rows, ensembles = blocks_and_ensembles
    ensemble = ensembles["one hidden layer"]
    dense = rows.dense()

    per_net = np.mean([net.predict_proba(dense) for net in ensemble.nets], axis=0)
    stacked = ensemble.stacked_nets().mean_probability(rows, 1)

    np.testing.assert_allclose(stacked, per_net, rtol=2e-5, atol=1e-9)


def test_other_scalings_use_dense(blocks_and_ensembles: tuple[BlockRows, dict]) -> None:
    rows, ensembles = blocks_and_ensembles
    ensemble = RiskEnsemble(CONFIG)
    source = ensembles["one hidden layer"]
    ensemble.nets, ensemble.lightgbm_members = list(source.nets), source.lightgbm_members
    ensemble.weights, ensemble.feature_names = source.weights, source.feature_names
    shifted = ensemble.nets[0].scaling
    ensemble.nets[0] = replace_scaling(ensemble.nets[0], FeatureScaling(shifted.mean + 0.5, shifted.std,
                                                                        shifted.missing_columns))

    assert StackedNets.of(ensemble.nets) is None
    np.testing.assert_array_equal(ensemble.predict_proba(rows), ensemble.predict_proba(rows.dense()))
    assert not np.allclose(ensemble.predict_proba(rows), source.predict_proba(rows), rtol=1e-4)


def replace_scaling(net: NetMember, scaling: FeatureScaling) -> NetMember:
    changed = copy.copy(net)
    changed.scaling = scaling
    return changed


def test_wrong_width_and_infinity_rejected(blocks_and_ensembles: tuple[BlockRows, dict]) -> None:
    rows, ensembles = blocks_and_ensembles
    ensemble = ensembles["one hidden layer"]
    narrow = BlockRows(rows.state[:, :-1], rows.issue_index, rows.target, rows.horizons)
    infinite_target = rows.target.copy()
    infinite_target[4, 0] = np.inf

    with pytest.raises(ValueError, match="has 8 columns but the ensemble was trained on 9"):
        ensemble.predict_proba(narrow)
    with pytest.raises(ValueError, match=r"columns \['t0'\]"):
        ensemble.predict_proba(BlockRows(rows.state, rows.issue_index, infinite_target, rows.horizons))


def test_scoring_blocks_hold_the_expanded_rows() -> None:
    """Every (cut-off row, horizon) row has its cut-off state, its target hour's calendar and its horizon."""
    start = datetime(2024, 3, 8, tzinfo=UTC)
    panel = features(["A", "B", "C"], violent_counts([("A", start + timedelta(hours=5))]), start,
                     start + timedelta(days=4), "America/Chicago")
    cutoff_rows = panel.filter(pl.col("hour").is_in([start + timedelta(hours=30), start + timedelta(hours=55)]))
    keys, rows = build_scoring_blocks(cutoff_rows, 72, "America/Chicago", "US", "IL")
    dense = rows.dense()
    names = model_inputs(state_columns(cutoff_rows.columns))

    assert dense.shape == (2 * 3 * 72, len(names))
    assert rows.target.shape[0] == 2 * 72
    calendar = calendar_features(keys["hour"].unique().sort(), "America/Chicago", "US", "IL")
    checked = keys.with_row_index("row").join(calendar, on="hour").sort("row")
    for row in (0, 71, 72 * 4 + 17, dense.shape[0] - 1):
        key = checked.row(row, named=True)
        cutoff = cutoff_rows.filter((pl.col("hour") == key["issued_at"]) & (pl.col("cell_id") == key["cell_id"]))
        for name in state_columns(cutoff_rows.columns)[:5]:
            assert dense[row, names.index(name)] == np.float32(cutoff[name][0])
        assert dense[row, names.index("target_local_hour")] == key["local_hour"]
        assert dense[row, names.index("target_day_of_week")] == key["day_of_week"]
        assert dense[row, names.index("horizon_hours")] == key["horizon_hours"]
        assert key["hour"] == key["issued_at"] + timedelta(hours=key["horizon_hours"] - 1)


def whole_matrix_scaling(X_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scaling's formula over all columns at once, as it was before the column blocks."""
    observed = ~np.isnan(X_rows)
    counts = observed.sum(axis=0)
    safe_counts = np.maximum(counts, 1)
    filled = np.where(observed, X_rows, 0.0).astype(np.float64)
    mean = filled.sum(axis=0) / safe_counts
    std = np.sqrt(np.where(observed, (filled - mean) ** 2, 0.0).sum(axis=0) / safe_counts)
    std[(counts == 0) | (std < 1e-12)] = 1.0
    return mean.astype(np.float32), std.astype(np.float32), np.flatnonzero(counts < X_rows.shape[0])


@pytest.mark.parametrize("n_rows, n_columns", [(20_000, 114), (9, 5)])
def test_block_scaling_equals_whole_matrix(n_rows: int, n_columns: int) -> None:
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((n_rows, n_columns)) * rng.uniform(0.1, 1000, n_columns)
         + rng.uniform(-1e4, 1e4, n_columns)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 2] = np.nan
    X[:, 4] = 7.0

    scaling = FeatureScaling.fit(X)
    mean, std, missing = whole_matrix_scaling(X)

    assert np.array_equal(scaling.mean, mean)
    assert np.array_equal(scaling.std, std)
    assert np.array_equal(scaling.missing_columns, missing)
    assert scaling.std[2] == scaling.std[4] == 1.0
