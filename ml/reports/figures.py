"""Matplotlib figures of the Model Metrics report, rendered to inline SVG.

Figures are drawn on ``matplotlib.figure.Figure`` objects with an Agg canvas, never through
pyplot, so rendering selects no global backend. Rendering is not thread-safe, because it sets
matplotlib's global rcParams for the duration of each ``savefig``.

Lines use the colour-blind-safe palette of Okabe & Ito (2008), "Color Universal Design" (hex
values as in the R package see 0.8.5), without its yellow, which is too faint for lines on white.
Line styles repeat the distinction for readers who cannot tell the colours apart, and the random
and oracle bounds are grey. Text stays text in the SVG (``svg.fonttype = "none"``). A fixed hash
salt per figure makes the SVG bytes the same on every run.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import matplotlib
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from ml.reports.formatting import aggregation_units, escape, metric_label

REFERENCE_COLOUR = "#000000"
OKABE_ITO_LINE_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7"]
LINE_STYLES = ["-", "--", "-.", ":"]
BOUND_STYLES = {"random": ("#999999", ":"), "oracle": ("#555555", "--")}
PANEL_WIDTH_INCHES = 3.6
LEGEND_WIDTH_INCHES = 1.6
PANEL_HEIGHT_INCHES = 2.8
TIMESERIES_COLUMNS = 3

METADATA_PATTERN = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
ID_PATTERN = re.compile(r'(\s)id="([^"]+)"')
URL_REFERENCE_PATTERN = re.compile(r"url\(#([^)]+)\)")
HREF_REFERENCE_PATTERN = re.compile(r'href="#([^"]+)"')


@dataclass(frozen=True)
class LineStyle:
    colour: str
    line_style: str
    width: float


def model_styles(models: list[str], reference: str) -> dict[str, LineStyle]:
    """Give the reference model a thick black line, the bounds grey, and other models a colour and dash pair."""
    styles = {}
    if reference in models:
        styles[reference] = LineStyle(REFERENCE_COLOUR, "-", 2.4)
    others = [model for model in models if model != reference and model not in BOUND_STYLES]
    for index, model in enumerate(others):
        colour = OKABE_ITO_LINE_COLOURS[index % len(OKABE_ITO_LINE_COLOURS)]
        dash = LINE_STYLES[(index + 1) % len(LINE_STYLES)]
        styles[model] = LineStyle(colour, dash, 1.5)
    for model, (colour, dash) in BOUND_STYLES.items():
        if model in models and model != reference:
            styles[model] = LineStyle(colour, dash, 1.5)
    return styles


def plot_label(text: str) -> str:
    """Protect a label from matplotlib's mathtext and its rule that hides labels starting with "_"."""
    protected = text.replace("$", r"\$")
    return protected if not protected.startswith("_") else " " + protected


def new_figure(panels: int = 1, columns: int = 1, layout: str | None = "constrained") -> tuple[Figure, list]:
    rows = math.ceil(panels / columns)
    width = PANEL_WIDTH_INCHES * columns + (LEGEND_WIDTH_INCHES if layout == "constrained" else 0)
    figure = Figure(figsize=(width, PANEL_HEIGHT_INCHES * rows), layout=layout)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def figure_svg(figure: Figure, figure_id: str, alt: str) -> str:
    """Render ``figure`` as an inline ``<svg>`` element labelled with ``alt`` for screen readers.

    ``figure_id`` must be unique within the page: it prefixes every element id of the SVG.
    """
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": figure_id}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()

    # Drop the XML declaration, DOCTYPE and RDF metadata, which have no use inside HTML.
    svg = text[text.index("<svg"):]
    svg = METADATA_PATTERN.sub("", svg, count=1)
    svg = prefix_ids(svg, figure_id)

    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(alt)}" ', 1)
    opening_end = svg.index(">") + 1
    return svg[:opening_end] + f"<title>{escape(alt)}</title>" + svg[opening_end:]


def prefix_ids(svg: str, prefix: str) -> str:
    """Prefix every id and every reference to one, because matplotlib numbers ids per figure
    ("figure_1", "axes_1") and ids must be unique within one HTML page."""
    svg = ID_PATTERN.sub(lambda match: f'{match.group(1)}id="{prefix}-{match.group(2)}"', svg)
    svg = URL_REFERENCE_PATTERN.sub(lambda match: f"url(#{prefix}-{match.group(1)})", svg)
    return HREF_REFERENCE_PATTERN.sub(lambda match: f'href="#{prefix}-{match.group(1)}"', svg)


def add_legend(figure: Figure) -> None:
    """Add one legend right of the plots, with each label once, so it never covers a line."""
    entries = {}
    for axes in figure.axes:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        figure.legend(list(entries.values()), list(entries), loc="outside right upper", fontsize=7, frameon=False)


