"""Evaluation (group ``evaluation``): the ensemble against the CompSTAT baseline.

Both models are scored on the same rows: every (issue hour, cell, horizon) forecast of the
jurisdiction's primary target (the first of its targets) in ``main.risk_scores`` issued inside the
evaluation window whose target hour has observed data. The outcome is the warehouse's
``<target>_count`` column of ``marts.fct_cell_hour_crimes``. Metrics go to
``main.evaluation_metrics`` and to a static HTML report.
"""


import html
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from ml.baselines import CompstatBaseline
from ml.metrics import flag_top_share, pai_at_area_coverage, roc_auc, threshold_metrics
from orchestration.jurisdiction import JurisdictionConfig, RunConfig, Window, run_targets
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

METRICS_DDL = """
CREATE TABLE IF NOT EXISTS main.evaluation_metrics (
    model VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    value DOUBLE,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    horizons VARCHAR NOT NULL,
    evaluated_rows BIGINT NOT NULL,
    note VARCHAR
)
"""


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def outcome_column(connection, table: str, target: str) -> str:
    """Return the warehouse column that counts ``target`` incidents, or raise naming the fix."""
    column = f"{target}_count"
    present = [row[0] for row in connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = ?",
        [table]).fetchall()]
    if column not in present:
        counts = [name for name in present if name.endswith("_count")]
        raise ValueError(f"marts.{table} has no column {column} for the primary target {target!r} (it has "
                         f"{counts}); add the count to the warehouse marts, or list a target with a count "
                         f"column first in the jurisdiction's targets")
    return column


def read_evaluation_rows(warehouse: Path, window: Window, target: str) -> tuple[pl.DataFrame, int]:
    """Scores of ``target`` issued in the window joined to its observed counts and cell areas.

    The observed count is returned as ``violent_count`` whatever the target, because the metric
    code reads that column.
    """
    with connect(warehouse, read_only=True) as connection:
        last_hour = connection.sql("SELECT max(hour) FROM marts.hour_spine").fetchone()[0]
        outcome = outcome_column(connection, "fct_cell_hour_crimes", target)
        frame = connection.execute(
            f"""
            SELECT s.cell_id, s.hour, s.issued_at, s.horizon_hours, s.risk, s.model_id,
                   coalesce(c.{outcome}, 0) AS violent_count, d.area_km2
            FROM main.risk_scores AS s
            JOIN marts.dim_cells AS d USING (cell_id)
            LEFT JOIN marts.fct_cell_hour_crimes AS c USING (cell_id, hour)
            WHERE s.issued_at >= ? AND s.issued_at < ? AND s.target = ?
            ORDER BY s.issued_at, s.horizon_hours, s.cell_id
            """,
            [naive(window.start), naive(window.end), target],
        ).pl()
    unobserved = frame.filter(pl.col("hour") > last_hour).height
    frame = frame.filter(pl.col("hour") <= last_hour).with_columns(
        pl.col("hour").dt.replace_time_zone("UTC"), pl.col("issued_at").dt.replace_time_zone("UTC"))
    return frame, unobserved


def read_history(warehouse: Path, start: datetime, end: datetime, target: str) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        outcome = outcome_column(connection, "cell_hour_spine", target)
        frame = connection.execute(
            f"SELECT cell_id, hour, {outcome} AS crime_count FROM marts.cell_hour_spine "
            "WHERE hour >= ? AND hour < ?", [naive(start), naive(end)]).pl()
    return frame.with_columns(pl.col("hour").dt.replace_time_zone("UTC"))


