"""Evaluation metrics for hourly, place-based crime-risk forecasts.

Each row of the inputs is one cell-hour: a cell (census tract or grid cell)
in one target hour. A "slice" is the set of rows that share a target hour (or
shift or day, after `aggregate_periods`), and hotspot metrics choose cells
within each slice before pooling over slices.

The Predictive Accuracy Index (PAI) is the hit rate divided by the share of
the area flagged as hotspots. It was introduced by Chainey, Tompson & Uhlig
(2008), "The utility of hotspot mapping for predicting spatial patterns of
crime", Security Journal 21, DOI 10.1057/palgrave.sj.8350066, and was
a scoring metric of the NIJ Real-Time Crime Forecasting Challenge (2017).

The Prediction Efficiency Index (PEI) divides the crimes captured by the most
crimes that a forecaster with perfect knowledge could capture with the same
area budget (J. M. Hunt, 2016, and the scoring of the NIJ Real-Time Crime
Forecasting Challenge). PEI* measures against the area the model actually
flagged rather than the whole budget, the correction argued for by White, Hunt
& Green (2023), "A discussion of current crime forecasting indices and an
improvement to the prediction efficiency index for applications", Security
Journal. `hotspot_curve` states both bounds exactly.

ROC-AUC, average precision, the Brier score, log loss and the reliability
curve follow their usual definitions (scikit-learn's for the two areas).

Inputs are numpy arrays (one polars frame for `aggregate_periods`) and outputs
are plain floats, frozen dataclasses or polars frames, so the functions work
the same from a pipeline or a notebook.
"""

from __future__ import annotations

import bisect
import logging
import math
import numbers
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

logger = logging.getLogger(__name__)

# Decimal places kept when rounding share * n_cells before the ceiling, so that
# float noise such as 0.07 * 100 == 7.000000000000001 does not add a cell.
SHARE_ROUND_DECIMALS = 9

# Relative tolerance on the PAI area budget, so that a cell that fills the
# budget exactly (up to float rounding of the budget) is still flagged.
AREA_BUDGET_RTOL = 1e-9

# Probabilities are clipped to [LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON] before
# the logarithm, so a confident miss costs about 34.5 nats instead of infinity.
LOG_LOSS_EPSILON = 1e-15

# Youden's J values closer than this to the maximum count as tied with it.
YOUDEN_TIE_TOLERANCE = 1e-12

THRESHOLD_RULES = ("youden", "coverage", "value")
RELIABILITY_STRATEGIES = ("quantile", "uniform")
PERIODS = ("hour", "shift", "day")
DEFAULT_COVERAGES = (0.01, 0.02, 0.05, 0.10, 0.20)


@dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion counts and rates of a binary flag against observed outcomes.

    A rate whose denominator is 0 is None.
    """

    tp: int
    fp: int
    tn: int
    fn: int
    tpr: float | None
    tnr: float | None
    fpr: float | None
    fnr: float | None
    accuracy: float | None
    precision: float | None


@dataclass(frozen=True)
class PaiResult:
    """Pooled Predictive Accuracy Index at an area coverage.

    `pai` is None when there are no crimes or no area was flagged, and
    `hit_rate` is None when there are no crimes.
    """

    pai: float | None
    hit_rate: float | None
    area_share_used: float
    coverage: float
    n_crimes: int


def threshold_metrics(y_true: np.ndarray, flagged: np.ndarray) -> ThresholdMetrics:
    """Count the confusion matrix of `flagged` against `y_true` and derive its rates.

    Both arrays are 1-D booleans or 0/1 values of equal length. For crime
    counts, pass `counts > 0` as `y_true`.
    """
    actual = as_binary(y_true, "y_true")
    predicted = as_binary(flagged, "flagged")
    check_same_length(y_true=actual, flagged=predicted)

    tp = int(np.count_nonzero(actual & predicted))
    fp = int(np.count_nonzero(~actual & predicted))
    tn = int(np.count_nonzero(~actual & ~predicted))
    fn = int(np.count_nonzero(actual & ~predicted))

    return ThresholdMetrics(
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        tpr=safe_ratio(tp, tp + fn),
        tnr=safe_ratio(tn, tn + fp),
        fpr=safe_ratio(fp, fp + tn),
        fnr=safe_ratio(fn, fn + tp),
        accuracy=safe_ratio(tp + tn, tp + fp + tn + fn),
        precision=safe_ratio(tp, tp + fp),
    )


def flag_top_share(risk: np.ndarray, slice_ids: np.ndarray, share: float) -> np.ndarray:
    """Flag the ceil(share * n) highest-risk rows of each slice of n rows.

    Ties in risk go to the earlier row. Returns a boolean array aligned with
    the input rows.
    """
    check_share(share, "share")
    risk_values = as_finite_float(risk, "risk")
    slices = as_slice_ids(slice_ids)
    check_same_length(risk=risk_values, slice_ids=slices)

    order = sort_by_slice_then_risk(slices, risk_values)
    slice_number = number_sorted_slices(slices[order])
    slice_size = np.bincount(slice_number)
    slice_start = np.cumsum(slice_size) - slice_size

    rank_in_slice = np.arange(order.size) - slice_start[slice_number]
    n_flagged = np.ceil(np.round(share * slice_size, SHARE_ROUND_DECIMALS))

    flagged = np.zeros(order.size, dtype=bool)
    flagged[order] = rank_in_slice < n_flagged[slice_number]
    return flagged


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Compute the ROC AUC of `score` against binary `y_true`.

    Returns None when `y_true` holds only one class, because the AUC is then
    undefined.
    """
    return ranking_metric(y_true, score, roc_auc_score)


