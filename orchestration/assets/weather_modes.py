"""Weather-mode backtest (group ``evaluation``): what weather adds, and what a better forecast would add.

``weather_mode_backtest`` retrains the ensemble three times over the run's backtest window, once
per weather mode of ``ml.target_weather``, with the same seed, ensemble settings, training windows
and origins, so that the modes differ in their weather inputs only:

- ``ensemble_no_weather``: mode ``none``, no weather input at all;
- ``ensemble`` (the reference): mode ``stand_in``, the weather known at each issue time; this is
  the honest mode and the default of live runs;
- ``ensemble_oracle_weather``: mode ``observed``, the weather later observed in the target hours.
  No forecaster has it, so it is an upper bound, labelled as such.

The gap between the stand-in and the oracle is the value of a better weather forecast. The gap
between no weather and the stand-in is what weather adds at all. Origins fall every
``weather_modes.refresh_days`` days from the window's first issue. Each origin trains on the
``weather_modes.train_days`` days before it and forecasts the daily issues until the next origin,
a rolling origin like the main backtest's. Metrics and
paired day-bootstrap intervals come from ``ml.backtest.score_backtest`` and are stored in
``main.weather_mode_metrics`` and ``main.weather_mode_comparisons`` for the Model Metrics report.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from ml.backtest import REFERENCE_MODEL, EnsembleForecaster, Issue, plan_issues, score_backtest, target_rows
from ml.ensemble import RiskEnsemble
from ml.feature_registry import label_column
from ml.feature_store import day_file, days_in, open_window
from ml.model_data import build_training_design, check_label
from ml.shared_arrays import SharedArrays
from ml.target_weather import TargetWeather, WeatherInputs
from orchestration.assets.backtest import CutoffRows, read_cells, read_spine, scoring_settings, write_table
from orchestration.assets.models import ensemble_config
from orchestration.jurisdiction import JurisdictionConfig, RunConfig, run_targets
from orchestration.resources import RiskcastResource
from orchestration.settings import RiskcastSettings
from orchestration.warehouse import connect
from orchestration.weather_inputs import target_weather

HOUR = timedelta(hours=1)
MODES = {"ensemble_no_weather": "none", REFERENCE_MODEL: "stand_in", "ensemble_oracle_weather": "observed"}
LABELS = {"ensemble_no_weather": "(a) no weather features",
          REFERENCE_MODEL: "(b) stand-in forecast weather (honest, the default)",
          "ensemble_oracle_weather": "(c) observed weather: an oracle upper bound, not achievable live"}
TABLES = ("metrics", "comparisons")


@dataclass(frozen=True)
class Origin:
    """One retraining of the weather-mode backtest: train on ``[start, end)``, forecast ``issues``."""

    start: datetime
    end: datetime
    issues: list[Issue]


def plan_origins(issues: list[Issue], refresh_days: int, train_days: int) -> list[Origin]:
    """Group the daily issues into origins every ``refresh_days`` days from the first issue."""
    origins: list[Origin] = []
    first = issues[0].issued_at
    for issue in issues:
        step = int((issue.issued_at - first) / timedelta(days=refresh_days))
        end = first + step * timedelta(days=refresh_days)
        if origins and origins[-1].end == end:
            origins[-1].issues.append(issue)
        else:
            origins.append(Origin(end - timedelta(days=train_days), end, [issue]))
    return origins


def check_features(settings: RiskcastSettings, origins: list[Origin]) -> None:
    """Fail early, naming the days, when a training window's feature files are missing."""
    days = days_in(origins[0].start, origins[-1].end)
    missing = [day.isoformat() for day in days if not day_file(settings.features_dir, day).exists()]
    if missing:
        raise ValueError(f"the weather-mode backtest trains from {origins[0].start:%Y-%m-%d}, but the feature store "
                         f"has no files for {len(missing)} days such as {missing[:3]}; build the features of "
                         f"that range first (features_job, or `riskcast weather-modes --prepare`)")


def forecast_mode(column: str, inputs: WeatherInputs, origins: list[Origin], run: RunConfig,
                  jurisdiction: JurisdictionConfig, settings: RiskcastSettings, cells: list[str],
                  target: str, log: dg.DagsterLogManager) -> pl.DataFrame:
    """Train one ensemble per origin in one weather mode and forecast its issues; one risk column."""
    n_cells = len(cells)
    rows = CutoffRows(settings.features_dir, n_cells)
    all_issues = [issue for origin in origins for issue in origin.issues]
    forecast_weather = target_weather(settings.warehouse_path, inputs, run.horizon_hours,
                                      all_issues[0].issued_at, all_issues[-1].issued_at)
    frames = []
    for number, origin in enumerate(origins, start=1):
        started = time.monotonic()
        reader = open_window(settings.features_dir, origin.start, origin.end, n_cells)
        weather = target_weather(settings.warehouse_path, inputs, run.horizon_hours, origin.start, origin.end - HOUR)
        check_label(reader, target)
        labels = reader.read([label_column(target)])
        config = ensemble_config(run)
        # As in risk_ensemble: the design is read a few columns at a time into shared memory.
        with SharedArrays(enabled=config.num_threads > 1) as shared:
            design = build_training_design(reader, n_cells, run.horizon_hours, np.random.default_rng(run.seed),
                                           inputs, weather, allocate=shared.empty)
            training = design.for_target(labels, target)
            del design
            ensemble = RiskEnsemble(config).fit(training.features, training.labels, training.target_hours,
                                                training.feature_names)
        forecaster = EnsembleForecaster(ensemble, rows, jurisdiction.time_zone, jurisdiction.holiday_country,
                                        jurisdiction.holiday_subdivision, inputs, forecast_weather)
        for issue in origin.issues:
            targets = target_rows(issue, cells)
            risk = forecaster.fit(pl.DataFrame(), issue.issued_at).predict(targets)["risk"]
            frames.append(targets.with_columns(risk.alias(column), pl.lit(origin.end).alias("origin"),
                                               pl.lit(issue.issued_at).alias("issued_at")))
        log.info(f"weather mode {inputs.mode} ({column}): origin {number}/{len(origins)} "
                 f"{origin.end.isoformat()}, {training.labels.size:,} training rows, {len(origin.issues)} issues "
                 f"forecast in {time.monotonic() - started:.0f} s")
    return pl.concat(frames)


