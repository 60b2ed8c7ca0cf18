"""Scoring matrices kept in two blocks, and the bagged nets evaluated on them without the full matrix.

A 72-hour forecast has one row per (issue hour, cell, horizon). Its inputs come from two smaller
tables (``ml.model_data``). The first is the state of the cell at the issue hour (lagged counts,
weather, neighbours, 311 requests). The second is the inputs of the target hour (its calendar, its
weather as known at the issue hour, the horizon), which are the same for every cell. ``BlockRows`` keeps the two tables and
the index of each row's entry in them. For 801 cells and 72 horizons the state table has 801 rows
and the target table 72, against 57,672 rows of the full matrix.

The first layer of a feed-forward net is affine, and the standardization and missing indicators
of ``ml.models.FeatureScaling`` act column by column. So the first layer's pre-activation of a row
is the sum of a state term and a target term, each computed once per table row:
``W x + b = W_s x_s + (W_t x_t + b)``. Only the ReLU and the later, much narrower layers run per
row. This is the factorization of a linear map over a direct sum, as in Goodfellow, Bengio and
Courville, *Deep Learning* (2016), section 6.1; the bagged nets are stacked so that one matrix
product serves all of them, and the later layers run as one batched product per layer.

The results equal ``RiskEnsemble.nets_probability`` on the full matrix up to float32 rounding (the
sums are taken in another order); ``tests/unit/test_block_rows.py`` compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ml.models import FeatureScaling, NetMember, torch_threads

ROW_CHUNK = 8_192
"""Rows per step of the per-row part; 100 nets of 16 hidden units take about 50 MB per step."""


@dataclass(frozen=True)
class BlockRows:
    """Rows ``concat(state[row_index[i]], target[target_index[i]])`` of a scoring matrix, unexpanded."""

    state: np.ndarray
    row_index: np.ndarray
    target: np.ndarray
    target_index: np.ndarray

    def __post_init__(self) -> None:
        if self.row_index.shape != self.target_index.shape:
            raise ValueError(f"row_index has {self.row_index.shape[0]} rows and target_index "
                             f"{self.target_index.shape[0]}; give one state and one target row per row")
        if self.state.ndim != 2 or self.target.ndim != 2:
            raise ValueError("the state and target blocks must be 2-D arrays")

    @property
    def shape(self) -> tuple[int, int]:
        return self.row_index.shape[0], self.state.shape[1] + self.target.shape[1]

    @property
    def n_state_columns(self) -> int:
        return self.state.shape[1]

    def dense(self) -> np.ndarray:
        """Return the full float32 matrix, one row per scored row."""
        return np.concatenate([self.state[self.row_index], self.target[self.target_index]],
                              axis=1).astype(np.float32, copy=False)


def block_inputs(scaling: FeatureScaling, block: np.ndarray, first_column: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale the columns ``first_column, ...`` held by ``block`` as ``scaling.transform`` does.

    Returns the scaled columns followed by their missing indicators, and the positions of those
    inputs in the net's input layer (scaled columns first, then every indicator in order).
    """
    columns = np.arange(first_column, first_column + block.shape[1])
    values = np.asarray(block, dtype=np.float32)
    scaled = (values - scaling.mean[columns]) / scaling.std[columns]
    scaled[np.isnan(scaled)] = 0.0

    indicator_positions = np.flatnonzero(np.isin(scaling.missing_columns, columns))
    indicator_columns = scaling.missing_columns[indicator_positions] - first_column
    indicators = np.isnan(values[:, indicator_columns]).astype(np.float32)

    n_columns = scaling.mean.shape[0]
    positions = np.concatenate([columns, n_columns + indicator_positions])
    return np.concatenate([scaled, indicators], axis=1), positions


def linear_layers(net: nn.Module) -> list[nn.Linear] | None:
    """Return the Linear layers of a net of Linear layers with ReLU between them (and Dropout), else None."""
    modules = list(net.layers) if hasattr(net, "layers") else []
    linears = [module for module in modules if isinstance(module, nn.Linear)]
    expected: list[type] = []
    for index in range(len(linears)):
        expected.append(nn.Linear)
        if index < len(linears) - 1:
            expected.append(nn.ReLU)
    kinds = [type(module) for module in modules if not isinstance(module, nn.Dropout)]
    if not linears or kinds != expected or linears[-1].out_features != 1:
        return None
    return linears


