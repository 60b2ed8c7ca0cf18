"""Riskcast's forecasting ensemble: bagged feed-forward nets plus LightGBM, weighted by recent validation AUC.

The ensemble predicts, for each (cell, hour) row, the probability that at least
one violent crime occurs. Each member trains on all positives plus a random
equal-sized draw of negatives and is prior-corrected back to the population
base rate (Dal Pozzolo et al. 2015, DOI 10.1109/SSCI.2015.33, see
``ml.sampling``). Averaging nets trained on different downsamples is bagging
(L. Breiman, "Bagging predictors", Machine Learning 24(2), 1996,
pp. 123-140, DOI 10.1007/BF00058655). The boosted member is LightGBM (G. Ke et al.,
"LightGBM: A Highly Efficient Gradient Boosting Decision Tree", NeurIPS 2017).

Fitting holds out the latest hours as validation. The bag of nets is averaged
into one "nets" member, and the final forecast is a weighted average of the
"nets" and "lightgbm" probabilities. Each weight is proportional to
max(AUC - 0.5, 0.01), with AUC measured on every validation row (no
downsampling), and the weights are normalized to sum to 1. AUC is used because
the forecast is read as a ranking of cells. Log loss on rare events is
dominated by the base rate, so weights from inverse log loss would stay close
to equal. The floor keeps a member with chance-level AUC at a small weight and
avoids a zero denominator.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from ml.models import LightGBMMember, NetMember, check_matrix_shape
from ml.sampling import check_binary_labels, time_split

logger = logging.getLogger(__name__)

ENSEMBLE_FORMAT_VERSION = 1
AUC_WEIGHT_FLOOR = 0.01
WEIGHTING_RULE = {
    "name": "auc_margin",
    "formula": "weight[m] = max(auc[m] - 0.5, floor) / sum over k of max(auc[k] - 0.5, floor)",
    "members": ["nets", "lightgbm"],
    "floor": AUC_WEIGHT_FLOOR,
    "auc_rows": "all validation rows, prior-corrected probabilities, no downsampling",
}
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class EnsembleConfig:
    """Ensemble settings.

    ``num_threads`` sets the LightGBM threads and the torch threads for prediction.
    Nets always train on one torch thread (``ml.models.TRAIN_THREADS``).
    """

    n_nets: int = 10
    hidden_sizes: tuple[int, ...] = (32, 16)
    dropout: float = 0.1
    epochs: int = 8
    batch_size: int = 512
    learning_rate: float = 1e-3
    lgbm_num_leaves: int = 31
    lgbm_n_estimators: int = 200
    lgbm_learning_rate: float = 0.05
    negative_ratio: float = 1.0
    validation_fraction: float = 0.15
    refit_full: bool = True
    num_threads: int = 2
    seed: int = 7

    def __post_init__(self) -> None:
        positive_ints = {
            "n_nets": self.n_nets,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lgbm_num_leaves": self.lgbm_num_leaves,
            "lgbm_n_estimators": self.lgbm_n_estimators,
            "num_threads": self.num_threads,
        }
        for name, value in positive_ints.items():
            if value < 1:
                raise ValueError(f"EnsembleConfig.{name} must be >= 1, got {value}")

        if self.seed < 0:
            raise ValueError(f"EnsembleConfig.seed must be >= 0, got {self.seed}")
        if len(self.hidden_sizes) == 0 or min(self.hidden_sizes) < 1:
            raise ValueError(
                f"EnsembleConfig.hidden_sizes must be one or more positive widths, got {self.hidden_sizes}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"EnsembleConfig.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"EnsembleConfig.validation_fraction must be in (0, 1), got {self.validation_fraction}")

        positive_floats = {
            "learning_rate": self.learning_rate,
            "lgbm_learning_rate": self.lgbm_learning_rate,
            "negative_ratio": self.negative_ratio,
        }
        for name, value in positive_floats.items():
            if not value > 0:
                raise ValueError(f"EnsembleConfig.{name} must be > 0, got {value}")

    def to_json(self) -> dict:
        return {**asdict(self), "hidden_sizes": list(self.hidden_sizes)}

    @classmethod
    def from_json(cls, values: dict) -> EnsembleConfig:
        return cls(**{**values, "hidden_sizes": tuple(values["hidden_sizes"])})


def derive_seed(base_seed: int, stream: int) -> int:
    """Derive an independent seed in [0, 2**31 - 1) for one member from the ensemble seed."""
    state = np.random.SeedSequence(base_seed, spawn_key=(stream,)).generate_state(1, dtype=np.uint64)
    return int(state[0] % MAX_SEED)


def auc_margin_weights(auc_by_member: dict[str, float]) -> dict[str, float]:
    """Weight members by max(AUC - 0.5, AUC_WEIGHT_FLOOR), normalized to sum to 1."""
    margins = {name: max(auc - 0.5, AUC_WEIGHT_FLOOR) for name, auc in auc_by_member.items()}
    total = sum(margins.values())
    return {name: margin / total for name, margin in margins.items()}


def score_probabilities(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Compute log loss, Brier score, ROC-AUC and the mean probability against 0/1 labels."""
    return {
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "roc_auc": float(roc_auc_score(y, p)),
        "mean_probability": float(np.mean(p)),
    }


