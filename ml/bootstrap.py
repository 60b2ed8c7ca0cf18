"""Paired bootstrap over days: confidence intervals and p-values for comparing two forecasts.

The bootstrap (Efron & Tibshirani 1993, An Introduction to the Bootstrap, Chapman & Hall)
estimates the sampling distribution of a statistic by recomputing it on samples drawn with
replacement from the data. Here the resampled units are whole days: a resample draws as many
days as there are, with replacement, and keeps every cell and hour of each drawn day. Cells and
hours within a day share weather, events and reporting, so they are not independent. Keeping
each day whole carries that dependence into every resample, as a block bootstrap with one-day
blocks does. The comparison is paired: both models are scored on the same resampled days, so
the difference excludes the day-to-day variation that moves both models alike.

Intervals are 95% percentile intervals of the resampled values. The two-sided p-value for
"difference = 0" is

    p = min(1, 2 * min(1 + #{d_b <= 0}, 1 + #{d_b >= 0}) / (B + 1))

over the B resampled differences d_b. The added ones keep p above 0 with finitely many
resamples, so the smallest p-value is 2 / (B + 1). A p-value below 0.05 then means, up to
that correction, that 0 lies outside the 95% percentile interval.

Every metric is a ratio of sums over rows, so each resample is computed from per-day sums,
weighted by how often each day was drawn, instead of from the rows:

- hit rate, PAI, PEI and PEI*: per day, crimes, area, crimes captured and area flagged by the
  model, and the captures of the two perfect-knowledge rankings of `ml.metrics.hotspot_curve`;
- Brier score and log loss: per day, the sums of squared errors and log losses, and rows;
- ROC-AUC and PR-AUC: per day, histograms of positive and negative rows over one fixed grid of
  score quantile bins per model (2,000 by default), computed once from all rows.

Binning treats scores in the same bin as tied, which sklearn counts as half a correctly ranked
pair for ROC-AUC. The binned ROC-AUC therefore differs from the exact one by at most
0.5 * sum_b(pos_b * neg_b) / (P * N), and `roc_auc_binning_bound` computes that bound. It is at
most half the largest share of negatives in one bin, about 0.00025 with 2,000 quantile bins. The
binned average precision has no such simple bound, and on the synthetic data of the tests it
stays within 0.002 of sklearn's. Point estimates are computed exactly from the rows, and only
the resampled values use the bins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl

from ml.metrics import (
    HotspotInputs,
    as_finite_float,
    as_probabilities,
    as_ticks,
    as_1d,
    check_same_length,
    check_share,
    hotspot_inputs,
    log_losses,
    nan_or_nat,
    rank_cells,
    ratio_or_nan,
    squared_errors,
)

logger = logging.getLogger(__name__)

METRICS = ("roc_auc", "pr_auc", "pai", "hit_rate", "pei", "pei_star", "brier", "log_loss")
DEFAULT_SCORE_BINS = 2000
INTERVAL_PERCENTILES = (2.5, 97.5)


@dataclass(frozen=True)
class ObservedDays:
    """Per-day sums that do not depend on a model.

    `max_captured` is the most crimes the area budget of the coverage can hold
    (`RankedCells.best_capture`).
    """

    rows: np.ndarray
    crimes: np.ndarray
    area: np.ndarray
    max_captured: np.ndarray


@dataclass(frozen=True)
class ModelDays:
    """Per-day sums of one model, and its exact estimates of the row-level metrics.

    `positives` and `negatives` have one row per day and one column per score
    bin, in increasing score. `best_captured` is the most crimes the area the
    model flagged could hold. The probability sums are None without probabilities.
    """

    captured: np.ndarray
    flagged_area: np.ndarray
    best_captured: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    squared_error: np.ndarray | None
    log_loss: np.ndarray | None
    exact: dict[str, float | None]


def paired_day_bootstrap(
    day_ids: np.ndarray,
    slice_ids: np.ndarray,
    crime_count: np.ndarray,
    area_km2: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    probability_a: np.ndarray | None = None,
    probability_b: np.ndarray | None = None,
    coverage: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    n_score_bins: int = DEFAULT_SCORE_BINS,
) -> pl.DataFrame:
    """Compare models a and b over the same rows with a paired bootstrap over days.

    Rows are cell-hours (or cell-periods) aligned across all arrays. `day_ids`
    gives each row's day, the resampling unit, and `slice_ids` its forecast map,
    within which hotspots are chosen at `coverage` of the area. Every slice must
    lie within one day. Scores rank cells, and the optional probabilities feed
    the Brier score and log loss.

    Returns one row per metric in METRICS with columns metric, estimate_a,
    estimate_b, difference (a - b), a_ci_low, a_ci_high, b_ci_low, b_ci_high,
    diff_ci_low, diff_ci_high, p_value, n_days and n_boot. The Brier and log loss
    rows hold nulls unless both probabilities are given. A value is null where
    the metric is undefined, for example an AUC on rows of one class.
    """
    check_share(coverage, "coverage")
    check_whole_number(n_boot, "n_boot")
    inputs, day_number, n_days = day_layout(day_ids, slice_ids, crime_count, area_km2)
    observed = observed_days(inputs, day_number, n_days, coverage)

    with_probabilities = probability_a is not None and probability_b is not None
    model_a = model_days(inputs, day_number, n_days, coverage, score_a, probability_a if with_probabilities else None, "a", n_score_bins)
    model_b = model_days(inputs, day_number, n_days, coverage, score_b, probability_b if with_probabilities else None, "b", n_score_bins)

    weights = resample_weights(n_days, n_boot, seed)
    estimates_a = point_estimates(observed, model_a)
    estimates_b = point_estimates(observed, model_b)
    resampled_a = resampled_metrics(weights, observed, model_a)
    resampled_b = resampled_metrics(weights, observed, model_b)

    rows = []
    for metric in METRICS:
        estimate_a = estimates_a[metric]
        estimate_b = estimates_b[metric]
        difference = None if estimate_a is None or estimate_b is None else estimate_a - estimate_b
        distribution_a = resampled_a[metric]
        distribution_b = resampled_b[metric]
        differences = distribution_a - distribution_b
        rows.append({
            "metric": metric,
            "estimate_a": estimate_a,
            "estimate_b": estimate_b,
            "difference": difference,
            **interval(distribution_a, "a"),
            **interval(distribution_b, "b"),
            **interval(differences, "diff"),
            "p_value": bootstrap_p_value(differences),
            "n_days": n_days,
            "n_boot": int(n_boot),
        })
        log_undefined_resamples(metric, differences)

    logger.info("Paired day bootstrap: %d rows, %d days, %d resamples", day_number.size, n_days, n_boot)
    return pl.DataFrame(rows, schema=comparison_schema(), orient="row")


def day_bootstrap_ci(
    day_ids: np.ndarray,
    slice_ids: np.ndarray,
    crime_count: np.ndarray,
    area_km2: np.ndarray,
    score: np.ndarray,
    probability: np.ndarray | None = None,
    coverage: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    n_score_bins: int = DEFAULT_SCORE_BINS,
) -> pl.DataFrame:
    """Compute 95% day-bootstrap intervals for one model's metrics.

    Returns one row per metric in METRICS with columns metric, estimate, ci_low,
    ci_high, n_days and n_boot, resampling as `paired_day_bootstrap` does.
    """
    check_share(coverage, "coverage")
    check_whole_number(n_boot, "n_boot")
    inputs, day_number, n_days = day_layout(day_ids, slice_ids, crime_count, area_km2)
    observed = observed_days(inputs, day_number, n_days, coverage)
    model = model_days(inputs, day_number, n_days, coverage, score, probability, "", n_score_bins)

    weights = resample_weights(n_days, n_boot, seed)
    estimates = point_estimates(observed, model)
    resampled = resampled_metrics(weights, observed, model)

    rows = []
    for metric in METRICS:
        low, high = percentile_interval(resampled[metric])
        rows.append({
            "metric": metric,
            "estimate": estimates[metric],
            "ci_low": low,
            "ci_high": high,
            "n_days": n_days,
            "n_boot": int(n_boot),
        })
    schema = {"metric": pl.String, "estimate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
              "n_days": pl.Int64, "n_boot": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def comparison_schema() -> dict[str, pl.DataType]:
    """Return the column types of the `paired_day_bootstrap` table."""
    floats = ["estimate_a", "estimate_b", "difference", "a_ci_low", "a_ci_high", "b_ci_low", "b_ci_high",
              "diff_ci_low", "diff_ci_high", "p_value"]
    return {"metric": pl.String, **{name: pl.Float64 for name in floats}, "n_days": pl.Int64, "n_boot": pl.Int64}


# Per-day sufficient statistics


def day_layout(
    day_ids: np.ndarray,
    slice_ids: np.ndarray,
    crime_count: np.ndarray,
    area_km2: np.ndarray,
) -> tuple[HotspotInputs, np.ndarray, int]:
    """Validate the observed inputs and number the days 0, 1, ... in increasing day id.

    Raises ValueError when a slice spans two days, because resampling days
    would then split that slice's hotspot selection.
    """
    inputs = hotspot_inputs(crime_count, area_km2, slice_ids, "paired_day_bootstrap")
    days = as_day_ids(day_ids)
    check_same_length(day_ids=days, crime_count=inputs.crimes)

    day_number = (pl.Series("day", days).rank("dense").cast(pl.Int64) - 1).to_numpy()
    n_days = int(day_number.max()) + 1

    spans = (
        pl.DataFrame({"slice": inputs.slices, "day": day_number})
        .group_by("slice")
        .agg(pl.col("day").n_unique().alias("n_days"))
        .filter(pl.col("n_days") > 1)
    )
    if spans.height:
        raise ValueError(
            f"Slice {spans['slice'][0]!r} spans {spans['n_days'][0]} days. Each forecast map must lie within "
            "one day: pass the day of each slice's start as day_ids."
        )
    return inputs, day_number, n_days


def as_day_ids(values: np.ndarray) -> np.ndarray:
    """Convert day ids to a 1-D array, raising ValueError on a missing (None, NaN or NaT) id."""
    array = as_1d(values, "day_ids")

    missing = nan_or_nat(array)
    if missing is None:
        missing = pl.Series(array).is_null().to_numpy()

    if missing.any():
        raise ValueError(f"day_ids has a missing id at row {int(np.flatnonzero(missing)[0])}. Give every row its day.")
    return as_ticks(array)


def observed_days(inputs: HotspotInputs, day_number: np.ndarray, n_days: int, coverage: float) -> ObservedDays:
    """Sum the observed crimes, area and perfect-knowledge captures per day."""
    ranked = inputs.by_density
    slice_day = slice_days(ranked.slice_number, ranked.order, day_number, ranked.n_slices)
    max_captured = ranked.best_capture(coverage * inputs.slice_area)

    return ObservedDays(
        rows=np.bincount(day_number, minlength=n_days).astype(np.float64),
        crimes=np.bincount(day_number, weights=inputs.crimes, minlength=n_days),
        area=np.bincount(day_number, weights=inputs.areas, minlength=n_days),
        max_captured=np.bincount(slice_day, weights=max_captured, minlength=n_days),
    )


def model_days(
    inputs: HotspotInputs,
    day_number: np.ndarray,
    n_days: int,
    coverage: float,
    score: np.ndarray,
    probability: np.ndarray | None,
    label: str,
    n_score_bins: int,
) -> ModelDays:
    """Sum one model's hotspot captures, score histograms and losses per day."""
    suffix = f"_{label}" if label else ""
    scores = as_finite_float(score, f"score{suffix}")
    model = rank_cells(inputs, scores, f"score{suffix}")
    actual = inputs.crimes > 0

    slice_day = slice_days(model.slice_number, model.order, day_number, model.n_slices)
    captured, flagged_area = model.capture(coverage)
    best_captured = inputs.by_density.best_capture(flagged_area)
    positives, negatives = score_histograms(actual, scores, day_number, n_days, n_score_bins)
    exact = exact_ranking_metrics(actual, scores)

    squared_error = None
    log_loss = None
    if probability is not None:
        probabilities = as_probabilities(probability, f"probability{suffix}")
        check_same_length(**{f"probability{suffix}": probabilities, "crime_count": inputs.crimes})
        squared_error = np.bincount(day_number, weights=squared_errors(actual, probabilities), minlength=n_days)
        log_loss = np.bincount(day_number, weights=log_losses(actual, probabilities), minlength=n_days)

    return ModelDays(
        captured=np.bincount(slice_day, weights=captured, minlength=n_days),
        flagged_area=np.bincount(slice_day, weights=flagged_area, minlength=n_days),
        best_captured=np.bincount(slice_day, weights=best_captured, minlength=n_days),
        positives=positives,
        negatives=negatives,
        squared_error=squared_error,
        log_loss=log_loss,
        exact=exact,
    )


