"""Riskcast's forecasting ensemble: bagged feed-forward nets plus bagged LightGBM, weighted by recent skill.

The ensemble predicts, for each (cell, hour) row, the probability that at least
one violent crime occurs. Each member trains on all positives plus
``negative_ratio`` negatives per positive and is prior-corrected back to the
population base rate (A. Dal Pozzolo et al., "Calibrating Probability with
Undersampling for Unbalanced Classification", IEEE SSCI 2015,
DOI 10.1109/SSCI.2015.33, see ``ml.sampling``). The nets each train on a
bootstrap of their own downsample (bagging: L. Breiman, "Bagging predictors",
Machine Learning 24(2), 1996, pp. 123-140, DOI 10.1007/BF00058655). The boosted
members are LightGBM (G. Ke et al., "LightGBM: A Highly Efficient Gradient
Boosting Decision Tree", NeurIPS 2017), each on its own downsample.

Weights. Fitting holds out the latest ``validation_weeks`` weeks before the
training cut-off (at most ``validation_fraction`` of the window). The nets are
averaged into one "nets" member and the LightGBM models into one "lightgbm"
member. For each member m and validation week w (w = 0 is the latest) the code
computes the log loss L[m, w] and the log loss R[w] of the reference forecast
that always issues the fit part's base rate. With week weights
lambda[w] = 0.5 ** (w / weight_half_life_weeks) and n[w] rows in week w, the
member's recent log-loss skill is

    skill[m] = 1 - sum_w lambda[w] n[w] L[m, w] / sum_w lambda[w] n[w] R[w],

and its weight is max(skill[m], weight_floor) divided by the sum of that
quantity over the members, so the weights sum to 1.

Why skill and not the log loss itself: on events as rare as violent crime in a
cell-hour, most of the log loss is the entropy of the base rate, which no
member can remove. Two members with log losses of 0.135 and 0.130 get weights
0.49 and 0.51 from inverse-loss weighting, although the second removes twice
as much of the removable loss. The skill score (S - S_ref) / (S_perfect - S_ref)
with the climatological forecast as reference (the standard verification form,
for example the Australian Bureau of Meteorology's water glossary entry "skill
score"; for the logarithmic score see S. V. Weijs, R. van Nooijen and N. van de
Giesen, "Kullback-Leibler Divergence as a Forecast Skill Score with Classic
Reliability-Resolution-Uncertainty Decomposition", Monthly Weather Review
138(9), 2010) measures only the removable part. Weights proportional to a
measure of each model's accuracy over a recent window of past forecasts follow
the inverse-MSE combination weights of J. H. Stock and M. W. Watson (1998), as
summarized in the World Bank Pacific Observatory's forecast-combination notes
(worldbank.github.io/pacific-observatory/tourism/forecastcomb.html). The
exponential discount by week favours the members that did well most recently.
The floor keeps a member no better than the base rate at a small weight and
avoids a zero denominator. When every member is at the floor, the weights are equal.

After weighting, every member is refitted on the whole window with the same
seeds when ``refit_full`` is set. Members train in ``num_threads`` worker
processes started by a fork server ("spawn" where that is missing), because
torch and OpenMP are not safe to fork from a process that has used them. The
workers read the feature matrix from shared memory. Each member's seed depends
only on the ensemble seed and the member's kind and index, and each member
trains on one thread, so the fitted ensemble is the same for every worker count.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ml.block_rows import BlockRows, StackedNets
from ml.models import (
    PREDICT_CHUNK_ROWS,
    FeatureScaling,
    LightGBMMember,
    NetMember,
    check_matrix_shape,
    fit_scaling_on_rows,
    torch_threads,
)
from ml.sampling import (
    RecentWeeksSplit,
    check_binary_labels,
    check_negative_ratio,
    prior_correct,
    recent_weeks_split,
)
from ml.shared_arrays import shared_memory_fits, shared_name

logger = logging.getLogger(__name__)

ENSEMBLE_FORMAT_VERSION = 2
MEMBER_GROUPS = ("nets", "lightgbm")
MAX_SEED = 2**31 - 1
PROBABILITY_CLIP = 1e-15

# Seed streams: a member's seed depends on its kind and index only, never on the other counts.
NET_STREAM = 0
LIGHTGBM_STREAM = 1
SCALING_STREAM = 2


@dataclass(frozen=True)
class EnsembleConfig:
    """Ensemble settings.

    With the defaults, training on a 26-week window of 801 cells (3.5 million rows, 60
    features) costs about 87 s of worker CPU time on a 2-vCPU KVM machine, which is an
    estimated 50 s of wall time on two idle cores. docs/benchmarks.md has the measured
    figures of ``benchmarks/train_ensemble.py``.

    Nets: ``n_nets`` feed-forward nets with ``hidden_sizes`` ReLU layers, ``dropout``,
    AdamW with ``learning_rate`` and ``weight_decay``, mini-batches of ``batch_size``,
    at most ``epochs`` epochs with early stopping after ``patience`` epochs without
    improvement of the out-of-bag loss. Each net trains on a stratified bootstrap of
    ``net_bootstrap_rows`` rows of its own downsample (the downsample's size when None).

    LightGBM: ``lgbm_members`` boosters, each on its own downsample, with
    ``lgbm_num_leaves``, ``lgbm_n_estimators`` trees, ``lgbm_learning_rate``,
    ``lgbm_min_child_samples``, ``lgbm_feature_fraction`` and ``lgbm_max_bin``.

    Sampling: ``negative_ratio`` negatives per positive (1 for 1:1, 3 for 1:3).

    Weights: the latest ``validation_weeks`` weeks, at most ``validation_fraction``
    of the window, score the members. Older weeks are discounted with a half-life of
    ``weight_half_life_weeks``, and ``weight_floor`` is the smallest skill a member
    counts with. ``refit_full`` refits every member on the whole window after weighting.

    ``num_threads`` is the number of training worker processes and the torch and
    LightGBM threads for prediction. ``seed`` fixes every random draw.
    """

    n_nets: int = 100
    hidden_sizes: tuple[int, ...] = (16,)
    dropout: float = 0.1
    weight_decay: float = 1e-4
    epochs: int = 6
    patience: int = 2
    batch_size: int = 1024
    learning_rate: float = 5e-3
    net_bootstrap_rows: int | None = 12_000
    lgbm_members: int = 1
    lgbm_num_leaves: int = 31
    lgbm_n_estimators: int = 100
    lgbm_learning_rate: float = 0.1
    lgbm_min_child_samples: int = 50
    lgbm_feature_fraction: float = 0.5
    lgbm_max_bin: int = 63
    negative_ratio: float = 1.0
    validation_weeks: int = 4
    weight_half_life_weeks: float = 2.0
    weight_floor: float = 0.001
    validation_fraction: float = 0.25
    refit_full: bool = True
    num_threads: int = 2
    seed: int = 7

    def __post_init__(self) -> None:
        positive_ints = {
            "n_nets": self.n_nets,
            "epochs": self.epochs,
            "patience": self.patience,
            "batch_size": self.batch_size,
            "lgbm_members": self.lgbm_members,
            "lgbm_num_leaves": self.lgbm_num_leaves,
            "lgbm_n_estimators": self.lgbm_n_estimators,
            "lgbm_min_child_samples": self.lgbm_min_child_samples,
            "lgbm_max_bin": self.lgbm_max_bin,
            "validation_weeks": self.validation_weeks,
            "num_threads": self.num_threads,
        }
        for name, value in positive_ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EnsembleConfig.{name} must be an integer >= 1, got {value!r}")

        if self.lgbm_max_bin < 2:
            raise ValueError(f"EnsembleConfig.lgbm_max_bin must be >= 2, got {self.lgbm_max_bin}")
        if self.seed < 0:
            raise ValueError(f"EnsembleConfig.seed must be >= 0, got {self.seed}")
        if len(self.hidden_sizes) == 0 or min(self.hidden_sizes) < 1:
            raise ValueError(
                f"EnsembleConfig.hidden_sizes must be one or more positive widths, got {self.hidden_sizes}"
            )
        if self.net_bootstrap_rows is not None and self.net_bootstrap_rows < 100:
            raise ValueError(
                f"EnsembleConfig.net_bootstrap_rows must be >= 100 or None (the whole downsample), "
                f"got {self.net_bootstrap_rows}"
            )
        try:
            check_negative_ratio(self.negative_ratio)
        except ValueError as error:
            raise ValueError(f"EnsembleConfig.negative_ratio: {error}") from None

        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"EnsembleConfig.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"EnsembleConfig.validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not 0.0 < self.lgbm_feature_fraction <= 1.0:
            raise ValueError(f"EnsembleConfig.lgbm_feature_fraction must be in (0, 1], got {self.lgbm_feature_fraction}")

        positive_floats = {
            "learning_rate": self.learning_rate,
            "lgbm_learning_rate": self.lgbm_learning_rate,
            "weight_half_life_weeks": self.weight_half_life_weeks,
            "weight_floor": self.weight_floor,
        }
        for name, value in positive_floats.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"EnsembleConfig.{name} must be a finite number > 0, got {value}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"EnsembleConfig.weight_decay must be a finite number >= 0, got {self.weight_decay}")

    def to_json(self) -> dict:
        return {**asdict(self), "hidden_sizes": list(self.hidden_sizes)}

    @classmethod
    def from_json(cls, values: dict) -> EnsembleConfig:
        return cls(**{**values, "hidden_sizes": tuple(values["hidden_sizes"])})

    def weighting_rule(self) -> dict:
        """Describe the weighting rule with this config's parameters, for ensemble.json and the manifest."""
        return {
            "name": "recent_log_loss_skill",
            "formula": (
                "skill[m] = 1 - sum_w lambda[w] n[w] log_loss[m, w] / sum_w lambda[w] n[w] log_loss_reference[w]; "
                "weight[m] = max(skill[m], floor) / sum over k of max(skill[k], floor)"
            ),
            "lambda": "0.5 ** (w / half_life_weeks), w = 0 for the latest validation week",
            "reference": "the fit part's base rate, issued for every validation row",
            "members": list(MEMBER_GROUPS),
            "validation_weeks": self.validation_weeks,
            "max_validation_fraction": self.validation_fraction,
            "half_life_weeks": self.weight_half_life_weeks,
            "floor": self.weight_floor,
        }


def derive_seed(base_seed: int, *stream: int) -> int:
    """Derive an independent seed in [0, 2**31 - 1) for one member from the ensemble seed and its stream."""
    state = np.random.SeedSequence(base_seed, spawn_key=tuple(stream)).generate_state(1, dtype=np.uint64)
    return int(state[0] % MAX_SEED)


def week_decay(n_weeks: int, half_life_weeks: float) -> np.ndarray:
    """Return lambda[w] = 0.5 ** (w / half_life_weeks) for w = 0 (latest week) .. n_weeks - 1."""
    return 0.5 ** (np.arange(n_weeks, dtype=np.float64) / half_life_weeks)


def skill_weights(skill_by_member: dict[str, float], floor: float) -> dict[str, float]:
    """Weight members by max(skill, floor), normalized to sum to 1."""
    clipped = {name: max(skill, floor) for name, skill in skill_by_member.items()}
    total = sum(clipped.values())
    return {name: value / total for name, value in clipped.items()}


def weekly_log_losses(y: np.ndarray, p: np.ndarray, week: np.ndarray, n_weeks: int) -> np.ndarray:
    """Return the mean log loss of probabilities ``p`` per validation week (NaN for an empty week)."""
    clipped = np.clip(p, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    row_losses = -np.where(y == 1, np.log(clipped), np.log1p(-clipped))
    totals = np.bincount(week, weights=row_losses, minlength=n_weeks)
    counts = np.bincount(week, minlength=n_weeks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals / counts


def recent_skill(losses: np.ndarray, reference_losses: np.ndarray, counts: np.ndarray, decay: np.ndarray) -> float:
    """Return 1 - (discounted total log loss) / (discounted total reference log loss); empty weeks count zero."""
    weights = decay * counts
    member_total = np.nansum(weights * losses)
    reference_total = np.nansum(weights * reference_losses)
    return float(1.0 - member_total / reference_total)


class ValidationWeeks:
    """Validation labels with their week index, and the reference forecast for the skill score.

    Weekly counts and the reference log losses are computed once, because every member is
    scored against the same rows.
    """

    def __init__(
        self, labels: np.ndarray, week: np.ndarray, n_weeks: int, reference_rate: float, decay: np.ndarray
    ) -> None:
        self.labels = labels
        self.week = week
        self.n_weeks = n_weeks
        self.decay = decay
        self.counts = np.bincount(week, minlength=n_weeks)
        self.positives = np.bincount(week, weights=labels, minlength=n_weeks).astype(np.int64)

        # The reference forecast is one constant, so its weekly log loss follows from the counts.
        rate = min(max(reference_rate, PROBABILITY_CLIP), 1.0 - PROBABILITY_CLIP)
        totals = -(self.positives * np.log(rate) + (self.counts - self.positives) * np.log1p(-rate))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.reference_losses = totals / self.counts

    def evaluate(self, p: np.ndarray, with_auc: bool) -> dict:
        """Score ``p`` on every validation row and per week, with the discounted skill. ROC-AUC only ``with_auc``."""
        losses = weekly_log_losses(self.labels, p, self.week, self.n_weeks)
        reference = self.reference_losses
        counts = self.counts
        metrics = {
            "log_loss": float(np.nansum(losses * counts) / counts.sum()),
            "brier": float(np.mean((p - self.labels) ** 2)),
            "roc_auc": float(roc_auc_score(self.labels, p)) if with_auc else None,
            "mean_probability": float(np.mean(p)),
            "skill": recent_skill(losses, reference, counts, self.decay),
        }
        metrics["weekly"] = [
            {
                "week": week,
                "decay": float(self.decay[week]),
                "n_rows": int(counts[week]),
                "n_pos": int(self.positives[week]),
                "log_loss": float(losses[week]),
                "reference_log_loss": float(reference[week]),
                "skill": float(1.0 - losses[week] / reference[week]),
            }
            for week in range(self.n_weeks)
        ]
        return metrics


# ---------------------------------------------------------------------------
# Training workers: arrays in shared memory, one task per member.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArraySpec:
    """Name, shape and dtype of a numpy array that a worker can attach to."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class StageSpec:
    """Inputs of one training stage (the validation fit or the refit), shared by all of its member tasks."""

    stage: str
    X: ArraySpec
    labels: ArraySpec
    rows: ArraySpec | None
    validation_rows: ArraySpec | None
    validation_weeks: ArraySpec | None
    n_weeks: int
    reference_rate: float
    scaling: FeatureScaling
    config: EnsembleConfig


@dataclass(frozen=True)
class MemberTask:
    kind: str
    index: int


@dataclass
class MemberResult:
    """A trained member, its corrected validation probabilities (None in the refit stage) and their metrics."""

    member: NetMember | LightGBMMember
    validation_probability: np.ndarray | None
    metrics: dict | None
    seconds: float
    cpu_seconds: float


# Arrays the current process can read, by ArraySpec name: views on shared memory in workers,
# the caller's own arrays when training runs in one process.
LOCAL_ARRAYS: dict[str, np.ndarray] = {}
ATTACHED_BLOCKS: dict[str, SharedMemory] = {}
TRANSFORMED_VALIDATION: dict[str, np.ndarray] = {}


def initialize_worker() -> None:
    """Run in each worker process: one torch thread, so that two workers use two cores."""
    torch.set_num_threads(1)


def read_array(spec: ArraySpec) -> np.ndarray:
    if spec.name not in LOCAL_ARRAYS:
        block = SharedMemory(name=spec.name)
        ATTACHED_BLOCKS[spec.name] = block
        LOCAL_ARRAYS[spec.name] = np.ndarray(spec.shape, dtype=np.dtype(spec.dtype), buffer=block.buf)
    return LOCAL_ARRAYS[spec.name]


def build_member(task: MemberTask, config: EnsembleConfig) -> NetMember | LightGBMMember:
    if task.kind == "net":
        return NetMember(
            hidden_sizes=config.hidden_sizes,
            dropout=config.dropout,
            weight_decay=config.weight_decay,
            epochs=config.epochs,
            patience=config.patience,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            negative_ratio=config.negative_ratio,
            bootstrap_rows=config.net_bootstrap_rows,
            seed=derive_seed(config.seed, NET_STREAM, task.index),
            num_threads=config.num_threads,
        )
    return LightGBMMember(
        num_leaves=config.lgbm_num_leaves,
        n_estimators=config.lgbm_n_estimators,
        learning_rate=config.lgbm_learning_rate,
        min_child_samples=config.lgbm_min_child_samples,
        feature_fraction=config.lgbm_feature_fraction,
        max_bin=config.lgbm_max_bin,
        negative_ratio=config.negative_ratio,
        seed=derive_seed(config.seed, LIGHTGBM_STREAM, task.index),
        num_threads=config.num_threads,
    )


def train_member(task: MemberTask, spec: StageSpec) -> MemberResult:
    """Train one member on the stage's rows and, in the validation stage, score it on the validation rows.

    Runs in a worker process or in the caller's process. Training uses one thread
    in both cases, so the result does not depend on where it runs.
    """
    started = time.perf_counter()
    cpu_started = time.process_time()
    X = read_array(spec.X)
    labels = read_array(spec.labels)
    rows = None if spec.rows is None else read_array(spec.rows)

    member = build_member(task, spec.config)
    if isinstance(member, NetMember):
        member.fit(X, labels, rows, scaling=spec.scaling)
    else:
        member.fit(X, labels, rows, train_threads=1)

    if spec.validation_rows is None or spec.validation_weeks is None:
        return MemberResult(member, None, None, time.perf_counter() - started, time.process_time() - cpu_started)

    validation_rows = read_array(spec.validation_rows)
    probability = predict_validation(member, X, validation_rows, spec)
    weeks = ValidationWeeks(
        labels=labels[validation_rows].astype(np.float64),
        week=read_array(spec.validation_weeks),
        n_weeks=spec.n_weeks,
        reference_rate=spec.reference_rate,
        decay=week_decay(spec.n_weeks, spec.config.weight_half_life_weeks),
    )
    # ROC-AUC sorts every validation row, which would add about a tenth of a second to each of 100 nets.
    metrics = weeks.evaluate(probability, with_auc=task.kind == "lightgbm")
    return MemberResult(member, probability, metrics, time.perf_counter() - started, time.process_time() - cpu_started)


def predict_validation(
    member: NetMember | LightGBMMember, X: np.ndarray, validation_rows: np.ndarray, spec: StageSpec
) -> np.ndarray:
    """Predict the validation rows on one thread. Nets reuse the stage's transformed inputs, cached per process."""
    if isinstance(member, LightGBMMember):
        booster, sample = member.require_fitted()
        return prior_correct(booster.predict(X[validation_rows], num_threads=1), sample.beta)

    key = f"{spec.X.name}/{spec.validation_rows.name}"
    if key not in TRANSFORMED_VALIDATION:
        TRANSFORMED_VALIDATION.clear()
        TRANSFORMED_VALIDATION[key] = spec.scaling.transform(X[validation_rows])
    inputs = TRANSFORMED_VALIDATION[key]

    threads = member.num_threads
    member.num_threads = 1
    try:
        return member.correct_logits(member.predict_logits(inputs))
    finally:
        member.num_threads = threads


def worker_context() -> multiprocessing.context.BaseContext:
    """Return the "forkserver" context with this module preloaded, or "spawn" where forkserver is missing.

    The fork server is a fresh process that imports torch and LightGBM once and forks
    workers before any thread pool exists, so workers start without re-importing them.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def worker_peak_rss_bytes(executor: ProcessPoolExecutor) -> int | None:
    """Return the largest peak resident set size (VmHWM) among the live workers, or None without Linux /proc."""
    peaks = []
    # NOTE: ProcessPoolExecutor has no public list of its workers, so this reads the private _processes.
    for pid in list(getattr(executor, "_processes", None) or {}):
        status = Path(f"/proc/{pid}/status")
        if not status.is_file():
            continue
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) * 1024)
    return max(peaks) if peaks else None


class MemberTrainer:
    """Member-task runner: ``num_threads`` worker processes reading shared arrays, or the caller's process for one."""

    def __init__(self, num_threads: int, shared_bytes: int = 0) -> None:
        self.num_threads = num_threads
        if num_threads > 1 and not shared_memory_fits(shared_bytes):
            logger.warning(
                "shared memory (/dev/shm) has less than the %.2f GB the %d training workers need, so members "
                "train in this process; the fitted ensemble is the same, only slower. Enlarge /dev/shm "
                "(for Docker: --shm-size) to train on %d cores",
                shared_bytes / 1e9, num_threads, num_threads,
            )
            self.num_threads = 1
        self.blocks: list[SharedMemory] = []
        self.local_names: list[str] = []
        self.executor: ProcessPoolExecutor | None = None
        self.worker_peak_rss_bytes: int | None = None

    def __enter__(self) -> MemberTrainer:
        if self.num_threads > 1:
            self.executor = ProcessPoolExecutor(
                max_workers=self.num_threads,
                mp_context=worker_context(),
                initializer=initialize_worker,
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.executor is not None:
            self.worker_peak_rss_bytes = worker_peak_rss_bytes(self.executor)
            self.executor.shutdown(wait=True, cancel_futures=True)
        for block in self.blocks:
            block.close()
            block.unlink()
        for name in self.local_names:
            LOCAL_ARRAYS.pop(name, None)
        TRANSFORMED_VALIDATION.clear()

    def share(self, array: np.ndarray) -> ArraySpec:
        """Make ``array`` readable by the workers: a shared-memory copy, or a reference with one thread.

        An array that ``ml.shared_arrays.SharedArrays`` allocated is already shared: the workers get its name.
        """
        contiguous = np.ascontiguousarray(array)
        if self.executor is not None and (name := shared_name(contiguous)) is not None:
            return ArraySpec(name, contiguous.shape, contiguous.dtype.str)
        if self.executor is None:
            name = f"riskcast-{uuid.uuid4().hex}"
            LOCAL_ARRAYS[name] = contiguous
            self.local_names.append(name)
            return ArraySpec(name, contiguous.shape, contiguous.dtype.str)

        block = SharedMemory(create=True, size=max(contiguous.nbytes, 1))
        self.blocks.append(block)
        np.ndarray(contiguous.shape, dtype=contiguous.dtype, buffer=block.buf)[...] = contiguous
        return ArraySpec(block.name, contiguous.shape, contiguous.dtype.str)

    def run(self, tasks: Sequence[MemberTask], spec: StageSpec) -> Iterator[MemberResult]:
        """Yield the results in task order, whatever order the workers finish in."""
        if self.executor is None:
            for task in tasks:
                yield train_member(task, spec)
            return
        yield from self.executor.map(train_member, tasks, [spec] * len(tasks))


# ---------------------------------------------------------------------------
# The ensemble.
# ---------------------------------------------------------------------------


class RiskEnsemble:
    """Bagged nets plus bagged LightGBM with recent-skill weights. The module docstring states the rule."""

    def __init__(self, config: EnsembleConfig | None = None) -> None:
        self.config = config if config is not None else EnsembleConfig()
        self.nets: list[NetMember] = []
        self.lightgbm_members: list[LightGBMMember] = []
        self.feature_names: list[str] = []
        self.weights: dict[str, float] = {}
        self.member_report: list[dict] = []
        self.validation_metrics: dict[str, dict] = {}
        self.training_seconds: dict[str, float] = {}
        self.worker_peak_rss_bytes: int | None = None
        self._stacked: tuple[list[NetMember], StackedNets | None] | None = None

    @property
    def lightgbm(self) -> LightGBMMember | None:
        """The first LightGBM member, or None before fitting."""
        return self.lightgbm_members[0] if self.lightgbm_members else None

    def fit(self, X: np.ndarray, y: np.ndarray, hours: np.ndarray, feature_names: list[str]) -> RiskEnsemble:
        """Fit members before the latest weeks, weight them on those weeks, then optionally refit on all rows."""
        labels = check_training_inputs(X, y, hours, feature_names)
        config = self.config
        X32 = np.asarray(X, dtype=np.float32)
        started = time.perf_counter()

        split = recent_weeks_split(np.asarray(hours), config.validation_weeks, config.validation_fraction)
        check_split_positives(labels, split)
        fit_rows = np.flatnonzero(split.fit)
        validation_rows = np.flatnonzero(split.validation)
        logger.info(
            "validation: %d rows in %d weeks (hours %d..%d), fit: %d rows; %d nets and %d lightgbm members on %d workers",
            validation_rows.shape[0], split.n_weeks, split.first_validation_hour, split.last_hour,
            fit_rows.shape[0], config.n_nets, config.lgbm_members, config.num_threads,
        )

        # Shared arrays: the features, the labels, and the fit, validation and week row indices.
        # An X allocated in shared memory (ml.shared_arrays) is not copied, so it needs no more room there.
        shared_bytes = (0 if shared_name(X32) else X32.nbytes) + labels.nbytes + 3 * 8 * X32.shape[0]
        with MemberTrainer(config.num_threads, shared_bytes) as trainer:
            X_spec = trainer.share(X32)
            labels_spec = trainer.share(labels)

            stage = self.validation_stage(trainer, X32, X_spec, labels_spec, labels, split, fit_rows, validation_rows)
            nets, lightgbm_members = self.weigh_members(trainer, stage, labels[validation_rows], split)
            self.training_seconds["validation_stage"] = time.perf_counter() - started

            if config.refit_full:
                refit_started = time.perf_counter()
                logger.info("refitting every member on all %d rows with the same seeds", X32.shape[0])
                nets, lightgbm_members = self.refit_members(trainer, X32, X_spec, labels_spec)
                self.training_seconds["refit_stage"] = time.perf_counter() - refit_started

        self.worker_peak_rss_bytes = trainer.worker_peak_rss_bytes
        self.nets = nets
        self.lightgbm_members = lightgbm_members
        self.feature_names = list(feature_names)
        self.training_seconds["total"] = time.perf_counter() - started
        logger.info("ensemble trained in %.1f s: weights %s", self.training_seconds["total"], self.weights)
        return self

    def member_tasks(self) -> list[MemberTask]:
        # LightGBM first: the longest tasks start first, so the workers finish close together.
        lightgbm_tasks = [MemberTask("lightgbm", index) for index in range(self.config.lgbm_members)]
        net_tasks = [MemberTask("net", index) for index in range(self.config.n_nets)]
        return lightgbm_tasks + net_tasks

    def validation_stage(
        self,
        trainer: MemberTrainer,
        X32: np.ndarray,
        X_spec: ArraySpec,
        labels_spec: ArraySpec,
        labels: np.ndarray,
        split: RecentWeeksSplit,
        fit_rows: np.ndarray,
        validation_rows: np.ndarray,
    ) -> StageSpec:
        return StageSpec(
            stage="validation",
            X=X_spec,
            labels=labels_spec,
            rows=trainer.share(fit_rows),
            validation_rows=trainer.share(validation_rows),
            validation_weeks=trainer.share(split.week[validation_rows]),
            n_weeks=split.n_weeks,
            reference_rate=float(labels[fit_rows].mean()),
            scaling=fit_scaling_on_rows(X32, fit_rows, derive_seed(self.config.seed, SCALING_STREAM)),
            config=self.config,
        )

    def weigh_members(
        self, trainer: MemberTrainer, stage: StageSpec, y_validation: np.ndarray, split: RecentWeeksSplit
    ) -> tuple[list[NetMember], list[LightGBMMember]]:
        """Train the members on the fit rows, score them per validation week and set ``weights`` and the reports."""
        config = self.config
        nets: list[NetMember] = []
        lightgbm_members: list[LightGBMMember] = []
        rows: list[dict] = []
        sums = {name: np.zeros(y_validation.shape[0], dtype=np.float64) for name in MEMBER_GROUPS}

        # Sums run in task order, so the averages are bit-identical for any worker count.
        for task, result in zip(self.member_tasks(), trainer.run(self.member_tasks(), stage), strict=True):
            group = "nets" if task.kind == "net" else "lightgbm"
            sums[group] += result.validation_probability
            rows.append(member_row(task, result))
            if task.kind == "net":
                nets.append(result.member)
            else:
                lightgbm_members.append(result.member)

        weeks = ValidationWeeks(
            labels=y_validation.astype(np.float64),
            week=split.week[split.validation],
            n_weeks=split.n_weeks,
            reference_rate=stage.reference_rate,
            decay=week_decay(split.n_weeks, config.weight_half_life_weeks),
        )
        probabilities = {"nets": sums["nets"] / len(nets), "lightgbm": sums["lightgbm"] / len(lightgbm_members)}
        metrics = {name: weeks.evaluate(p, with_auc=True) for name, p in probabilities.items()}
        self.weights = skill_weights({name: metrics[name]["skill"] for name in MEMBER_GROUPS}, config.weight_floor)

        ensemble_probability = combine(self.weights, probabilities["nets"], probabilities["lightgbm"])
        metrics["ensemble"] = weeks.evaluate(ensemble_probability, with_auc=True)
        metrics["reference"] = weeks.evaluate(np.full(y_validation.shape[0], stage.reference_rate), with_auc=False)
        for name, values in metrics.items():
            values["n_rows"] = int(y_validation.shape[0])
            values["n_pos"] = int(y_validation.sum())
            values["base_rate"] = float(y_validation.mean())
            values["weight"] = self.weights.get(name)
        metrics["reference"]["reference_rate"] = stage.reference_rate
        self.validation_metrics = metrics

        group_sizes = {"net": len(nets), "lightgbm": len(lightgbm_members)}
        for row in rows:
            group = "nets" if row["kind"] == "net" else "lightgbm"
            row["weight"] = self.weights[group] / group_sizes[row["kind"]]
        self.member_report = rows
        log_validation(metrics, self.weights)
        return nets, lightgbm_members

    def refit_members(
        self, trainer: MemberTrainer, X32: np.ndarray, X_spec: ArraySpec, labels_spec: ArraySpec
    ) -> tuple[list[NetMember], list[LightGBMMember]]:
        """Train fresh members with the same seeds on every row and record their sample counts in the report."""
        stage = StageSpec(
            stage="refit",
            X=X_spec,
            labels=labels_spec,
            rows=None,
            validation_rows=None,
            validation_weeks=None,
            n_weeks=0,
            reference_rate=float("nan"),
            scaling=fit_scaling_on_rows(X32, None, derive_seed(self.config.seed, SCALING_STREAM)),
            config=self.config,
        )
        nets: list[NetMember] = []
        lightgbm_members: list[LightGBMMember] = []
        for row, result in zip(self.member_report, trainer.run(self.member_tasks(), stage), strict=True):
            sample = result.member.sample
            row["refit_n_pos"] = sample.n_pos
            row["refit_n_neg_sampled"] = sample.n_neg_sampled
            row["refit_beta"] = sample.beta
            row["refit_seconds"] = result.seconds
            row["refit_cpu_seconds"] = result.cpu_seconds
            if isinstance(result.member, NetMember):
                row["refit_best_epoch"] = result.member.best_epoch
                nets.append(result.member)
            else:
                lightgbm_members.append(result.member)
        return nets, lightgbm_members

    def predict_proba(self, X: np.ndarray | BlockRows) -> np.ndarray:
        """Return float64 probabilities of at least one event per row, corrected to the population base rate.

        ``X`` is the full matrix, or a scoring matrix kept in its state and target blocks
        (``ml.block_rows``): the nets then evaluate their first layer once per block row, and
        only LightGBM reads the expanded matrix.
        """
        self.require_fitted()
        if isinstance(X, BlockRows):
            return self.predict_proba_blocks(X)
        check_matrix_shape(X, len(self.feature_names))
        check_infinite_columns(X, self.feature_names)

        # Averaged in member order exactly as in weigh_members, so validation metrics describe these outputs.
        nets_probability = self.nets_probability(X)
        lightgbm_probability = np.mean([member.predict_proba(X) for member in self.lightgbm_members], axis=0)
        return combine(self.weights, nets_probability, lightgbm_probability)

    def predict_proba_blocks(self, rows: BlockRows) -> np.ndarray:
        """``predict_proba`` of a block scoring matrix; equal to it on ``rows.dense()`` up to float32 rounding."""
        if rows.shape[1] != len(self.feature_names):
            raise ValueError(f"the scoring matrix has {rows.shape[1]} columns but the ensemble was trained on "
                             f"{len(self.feature_names)}; build it with the model's feature_names")
        check_infinite_columns(rows.state, self.feature_names[:rows.n_state_columns])
        check_infinite_columns(rows.target, self.feature_names[rows.n_state_columns:])

        dense = rows.dense()
        stacked = self.stacked_nets()
        if stacked is None:
            nets_probability = self.nets_probability(dense)
        else:
            nets_probability = stacked.mean_probability(rows, self.config.num_threads)
        lightgbm_probability = np.mean([member.predict_proba(dense) for member in self.lightgbm_members], axis=0)
        return combine(self.weights, nets_probability, lightgbm_probability)

    def stacked_nets(self) -> StackedNets | None:
        """Return the nets stacked for block scoring (built once per list of nets), or None when they differ in shape."""
        if self._stacked is None or self._stacked[0] is not self.nets:
            self._stacked = (self.nets, StackedNets.of(self.nets))
        return self._stacked[1]

    def nets_probability(self, X: np.ndarray) -> np.ndarray:
        """Average the nets' probabilities, transforming X once when all nets share one scaling."""
        first_scaling = self.nets[0].scaling
        if not all(net.scaling.same_as(first_scaling) for net in self.nets):
            return np.mean([net.predict_proba(X) for net in self.nets], axis=0)

        inputs = torch.from_numpy(first_scaling.transform(X))
        total = np.zeros(X.shape[0], dtype=np.float64)
        with torch_threads(self.config.num_threads), torch.inference_mode():
            for net in self.nets:
                module, _ = net.require_fitted()
                total += net.correct_logits(module(inputs).numpy())
        return total / len(self.nets)

    def require_fitted(self) -> None:
        if not self.lightgbm_members or not self.nets or not self.weights:
            raise RuntimeError("RiskEnsemble is not fitted; call fit() or RiskEnsemble.load() first")

    def save(self, folder: Path, after_member: Callable[[str], None] | None = None) -> None:
        """Write ensemble.json and one subfolder per member (net_000, ..., lightgbm_00, ...) into ``folder``.

        ``after_member(name)`` runs after each member's subfolder is written.
        """
        self.require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)

        net_folders = [f"net_{bag:03d}" for bag in range(len(self.nets))]
        lightgbm_folders = [f"lightgbm_{bag:02d}" for bag in range(len(self.lightgbm_members))]
        members = [*zip(self.nets, net_folders, strict=True),
                   *zip(self.lightgbm_members, lightgbm_folders, strict=True)]
        for member, name in members:
            member.save(folder / name)
            if after_member is not None:
                after_member(name)

        document = {
            "format_version": ENSEMBLE_FORMAT_VERSION,
            "config": self.config.to_json(),
            "feature_names": self.feature_names,
            "weights": self.weights,
            "weighting_rule": self.config.weighting_rule(),
            "member_folders": {"nets": net_folders, "lightgbm": lightgbm_folders},
            "member_report": self.member_report,
            "validation_metrics": self.validation_metrics,
            "training_seconds": self.training_seconds,
        }
        (folder / "ensemble.json").write_text(json.dumps(document, indent=2))
        logger.info("saved ensemble with %d nets and %d lightgbm members to %s",
                    len(self.nets), len(self.lightgbm_members), folder)

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
        ensemble.training_seconds = document.get("training_seconds", {})

        member_folders = document["member_folders"]
        ensemble.nets = [NetMember.load(folder / name) for name in member_folders["nets"]]
        ensemble.lightgbm_members = [LightGBMMember.load(folder / name) for name in member_folders["lightgbm"]]

        return ensemble


def combine(weights: dict[str, float], nets_probability: np.ndarray, lightgbm_probability: np.ndarray) -> np.ndarray:
    return weights["nets"] * nets_probability + weights["lightgbm"] * lightgbm_probability


def member_row(task: MemberTask, result: MemberResult) -> dict:
    """Build the report row of one member: its sample counts, its validation metrics and weekly figures."""
    member = result.member
    sample = member.sample
    row = {
        "name": f"{task.kind}_{task.index:03d}" if task.kind == "net" else f"lightgbm_{task.index:02d}",
        "kind": task.kind,
        "bag": task.index,
        "seed": member.seed,
        **{key: result.metrics[key] for key in ("log_loss", "brier", "roc_auc", "mean_probability", "skill")},
        "weekly": result.metrics["weekly"],
        "n_pos": sample.n_pos,
        "n_neg_total": sample.n_neg_total,
        "n_neg_sampled": sample.n_neg_sampled,
        "beta": sample.beta,
        "seconds": result.seconds,
        "cpu_seconds": result.cpu_seconds,
    }
    if isinstance(member, NetMember):
        row["bag_rows"] = sample.bag_rows
        row["best_epoch"] = member.best_epoch
        row["epochs_run"] = member.epochs_run
    return row


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
    """Raise ``ValueError`` naming the columns of X that contain +inf or -inf.

    The rows are scanned in chunks: a mask of the whole matrix would take a quarter of its size.
    """
    infinite_per_column = np.zeros(X.shape[1], dtype=np.int64)
    for start in range(0, X.shape[0], PREDICT_CHUNK_ROWS):
        infinite_per_column += np.isinf(X[start:start + PREDICT_CHUNK_ROWS]).sum(axis=0)
    if infinite_per_column.any():
        columns = [feature_names[i] for i in np.flatnonzero(infinite_per_column)]
        raise ValueError(
            f"X contains {int(infinite_per_column.sum())} +inf/-inf values in columns {columns}; "
            "replace them with NaN (treated as missing) or finite values"
        )


def check_split_positives(labels: np.ndarray, split: RecentWeeksSplit) -> None:
    """Raise ``ValueError`` unless both sides of the recent-weeks split contain positives and negatives."""
    n_total = int(labels.sum())
    n_fit = int(labels[split.fit].sum())
    n_validation = int(labels[split.validation].sum())
    n_validation_rows = int(split.validation.sum())

    if n_validation == 0:
        raise ValueError(
            f"the validation part, the latest {split.last_hour - split.first_validation_hour + 1} hours "
            f"in {split.n_weeks} weeks ({n_validation_rows} rows), has 0 positives, "
            f"and the whole training set has {n_total}; use a longer training window or more validation_weeks"
        )
    if n_validation == n_validation_rows:
        raise ValueError(
            f"the validation part has only positives ({n_validation} rows), so log-loss skill is undefined; "
            "check that y marks non-events with 0"
        )
    if n_fit == 0:
        raise ValueError(
            f"the fit part (before hour {split.first_validation_hour}, {int(split.fit.sum())} rows) has 0 positives, "
            f"and the whole training set has {n_total}; use a longer training window or fewer validation_weeks"
        )


def log_validation(metrics: dict[str, dict], weights: dict[str, float]) -> None:
    for name, values in metrics.items():
        auc = values["roc_auc"]
        logger.info(
            "validation %s: rows=%d positives=%d log_loss=%.5f skill=%.4f roc_auc=%s mean_p=%.5f weekly skill %s",
            name,
            values["n_rows"],
            values["n_pos"],
            values["log_loss"],
            values["skill"],
            "n/a" if auc is None else f"{auc:.4f}",
            values["mean_probability"],
            [round(week["skill"], 4) for week in values["weekly"]],
        )
    logger.info("ensemble weights (recent log-loss skill): nets=%.4f lightgbm=%.4f", weights["nets"], weights["lightgbm"])
