"""Ensemble training time on a synthetic training set the size of one Chicago refresh window.

The training set has one row per (cell, hourly cut-off) for 801 census tracts and 26 weeks
(3,498,768 rows), 60 float32 features and about 3% positives. The labels come from a
logistic model with a non-linear part, so both nets and LightGBM have something to learn. Four
weather-like columns are 5% missing. The script trains the ensemble with the default
``EnsembleConfig`` (or the options given), then scores 801 cells x 72 hours, and prints:

- training time, split into the validation stage and the refit;
- peak resident memory of this process and of the largest worker process;
- predictions per second for the 57,672 scoring rows.

``--compare-threads`` trains twice, with one worker and with ``--threads`` workers, checks
that the predictions are byte-identical and prints the speed-up. Run from the repository root:

    .venv/bin/python benchmarks/train_ensemble.py [--n-nets 100] [--compare-threads] [--record]

``--record`` adds the figures to docs/benchmarks.md (newest first).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from ml.ensemble import EnsembleConfig, RiskEnsemble  # noqa: E402

N_CELLS = 801
N_WEEKS = 26
N_FEATURES = 60
HORIZON_HOURS = 72
FIRST_HOUR = 403_224  # 2016-01-01 00:00 UTC in hours since the Unix epoch
MISSING_COLUMNS = (10, 11, 12, 13)
INTERCEPT = -4.32


def build_training_set(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (features, labels, target hours) for N_CELLS cells x N_WEEKS weeks of hourly cut-offs."""
    rng = np.random.default_rng(seed)
    n_hours = N_WEEKS * 168
    n_rows = n_hours * N_CELLS

    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    hours = np.repeat(np.arange(FIRST_HOUR, FIRST_HOUR + n_hours, dtype=np.int64), N_CELLS)
    X[:, 0] = np.sin(2 * np.pi * (hours % 24) / 24).astype(np.float32)
    X[:, 1] = np.tile(rng.standard_normal(N_CELLS, dtype=np.float32), n_hours)

    coefficients = np.zeros(N_FEATURES)
    coefficients[:10] = [0.5, 0.8, 0.4, -0.3, 0.3, 0.2, -0.2, 0.15, 0.1, -0.1]
    logit = INTERCEPT + X.astype(np.float64) @ coefficients + 0.4 * (X[:, 2] * X[:, 3]) + 0.3 * np.abs(X[:, 4])
    labels = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)

    for column in MISSING_COLUMNS:
        X[rng.random(n_rows) < 0.05, column] = np.nan
    return X, labels, hours


def peak_memory_gb(ensemble: RiskEnsemble) -> tuple[float, float]:
    """Return the peak resident set size of this process and of the largest training worker, in GB.

    Both include the pages of the shared feature matrix that the process touched, so their
    sum counts those pages twice.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    worker = (ensemble.worker_peak_rss_bytes or 0) / 1e9
    return own, worker


def train(config: EnsembleConfig, X: np.ndarray, y: np.ndarray, hours: np.ndarray) -> tuple[RiskEnsemble, float]:
    started = time.perf_counter()
    ensemble = RiskEnsemble(config).fit(X, y, hours, [f"x{i:02d}" for i in range(N_FEATURES)])
    return ensemble, time.perf_counter() - started


def score(ensemble: RiskEnsemble, X: np.ndarray) -> tuple[np.ndarray, float]:
    """Score N_CELLS x HORIZON_HOURS rows, the size of one 72-hour forecast, and return the best of 5 timings."""
    rows = X[:N_CELLS * HORIZON_HOURS]
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        probabilities = ensemble.predict_proba(rows)
        timings.append(time.perf_counter() - started)
    return probabilities, min(timings)


def print_member_seconds(ensemble: RiskEnsemble) -> None:
    """Print the median and total seconds per member kind, for each stage, as measured inside the workers."""
    for kind in ("net", "lightgbm"):
        rows = [row for row in ensemble.member_report if row["kind"] == kind]
        for key in ("seconds", "cpu_seconds", "refit_seconds", "refit_cpu_seconds"):
            values = [row[key] for row in rows if key in row]
            if values:
                print(f"{kind} {key}: median {np.median(values):.2f} s, total {np.sum(values):.1f} s over {len(values)}")


def score_on_one_thread(ensemble: RiskEnsemble, X: np.ndarray) -> float:
    """Time ``score`` with one prediction thread, then restore the ensemble's thread settings."""
    config = ensemble.config
    ensemble.config = replace(config, num_threads=1)
    for member in ensemble.lightgbm_members:
        member.num_threads = 1
    try:
        return score(ensemble, X)[1]
    finally:
        ensemble.config = config
        for member in ensemble.lightgbm_members:
            member.num_threads = config.num_threads