def exact_ranking_metrics(actual: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """Compute the exact ROC-AUC and average precision from one sort of the scores.

    Both follow scikit-learn's definitions, ties included: ROC-AUC is the
    trapezoid area under the (FPR, TPR) steps of the distinct scores, and
    average precision is sum_k (TPR_k - TPR_(k-1)) * precision_k. One polars
    sort replaces the four stable sorts that `roc_auc` and `pr_auc` make
    together, which took 9 of 18 s of `benchmarks/bootstrap.py` (3.5 million
    rows, shared 2-core machine).
    """
    n_positive = int(actual.sum())
    n_negative = actual.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return {"roc_auc": None, "pr_auc": None}

    order = pl.Series(scores).arg_sort(descending=True).to_numpy()
    sorted_scores = scores[order]
    is_last = np.ones(sorted_scores.size, dtype=bool)
    is_last[:-1] = sorted_scores[1:] != sorted_scores[:-1]

    true_positives = np.cumsum(actual[order])[is_last].astype(np.float64)
    false_positives = np.cumsum(~actual[order])[is_last].astype(np.float64)
    new_true = np.diff(true_positives, prepend=0.0)
    new_false = np.diff(false_positives, prepend=0.0)

    area = float((new_false * (true_positives - new_true / 2)).sum()) / (n_positive * n_negative)
    precision = true_positives / (true_positives + false_positives)
    average_precision = float((new_true * precision).sum()) / n_positive
    return {"roc_auc": area, "pr_auc": average_precision}


def slice_days(slice_number: np.ndarray, order: np.ndarray, day_number: np.ndarray, n_slices: int) -> np.ndarray:
    """Return the day number of each slice number of a ranking."""
    days = np.zeros(n_slices, dtype=np.int64)
    days[slice_number] = day_number[order]
    return days


def score_histograms(
    actual: np.ndarray,
    scores: np.ndarray,
    day_number: np.ndarray,
    n_days: int,
    n_bins: int = DEFAULT_SCORE_BINS,
) -> tuple[np.ndarray, np.ndarray]:
    """Count positive and negative rows per day in score quantile bins.

    The bin edges are the distinct quantiles of all scores, so tied scores
    never straddle a bin edge and there can be fewer than `n_bins` bins.
    Returns two (n_days, n_found_bins) float arrays, bins in increasing score.
    """
    check_whole_number(n_bins, "n_score_bins")
    edges = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1)))
    n_found = max(edges.size - 1, 1)

    bins = np.searchsorted(edges[1:-1], scores, side="right")
    cell = day_number * n_found + bins
    positives = np.bincount(cell, weights=actual.astype(np.float64), minlength=n_days * n_found)
    negatives = np.bincount(cell, weights=(~actual).astype(np.float64), minlength=n_days * n_found)
    return positives.reshape(n_days, n_found), negatives.reshape(n_days, n_found)


