"""Matplotlib figures of the Bias Audit report: group ratios with intervals and feedback-loop divergence.

Drawn on ``matplotlib.figure.Figure`` with an Agg canvas and rendered to inline SVG by
``ml.reports.figures.figure_svg``, like the Model Metrics figures, with the same palette.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from ml.reports.figures import OKABE_ITO_LINE_COLOURS, REFERENCE_COLOUR, add_legend, new_figure, plot_label

MODEL_MARKERS = ("o", "s", "^", "D")
SETTING_STYLES = {
    "discovered": ("#D55E00", "-"),
    "reported": ("#0072B2", "--"),
    "corrected": ("#009E73", "-."),
}


def ratio_figure(metrics: pl.DataFrame, metric: str, models: list[str], groups: list[str],
                 bounds: dict[str, list[float]] | None = None) -> Figure:
    """Plot each group's ratio to its reference with its 95% interval, one marker per model.

    Groups run down the y axis. A vertical line at 1 marks equal values, and ``bounds`` (group to
    the release gate's bounds on the ratio, one or two per group) are drawn as red ticks.
    """
    figure, (axes,) = new_figure()
    figure.set_size_inches(6.4, 0.5 * len(groups) + 1.4)
    offsets = np.linspace(-0.15, 0.15, len(models)) if len(models) > 1 else np.zeros(1)
    for index, model in enumerate(models):
        colour = REFERENCE_COLOUR if index == 0 else OKABE_ITO_LINE_COLOURS[(index - 1) % len(OKABE_ITO_LINE_COLOURS)]
        for position, group in enumerate(groups):
            row = metrics.filter((pl.col("model") == model) & (pl.col("group") == group) & (pl.col("metric") == metric))
            if row.height == 0 or row["ratio"][0] is None:
                continue
            y = position + offsets[index]
            low, high = row["ratio_ci_low"][0], row["ratio_ci_high"][0]
            if low is not None and high is not None:
                axes.plot([low, high], [y, y], color=colour, linewidth=1.4)
            axes.plot(row["ratio"][0], y, marker=MODEL_MARKERS[index % len(MODEL_MARKERS)], color=colour,
                      linestyle="none", label=plot_label(model))

    for position, group in enumerate(groups):
        if bounds and bounds.get(group):
            axes.plot(bounds[group], [position] * len(bounds[group]), marker="|", markersize=14, color="#c62828",
                      linestyle="none", label="gate bound")
    axes.axvline(1.0, color="#999999", linewidth=0.8)
    axes.set_yticks(range(len(groups)), [plot_label(group) for group in groups], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(f"{metric} ratio, group over reference (1 = equal)")
    add_legend(figure)
    return figure


def divergence_figure(daily: pl.DataFrame) -> Figure:
    """Plot the divergence between patrol shares and true risk per simulated day, one line per setting."""
    figure, (axes,) = new_figure()
    figure.set_size_inches(6.4, 3.0)
    for setting in daily["setting"].unique(maintain_order=True).to_list():
        points = daily.filter(pl.col("setting") == setting).sort("day")
        colour, dash = SETTING_STYLES.get(setting, ("#555555", ":"))
        axes.plot(points["day"].to_numpy(), points["divergence"].to_numpy(), color=colour, linestyle=dash,
                  linewidth=1.6, label=plot_label(setting))
    axes.set_ylim(0, 1)
    axes.set_xlabel("simulated day")
    axes.set_ylabel("divergence (total variation)")
    add_legend(figure)
    return figure
