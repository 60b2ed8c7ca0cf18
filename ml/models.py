"""Ensemble members: a feed-forward net and a LightGBM classifier, each trained on its own downsample.

Each member keeps every positive cell-hour, draws ``negative_ratio`` negatives per
positive (see ``ml.sampling.downsample_balanced``), and returns probabilities that
are prior-corrected back to the population base rate (``ml.sampling.prior_correct``).
A net then trains on a stratified bootstrap of its downsample and stops early when
the loss on the downsample's out-of-bag rows stops falling. Training many small nets
on different downsamples and bootstraps and averaging them is bagging: L. Breiman,
"Bagging predictors", Machine Learning 24(2), 1996, pp. 123-140,
DOI 10.1007/BF00058655. Weight decay is the decoupled form of AdamW: I. Loshchilov
and F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019. The
gradient-boosted member uses LightGBM: G. Ke et al., "LightGBM: A Highly Efficient
Gradient Boosting Decision Tree", NeurIPS 2017.

Members save to a folder as JSON plus numpy ``.npz`` arrays (nets) or LightGBM's
model text file, so loading never unpickles anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import lightgbm
import numpy as np
import torch
from torch import nn

from ml.sampling import Bootstrap, SampleIndex, bootstrap_downsample, downsample_balanced, prior_correct

logger = logging.getLogger(__name__)

MEMBER_FORMAT_VERSION = 2
PREDICT_CHUNK_ROWS = 65_536
MIN_STD = 1e-12
SCALING_SAMPLE_ROWS = 200_000
SCALING_COLUMN_BLOCK = 16
EARLY_STOPPING_MIN_ROWS = 1_000
# An epoch counts as an improvement when the out-of-bag loss falls by more than this.
EARLY_STOPPING_MIN_DELTA = 1e-5

# Nets train with one torch thread, and ``num_threads`` applies to prediction only.
# Mini-batches of 512 rows through 32-unit layers gain nothing from intra-op
# parallelism. On a 2-vCPU KVM machine (AMD EPYC, torch 2.13 CPU with OpenMP),
# two threads made one 20k-row, 8-epoch training take 2.2-11.6 s instead of 0.55 s.
TRAIN_THREADS = 1


@dataclass(frozen=True)
class SampleSummary:
    """Counts of the downsample (and bootstrap, for nets) that a member was trained on.

    ``beta`` is the negative sampling rate relative to the positive one; it is the value
    used for the member's prior correction. ``bag_rows`` is 0 for a member without a bootstrap.
    """

    n_pos: int
    n_neg_total: int
    n_neg_sampled: int
    beta: float
    bag_rows: int = 0
    out_of_bag_rows: int = 0

    @classmethod
    def from_index(cls, sample: SampleIndex) -> SampleSummary:
        return cls(sample.n_pos, sample.n_neg_total, sample.n_neg_sampled, sample.beta)

    @classmethod
    def from_bootstrap(cls, sample: SampleIndex, bag: Bootstrap, n_out_of_bag: int) -> SampleSummary:
        return cls(sample.n_pos, sample.n_neg_total, sample.n_neg_sampled, bag.beta,
                   int(bag.indices.shape[0]), n_out_of_bag)


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(num_threads)`` and restore the previous count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_matrix_shape(X: np.ndarray, n_features: int | None = None) -> None:
    """Raise ``ValueError`` unless ``X`` is a 2-D float array, of width ``n_features`` when given."""
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        shape = getattr(X, "shape", None)
        raise ValueError(f"X must be a 2-D numpy array (rows x features), got shape {shape}")

    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} columns but the model expects {n_features} features")

    if not np.issubdtype(X.dtype, np.floating):
        raise ValueError(
            f"X must have a float dtype so that missing values can be NaN, got {X.dtype}; "
            "convert it with X.astype(np.float32)"
        )


def check_no_infinity(X: np.ndarray) -> None:
    """Raise ``ValueError`` if the 2-D array ``X`` contains +inf or -inf. NaN is allowed and means missing."""
    infinite_per_column = np.isinf(X).sum(axis=0)
    if infinite_per_column.any():
        columns = np.flatnonzero(infinite_per_column).tolist()
        raise ValueError(
            f"X contains {int(infinite_per_column.sum())} +inf/-inf values in column positions {columns}; "
            "replace them with NaN (treated as missing) or finite values"
        )


def check_feature_matrix(X: np.ndarray, n_features: int | None = None) -> None:
    """Raise ``ValueError`` unless ``X`` is a 2-D float array of the expected width without ±inf."""
    check_matrix_shape(X, n_features)
    check_no_infinity(X)


def draw_training_sample(
    X: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray | None,
    negative_ratio: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, SampleSummary]:
    """Draw a balanced downsample among ``rows`` (all rows when None) and copy only those rows of X.

    Only the sampled rows are checked for ±inf, which keeps the check cheap when X is large.
    """
    check_matrix_shape(X)
    if np.asarray(y).shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {np.asarray(y).shape[0]}; pass one label per row")

    labels = np.asarray(y) if rows is None else np.asarray(y)[rows]
    sample = downsample_balanced(labels, np.random.default_rng(seed), negative_ratio)

    positions = sample.indices if rows is None else rows[sample.indices]
    X_sample = np.asarray(X[positions], dtype=np.float32)
    y_sample = labels[sample.indices].astype(np.float32)
    check_no_infinity(X_sample)

    return X_sample, y_sample, SampleSummary.from_index(sample)


def column_moments(X_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return each column's count of non-NaN values, and their mean and population standard deviation."""
    observed = ~np.isnan(X_rows)
    counts = observed.sum(axis=0)
    safe_counts = np.maximum(counts, 1)

    filled = np.where(observed, X_rows, 0.0).astype(np.float64)
    mean = filled.sum(axis=0) / safe_counts
    squared = np.where(observed, (filled - mean) ** 2, 0.0)
    return counts, mean, np.sqrt(squared.sum(axis=0) / safe_counts)


