"""The "Bias Audit" report: one static HTML page on how a forecast's patrol flags fall on places.

The groups are groups of cells (places), defined by population-weighted quintiles of census
columns, never people. The page compares Riskcast's ensemble with CompSTAT, the status quo
(Bratton & Malinowski 2008), on group metrics with day-bootstrap 95% intervals. It shows the
release gate's verdict and patrol exposure against each group's share of residents and of recorded
incidents. It adds maps per cell, the arrest-driven input-bias audit and a known-truth feedback-loop simulation after
Ensign et al. (2018), "Runaway Feedback Loops in Predictive Policing", PMLR 81:160-171, and Lum &
Isaac (2016), "To predict and serve?", Significance 13(5). The numbers come from ``ml.bias`` and
``ml.simulation``; this module only lays them out, with a plain-language explanation per section.

Every input section may be None. The page then says what is missing and why. Strings from the
inputs are HTML-escaped, and rendering the same inputs twice gives the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import polars as pl

from ml.bias import DEFAULT_GROUPS, GROUP_METRIC_SCHEMA, GateResult, GroupDefinition, quintile_column
from ml.reports.bias_evidence import arrest_section, simulation_section
from ml.reports.bias_figures import ratio_figure
from ml.reports.figures import figure_svg
from ml.reports.formatting import escape, format_count, format_number, format_share, format_signed
from ml.reports.maps import LeafletAssets, choropleth, leaflet_assets
from ml.reports.page import absent, document, map_footnote, table, value_interval
from ml.simulation import FeedbackResult, LumIsaacResult

logger = logging.getLogger(__name__)

ERROR_METRICS = ("flag_rate", "tpr", "fpr", "fnr", "precision", "pai")
EXPOSURE_METRICS = ("exposure_share", "exposure_to_population", "exposure_to_incidents")
METRIC_NAMES = {
    "flag_rate": "flag rate", "tpr": "true positive rate", "fpr": "false positive rate",
    "fnr": "false negative rate", "precision": "precision", "pai": "PAI",
    "exposure_share": "exposure share", "exposure_to_population": "exposure / population share",
    "exposure_to_incidents": "exposure / incident share",
}
DEFAULT_ABSENT_REASON = "it was not computed for this run."
CELL_COLUMNS = ("cell_id", "geojson")


@dataclass(frozen=True)
class BiasAuditInputs:
    """Everything the Bias Audit report shows; any section's input may be None.

    ``groups`` comes from ``ml.bias.assign_groups`` with ``definitions``, ``group_metrics`` from
    ``ml.bias.group_metrics`` (GROUP_METRIC_SCHEMA) and ``gate`` from ``ml.bias.disparity_gate``.
    ``cells`` has cell_id, geojson (``ml.reports.maps.cell_geojson``) and the per-cell columns of
    ``ml.reports.cell_values.cell_flag_summary``. ``arrest_audit`` comes from
    ``ml.bias.arrest_share_by_category``. ``absent_reasons`` gives, per input name, why an input
    is None (for example that the warehouse carries no arrests), and ``gate_blocks`` what a failed
    gate stops. ``coverage`` is the share of cells flagged per forecast map.
    """

    title: str
    synthetic: bool
    period_description: str
    cell_hours: int | None
    coverage: float
    bootstrap_resamples: int
    definitions: tuple[GroupDefinition, ...] = DEFAULT_GROUPS
    groups: pl.DataFrame | None = None
    group_metrics: pl.DataFrame | None = None
    gate: GateResult | None = None
    cells: pl.DataFrame | None = None
    arrest_audit: pl.DataFrame | None = None
    feedback: FeedbackResult | None = None
    lum_isaac: LumIsaacResult | None = None
    targets: tuple[str, ...] = ("violent", "robbery", "property")
    model: str = "ensemble"
    baseline: str = "compstat"
    gate_blocks: str = "A failed gate blocks the release of the ensemble's forecasts for deployment."
    absent_reasons: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.group_metrics is not None:
            missing = [name for name in GROUP_METRIC_SCHEMA if name not in self.group_metrics.columns]
            if missing:
                raise ValueError(f"BiasAuditInputs.group_metrics lacks columns {missing}; pass the frame of "
                                 "ml.bias.group_metrics, or None when it was not computed")
        if self.cells is not None:
            missing = [name for name in CELL_COLUMNS if name not in self.cells.columns]
            if missing:
                raise ValueError(f"BiasAuditInputs.cells lacks columns {missing}; join cell_geojson() to "
                                 "cell_flag_summary(), or pass None")
        if not 0 < self.coverage <= 1:
            raise ValueError(f"BiasAuditInputs.coverage must be a share in (0, 1], got {self.coverage!r}; "
                             "pass 0.05 for 5% of cells")

    def reason(self, name: str) -> str:
        return self.absent_reasons.get(name, DEFAULT_ABSENT_REASON)


def metric_row(frame: pl.DataFrame, model: str, group: str, metric: str) -> dict | None:
    rows = frame.filter((pl.col("model") == model) & (pl.col("group") == group) & (pl.col("metric") == metric))
    return rows.row(0, named=True) if rows.height else None


def group_names(inputs: BiasAuditInputs) -> list[str]:
    """Return the groups in definition order, then any other group the metrics name."""
    names = [definition.name for definition in inputs.definitions]
    if inputs.group_metrics is not None:
        names += [name for name in inputs.group_metrics["group"].unique(maintain_order=True).to_list()
                  if name not in names]
    return names


# Summary and gate.

def summary_section(inputs: BiasAuditInputs) -> str:
    parts = ["<section id='summary'><h2>Summary and release gate</h2>",
             f"<p>This audit asks whether the cells that the {escape(inputs.model)} forecast flags for patrol fall "
             f"more heavily on some kinds of neighbourhood than the cells that {escape(inputs.baseline)}, the "
             "department's current method, flags. The groups are places: each is a set of cells picked by the "
             "census make-up of their residents. Nothing here describes or scores any person.</p>"]
    gate = inputs.gate
    if gate is None:
        parts.append(absent("The release gate", inputs.reason("gate")))
        return "".join(parts) + "</section>"

    verdict = "passed" if gate.passed else "FAILED"
    name = METRIC_NAMES.get(gate.metric, gate.metric)
    parts.append(
        f"<div class='{'gate-pass' if gate.passed else 'gate-fail'}' role='status'><strong>Release gate "
        f"{verdict}.</strong> {escape(gate.message)}</div>"
        f"<p><strong>The rule.</strong> For each group, the {escape(name)} ratio is the group's {escape(name)} "
        f"divided by that of its reference group. {rule_sentence(gate.direction)} The {escape(inputs.model)}'s "
        f"disparity may exceed the {escape(inputs.baseline)}'s by at most {escape(format_number(gate.margin))} "
        f"(the bound is the {escape(inputs.baseline)} disparity + {escape(format_number(gate.margin))}). A group "
        f"whose ratio cannot be computed, or is 0, fails, because the gate cannot show that the bound holds. "
        f"{escape(inputs.gate_blocks)}</p>")

    rows, classes = [], []
    for row in gate.checks.iter_rows(named=True):
        model_disparity = row.get("model_disparity", row["model_ratio"])
        margin = None if row["bound"] is None or model_disparity is None else row["bound"] - model_disparity
        rows.append([escape(row["group"]), escape(row["reference"]), escape(format_number(row["model_ratio"])),
                     escape(format_number(row["baseline_ratio"])), escape(format_number(model_disparity)),
                     escape(format_number(row["bound"])),
                     escape(format_signed(margin)), "pass" if row["passed"] else "<strong>FAIL</strong>"])
        classes.append("" if row["passed"] else "failed")
    header = ["group", "reference", f"{escape(inputs.model)} ratio", f"{escape(inputs.baseline)} ratio",
              f"{escape(inputs.model)} disparity", "bound", "room left (bound &minus; disparity)", "result"]
    parts.append(table(f"Release gate on the {name} ratio", header, rows, classes))
    return "".join(parts) + "</section>"


def rule_sentence(direction: str) -> str:
    """Explain how the gate reads a ratio as a disparity."""
    if direction == "higher":
        return "The disparity is the ratio itself, so only a group getting more than its reference is bounded."
    return ("The disparity is the ratio's distance from parity, the larger of the ratio and its inverse, so a "
            "group flagged half as often as its reference (0.5) is as far from parity as one flagged twice as "
            "often (2).")


# Groups.

def groups_section(inputs: BiasAuditInputs, assets: LeafletAssets) -> str:
    parts = ["<section id='groups'><h2>Groups of places</h2>",
             "<p>Each cell is ranked by a census column, such as its residents' share of Black residents, and cut "
             "into five quintiles. Quintiles are weighted by population, so each holds about a fifth of the city's "
             "residents rather than a fifth of its cells. A group is the cells in chosen quintiles, and it is "
             "compared with its reference, by default the cells in the other quintiles. Cells without residents "
             "or without a value belong to neither.</p>"]
    if inputs.groups is None:
        parts.append(absent("The group table", inputs.reason("groups")))
    rows = []
    total_population = None if inputs.groups is None else float(inputs.groups["population"].fill_null(0).sum())
    for definition in inputs.definitions:
        cells = population = None
        if inputs.groups is not None and definition.name in inputs.groups.columns:
            members = inputs.groups.filter(pl.col(definition.name))
            cells, population = members.height, float(members["population"].fill_null(0).sum())
        share = population / total_population if population is not None and total_population else None
        rows.append([escape(definition.name), escape(definition.description), f"<code>{escape(definition.column)}</code>",
                     escape(", ".join(str(quintile) for quintile in definition.quintiles)),
                     escape(definition.reference), escape(format_count(cells)), escape(format_count(population)),
                     escape(format_share(share))])
    parts.append(table("Group definitions", ["group", "description", "column", "quintiles (1 = lowest)",
                                             "reference", "cells", "residents", "share of residents"], rows))
    parts.append(membership_maps(inputs, assets))
    return "".join(parts) + "</section>"


def membership_maps(inputs: BiasAuditInputs, assets: LeafletAssets) -> str:
    if inputs.cells is None:
        return absent("The group membership maps", inputs.reason("cells"))
    if inputs.groups is None:
        return absent("The group membership maps", inputs.reason("groups"))
    static = "noscript" if assets.inline else "visible"
    maps = []
    for definition in inputs.definitions:
        if definition.name not in inputs.groups.columns:
            continue
        columns = ["cell_id", definition.name]
        if quintile_column(definition.column) in inputs.groups.columns:
            columns.append(quintile_column(definition.column))
        joined = inputs.cells.select(*CELL_COLUMNS).join(inputs.groups.select(columns), on="cell_id", how="left")
        maps.append(choropleth(joined, definition.name, f"Group {definition.name}", f"group_{definition.name}",
                               labels={True: "in the group", False: "not in the group"},
                               caption=definition.description, static=static))
    return f"<div class='maps'>{''.join(maps)}</div>"


# Group metrics.

def metrics_section(inputs: BiasAuditInputs) -> str:
    parts = ["<section id='metrics'><h2>Group metrics: ensemble and CompSTAT side by side</h2>",
             f"<p>In every forecast map each model flags the top {escape(format_share(inputs.coverage))} of cells. "
             "The flag rate is the share of a group's cell-periods that are flagged. The true positive rate is the "
             "share of cell-periods with an incident that were flagged, and the false positive rate the share of "
             "quiet ones that were flagged anyway. Each value has its 95% interval in brackets. The difference is "
             "the group's value minus its reference's, and the ratio is the group's value over its reference's, "
             "so a ratio of 1 means the two are treated alike.</p>"]
    frame = inputs.group_metrics
    if frame is None:
        parts.append(absent("The group metrics", inputs.reason("group_metrics")))
        return "".join(parts) + "</section>"

    models = [inputs.model, inputs.baseline]
    header = ["metric"]
    for model in models:
        header += [f"{escape(model)} value", f"{escape(model)} reference", f"{escape(model)} difference",
                   f"{escape(model)} ratio"]
    for group in group_names(inputs):
        rows = []
        reference = None
        for metric in ERROR_METRICS:
            cells = [escape(METRIC_NAMES[metric])]
            for model in models:
                row = metric_row(frame, model, group, metric)
                if row is None:
                    cells += ["not computed"] * 4
                    continue
                reference = row["reference"]
                cells += [value_interval(row["value"], row["ci_low"], row["ci_high"]),
                          escape(format_number(row["reference_value"])),
                          value_interval(row["difference"], row["difference_ci_low"], row["difference_ci_high"]),
                          value_interval(row["ratio"], row["ratio_ci_low"], row["ratio_ci_high"])]
            rows.append(cells)
        parts.append(table(f"{group} against {reference or 'its reference'}", header, rows))

    groups = group_names(inputs)
    bounds = None
    if inputs.gate is not None and inputs.gate.metric == "flag_rate":
        # On the two-sided rule, a bound b on the distance from parity allows ratios from 1/b to b.
        bounds = {group: ([bound] if inputs.gate.direction == "higher" or bound is None else [1 / bound, bound])
                  for group, bound in zip(inputs.gate.checks["group"].to_list(), inputs.gate.checks["bound"].to_list())}
    figure = ratio_figure(frame, "flag_rate", models, groups, bounds)
    alt = (f"Flag-rate ratio of each group to its reference, with 95% intervals, for {inputs.model} and "
           f"{inputs.baseline}; the vertical line at 1 marks equal flag rates.")
    parts.append(f"<figure>{figure_svg(figure, 'flag-rate-ratio', alt)}<figcaption>{escape(alt)} Red ticks mark "
                 "the release gate's bound.</figcaption></figure>")
    parts.append(
        "<p><strong>Why group metrics can conflict.</strong> When two groups have different base rates (shares "
        "of cell-periods with a recorded incident), no forecast can give them both equal true positive rates and "
        "equal flag rates, unless it is perfect. Suppose incidents are recorded in 20% of one group's cell-periods "
        "and 5% of the other's. A forecast that finds half the incidents in each (equal true positive rates) must "
        "flag the first group more often. One that flags both equally often finds a larger share of the second "
        "group's incidents. So read the flag rate (who gets patrolled) next to the error rates (whether patrols go "
        "where incidents are recorded), and remember that recorded incidents are not all crime.</p>")
    return "".join(parts) + "</section>"


def exposure_section(inputs: BiasAuditInputs) -> str:
    parts = ["<section id='exposure'><h2>Patrol exposure against residents and recorded incidents</h2>",
             "<p>Exposure is a group's share of all flagged cell-hours, the patrol time the flags would direct. It "
             "is compared with the group's share of the city's residents and of its recorded incidents. A ratio "
             "above 1 means the group gets more patrol than its share of residents (or incidents), and below 1 "
             "less.</p>"]
    frame = inputs.group_metrics
    if frame is None:
        parts.append(absent("The exposure table", inputs.reason("group_metrics")))
        return "".join(parts) + "</section>"

    models = [inputs.model, inputs.baseline]
    header = ["group", "share of residents", "share of recorded incidents"]
    for model in models:
        header += [f"{escape(model)} exposure share", f"{escape(model)} exposure / residents",
                   f"{escape(model)} exposure / incidents"]
    rows = []
    for group in group_names(inputs):
        population = metric_row(frame, inputs.model, group, "population_share")
        incidents = metric_row(frame, inputs.model, group, "incident_share")
        cells = [escape(group), escape(format_share(population["value"] if population else None)),
                 interval_cell(incidents, format_share)]
        for model in models:
            for metric in EXPOSURE_METRICS:
                formatter = format_share if metric == "exposure_share" else format_number
                cells.append(interval_cell(metric_row(frame, model, group, metric), formatter))
        rows.append(cells)
    parts.append(table("Exposure by group (95% intervals in brackets)", header, rows))
    return "".join(parts) + "</section>"


def interval_cell(row: dict | None, formatter: Callable[[float | None], str]) -> str:
    if row is None:
        return "not computed"
    return value_interval(row["value"], row["ci_low"], row["ci_high"], formatter)


# Maps of cells.

def maps_section(inputs: BiasAuditInputs, assets: LeafletAssets) -> str:
    parts = ["<section id='maps'><h2>Maps by cell</h2>",
             "<p>Mean risk is the model's average forecast for the cell. The flag rate is the share of forecast "
             "maps that flag the cell, and exposure its share of all flagged cell-hours. Hover over a cell for its "
             "id and value. Colours are quantile classes, so each colour holds about as many cells.</p>"]
    if inputs.cells is None:
        parts.append(absent("The cell maps", inputs.reason("cells")))
        return "".join(parts) + "</section>"

    static = "noscript" if assets.inline else "visible"
    maps = []
    for model in (inputs.model, inputs.baseline):
        for prefix, title, formatter in (
            ("mean_risk", f"Mean risk, {model}", format_number),
            ("flag_rate", f"Flag rate, {model}", format_share),
            ("exposure_share", f"Exposure share, {model}", format_share),
        ):
            column = f"{prefix}_{model}"
            if column not in inputs.cells.columns:
                maps.append(absent(f"The map '{title}'", f"the cell table has no column {column}."))
                continue
            maps.append(choropleth(inputs.cells, column, title, f"{prefix}_{model}", formatter=formatter,
                                   static=static))
    parts.append(f"<div class='maps'>{''.join(maps)}</div>")
    return "".join(parts) + "</section>"


# Data and limits.

def limits_section(inputs: BiasAuditInputs, assets: LeafletAssets) -> str:
    cell_hours = format_count(inputs.cell_hours) if inputs.cell_hours is not None else "an unknown number of"
    return (
        "<footer id='limits'><h2>Data and limits</h2>"
        f"<p>Period: {escape(inputs.period_description)}, {escape(cell_hours)} cell-hours. Each model flags the "
        f"top {escape(format_share(inputs.coverage))} of cells per forecast map. Intervals are 95% percentile "
        f"intervals from {escape(format_count(inputs.bootstrap_resamples))} bootstrap resamples of days. The "
        "groups are places, defined by the census make-up of their residents: the audit says how patrols would "
        "be spread over neighbourhoods, not how any person would be treated, and a cell's residents are not the "
        "people who pass through it. Recorded incidents reflect reporting and past policing as well as crime, "
        "so a group's incident share is not its share of offending.</p>"
        f"<p class='note'>{escape(map_footnote(assets))}</p></footer>")


def render_bias_audit_report(inputs: BiasAuditInputs) -> str:
    """Render the Bias Audit report as one HTML document."""
    assets = leaflet_assets()
    body = [
        f"<p class='note'>Period: {escape(inputs.period_description)}. Models: {escape(inputs.model)} against "
        f"{escape(inputs.baseline)}. Flags: top {escape(format_share(inputs.coverage))} of cells per map.</p>",
        summary_section(inputs),
        groups_section(inputs, assets),
        metrics_section(inputs),
        exposure_section(inputs),
        maps_section(inputs, assets),
        arrest_section(inputs.arrest_audit, inputs.targets, inputs.reason("arrest_audit")),
        simulation_section(inputs.feedback, inputs.lum_isaac, inputs.reason("feedback"), inputs.reason("lum_isaac")),
        limits_section(inputs, assets),
    ]
    page = document(f"Bias Audit: {inputs.title}", inputs.synthetic, assets, body)
    logger.info("rendered the Bias Audit report for %s: %d group metric rows, %s cells, %d bytes", inputs.title,
                0 if inputs.group_metrics is None else inputs.group_metrics.height,
                "no" if inputs.cells is None else inputs.cells.height, len(page.encode("utf-8")))
    return page