# Metrics from (resampled) sums


def binned_roc_auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Compute ROC-AUC from counts per score bin, with rows of one bin counted as ties.

    Inputs have shape (..., n_bins) with bins in increasing score. AUC is the
    share of positive-negative pairs where the positive ranks higher, plus half
    the tied pairs. The result is NaN where a class is absent.
    """
    negatives_below = np.cumsum(negatives, axis=-1) - negatives
    pairs = (positives * (negatives_below + 0.5 * negatives)).sum(axis=-1)
    return ratio_or_nan(pairs, positives.sum(axis=-1) * negatives.sum(axis=-1))


def binned_pr_auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Compute average precision from counts per score bin, each bin one threshold.

    AP = sum over bins, from the highest score down, of (positives in the bin / P)
    times the precision of flagging that bin and every higher one. NaN where
    there are no positives.
    """
    positives_down = positives[..., ::-1]
    true_positives = np.cumsum(positives_down, axis=-1)
    flagged = true_positives + np.cumsum(negatives[..., ::-1], axis=-1)

    precision = np.nan_to_num(ratio_or_nan(true_positives, flagged), nan=0.0)
    return ratio_or_nan((positives_down * precision).sum(axis=-1), positives.sum(axis=-1))


def roc_auc_binning_bound(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Return the largest possible |binned ROC-AUC - exact ROC-AUC| for pooled bin counts.

    Each positive-negative pair inside one bin counts 0.5 in the binned AUC and
    0, 0.5 or 1 exactly, so the error is at most 0.5 * sum(pos_b * neg_b) / (P * N).
    """
    pairs = float(positives.sum()) * float(negatives.sum())
    if pairs == 0:
        return float("nan")
    return 0.5 * float((positives * negatives).sum()) / pairs


def resample_weights(n_days: int, n_boot: int, seed: int) -> np.ndarray:
    """Draw n_boot resamples of n_days days with replacement, as counts per day.

    Returns an (n_boot, n_days) float array, each row summing to n_days.
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_days, size=(n_boot, n_days))
    offsets = np.arange(n_boot)[:, None] * n_days
    counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_days)
    return counts.reshape(n_boot, n_days).astype(np.float64)


