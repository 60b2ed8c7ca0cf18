"""Balanced downsampling, prior correction and time-based splits for rare-event training.

Violent crime occurs in roughly 0.3-3% of cell-hours, so Riskcast trains each
ensemble member on all positives plus a random draw of ``ratio`` negatives per
positive (1:1 by default, 1:3 also supported), then maps the member's
probabilities back to the population base rate.

If a model is trained on data where negatives were kept with probability
``beta`` and every positive was kept, its posterior ``p_s`` relates to the
population posterior ``p`` by

    p = beta * p_s / (beta * p_s - p_s + 1),

which is the same as adding ``log(beta)`` to the model's log-odds. Sources:

- A. Dal Pozzolo, O. Caelen, R. A. Johnson and G. Bontempi, "Calibrating
  Probability with Undersampling for Unbalanced Classification", IEEE Symposium
  Series on Computational Intelligence (SSCI) 2015, pp. 159-166,
  DOI 10.1109/SSCI.2015.33.
- G. King and L. Zeng, "Logistic Regression in Rare Events Data", Political
  Analysis 9(2), 2001, pp. 137-163, DOI 10.1093/oxfordjournals.pan.a004868
  (prior correction under choice-based sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

HOURS_PER_WEEK = 168


@dataclass(frozen=True, eq=False)
class SampleIndex:
    """Row positions of one balanced downsample, with the counts behind its sampling rate.

    ``beta`` is the fraction of negatives kept (n_neg_sampled / n_neg_total).
    Every positive is kept, so ``beta`` is the value that ``prior_correct`` needs.
    """

    indices: np.ndarray
    n_pos: int
    n_neg_total: int
    n_neg_sampled: int
    beta: float


def check_binary_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate that ``y`` is a 1-D array of 0/1 labels and return (positive mask, negative mask)."""
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be a 1-D array of 0/1 labels, got shape {labels.shape}")

    positive = labels == 1
    negative = labels == 0
    invalid = ~(positive | negative)
    if invalid.any():
        examples = np.unique(labels[invalid])[:5].tolist()
        raise ValueError(
            f"y must contain only 0 and 1, but {int(invalid.sum())} values are neither "
            f"(for example {examples}); convert counts to 'at least one event' with y = (count > 0)"
        )

    return positive, negative


@dataclass(frozen=True, eq=False)
class Bootstrap:
    """One stratified bootstrap of a downsample, with the out-of-bag rows left for early stopping.

    ``indices`` and ``out_of_bag`` are positions in the full arrays. ``beta`` is the
    negative sampling rate relative to the positive one, which is what ``prior_correct``
    needs once both classes are subsampled.
    """

    indices: np.ndarray
    out_of_bag: np.ndarray
    n_pos: int
    n_neg: int
    beta: float


@dataclass(frozen=True, eq=False)
class RecentWeeksSplit:
    """Fit rows and the latest validation weeks of a training window.

    ``week`` is -1 on fit rows and 0, 1, ... on validation rows, where week 0 contains
    the last 168 hours before the cut-off (the last hour plus one).
    """

    fit: np.ndarray
    validation: np.ndarray
    week: np.ndarray
    n_weeks: int
    first_validation_hour: int
    last_hour: int


def check_negative_ratio(ratio: float) -> float:
    """Return ``ratio`` as a float, or raise ``ValueError`` unless it is a finite number > 0."""
    value = float(ratio)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"negative ratio must be a finite number > 0 (negatives drawn per positive, "
            f"for example 1 or 3), got {ratio}"
        )
    return value


def downsample_balanced(y: np.ndarray, rng: np.random.Generator, ratio: float = 1.0) -> SampleIndex:
    """Select every positive row plus ``ratio`` x n_pos negatives drawn without replacement.

    All negatives are kept when there are fewer than requested. At least one
    negative is always drawn, so ``beta`` stays positive. Raises ``ValueError``
    when ``y`` has no positives or no negatives, or when ``ratio`` is not positive.
    """
    ratio = check_negative_ratio(ratio)

    positive, negative = check_binary_labels(y)
    n_pos = int(positive.sum())
    n_neg_total = int(negative.sum())
    if n_pos == 0:
        raise ValueError(
            f"cannot downsample: y has 0 positives among {y.shape[0]} rows; "
            "use a longer time window or a more common event definition"
        )
    if n_neg_total == 0:
        raise ValueError(
            f"cannot downsample: y has 0 negatives among {y.shape[0]} rows ({n_pos} positives); "
            "check that y marks events with 1 and non-events with 0"
        )

    n_neg_sampled = min(n_neg_total, max(1, int(round(ratio * n_pos))))
    negative_rows = np.flatnonzero(negative)
    drawn = rng.choice(negative_rows, size=n_neg_sampled, replace=False)

    indices = np.concatenate([np.flatnonzero(positive), drawn]).astype(np.int64)
    indices.sort()

    return SampleIndex(
        indices=indices,
        n_pos=n_pos,
        n_neg_total=n_neg_total,
        n_neg_sampled=n_neg_sampled,
        beta=n_neg_sampled / n_neg_total,
    )


def prior_correct(p_sampled: np.ndarray, beta: float) -> np.ndarray:
    """Map probabilities from a model trained on a downsample back to the population base rate.

    ``beta`` is the negative sampling rate in (0, 1]. With ``beta == 1`` the
    input is returned unchanged as float64. The mapping is monotone increasing,
    so it never changes the ranking of rows.
    """
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta (negative sampling rate) must be in (0, 1], got {beta}")

    p_s = np.asarray(p_sampled, dtype=np.float64)

    # beta*p_s + (1 - p_s) equals beta*p_s - p_s + 1, but this order avoids
    # cancellation, so p_s = 1 maps to exactly 1.
    return beta * p_s / (beta * p_s + (1.0 - p_s))