@dataclass(frozen=True, eq=False)
class FeatureScaling:
    """Standardization of the net inputs: per-column mean and standard deviation, and the missing indicators.

    After scaling, NaN becomes 0 (the mean), and every column in ``missing_columns``
    gets an extra 0/1 input that is 1 where the value was NaN. A NaN in a column
    outside ``missing_columns`` is still set to 0, but without an indicator.
    """

    mean: np.ndarray
    std: np.ndarray
    missing_columns: np.ndarray

    @classmethod
    def fit(cls, X_rows: np.ndarray, missing_columns: np.ndarray | None = None) -> FeatureScaling:
        """Compute the scaling from the rows given; ``missing_columns`` defaults to the columns with any NaN there.

        The moments are computed ``SCALING_COLUMN_BLOCK`` columns at a time: the float64 temporaries
        of all columns at once took four times the sample's size (0.8 GB for 200,000 rows of 114
        columns). Each column's sums add the same values in the same order either way.
        """
        n_columns = X_rows.shape[1]
        counts = np.empty(n_columns, dtype=np.intp)
        mean = np.empty(n_columns, dtype=np.float64)
        std = np.empty(n_columns, dtype=np.float64)
        for first in range(0, n_columns, SCALING_COLUMN_BLOCK):
            columns = slice(first, first + SCALING_COLUMN_BLOCK)
            counts[columns], mean[columns], std[columns] = column_moments(np.ascontiguousarray(X_rows[:, columns]))

        # An all-NaN or constant column would divide by zero, so it is scaled by 1.
        std[(counts == 0) | (std < MIN_STD)] = 1.0

        if missing_columns is None:
            missing_columns = np.flatnonzero(counts < X_rows.shape[0])
        return cls(mean.astype(np.float32), std.astype(np.float32), np.asarray(missing_columns, dtype=np.int64))

    @property
    def n_inputs(self) -> int:
        return self.mean.shape[0] + self.missing_columns.shape[0]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardize, set NaN to 0 and append the missing indicators, returning a float32 array."""
        return self.transform_block(X, 0)[0]

    def transform_block(self, block: np.ndarray, first_column: int) -> tuple[np.ndarray, np.ndarray]:
        """Transform the columns ``first_column, first_column + 1, ...`` that ``block`` contains, as ``transform`` does.

        Returns the scaled columns followed by the missing indicators of those columns, and the
        positions of these inputs in the full transformed row (scaled columns, then indicators).
        """
        columns = np.arange(first_column, first_column + block.shape[1])
        values = np.asarray(block, dtype=np.float32)
        scaled = (values - self.mean[columns]) / self.std[columns]
        scaled[np.isnan(scaled)] = 0.0

        indicator_positions = np.flatnonzero(np.isin(self.missing_columns, columns))
        indicator_columns = self.missing_columns[indicator_positions] - first_column
        indicators = np.isnan(values[:, indicator_columns]).astype(np.float32)

        positions = np.concatenate([columns, self.mean.shape[0] + indicator_positions])
        return np.concatenate([scaled, indicators], axis=1), positions

    def same_as(self, other: FeatureScaling) -> bool:
        return (
            np.array_equal(self.mean, other.mean)
            and np.array_equal(self.std, other.std)
            and np.array_equal(self.missing_columns, other.missing_columns)
        )


def fit_scaling_on_rows(X: np.ndarray, rows: np.ndarray | None, seed: int) -> FeatureScaling:
    """Fit one ``FeatureScaling`` for many nets: statistics from a seeded sample of ``rows``, indicators from all of them.

    Mean and standard deviation come from at most ``SCALING_SAMPLE_ROWS`` rows, which is
    plenty for a standardization. The missing-indicator columns are those with any NaN
    among all ``rows`` (all rows of X when None), scanned in chunks to keep memory flat.
    """
    positions = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
    rng = np.random.default_rng(seed)
    if positions.shape[0] > SCALING_SAMPLE_ROWS:
        sampled = np.sort(rng.choice(positions, size=SCALING_SAMPLE_ROWS, replace=False))
    else:
        sampled = positions

    any_missing = np.zeros(X.shape[1], dtype=bool)
    for start in range(0, positions.shape[0], PREDICT_CHUNK_ROWS):
        chunk = positions[start : start + PREDICT_CHUNK_ROWS]
        any_missing |= np.isnan(X[chunk]).any(axis=0)

    return FeatureScaling.fit(np.asarray(X[sampled], dtype=np.float32), np.flatnonzero(any_missing))


class FeedForwardNet(nn.Module):
    """Multilayer perceptron: input, hidden layers with ReLU and dropout, then one logit."""

    def __init__(self, n_inputs: int, hidden_sizes: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for hidden in hidden_sizes:
            layers.extend([nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)])
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs).squeeze(-1)


class NetMember:
    """One feed-forward net trained on a bootstrap of its own downsample, with early stopping.

    ``fit`` draws the downsample (every positive, ``negative_ratio`` negatives per
    positive), then a stratified bootstrap of ``bootstrap_rows`` rows from it (the
    downsample's size when None). Up to a quarter of the bag's size in out-of-bag rows,
    at least ``EARLY_STOPPING_MIN_ROWS`` when there are that many, measures the loss
    after each epoch. Training stops after ``patience`` epochs without improvement and
    keeps the weights of the best epoch.

    Training runs on one torch thread (see ``TRAIN_THREADS``), and ``num_threads``
    sets the torch thread count for ``predict_proba``. A fixed seed gives the same
    weights on every CPU run of the same torch build.
    """

    kind = "net"

    def __init__(
        self,
        hidden_sizes: tuple[int, ...] = (32, 16),
        dropout: float = 0.1,
        weight_decay: float = 1e-4,
        epochs: int = 8,
        patience: int = 2,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        negative_ratio: float = 1.0,
        bootstrap_rows: int | None = None,
        seed: int = 0,
        num_threads: int = 2,
    ) -> None:
        self.hidden_sizes = tuple(int(size) for size in hidden_sizes)
        self.dropout = float(dropout)
        self.weight_decay = float(weight_decay)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.negative_ratio = float(negative_ratio)
        self.bootstrap_rows = None if bootstrap_rows is None else int(bootstrap_rows)
        self.seed = int(seed)
        self.num_threads = int(num_threads)

        self.net: FeedForwardNet | None = None
        self.sample: SampleSummary | None = None
        self.scaling: FeatureScaling | None = None
        self.n_features = 0
        self.best_loss = float("nan")
        self.best_epoch = 0
        self.epochs_run = 0

    def fit(
        self, X: np.ndarray, y: np.ndarray, rows: np.ndarray | None = None, scaling: FeatureScaling | None = None
    ) -> NetMember:
        """Train on a bootstrap of a downsample of ``rows`` of X and y (all rows when None).

        ``scaling`` shares one standardization among many nets; without it the net fits
        its own on its bag.
        """
        check_matrix_shape(X)
        labels = np.asarray(y)
        if labels.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {labels.shape[0]}; pass one label per row")

        positions = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
        rng = np.random.default_rng(self.seed)
        sample = downsample_balanced(labels[positions], rng, self.negative_ratio)
        bag = bootstrap_downsample(labels[positions], sample, rng, self.bootstrap_rows)
        n_stop_rows = min(bag.out_of_bag.shape[0], max(bag.indices.shape[0] // 4, EARLY_STOPPING_MIN_ROWS))
        stop_rows = np.sort(rng.choice(bag.out_of_bag, size=n_stop_rows, replace=False))

        X_bag = np.asarray(X[positions[bag.indices]], dtype=np.float32)
        X_stop = np.asarray(X[positions[stop_rows]], dtype=np.float32)
        check_no_infinity(X_bag)
        check_no_infinity(X_stop)

        self.n_features = X.shape[1]
        self.sample = SampleSummary.from_bootstrap(sample, bag, n_stop_rows)
        self.scaling = scaling if scaling is not None else FeatureScaling.fit(X_bag)
        train = (self.scaling.transform(X_bag), labels[positions[bag.indices]].astype(np.float32))
        stop = (self.scaling.transform(X_stop), labels[positions[stop_rows]].astype(np.float32))

        with torch_threads(TRAIN_THREADS):
            self.net = self.train_net(train, stop)

        logger.info(
            "net seed=%d trained on %d bag rows (%d positives in the downsample, beta=%.6g), "
            "best out-of-bag loss %.4f at epoch %d of %d run",
            self.seed, train[0].shape[0], self.sample.n_pos, self.sample.beta,
            self.best_loss, self.best_epoch, self.epochs_run,
        )
        return self

    def train_net(self, train: tuple[np.ndarray, np.ndarray], stop: tuple[np.ndarray, np.ndarray]) -> FeedForwardNet:
        """Train a fresh net with AdamW on shuffled mini-batches and return the weights of its best epoch.

        Weight initialization and dropout use torch's global generator, seeded
        inside ``fork_rng`` so the caller's random state is left untouched.
        Batch order comes from a separate seeded ``torch.Generator``.
        """
        inputs, targets = torch.from_numpy(train[0]), torch.from_numpy(train[1])
        stop_inputs, stop_targets = torch.from_numpy(stop[0]), torch.from_numpy(stop[1])
        n_rows = inputs.shape[0]
        loss_function = nn.BCEWithLogitsLoss()

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = FeedForwardNet(inputs.shape[1], self.hidden_sizes, self.dropout)
            # The fused CPU kernel (torch >= 2.4) takes about 15% less time per net than the per-tensor loop.
            optimizer = torch.optim.AdamW(
                net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay, fused=True
            )
            shuffle_generator = torch.Generator().manual_seed(self.seed)

            best_state = {name: tensor.clone() for name, tensor in net.state_dict().items()}
            best_loss = float("inf")
            best_epoch = 0
            epochs_run = 0

            for epoch in range(1, self.epochs + 1):
                # One gather per epoch, then contiguous slices, is faster than a gather per batch.
                order = torch.randperm(n_rows, generator=shuffle_generator)
                shuffled_inputs, shuffled_targets = inputs[order], targets[order]

                net.train()
                for start in range(0, n_rows, self.batch_size):
                    optimizer.zero_grad()
                    logits = net(shuffled_inputs[start : start + self.batch_size])
                    loss = loss_function(logits, shuffled_targets[start : start + self.batch_size])
                    loss.backward()
                    optimizer.step()

                net.eval()
                with torch.inference_mode():
                    stop_loss = float(loss_function(net(stop_inputs), stop_targets))
                epochs_run = epoch
                logger.debug("net seed=%d epoch %d/%d out-of-bag loss %.4f", self.seed, epoch, self.epochs, stop_loss)

                if stop_loss < best_loss - EARLY_STOPPING_MIN_DELTA:
                    best_loss, best_epoch = stop_loss, epoch
                    best_state = {name: tensor.clone() for name, tensor in net.state_dict().items()}
                elif epoch - best_epoch >= self.patience:
                    break

        net.load_state_dict(best_state)
        net.eval()
        self.best_loss, self.best_epoch, self.epochs_run = best_loss, best_epoch, epochs_run
        return net

    def predict_logits(self, inputs: np.ndarray) -> np.ndarray:
        """Return float32 logits of the sampled-data posterior for inputs already transformed by ``scaling``."""
        net, _ = self.require_fitted()
        logits = np.empty(inputs.shape[0], dtype=np.float32)
        with torch_threads(self.num_threads), torch.inference_mode():
            for start in range(0, inputs.shape[0], PREDICT_CHUNK_ROWS):
                stop = start + PREDICT_CHUNK_ROWS
                logits[start:stop] = net(torch.from_numpy(inputs[start:stop])).numpy()
        return logits

    def correct_logits(self, logits: np.ndarray) -> np.ndarray:
        """Map logits from ``predict_logits`` to float64 probabilities corrected to the population base rate."""
        _, sample = self.require_fitted()
        p_sampled = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        return prior_correct(p_sampled, sample.beta)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return float64 probabilities of at least one event, corrected to the population base rate."""
        self.require_fitted()
        check_feature_matrix(X, self.n_features)
        return self.correct_logits(self.predict_logits(self.scaling.transform(X)))

    def require_fitted(self) -> tuple[FeedForwardNet, SampleSummary]:
        if self.net is None or self.sample is None or self.scaling is None:
            raise RuntimeError("NetMember is not fitted; call fit() or NetMember.load() first")
        return self.net, self.sample

    def settings(self) -> dict:
        return {
            "hidden_sizes": list(self.hidden_sizes),
            "dropout": self.dropout,
            "weight_decay": self.weight_decay,
            "epochs": self.epochs,
            "patience": self.patience,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "negative_ratio": self.negative_ratio,
            "bootstrap_rows": self.bootstrap_rows,
            "seed": self.seed,
            "num_threads": self.num_threads,
        }

    def save(self, folder: Path) -> None:
        """Write member.json, state_dict.npz (net weights) and scaling.npz into ``folder``."""
        net, sample = self.require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)

        state = {name: tensor.detach().cpu().numpy() for name, tensor in net.state_dict().items()}
        np.savez(folder / "state_dict.npz", **state)
        np.savez(
            folder / "scaling.npz",
            feature_mean=self.scaling.mean,
            feature_std=self.scaling.std,
            missing_columns=self.scaling.missing_columns,
        )

        metadata = {
            "kind": self.kind,
            "format_version": MEMBER_FORMAT_VERSION,
            "settings": self.settings(),
            "n_features": self.n_features,
            "sample": asdict(sample),
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
        }
        (folder / "member.json").write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, folder: Path) -> NetMember:
        """Rebuild a fitted member from a folder written by ``save``."""
        folder = Path(folder)
        metadata = read_member_json(folder, cls.kind)
        settings = metadata["settings"]
        member = cls(**{**settings, "hidden_sizes": tuple(settings["hidden_sizes"])})

        member.n_features = int(metadata["n_features"])
        member.sample = SampleSummary(**metadata["sample"])
        member.best_loss = float(metadata["best_loss"])
        member.best_epoch = int(metadata["best_epoch"])
        member.epochs_run = int(metadata["epochs_run"])

        with np.load(folder / "scaling.npz", allow_pickle=False) as scaling:
            member.scaling = FeatureScaling(scaling["feature_mean"], scaling["feature_std"], scaling["missing_columns"])

        net = FeedForwardNet(member.scaling.n_inputs, member.hidden_sizes, member.dropout)
        with np.load(folder / "state_dict.npz", allow_pickle=False) as state:
            net.load_state_dict({name: torch.from_numpy(state[name]) for name in state.files})
        net.eval()
        member.net = net

        return member