def metrics_from_sums(weights: np.ndarray, observed: ObservedDays, model: ModelDays) -> dict[str, np.ndarray]:
    """Compute every metric from per-day sums weighted by `weights` (n_days or (n_boot, n_days)).

    Undefined values, such as a PAI with no crimes, are NaN.
    """
    crimes = weights @ observed.crimes
    area = weights @ observed.area
    captured = weights @ model.captured
    flagged_area = weights @ model.flagged_area

    hit_rate = ratio_or_nan(captured, crimes)
    pai = ratio_or_nan(hit_rate, ratio_or_nan(flagged_area, area))
    values = {
        "roc_auc": binned_roc_auc(weights @ model.positives, weights @ model.negatives),
        "pr_auc": binned_pr_auc(weights @ model.positives, weights @ model.negatives),
        "pai": pai,
        "hit_rate": hit_rate,
        "pei": ratio_or_nan(captured, weights @ observed.max_captured),
        "pei_star": ratio_or_nan(captured, weights @ model.best_captured),
    }

    rows = weights @ observed.rows
    no_probabilities = np.full(np.shape(rows), np.nan)
    values["brier"] = no_probabilities if model.squared_error is None else ratio_or_nan(weights @ model.squared_error, rows)
    values["log_loss"] = no_probabilities if model.log_loss is None else ratio_or_nan(weights @ model.log_loss, rows)
    return values


