"""Balanced downsampling, prior correction and time-based splits for rare-event training.

Violent crime occurs in roughly 0.3-1% of cell-hours, so Riskcast trains each
ensemble member on all positives plus an equal-sized random draw of negatives,
then maps the member's probabilities back to the population base rate.

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

import numpy as np


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


def downsample_balanced(y: np.ndarray, rng: np.random.Generator, ratio: float = 1.0) -> SampleIndex:
    """Select every positive row plus ``ratio`` x n_pos negatives drawn without replacement.

    All negatives are kept when there are fewer than requested. At least one
    negative is always drawn, so ``beta`` stays positive. Raises ``ValueError``
    when ``y`` has no positives or no negatives, or when ``ratio`` is not positive.
    """
    if not ratio > 0:
        raise ValueError(f"ratio must be > 0 (negatives drawn per positive), got {ratio}")

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