def time_split(hours: np.ndarray, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into (fit mask, validation mask) so that validation contains the latest hours.

    The last ``round(validation_fraction * n_distinct_hours)`` distinct hours go to
    validation, so every fit hour is earlier than every validation hour and rows
    of one hour are never split. Raises ``ValueError`` for a fraction outside
    (0, 1) or when either side would be empty.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")

    hour_values = np.asarray(hours)
    if hour_values.ndim != 1:
        raise ValueError(f"hours must be a 1-D array, got shape {hour_values.shape}")

    distinct_hours = np.unique(hour_values)
    n_distinct = distinct_hours.shape[0]
    n_validation_hours = int(round(validation_fraction * n_distinct))
    if n_validation_hours == 0 or n_validation_hours == n_distinct:
        raise ValueError(
            f"validation_fraction={validation_fraction} of {n_distinct} distinct hours leaves "
            f"{n_distinct - n_validation_hours} fit hours and {n_validation_hours} validation hours; "
            "both must be at least 1, so use more hours of data or change validation_fraction"
        )

    first_validation_hour = distinct_hours[n_distinct - n_validation_hours]
    validation = hour_values >= first_validation_hour
    return ~validation, validation


def bootstrap_downsample(
    y: np.ndarray, sample: SampleIndex, rng: np.random.Generator, n_rows: int | None
) -> Bootstrap:
    """Draw a stratified bootstrap of ``n_rows`` rows (the whole downsample when None) from ``sample``.

    Positives and negatives are drawn with replacement separately, in the downsample's
    class proportions, so the class balance of every bag is exact. The out-of-bag rows
    are the downsample's rows that the bag does not contain.
    """
    labels = np.asarray(y)[sample.indices]
    positives = sample.indices[labels == 1]
    negatives = sample.indices[labels == 0]
    n_sample = positives.shape[0] + negatives.shape[0]

    n_bag = n_sample if n_rows is None else min(int(n_rows), n_sample)
    if n_bag < 2:
        raise ValueError(f"bootstrap size must be at least 2 rows, got {n_bag}; increase the bootstrap rows")
    n_pos_bag = min(max(1, int(round(n_bag * positives.shape[0] / n_sample))), n_bag - 1)
    n_neg_bag = n_bag - n_pos_bag

    # Draws are positions within [positives, negatives], so a boolean mask finds the out-of-bag rows.
    pool = np.concatenate([positives, negatives])
    local = np.concatenate([
        rng.integers(0, positives.shape[0], size=n_pos_bag),
        positives.shape[0] + rng.integers(0, negatives.shape[0], size=n_neg_bag),
    ])
    in_bag = np.zeros(n_sample, dtype=bool)
    in_bag[local] = True
    drawn = np.sort(pool[local])
    out_of_bag = np.sort(pool[~in_bag])

    # Positives are kept at rate n_pos_bag / n_pos and negatives at n_neg_bag / n_neg_total.
    beta = (n_neg_bag / sample.n_neg_total) / (n_pos_bag / sample.n_pos)
    return Bootstrap(indices=drawn, out_of_bag=out_of_bag, n_pos=n_pos_bag, n_neg=n_neg_bag, beta=min(beta, 1.0))


def recent_weeks_split(hours: np.ndarray, validation_weeks: int, max_validation_fraction: float) -> RecentWeeksSplit:
    """Hold out the latest ``validation_weeks`` weeks of hours, at most ``max_validation_fraction`` of the span.

    Weeks are counted back from the last hour, so week 0 is the most recent one. When
    the window is short, the cap on the fraction shortens the validation part (its
    oldest week is then partial). Raises ``ValueError`` when either part would be empty.
    """
    if validation_weeks < 1:
        raise ValueError(f"validation_weeks must be >= 1, got {validation_weeks}")
    if not 0.0 < max_validation_fraction < 1.0:
        raise ValueError(f"max_validation_fraction must be in (0, 1), got {max_validation_fraction}")

    hour_values = np.asarray(hours)
    if hour_values.ndim != 1 or hour_values.shape[0] == 0:
        raise ValueError(f"hours must be a non-empty 1-D array, got shape {hour_values.shape}")

    first_hour = int(hour_values.min())
    last_hour = int(hour_values.max())
    span_hours = last_hour - first_hour + 1
    n_validation_hours = min(validation_weeks * HOURS_PER_WEEK, int(max_validation_fraction * span_hours))
    first_validation_hour = last_hour - n_validation_hours + 1
    if n_validation_hours < 1 or first_validation_hour <= first_hour:
        raise ValueError(
            f"a window of {span_hours} hours leaves no room for validation: {validation_weeks} weeks capped at "
            f"{max_validation_fraction:.0%} of the window is {n_validation_hours} hours; use a longer training window"
        )

    validation = hour_values >= first_validation_hour
    week = np.full(hour_values.shape[0], -1, dtype=np.int64)
    week[validation] = (last_hour - hour_values[validation]) // HOURS_PER_WEEK
    n_weeks = int(week.max()) + 1

    return RecentWeeksSplit(
        fit=~validation,
        validation=validation,
        week=week,
        n_weeks=n_weeks,
        first_validation_hour=first_validation_hour,
        last_hour=last_hour,
    )
