"""Rolling-origin backtests: every model issues the same forecasts, and the same code scores them.

A rolling-origin evaluation (Tashman 2000, "Out-of-sample tests of forecasting accuracy: an
analysis and review", International Journal of Forecasting 16(4), DOI
10.1016/S0169-2070(00)00065-0) trains a model on the data up to an origin ``t``, forecasts the
window after ``t``, then moves the origin forward and repeats, so every forecast is out of sample
and the evaluation covers many periods rather than one.

Here the origins are the ends of the ensemble's refresh partitions. Inside the backtest window a
forecast is issued once a day, at a fixed local hour, for every cell and for each hour until the
next issue. The ensemble that issues it is the latest one trained before the issue time (its
``train_end`` is the forecast's origin). Every baseline is fitted at the issue time on the
incidents before it, so all models see the same information up to the same moment.

Scores are put on one footing before they are compared:

- the ensemble gives the probability of at least one incident in the cell-hour;
- a "rate" baseline gives an expected count ``r``, read as a Poisson probability ``1 - exp(-r)``
  (the same ranking, and a probability that the calibration metrics can judge);
- a "score" baseline (random, oracle) gives a ranking only and gets no probability metrics.

Scores are then aggregated to local shifts and days (the chance of at least one incident over the
hours, ``1 - prod(1 - p)``) and scored with the metrics of ``ml.metrics``; intervals and p-values
come from the paired bootstrap over days of ``ml.bootstrap``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from sklearn.metrics import precision_recall_curve, roc_curve

from ml.baselines import RiskBaseline
from ml.bootstrap import paired_day_bootstrap
from ml.metrics import (
    aggregate_periods,
    brier_score,
    choose_threshold,
    expected_calibration_error,
    hotspot_curve,
    log_loss,
    pr_auc,
    reliability_curve,
    roc_auc,
    threshold_table,
)
from ml.model_data import build_scoring_blocks

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
REFERENCE_MODEL = "ensemble"
COVERAGE_LEVELS = (0.01, 0.02, 0.05, 0.10, 0.20)
CURVE_POINTS = 300
ORIGIN_BOOTSTRAP_RESAMPLES = 200


@dataclass(frozen=True)
class Issue:
    """One forecast: issued at ``issued_at`` (UTC hour start) for the hours up to ``until``."""

    issued_at: datetime
    until: datetime

    @property
    def hours(self) -> int:
        return int((self.until - self.issued_at) / HOUR)


def local_issue_instant(day: date, issue_hour: int, zone: ZoneInfo) -> datetime:
    """Return the UTC hour that contains local ``issue_hour`` on ``day``.

    A local hour skipped by a spring DST change becomes the first UTC hour after the gap.
    """
    # zoneinfo reads a nonexistent local time with the offset in force before the change, so it
    # lands on the first hour after the gap. An ambiguous time gets its first occurrence (fold 0).
    local = datetime.combine(day, time(issue_hour), tzinfo=zone)
    return local.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def plan_issues(start: datetime, end: datetime, time_zone: str, issue_hour: int) -> list[Issue]:
    """Daily issues at local ``issue_hour`` whose issue time lies in ``[start, end)``.

    Each issue covers the hours up to the next local issue time, so the issues tile the window's
    hours from the first issue on: 24 hours on most days, 23 and 25 on DST change days.
    """
    zone = ZoneInfo(time_zone)
    first_day = start.astimezone(zone).date() - timedelta(days=1)
    last_day = end.astimezone(zone).date() + timedelta(days=1)
    instants = [local_issue_instant(first_day + timedelta(days=offset), issue_hour, zone)
                for offset in range((last_day - first_day).days + 1)]

    issues = [Issue(moment, following) for moment, following in zip(instants, instants[1:])
              if start <= moment < end]
    if not issues:
        raise ValueError(f"the backtest window {start.isoformat()} to {end.isoformat()} contains no local "
                         f"{issue_hour:02d}:00 in {time_zone}; widen the window to at least a day")
    return issues


def target_rows(issue: Issue, cell_ids: Sequence[str]) -> pl.DataFrame:
    """Return every (cell, hour) the issue forecasts, with its horizon, sorted by hour then cell."""
    hours = pl.datetime_range(issue.issued_at, issue.until - HOUR, "1h", eager=True, time_zone="UTC")
    frame = pl.DataFrame({"hour": hours}).join(pl.DataFrame({"cell_id": list(cell_ids)}), how="cross")
    horizon = ((pl.col("hour") - pl.lit(issue.issued_at)).dt.total_hours() + 1).cast(pl.Int16)
    return frame.with_columns(horizon_hours=horizon).select("cell_id", "hour", "horizon_hours")


class EnsembleForecaster(RiskBaseline):
    """A trained ensemble behind the baseline interface: ``fit`` only fixes the cut-off.

    ``cutoff_rows(cutoff)`` returns the feature rows of the cut-off hour (one per cell), which hold
    the state before that hour. ``predict`` expands them to the target hours' horizons with
    ``build_scoring_blocks`` and returns the ensemble's probability as ``risk``.
    """

    name = REFERENCE_MODEL
    risk_kind = "probability"

    def __init__(self, ensemble, cutoff_rows: Callable[[datetime], pl.DataFrame], time_zone: str,
                 holiday_country: str, holiday_subdivision: str | None, weather_inputs=None,
                 weather=None) -> None:
        self.ensemble = ensemble
        self.weather_inputs = weather_inputs
        self.weather = weather
        self.cutoff_rows = cutoff_rows
        self.time_zone = time_zone
        self.holiday_country = holiday_country
        self.holiday_subdivision = holiday_subdivision
        self.cutoff: datetime | None = None

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "EnsembleForecaster":
        self.cutoff = cutoff
        return self

    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        if self.cutoff is None:
            raise RuntimeError("EnsembleForecaster.predict was called before fit; call fit(history, cutoff) first")
        rows = self.cutoff_rows(self.cutoff)
        last_hour = targets["hour"].max()
        horizons = int((last_hour - self.cutoff) / HOUR) + 1
        if targets["hour"].min() < self.cutoff:
            raise ValueError(f"targets start {targets['hour'].min()}, before the cut-off {self.cutoff}; "
                             f"an ensemble forecasts only hours at or after its cut-off")

        keys, features = build_scoring_blocks(rows, horizons, self.time_zone, self.holiday_country,
                                             self.holiday_subdivision, self.ensemble.feature_names,
                                             self.weather_inputs, self.weather)
        scored = keys.with_columns(pl.Series("risk", self.ensemble.predict_proba(features), dtype=pl.Float64))
        joined = targets.join(scored.select("cell_id", "hour", "risk"), on=["cell_id", "hour"], how="left",
                              maintain_order="left")
        missing = joined["risk"].null_count()
        if missing:
            raise ValueError(f"the ensemble scored no risk for {missing} target cell-hours after "
                             f"{self.cutoff.isoformat()}; its feature rows lack those cells")
        return joined


def forecast_issue(issue: Issue, origin: datetime, cell_ids: Sequence[str],
                   forecasters: dict[str, RiskBaseline], histories: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Fit every forecaster at the issue time and return one row per target cell-hour with all risks.

    ``histories`` maps each forecaster's name to the history it is fitted on (the complete spine for
    averages, the incidents only for point-process baselines, anything for the ensemble).
    """
    targets = target_rows(issue, cell_ids)
    frame = targets.with_columns(issued_at=pl.lit(issue.issued_at), origin=pl.lit(origin))
    for name, forecaster in forecasters.items():
        forecaster.fit(histories[name], issue.issued_at)
        risk = forecaster.predict(targets.select("cell_id", "hour"))["risk"]
        frame = frame.with_columns(risk.alias(name))
    return frame