@dataclass(frozen=True)
class StackedNets:
    """The weights of K nets of one architecture and one scaling, stacked for batched evaluation."""

    scaling: FeatureScaling
    first_weight: torch.Tensor
    """(K * H1, n_inputs): the nets' first layers one below the other."""
    first_bias: torch.Tensor
    later_weights: list[torch.Tensor]
    """Per later layer, (K, H_in, H_out)."""
    later_biases: list[torch.Tensor]
    """Per later layer, (K, 1, H_out)."""
    betas: np.ndarray
    """(K,) negative sampling rates of the nets' downsamples, for the prior correction."""

    @property
    def n_nets(self) -> int:
        return self.betas.shape[0]

    @classmethod
    def of(cls, nets: list[NetMember]) -> StackedNets | None:
        """Stack ``nets``, or None when they do not share one scaling and one layer shape."""
        if not nets:
            return None
        scaling = nets[0].scaling
        layers = [linear_layers(net.require_fitted()[0]) for net in nets]
        if scaling is None or any(net.scaling is None or not net.scaling.same_as(scaling) for net in nets):
            return None
        if any(found is None for found in layers):
            return None
        shapes = [[tuple(layer.weight.shape) for layer in found] for found in layers]
        if any(shape != shapes[0] for shape in shapes):
            return None

        with torch.no_grad():
            first_weight = torch.cat([found[0].weight for found in layers]).detach().clone()
            first_bias = torch.cat([found[0].bias for found in layers]).detach().clone()
            later_weights = [torch.stack([found[depth].weight.T for found in layers]).detach().clone()
                             for depth in range(1, len(layers[0]))]
            later_biases = [torch.stack([found[depth].bias[None, :] for found in layers]).detach().clone()
                            for depth in range(1, len(layers[0]))]
        betas = np.array([net.require_fitted()[1].beta for net in nets], dtype=np.float64)
        return cls(scaling, first_weight, first_bias, later_weights, later_biases, betas)

    def mean_probability(self, rows: BlockRows, num_threads: int) -> np.ndarray:
        """Mean over the nets of each row's prior-corrected probability, as float64."""
        state_inputs, state_positions = block_inputs(self.scaling, rows.state, 0)
        target_inputs, target_positions = block_inputs(self.scaling, rows.target, rows.n_state_columns)
        row_index = torch.from_numpy(np.asarray(rows.row_index, dtype=np.int64))
        target_index = torch.from_numpy(np.asarray(rows.target_index, dtype=np.int64))

        total = np.empty(rows.shape[0], dtype=np.float64)
        with torch_threads(num_threads), torch.inference_mode():
            state_term = torch.from_numpy(state_inputs) @ self.first_weight[:, state_positions].T
            target_term = torch.addmm(self.first_bias, torch.from_numpy(target_inputs),
                                      self.first_weight[:, target_positions].T)
            for start in range(0, rows.shape[0], ROW_CHUNK):
                stop = min(start + ROW_CHUNK, rows.shape[0])
                logits = self.later_layers(state_term[row_index[start:stop]] + target_term[target_index[start:stop]])
                total[start:stop] = self.corrected_mean(logits.numpy())
        return total

    def later_layers(self, pre_activation: torch.Tensor) -> torch.Tensor:
        """ReLU, then every later layer per net; returns the (rows, K) logits."""
        n_rows = pre_activation.shape[0]
        hidden = torch.relu(pre_activation).view(n_rows, self.n_nets, -1).transpose(0, 1)
        for depth, (weight, bias) in enumerate(zip(self.later_weights, self.later_biases, strict=True)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if depth < len(self.later_weights) - 1:
                hidden = torch.relu(hidden)
        return hidden[:, :, 0].T

    def corrected_mean(self, logits: np.ndarray) -> np.ndarray:
        """Apply ``ml.sampling.prior_correct`` with each net's beta, then average over the nets."""
        p_sampled = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        corrected = self.betas * p_sampled / (self.betas * p_sampled + (1.0 - p_sampled))
        return corrected.mean(axis=1)
