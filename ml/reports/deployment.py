"""The "Police Deployment" report: what staffing Riskcast's and CompSTAT's flagged cells would need.

The numbers come from ``ml.deployment``: ``compare_models`` (one row per model, COMPARISON_SCHEMA)
and ``group_exposure`` (one row per group, EXPOSURE_SCHEMA, with a ``model`` column added per
allocation). This module lays them out with the assumptions they rest on, explains the arithmetic
in plain language with the run's own numbers, and maps the share of shifts that flag each cell.

Every section's input may be None, and the page then states what is missing and why. Strings from the
inputs are HTML-escaped, and rendering the same inputs twice gives the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

import polars as pl

from ml.deployment import COMPARISON_SCHEMA, EXPOSURE_SCHEMA, DeploymentAssumptions
from ml.reports.formatting import escape, format_count, format_number, format_share
from ml.reports.maps import LeafletAssets, choropleth, leaflet_assets
from ml.reports.page import absent, document, map_footnote, table

logger = logging.getLogger(__name__)

DEFAULT_ABSENT_REASON = "it was not computed for this run."
ASSUMPTION_NOTES = {
    "officers_per_shift": "sworn officers on duty in the whole jurisdiction in one shift",
    "regular_patrol_share": "share of them on regular beat patrol; the rest float",
    "officers_per_flagged_cell": "floating officers sent to each flagged cell for the shift",
    "shift_hours": "length of one shift, in hours",
    "prevention_probability": "chance that the patrol in a flagged cell prevents any one crime there",
    "max_overtime_share": "most officers who can work overtime in a shift, as a share of those on duty",
    "overtime_rate": "overtime pay as a multiple of the straight-time hourly cost",
    "officer_hourly_cost": "straight-time cost of one officer-hour, used only for the overtime cost",
}


def format_money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


# (column of COMPARISON_SCHEMA, label, formatter)
COMPARISON_ROWS: tuple[tuple[str, str, Callable[[object], str]], ...] = (
    ("flag_rule", "flag rule", str),
    ("shifts", "shifts in the period", format_count),
    ("cells_flagged_per_shift", "tracts (cells) flagged per shift, mean", format_number),
    ("cells_flagged_total", "cell-shifts flagged, total", format_count),
    ("officers_needed_per_shift", "officers needed per shift, mean", format_number),
    ("officers_needed_max", "officers needed in the busiest shift", format_count),
    ("shifts_with_shortfall", "shifts short of floating officers", format_count),
    ("overtime_hours_total", "overtime hours, total", format_count),
    ("overtime_cost_total", "overtime cost, total", format_money),
    ("extra_officers_max", "extra officers needed in the worst shift", format_count),
    ("extra_officer_shifts_total", "extra officer-shifts, total", format_count),
    ("directed_officer_hours_total", "officer-hours directed to flagged cells", format_count),
    ("incidents_total", "recorded incidents in the period", format_count),
    ("incidents_in_flagged_cells", "of which in flagged cell-shifts", format_count),
    ("hit_rate", "share of incidents in flagged cell-shifts", format_share),
    ("expected_prevented_total", "expected crimes prevented, total", format_number),
    ("expected_prevented_per_shift", "expected crimes prevented per shift", format_number),
)


@dataclass(frozen=True)
class DeploymentReportInputs:
    """Everything the Police Deployment report shows; the frames may be None.

    ``comparison`` comes from ``ml.deployment.compare_models`` with ``assumptions``. ``exposure``
    stacks ``ml.deployment.group_exposure`` of each model's plan with a ``model`` column. ``cells``
    has cell_id, geojson (``ml.reports.maps.cell_geojson``) and ``flagged_share_<model>`` from
    ``ml.reports.cell_values.flagged_share_by_cell``. ``model_labels`` names models for readers.
    """

    title: str
    synthetic: bool
    period_description: str
    time_zone: str
    assumptions: DeploymentAssumptions
    comparison: pl.DataFrame | None = None
    exposure: pl.DataFrame | None = None
    cells: pl.DataFrame | None = None
    model: str = "ensemble"
    baseline: str = "compstat"
    model_labels: Mapping[str, str] = field(default_factory=lambda: {"ensemble": "Riskcast", "compstat": "CompSTAT"})
    absent_reasons: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = (("comparison", self.comparison, tuple(COMPARISON_SCHEMA)),
                  ("exposure", self.exposure, ("model", *EXPOSURE_SCHEMA)),
                  ("cells", self.cells, ("cell_id", "geojson")))
        for name, frame, columns in checks:
            if frame is None:
                continue
            missing = [column for column in columns if column not in frame.columns]
            if missing:
                raise ValueError(f"DeploymentReportInputs.{name} lacks columns {missing} (it has {frame.columns}); "
                                 f"see the class docstring for where {name} comes from, or pass None")

    def reason(self, name: str) -> str:
        return self.absent_reasons.get(name, DEFAULT_ABSENT_REASON)

    def label(self, model: str) -> str:
        return self.model_labels.get(model, model)

    def models(self) -> list[str]:
        return [self.model, self.baseline]


def assumptions_section(inputs: DeploymentReportInputs) -> str:
    defaults = DeploymentAssumptions()
    rows, classes = [], []
    for item in fields(DeploymentAssumptions):
        value, default = getattr(inputs.assumptions, item.name), getattr(defaults, item.name)
        is_default = value == default
        rows.append([f"<code>{escape(item.name)}</code>", escape(format_number(value) if isinstance(value, float) else value),
                     "default" if is_default else f"<strong>changed</strong> (default {escape(default)})",
                     escape(ASSUMPTION_NOTES.get(item.name, ""))])
        classes.append("" if is_default else "highlight")
    return ("<section id='assumptions'><h2>Assumptions</h2><p>Every number below is an assumption, not a "
            "measurement. The defaults are placeholders of plausible size for a large city department; set each one "
            "for the department before reading the results. Changed values are highlighted.</p>"
            + table("Deployment assumptions", ["parameter", "value", "default?", "meaning"], rows, classes)
            + "</section>")


def arithmetic_paragraphs(inputs: DeploymentReportInputs) -> str:
    """Explain the staffing and prevention arithmetic with this run's numbers."""
    a = inputs.assumptions
    floating = a.floating_officers
    capacity = floating // a.officers_per_flagged_cell
    text = (f"<p><strong>How the numbers are worked out.</strong> Each {a.shift_hours}-hour shift has "
            f"{format_count(a.officers_per_shift)} officers on duty. {format_share(a.regular_patrol_share)} stay on "
            f"regular beat patrol, which leaves {format_count(floating)} floating officers. Each flagged cell gets "
            f"{a.officers_per_flagged_cell} of them, so up to {format_count(capacity)} cells per shift can be staffed "
            f"without overtime. Beyond that, up to {format_count(a.max_overtime_officers)} officers are held over on "
            f"overtime, each paid {format_number(a.overtime_rate)} times the hourly cost of "
            f"{format_money(a.officer_hourly_cost)}, and any further need is counted as extra officers the department "
            "would have to find. A shift that spans a daylight-saving change has 7 or 9 hours, and its hours count as "
            "they are.</p>")
    if inputs.comparison is not None:
        sentences = []
        for row in inputs.comparison.iter_rows(named=True):
            sentences.append(
                f"{escape(inputs.label(row['model']))}: {format_number(a.prevention_probability)} &times; "
                f"{format_count(row['incidents_in_flagged_cells'])} incidents in flagged cell-shifts = "
                f"{format_number(row['expected_prevented_total'])} expected crimes prevented.")
        text += ("<p><strong>Expected crimes prevented</strong> is the prevention probability times the recorded "
                 "incidents that fell in flagged cells during their flagged shifts. " + " ".join(sentences) + "</p>")
    return text + (
        "<p><strong>Limits.</strong> The estimate takes every recorded incident in a flagged cell as preventable with "
        "the same probability, independently. It assumes crime is not displaced to nearby cells, that patrols do not "
        "change what gets recorded, and that every flagged cell is staffed. Recorded incidents are not all crime, and "
        "patrols themselves raise the records where they go. Read the numbers as a comparison of the two allocations "
        "under the same assumptions, not as a forecast of crimes prevented.</p>")


