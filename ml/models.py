"""Ensemble members: a feed-forward net and a LightGBM classifier, each trained on a balanced downsample.

Each member keeps every positive cell-hour, draws an equal number of negatives
(see ``ml.sampling.downsample_balanced``), and returns probabilities that are
prior-corrected back to the population base rate (``ml.sampling.prior_correct``).
Training many small nets on different random downsamples and averaging them
is the design of the commercial tool that Riskcast descends from. That design
is bagging in the sense of L. Breiman, "Bagging predictors", Machine
Learning 24(2), 1996, pp. 123-140, DOI 10.1007/BF00058655, with the bootstrap
replaced by a fresh negative subsample. The gradient-boosted member uses LightGBM: G. Ke et al.,
"LightGBM: A Highly Efficient Gradient Boosting Decision Tree", NeurIPS 2017.

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

from ml.sampling import SampleIndex, downsample_balanced, prior_correct

logger = logging.getLogger(__name__)

MEMBER_FORMAT_VERSION = 1
PREDICT_CHUNK_ROWS = 65_536
MIN_STD = 1e-12

# Nets train with one torch thread, and ``num_threads`` applies to prediction only.
# Mini-batches of 512 rows through 32-unit layers gain nothing from intra-op
# parallelism. On a 2-vCPU KVM machine (AMD EPYC, torch 2.13 CPU with OpenMP),
# two threads made one 20k-row, 8-epoch training take 2.2-11.6 s instead of 0.55 s.
TRAIN_THREADS = 1


@dataclass(frozen=True)
class SampleSummary:
    """Counts of the balanced downsample that a member was trained on."""

    n_pos: int
    n_neg_total: int
    n_neg_sampled: int
    beta: float

    @classmethod
    def from_index(cls, sample: SampleIndex) -> SampleSummary:
        return cls(sample.n_pos, sample.n_neg_total, sample.n_neg_sampled, sample.beta)


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
    """One feed-forward net trained on one balanced downsample, with its own feature scaling.

    Features are standardized with the downsample's mean and standard deviation.
    After scaling, NaN becomes 0 (the training mean), and each column that had
    any NaN in the downsample gets an extra 0/1 missing-indicator input. NaN in a
    column that had none in training is still set to 0, but without an indicator.

    Training runs on one torch thread (see ``TRAIN_THREADS``), and ``num_threads``
    sets the torch thread count for ``predict_proba``. A fixed seed gives the same
    weights on every CPU run of the same torch build.
    """

    kind = "net"

    def __init__(
        self,
        hidden_sizes: tuple[int, ...] = (32, 16),
        dropout: float = 0.1,
        epochs: int = 8,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        negative_ratio: float = 1.0,
        seed: int = 0,
        num_threads: int = 2,
    ) -> None:
        self.hidden_sizes = tuple(int(size) for size in hidden_sizes)
        self.dropout = float(dropout)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.negative_ratio = float(negative_ratio)
        self.seed = int(seed)
        self.num_threads = int(num_threads)

        self.net: FeedForwardNet | None = None
        self.sample: SampleSummary | None = None
        self.n_features = 0
        self.feature_mean = np.zeros(0, dtype=np.float32)
        self.feature_std = np.ones(0, dtype=np.float32)
        self.missing_columns = np.zeros(0, dtype=np.int64)
        self.final_loss = float("nan")

    def fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray | None = None) -> NetMember:
        """Train on a balanced downsample of ``rows`` of X and y (all rows when None)."""
        X_sample, y_sample, self.sample = draw_training_sample(X, y, rows, self.negative_ratio, self.seed)

        self.n_features = X_sample.shape[1]
        self.fit_scaling(X_sample)
        inputs = self.transform(X_sample)
        targets = torch.from_numpy(y_sample)

        with torch_threads(TRAIN_THREADS):
            self.net, self.final_loss = self.train_net(inputs, targets)

        logger.info(
            "net seed=%d trained on %d rows (%d positives, beta=%.6g), final epoch loss %.4f",
            self.seed,
            inputs.shape[0],
            self.sample.n_pos,
            self.sample.beta,
            self.final_loss,
        )
        return self

    def fit_scaling(self, X_sample: np.ndarray) -> None:
        """Store per-column mean, standard deviation and the columns that need a missing indicator."""
        observed = ~np.isnan(X_sample)
        counts = observed.sum(axis=0)
        safe_counts = np.maximum(counts, 1)

        filled = np.where(observed, X_sample, 0.0).astype(np.float64)
        mean = filled.sum(axis=0) / safe_counts
        squared = np.where(observed, (filled - mean) ** 2, 0.0)
        std = np.sqrt(squared.sum(axis=0) / safe_counts)

        # An all-NaN or constant column would divide by zero, so it is scaled by 1.
        std[(counts == 0) | (std < MIN_STD)] = 1.0

        self.feature_mean = mean.astype(np.float32)
        self.feature_std = std.astype(np.float32)
        self.missing_columns = np.flatnonzero(counts < X_sample.shape[0]).astype(np.int64)

    def transform(self, X: np.ndarray) -> torch.Tensor:
        """Standardize, set NaN to 0 and append the missing indicators, returning a float32 tensor."""
        X32 = np.asarray(X, dtype=np.float32)
        scaled = (X32 - self.feature_mean) / self.feature_std
        scaled[np.isnan(scaled)] = 0.0

        indicators = np.isnan(X32[:, self.missing_columns]).astype(np.float32)
        return torch.from_numpy(np.concatenate([scaled, indicators], axis=1))

    def train_net(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[FeedForwardNet, float]:
        """Train a fresh net with Adam on shuffled mini-batches, returning it with the last epoch's mean loss.

        Weight initialization and dropout use torch's global generator, seeded
        inside ``fork_rng`` so the caller's random state is left untouched.
        Batch order comes from a separate seeded ``torch.Generator``.
        """
        n_rows = inputs.shape[0]
        epoch_loss = float("nan")

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = FeedForwardNet(inputs.shape[1], self.hidden_sizes, self.dropout)
            optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            loss_function = nn.BCEWithLogitsLoss()
            shuffle_generator = torch.Generator().manual_seed(self.seed)

            net.train()
            for epoch in range(self.epochs):
                order = torch.randperm(n_rows, generator=shuffle_generator)
                loss_sum = 0.0

                for start in range(0, n_rows, self.batch_size):
                    batch = order[start : start + self.batch_size]
                    optimizer.zero_grad()
                    loss = loss_function(net(inputs[batch]), targets[batch])
                    loss.backward()
                    optimizer.step()
                    loss_sum += loss.item() * batch.shape[0]

                epoch_loss = loss_sum / n_rows
                logger.debug("net seed=%d epoch %d/%d loss %.4f", self.seed, epoch + 1, self.epochs, epoch_loss)

        net.eval()
        return net, epoch_loss

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return float64 probabilities of at least one event, corrected to the population base rate."""
        net, sample = self.require_fitted()
        check_feature_matrix(X, self.n_features)

        p_sampled = np.empty(X.shape[0], dtype=np.float64)
        with torch_threads(self.num_threads), torch.inference_mode():
            for start in range(0, X.shape[0], PREDICT_CHUNK_ROWS):
                stop = start + PREDICT_CHUNK_ROWS
                logits = net(self.transform(X[start:stop]))
                p_sampled[start:stop] = torch.sigmoid(logits.double()).numpy()

        return prior_correct(p_sampled, sample.beta)

    def require_fitted(self) -> tuple[FeedForwardNet, SampleSummary]:
        if self.net is None or self.sample is None:
            raise RuntimeError("NetMember is not fitted; call fit() or NetMember.load() first")
        return self.net, self.sample

    def settings(self) -> dict:
        return {
            "hidden_sizes": list(self.hidden_sizes),
            "dropout": self.dropout,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "negative_ratio": self.negative_ratio,
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
            feature_mean=self.feature_mean,
            feature_std=self.feature_std,
            missing_columns=self.missing_columns,
        )

        metadata = {
            "kind": self.kind,
            "format_version": MEMBER_FORMAT_VERSION,
            "settings": self.settings(),
            "n_features": self.n_features,
            "sample": asdict(sample),
            "final_loss": self.final_loss,
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
        member.final_loss = float(metadata["final_loss"])

        with np.load(folder / "scaling.npz", allow_pickle=False) as scaling:
            member.feature_mean = scaling["feature_mean"]
            member.feature_std = scaling["feature_std"]
            member.missing_columns = scaling["missing_columns"]

        n_inputs = member.n_features + member.missing_columns.shape[0]
        net = FeedForwardNet(n_inputs, member.hidden_sizes, member.dropout)
        with np.load(folder / "state_dict.npz", allow_pickle=False) as state:
            net.load_state_dict({name: torch.from_numpy(state[name]) for name in state.files})
        net.eval()
        member.net = net

        return member


class LightGBMMember:
    """A LightGBM binary classifier trained on one balanced downsample. LightGBM handles NaN natively."""

    kind = "lightgbm"

    def __init__(
        self,
        num_leaves: int = 31,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        negative_ratio: float = 1.0,
        seed: int = 0,
        num_threads: int = 2,
    ) -> None:
        self.num_leaves = int(num_leaves)
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.negative_ratio = float(negative_ratio)
        self.seed = int(seed)
        self.num_threads = int(num_threads)

        self.booster: lightgbm.Booster | None = None
        self.sample: SampleSummary | None = None
        self.n_features = 0

    def lightgbm_params(self) -> dict:
        # LightGBM's parameter documentation recommends force_row_wise or
        # force_col_wise alongside deterministic=true, to avoid numerical instability.
        return {
            "objective": "binary",
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "verbosity": -1,
        }

    def fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray | None = None) -> LightGBMMember:
        """Train on a balanced downsample of ``rows`` of X and y (all rows when None)."""
        X_sample, y_sample, self.sample = draw_training_sample(X, y, rows, self.negative_ratio, self.seed)
        self.n_features = X_sample.shape[1]

        dataset = lightgbm.Dataset(X_sample, label=y_sample)
        self.booster = lightgbm.train(self.lightgbm_params(), dataset, num_boost_round=self.n_estimators)

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
