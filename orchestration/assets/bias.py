"""Bias audit and simulations (group ``bias``): how forecasts fall on communities, and what patrols do.

- ``cell_groups``: each cell's population-weighted quintiles and demographic groups
  (``ml.bias.assign_groups``) from ``marts.dim_cell_demographics``, in ``main.bias_cell_groups``.
- ``bias_group_metrics``: flag rate, TPR, FPR, FNR, precision, PAI and patrol exposure per group
  for the ensemble and CompSTAT on the backtest's forecasts, with day-bootstrap intervals
  (``ml.bias.group_metrics``, built on fairlearn's MetricFrame), in ``main.bias_group_metrics``.
- ``input_bias_audit``: per crime category, the share of records with an arrest and where the
  records fall over the groups (``ml.bias.arrest_share_by_category``), in ``main.bias_input_audit``.
- ``feedback_simulation``: the known-truth city of ``ml.simulation``, the runaway feedback loop of
  Ensign et al. (2018) in three settings, and the recording-bias check of Lum & Isaac (2016), in
  ``main.sim_feedback_daily``, ``main.sim_feedback_cells`` and ``main.sim_lum_isaac``.
- ``deployment_simulation``: the staffing arithmetic of ``ml.deployment`` for the ensemble and
  CompSTAT on the backtest's forecasts, in ``main.deployment_comparison``,
  ``main.deployment_group_exposure`` and ``main.deployment_cells``.

Every table is replaced whole in one transaction, so a rerun gives the same rows and a reader
sees the old or the new version.
"""

import time
from pathlib import Path

import dagster as dg
import polars as pl

from ml.bias import (
    ARREST_AUDIT_SCHEMA,
    GROUP_METRIC_SCHEMA,
    GateResult,
    arrest_share_by_category,
    assign_groups,
    disparity_gate,
    group_metrics,
    quintile_column,
)
from ml.deployment import DEFAULT_RISK_KINDS, compare_models, group_exposure, plan_shifts
from ml.reports.bias_audit import BiasAuditInputs, render_bias_audit_report
from ml.reports.cell_values import cell_flag_summary
from ml.reports.deployment import DeploymentReportInputs, render_police_deployment_report
from ml.reports.maps import cell_geojson
from ml.simulation import FeedbackResult, LumIsaacResult, lum_isaac_check, simulate_city, simulate_feedback
from orchestration.assets.backtest import backtest_predictions, write_table
from orchestration.assets.models import table_columns
from orchestration.bias_inputs import read_incidents_for_arrest_audit
from orchestration.jurisdiction import JurisdictionConfig, RunConfig, run_targets
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

REFERENCE_MODEL = "ensemble"
DEMOGRAPHIC_COLUMNS_EXCLUDED = {"cell_id", "population"}


def read_demographics(warehouse: Path) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql("SELECT * FROM marts.dim_cell_demographics ORDER BY cell_id").pl()


def group_definitions(jurisdiction: JurisdictionConfig, warehouse: Path) -> tuple:
    """Return the jurisdiction's bias groups, or the default groups whose columns its demographics provide."""
    with connect(warehouse, read_only=True) as connection:
        columns = {row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
            "AND table_name = 'dim_cell_demographics'").fetchall()}
    definitions = jurisdiction.bias.definitions(columns - DEMOGRAPHIC_COLUMNS_EXCLUDED)
    if not definitions:
        raise ValueError(f"{jurisdiction.name}: marts.dim_cell_demographics has none of the columns the default bias "
                         f"groups use (it has {sorted(columns)}); set bias.groups in the jurisdiction file")
    return definitions


def read_groups(warehouse: Path) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql("SELECT * FROM main.bias_cell_groups ORDER BY cell_id").pl()


def group_names(groups: pl.DataFrame) -> list[str]:
    """Return the group columns of ``main.bias_cell_groups``, which are its boolean columns."""
    return [name for name, dtype in groups.schema.items() if dtype == pl.Boolean]