def comparison_section(inputs: DeploymentReportInputs) -> str:
    parts = [f"<section id='comparison'><h2>{escape(inputs.label(inputs.model))} against "
             f"{escape(inputs.label(inputs.baseline))}</h2>"]
    if inputs.comparison is None:
        parts.append(absent("The comparison", inputs.reason("comparison")))
        return "".join(parts) + arithmetic_paragraphs(inputs) + "</section>"

    by_model = {row["model"]: row for row in inputs.comparison.iter_rows(named=True)}
    models = [model for model in inputs.models() if model in by_model]
    models += [model for model in by_model if model not in models]
    rows = []
    for column, label, formatter in COMPARISON_ROWS:
        rows.append([escape(label), *[escape(formatter(by_model[model][column])) for model in models]])
    header = ["measure", *[f"{escape(inputs.label(model))} ({escape(model)})" for model in models]]
    parts.append(table(f"Deployment over {inputs.period_description}", header, rows))
    return "".join(parts) + arithmetic_paragraphs(inputs) + "</section>"


def exposure_section(inputs: DeploymentReportInputs) -> str:
    parts = ["<section id='exposure'><h2>Who the directed patrols fall on</h2>",
             "<p>Exposure is a group's share of the officer-hours directed to flagged cells; the regular beat patrol, "
             "which no model changes, is left out. It is compared with the group's share of cells and of residents: "
             "a ratio above 1 means the group's places get more directed patrol than their share of residents.</p>"]
    if inputs.exposure is None:
        parts.append(absent("The exposure table", inputs.reason("exposure")))
        return "".join(parts) + "</section>"

    models = [model for model in inputs.models() if model in inputs.exposure["model"].to_list()]
    header = ["group", "share of cells", "share of residents"]
    for model in models:
        header += [f"{escape(inputs.label(model))} exposure share", f"{escape(inputs.label(model))} exposure / residents"]
    rows = []
    for group in inputs.exposure["group"].unique(maintain_order=True).to_list():
        first = inputs.exposure.filter(pl.col("group") == group).row(0, named=True)
        cells = [escape(group), escape(format_share(first["cell_share"])), escape(format_share(first["population_share"]))]
        for model in models:
            match = inputs.exposure.filter((pl.col("group") == group) & (pl.col("model") == model))
            row = match.row(0, named=True) if match.height else None
            cells += [escape(format_share(row["exposure_share"] if row else None)),
                      escape(format_number(row["exposure_to_population_ratio"] if row else None))]
        rows.append(cells)
    parts.append(table("Directed patrol exposure by group", header, rows))
    return "".join(parts) + "</section>"