def as_probability(risk: pl.Expr, kind: str) -> pl.Expr:
    """Turn a model's risk into the probability of at least one incident (rates via Poisson)."""
    if kind == "rate":
        return 1.0 - (-risk.clip(lower_bound=0.0)).exp()
    return risk


@dataclass
class BacktestTables:
    """The metric tables of one backtest, in the layout the Model Metrics report reads."""

    metrics: pl.DataFrame
    comparisons: pl.DataFrame
    thresholds: pl.DataFrame
    hotspot_curve: pl.DataFrame
    curves: pl.DataFrame
    reliability: pl.DataFrame
    timeseries: pl.DataFrame
    base_rates: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoringSettings:
    time_zone: str
    coverage: float = 0.05
    aggregations: tuple[str, ...] = ("hour", "shift", "day")
    shift_starts: tuple[int, ...] = (0, 8, 16)
    threshold_rule: str = "coverage"
    threshold_value: float | None = None
    n_boot: int = 1000
    seed: int = 11


def probability_frame(predictions: pl.DataFrame, kinds: dict[str, str]) -> pl.DataFrame:
    """Predictions with rate models turned into probabilities; score models left as they are."""
    return predictions.with_columns([as_probability(pl.col(name), kind).alias(name) for name, kind in kinds.items()])


