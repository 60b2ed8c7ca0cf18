"""Backtest (group ``evaluation``): the ensemble and every baseline on the same daily forecasts.

``backtest_predictions`` is one row per forecast cell-hour of the run's backtest window: the issue
time, the origin (``train_end`` of the ensemble that issued it), the horizon, the observed count of
the primary target, the cell's area, and one risk column per model. ``backtest_metrics`` scores
them at each time scale (hour, local shift, local day) into the ``main.backtest_*`` tables, and
``model_metrics_report`` renders those tables as the static Model Metrics report.
"""

import time
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from ml.backtest import (
    COVERAGE_LEVELS,
    HOUR,
    REFERENCE_MODEL,
    TABLE_SCHEMAS,
    BacktestTables,
    EnsembleForecaster,
    Issue,
    ScoringSettings,
    forecast_issue,
    plan_issues,
    score_backtest,
)
from ml.baselines import RiskBaseline, make_baseline
from ml.ensemble import RiskEnsemble
from ml.feature_store import read_window
from ml.hotspots import cells_from_lonlat
from ml.reports.model_metrics import ModelMetricsInputs, render_model_metrics_report
from ml.target_weather import TargetWeather, WeatherInputs
from orchestration.assets.evaluation import naive, outcome_column, target_codes
from orchestration.assets.scoring import ModelSpan, model_spans
from orchestration.jurisdiction import JurisdictionConfig, RunConfig, run_targets
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect
from orchestration.weather_inputs import model_weather_inputs, target_weather

# Baselines fitted on the complete cell-hour spine; the others read the incidents only.
SPINE_PIECE = timedelta(days=91)
DENSE_HISTORY = {"compstat", "compstat_day", "naive"}


def read_cells(warehouse: Path) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql("SELECT cell_id, area_km2, centroid_lon, centroid_lat FROM marts.dim_cells "
                              "ORDER BY cell_id").pl()