def pai_at_area_coverage(
    risk: np.ndarray,
    crime_count: np.ndarray,
    area_km2: np.ndarray,
    slice_ids: np.ndarray,
    coverage: float = 0.05,
) -> PaiResult:
    """Compute the PAI when at most `coverage` of each slice's area is flagged.

    Within each slice, cells are flagged in descending risk order (ties go to
    the earlier row) until the next cell would push the flagged area over
    `coverage` times the slice's total area. Selection stops at that cell, and
    lower-risk cells that would still fit are not flagged. Hit rate and area
    share are pooled over slices as sums of crimes and of areas.
    """
    check_share(coverage, "coverage")
    risk_values = as_finite_float(risk, "risk")
    crimes = as_crime_counts(crime_count)
    areas = as_areas(area_km2)
    slices = as_slice_ids(slice_ids)
    check_same_length(risk=risk_values, crime_count=crimes, area_km2=areas, slice_ids=slices)
    if risk_values.size == 0:
        raise ValueError("pai_at_area_coverage received no rows. Pass at least one cell-hour.")

    order = sort_by_slice_then_risk(slices, risk_values)
    flagged_sorted = flag_within_area_budget(areas[order], slices[order], coverage)

    n_crimes = int(crimes.sum())
    flagged_crimes = int(crimes[order][flagged_sorted].sum())
    flagged_area = float(areas[order][flagged_sorted].sum())
    total_area = float(areas.sum())

    area_share = flagged_area / total_area
    hit_rate = safe_ratio(flagged_crimes, n_crimes)
    pai = None
    if hit_rate is not None and area_share > 0:
        pai = hit_rate / area_share

    logger.debug(
        "PAI at coverage %s: %d of %d crimes in %.4f of the area",
        coverage,
        flagged_crimes,
        n_crimes,
        area_share,
    )
    return PaiResult(
        pai=pai,
        hit_rate=hit_rate,
        area_share_used=area_share,
        coverage=float(coverage),
        n_crimes=n_crimes,
    )


def flag_within_area_budget(sorted_areas: np.ndarray, sorted_slices: np.ndarray, coverage: float) -> np.ndarray:
    """Flag the leading rows of each slice whose cumulative area fits the budget.

    Rows must already be sorted by slice, then by descending risk. Areas are
    positive, so the cumulative area grows within a slice, and the rows that
    fit form a prefix that ends before the first row over the budget.
    """
    slice_number = number_sorted_slices(sorted_slices)

    # Polars restarts the cumulative sum at each slice, which keeps the sums
    # exact per slice instead of subtracting offsets from one global running sum.
    frame = pl.DataFrame({"slice_number": slice_number, "area": sorted_areas})
    sums = frame.select(
        cumulative_area=pl.col("area").cum_sum().over("slice_number"),
        slice_area=pl.col("area").sum().over("slice_number"),
    )

    budget = coverage * sums["slice_area"].to_numpy()
    cumulative_area = sums["cumulative_area"].to_numpy()
    flagged = cumulative_area <= budget * (1 + AREA_BUDGET_RTOL)

    flagged_per_slice = np.bincount(slice_number, weights=flagged)
    n_empty_slices = int(np.count_nonzero(flagged_per_slice == 0))
    if n_empty_slices:
        logger.debug("%d slices flag no cell because their highest-risk cell alone exceeds the area budget", n_empty_slices)
    return flagged


def sort_by_slice_then_risk(slices: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """Return the row order by slice, then descending risk, then row position.

    The order equals np.lexsort((-risk, slices)). Polars' stable multi-column
    arg sort computed it about 4 times faster on 10 million rows in 800-row
    slices (1.2 s against 4.9 s, measured on a 2-core machine).
    """
    # Adding 0.0 turns -0.0 into 0.0, so the two zeros tie as they do in numpy.
    frame = pl.DataFrame({"slice": slices, "risk": risk + 0.0})
    order = frame.select(
        pl.arg_sort_by(["slice", "risk"], descending=[False, True], maintain_order=True)
    )
    return order.to_series().to_numpy()


def number_sorted_slices(sorted_slices: np.ndarray) -> np.ndarray:
    """Number the slices of slice-sorted ids 0, 1, 2, ... and return each row's number."""
    if sorted_slices.size == 0:
        return np.zeros(0, dtype=np.int64)

    is_start = np.ones(sorted_slices.size, dtype=bool)
    is_start[1:] = sorted_slices[1:] != sorted_slices[:-1]
    return np.cumsum(is_start) - 1


def safe_ratio(numerator: float, denominator: float) -> float | None:
    """Divide, returning None when the denominator is 0."""
    if denominator == 0:
        return None
    return numerator / denominator


def check_share(value: float, name: str) -> None:
    """Raise ValueError unless 0 < value <= 1."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"{name} must be a number with 0 < {name} <= 1, got {value!r}.")


def check_same_length(**arrays: np.ndarray) -> None:
    """Raise ValueError unless all arrays have the same length, naming each length."""
    lengths = {name: array.shape[0] for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise ValueError(f"Input arrays must have equal lengths, got {listed}.")


def as_1d(values: np.ndarray, name: str) -> np.ndarray:
    """Convert to a numpy array, raising ValueError unless it is 1-D."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {array.shape}.")
    return array