def aggregate(predictions: pl.DataFrame, kinds: dict[str, str], period: str, settings: ScoringSettings) -> pl.DataFrame:
    """Aggregate probabilities to the period, and attach the local day and the origin of each period."""
    probability_columns = [name for name, kind in kinds.items() if kind != "score"]
    score_columns = [name for name, kind in kinds.items() if kind == "score"]
    aggregated = aggregate_periods(predictions.select("cell_id", "hour", "crime_count", "area_km2", *kinds),
                                   period, settings.time_zone, shift_starts=tuple(settings.shift_starts),
                                   probability_columns=probability_columns, rate_columns=score_columns)

    origins = (predictions.group_by("hour").agg(pl.col("origin").first()).sort("hour")
               .rename({"hour": "period_start"}))
    local_day = pl.col("period_start").dt.convert_time_zone(settings.time_zone).dt.date()
    return (aggregated.sort("period_start")
            .join_asof(origins, on="period_start", strategy="backward")
            .with_columns(day=local_day.cast(pl.Int32), slice=pl.col("period_start").dt.epoch("s")))


def thinned_curve(x: np.ndarray, y: np.ndarray, points: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``points`` evenly spaced points of a curve, always with both ends."""
    if x.size <= points:
        return x, y
    keep = np.unique(np.linspace(0, x.size - 1, points).round().astype(int))
    return x[keep], y[keep]


def model_rows(frame: pl.DataFrame, model: str, kind: str, period: str,
               settings: ScoringSettings) -> tuple[list[dict], list[dict], list[dict], list[dict], list[dict]]:
    """Point metrics, threshold rows, hotspot curve, ROC/PR points and reliability bins of one model."""
    observed = (frame["crime_count"] > 0).to_numpy()
    counts = frame["crime_count"].to_numpy()
    score = frame[model].to_numpy().astype(np.float64)
    areas = frame["area_km2"].to_numpy()
    slices = frame["slice"].to_numpy()
    probabilistic = kind != "score"

    point = {"roc_auc": roc_auc(observed, score), "pr_auc": pr_auc(observed, score)}
    if probabilistic:
        point["brier"] = brier_score(observed, score)
        point["log_loss"] = log_loss(observed, score)
        point["ece"] = expected_calibration_error(observed, score)
        point["mean_probability"] = float(score.mean())

    curve = hotspot_curve(score, counts, areas, slices, coverages=COVERAGE_LEVELS)
    at_coverage = curve.filter((pl.col("coverage") - settings.coverage).abs() < 1e-9)
    if at_coverage.height == 0:
        at_coverage = hotspot_curve(score, counts, areas, slices, coverages=(settings.coverage,))
    for name in ("pai", "hit_rate", "pei", "pei_star"):
        point[name] = at_coverage[name][0]

    rule_value = settings.coverage if settings.threshold_rule == "coverage" else settings.threshold_value
    choice = choose_threshold(observed, score, settings.threshold_rule, value=rule_value, slice_ids=slices)
    at_threshold = choice.metrics
    for name in ("tpr", "tnr", "fpr", "fnr", "accuracy", "precision"):
        point[name] = getattr(at_threshold, name)
    point["flag_rate"] = choice.flag_rate

    thresholds = [threshold_record(model, period, settings.threshold_rule, choice)]
    if settings.threshold_rule != "youden":
        thresholds.append(threshold_record(model, period, "youden", choose_threshold(observed, score, "youden")))
    quantiles = np.quantile(score, [1 - share for share in COVERAGE_LEVELS])
    table = threshold_table(observed, score, list(quantiles))
    thresholds += [{"model": model, "aggregation": period, "rule": f"top {share:.0%} of cell-periods", **row}
                   for share, row in zip(COVERAGE_LEVELS, table.to_dicts())]

    hotspot = [{"model": model, "aggregation": period, **row} for row in
               curve.select("coverage", "hit_rate", "pai", "pei", "pei_star", "area_share_used").to_dicts()]
    curves = curve_points(model, period, observed, score)
    reliability = []
    if probabilistic:
        reliability = [{"model": model, "aggregation": period, **row} for row in
                       reliability_curve(observed, score).select(
                           "bin", "mean_predicted", "observed_rate", "n").to_dicts()]
    metrics = [{"model": model, "aggregation": period, "metric": name, "value": value}
               for name, value in point.items()]
    return metrics, thresholds, hotspot, curves, reliability


def threshold_record(model: str, period: str, rule: str, choice) -> dict:
    result = choice.metrics
    return {"model": model, "aggregation": period, "rule": rule, "threshold": None if choice.threshold is None else float(choice.threshold),
            "tp": result.tp, "fp": result.fp, "tn": result.tn, "fn": result.fn, "tpr": result.tpr,
            "tnr": result.tnr, "fpr": result.fpr, "fnr": result.fnr, "accuracy": result.accuracy,
            "precision": result.precision, "flag_rate": choice.flag_rate}


def curve_points(model: str, period: str, observed: np.ndarray, score: np.ndarray) -> list[dict]:
    if observed.all() or not observed.any():
        return []
    fpr, tpr, _ = roc_curve(observed, score, drop_intermediate=True)
    precision, recall, _ = precision_recall_curve(observed, score, drop_intermediate=True)
    rows = []
    for curve, (x, y) in (("roc", thinned_curve(fpr, tpr)), ("pr", thinned_curve(recall[::-1], precision[::-1]))):
        rows += [{"model": model, "aggregation": period, "curve": curve, "x": float(a), "y": float(b)}
                 for a, b in zip(x, y)]
    return rows


def compare(frame: pl.DataFrame, kinds: dict[str, str], period: str, settings: ScoringSettings,
            n_boot: int) -> tuple[list[dict], dict[tuple[str, str], tuple[float, float]]]:
    """Paired day bootstrap of the reference model against each other model.

    Returns comparison rows and the 95% interval of every (model, metric), the reference model's
    taken from its first comparison (every comparison resamples the same days).
    """
    reference = frame[REFERENCE_MODEL].to_numpy().astype(np.float64)
    common = dict(day_ids=frame["day"].to_numpy(), slice_ids=frame["slice"].to_numpy(),
                  crime_count=frame["crime_count"].to_numpy(), area_km2=frame["area_km2"].to_numpy(),
                  coverage=settings.coverage, n_boot=n_boot, seed=settings.seed)
    rows: list[dict] = []
    intervals: dict[tuple[str, str], tuple[float, float]] = {}
    for model, kind in kinds.items():
        if model == REFERENCE_MODEL:
            continue
        other = frame[model].to_numpy().astype(np.float64)
        result = paired_day_bootstrap(score_a=reference, score_b=other, probability_a=reference,
                                      probability_b=other if kind != "score" else None, **common)
        for row in result.iter_rows(named=True):
            if row["a_ci_low"] is not None:
                intervals.setdefault((REFERENCE_MODEL, row["metric"]), (row["a_ci_low"], row["a_ci_high"]))
            intervals[(model, row["metric"])] = (row["b_ci_low"], row["b_ci_high"])
            if row["difference"] is None:
                continue
            rows.append({"model": model, "aggregation": period, "metric": row["metric"],
                         "reference_value": row["estimate_a"], "baseline_value": row["estimate_b"],
                         "difference": row["difference"], "ci_low": row["diff_ci_low"],
                         "ci_high": row["diff_ci_high"], "p_value": row["p_value"], "n_days": row["n_days"]})
    return rows, intervals


def origin_series(frame: pl.DataFrame, kinds: dict[str, str], period: str, settings: ScoringSettings) -> list[dict]:
    """ROC-AUC and PAI per origin for every model, with day-bootstrap intervals inside the origin."""
    rows = []
    for (origin,), part in frame.group_by(["origin"], maintain_order=True):
        if part["day"].n_unique() < 2 or not (part["crime_count"] > 0).any():
            continue
        reference = part[REFERENCE_MODEL].to_numpy().astype(np.float64)
        common = dict(day_ids=part["day"].to_numpy(), slice_ids=part["slice"].to_numpy(),
                      crime_count=part["crime_count"].to_numpy(), area_km2=part["area_km2"].to_numpy(),
                      coverage=settings.coverage, n_boot=ORIGIN_BOOTSTRAP_RESAMPLES, seed=settings.seed)
        for model in kinds:
            result = paired_day_bootstrap(score_a=part[model].to_numpy().astype(np.float64),
                                          score_b=reference, **common)
            for row in result.filter(pl.col("metric").is_in(["roc_auc", "pai"])).iter_rows(named=True):
                rows.append({"model": model, "aggregation": period, "origin": origin, "metric": row["metric"],
                             "value": row["estimate_a"], "ci_low": row["a_ci_low"], "ci_high": row["a_ci_high"]})
    return rows


TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "metrics": {"model": pl.String, "aggregation": pl.String, "metric": pl.String, "value": pl.Float64,
                "ci_low": pl.Float64, "ci_high": pl.Float64},
    "comparisons": {"model": pl.String, "aggregation": pl.String, "metric": pl.String,
                    "reference_value": pl.Float64, "baseline_value": pl.Float64, "difference": pl.Float64,
                    "ci_low": pl.Float64, "ci_high": pl.Float64, "p_value": pl.Float64, "n_days": pl.Int64},
    "thresholds": {"model": pl.String, "aggregation": pl.String, "rule": pl.String, "threshold": pl.Float64,
                   "tp": pl.Int64, "fp": pl.Int64, "tn": pl.Int64, "fn": pl.Int64, "tpr": pl.Float64,
                   "tnr": pl.Float64, "fpr": pl.Float64, "fnr": pl.Float64, "accuracy": pl.Float64,
                   "precision": pl.Float64, "flag_rate": pl.Float64},
    "hotspot_curve": {"model": pl.String, "aggregation": pl.String, "coverage": pl.Float64,
                      "hit_rate": pl.Float64, "pai": pl.Float64, "pei": pl.Float64, "pei_star": pl.Float64,
                      "area_share_used": pl.Float64},
    "curves": {"model": pl.String, "aggregation": pl.String, "curve": pl.String, "x": pl.Float64, "y": pl.Float64},
    "reliability": {"model": pl.String, "aggregation": pl.String, "bin": pl.Int64, "mean_predicted": pl.Float64,
                    "observed_rate": pl.Float64, "n": pl.Int64},
    "timeseries": {"model": pl.String, "aggregation": pl.String, "origin": pl.Datetime("us", "UTC"),
                   "metric": pl.String, "value": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64},
}


def table(rows: list[dict], name: str) -> pl.DataFrame:
    schema = TABLE_SCHEMAS[name]
    return pl.DataFrame([{column: row.get(column) for column in schema} for row in rows], schema=schema,
                        orient="row") if rows else pl.DataFrame(schema=schema)


def score_backtest(predictions: pl.DataFrame, kinds: dict[str, str], settings: ScoringSettings) -> BacktestTables:
    """Compute every metric, comparison and curve of a backtest, for each aggregation.

    ``predictions`` has ``cell_id``, ``hour`` (UTC), ``origin``, ``crime_count``, ``area_km2`` and one
    column per model named in ``kinds`` (model -> "probability", "rate" or "score"); it must hold
    the reference model, ``ensemble``.
    """
    if REFERENCE_MODEL not in kinds or REFERENCE_MODEL not in predictions.columns:
        raise ValueError(f"the backtest predictions have no {REFERENCE_MODEL!r} column; the reference model "
                         f"must be scored with the baselines")
    probabilities = probability_frame(predictions, kinds)
    collected: dict[str, list[dict]] = {name: [] for name in TABLE_SCHEMAS}
    base_rates = {}

    for period in settings.aggregations:
        frame = aggregate(probabilities, kinds, period, settings)
        base_rates[period] = float((frame["crime_count"] > 0).mean())
        logger.info("backtest %s: %d cell-periods, %d days, base rate %.5f", period, frame.height,
                    frame["day"].n_unique(), base_rates[period])

        point_rows = []
        for model, kind in kinds.items():
            metrics, thresholds, hotspot, curves, reliability = model_rows(frame, model, kind, period, settings)
            point_rows += metrics
            collected["thresholds"] += thresholds
            collected["hotspot_curve"] += hotspot
            collected["curves"] += curves
            collected["reliability"] += reliability

        comparisons, intervals = compare(frame, kinds, period, settings, settings.n_boot)
        collected["comparisons"] += comparisons
        for row in point_rows:
            low, high = intervals.get((row["model"], row["metric"]), (None, None))
            collected["metrics"].append({**row, "ci_low": low, "ci_high": high})
        collected["timeseries"] += origin_series(frame, kinds, period, settings)

    return BacktestTables(**{name: table(rows, name) for name, rows in collected.items()}, base_rates=base_rates)


RESULT_COLUMNS = (("roc_auc", "day"), ("roc_auc", "shift"), ("pai", "day"), ("pai", "shift"),
                  ("pei_star", "day"), ("brier", "day"))


def interval_text(value: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if low is None or high is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def results_markdown(metrics: pl.DataFrame, columns: Sequence[tuple[str, str]] = RESULT_COLUMNS) -> str:
    """Return a Markdown table of every model: value [95% interval] for each (metric, aggregation) column."""
    models = list(dict.fromkeys(metrics["model"].to_list()))
    header = "| model | " + " | ".join(f"{metric} ({aggregation})" for metric, aggregation in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for model in models:
        cells = []
        for metric, aggregation in columns:
            rows = metrics.filter((pl.col("model") == model) & (pl.col("metric") == metric)
                                  & (pl.col("aggregation") == aggregation))
            if rows.height == 0:
                cells.append("n/a")
                continue
            digits = 5 if metric == "brier" else 3
            cells.append(interval_text(rows["value"][0], rows["ci_low"][0], rows["ci_high"][0], digits))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