def read_spine(warehouse: Path, target: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Read the complete cell-hour spine of ``target`` counts over ``[start, end)``, hours in UTC.

    Three years of a city's cell-hours are tens of millions of rows. They are read and sorted
    ``SPINE_PIECE`` at a time, so DuckDB's sort and the Arrow result of one piece, not of the whole
    range, are in memory next to the frame.
    """
    frames = []
    with connect(warehouse, read_only=True) as connection:
        outcome = outcome_column(connection, "cell_hour_spine", target)
        first = connection.sql("SELECT min(hour) FROM marts.cell_hour_spine").fetchone()[0]
        piece_start = naive(start) if first is None else max(naive(start), first)
        last = naive(end)
        while True:
            piece_end = min(piece_start + SPINE_PIECE, last)
            frames.append(connection.execute(
                f"SELECT cell_id, hour, {outcome}::BIGINT AS crime_count FROM marts.cell_hour_spine "
                "WHERE hour >= ? AND hour < ? ORDER BY hour, cell_id", [piece_start, piece_end]).pl())
            if piece_end >= last:
                break
            piece_start = piece_end
    return pl.concat(frames, rechunk=False).with_columns(pl.col("hour").dt.replace_time_zone("UTC"))


def issue_spans(issues: list[Issue], spans: list[ModelSpan]) -> list[ModelSpan]:
    """Return the model span of each issue: the latest model trained at or before its issue time."""
    chosen = []
    for issue in issues:
        matching = [span for span in spans if span.start <= issue.issued_at < span.end]
        chosen.append(matching[0])
    return chosen


class CutoffRows:
    """Feature rows of single cut-off hours, read from the hourly feature store."""

    def __init__(self, features_dir: Path, n_cells: int) -> None:
        self.features_dir = features_dir
        self.n_cells = n_cells

    def __call__(self, cutoff: datetime) -> pl.DataFrame:
        return read_window(self.features_dir, cutoff, cutoff + HOUR, self.n_cells)


def build_baselines(run: RunConfig, jurisdiction: JurisdictionConfig, cells: pl.DataFrame) -> dict[str, RiskBaseline]:
    baselines = {}
    for name in run.backtest.baselines:
        params = dict(run.backtest.baseline_params.get(name, {}))
        if name in ("compstat", "compstat_day"):
            params.setdefault("years", run.compstat_years)
        baselines[name] = make_baseline(name, cells, jurisdiction.time_zone, run.backtest.seed, **params)
    return baselines


def write_table(connection, name: str, frame: pl.DataFrame) -> None:
    """Replace ``main.<name>`` with ``frame`` (timestamps stored as naive UTC)."""
    naive_frame = frame.with_columns([pl.col(column).dt.replace_time_zone(None) for column, dtype in
                                      frame.schema.items() if isinstance(dtype, pl.Datetime) and dtype.time_zone])
    connection.register("incoming", naive_frame.to_arrow())
    connection.execute(f"CREATE OR REPLACE TABLE main.{name} AS SELECT * FROM incoming")
    connection.unregister("incoming")


class BacktestWeather:
    """Target-hour weather of every backtest issue, built once per weather mode of the models in use."""

    def __init__(self, warehouse: Path, horizon_hours: int, issues: list[Issue]) -> None:
        self.warehouse = warehouse
        self.horizon_hours = horizon_hours
        self.first, self.last = issues[0].issued_at, issues[-1].issued_at
        self.modes: dict[WeatherInputs, TargetWeather | None] = {}
        self.model_inputs: dict[str, WeatherInputs | None] = {}

    def inputs_of(self, span: ModelSpan) -> WeatherInputs | None:
        """Return the weather mode of the span's model, reading its manifest once per model."""
        if span.model_id not in self.model_inputs:
            self.model_inputs[span.model_id] = model_weather_inputs(span.path)
        return self.model_inputs[span.model_id]

    def get(self, inputs: WeatherInputs | None) -> TargetWeather | None:
        if inputs is None:
            return None
        if inputs not in self.modes:
            self.modes[inputs] = target_weather(self.warehouse, inputs, self.horizon_hours, self.first, self.last)
        return self.modes[inputs]


def model_kinds(baselines: dict[str, RiskBaseline]) -> dict[str, str]:
    return {REFERENCE_MODEL: "probability", **{name: baseline.risk_kind for name, baseline in baselines.items()}}


@dg.asset(group_name="evaluation", deps=["risk_ensemble", "cell_hour_features", "cell_hour_spine", "dim_cells"],
          kinds={"duckdb", "python"})
def backtest_predictions(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Daily forecasts of the primary target over the backtest window, from the ensemble and every baseline.

    One row per (issue, cell, target hour): the forecasts were issued once a day at the run's local
    issue hour, each by the latest ensemble trained before it and by baselines fitted on the
    incidents before it. Rate baselines give expected counts, and the ensemble gives probabilities.
    """
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    target = run_targets(run, jurisdiction)[0]
    window = run.backtest_window
    issues = plan_issues(window.start, window.end, jurisdiction.time_zone, run.backtest.issue_hour)
    spans = issue_spans(issues, model_spans(settings.warehouse_path, target, issues[0].issued_at,
                                            issues[-1].issued_at + HOUR))

    cells_table = read_cells(settings.warehouse_path)
    cells = cells_from_lonlat(cells_table)
    baselines = build_baselines(run, jurisdiction, cells)
    history_start = issues[0].issued_at - timedelta(days=366 * run.compstat_years + 8)
    dense = read_spine(settings.warehouse_path, target, history_start, issues[-1].until)
    sparse = dense.filter(pl.col("crime_count") > 0)
    context.log.info(f"backtest of {target}: {len(issues)} daily issues from {issues[0].issued_at.isoformat()} "
                     f"to {issues[-1].until.isoformat()}, {len({span.model_id for span in spans})} ensembles, "
                     f"baselines {list(baselines)}, history of {dense.height:,} cell-hours "
                     f"({sparse.height:,} with an incident)")
    last_observed = dense["hour"].max()
    if last_observed is None or issues[-1].until - HOUR > last_observed:
        raise ValueError(f"the warehouse has {target} counts up to {last_observed}, but the backtest forecasts "
                         f"up to {issues[-1].until.isoformat()}; end backtest.window earlier or ingest more data")

    histories = {name: dense if name in DENSE_HISTORY else sparse for name in baselines}
    histories[REFERENCE_MODEL] = sparse
    cutoff_rows = CutoffRows(settings.features_dir, cells_table.height)
    loaded: dict[str, RiskEnsemble] = {}
    weathers = BacktestWeather(settings.warehouse_path, run.horizon_hours, issues)
    frames = []
    started = time.monotonic()
    for number, (issue, span) in enumerate(zip(issues, spans), start=1):
        if span.model_id not in loaded:
            loaded[span.model_id] = RiskEnsemble.load(span.path)
        inputs = weathers.inputs_of(span)
        ensemble = EnsembleForecaster(loaded[span.model_id], cutoff_rows, jurisdiction.time_zone,
                                      jurisdiction.holiday_country, jurisdiction.holiday_subdivision,
                                      inputs, weathers.get(inputs))
        forecasters = {REFERENCE_MODEL: ensemble, **baselines}
        frames.append(forecast_issue(issue, span.train_end, cells_table["cell_id"].to_list(), forecasters,
                                     histories).with_columns(pl.lit(span.model_id).alias("model_id")))
        if number % 14 == 0 or number == len(issues):
            context.log.info(f"backtest: {number}/{len(issues)} issues forecast in "
                             f"{time.monotonic() - started:.0f} s (last {issue.issued_at.isoformat()})")

    # Only the forecast hours of the history are joined: the whole history would be hashed otherwise.
    observed = dense.filter(pl.col("hour") >= issues[0].issued_at)
    del histories, sparse, dense
    predictions = (pl.concat(frames)
                   .join(observed, on=["cell_id", "hour"], how="left")
                   .join(cells_table.select("cell_id", "area_km2"), on="cell_id", how="left")
                   .with_columns(pl.col("crime_count").fill_null(0)))
    model_columns = [REFERENCE_MODEL, *baselines]
    predictions = predictions.select("origin", "issued_at", "model_id", "cell_id", "hour", "horizon_hours",
                                     "crime_count", "area_km2", *model_columns)
    models = pl.DataFrame({
        "model": model_columns,
        "risk_kind": list(model_kinds(baselines).values()),
        "description": ["Riskcast ensemble (" + ", ".join(sorted(loaded)) + ")",
                        *[getattr(baseline, "description", None) or type(baseline).__name__
                          for baseline in baselines.values()]],
        "target": [target] * len(model_columns),
    })
    with connect(settings.warehouse_path) as connection:
        connection.execute("BEGIN TRANSACTION")
        write_table(connection, "backtest_predictions", predictions)
        write_table(connection, "backtest_models", models)
        connection.execute("COMMIT")

    positives = int((predictions["crime_count"] > 0).sum())
    context.log.info(f"backtest_predictions: wrote {predictions.height:,} rows ({positives:,} cell-hours with "
                     f"an incident) for {len(model_columns)} models")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(predictions.height),
        "target": dg.MetadataValue.text(target),
        "issues": dg.MetadataValue.int(len(issues)),
        "origins": dg.MetadataValue.int(len({span.train_end for span in spans})),
        "models": dg.MetadataValue.text(", ".join(model_columns)),
        "cell_hours_with_incident": dg.MetadataValue.int(positives),
    })


def read_predictions(warehouse: Path) -> tuple[pl.DataFrame, dict[str, str], dict[str, str]]:
    with connect(warehouse, read_only=True) as connection:
        predictions = connection.sql("SELECT * FROM main.backtest_predictions").pl()
        models = connection.sql("SELECT model, risk_kind, description FROM main.backtest_models").pl()
    predictions = predictions.with_columns(
        [pl.col(name).dt.replace_time_zone("UTC") for name in ("origin", "issued_at", "hour")])
    kinds = dict(zip(models["model"], models["risk_kind"]))
    notes = dict(zip(models["model"], models["description"]))
    return predictions, kinds, notes


def scoring_settings(run: RunConfig, jurisdiction: JurisdictionConfig) -> ScoringSettings:
    return ScoringSettings(time_zone=jurisdiction.time_zone, coverage=run.coverage,
                           aggregations=tuple(run.backtest.aggregations),
                           shift_starts=tuple(run.backtest.shift_starts),
                           threshold_rule=run.backtest.threshold_rule,
                           threshold_value=run.backtest.threshold_value,
                           n_boot=run.backtest.n_boot, seed=run.backtest.seed)


def headline(tables: BacktestTables, aggregation: str, model: str, metric: str) -> float:
    rows = tables.metrics.filter((pl.col("aggregation") == aggregation) & (pl.col("model") == model)
                                 & (pl.col("metric") == metric))
    value = rows["value"][0] if rows.height else None
    return float("nan") if value is None else float(value)


@dg.asset(group_name="evaluation", deps=[backtest_predictions], kinds={"duckdb"})
def backtest_metrics(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Metrics of the backtest per model and time scale, with paired day-bootstrap intervals and p-values.

    Tables: ``main.backtest_metrics`` (value and 95% interval per model, time scale and metric),
    ``backtest_comparisons`` (ensemble minus each baseline), ``backtest_thresholds``,
    ``backtest_hotspot_curve`` (hit rate, PAI, PEI, PEI* at 1-20% of area), ``backtest_curves`` (ROC
    and PR points), ``backtest_reliability`` and ``backtest_timeseries`` (per origin).
    """
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    predictions, kinds, _ = read_predictions(settings.warehouse_path)
    started = time.monotonic()
    tables = score_backtest(predictions, kinds, scoring_settings(run, jurisdiction))
    context.log.info(f"backtest_metrics: scored {predictions.height:,} forecast cell-hours of {len(kinds)} models "
                     f"in {time.monotonic() - started:.0f} s")

    with connect(settings.warehouse_path) as connection:
        connection.execute("BEGIN TRANSACTION")
        for name in TABLE_SCHEMAS:
            write_table(connection, f"backtest_{name}", getattr(tables, name))
        connection.execute("COMMIT")

    aggregation = "day" if "day" in run.backtest.aggregations else run.backtest.aggregations[0]
    summary = tables.metrics.filter((pl.col("aggregation") == aggregation)
                                    & pl.col("metric").is_in(["roc_auc", "pai", "pei_star", "brier"]))
    wide = summary.pivot(on="metric", index="model", values="value").sort("model")
    lines = ["| model | " + " | ".join(wide.columns[1:]) + " |", "|---" * len(wide.columns) + "|"]
    lines += ["| " + " | ".join([row[0]] + [f"{value:.4f}" if value is not None else "n/a" for value in row[1:]])
              + " |" for row in wide.iter_rows()]
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(tables.metrics.height),
        f"metrics_{aggregation}": dg.MetadataValue.md("\n".join(lines)),
        "base_rates": dg.MetadataValue.json(tables.base_rates),
    }
    for metric in ("roc_auc", "pai"):
        for model in (REFERENCE_MODEL, "compstat"):
            if model in kinds:
                metadata[f"{model}_{metric}_{aggregation}"] = dg.MetadataValue.float(
                    headline(tables, aggregation, model, metric))
    return dg.MaterializeResult(metadata=metadata)


def read_tables(warehouse: Path) -> BacktestTables:
    with connect(warehouse, read_only=True) as connection:
        frames = {name: connection.sql(f"SELECT * FROM main.backtest_{name}").pl() for name in TABLE_SCHEMAS}
    frames["timeseries"] = frames["timeseries"].with_columns(pl.col("origin").dt.replace_time_zone("UTC"))
    return BacktestTables(**frames)


def read_weather_modes(warehouse: Path) -> pl.DataFrame | None:
    """Read the weather-mode backtest's metrics (``orchestration.assets.weather_modes``), or None before it ran."""
    with connect(warehouse, read_only=True) as connection:
        exists = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_name = 'weather_mode_metrics'").fetchone()[0]
        if not exists:
            return None
        return connection.sql("SELECT * FROM main.weather_mode_metrics").pl()


def weather_note(run: RunConfig) -> str:
    """Describe the weather the ensemble read, in the words of the report."""
    inputs = run.weather.inputs()
    if inputs.mode == "none":
        return "The ensemble read no weather input (run file weather.mode: none)."
    stand_in = inputs.stand_in
    method = {"persistence": "persistence (the last observed value carried forward)",
              "climatology": f"climatology (the mean of the {stand_in.climatology_years} years before, "
                             f"+/- {stand_in.smoothing_days} days)",
              "blend": "a blend of persistence and climatology, with persistence weighted "
                       + (f"{stand_in.blend_weight}" if stand_in.blend_weight is not None
                          else f"exp(-h / {stand_in.blend_tau_hours:g}) at horizon h")}[stand_in.method]
    return ("The ensemble read the observed weather of the hour before each issue time and, for each target "
            "hour, the weather known at the issue time: the latest archived forecast issued by then where one "
            f"covers the hour (forecast_source: {run.forecast_source}), else a stand-in forecast, {method}. "
            "No weather observed after the issue time was used.")


def report_inputs(run: RunConfig, jurisdiction: JurisdictionConfig, tables: BacktestTables,
                  notes: dict[str, str], target: str, n_origins: int,
                  weather_modes: pl.DataFrame | None = None) -> ModelMetricsInputs:
    window = run.backtest_window
    unit = "census tracts" if jurisdiction.cells.spatial_unit == "census_tract" else "grid cells"
    rule = {"coverage": f"the top {run.coverage:.0%} of cells in each map (one map per hour, shift or day)",
            "youden": "the threshold that maximises Youden's J (true positive rate minus false positive rate)",
            "value": f"risk at or above {run.backtest.threshold_value}"}[run.backtest.threshold_rule]
    return ModelMetricsInputs(
        title=f"{jurisdiction.display_name}, {target} crime, {unit}",
        synthetic=jurisdiction.synthetic,
        target=target,
        target_description=f"at least one {target} incident ({target_codes(jurisdiction, target)}) in the cell "
                           f"and period",
        period_description=f"{n_origins} origins (ensemble refreshes), forecasts issued from "
                           f"{window.start:%Y-%m-%d} to {window.end:%Y-%m-%d} (UTC)",
        issue_rule=f"One forecast a day at {run.backtest.issue_hour:02d}:00 local time ({jurisdiction.time_zone}) for "
                   f"every cell and each hour until the next one; baselines are refitted at each issue on the "
                   f"incidents before it, and the ensemble is the latest one trained before it.",
        reference_model=REFERENCE_MODEL,
        threshold_rule=rule,
        coverage=run.coverage,
        model_notes=notes,
        weather_note=weather_note(run),
        metrics=tables.metrics, comparisons=tables.comparisons, thresholds=tables.thresholds,
        hotspot_curve=tables.hotspot_curve, curves=tables.curves, reliability=tables.reliability,
        timeseries=tables.timeseries, weather_modes=weather_modes,
    )


@dg.asset(group_name="evaluation", deps=[backtest_metrics], kinds={"html"})
def model_metrics_report(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Static Model Metrics report: the backtest's tables and figures for analysts and stakeholders."""
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    target = run_targets(run, jurisdiction)[0]
    tables = read_tables(settings.warehouse_path)
    with connect(settings.warehouse_path, read_only=True) as connection:
        n_origins = connection.sql("SELECT count(DISTINCT origin) FROM main.backtest_predictions").fetchone()[0]
        models = connection.sql("SELECT model, description FROM main.backtest_models").pl()
    notes = dict(zip(models["model"], models["description"]))

    path = settings.reports_dir / "model_metrics.html"
    weather_modes = read_weather_modes(settings.warehouse_path)
    render_model_metrics_report(path, report_inputs(run, jurisdiction, tables, notes, target, n_origins,
                                                    weather_modes))
    context.log.info(f"model_metrics_report: wrote {path} from {tables.metrics.height} metric rows")
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.path(str(path)),
        "coverage_levels": dg.MetadataValue.text(", ".join(f"{share:.0%}" for share in COVERAGE_LEVELS)),
    })