def read_backtest_forecasts(warehouse: Path, models: tuple[str, ...]) -> pl.DataFrame:
    """Read the backtest's forecast cell-hours with the risk columns of ``models``, hours in UTC."""
    with connect(warehouse, read_only=True) as connection:
        present = table_columns(connection, "backtest_predictions")
        missing = [model for model in models if model not in present]
        if missing:
            raise ValueError(f"main.backtest_predictions has no column for {missing}; add them to the run file's "
                             f"backtest.baselines and materialize backtest_predictions again")
        frame = connection.sql(
            f"SELECT cell_id, hour, crime_count, area_km2, {', '.join(models)} FROM main.backtest_predictions "
            "ORDER BY hour, cell_id").pl()
    return frame.with_columns(pl.col("hour").dt.replace_time_zone("UTC"))


def write_tables(warehouse: Path, tables: dict[str, pl.DataFrame]) -> None:
    """Replace each ``main.<name>`` table with its frame in one transaction."""
    with connect(warehouse) as connection:
        connection.execute("BEGIN TRANSACTION")
        for name, frame in tables.items():
            write_table(connection, name, frame)
        connection.execute("COMMIT")


def markdown_table(frame: pl.DataFrame, digits: int = 3) -> str:
    """Render a small frame as a Markdown table for asset metadata."""
    def cell(value: object) -> str:
        if value is None:
            return "n/a"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|---" * frame.width + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)


# Groups


@dg.asset(group_name="bias", deps=["dim_cell_demographics"], kinds={"duckdb", "python"})
def cell_groups(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Assign each cell its population-weighted quintiles and its membership of the demographic groups."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    demographics = read_demographics(settings.warehouse_path)
    definitions = group_definitions(jurisdiction, settings.warehouse_path)

    groups = assign_groups(demographics, definitions)
    write_tables(settings.warehouse_path, {"bias_cell_groups": groups})

    total = float(groups["population"].fill_null(0.0).sum())
    summary = pl.DataFrame([{
        "group": d.name, "definition": d.description or f"{d.column} quintiles {list(d.quintiles)}",
        "cells": int(groups[d.name].sum()),
        "population_share": float(groups.filter(pl.col(d.name))["population"].fill_null(0.0).sum()) / total
        if total else None,
        "cells_without_quintile": int(groups[quintile_column(d.column)].null_count()),
    } for d in definitions])
    context.log.info(f"cell_groups: {groups.height} cells, {len(definitions)} groups: "
                     + ", ".join(f"{row['group']} {row['cells']} cells" for row in summary.iter_rows(named=True)))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(groups.height),
        "groups": dg.MetadataValue.md(markdown_table(summary)),
    })


# Group metrics


def baseline_model(run: RunConfig) -> str:
    return run.release.baseline