class RiskEnsemble:
    """Bagged nets plus LightGBM with validation-AUC weights. The module docstring states the rule."""

    def __init__(self, config: EnsembleConfig | None = None) -> None:
        self.config = config if config is not None else EnsembleConfig()
        self.nets: list[NetMember] = []
        self.lightgbm: LightGBMMember | None = None
        self.feature_names: list[str] = []
        self.weights: dict[str, float] = {}
        self.member_report: list[dict] = []
        self.validation_metrics: dict[str, dict] = {}

    def fit(self, X: np.ndarray, y: np.ndarray, hours: np.ndarray, feature_names: list[str]) -> RiskEnsemble:
        """Fit members on the earlier hours, weight them on the latest hours, then optionally refit on all rows."""
        labels = check_training_inputs(X, y, hours, feature_names)
        config = self.config

        fit_mask, validation_mask = time_split(hours, config.validation_fraction)
        fit_rows = np.flatnonzero(fit_mask)
        validation_rows = np.flatnonzero(validation_mask)
        check_split_positives(labels, fit_rows, validation_rows, config.validation_fraction)

        nets, lightgbm_member = self.train_members(X, labels, fit_rows)
        self.score_and_weight(nets, lightgbm_member, X[validation_rows], labels[validation_rows])

        if config.refit_full:
            logger.info("refitting every member on all %d rows with the same seeds", X.shape[0])
            nets, lightgbm_member = self.train_members(X, labels, None)
            self.add_refit_counts(nets, lightgbm_member)

        self.nets = nets
        self.lightgbm = lightgbm_member
        self.feature_names = list(feature_names)
        return self

    def build_members(self) -> tuple[list[NetMember], LightGBMMember]:
        config = self.config
        nets = [
            NetMember(
                hidden_sizes=config.hidden_sizes,
                dropout=config.dropout,
                epochs=config.epochs,
                batch_size=config.batch_size,
                learning_rate=config.learning_rate,
                negative_ratio=config.negative_ratio,
                seed=derive_seed(config.seed, bag),
                num_threads=config.num_threads,
            )
            for bag in range(config.n_nets)
        ]
        lightgbm_member = LightGBMMember(
            num_leaves=config.lgbm_num_leaves,
            n_estimators=config.lgbm_n_estimators,
            learning_rate=config.lgbm_learning_rate,
            negative_ratio=config.negative_ratio,
            seed=derive_seed(config.seed, config.n_nets),
            num_threads=config.num_threads,
        )
        return nets, lightgbm_member

    def train_members(
        self, X: np.ndarray, labels: np.ndarray, rows: np.ndarray | None
    ) -> tuple[list[NetMember], LightGBMMember]:
        """Build fresh members from the config and train each on its own downsample of ``rows``."""
        nets, lightgbm_member = self.build_members()
        n_rows = X.shape[0] if rows is None else rows.shape[0]
        n_pos = int(labels.sum()) if rows is None else int(labels[rows].sum())
        logger.info("training %d nets and 1 lightgbm member on %d rows with %d positives", len(nets), n_rows, n_pos)

        for net in nets:
            net.fit(X, labels, rows)
        lightgbm_member.fit(X, labels, rows)

        return nets, lightgbm_member

    def score_and_weight(
        self,
        nets: list[NetMember],
        lightgbm_member: LightGBMMember,
        X_validation: np.ndarray,
        y_validation: np.ndarray,
    ) -> None:
        """Score members on every validation row, set ``weights`` and fill the reports."""
        net_probabilities = [net.predict_proba(X_validation) for net in nets]
        nets_probability = np.mean(net_probabilities, axis=0)
        lightgbm_probability = lightgbm_member.predict_proba(X_validation)

        net_metrics = [score_probabilities(y_validation, p) for p in net_probabilities]
        metrics = {
            "nets": score_probabilities(y_validation, nets_probability),
            "lightgbm": score_probabilities(y_validation, lightgbm_probability),
        }
        self.weights = auc_margin_weights({name: values["roc_auc"] for name, values in metrics.items()})

        ensemble_probability = self.weights["nets"] * nets_probability + self.weights["lightgbm"] * lightgbm_probability
        metrics["ensemble"] = score_probabilities(y_validation, ensemble_probability)
        for values in metrics.values():
            values["n_rows"] = int(y_validation.shape[0])
            values["n_pos"] = int(y_validation.sum())
            values["base_rate"] = float(y_validation.mean())
        self.validation_metrics = metrics

        self.member_report = build_member_report(nets, net_metrics, lightgbm_member, metrics["lightgbm"], self.weights)
        log_validation(self.member_report, metrics, self.weights)

    def add_refit_counts(self, nets: list[NetMember], lightgbm_member: LightGBMMember) -> None:
        """Record the downsample counts of the refitted members next to the validation-stage ones."""
        for row, member in zip(self.member_report, [*nets, lightgbm_member], strict=True):
            _, sample = member.require_fitted()
            row["refit_n_pos"] = sample.n_pos
            row["refit_n_neg_sampled"] = sample.n_neg_sampled
            row["refit_beta"] = sample.beta

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return float64 probabilities of at least one event per row, corrected to the population base rate."""
        lightgbm_member = self.require_fitted()
        check_matrix_shape(X, len(self.feature_names))
        check_infinite_columns(X, self.feature_names)

        # Averaged exactly as in score_and_weight, so validation metrics describe these outputs.
        nets_probability = np.mean([net.predict_proba(X) for net in self.nets], axis=0)
        lightgbm_probability = lightgbm_member.predict_proba(X)
        return self.weights["nets"] * nets_probability + self.weights["lightgbm"] * lightgbm_probability

    def require_fitted(self) -> LightGBMMember:
        if self.lightgbm is None or not self.nets or not self.weights:
            raise RuntimeError("RiskEnsemble is not fitted; call fit() or RiskEnsemble.load() first")
        return self.lightgbm

    def save(self, folder: Path) -> None:
        """Write ensemble.json and one subfolder per member (net_00, net_01, ..., lightgbm) into ``folder``."""
        lightgbm_member = self.require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)

        net_folders = [f"net_{bag:02d}" for bag in range(len(self.nets))]
        for net, name in zip(self.nets, net_folders, strict=True):
            net.save(folder / name)
        lightgbm_member.save(folder / "lightgbm")

        document = {
            "format_version": ENSEMBLE_FORMAT_VERSION,
            "config": self.config.to_json(),
            "feature_names": self.feature_names,
            "weights": self.weights,
            "weighting_rule": WEIGHTING_RULE,
            "member_folders": {"nets": net_folders, "lightgbm": "lightgbm"},
            "member_report": self.member_report,
            "validation_metrics": self.validation_metrics,
        }
        (folder / "ensemble.json").write_text(json.dumps(document, indent=2))
        logger.info("saved ensemble with %d nets to %s", len(self.nets), folder)

    @classmethod
    def load(cls, folder: Path) -> RiskEnsemble:
        """Rebuild a fitted ensemble from a folder written by ``save``."""
        folder = Path(folder)
        path = folder / "ensemble.json"
        if not path.is_file():
            raise FileNotFoundError(f"ensemble file not found: {path}; save a fitted RiskEnsemble there first")

        document = json.loads(path.read_text())
        if document.get("format_version") != ENSEMBLE_FORMAT_VERSION:
            raise ValueError(
                f"{path} has format_version {document.get('format_version')!r}, but this code reads "
                f"version {ENSEMBLE_FORMAT_VERSION}; retrain and save the ensemble again"
            )

        ensemble = cls(EnsembleConfig.from_json(document["config"]))
        ensemble.feature_names = list(document["feature_names"])
        ensemble.weights = {name: float(value) for name, value in document["weights"].items()}
        ensemble.member_report = document["member_report"]
        ensemble.validation_metrics = document["validation_metrics"]

        member_folders = document["member_folders"]
        ensemble.nets = [NetMember.load(folder / name) for name in member_folders["nets"]]
        ensemble.lightgbm = LightGBMMember.load(folder / member_folders["lightgbm"])

        return ensemble


def check_training_inputs(X: np.ndarray, y: np.ndarray, hours: np.ndarray, feature_names: list[str]) -> np.ndarray:
    """Validate the arguments of ``RiskEnsemble.fit`` and return y as a 1-D int8 array of 0/1."""
    check_matrix_shape(X)
    n_rows = X.shape[0]

    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has shape {labels.shape}; pass one 0/1 label per row of X")
    check_binary_labels(labels)

    hour_values = np.asarray(hours)
    if hour_values.ndim != 1 or hour_values.shape[0] != n_rows:
        raise ValueError(f"X has {n_rows} rows but hours has shape {hour_values.shape}; pass one hour per row of X")
    if not np.issubdtype(hour_values.dtype, np.integer):
        raise ValueError(f"hours must be integers (hours since the Unix epoch, UTC), got dtype {hour_values.dtype}")

    if len(feature_names) != X.shape[1]:
        raise ValueError(
            f"feature_names has {len(feature_names)} names but X has {X.shape[1]} columns; "
            "pass one name per column, in column order"
        )
    if len(set(feature_names)) != len(feature_names):
        duplicates = sorted({name for name in feature_names if feature_names.count(name) > 1})
        raise ValueError(f"feature_names contains duplicates {duplicates}; give each column a unique name")

    check_infinite_columns(X, feature_names)
    return labels.astype(np.int8)


def check_infinite_columns(X: np.ndarray, feature_names: list[str]) -> None:
    """Raise ``ValueError`` naming the columns of X that contain +inf or -inf."""
    infinite_per_column = np.isinf(X).sum(axis=0)
    if infinite_per_column.any():
        columns = [feature_names[i] for i in np.flatnonzero(infinite_per_column)]
        raise ValueError(
            f"X contains {int(infinite_per_column.sum())} +inf/-inf values in columns {columns}; "
            "replace them with NaN (treated as missing) or finite values"
        )


def check_split_positives(
    labels: np.ndarray, fit_rows: np.ndarray, validation_rows: np.ndarray, validation_fraction: float
) -> None:
    """Raise ``ValueError`` unless both sides of the time split contain positives and negatives."""
    n_total = int(labels.sum())
    n_fit = int(labels[fit_rows].sum())
    n_validation = int(labels[validation_rows].sum())

    if n_validation == 0:
        raise ValueError(
            f"the validation part (latest {validation_fraction:.0%} of hours, {validation_rows.shape[0]} rows) "
            f"has 0 positives, and the whole training set has {n_total}; "
            "use a longer training window or a larger validation_fraction"
        )
    if n_validation == validation_rows.shape[0]:
        raise ValueError(
            f"the validation part has only positives ({n_validation} rows), so ROC-AUC is undefined; "
            "check that y marks non-events with 0"
        )
    if n_fit == 0:
        raise ValueError(
            f"the fit part (earliest {1 - validation_fraction:.0%} of hours, {fit_rows.shape[0]} rows) "
            f"has 0 positives, and the whole training set has {n_total}; "
            "use a longer training window or a smaller validation_fraction"
        )


def build_member_report(
    nets: list[NetMember],
    net_metrics: list[dict[str, float]],
    lightgbm_member: LightGBMMember,
    lightgbm_metrics: dict[str, float],
    weights: dict[str, float],
) -> list[dict]:
    """Build one report row per net and one for LightGBM. A net's weight is its equal share of the nets weight."""
    members = [*nets, lightgbm_member]
    member_metrics = [*net_metrics, lightgbm_metrics]
    member_weights = [weights["nets"] / len(nets)] * len(nets) + [weights["lightgbm"]]
    bags = [*range(len(nets)), 0]

    report = []
    for member, metrics, weight, bag in zip(members, member_metrics, member_weights, bags, strict=True):
        _, sample = member.require_fitted()
        report.append(
            {
                "kind": member.kind,
                "bag": bag,
                "seed": member.seed,
                "log_loss": metrics["log_loss"],
                "brier": metrics["brier"],
                "roc_auc": metrics["roc_auc"],
                "mean_probability": metrics["mean_probability"],
                "weight": weight,
                "n_pos": sample.n_pos,
                "n_neg_total": sample.n_neg_total,
                "n_neg_sampled": sample.n_neg_sampled,
                "beta": sample.beta,
            }
        )
    return report


def log_validation(member_report: list[dict], metrics: dict[str, dict], weights: dict[str, float]) -> None:
    for row in member_report:
        logger.info(
            "validation %s bag %d: log_loss=%.5f brier=%.6f roc_auc=%.4f mean_p=%.5f",
            row["kind"],
            row["bag"],
            row["log_loss"],
            row["brier"],
            row["roc_auc"],
            row["mean_probability"],
        )
    for name, values in metrics.items():
        logger.info(
            "validation %s: rows=%d positives=%d base_rate=%.5f log_loss=%.5f brier=%.6f roc_auc=%.4f mean_p=%.5f",
            name,
            values["n_rows"],
            values["n_pos"],
            values["base_rate"],
            values["log_loss"],
            values["brier"],
            values["roc_auc"],
            values["mean_probability"],
        )
    logger.info("ensemble weights (auc_margin rule): nets=%.4f lightgbm=%.4f", weights["nets"], weights["lightgbm"])