def as_slice_ids(values: np.ndarray) -> np.ndarray:
    """Convert slice ids to a 1-D array, raising ValueError on NaN or NaT ids.

    NaN and NaT never compare equal, so each such row would form its own slice.
    Datetimes become their int64 ticks, which sort and group the same way and
    which polars accepts at any numpy resolution.
    """
    array = as_1d(values, "slice_ids")

    missing = nan_or_nat(array)
    if missing is None:
        return array

    if missing.any():
        raise ValueError(
            f"slice_ids contains a missing id at row {int(np.flatnonzero(missing)[0])}. "
            "Give every row the id of its target hour."
        )
    return as_ticks(array)


def nan_or_nat(array: np.ndarray) -> np.ndarray | None:
    """Return the NaN mask of a float array or the NaT mask of a time array, else None."""
    # dtype kind "M" is datetime64 and "m" is timedelta64.
    if np.issubdtype(array.dtype, np.floating):
        return np.isnan(array)
    if array.dtype.kind in "mM":
        return np.isnat(array)
    return None


def as_ticks(array: np.ndarray) -> np.ndarray:
    """Return datetimes and timedeltas as their int64 ticks, and other arrays unchanged."""
    if array.dtype.kind in "mM":
        return array.view(np.int64)
    return array


def as_binary(values: np.ndarray, name: str) -> np.ndarray:
    """Convert booleans or 0/1 values to a boolean array, raising ValueError otherwise."""
    array = as_1d(values, name)
    if array.dtype == bool:
        return array

    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be boolean or 0/1 numbers, got dtype {array.dtype}.")
    invalid = ~np.isin(array, (0, 1))
    if invalid.any():
        example = array[invalid][0].item()
        raise ValueError(f"{name} must contain only 0 and 1, found {example!r}. For crime counts, pass counts > 0.")
    return array == 1


def as_finite_float(values: np.ndarray, name: str) -> np.ndarray:
    """Convert to a float64 array, raising ValueError on non-numeric or non-finite values."""
    array = as_1d(values, name)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}.")

    floats = array.astype(np.float64)
    bad = ~np.isfinite(floats)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite, found {floats[position]} at row {position}.")
    return floats


def as_crime_counts(values: np.ndarray) -> np.ndarray:
    """Convert crime counts to int64, raising ValueError on negative or fractional values."""
    floats = as_finite_float(values, "crime_count")

    bad = (floats < 0) | (floats != np.floor(floats))
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"crime_count must be non-negative whole numbers, found {floats[position]} at row {position}."
        )
    return floats.astype(np.int64)


def as_areas(values: np.ndarray) -> np.ndarray:
    """Convert cell areas to float64, raising ValueError unless every area is finite and > 0."""
    areas = as_finite_float(values, "area_km2")

    bad = areas <= 0
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ValueError(f"area_km2 must be > 0, found {areas[position]} at row {position}.")
    return areas


def as_probabilities(values: np.ndarray, name: str) -> np.ndarray:
    """Convert to float64, raising ValueError unless every value is a probability in [0, 1]."""
    probabilities = as_finite_float(values, name)

    bad = (probabilities < 0) | (probabilities > 1)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must be within [0, 1], found {probabilities[position]} at row {position}. "
            "Pass the model's probability of at least one crime, not a score or an expected count."
        )
    return probabilities


def check_not_empty(function: str, values: np.ndarray) -> None:
    """Raise ValueError when a metric receives no rows."""
    if values.size == 0:
        raise ValueError(f"{function} received no rows. Pass at least one cell-hour.")


# Probability and ranking metrics


