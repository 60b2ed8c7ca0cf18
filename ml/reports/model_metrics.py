"""The "Model Metrics" report: one self-contained static HTML page for stakeholders and analysts.

It compares the reference model (Riskcast's ensemble) with baselines on a rolling-origin
backtest. The page has a plain-language summary, headline metrics with 95% intervals, paired
comparisons, confusion matrices and a threshold table. Figures show ROC and precision-recall
curves, PAI, PEI and PEI* against area coverage, calibration, and the metrics per backtest
origin. They are inline SVG drawn with matplotlib, so the page loads no network resource and
runs no JavaScript. Every string from the inputs is HTML-escaped.

PAI (Predictive Accuracy Index) is from Chainey, Tompson & Uhlig (2008), "The utility of hotspot
mapping for predicting spatial patterns of crime", Security Journal 21, DOI
10.1057/palgrave.sj.8350066. PEI (the captured share of the best capture possible with the same
area) was a scoring metric of the NIJ Real-Time Crime Forecasting Challenge (2017). PEI* is the
variant of White, Hunt & Green (2023), "A discussion of current crime forecasting indices and an
improvement to the prediction efficiency index for applications", Security Journal. The report
only shows these values and computes none of them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from ml.reports.figures import (
    curve_figure,
    figure_svg,
    hotspot_figure,
    model_styles,
    reliability_figure,
    timeseries_figure,
    LineStyle,
)
from ml.reports.formatting import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    aggregation_units,
    escape,
    format_count,
    format_interval,
    format_number,
    format_p_value,
    format_share,
    format_signed,
    judge_difference,
    metric_label,
    ordered_aggregations,
    ordered_models,
)
from ml.reports.inputs import ModelMetricsInputs, all_models, base_rate, distinct, first_row, rows_where
from ml.reports.summary import summary_section

__all__ = ["ModelMetricsInputs", "render_model_metrics_report"]

logger = logging.getLogger(__name__)

NOT_COMPUTED = "not computed"
HEADLINE_METRICS = ("roc_auc", "pr_auc", "pai", "pei_star", "hit_rate", "brier", "ece")
HOTSPOT_METRICS = ("pai", "pei", "pei_star")
TIMESERIES_METRICS = ("roc_auc", "pai")
THRESHOLD_COLUMNS = (("threshold", "threshold"), ("tp", "TP"), ("fp", "FP"), ("tn", "TN"), ("fn", "FN"),
                     ("tpr", "TPR"), ("tnr", "TNR"), ("fpr", "FPR"), ("fnr", "FNR"), ("accuracy", "accuracy"),
                     ("precision", "precision"), ("flag_rate", "flag rate"))
COUNT_COLUMNS = {"tp", "fp", "tn", "fn"}
RULE_DESCRIPTIONS = {
    "youden": "Youden's J: the threshold that maximises TPR minus FPR",
    "coverage": "fixed coverage",
    "value": "a threshold value set by the user",
}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; line-height: 1.4; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.banner { background: #c00; color: #fff; padding: 0.6em 1em; font-weight: bold; font-size: 1.1em; }
.interval, .share { color: #555; font-size: 0.9em; } .missing { color: #888; font-style: italic; }
.better { background: #e6f2fa; } .worse { background: #fbe9dc; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #444; max-width: 60em; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; } .note { font-size: 0.85em; color: #555; }
"""


def missing(section: str) -> str:
    return f"<p class='missing'>{escape(section)}: {NOT_COMPUTED}.</p>"


def value_with_interval(row: dict | None) -> str:
    if row is None:
        return f"<span class='missing'>{NOT_COMPUTED}</span>"
    interval = format_interval(row["ci_low"], row["ci_high"])
    interval_html = f" <span class='interval'>{escape(interval)}</span>" if interval else ""
    return f"{escape(format_number(row['value']))}{interval_html}"


def direction_note(metric: str) -> str:
    if metric in HIGHER_IS_BETTER:
        return "higher is better"
    if metric in LOWER_IS_BETTER:
        return "lower is better"
    return ""


# Tables.

