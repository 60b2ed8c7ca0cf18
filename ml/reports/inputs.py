"""The tables and descriptions that the Model Metrics report is rendered from, and lookups on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

# Columns each non-empty frame must have. An empty frame (no rows) may lack them: the report then
# says "not computed" for the sections that need it.
REQUIRED_COLUMNS = {
    "metrics": ("model", "aggregation", "metric", "value", "ci_low", "ci_high"),
    "comparisons": ("model", "aggregation", "metric", "reference_value", "baseline_value", "difference",
                    "ci_low", "ci_high", "p_value"),
    "thresholds": ("model", "aggregation", "rule", "threshold", "tp", "fp", "tn", "fn", "tpr", "tnr", "fpr",
                   "fnr", "accuracy", "precision", "flag_rate"),
    "hotspot_curve": ("model", "aggregation", "coverage", "hit_rate", "pai", "pei", "pei_star",
                      "area_share_used"),
    "curves": ("model", "aggregation", "curve", "x", "y"),
    "reliability": ("model", "aggregation", "bin", "mean_predicted", "observed_rate", "n"),
    "timeseries": ("model", "aggregation", "origin", "metric", "value", "ci_low", "ci_high"),
}

# Metric names under which a metrics frame may carry the share of units with an incident.
BASE_RATE_METRICS = ("base_rate", "observed_rate")


@dataclass(frozen=True)
class ModelMetricsInputs:
    """Everything the Model Metrics report shows, as computed by a rolling-origin backtest.

    ``coverage`` is the share of the area (0 to 1) at which PAI, hit rate and PEI are compared.
    Intervals are 95% intervals, null where none was computed. Origins are UTC datetimes.
    """

    title: str
    synthetic: bool
    target: str
    target_description: str
    period_description: str
    issue_rule: str
    reference_model: str
    threshold_rule: str
    coverage: float
    model_notes: dict[str, str]
    weather_note: str
    metrics: pl.DataFrame
    comparisons: pl.DataFrame
    thresholds: pl.DataFrame
    hotspot_curve: pl.DataFrame
    curves: pl.DataFrame
    reliability: pl.DataFrame
    timeseries: pl.DataFrame
    weather_modes: pl.DataFrame | None = None

    def __post_init__(self) -> None:
        for name, columns in REQUIRED_COLUMNS.items():
            frame = getattr(self, name)
            if not isinstance(frame, pl.DataFrame):
                raise TypeError(f"ModelMetricsInputs.{name} must be a polars DataFrame, not "
                                f"{type(frame).__name__}; pass pl.DataFrame() when it was not computed")
            missing = [column for column in columns if column not in frame.columns]
            if frame.height > 0 and missing:
                raise ValueError(f"ModelMetricsInputs.{name} has {frame.height} rows but lacks the columns "
                                 f"{missing} (it has {frame.columns}); add them, or pass an empty frame "
                                 f"if the {name} table was not computed")
        if not 0 < self.coverage <= 1:
            raise ValueError(f"ModelMetricsInputs.coverage must be a share of the area in (0, 1], got "
                             f"{self.coverage!r}; pass 0.05 for 5%")


@dataclass(frozen=True)
class BaseRate:
    """The share of units (cell-hours, cell-shifts or cell-days) with at least one incident."""

    rate: float
    positives: int | None
    total: int | None


def rows_where(frame: pl.DataFrame, **equal: Any) -> pl.DataFrame:
    """Filter to rows whose columns equal the given values, or return an empty frame when a column is absent."""
    if frame.height == 0 or any(column not in frame.columns for column in equal):
        return frame.clear()
    condition = pl.lit(True)
    for column, value in equal.items():
        condition = condition & (pl.col(column) == value)
    return frame.filter(condition)


def first_row(frame: pl.DataFrame, **equal: Any) -> dict[str, Any] | None:
    matches = rows_where(frame, **equal)
    if matches.height == 0:
        return None
    return matches.row(0, named=True)


def distinct(frame: pl.DataFrame, column: str) -> list[str]:
    if frame.height == 0 or column not in frame.columns:
        return []
    return [value for value in frame[column].unique().to_list() if value is not None]


def base_rate(inputs: ModelMetricsInputs, aggregation: str) -> BaseRate | None:
    """The base rate from a confusion matrix of the aggregation, else from a base-rate metric.

    Every model's confusion matrix over the same units has the same positives and total, so the
    reference model's first row is used when present and any model's row otherwise.
    """
    counts = rows_where(inputs.thresholds, aggregation=aggregation)
    if counts.height > 0:
        preferred = rows_where(counts, model=inputs.reference_model)
        row = (preferred if preferred.height > 0 else counts).row(0, named=True)
        positives = int(row["tp"] + row["fn"])
        total = int(row["tp"] + row["fp"] + row["tn"] + row["fn"])
        if total > 0:
            return BaseRate(positives / total, positives, total)

    for metric in BASE_RATE_METRICS:
        row = first_row(inputs.metrics, aggregation=aggregation, metric=metric)
        if row is not None and row["value"] is not None:
            return BaseRate(float(row["value"]), None, None)
    return None


def all_models(inputs: ModelMetricsInputs) -> list[str]:
    frames = (inputs.metrics, inputs.comparisons, inputs.thresholds, inputs.hotspot_curve, inputs.curves,
              inputs.reliability, inputs.timeseries)
    names = {name for frame in frames for name in distinct(frame, "model")}
    return sorted(names | set(inputs.model_notes))


def all_aggregations(inputs: ModelMetricsInputs) -> list[str]:
    frames = (inputs.metrics, inputs.comparisons, inputs.thresholds, inputs.hotspot_curve, inputs.curves,
              inputs.reliability, inputs.timeseries)
    return sorted({name for frame in frames for name in distinct(frame, "aggregation")})
