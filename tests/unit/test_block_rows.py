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
N_CELLS, N_HOURS, N_STATE, N_TARGET = 40, 300, 6, 3
STATE_NAMES = [f"s{index}" for index in range(N_STATE)]
TARGET_NAMES = [f"t{index}" for index in range(N_TARGET)]
CONFIG = EnsembleConfig(n_nets=5, epochs=2, net_bootstrap_rows=3000, lgbm_members=1, lgbm_n_estimators=20,
                        validation_weeks=1, num_threads=1, seed=11)


def two_block_problem(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of (cell state, hour input) pairs with NaN in one column of each block; returns X, y, hours, blocks."""
    rng = np.random.default_rng(seed)
    state = rng.standard_normal((N_CELLS, N_STATE)).astype(np.float32)
    target = rng.standard_normal((N_HOURS, N_TARGET)).astype(np.float32)
    state[rng.random(N_CELLS) < 0.3, 1] = np.nan
    target[rng.random(N_HOURS) < 0.3, 2] = np.nan

    row_index = np.tile(np.arange(N_CELLS), N_HOURS)
    target_index = np.repeat(np.arange(N_HOURS), N_CELLS)
    X = np.concatenate([state[row_index], target[target_index]], axis=1)
    logit = -3.0 + 1.2 * np.nan_to_num(X[:, 0]) - 0.8 * np.nan_to_num(X[:, N_STATE])
    y = (rng.random(X.shape[0]) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    hours = 400_000 + target_index.astype(np.int64)
    return X, y, hours, np.stack([row_index, target_index])


@pytest.fixture(scope="module")
def blocks_and_ensembles() -> tuple[BlockRows, dict[str, RiskEnsemble]]:
    X, y, hours, (row_index, target_index) = two_block_problem(3)
    names = STATE_NAMES + TARGET_NAMES
    ensembles = {
        "one hidden layer": RiskEnsemble(CONFIG).fit(X, y, hours, names),
        "two hidden layers": RiskEnsemble(replace(CONFIG, hidden_sizes=(8, 4))).fit(X, y, hours, names),
    }
    rows = BlockRows(state=X[:N_CELLS, :N_STATE], row_index=row_index, target=X[::N_CELLS, N_STATE:],
                     target_index=target_index)
    return rows, ensembles


def test_dense_matrix_rebuilds_the_rows(blocks_and_ensembles: tuple[BlockRows, dict]) -> None:
    rows, _ = blocks_and_ensembles
    X, _, _, _ = two_block_problem(3)

    np.testing.assert_array_equal(rows.dense(), X)
    assert rows.shape == X.shape


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


def test_block_nets_equal_each_net_averaged(blocks_and_ensembles: tuple[BlockRows, dict]) -> None:
    rows, ensembles = blocks_and_ensembles
    ensemble = ensembles["one hidden layer"]
    dense = rows.dense()

    per_net = np.mean([net.predict_proba(dense) for net in ensemble.nets], axis=0)
    stacked = ensemble.stacked_nets().mean_probability(rows, 1)

    np.testing.assert_allclose(stacked, per_net, rtol=2e-5, atol=1e-9)


def test_nets_with_other_scalings_fall_back_to_dense(blocks_and_ensembles: tuple[BlockRows, dict]) -> None:
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


def test_wrong_width_and_infinite_values_are_refused(blocks_and_ensembles: tuple[BlockRows, dict]) -> None:
    rows, ensembles = blocks_and_ensembles
    ensemble = ensembles["one hidden layer"]
    narrow = BlockRows(rows.state[:, :-1], rows.row_index, rows.target, rows.target_index)
    infinite_target = rows.target.copy()
    infinite_target[4, 0] = np.inf

    with pytest.raises(ValueError, match="has 8 columns but the ensemble was trained on 9"):
        ensemble.predict_proba(narrow)
    with pytest.raises(ValueError, match=r"columns \['t0'\]"):
        ensemble.predict_proba(BlockRows(rows.state, rows.row_index, infinite_target, rows.target_index))


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