def mode_predictions(run: RunConfig, jurisdiction: JurisdictionConfig, settings: RiskcastSettings,
                     target: str, origins: list[Origin], log: dg.DagsterLogManager) -> pl.DataFrame:
    """Forecasts of all three modes side by side, with the observed counts and cell areas."""
    cells_table = read_cells(settings.warehouse_path)
    cells = cells_table["cell_id"].to_list()
    stand_in = run.weather.inputs().stand_in
    keys = ["cell_id", "hour", "horizon_hours", "origin", "issued_at"]
    merged = None
    for column, mode in MODES.items():
        frame = forecast_mode(column, WeatherInputs(mode, stand_in), origins, run, jurisdiction, settings, cells,
                              target, log)
        merged = frame if merged is None else merged.join(frame.select("cell_id", "hour", "issued_at", column),
                                                          on=["cell_id", "hour", "issued_at"], how="left",
                                                          maintain_order="left")
    first, last = origins[0].issues[0], origins[-1].issues[-1]
    counts = read_spine(settings.warehouse_path, target, first.issued_at, last.until).select(
        "cell_id", "hour", "crime_count")
    return (merged.join(counts, on=["cell_id", "hour"], how="left")
            .join(cells_table.select("cell_id", "area_km2"), on="cell_id", how="left")
            .with_columns(pl.col("crime_count").fill_null(0))
            .select(*keys, "crime_count", "area_km2", *MODES))


@dg.asset(group_name="evaluation", deps=["cell_hour_features", "cell_hour_spine", "dim_cells", "fct_hourly_weather"],
          kinds={"pytorch", "lightgbm", "duckdb"})
def weather_mode_backtest(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Retrain the ensemble with no weather, stand-in forecast weather and observed (oracle) weather, and score the three side by side."""
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    target = run_targets(run, jurisdiction)[0]
    window = run.backtest_window
    issues = plan_issues(window.start, window.end, jurisdiction.time_zone, run.backtest.issue_hour)
    origins = plan_origins(issues, run.weather_modes.refresh_days, run.weather_modes.train_days)
    check_features(settings, origins)
    context.log.info(f"weather-mode backtest of {target}: {len(issues)} daily issues, {len(origins)} origins every "
                     f"{run.weather_modes.refresh_days} days, {run.weather_modes.train_days} training days each, "
                     f"modes {list(MODES.values())}")

    started = time.monotonic()
    predictions = mode_predictions(run, jurisdiction, settings, target, origins, context.log)
    tables = score_backtest(predictions, {column: "probability" for column in MODES},
                            scoring_settings(run, jurisdiction))
    metrics = tables.metrics.with_columns(pl.col("model").replace(LABELS).alias("label"))
    with connect(settings.warehouse_path) as connection:
        connection.execute("BEGIN TRANSACTION")
        write_table(connection, "weather_mode_metrics", metrics)
        write_table(connection, "weather_mode_comparisons", tables.comparisons)
        connection.execute("COMMIT")

    seconds = time.monotonic() - started
    context.log.info(f"weather_mode_backtest: {predictions.height:,} forecast cell-hours per mode, "
                     f"scored in {seconds:.0f} s")
    return dg.MaterializeResult(metadata=weather_mode_metadata(metrics, predictions, origins, seconds))


def headline_rows(metrics: pl.DataFrame) -> list[dict]:
    """ROC-AUC per hour and day and PAI per day for each mode, with intervals."""
    rows = []
    for column in MODES:
        row = {"model": column, "label": LABELS[column]}
        for metric, aggregation in (("roc_auc", "hour"), ("roc_auc", "day"), ("pai", "day")):
            match = metrics.filter((pl.col("model") == column) & (pl.col("metric") == metric)
                                   & (pl.col("aggregation") == aggregation))
            row[f"{metric}_{aggregation}"] = match["value"][0] if match.height else None
        rows.append(row)
    return rows


def weather_mode_metadata(metrics: pl.DataFrame, predictions: pl.DataFrame, origins: list[Origin],
                          seconds: float) -> dict[str, dg.MetadataValue]:
    lines = ["| mode | ROC-AUC (hour) | ROC-AUC (day) | PAI at 5% (day) |", "|---|---|---|---|"]
    for row in headline_rows(metrics):
        values = [f"{row[name]:.3f}" if row[name] is not None else "n/a"
                  for name in ("roc_auc_hour", "roc_auc_day", "pai_day")]
        lines.append(f"| {row['label']} | " + " | ".join(values) + " |")
    return {
        "dagster/row_count": dg.MetadataValue.int(predictions.height),
        "origins": dg.MetadataValue.int(len(origins)),
        "modes": dg.MetadataValue.md("\n".join(lines)),
        "seconds": dg.MetadataValue.float(seconds),
    }