class LightGBMMember:
    """A LightGBM binary classifier trained on one downsample. LightGBM handles NaN natively.

    ``num_threads`` sets the prediction threads, and the training threads unless
    ``fit`` gets ``train_threads``. With ``deterministic`` and row-wise histograms a
    fixed seed and thread count give the same trees on every run.
    """

    kind = "lightgbm"

    def __init__(
        self,
        num_leaves: int = 31,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        min_child_samples: int = 20,
        feature_fraction: float = 1.0,
        max_bin: int = 255,
        negative_ratio: float = 1.0,
        seed: int = 0,
        num_threads: int = 2,
    ) -> None:
        self.num_leaves = int(num_leaves)
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.min_child_samples = int(min_child_samples)
        self.feature_fraction = float(feature_fraction)
        self.max_bin = int(max_bin)
        self.negative_ratio = float(negative_ratio)
        self.seed = int(seed)
        self.num_threads = int(num_threads)

        self.booster: lightgbm.Booster | None = None
        self.sample: SampleSummary | None = None
        self.n_features = 0

    def lightgbm_params(self, num_threads: int) -> dict:
        # LightGBM's parameter documentation recommends force_row_wise or
        # force_col_wise alongside deterministic=true, to avoid numerical instability.
        return {
            "objective": "binary",
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "max_bin": self.max_bin,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": num_threads,
            "seed": self.seed,
            "verbosity": -1,
        }

    def fit(
        self, X: np.ndarray, y: np.ndarray, rows: np.ndarray | None = None, train_threads: int | None = None
    ) -> LightGBMMember:
        """Train on a downsample of ``rows`` of X and y (all rows when None)."""
        X_sample, y_sample, self.sample = draw_training_sample(X, y, rows, self.negative_ratio, self.seed)
        self.n_features = X_sample.shape[1]

        threads = self.num_threads if train_threads is None else int(train_threads)
        dataset = lightgbm.Dataset(X_sample, label=y_sample)
        self.booster = lightgbm.train(self.lightgbm_params(threads), dataset, num_boost_round=self.n_estimators)

        logger.info(
            "lightgbm seed=%d trained on %d rows (%d positives, beta=%.6g), %d trees",
            self.seed,
            X_sample.shape[0],
            self.sample.n_pos,
            self.sample.beta,
            self.booster.num_trees(),
        )
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return float64 probabilities of at least one event, corrected to the population base rate."""
        booster, sample = self.require_fitted()
        check_feature_matrix(X, self.n_features)

        p_sampled = booster.predict(X, num_threads=self.num_threads)
        return prior_correct(p_sampled, sample.beta)

    def require_fitted(self) -> tuple[lightgbm.Booster, SampleSummary]:
        if self.booster is None or self.sample is None:
            raise RuntimeError("LightGBMMember is not fitted; call fit() or LightGBMMember.load() first")
        return self.booster, self.sample

    def settings(self) -> dict:
        return {
            "num_leaves": self.num_leaves,
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "max_bin": self.max_bin,
            "negative_ratio": self.negative_ratio,
            "seed": self.seed,
            "num_threads": self.num_threads,
        }

    def save(self, folder: Path) -> None:
        """Write member.json and LightGBM's model text file model.txt into ``folder``."""
        booster, sample = self.require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)

        booster.save_model(str(folder / "model.txt"))
        metadata = {
            "kind": self.kind,
            "format_version": MEMBER_FORMAT_VERSION,
            "settings": self.settings(),
            "n_features": self.n_features,
            "sample": asdict(sample),
        }
        (folder / "member.json").write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, folder: Path) -> LightGBMMember:
        """Rebuild a fitted member from a folder written by ``save``."""
        folder = Path(folder)
        metadata = read_member_json(folder, cls.kind)

        member = cls(**metadata["settings"])
        member.n_features = int(metadata["n_features"])
        member.sample = SampleSummary(**metadata["sample"])
        member.booster = lightgbm.Booster(model_file=str(folder / "model.txt"))

        return member


def read_member_json(folder: Path, expected_kind: str) -> dict:
    """Read member.json and check its kind and format version."""
    path = folder / "member.json"
    if not path.is_file():
        raise FileNotFoundError(f"member file not found: {path}; save the member with .save(folder) first")

    metadata = json.loads(path.read_text())
    if metadata.get("kind") != expected_kind:
        raise ValueError(f"{path} contains a member of kind {metadata.get('kind')!r}, expected {expected_kind!r}")
    if metadata.get("format_version") != MEMBER_FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {metadata.get('format_version')!r}, "
            f"but this code reads version {MEMBER_FORMAT_VERSION}; retrain and save the model again"
        )

    return metadata