@dg.asset(group_name="bias", deps=[backtest_predictions, cell_groups], kinds={"duckdb", "python"})
def bias_group_metrics(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Flag, error and exposure metrics per group for the ensemble and CompSTAT, with 95% day-bootstrap intervals."""
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    models = (REFERENCE_MODEL, baseline_model(run))
    forecasts = read_backtest_forecasts(settings.warehouse_path, models)
    groups = read_groups(settings.warehouse_path)
    definitions, empty = measured_definitions(group_definitions(jurisdiction, settings.warehouse_path), groups)
    if empty:
        context.log.warning(f"bias_group_metrics: the groups {empty} contain no cell (every cell's value falls in "
                            f"other quintiles), so they are not measured or gated")

    started = time.monotonic()
    if definitions:
        metrics = group_metrics(forecasts, groups, definitions, models=models, coverage=run.coverage,
                                time_zone=jurisdiction.time_zone, n_boot=run.release.n_boot, seed=run.release.seed)
    else:
        context.log.warning(f"bias_group_metrics: no group of {jurisdiction.display_name} has a cell, because its "
                            f"demographics give no values for the group columns; the table stays empty and the "
                            f"release gate cannot pass until the jurisdiction's demographics provide them")
        metrics = pl.DataFrame(schema=GROUP_METRIC_SCHEMA)
    write_tables(settings.warehouse_path, {"bias_group_metrics": metrics})
    context.log.info(f"bias_group_metrics: {forecasts.height:,} forecast cell-hours, {len(definitions)} groups, "
                     f"{run.release.n_boot} resamples, {metrics.height} rows in {time.monotonic() - started:.0f} s")

    gate = release_gate(metrics, run)
    ratios = (metrics.filter(pl.col("metric") == run.release.metric)
              .pivot(on="model", index="group", values="ratio").sort("group"))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(metrics.height),
        "forecast_cell_hours": dg.MetadataValue.int(forecasts.height),
        f"{run.release.metric}_ratios": dg.MetadataValue.md(markdown_table(ratios)),
        "release_gate": dg.MetadataValue.text(gate.message),
        "empty_groups": dg.MetadataValue.text(", ".join(empty) or "none"),
        "bias_audit_report": dg.MetadataValue.path(str(settings.reports_dir / "bias_audit.html")),
    })


def measured_definitions(definitions: tuple, groups: pl.DataFrame) -> tuple[tuple, list[str]]:
    """Split the definitions into those with member cells and the names of those without any.

    A group whose reference is an empty group is left out too, since it has nothing to compare with.
    """
    empty = [d.name for d in definitions if not groups[d.name].any()]
    kept = tuple(d for d in definitions if d.name not in empty and d.reference not in empty)
    return kept, [d.name for d in definitions if d not in kept]


GATE_CHECK_SCHEMA = {"group": pl.String, "reference": pl.String, "model_ratio": pl.Float64,
                     "baseline_ratio": pl.Float64, "model_disparity": pl.Float64, "baseline_disparity": pl.Float64,
                     "bound": pl.Float64, "passed": pl.Boolean}


def release_gate(metrics: pl.DataFrame, run: RunConfig) -> GateResult:
    """Apply the run's release gate to group metrics (``ml.bias.disparity_gate``).

    Without any measured group the gate fails: it cannot show that the bound holds.
    """
    if metrics.height == 0:
        return GateResult(
            passed=False, metric=run.release.metric, margin=run.release.margin, direction=run.release.direction,
            checks=pl.DataFrame(schema=GATE_CHECK_SCHEMA),
            message=(f"{run.release.metric} disparity gate failed: no demographic group could be measured, so the "
                     f"gate cannot show that the bound holds; give the jurisdiction demographics with values for "
                     f"its bias groups' columns"))
    return disparity_gate(metrics, metric=run.release.metric, margin=run.release.margin, model=REFERENCE_MODEL,
                          baseline=baseline_model(run), direction=run.release.direction)


# Input-bias audit


@dg.asset(group_name="bias", deps=["int_incidents__located", cell_groups],
          kinds={"duckdb", "python"})
def input_bias_audit(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Per crime category, the share of records with an arrest and how the records fall over the groups."""
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    start, end = run.train.start, max(run.score.end, run.backtest_window.end)
    incidents = read_incidents_for_arrest_audit(settings.warehouse_path, start, end)
    context.log.info(f"input_bias_audit: {incidents.height:,} incidents from {start.isoformat()} to {end.isoformat()}")
    if incidents["arrest"].null_count() == incidents.height:
        note = (f"{jurisdiction.display_name}'s crime records carry no arrest flag, so the input-bias audit has "
                "nothing to measure; map the portal's arrest column in the jurisdiction file to enable it.")
        context.log.warning(f"input_bias_audit: {note}")
        write_tables(settings.warehouse_path, {"bias_input_audit": pl.DataFrame(schema=ARREST_AUDIT_SCHEMA)})
        return dg.MaterializeResult(metadata={"note": dg.MetadataValue.text(note),
                                              "dagster/row_count": dg.MetadataValue.int(0)})

    groups = read_groups(settings.warehouse_path)
    audit = arrest_share_by_category(incidents, groups, category_column="primary_type", arrest_column="arrest",
                                     category_kinds=jurisdiction.bias.category_kinds())
    write_tables(settings.warehouse_path, {"bias_input_audit": audit})

    overall = (audit.filter(pl.col("group") == "all").sort("records", descending=True)
               .select("category", "category_kind", "records", "arrest_share").head(12))
    context.log.info(f"input_bias_audit: {incidents.height:,} records, {overall.height} largest categories listed, "
                     f"{audit.height} rows")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(audit.height),
        "records": dg.MetadataValue.int(incidents.height),
        "largest_categories": dg.MetadataValue.md(markdown_table(overall)),
    })