def headline_tables(inputs: ModelMetricsInputs, models: list[str], aggregations: list[str]) -> str:
    if not aggregations:
        return missing("Headline metrics")
    header = "".join(f"<th scope='col'>{escape(metric_label(metric))}<br><span class='note'>"
                     f"{escape(direction_note(metric))}</span></th>" for metric in HEADLINE_METRICS)
    tables = []
    for aggregation in aggregations:
        rows = []
        for model in models:
            cells = "".join(
                f"<td>{value_with_interval(first_row(inputs.metrics, model=model, aggregation=aggregation, metric=metric))}</td>"
                for metric in HEADLINE_METRICS)
            rows.append(f"<tr><th scope='row'>{escape(model)}</th>{cells}</tr>")
        tables.append(f"<table><caption>{escape(aggregation_units(aggregation))}</caption><thead><tr>"
                      f"<th scope='col'>model</th>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return "".join(tables)


def comparison_tables(inputs: ModelMetricsInputs, models: list[str]) -> str:
    if inputs.comparisons.height == 0:
        return missing("Comparisons with the baselines")
    reference = escape(inputs.reference_model)
    header = (f"<th scope='col'>baseline</th><th scope='col'>metric</th><th scope='col'>{reference}</th>"
              f"<th scope='col'>baseline value</th><th scope='col'>difference ({reference} &minus; baseline)</th>"
              f"<th scope='col'>95% interval</th><th scope='col'>p-value</th><th scope='col'>verdict</th>")
    tables = []
    for aggregation in ordered_aggregations(distinct(inputs.comparisons, "aggregation")):
        rows = []
        subset = rows_where(inputs.comparisons, aggregation=aggregation)
        for model in [name for name in models if name in distinct(subset, "model")]:
            for row in rows_where(subset, model=model).sort("metric").iter_rows(named=True):
                verdict = judge_difference(row["metric"], row["ci_low"], row["ci_high"])
                verdict_class = {"better": "better", "worse": "worse"}.get(verdict, "")
                rows.append(
                    f"<tr class='{verdict_class}'><th scope='row'>{escape(model)}</th>"
                    f"<td>{escape(metric_label(row['metric']))}</td>"
                    f"<td>{escape(format_number(row['reference_value']))}</td>"
                    f"<td>{escape(format_number(row['baseline_value']))}</td>"
                    f"<td>{escape(format_signed(row['difference']))}</td>"
                    f"<td>{escape(format_interval(row['ci_low'], row['ci_high']) or 'none')}</td>"
                    f"<td>{escape(format_p_value(row['p_value']))}</td><td>{escape(verdict)}</td></tr>")
        tables.append(f"<table><caption>{escape(aggregation_units(aggregation))}</caption><thead><tr>{header}"
                      f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return ("<p>The verdict is judged from the 95% interval of the difference: \"better\" when the whole "
            f"interval lies on the side where {reference} is better, \"worse\" when it lies wholly on the other "
            "side, and \"no clear difference\" when it includes 0.</p>" + "".join(tables))


def confusion_cell(count: int, total: int) -> str:
    share = count / total if total else None
    return (f"<td><span class='count'>{escape(format_count(count))}</span> "
            f"<span class='share'>({escape(format_share(share))})</span></td>")


def confusion_matrix(inputs: ModelMetricsInputs, row: dict, aggregation: str) -> str:
    units = escape(aggregation_units(aggregation))
    target = escape(inputs.target)
    total = int(row["tp"] + row["fp"] + row["tn"] + row["fn"])
    rule = row["rule"]
    rule_text = RULE_DESCRIPTIONS.get(rule, rule)
    if rule == "coverage":
        rule_text = f"{rule_text}: {inputs.threshold_rule}"
    threshold = "per map" if row["threshold"] is None else format_number(row["threshold"])
    return (f"<table class='confusion'><caption>{units}, rule <code>{escape(rule)}</code> "
            f"({escape(rule_text)}), threshold {escape(threshold)}</caption>"
            f"<thead><tr><th scope='col'>{format_count(total)} {units}</th><th scope='col'>flagged</th>"
            f"<th scope='col'>not flagged</th></tr></thead><tbody>"
            f"<tr><th scope='row'>had a {target} incident</th>{confusion_cell(row['tp'], total)}"
            f"{confusion_cell(row['fn'], total)}</tr>"
            f"<tr><th scope='row'>had none</th>{confusion_cell(row['fp'], total)}"
            f"{confusion_cell(row['tn'], total)}</tr></tbody></table>"
            f"<p class='note'>TPR {escape(format_share(row['tpr']))}, FPR {escape(format_share(row['fpr']))}, "
            f"precision {escape(format_share(row['precision']))}, accuracy {escape(format_share(row['accuracy']))}. "
            "Shares are of all units.</p>")


def confusion_section(inputs: ModelMetricsInputs) -> str:
    reference_rows = rows_where(inputs.thresholds, model=inputs.reference_model)
    if reference_rows.height == 0:
        return missing(f"Confusion matrix of {inputs.reference_model}")
    parts = []
    for aggregation in ordered_aggregations(distinct(reference_rows, "aggregation")):
        for row in rows_where(reference_rows, aggregation=aggregation).sort("rule").iter_rows(named=True):
            parts.append(confusion_matrix(inputs, row, aggregation))
    return "".join(parts)


def threshold_cell(column: str, value: object) -> str:
    if column in COUNT_COLUMNS:
        return escape(format_count(value))
    if column == "threshold":
        return "per map" if value is None else escape(format_number(value))
    return escape(format_number(value))


def threshold_tables(inputs: ModelMetricsInputs, models: list[str]) -> str:
    if inputs.thresholds.height == 0:
        return missing("Threshold table")
    header = "".join(f"<th scope='col'>{escape(label)}</th>" for _, label in THRESHOLD_COLUMNS)
    tables = []
    for aggregation in ordered_aggregations(distinct(inputs.thresholds, "aggregation")):
        subset = rows_where(inputs.thresholds, aggregation=aggregation)
        rows = []
        for model in [name for name in models if name in distinct(subset, "model")]:
            for row in rows_where(subset, model=model).sort("rule").iter_rows(named=True):
                cells = "".join(f"<td>{threshold_cell(column, row[column])}</td>" for column, _ in THRESHOLD_COLUMNS)
                rows.append(f"<tr><th scope='row'>{escape(model)}</th><td>{escape(row['rule'])}</td>{cells}</tr>")
        tables.append(f"<table><caption>{escape(aggregation_units(aggregation))}</caption><thead><tr>"
                      f"<th scope='col'>model</th><th scope='col'>rule</th>{header}</tr></thead>"
                      f"<tbody>{''.join(rows)}</tbody></table>")
    rules = "; ".join(f"{name}: {text}" for name, text in RULE_DESCRIPTIONS.items())
    return (f"<p>Rules: {escape(rules)} ({escape(inputs.threshold_rule)}). The flag rate is the share of units "
            "flagged.</p>" + "".join(tables))


# Figures.

def figure_block(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def auc_alt_text(inputs: ModelMetricsInputs, models: list[str], aggregation: str, metric: str) -> str:
    values = []
    for model in models:
        row = first_row(inputs.metrics, model=model, aggregation=aggregation, metric=metric)
        if row is not None:
            values.append(f"{model} {format_number(row['value'])}")
    return f" {metric_label(metric)}: " + ", ".join(values) + "." if values else ""


def curve_section(inputs: ModelMetricsInputs, models: list[str], styles: dict[str, LineStyle]) -> str:
    if inputs.curves.height == 0:
        return missing("ROC and precision-recall curves")
    blocks = []
    for aggregation in ordered_aggregations(distinct(inputs.curves, "aggregation")):
        for curve, metric, name in (("roc", "roc_auc", "ROC"), ("pr", "pr_auc", "Precision-recall")):
            points = rows_where(inputs.curves, aggregation=aggregation, curve=curve)
            if points.height == 0:
                blocks.append(missing(f"{name} curves for {aggregation_units(aggregation)}"))
                continue
            plotted = [model for model in models if model in distinct(points, "model")]
            rate = base_rate(inputs, aggregation)
            figure = curve_figure(points, curve, aggregation, plotted, styles, rate.rate if rate else None)
            alt = (f"{name} curves of {', '.join(plotted)} for {aggregation_units(aggregation)}."
                   + auc_alt_text(inputs, plotted, aggregation, metric))
            blocks.append(figure_block(figure_svg(figure, f"{curve}-{aggregation}", alt), alt))
    return "<div class='figures'>" + "".join(blocks) + "</div>"


def hotspot_section(inputs: ModelMetricsInputs, models: list[str], styles: dict[str, LineStyle]) -> str:
    if inputs.hotspot_curve.height == 0:
        return missing("PAI, PEI and PEI* against coverage")
    aggregations = ordered_aggregations(distinct(inputs.hotspot_curve, "aggregation"))
    plotted = [model for model in models if model in distinct(inputs.hotspot_curve, "model")]
    blocks = []
    for metric in HOTSPOT_METRICS:
        figure = hotspot_figure(inputs.hotspot_curve, metric, aggregations, plotted, styles)
        alt = (f"{metric_label(metric)} against the share of the area flagged, one panel per aggregation "
               f"({', '.join(aggregations)}), one line per model ({', '.join(plotted)}).")
        blocks.append(figure_block(figure_svg(figure, f"hotspot-{metric}", alt), alt))
    return ("<p>PEI divides the incidents captured in the flagged cells by the most incidents that the "
            "densest cells could have held within the same area budget; PEI* does the same for the area the "
            "model actually flagged, so a model is not marked down for using less than the budget (after "
            "White, Hunt &amp; Green 2023, Security Journal). Both are at most 1, the best possible "
            "value.</p>" + "".join(blocks))


def reliability_section(inputs: ModelMetricsInputs, models: list[str], styles: dict[str, LineStyle]) -> str:
    if inputs.reliability.height == 0:
        return missing("Calibration")
    blocks = []
    for aggregation in ordered_aggregations(distinct(inputs.reliability, "aggregation")):
        subset = rows_where(inputs.reliability, aggregation=aggregation)
        plotted = [model for model in models if model in distinct(subset, "model")]
        figure = reliability_figure(subset, aggregation, plotted, styles)
        alt = (f"Calibration of {', '.join(plotted)} for {aggregation_units(aggregation)}: observed rate "
               "against mean forecast probability per bin, with the diagonal of perfect calibration.")
        blocks.append(figure_block(figure_svg(figure, f"reliability-{aggregation}", alt), alt))
    return ("<p>Only models that forecast probabilities have a calibration curve. Points below the diagonal "
            "mean the forecast probability was too high, points above mean it was too low.</p>"
            "<div class='figures'>" + "".join(blocks) + "</div>")


def timeseries_section(inputs: ModelMetricsInputs, models: list[str], styles: dict[str, LineStyle]) -> str:
    if inputs.timeseries.height == 0:
        return missing("Backtest time series")
    blocks = []
    for aggregation in ordered_aggregations(distinct(inputs.timeseries, "aggregation")):
        for metric in TIMESERIES_METRICS:
            subset = rows_where(inputs.timeseries, aggregation=aggregation, metric=metric)
            if subset.height == 0:
                blocks.append(missing(f"{metric_label(metric)} per origin for {aggregation_units(aggregation)}"))
                continue
            plotted = [model for model in models if model in distinct(subset, "model")]
            figure = timeseries_figure(subset, metric, aggregation, plotted, styles)
            alt = (f"{metric_label(metric)} per backtest origin for {aggregation_units(aggregation)}, one panel "
                   f"per model ({', '.join(plotted)}), with the 95% interval as a shaded band.")
            blocks.append(figure_block(figure_svg(figure, f"timeseries-{metric}-{aggregation}", alt), alt))
    return "".join(blocks)


def notes_section(inputs: ModelMetricsInputs, models: list[str]) -> str:
    notes = "".join(f"<li><strong>{escape(model)}</strong>: {escape(inputs.model_notes[model])}</li>"
                    for model in ordered_models(inputs.model_notes, inputs.reference_model))
    undescribed = [model for model in models if model not in inputs.model_notes]
    undescribed_note = (f"<p class='note'>No description was given for: {escape(', '.join(undescribed))}.</p>"
                        if undescribed else "")
    return (f"<h3>Models</h3><ul>{notes}</ul>{undescribed_note}"
            f"<h3>Weather</h3><p>{escape(inputs.weather_note)}</p>"
            "<h3>Intervals and p-values</h3><p>Intervals are 95% paired bootstrap intervals over days: the "
            "days of the evaluation period are resampled with replacement, and every model is scored on the "
            "same resampled days, so a comparison keeps the pairing of the two models on each day. The "
            "p-value comes from the same resamples and tests the hypothesis of no difference. A null interval "
            "is shown as none.</p>")


WEATHER_MODE_COLUMNS = (("roc_auc", "hour"), ("roc_auc", "day"), ("pai", "day"))


def weather_mode_section(inputs: ModelMetricsInputs) -> str:
    """Render the three weather modes side by side: none, stand-in forecast, and observed (oracle) weather."""
    frame = inputs.weather_modes
    if frame is None or frame.height == 0:
        return ("<p class='missing'>The weather-mode backtest has not run for this warehouse. Run "
                "<code>riskcast weather-modes</code> to compare the ensemble with no weather, with stand-in "
                "forecast weather and with observed (oracle) weather.</p>")
    header = "".join(f"<th>{escape(metric_label(metric))} ({escape(aggregation_units(aggregation))})</th>"
                     for metric, aggregation in WEATHER_MODE_COLUMNS)
    rows = []
    labelled = frame.select("model", "label").unique().sort("label")
    for model, label in labelled.iter_rows():
        cells = []
        for metric, aggregation in WEATHER_MODE_COLUMNS:
            match = rows_where(frame, model=model, metric=metric, aggregation=aggregation)
            if match.height == 0:
                cells.append("<td class='missing'>n/a</td>")
                continue
            row = match.row(0, named=True)
            cells.append(f"<td>{escape(format_number(row['value']))} <span class='interval'>"
                         f"{escape(format_interval(row.get('ci_low'), row.get('ci_high')))}</span></td>")
        rows.append(f"<tr><td>{escape(label or model)}</td>{''.join(cells)}</tr>")
    return ("<p>The ensemble retrained with the same seed, settings and origins in three weather modes. The gap "
            "between (b) and (c) is what a better weather forecast could add; the gap between (a) and (b) is "
            "what weather adds at all. Mode (c) reads weather observed after the issue time, which no "
            "forecaster has: it is an upper bound, never a result.</p>"
            f"<table><caption>Weather modes</caption><tr><th>mode</th>{header}</tr>{''.join(rows)}</table>")


# The page.

def render_page(inputs: ModelMetricsInputs) -> str:
    """Render the whole report as one HTML document."""
    models = ordered_models(all_models(inputs), inputs.reference_model)
    aggregations = ordered_aggregations(distinct(inputs.metrics, "aggregation"))
    styles = model_styles(models, inputs.reference_model)
    title = escape(inputs.title)
    banner = ("<p class='banner' role='alert'>SYNTHETIC DATA: these metrics come from a generated "
              "jurisdiction and describe no real city.</p>" if inputs.synthetic else "")
    sections = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Model Metrics: {title}</title>"
        f"<style>{STYLE}</style></head><body>",
        banner,
        f"<h1>Model Metrics: {title}</h1>",
        f"<p class='note'>Period: {escape(inputs.period_description)}. {escape(inputs.issue_rule)} Reference "
        f"model: {escape(inputs.reference_model)}. Threshold rule: {escape(inputs.threshold_rule)}. PAI, PEI "
        f"and hit rate at {escape(format_share(inputs.coverage))} of the area.</p>",
        summary_section(inputs),
        "<h2>Headline metrics</h2><p>Each cell is the value with its 95% interval in brackets. PAI, PEI* and "
        f"hit rate are at {escape(format_share(inputs.coverage))} of the area.</p>",
        headline_tables(inputs, models, aggregations),
        f"<h2>{escape(inputs.reference_model)} against each baseline</h2>",
        comparison_tables(inputs, models),
        f"<h2>Confusion matrix of {escape(inputs.reference_model)}</h2>",
        confusion_section(inputs),
        "<h2>ROC and precision-recall curves</h2>",
        curve_section(inputs, models, styles),
        "<h2>Thresholds</h2>",
        threshold_tables(inputs, models),
        "<h2>PAI, PEI and PEI* against coverage</h2>",
        hotspot_section(inputs, models, styles),
        "<h2>Calibration</h2>",
        reliability_section(inputs, models, styles),
        "<h2>Backtest per origin</h2>",
        timeseries_section(inputs, models, styles),
        "<h2>Weather modes</h2>",
        weather_mode_section(inputs),
        "<h2>Notes</h2>",
        notes_section(inputs, models),
        "</body></html>",
    ]
    return "\n".join(part for part in sections if part)


def render_model_metrics_report(path: Path, inputs: ModelMetricsInputs) -> Path:
    """Write the Model Metrics report to ``path`` as one self-contained HTML file and return the path.

    Rerunning with the same inputs writes the same bytes: the page has no timestamp, and figure
    ids and SVG metadata do not depend on the time of rendering.
    """
    page = render_page(inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    logger.info("wrote the Model Metrics report for %s to %s: %d models, %d metric rows, %d bytes",
                inputs.title, path, len(all_models(inputs)), inputs.metrics.height, len(page.encode("utf-8")))
    return path