def point_estimates(observed: ObservedDays, model: ModelDays) -> dict[str, float | None]:
    """Compute each metric on the original days, with the AUCs exact from the rows."""
    values = metrics_from_sums(np.ones(observed.rows.size), observed, model)

    estimates: dict[str, float | None] = {}
    for metric, value in values.items():
        estimates[metric] = None if np.isnan(value) else float(value)
    estimates.update(model.exact)
    return estimates


def resampled_metrics(weights: np.ndarray, observed: ObservedDays, model: ModelDays) -> dict[str, np.ndarray]:
    """Compute each metric on every resample; returns arrays of length n_boot."""
    return metrics_from_sums(weights, observed, model)


# Intervals and p-values


def percentile_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    """Return the 2.5th and 97.5th percentiles of the defined values, or Nones when none is defined."""
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return None, None
    low, high = np.percentile(defined, INTERVAL_PERCENTILES)
    return float(low), float(high)


def interval(values: np.ndarray, prefix: str) -> dict[str, float | None]:
    """Return the percentile interval as {prefix_ci_low, prefix_ci_high}."""
    low, high = percentile_interval(values)
    return {f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}


def bootstrap_p_value(differences: np.ndarray) -> float | None:
    """Return the two-sided bootstrap p-value for difference = 0, with the add-one correction.

    p = min(1, 2 * min(1 + #{d <= 0}, 1 + #{d >= 0}) / (B + 1)) over the B
    defined resampled differences d. None when no difference is defined.
    """
    defined = differences[~np.isnan(differences)]
    if defined.size == 0:
        return None

    at_or_below = 1 + int(np.count_nonzero(defined <= 0))
    at_or_above = 1 + int(np.count_nonzero(defined >= 0))
    return min(1.0, 2 * min(at_or_below, at_or_above) / (defined.size + 1))


def log_undefined_resamples(metric: str, differences: np.ndarray) -> None:
    """Warn when some resamples leave a metric undefined, since its interval then uses fewer."""
    n_undefined = int(np.isnan(differences).sum())
    if 0 < n_undefined < differences.size:
        logger.warning("%s is undefined in %d of %d resamples, which the interval leaves out", metric, n_undefined, differences.size)


def check_whole_number(value: int, name: str) -> None:
    """Raise ValueError unless `value` is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