def maps_section(inputs: DeploymentReportInputs, assets: LeafletAssets) -> str:
    parts = ["<section id='maps'><h2>Where each model sends patrols</h2>",
             "<p>Each map colours a cell by the share of shifts in which the model flags it. Hover over a cell for its "
             "id and share.</p>"]
    if inputs.cells is None:
        parts.append(absent("The maps", inputs.reason("cells")))
        return "".join(parts) + "</section>"
    static = "noscript" if assets.inline else "visible"
    maps = []
    for model in inputs.models():
        column = f"flagged_share_{model}"
        title = f"Share of shifts flagged, {inputs.label(model)}"
        if column not in inputs.cells.columns:
            maps.append(absent(f"The map '{title}'", f"the cell table has no column {column}."))
            continue
        maps.append(choropleth(inputs.cells, column, title, f"flagged_share_{model}", formatter=format_share,
                               static=static))
    parts.append(f"<div class='maps'>{''.join(maps)}</div>")
    return "".join(parts) + "</section>"


def render_police_deployment_report(inputs: DeploymentReportInputs) -> str:
    """Render the Police Deployment report as one HTML document."""
    assets = leaflet_assets()
    body = [
        f"<p class='note'>Period: {escape(inputs.period_description)}, shifts in local time ({escape(inputs.time_zone)})."
        f" Models: {escape(inputs.label(inputs.model))} against {escape(inputs.label(inputs.baseline))}.</p>",
        "<p>This report asks what it would take to staff the cells each model flags, shift by shift, and how many "
        "crimes the patrols might prevent under stated assumptions. Forecasts are about places and hours, never "
        "people.</p>",
        comparison_section(inputs),
        assumptions_section(inputs),
        exposure_section(inputs),
        maps_section(inputs, assets),
        f"<footer><p class='note'>{escape(map_footnote(assets))}</p></footer>",
    ]
    page = document(f"Police Deployment: {inputs.title}", inputs.synthetic, assets, body)
    logger.info("rendered the Police Deployment report for %s: %s models compared, %d bytes", inputs.title,
                "no" if inputs.comparison is None else inputs.comparison.height, len(page.encode("utf-8")))
    return page