def model_metrics(rows: pl.DataFrame, risk: np.ndarray, coverage: float,
                  probabilities: bool) -> dict[str, float | None]:
    """Threshold metrics, ROC-AUC and PAI; Brier score and log loss only for probabilities."""
    counts = rows["violent_count"].to_numpy()
    observed = counts > 0
    slices = (rows["issued_at"].dt.epoch("s").to_numpy() // 3600) * 1000 + rows["horizon_hours"].to_numpy()

    flagged = flag_top_share(risk, slices, coverage)
    at_threshold = threshold_metrics(observed, flagged)
    pai = pai_at_area_coverage(risk, counts, rows["area_km2"].to_numpy(), slices, coverage)
    metrics: dict[str, float | None] = {
        "tpr": at_threshold.tpr, "tnr": at_threshold.tnr, "fpr": at_threshold.fpr,
        "fnr": at_threshold.fnr, "accuracy": at_threshold.accuracy, "precision": at_threshold.precision,
        "roc_auc": roc_auc(observed, risk),
        "pai": pai.pai, "hit_rate": pai.hit_rate, "area_share_used": pai.area_share_used,
        "observed_rate": float(observed.mean()),
    }
    if probabilities:
        clipped = np.clip(risk, 1e-9, 1 - 1e-9)
        metrics["brier"] = float(np.mean((risk - observed) ** 2))
        metrics["log_loss"] = float(-np.mean(observed * np.log(clipped) + (~observed) * np.log(1 - clipped)))
        metrics["mean_predicted_probability"] = float(risk.mean())
    return metrics


def write_metrics(warehouse: Path, window: Window, horizons: str, evaluated_rows: int,
                  results: dict[str, dict[str, float | None]], notes: dict[str, str]) -> None:
    records = [
        {"model": model, "metric": metric, "value": value, "window_start": naive(window.start),
         "window_end": naive(window.end), "horizons": horizons, "evaluated_rows": evaluated_rows,
         "note": notes.get(model)}
        for model, metrics in results.items() for metric, value in metrics.items()
    ]
    arrow_table = pl.DataFrame(records, schema={
        "model": pl.String, "metric": pl.String, "value": pl.Float64, "window_start": pl.Datetime("us"),
        "window_end": pl.Datetime("us"), "horizons": pl.String, "evaluated_rows": pl.Int64,
        "note": pl.String}).to_arrow()
    with connect(warehouse) as connection:
        connection.execute(METRICS_DDL)
        connection.execute("BEGIN TRANSACTION")
        connection.execute("DELETE FROM main.evaluation_metrics WHERE window_start = ? AND window_end = ?",
                           [naive(window.start), naive(window.end)])
        connection.register("incoming", arrow_table)
        connection.execute("INSERT INTO main.evaluation_metrics SELECT * FROM incoming")
        connection.unregister("incoming")
        connection.execute("COMMIT")


# Plain-language names for the report, and which direction is better.
METRIC_LABELS = {
    "tpr": ("share of incident cell-hours flagged (true positive rate)", "higher"),
    "tnr": ("share of quiet cell-hours not flagged (true negative rate)", "higher"),
    "fpr": ("share of quiet cell-hours flagged (false positive rate)", "lower"),
    "fnr": ("share of incident cell-hours missed (false negative rate)", "lower"),
    "accuracy": ("share of cell-hours classified right (misleading at low base rates)", "see note"),
    "precision": ("share of flagged cell-hours that had an incident", "higher"),
    "roc_auc": ("ranking quality, 0.5 = chance (ROC-AUC)", "higher"),
    "pai": ("incident share caught per area share flagged (PAI)", "higher"),
    "hit_rate": ("share of incidents in the PAI-flagged cells", "higher"),
    "area_share_used": ("share of the city's area the PAI rule flagged", "context"),
    "observed_rate": ("share of cell-hours with an incident", "context"),
    "brier": ("mean squared error of the probabilities (Brier score)", "lower"),
    "log_loss": ("log loss of the probabilities", "lower"),
    "mean_predicted_probability": ("mean forecast probability; compare with the observed rate", "context"),
}


def write_report(path: Path, jurisdiction: JurisdictionConfig, run: RunConfig, window: Window, target: str,
                 evaluated_rows: int, results: dict[str, dict[str, float | None]], notes: dict[str, str]) -> None:
    metric_names = list(dict.fromkeys(name for metrics in results.values() for name in metrics))
    header = "".join(f"<th>{html.escape(model)}</th>" for model in results)
    body = "".join(
        f"<tr><td>{html.escape(METRIC_LABELS.get(name, (name, ''))[0])} <code>{html.escape(name)}</code></td>"
        + "".join(f"<td>{'n/a' if results[m].get(name) is None else f'{results[m][name]:.4f}'}</td>" for m in results)
        + f"<td>{html.escape(METRIC_LABELS.get(name, (name, ''))[1])}</td></tr>"
        for name in metric_names
    )
    banner = ("<p class='synthetic'><strong>SYNTHETIC DATA.</strong> These metrics come from the generated "
              "demo jurisdiction. They describe no real city.</p>") if jurisdiction.synthetic else ""
    notes_html = "".join(f"<li><strong>{html.escape(m)}</strong>: {html.escape(n)}</li>" for m, n in notes.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Riskcast score metrics: {html.escape(jurisdiction.display_name)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:.3em .6em;text-align:right}}td:first-child{{text-align:left}}
.synthetic{{background:#fde2e2;padding:.6em;border:1px solid #c00}}</style></head><body>
<h1>Score metrics: {html.escape(jurisdiction.display_name)}</h1>
<p>The published 72-hour scores against CompSTAT. The full comparison with every baseline, intervals and figures is in model_metrics.html.</p>
{banner}
<p>Forecasts issued from {window.start.isoformat()} to {window.end.isoformat()} (UTC, end excluded),
horizons 1 to {run.horizon_hours} hours, {evaluated_rows:,} cell-hour forecasts with an observed outcome.
Target: at least one {html.escape(target)} incident ({html.escape(target_codes(jurisdiction, target))}) in the
cell and hour. Other targets are scored too but not evaluated here.</p>
<p>The ensemble is Riskcast's model. CompSTAT is the status-quo baseline: the average count per cell and
local hour of week over past years.</p>
<p>Threshold rule: in each forecast map (one issue hour and horizon), the highest-risk cells are flagged,
rounding {run.coverage:.0%} of the cell count up to a whole cell. PAI (Predictive Accuracy Index) flags
cells by descending risk until the next cell would push the flagged area past {run.coverage:.0%} of the
city's area, then divides the share of incidents caught by the share of area flagged.</p>
<p>Accuracy is high for any model here because most cell-hours have no incident: flagging nothing at all
would score 1 minus the observed rate. Compare models on the other rows.</p>
<table><tr><th>metric</th>{header}<th>better</th></tr>{body}</table>
<ul>{notes_html}</ul>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


def target_codes(jurisdiction: JurisdictionConfig, target: str) -> str:
    codes = [code for code, meaning in sorted(jurisdiction.offense_codes.items())
             if meaning.category == target or target in meaning.groups]
    return "offense codes " + ", ".join(codes) if codes else "no offense code listed"


@dg.asset(group_name="evaluation", deps=["risk_scores", "fct_cell_hour_crimes"], kinds={"duckdb", "html"})
def evaluation_metrics(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """TPR, TNR, FPR, FNR, ROC-AUC and PAI of the ensemble and the CompSTAT baseline on one window.

    Only the primary target (the jurisdiction's first target) is evaluated.
    """
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    window = run.evaluate_window
    target = run_targets(run, jurisdiction)[0]

    rows, unobserved = read_evaluation_rows(settings.warehouse_path, window, target)
    if rows.height == 0:
        raise ValueError(f"no {target} risk scores issued between {window.start.isoformat()} and "
                         f"{window.end.isoformat()} have observed outcomes; materialize risk_scores "
                         f"for that window first, or move the evaluation window inside the data")

    compstat = CompstatBaseline(years=run.compstat_years, time_zone=jurisdiction.time_zone)
    history_start = window.start - timedelta(days=366 * run.compstat_years + 7)
    compstat.fit(read_history(settings.warehouse_path, history_start, window.start, target), window.start)
    compstat_risk = compstat.predict(rows.select("cell_id", "hour"))["risk"].to_numpy()

    results = {
        "ensemble": model_metrics(rows, rows["risk"].to_numpy(), run.coverage, probabilities=True),
        "compstat": model_metrics(rows, compstat_risk, run.coverage, probabilities=False),
    }
    models_used = ", ".join(sorted(rows["model_id"].unique().to_list()))
    notes = {"ensemble": f"model {models_used}", "compstat": compstat.description}
    horizons = f"1-{run.horizon_hours}"
    write_metrics(settings.warehouse_path, window, horizons, rows.height, results, notes)
    report = settings.reports_dir / "score_metrics.html"
    write_report(report, jurisdiction, run, window, target, rows.height, results, notes)

    for model, metrics in results.items():
        context.log.info(f"{jurisdiction.name} {target} {model}: ROC-AUC {metrics['roc_auc']}, PAI {metrics['pai']}, "
                         f"TPR {metrics['tpr']}, FPR {metrics['fpr']} on {rows.height} rows")
    table = "| metric | ensemble | compstat |\n|---|---|---|\n" + "\n".join(
        f"| {name} | {results['ensemble'].get(name)} | {results['compstat'].get(name)} |"
        for name in results["ensemble"])
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(rows.height),
        "target": dg.MetadataValue.text(target),
        "unobserved_rows_skipped": dg.MetadataValue.int(unobserved),
        "metrics": dg.MetadataValue.md(table),
        "ensemble_roc_auc": dg.MetadataValue.float(results["ensemble"]["roc_auc"] or float("nan")),
        "compstat_roc_auc": dg.MetadataValue.float(results["compstat"]["roc_auc"] or float("nan")),
        "report": dg.MetadataValue.path(str(report)),
        "compstat_history": dg.MetadataValue.text(compstat.description),
    })
