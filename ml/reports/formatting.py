"""Number, label and ordering helpers shared by the report's text, tables and figures."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

# Significant digits of every non-count number shown to readers.
SIGNIFICANT_DIGITS = 3

METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "brier": "Brier score",
    "log_loss": "log loss",
    "ece": "ECE",
    "pai": "PAI",
    "pei": "PEI",
    "pei_star": "PEI*",
    "hit_rate": "hit rate",
    "tpr": "TPR",
    "tnr": "TNR",
    "fpr": "FPR",
    "fnr": "FNR",
    "accuracy": "accuracy",
    "precision": "precision",
    "flag_rate": "flag rate",
    "area_share_used": "area share used",
}

HIGHER_IS_BETTER = {"roc_auc", "pr_auc", "pai", "pei", "pei_star", "hit_rate", "tpr", "tnr", "precision"}
LOWER_IS_BETTER = {"brier", "log_loss", "ece", "fpr", "fnr"}

# Units that one row of each aggregation counts, in the plural.
AGGREGATION_UNITS = {"hour": "cell-hours", "shift": "8-hour cell-shifts", "day": "cell-days"}
AGGREGATION_ORDER = ["hour", "shift", "day"]

# Known models in reading order: the ensemble, status-quo baselines, research baselines, bounds.
MODEL_ORDER = [
    "ensemble", "compstat", "compstat_day", "naive", "retrospective_hotspot",
    "prospective_hotspot", "sepp", "random", "oracle",
]


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def format_number(value: float | None) -> str:
    """Format with three significant digits, or with thousands separators from 1,000 up."""
    if is_missing(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{SIGNIFICANT_DIGITS}g}"


def format_signed(value: float | None) -> str:
    if is_missing(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:+,.0f}"
    return f"{value:+.{SIGNIFICANT_DIGITS}g}"


def format_count(value: float | None) -> str:
    if is_missing(value):
        return "n/a"
    return f"{int(value):,}"


def format_share(value: float | None) -> str:
    """Format a share in [0, 1] as a percentage with three significant digits."""
    if is_missing(value):
        return "n/a"
    return f"{format_number(value * 100)}%"


def format_interval(low: float | None, high: float | None) -> str:
    if is_missing(low) or is_missing(high):
        return ""
    return f"[{format_number(low)}, {format_number(high)}]"


def format_p_value(value: float | None) -> str:
    if is_missing(value):
        return "n/a"
    if value < 0.001:
        return "< 0.001"
    return f"{value:.2g}"


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def aggregation_units(aggregation: str) -> str:
    return AGGREGATION_UNITS.get(aggregation, f"cell-{aggregation} units")


def ordered_aggregations(names: Iterable[str]) -> list[str]:
    unique = set(names)
    known = [name for name in AGGREGATION_ORDER if name in unique]
    return known + sorted(unique - set(known))


def ordered_models(names: Iterable[str], reference: str) -> list[str]:
    """Order models with the reference first, then known baselines, then unknown names sorted."""
    unique = set(names)
    known = [name for name in MODEL_ORDER if name in unique and name != reference]
    unknown = sorted(unique - set(known) - {reference})
    first = [reference] if reference in unique else []
    return first + known + unknown


def judge_difference(metric: str, low: float | None, high: float | None) -> str:
    """Judge the reference model against a baseline from the 95% interval of their difference.

    The difference is reference minus baseline, so for a metric where lower is better (Brier
    score, ECE) an interval below 0 means the reference model is better.
    """
    if is_missing(low) or is_missing(high):
        return "no interval"
    if metric in HIGHER_IS_BETTER:
        sign = 1
    elif metric in LOWER_IS_BETTER:
        sign = -1
    else:
        return "direction unknown"

    if sign * low > 0 and sign * high > 0:
        return "better"
    if sign * low < 0 and sign * high < 0:
        return "worse"
    return "no clear difference"
