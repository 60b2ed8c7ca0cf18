"""Scoring matrices kept in two blocks, and the bagged nets evaluated on them without the full matrix.

A 72-hour forecast has one row per (issue hour, cell, horizon). Its inputs come from two smaller
tables (``ml.model_data``). The first is the state of the cell at the issue hour (lagged counts,
weather, neighbours, 311 requests). The second is the inputs of the target hour (its calendar, its
weather as known at the issue hour, the horizon), which are the same for every cell. ``BlockRows``
keeps the two tables and the issue hour of each state row. For 801 cells and 72 horizons the state
table has 801 rows and the target table 72, against 57,672 rows of the full matrix.

The first layer of a feed-forward net is affine, and the standardization and missing indicators
of ``ml.models.FeatureScaling`` act column by column. So the first layer's pre-activation of a row
is the sum of a state term and a target term: ``W x + b = W_s x_s + (W_t x_t + b)``. Here
``W_s`` and ``W_t`` are the columns of ``W`` that read the state and the target inputs, and each
term is computed once per block row. One matrix product of the stacked nets gives every net's
terms. The ReLU and the later layers then run per net on the (cells, horizons, hidden) sums, which
stay small enough for the CPU cache. The full matrix's first layer, by contrast, streams 57,672
rows through memory for every net.

The results equal ``RiskEnsemble.nets_probability`` on the full matrix up to float32 rounding (the
sums are taken in another order); ``tests/unit/test_block_rows.py`` compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ml.models import FeatureScaling, NetMember, torch_threads


STATE_ROWS_PER_STEP = 1_024
"""State rows per step: 1,024 cells x 72 horizons x 16 hidden units is 4.7 MB of float32 per net."""


@dataclass(frozen=True)
class BlockRows:
    """A scoring matrix kept as a grid: each state row is paired with every horizon of its issue hour.

    Row ``i * horizons + k`` of the full matrix is ``concat(state[i], target[issue_index[i] *
    horizons + k])``, which is the row order of ``ml.model_data.build_scoring_frame``.
    """

    state: np.ndarray
    """(R, S): the state of each cut-off row (one cell at one issue hour)."""
    issue_index: np.ndarray
    """(R,): the issue hour of each state row, as a position in the target block."""
    target: np.ndarray
    """(I * horizons, T): the target-hour inputs of each issue hour's horizons 1..horizons."""
    horizons: int

    def __post_init__(self) -> None:
        if self.state.ndim != 2 or self.target.ndim != 2:
            raise ValueError("the state and target blocks must be 2-D arrays")
        if self.issue_index.shape != (self.state.shape[0],):
            raise ValueError(f"issue_index has {self.issue_index.shape[0]} entries for {self.state.shape[0]} "
                             f"state rows; give one issue hour per state row")
        if self.horizons < 1 or self.target.shape[0] % self.horizons:
            raise ValueError(f"the target block has {self.target.shape[0]} rows, not a whole number of issue "
                             f"hours of {self.horizons} horizons")
        if self.issue_index.size and (self.issue_index.min() < 0
                                      or self.issue_index.max() >= self.target.shape[0] // self.horizons):
            raise ValueError(f"issue_index has values from {self.issue_index.min()} to {self.issue_index.max()}, "
                             f"outside the target block's {self.target.shape[0] // self.horizons} issue hours")

    @property
    def shape(self) -> tuple[int, int]:
        return self.state.shape[0] * self.horizons, self.state.shape[1] + self.target.shape[1]

    @property
    def n_state_columns(self) -> int:
        return self.state.shape[1]

    @property
    def row_index(self) -> np.ndarray:
        """The state row of each row of the full matrix."""
        return np.repeat(np.arange(self.state.shape[0]), self.horizons)

    @property
    def target_index(self) -> np.ndarray:
        """The target row of each row of the full matrix."""
        return (np.repeat(self.issue_index, self.horizons) * self.horizons
                + np.tile(np.arange(self.horizons), self.state.shape[0]))

    def issue_runs(self) -> list[tuple[int, int, int]]:
        """Return ``(issue, first, stop)`` for each run of consecutive state rows of one issue hour."""
        if not self.issue_index.size:
            return []
        starts = np.flatnonzero(np.diff(self.issue_index, prepend=self.issue_index[0] - 1))
        stops = np.append(starts[1:], self.issue_index.size)
        return [(int(self.issue_index[first]), int(first), int(stop)) for first, stop in zip(starts, stops)]

    def dense(self) -> np.ndarray:
        """Return the full float32 matrix, one row per scored row."""
        return np.concatenate([self.state[self.row_index], self.target[self.target_index]],
                              axis=1).astype(np.float32, copy=False)


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
    """Per later layer, (K, H_out)."""
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
            later_biases = [torch.stack([found[depth].bias for found in layers]).detach().clone()
                            for depth in range(1, len(layers[0]))]
        betas = np.array([net.require_fitted()[1].beta for net in nets], dtype=np.float64)
        return cls(scaling, first_weight, first_bias, later_weights, later_biases, betas)

    def mean_probability(self, rows: BlockRows, num_threads: int) -> np.ndarray:
        """Return the mean over the nets of each row's prior-corrected probability, as float64.

        For each run of state rows of one issue hour and each net, the first layer's state and target
        terms are added by broadcasting into a (rows, horizons, hidden) array. That array is small
        enough to stay in the CPU cache while the later layers run on it.
        """
        state_inputs, state_positions = self.scaling.transform_block(rows.state, 0)
        target_inputs, target_positions = self.scaling.transform_block(rows.target, rows.n_state_columns)
        n_states, horizons, n_nets = rows.state.shape[0], rows.horizons, self.n_nets

        total = np.empty((n_states, horizons), dtype=np.float64)
        with torch_threads(num_threads), torch.inference_mode():
            state_term = (torch.from_numpy(state_inputs) @ self.first_weight[:, state_positions].T)
            state_term = state_term.view(n_states, n_nets, -1).permute(1, 0, 2).contiguous()
            target_term = torch.addmm(self.first_bias, torch.from_numpy(target_inputs),
                                      self.first_weight[:, target_positions].T)
            target_term = target_term.view(-1, horizons, n_nets, target_term.shape[1] // n_nets)
            target_term = target_term.permute(2, 0, 1, 3).contiguous()
            for issue, first, stop in rows.issue_runs():
                for piece in range(first, stop, STATE_ROWS_PER_STEP):
                    end = min(piece + STATE_ROWS_PER_STEP, stop)
                    logits = torch.stack([
                        self.net_logits(net, state_term[net, piece:end], target_term[net, issue])
                        for net in range(n_nets)])
                    total[piece:end] = self.corrected_mean(logits)
        return total.reshape(-1)

    def net_logits(self, net: int, state_term: torch.Tensor, target_term: torch.Tensor) -> torch.Tensor:
        """Return one net's (state rows, horizons) logits from its first-layer terms."""
        hidden = torch.relu(state_term[:, None, :] + target_term[None, :, :])
        for depth, (weight, bias) in enumerate(zip(self.later_weights, self.later_biases, strict=True)):
            hidden = torch.matmul(hidden, weight[net]) + bias[net]
            if depth < len(self.later_weights) - 1:
                hidden = torch.relu(hidden)
        return hidden[..., 0]

    def corrected_mean(self, logits: torch.Tensor) -> np.ndarray:
        """Apply ``ml.sampling.prior_correct`` with each net's beta to (K, ...) logits, then average over the nets.

        With ``p = 1 / (1 + exp(-z))``, the correction ``beta p / (beta p + 1 - p)`` equals
        ``1 / (1 + exp(-z) / beta)``, which takes fewer passes over the array.
        """
        betas = torch.from_numpy(self.betas).reshape(-1, *([1] * (logits.dim() - 1)))
        corrected = torch.reciprocal(torch.exp(-logits.double()) / betas + 1.0)
        return corrected.mean(dim=0).numpy()