def curve_figure(curves: pl.DataFrame, curve: str, aggregation: str, models: list[str],
                 styles: dict[str, LineStyle], base_rate: float | None) -> Figure:
    """Plot ROC (x = FPR, y = TPR) or PR (x = recall, y = precision) curves of every model together."""
    figure, (axes,) = new_figure()
    for model in models:
        points = curves.filter(pl.col("model") == model).sort("x")
        if points.height == 0:
            continue
        style = styles[model]
        axes.plot(points["x"].to_numpy(), points["y"].to_numpy(), color=style.colour,
                  linestyle=style.line_style, linewidth=style.width, label=plot_label(model))

    if curve == "roc":
        axes.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, label="chance")
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
        axes.set_title(f"ROC, {aggregation_units(aggregation)}", fontsize=9)
    else:
        if base_rate is not None:
            axes.axhline(base_rate, color="#999999", linewidth=0.8, label="base rate")
        axes.set_xlabel("recall (true positive rate)")
        axes.set_ylabel("precision")
        axes.set_title(f"Precision-recall, {aggregation_units(aggregation)}", fontsize=9)
    # Precision at crime base rates stays far below 1, so the PR axis ends just above the highest point.
    highest = curves["y"].cast(pl.Float64).max() if curve == "pr" else None
    top = min(1.02, highest * 1.1) if highest is not None and highest > 0 else 1.02
    axes.set_xlim(0, 1)
    axes.set_ylim(0, top)
    add_legend(figure)
    return figure


def hotspot_figure(hotspot: pl.DataFrame, metric: str, aggregations: list[str], models: list[str],
                   styles: dict[str, LineStyle]) -> Figure:
    """Plot ``metric`` (pai, pei or pei_star) against area coverage, one panel per aggregation."""
    figure, panels = new_figure(len(aggregations), len(aggregations))
    for axes, aggregation in zip(panels, aggregations):
        subset = hotspot.filter(pl.col("aggregation") == aggregation)
        for model in models:
            points = subset.filter(pl.col("model") == model).sort("coverage")
            if points.height == 0:
                continue
            style = styles[model]
            axes.plot(points["coverage"].to_numpy() * 100, points[metric].cast(pl.Float64).to_numpy(),
                      color=style.colour, linestyle=style.line_style, linewidth=style.width,
                      marker="o", markersize=3, label=plot_label(model))
        axes.set_xlabel("area flagged (% of the city)")
        axes.set_ylabel(metric_label(metric))
        axes.set_title(f"{metric_label(metric)}, {aggregation_units(aggregation)}", fontsize=9)
    add_legend(figure)
    return figure


def reliability_figure(reliability: pl.DataFrame, aggregation: str, models: list[str],
                       styles: dict[str, LineStyle]) -> Figure:
    """Plot the observed rate against the mean forecast probability per bin, with the diagonal.

    The axes end a little above the largest value rather than at 1, because at crime base rates
    every bin sits near 0 and would be invisible on a unit square.
    """
    figure, (axes,) = new_figure()
    largest = 0.0
    for model in models:
        bins = reliability.filter(pl.col("model") == model).sort("mean_predicted")
        if bins.height == 0:
            continue
        predicted = bins["mean_predicted"].cast(pl.Float64).to_numpy()
        observed = bins["observed_rate"].cast(pl.Float64).to_numpy()
        largest = max(largest, float(np.nanmax(predicted)), float(np.nanmax(observed)))
        style = styles[model]
        axes.plot(predicted, observed, color=style.colour, linestyle=style.line_style,
                  linewidth=style.width, marker="o", markersize=3, label=plot_label(model))

    limit = largest * 1.05 if largest > 0 else 1.0
    axes.plot([0, limit], [0, limit], color="#999999", linewidth=0.8, label="perfect calibration")
    axes.set_xlim(0, limit)
    axes.set_ylim(0, limit)
    axes.set_xlabel("mean forecast probability")
    axes.set_ylabel("observed rate")
    axes.set_title(f"Calibration, {aggregation_units(aggregation)}", fontsize=9)
    add_legend(figure)
    return figure


def timeseries_figure(timeseries: pl.DataFrame, metric: str, aggregation: str, models: list[str],
                      styles: dict[str, LineStyle]) -> Figure:
    """Plot ``metric`` per backtest origin with its 95% interval as a band, one panel per model.

    All panels share the y axis, so models compare by the height of their lines. The grid is laid
    out by hand because constrained layout took about twice as long to render a nine-panel figure
    (2.0 s against 0.9 s, measured once on a shared two-core machine).
    """
    columns = min(TIMESERIES_COLUMNS, len(models))
    figure, panels = new_figure(len(models), columns, layout=None)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.88, wspace=0.15, hspace=0.45)
    first = panels[0]
    for index, (axes, model) in enumerate(zip(panels, models)):
        if axes is not first:
            axes.sharey(first)
        points = timeseries.filter(pl.col("model") == model).sort("origin")
        style = styles[model]
        origins = points["origin"].to_list()
        low = points["ci_low"].cast(pl.Float64).to_numpy()
        high = points["ci_high"].cast(pl.Float64).to_numpy()
        axes.fill_between(origins, low, high, color=style.colour, alpha=0.2, linewidth=0,
                          label="95% interval")
        axes.plot(origins, points["value"].cast(pl.Float64).to_numpy(), color=style.colour,
                  linestyle=style.line_style, linewidth=style.width, marker="o", markersize=2.5,
                  label=plot_label(model))
        locator = AutoDateLocator(maxticks=5)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        axes.set_title(plot_label(model), fontsize=9)
        if index % columns == 0:
            axes.set_ylabel(metric_label(metric))
        else:
            axes.tick_params(labelleft=False)
    figure.suptitle(f"{metric_label(metric)} per backtest origin, {aggregation_units(aggregation)}", fontsize=10)
    return figure