def report(config: EnsembleConfig, X: np.ndarray, y: np.ndarray, figures: dict) -> str:
    """Format the figures as a docs/benchmarks.md entry."""
    from ingest_crimes import commit

    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    ensemble: RiskEnsemble = figures["ensemble"]
    seconds = ensemble.training_seconds
    lines = [
        f"## {date.today().isoformat()}: ensemble training on a synthetic Chicago-size refresh window",
        "",
        f"- Command: `.venv/bin/python benchmarks/train_ensemble.py {' '.join(sys.argv[1:])}`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}; load average {figures['load_before']:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after the run (other processes shared the cores when it is above 0)",
        f"- Input: synthetic, {X.shape[0]:,} rows ({N_CELLS} cells x {N_WEEKS} weeks of hourly cut-offs), "
        f"{X.shape[1]} float32 features, {int(y.sum()):,} positives (base rate {y.mean():.4f})",
        f"- Ensemble: {config.n_nets} nets {list(config.hidden_sizes)}, at most {config.epochs} epochs, "
        f"{config.net_bootstrap_rows} bootstrap rows each; LightGBM members: {config.lgbm_members} x "
        f"{config.lgbm_n_estimators} trees; {config.validation_weeks} validation weeks; refit on the whole window",
        "",
        "| figure | value |",
        "|---|---|",
        f"| training time, {config.num_threads} workers | {seconds['total']:.1f} s "
        f"(validation stage {seconds['validation_stage']:.1f} s, refit {seconds.get('refit_stage', 0.0):.1f} s) |",
    ]
    if "one_worker_seconds" in figures:
        lines.append(f"| training time, 1 worker | {figures['one_worker_seconds']:.1f} s "
                     f"(speed-up {figures['one_worker_seconds'] / seconds['total']:.2f}x, "
                     f"predictions identical: {figures['identical']}) |")
    lines += [
        f"| peak RSS, main process / largest worker | {figures['peak_own_gb']:.2f} GB / "
        f"{figures['peak_worker_gb']:.2f} GB |",
        f"| scoring {N_CELLS} cells x {HORIZON_HOURS} hours | {figures['score_seconds'] * 1000:.0f} ms, "
        f"{N_CELLS * HORIZON_HOURS / figures['score_seconds']:,.0f} predictions per second with "
        f"{config.num_threads} threads; {figures['score_seconds_one_thread'] * 1000:.0f} ms with 1 thread |",
        f"| CPU time in the workers, nets / LightGBM | {figures['net_cpu_seconds']:.1f} s / "
        f"{figures['lightgbm_cpu_seconds']:.1f} s (both stages) |",
        f"| validation weights | nets {ensemble.weights['nets']:.3f}, lightgbm {ensemble.weights['lightgbm']:.3f} |",
        f"| validation log-loss skill | nets {ensemble.validation_metrics['nets']['skill']:.4f}, "
        f"lightgbm {ensemble.validation_metrics['lightgbm']['skill']:.4f}, "
        f"ensemble {ensemble.validation_metrics['ensemble']['skill']:.4f} |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-nets", type=int, default=EnsembleConfig.n_nets, help="number of nets (default %(default)s)")
    parser.add_argument("--threads", type=int, default=EnsembleConfig.num_threads,
                        help="training worker processes (default %(default)s)")
    parser.add_argument("--compare-threads", action="store_true",
                        help="also train with one worker, check identical predictions and print the speed-up")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data and the ensemble")
    parser.add_argument("--record", action="store_true", help="add the figures to docs/benchmarks.md")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    X, y, hours = build_training_set(arguments.seed)
    print(f"training set: {X.shape[0]:,} rows, {X.shape[1]} features, {int(y.sum()):,} positives "
          f"(base rate {y.mean():.4f})", flush=True)
    config = EnsembleConfig(n_nets=arguments.n_nets, num_threads=arguments.threads, seed=arguments.seed)

    figures: dict = {"load_before": os.getloadavg()[0]}
    ensemble, seconds = train(config, X, y, hours)
    figures["ensemble"] = ensemble
    print(f"training with {config.num_threads} workers: {seconds:.1f} s {ensemble.training_seconds}", flush=True)
    print_member_seconds(ensemble)
    for kind in ("net", "lightgbm"):
        figures[f"{kind}_cpu_seconds"] = sum(
            row["cpu_seconds"] + row.get("refit_cpu_seconds", 0.0)
            for row in ensemble.member_report if row["kind"] == kind
        )
    probabilities, figures["score_seconds"] = score(ensemble, X)
    figures["score_seconds_one_thread"] = score_on_one_thread(ensemble, X)

    if arguments.compare_threads:
        single, single_seconds = train(replace(config, num_threads=1), X, y, hours)
        single_probabilities, _ = score(single, X)
        figures["one_worker_seconds"] = single_seconds
        figures["identical"] = probabilities.tobytes() == single_probabilities.tobytes()
        print(f"training with 1 worker: {single_seconds:.1f} s, speed-up {single_seconds / seconds:.2f}x, "
              f"identical predictions: {figures['identical']}", flush=True)

    figures["peak_own_gb"], figures["peak_worker_gb"] = peak_memory_gb(ensemble)
    text = report(config, X, y, figures)
    print(text)
    if arguments.record:
        from ingest_crimes import record

        record(text)


if __name__ == "__main__":
    main()