# Known-truth simulation


@dg.asset(group_name="bias", kinds={"python", "duckdb"})
def feedback_simulation(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Simulate a city with a planted risk surface: the runaway feedback loop and the recording-bias check."""
    run = riskcast.run_config()
    settings = riskcast.settings()
    sim = run.simulation

    city = simulate_city(sim.n_cells, sim.history_days + sim.simulated_days, sim.seed,
                         mean_daily_rate=sim.mean_daily_rate, risk_log_sd=sim.risk_log_sd,
                         reporting_probability=sim.reporting_probability)
    feedback = simulate_feedback(city, sim.seed, history_days=sim.history_days, window_days=sim.window_days,
                                 detection_rate=sim.detection_rate, exploration=sim.exploration,
                                 forecaster=sim.forecaster, retrain_days=sim.retrain_days)
    lum_isaac = lum_isaac_check(sim.seed)
    summary = feedback_summary(feedback.daily, feedback.forecaster)
    lum_isaac_summary = pl.DataFrame([{
        "spearman_learned_vs_recording": lum_isaac.spearman_recording,
        "spearman_learned_vs_true": lum_isaac.spearman_true,
        "learned_ratio": lum_isaac.learned_ratio, "true_ratio": lum_isaac.true_ratio,
        "groups": " / ".join(lum_isaac.groups),
    }])
    write_tables(settings.warehouse_path, {
        "sim_feedback_daily": feedback.daily, "sim_feedback_cells": feedback.cells,
        "sim_feedback_summary": summary, "sim_lum_isaac": lum_isaac.cells, "sim_lum_isaac_summary": lum_isaac_summary,
    })

    context.log.info(f"feedback_simulation with the {feedback.forecaster} forecaster: " + "; ".join(
        f"{row['setting']} divergence {row['first_divergence']:.3f} -> {row['last_divergence']:.3f}"
        for row in summary.iter_rows(named=True)))
    return dg.MaterializeResult(metadata={
        "divergence": dg.MetadataValue.md(markdown_table(summary)),
        "lum_isaac": dg.MetadataValue.md(markdown_table(lum_isaac_summary)),
        "cells": dg.MetadataValue.int(sim.n_cells),
        "simulated_days": dg.MetadataValue.int(sim.simulated_days),
    })


def feedback_summary(daily: pl.DataFrame, forecaster: str) -> pl.DataFrame:
    """Summarise each setting's divergence on its first and last simulated day, and its final top-cell share."""
    return daily.group_by("setting", maintain_order=True).agg(
        forecaster=pl.lit(forecaster),
        first_divergence=pl.col("divergence").first(),
        last_divergence=pl.col("divergence").last(),
        mean_divergence_last_30_days=pl.col("divergence").tail(30).mean(),
        last_top_share=pl.col("top_share").last(),
    )


# Deployment simulation


def risk_kinds(warehouse: Path) -> dict[str, str]:
    with connect(warehouse, read_only=True) as connection:
        rows = connection.sql("SELECT model, risk_kind FROM main.backtest_models").fetchall()
    return {**DEFAULT_RISK_KINDS, **dict(rows)}


@dg.asset(group_name="bias", deps=[backtest_predictions, cell_groups], kinds={"python", "duckdb"})
def deployment_simulation(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Officers, overtime and expected crimes prevented when patrols follow the ensemble or CompSTAT."""
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    models = (REFERENCE_MODEL, baseline_model(run))
    assumptions = run.deployment.assumptions()
    forecasts = read_backtest_forecasts(settings.warehouse_path, models)
    kinds = risk_kinds(settings.warehouse_path)
    groups = read_groups(settings.warehouse_path)
    membership = groups.select("cell_id", "population", *group_names(groups))

    comparison = compare_models(forecasts, models, assumptions, time_zone=jurisdiction.time_zone,
                                risk_kinds=kinds, coverage=run.coverage, shift_starts=run.backtest.shift_starts)
    exposures, cells = [], []
    for model in models:
        plan = plan_shifts(forecasts, model, assumptions, time_zone=jurisdiction.time_zone,
                           risk_kind=kinds.get(model), coverage=run.coverage, shift_starts=run.backtest.shift_starts)
        exposures.append(group_exposure(plan, membership).with_columns(model=pl.lit(model)))
        cells.append(cell_flag_shares(plan.cells, model))
    write_tables(settings.warehouse_path, {
        "deployment_comparison": comparison,
        "deployment_group_exposure": pl.concat(exposures),
        "deployment_cells": pl.concat(cells),
    })

    context.log.info("deployment_simulation: " + "; ".join(
        f"{row['model']} needs {row['officers_needed_per_shift']:.1f} officers per shift, prevents "
        f"{row['expected_prevented_total']:.1f}" for row in comparison.iter_rows(named=True)))
    shown = comparison.select("model", "cells_flagged_per_shift", "officers_needed_per_shift", "overtime_hours_total",
                              "extra_officers_max", "expected_prevented_total")
    return dg.MaterializeResult(metadata={
        "comparison": dg.MetadataValue.md(markdown_table(shown, digits=1)),
        "assumptions": dg.MetadataValue.json(run.deployment.model_dump()),
        "police_deployment_report": dg.MetadataValue.path(str(settings.reports_dir / "police_deployment.html")),
    })


def cell_flag_shares(plan_cells: pl.DataFrame, model: str) -> pl.DataFrame:
    """Per cell, the share of shifts in which the model flagged it and its directed officer-hours."""
    return plan_cells.group_by("cell_id").agg(
        shifts=pl.len(),
        flagged_shifts=pl.col("flagged").sum(),
        officer_hours=pl.col("officer_hours").sum(),
    ).with_columns(flag_share=pl.col("flagged_shifts") / pl.col("shifts"), model=pl.lit(model)).sort("cell_id")


def jurisdiction_label(jurisdiction: JurisdictionConfig) -> str:
    return jurisdiction.display_name


# Reports


def read_table(warehouse: Path, name: str) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(f"SELECT * FROM main.{name}").pl()


def read_cell_geojson(warehouse: Path) -> pl.DataFrame:
    with connect(warehouse, read_only=True, spatial=True) as connection:
        return cell_geojson(connection)


def period_description(forecasts: pl.DataFrame) -> str:
    first, last = forecasts["hour"].min(), forecasts["hour"].max()
    days = forecasts["hour"].dt.date().n_unique()
    return f"backtest forecasts for {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC ({days} days)"


def write_report(path: Path, html: str) -> None:
    """Write the report beside the final path, then rename it, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)


def simulation_results(warehouse: Path) -> tuple[FeedbackResult, LumIsaacResult]:
    """Rebuild the simulation results that ``feedback_simulation`` stored."""
    summary = read_table(warehouse, "sim_lum_isaac_summary").row(0, named=True)
    forecaster = read_table(warehouse, "sim_feedback_summary")["forecaster"][0]
    feedback = FeedbackResult(daily=read_table(warehouse, "sim_feedback_daily"),
                              cells=read_table(warehouse, "sim_feedback_cells"), forecaster=forecaster)
    lum_isaac = LumIsaacResult(
        cells=read_table(warehouse, "sim_lum_isaac"), spearman_recording=summary["spearman_learned_vs_recording"],
        spearman_true=summary["spearman_learned_vs_true"], learned_ratio=summary["learned_ratio"],
        true_ratio=summary["true_ratio"], groups=tuple(summary["groups"].split(" / ")))
    return feedback, lum_isaac


@dg.asset(group_name="bias", deps=[bias_group_metrics, input_bias_audit, feedback_simulation], kinds={"html"})
def bias_audit_report(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Render the Bias Audit report: groups, group metrics with intervals, the release gate, input bias and simulations."""
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    warehouse = settings.warehouse_path
    models = (REFERENCE_MODEL, baseline_model(run))
    forecasts = read_backtest_forecasts(warehouse, models)
    metrics = read_table(warehouse, "bias_group_metrics")
    arrests = read_table(warehouse, "bias_input_audit")
    feedback, lum_isaac = simulation_results(warehouse)
    cells = read_cell_geojson(warehouse).join(cell_flag_summary(forecasts, models, run.coverage), on="cell_id",
                                              how="left")

    inputs = BiasAuditInputs(
        title=f"{jurisdiction_label(jurisdiction)}: {run_targets(run, jurisdiction)[0]} crime",
        synthetic=jurisdiction.synthetic,
        period_description=period_description(forecasts),
        cell_hours=forecasts.height,
        coverage=run.coverage,
        bootstrap_resamples=run.release.n_boot,
        definitions=group_definitions(jurisdiction, warehouse),
        groups=read_groups(warehouse),
        group_metrics=metrics if metrics.height else None,
        gate=release_gate(metrics, run),
        cells=cells,
        arrest_audit=arrests if arrests.height else None,
        feedback=feedback,
        lum_isaac=lum_isaac,
        targets=tuple(run_targets(run, jurisdiction)),
        baseline=baseline_model(run),
        gate_blocks="A failed gate stops the release job before current_ensemble, so the trained ensembles are not "
                    "promoted to current; with release.score_with: current, they never score new forecasts.",
        absent_reasons={"arrest_audit": f"{jurisdiction.display_name}'s crime records carry no arrest flag, so "
                                        "the share of records with an arrest cannot be measured.",
                        "group_metrics": f"No group of {jurisdiction.display_name} has a cell: its demographics give "
                                         "no values for the group columns."},
    )
    path = settings.reports_dir / "bias_audit.html"
    write_report(path, render_bias_audit_report(inputs))
    context.log.info(f"bias_audit_report: wrote {path} ({path.stat().st_size:,} bytes) from {metrics.height} "
                     f"group-metric rows and {cells.height} cells")
    return dg.MaterializeResult(metadata={"report": dg.MetadataValue.path(str(path))})


@dg.asset(group_name="bias", deps=[deployment_simulation], kinds={"html"})
def police_deployment_report(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Render the Police Deployment report: staffing, overtime and crimes prevented under the ensemble and CompSTAT."""
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    warehouse = settings.warehouse_path
    models = (REFERENCE_MODEL, baseline_model(run))
    forecasts = read_backtest_forecasts(warehouse, models)
    shares = (read_table(warehouse, "deployment_cells").select("cell_id", "model", "flag_share")
              .pivot(on="model", index="cell_id", values="flag_share"))
    shares = shares.rename({model: f"flagged_share_{model}" for model in models if model in shares.columns})

    inputs = DeploymentReportInputs(
        title=f"{jurisdiction_label(jurisdiction)}: {run_targets(run, jurisdiction)[0]} crime",
        synthetic=jurisdiction.synthetic,
        period_description=period_description(forecasts),
        time_zone=jurisdiction.time_zone,
        assumptions=run.deployment.assumptions(),
        comparison=read_table(warehouse, "deployment_comparison"),
        exposure=read_table(warehouse, "deployment_group_exposure"),
        cells=read_cell_geojson(warehouse).join(shares, on="cell_id", how="left"),
        baseline=baseline_model(run),
    )
    path = settings.reports_dir / "police_deployment.html"
    write_report(path, render_police_deployment_report(inputs))
    context.log.info(f"police_deployment_report: wrote {path} ({path.stat().st_size:,} bytes)")
    return dg.MaterializeResult(metadata={"report": dg.MetadataValue.path(str(path))})