def pr_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Compute the area under the precision-recall curve as average precision.

    Average precision is sum over thresholds of (R_k - R_(k-1)) * P_k, with
    tied scores forming one threshold (scikit-learn's `average_precision_score`).
    Returns None when `y_true` holds only one class.
    """
    return ranking_metric(y_true, score, average_precision_score)


def ranking_metric(y_true: np.ndarray, score: np.ndarray,
                   scorer: Callable[[np.ndarray, np.ndarray], float]) -> float | None:
    """Validate the inputs and apply a scikit-learn ranking scorer, or return None for one class."""
    actual = as_binary(y_true, "y_true")
    scores = as_finite_float(score, "score")
    check_same_length(y_true=actual, score=scores)

    if actual.all() or not actual.any():
        return None

    return float(scorer(actual, scores))


def brier_score(y_true: np.ndarray, probability: np.ndarray) -> float:
    """Compute the Brier score, the mean of (probability - outcome)^2 over rows."""
    actual, probabilities = outcomes_and_probabilities(y_true, probability, "brier_score")
    return float(squared_errors(actual, probabilities).mean())


def log_loss(y_true: np.ndarray, probability: np.ndarray) -> float:
    """Compute the mean negative log-likelihood, in nats, of binary outcomes.

    Probabilities are clipped to [1e-15, 1 - 1e-15] first, so a probability of
    0 for an observed crime costs about 34.5 nats instead of infinity.
    """
    actual, probabilities = outcomes_and_probabilities(y_true, probability, "log_loss")
    return float(log_losses(actual, probabilities).mean())


def outcomes_and_probabilities(y_true: np.ndarray, probability: np.ndarray, function: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate binary outcomes and aligned probabilities for a proper scoring rule."""
    actual = as_binary(y_true, "y_true")
    probabilities = as_probabilities(probability, "probability")
    check_same_length(y_true=actual, probability=probabilities)
    check_not_empty(function, actual)
    return actual, probabilities


def squared_errors(actual: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Return each row's squared error (probability - outcome)^2."""
    return (probabilities - actual) ** 2


def log_losses(actual: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Return each row's negative log-likelihood after clipping at LOG_LOSS_EPSILON."""
    clipped = np.clip(probabilities, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    return -np.where(actual, np.log(clipped), np.log1p(-clipped))


# Calibration


def reliability_curve(
    y_true: np.ndarray,
    probability: np.ndarray,
    n_bins: int = 10,
    strategy: str = "quantile",
) -> pl.DataFrame:
    """Bin the predicted probabilities and compare each bin's mean with its observed rate.

    Returns one row per bin with columns bin, lower, upper, mean_predicted,
    observed_rate and n. A bin covers [lower, upper), and the last bin also
    contains upper. `mean_predicted` and `observed_rate` are null in empty bins.

    strategy="quantile" puts about the same number of rows in each bin, and
    "uniform" splits [0, 1] into equal widths. Quantile bins are the useful
    default for crime at base rates near 0.002: with uniform bins almost every
    row falls in the first bin and the others are empty or hold a few rows.
    Tied quantiles are merged, so quantile bins can be fewer than `n_bins`.
    """
    actual, probabilities = outcomes_and_probabilities(y_true, probability, "reliability_curve")
    edges = reliability_bin_edges(probabilities, n_bins, strategy)
    n_found = edges.size - 1

    bins = np.searchsorted(edges[1:-1], probabilities, side="right")
    n = np.bincount(bins, minlength=n_found)
    probability_sum = np.bincount(bins, weights=probabilities, minlength=n_found)
    crime_sum = np.bincount(bins, weights=actual.astype(np.float64), minlength=n_found)

    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = probability_sum / n
        observed_rate = crime_sum / n

    curve = pl.DataFrame({
        "bin": np.arange(n_found, dtype=np.int64),
        "lower": edges[:-1],
        "upper": edges[1:],
        "mean_predicted": mean_predicted,
        "observed_rate": observed_rate,
        "n": n.astype(np.int64),
    })
    return curve.with_columns(pl.col("mean_predicted", "observed_rate").fill_nan(None))


def expected_calibration_error(
    y_true: np.ndarray,
    probability: np.ndarray,
    n_bins: int = 10,
    strategy: str = "quantile",
) -> float:
    """Compute the expected calibration error over the bins of `reliability_curve`.

    ECE = sum over non-empty bins of (n_bin / n) * |mean_predicted - observed_rate|.
    """
    curve = reliability_curve(y_true, probability, n_bins=n_bins, strategy=strategy).filter(pl.col("n") > 0)

    gaps = (curve["mean_predicted"] - curve["observed_rate"]).abs()
    weights = curve["n"] / curve["n"].sum()
    return float((gaps * weights).sum())


def reliability_bin_edges(probabilities: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """Return increasing bin edges for `reliability_curve`, at least two of them."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise ValueError(f"n_bins must be a whole number >= 1, got {n_bins!r}.")
    if strategy not in RELIABILITY_STRATEGIES:
        raise ValueError(f"strategy must be one of {RELIABILITY_STRATEGIES}, got {strategy!r}.")

    if strategy == "uniform":
        return np.linspace(0.0, 1.0, int(n_bins) + 1)

    edges = np.unique(np.quantile(probabilities, np.linspace(0.0, 1.0, int(n_bins) + 1)))
    if edges.size == 1:
        # Every probability is the same, so one closed bin [p, p] holds all rows.
        edges = np.repeat(edges, 2)
    return edges


# Threshold rules


@dataclass(frozen=True, eq=False)
class ThresholdChoice:
    """A binary flag chosen from scores by a stated rule, with its confusion metrics.

    `threshold` is the score cut (flag score >= threshold) for the "youden"
    and "value" rules. It is None for the "coverage" rule, whose cut differs
    from slice to slice. `flag_rate` is the share of rows flagged.
    """

    rule: str
    value: float | None
    threshold: float | None
    flagged: np.ndarray
    metrics: ThresholdMetrics
    flag_rate: float


def choose_threshold(
    y_true: np.ndarray,
    score: np.ndarray,
    rule: str,
    value: float | None = None,
    slice_ids: np.ndarray | None = None,
) -> ThresholdChoice:
    """Flag rows by one of three stated rules and measure the flag against `y_true`.

    - "youden": the score threshold that maximises Youden's J = TPR - FPR over
      the pooled rows (Youden 1950, "Index for rating diagnostic tests",
      Cancer 3(1)). Candidates are the distinct scores, and among equal J the
      highest threshold, which flags fewest rows, wins. `value` must be None.
    - "coverage": flag the top `value` share of cells in each slice, as
      `flag_top_share` does. `slice_ids` is required.
    - "value": flag score >= `value`.
    """
    actual = as_binary(y_true, "y_true")
    scores = as_finite_float(score, "score")
    check_same_length(y_true=actual, score=scores)
    check_not_empty("choose_threshold", actual)

    if rule == "youden":
        if value is not None:
            raise ValueError(f"The youden rule chooses its own threshold, so value must be None, got {value!r}.")
        threshold = youden_threshold(actual, scores)
        flagged = scores >= threshold
    elif rule == "coverage":
        if value is None or slice_ids is None:
            raise ValueError(
                "The coverage rule needs value (the share of cells flagged in each slice, 0 < value <= 1) and "
                "slice_ids (the target hour of each row; pass one id for all rows to pool them)."
            )
        threshold = None
        flagged = flag_top_share(scores, slice_ids, value)
    elif rule == "value":
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"The value rule needs a finite score threshold as value, got {value!r}.")
        threshold = float(value)
        flagged = scores >= threshold
    else:
        raise ValueError(f"rule must be one of {THRESHOLD_RULES}, got {rule!r}.")

    metrics = threshold_metrics(actual, flagged)
    flag_rate = float(flagged.mean())
    logger.debug("Threshold rule %s flags %d of %d rows", rule, int(flagged.sum()), flagged.size)
    return ThresholdChoice(
        rule=rule,
        value=None if value is None else float(value),
        threshold=threshold,
        flagged=flagged,
        metrics=metrics,
        flag_rate=flag_rate,
    )


def youden_threshold(actual: np.ndarray, scores: np.ndarray) -> float:
    """Return the distinct score that maximises TPR - FPR when flagging score >= it.

    Raises ValueError unless both classes are present, because J is then undefined.
    """
    n_positive = int(actual.sum())
    n_negative = actual.size - n_positive
    if n_positive == 0 or n_negative == 0:
        raise ValueError(
            f"Youden's J needs both outcomes, got {n_positive} positive and {n_negative} negative rows. "
            "Evaluate over a window with and without crimes, or use the coverage or value rule."
        )

    thresholds, tp, fp = counts_at_distinct_scores(actual, scores)
    youden_j = tp / n_positive - fp / n_negative

    # Thresholds are in descending order, so the first maximum is the highest
    # threshold among ties. The tolerance makes J values that differ only by
    # float rounding, such as 2/3 and 1 - 1/3, count as ties.
    is_best = youden_j >= youden_j.max() - YOUDEN_TIE_TOLERANCE
    return float(thresholds[int(np.argmax(is_best))])


def counts_at_distinct_scores(actual: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the distinct scores in descending order and the TP and FP counts of flagging score >= each."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_actual = actual[order]

    tp_cumulative = np.cumsum(sorted_actual)
    fp_cumulative = np.cumsum(~sorted_actual)

    # The last row of each run of equal scores carries the counts for that threshold.
    is_last = np.ones(sorted_scores.size, dtype=bool)
    is_last[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    return sorted_scores[is_last], tp_cumulative[is_last], fp_cumulative[is_last]


def threshold_table(y_true: np.ndarray, score: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> pl.DataFrame:
    """Tabulate the confusion counts and rates of flagging score >= t for each threshold t.

    Columns: threshold, tp, fp, tn, fn, tpr, tnr, fpr, fnr, accuracy,
    precision and flag_rate, one row per threshold in the given order. A rate
    whose denominator is 0 is null. The scores of each class are sorted once
    and every threshold is located by binary search.
    """
    actual = as_binary(y_true, "y_true")
    scores = as_finite_float(score, "score")
    check_same_length(y_true=actual, score=scores)
    check_not_empty("threshold_table", actual)
    cuts = as_finite_float(np.asarray(thresholds, dtype=np.float64), "thresholds")

    positive_scores = np.sort(scores[actual])
    negative_scores = np.sort(scores[~actual])
    n_positive = positive_scores.size
    n_negative = negative_scores.size

    tp = n_positive - np.searchsorted(positive_scores, cuts, side="left")
    fp = n_negative - np.searchsorted(negative_scores, cuts, side="left")
    fn = n_positive - tp
    tn = n_negative - fp

    table = pl.DataFrame({
        "threshold": cuts,
        "tp": tp.astype(np.int64),
        "fp": fp.astype(np.int64),
        "tn": tn.astype(np.int64),
        "fn": fn.astype(np.int64),
        "tpr": ratio_or_nan(tp, tp + fn),
        "tnr": ratio_or_nan(tn, tn + fp),
        "fpr": ratio_or_nan(fp, fp + tn),
        "fnr": ratio_or_nan(fn, fn + tp),
        "accuracy": ratio_or_nan(tp + tn, np.full(cuts.size, actual.size)),
        "precision": ratio_or_nan(tp, tp + fp),
        "flag_rate": ratio_or_nan(tp + fp, np.full(cuts.size, actual.size)),
    })
    rates = ["tpr", "tnr", "fpr", "fnr", "accuracy", "precision", "flag_rate"]
    return table.with_columns(pl.col(rates).fill_nan(None))


def ratio_or_nan(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Divide element-wise, giving NaN where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    result = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


# Hotspot metrics against perfect-knowledge selections


@dataclass(frozen=True)
class HotspotResult:
    """Pooled hotspot metrics at one area coverage.

    `pai`, `pei` and `pei_star` are None when their denominator is 0: no
    crimes, no area flagged by the model, or a perfect-knowledge selection
    that captures no crime.
    """

    coverage: float
    hit_rate: float | None
    pai: float | None
    pei: float | None
    pei_star: float | None
    area_share_used: float
    n_crimes: int
    crimes_captured: int


@dataclass(frozen=True)
class RankedCells:
    """Rows in one selection order, sorted by slice and then by rank within the slice.

    `order` maps each ranked position to its input row. `cumulative_area`
    restarts at each slice. Slices are numbered 0, 1, ... in increasing slice
    id, so every ranking of the same rows shares the numbers.
    """

    order: np.ndarray
    slice_number: np.ndarray
    crimes: np.ndarray
    areas: np.ndarray
    cumulative_area: np.ndarray
    slice_area: np.ndarray
    n_slices: int

    def capture(self, coverage: float) -> tuple[np.ndarray, np.ndarray]:
        """Return each slice's captured crimes and flagged area at `coverage`.

        The leading rows of a slice are flagged while their cumulative area
        fits `coverage` times the slice's area, as in `pai_at_area_coverage`.
        """
        flagged = self.cumulative_area <= coverage * self.slice_area * (1 + AREA_BUDGET_RTOL)

        captured = np.bincount(self.slice_number, weights=np.where(flagged, self.crimes, 0), minlength=self.n_slices)
        flagged_area = np.bincount(self.slice_number, weights=np.where(flagged, self.areas, 0.0), minlength=self.n_slices)
        return captured, flagged_area

    def best_capture(self, area_limit: np.ndarray) -> np.ndarray:
        """Return the most crimes each slice can hold within `area_limit` km², part cells allowed.

        The rows must be ranked by descending crime density. Taking the densest cells first and
        the last one in part is the optimum of the fractional knapsack, so no selection of whole
        cells within the same area captures more: ratios against it never exceed 1, and cells of
        equal density give the same bound in any order.
        """
        limit = np.asarray(area_limit, dtype=np.float64)[self.slice_number]
        area_before = self.cumulative_area - self.areas
        share_inside = np.clip((limit - area_before) / self.areas, 0.0, 1.0)
        return np.bincount(self.slice_number, weights=self.crimes * share_inside, minlength=self.n_slices)


@dataclass(frozen=True)
class HotspotInputs:
    """Validated hotspot inputs with each slice's totals and the two perfect-knowledge rankings."""

    crimes: np.ndarray
    areas: np.ndarray
    slices: np.ndarray
    slice_crimes: np.ndarray
    slice_area: np.ndarray
    by_density: RankedCells


def hotspot_curve(
    risk: np.ndarray,
    crime_count: np.ndarray,
    area_km2: np.ndarray,
    slice_ids: np.ndarray,
    coverages: Sequence[float] = DEFAULT_COVERAGES,
) -> pl.DataFrame:
    """Compute hit rate, PAI, PEI and PEI* at each area coverage, pooled over slices.

    Returns columns coverage, hit_rate, pai, pei, pei_star, area_share_used,
    n_crimes and crimes_captured, one row per coverage. Metrics are null
    where `HotspotResult` gives None. The model's selection is the rule of
    `pai_at_area_coverage`: within each slice, cells in descending risk until
    the next cell would exceed `coverage` times the slice's area.

    - PAI = (n / N) / (a / A), with n crimes captured of N and a km² flagged of
      A (Chainey, Tompson & Uhlig 2008).
    - PEI = n / n_max, where n_max is the most crimes the area budget could hold
      with perfect knowledge (Hunt 2016 and the NIJ Real-Time Crime Forecasting
      Challenge scoring).
    - PEI* = PAI / PAI_best, where PAI_best is the best PAI for the area the model
      actually flagged, so a model is not marked down for flagging less than the
      budget (after White, Hunt & Green 2023). N and A cancel, so
      PEI* = n / n_best(a), with n_best(a) the most crimes a km² could hold.

    Both bounds rank cells by observed crime density (crimes per km²) and take
    the last cell in part (`RankedCells.best_capture`), the optimum of the
    fractional knapsack. No selection of whole cells in the same area captures
    more, so PEI and PEI* never exceed 1, and cells of equal density give the
    same bound in any order. Sums over slices pool every quantity, as in
    `pai_at_area_coverage`.
    """
    levels = [float(coverage) for coverage in coverages]
    for coverage in levels:
        check_share(coverage, "coverage")

    inputs = hotspot_inputs(crime_count, area_km2, slice_ids, "hotspot_curve")
    model = rank_cells(inputs, as_finite_float(risk, "risk"), "risk")

    results = [hotspot_result(inputs, model, coverage) for coverage in levels]
    return pl.DataFrame(
        [vars(result) for result in results],
        schema={
            "coverage": pl.Float64,
            "hit_rate": pl.Float64,
            "pai": pl.Float64,
            "pei": pl.Float64,
            "pei_star": pl.Float64,
            "area_share_used": pl.Float64,
            "n_crimes": pl.Int64,
            "crimes_captured": pl.Int64,
        },
        orient="row",
    )


def pei_at_area_coverage(
    risk: np.ndarray,
    crime_count: np.ndarray,
    area_km2: np.ndarray,
    slice_ids: np.ndarray,
    coverage: float = 0.05,
) -> HotspotResult:
    """Compute hit rate, PAI, PEI and PEI* at one area coverage, as `hotspot_curve` defines them."""
    check_share(coverage, "coverage")
    inputs = hotspot_inputs(crime_count, area_km2, slice_ids, "pei_at_area_coverage")
    model = rank_cells(inputs, as_finite_float(risk, "risk"), "risk")
    return hotspot_result(inputs, model, float(coverage))


def hotspot_inputs(crime_count: np.ndarray, area_km2: np.ndarray, slice_ids: np.ndarray, function: str) -> HotspotInputs:
    """Validate the observed side of a hotspot evaluation and rank cells with perfect knowledge."""
    crimes = as_crime_counts(crime_count)
    areas = as_areas(area_km2)
    slices = as_slice_ids(slice_ids)
    check_same_length(crime_count=crimes, area_km2=areas, slice_ids=slices)
    check_not_empty(function, crimes)

    by_density = rank_by_observed(crimes, areas, slices, crimes / areas)

    slice_crimes = np.bincount(by_density.slice_number, weights=by_density.crimes, minlength=by_density.n_slices)
    slice_area = np.bincount(by_density.slice_number, weights=by_density.areas, minlength=by_density.n_slices)
    return HotspotInputs(crimes, areas, slices, slice_crimes, slice_area, by_density)


def rank_cells(inputs: HotspotInputs, risk: np.ndarray, name: str) -> RankedCells:
    """Rank rows by descending `risk` within each slice, ties to the earlier row."""
    check_same_length(**{name: risk, "crime_count": inputs.crimes})
    order = sort_by_slice_then_risk(inputs.slices, risk)
    return ranked_cells(order, inputs.crimes, inputs.areas, inputs.slices)


def rank_by_observed(crimes: np.ndarray, areas: np.ndarray, slices: np.ndarray, key: np.ndarray) -> RankedCells:
    """Rank rows by descending `key` within each slice, ties to the smaller area, then the earlier row."""
    frame = pl.DataFrame({"slice": slices, "key": key + 0.0, "area": areas})
    order = frame.select(
        pl.arg_sort_by(["slice", "key", "area"], descending=[False, True, False], maintain_order=True)
    ).to_series().to_numpy()
    return ranked_cells(order, crimes, areas, slices)


def ranked_cells(order: np.ndarray, crimes: np.ndarray, areas: np.ndarray, slices: np.ndarray) -> RankedCells:
    """Reorder the rows and compute each slice's running and total area."""
    slice_number = number_sorted_slices(slices[order])
    sorted_areas = areas[order]

    frame = pl.DataFrame({"slice_number": slice_number, "area": sorted_areas})
    sums = frame.select(
        cumulative_area=pl.col("area").cum_sum().over("slice_number"),
        slice_area=pl.col("area").sum().over("slice_number"),
    )

    n_slices = int(slice_number[-1]) + 1 if slice_number.size else 0
    return RankedCells(
        order=order,
        slice_number=slice_number,
        crimes=crimes[order],
        areas=sorted_areas,
        cumulative_area=sums["cumulative_area"].to_numpy(),
        slice_area=sums["slice_area"].to_numpy(),
        n_slices=n_slices,
    )


def hotspot_result(inputs: HotspotInputs, model: RankedCells, coverage: float) -> HotspotResult:
    """Pool one coverage's model and perfect-knowledge captures over slices into a HotspotResult."""
    captured, flagged_area = model.capture(coverage)
    max_captured = inputs.by_density.best_capture(coverage * inputs.slice_area)
    best_captured = inputs.by_density.best_capture(flagged_area)

    n_crimes = int(inputs.slice_crimes.sum())
    crimes_captured = int(captured.sum())
    area_share = float(flagged_area.sum() / inputs.slice_area.sum())

    hit_rate = safe_ratio(crimes_captured, n_crimes)
    pai = None
    if hit_rate is not None and area_share > 0:
        pai = hit_rate / area_share

    pei = safe_ratio(crimes_captured, float(max_captured.sum()))
    pei_star = safe_ratio(crimes_captured, float(best_captured.sum()))

    logger.debug(
        "Hotspots at coverage %s: %d of %d crimes, %.1f at most within the budget, PEI* %s",
        coverage, crimes_captured, n_crimes, float(max_captured.sum()), pei_star,
    )
    return HotspotResult(
        coverage=coverage,
        hit_rate=hit_rate,
        pai=pai,
        pei=pei,
        pei_star=pei_star,
        area_share_used=area_share,
        n_crimes=n_crimes,
        crimes_captured=crimes_captured,
    )



def aggregate_periods(
    frame: pl.DataFrame,
    period: str,
    time_zone: str,
    shift_starts: Sequence[int] = (0, 8, 16),
    probability_columns: Sequence[str] = (),
    rate_columns: Sequence[str] = (),
) -> pl.DataFrame:
    """Aggregate cell-hour rows to cell-shift or cell-day rows in the city's local time.

    `frame` has one row per (cell_id, hour) with `hour` the UTC start of the
    hour (a naive Datetime is read as UTC), `crime_count`, `area_km2` and the
    model columns named in `probability_columns` and `rate_columns`.

    - "hour" returns `frame` unchanged plus period_start (equal to hour),
      local_date and period_hours (1).
    - "shift" groups the local hours into shifts that start at the local hours
      in `shift_starts`. A shift belongs to the local date it starts on, so with
      starts (6, 14, 22) the hours 00:00-05:59 belong to the previous day's
      22:00 shift. On daylight-saving days a shift has one hour more or less.
    - "day" groups local calendar days, 23 to 25 hours long.

    The shift and day output has one row per (cell_id, period_start) with
    cell_id, period_start (the UTC start of the first hour present), local_date
    (the local date the period belongs to), period_hours (hours present),
    crime_count (summed), area_km2, each probability column as 1 - prod(1 - p)
    (the chance of at least one event if hours are independent) and each rate
    or score column summed. Rows are sorted by period_start, then cell_id.
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}, got {period!r}.")
    check_time_zone(time_zone)
    probability_columns = list(probability_columns)
    rate_columns = list(rate_columns)
    utc = check_cell_hours(frame, probability_columns, rate_columns)

    local = pl.col("hour").dt.convert_time_zone(time_zone)
    if period == "hour":
        return frame.with_columns(
            period_start=pl.col("hour"),
            local_date=utc.select(local.dt.date()).to_series(),
            period_hours=pl.lit(1, dtype=pl.UInt32),
        )

    keyed = utc.with_columns(local_date=local.dt.date(), local_hour=local.dt.hour())
    if period == "shift":
        keyed = with_shift_keys(keyed, shift_starts)
    else:
        keyed = keyed.with_columns(shift_index=pl.lit(0, dtype=pl.Int64))

    aggregated = keyed.group_by("cell_id", "local_date", "shift_index").agg(
        period_start=pl.col("hour").min(),
        period_hours=pl.len(),
        crime_count=pl.col("crime_count").sum(),
        area_km2=pl.col("area_km2").first(),
        area_spread=pl.col("area_km2").max() - pl.col("area_km2").min(),
        *[(1 - (-pl.col(name)).log1p().sum().exp()).alias(name) for name in probability_columns],
        *[pl.col(name).sum() for name in rate_columns],
    )
    check_constant_areas(aggregated)

    columns = ["cell_id", "period_start", "local_date", "period_hours", "crime_count", "area_km2"]
    result = aggregated.select(*columns, *probability_columns, *rate_columns).sort("period_start", "cell_id")
    logger.info("Aggregated %d cell-hours to %d cell-%ss in %s", frame.height, result.height, period, time_zone)
    return result


def check_time_zone(time_zone: str) -> None:
    """Raise ValueError unless `time_zone` is an IANA time zone name."""
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as error:
        raise ValueError(f"time_zone must be an IANA name such as 'America/Chicago', got {time_zone!r}.") from error


def check_cell_hours(frame: pl.DataFrame, probability_columns: list[str], rate_columns: list[str]) -> pl.DataFrame:
    """Validate cell-hour rows for `aggregate_periods` and return them with `hour` in UTC."""
    required = ["cell_id", "hour", "crime_count", "area_km2", *probability_columns, *rate_columns]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ValueError(f"aggregate_periods needs columns {missing}, which the frame lacks (it has {frame.columns}).")
    if not isinstance(frame.schema["hour"], pl.Datetime):
        raise ValueError(f"hour must be a Datetime column of UTC hour starts, got {frame.schema['hour']}.")

    for name in required:
        check_no_nulls(frame, name)

    hour = pl.col("hour")
    utc = frame.with_columns(
        hour.dt.replace_time_zone("UTC") if frame.schema["hour"].time_zone is None else hour.dt.convert_time_zone("UTC")
    )
    first_bad_row(utc, hour != hour.dt.truncate("1h"), "hour", "must be the start of an hour")
    first_bad_row(utc, pl.struct("cell_id", "hour").is_duplicated(), "hour", "is a duplicate (cell_id, hour) row")
    for name in probability_columns:
        first_bad_row(utc, (pl.col(name) < 0) | (pl.col(name) > 1) | pl.col(name).is_nan(), name, "must be within [0, 1]")
    return utc


def check_no_nulls(frame: pl.DataFrame, name: str) -> None:
    """Raise ValueError naming the first row where column `name` is null."""
    nulls = frame[name].is_null()
    if nulls.any():
        raise ValueError(f"{name} is null at row {int(nulls.arg_true()[0])}. Fill or drop that row before aggregating.")


def first_bad_row(frame: pl.DataFrame, condition: pl.Expr, name: str, problem: str) -> None:
    """Raise ValueError naming the first row where `condition` holds, with its cell_id and value."""
    bad = frame.select(condition.alias("bad"))["bad"]
    if bad.any():
        position = int(bad.arg_true()[0])
        row = frame.row(position, named=True)
        raise ValueError(
            f"{name} {problem}: found {row[name]!r} at row {position} (cell_id {row['cell_id']!r})."
        )


def with_shift_keys(frame: pl.DataFrame, shift_starts: Sequence[int]) -> pl.DataFrame:
    """Add shift_index and move local_date back a day for hours before the first shift start."""
    starts = list(shift_starts)
    valid = all(isinstance(start, numbers.Integral) and not isinstance(start, bool) and 0 <= start <= 23 for start in starts)
    if not starts or not valid or starts != sorted(set(starts)):
        raise ValueError(f"shift_starts must be increasing local hours in 0..23, got {shift_starts!r}.")

    # Hours before the first start belong to the last shift of the previous day.
    index_of_hour = [bisect.bisect_right(starts, hour) - 1 for hour in range(24)]
    day_offset = [1 if index < 0 else 0 for index in index_of_hour]
    index_of_hour = [index % len(starts) for index in index_of_hour]

    local_hour = pl.col("local_hour")
    return frame.with_columns(
        shift_index=local_hour.replace_strict(list(range(24)), index_of_hour, return_dtype=pl.Int64),
        local_date=pl.col("local_date")
        - pl.duration(days=local_hour.replace_strict(list(range(24)), day_offset, return_dtype=pl.Int64)),
    )


def check_constant_areas(aggregated: pl.DataFrame) -> None:
    """Raise ValueError when a cell's area changes within a period."""
    changed = aggregated.filter(pl.col("area_spread") > 0)
    if changed.height:
        row = changed.row(0, named=True)
        raise ValueError(
            f"area_km2 of cell {row['cell_id']!r} changes within the period starting {row['period_start']}. "
            "Give each cell one area."
        )
