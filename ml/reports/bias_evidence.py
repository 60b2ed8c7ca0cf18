"""The Bias Audit sections on biased inputs: arrest-driven records and the known-truth simulation.

The arrest table reads ``ml.bias.arrest_share_by_category``. The simulation sections read
``ml.simulation.simulate_feedback`` (after Ensign et al. 2018, "Runaway Feedback Loops in
Predictive Policing") and ``ml.simulation.lum_isaac_check`` (after Lum & Isaac 2016, "To predict
and serve?", Significance 13(5)).
"""

from __future__ import annotations

import polars as pl

from ml.bias import ARREST_AUDIT_SCHEMA
from ml.reports.bias_figures import divergence_figure
from ml.reports.figures import figure_svg
from ml.reports.formatting import escape, format_count, format_number, format_share
from ml.reports.page import absent, table
from ml.simulation import FeedbackResult, LumIsaacResult

KIND_LABELS = {"arrest_driven": "arrest-driven", "victim_reported": "victim-reported violent", "other": "other"}
SETTING_NOTES = {
    "discovered": "only incidents that patrols find enter the record",
    "reported": "only incidents that victims report enter the record, whatever the patrols",
    "corrected": "found incidents are weighted by 1 / the patrol share of their cell",
}


def arrest_section(audit: pl.DataFrame | None, targets: tuple[str, ...], reason: str) -> str:
    """Render the input-bias audit: arrest shares per category and record skew per group."""
    parts = ["<section id='input-bias'><h2>Input bias: categories recorded by police activity</h2>",
             "<p>Some crime categories, such as narcotics, weapons, gambling and prostitution, are recorded mostly "
             "when police stop someone, so their records follow where police already patrol more than where the "
             "offending is. A model trained on them learns past patrol patterns and sends patrols back there, a "
             "feedback loop. Such arrest-driven categories are excluded from the default targets "
             f"({escape(', '.join(targets))}), which victims and witnesses report. The tables below show the "
             "evidence on this city's records: the share of each category's records with an arrest, and how "
             "strongly each group's cells are over-represented in the records compared with their residents.</p>"]
    if audit is None:
        parts.append(absent("The arrest audit", reason))
        return "".join(parts) + "</section>"
    missing = [name for name in ARREST_AUDIT_SCHEMA if name not in audit.columns]
    if missing:
        raise ValueError(f"the arrest audit lacks columns {missing}; pass the frame of "
                         "ml.bias.arrest_share_by_category")

    overall = audit.filter(pl.col("group") == "all").sort("category_kind", pl.col("records"), descending=[False, True])
    rows, classes = [], []
    for row in overall.iter_rows(named=True):
        rows.append([escape(row["category"]), escape(KIND_LABELS.get(row["category_kind"], row["category_kind"])),
                     escape(format_count(row["records"])), escape(format_count(row["arrests"])),
                     escape(format_share(row["arrest_share"]))])
        classes.append("highlight" if row["category_kind"] == "arrest_driven" else "")
    parts.append(table("Arrest share per category (arrest-driven categories highlighted)",
                       ["category", "kind", "records", "with an arrest", "arrest share"], rows, classes))
    parts.append(skew_table(audit))
    return "".join(parts) + "</section>"


def skew_table(audit: pl.DataFrame) -> str:
    """Tabulate record_to_population per category and group for arrest-driven and victim-reported categories."""
    by_group = audit.filter((pl.col("group") != "all") & pl.col("category_kind").is_in(["arrest_driven", "victim_reported"]))
    if by_group.height == 0:
        return "<p class='missing'>No group was given, so the record skew by group is not shown.</p>"
    groups = by_group["group"].unique(maintain_order=True).to_list()
    rows, classes = [], []
    for (category, kind), part in by_group.group_by("category", "category_kind", maintain_order=True):
        values = dict(zip(part["group"].to_list(), part["record_to_population"].to_list()))
        rows.append([escape(category), escape(KIND_LABELS[kind]),
                     *[escape(format_number(values.get(group))) for group in groups]])
        classes.append("highlight" if kind == "arrest_driven" else "")
    order = sorted(range(len(rows)), key=lambda index: (classes[index] != "highlight", rows[index][0]))
    return ("<p>Record skew is a group's share of the category's located records divided by its share of "
            "residents: 1 means records fall in proportion to residents, 2 twice as often. Compare the "
            "arrest-driven rows with the victim-reported violent rows.</p>"
            + table("Record skew (share of records / share of residents) by group",
                    ["category", "kind", *[escape(group) for group in groups]],
                    [rows[index] for index in order], [classes[index] for index in order]))


def simulation_section(feedback: FeedbackResult | None, lum_isaac: LumIsaacResult | None, feedback_reason: str,
                       lum_isaac_reason: str) -> str:
    """Render the known-truth simulation: divergence over time per setting and the Lum & Isaac check."""
    parts = ["<section id='simulation'><h2>Known-truth simulation</h2>",
             "<p>Real records cannot show whether a forecast learned true risk, because they hold only what was "
             "reported or found. This simulation plants a known true risk in a synthetic city and lets a forecast "
             "send patrols by what it has recorded so far, day after day (after Ensign et al. 2018, \"Runaway "
             "Feedback Loops in Predictive Policing\"). The divergence is the total variation distance between where "
             "patrols go and where the true risk is: 0 when they match, near 1 when patrols go where almost none of "
             "the risk is.</p>"]
    if feedback is None:
        parts.append(absent("The feedback-loop simulation", feedback_reason))
    else:
        parts.append(feedback_block(feedback))
    parts.append(lum_isaac_block(lum_isaac, lum_isaac_reason))
    return "".join(parts) + "</section>"


def feedback_block(feedback: FeedbackResult) -> str:
    daily = feedback.daily
    summary = daily.sort("day").group_by("setting", maintain_order=True).agg(
        first_day=pl.col("day").first(), last_day=pl.col("day").last(),
        first_divergence=pl.col("divergence").first(), last_divergence=pl.col("divergence").last(),
        top_share=pl.col("top_share").last(), top_cell=pl.col("top_cell").last(),
        true_top_share=pl.col("true_top_share").last(),
    )
    rows = [[escape(row["setting"]), escape(SETTING_NOTES.get(row["setting"], "")),
             escape(format_number(row["first_divergence"])), escape(format_number(row["last_divergence"])),
             escape(format_share(row["top_share"])), escape(row["top_cell"]), escape(format_share(row["true_top_share"]))]
            for row in summary.iter_rows(named=True)]
    first_day, last_day = int(daily["day"].min()), int(daily["day"].max())
    figure = divergence_figure(daily)
    alt = (f"Divergence between patrol shares and true risk shares on simulated days {first_day} to {last_day}, "
           "one line per setting.")
    return (f"<figure>{figure_svg(figure, 'feedback-divergence', alt)}<figcaption>{escape(alt)}</figcaption></figure>"
            + table(f"Feedback settings, day {first_day} and day {last_day}",
                    ["setting", "what enters the record", f"divergence on day {first_day}",
                     f"divergence on day {last_day}", "top cell's patrol share", "top cell",
                     "patrol share of the truly riskiest cell"], rows)
            + f"<p>{escape(FORECASTER_TEXT.get(feedback.forecaster, feedback.forecaster))} "
              "When only found incidents are recorded, patrols pile onto the cells they already visit and the "
              "divergence grows. Recording reported incidents, or weighting found ones by how likely patrols were to "
              "be there, keeps patrols close to the true risk.</p>")


FORECASTER_TEXT = {
    "lightgbm": "Patrols follow a LightGBM model of the same family as the ensemble's LightGBM member, retrained "
                "every week on the lagged counts recorded so far.",
    "trailing_mean": "Patrols follow each cell's mean recorded count per day over a trailing window.",
}


def lum_isaac_block(result: LumIsaacResult | None, reason: str) -> str:
    heading = "<h3>Recording bias (Lum &amp; Isaac check)</h3>"
    if result is None:
        return heading + absent("The Lum & Isaac check", reason)
    first, second = result.groups
    return (heading
            + f"<p>Here true offending is nearly the same in every cell, but victims in {escape(first)} cells report "
              f"more often than in {escape(second)} cells. A CompSTAT-style rate model fitted to the records then "
              f"predicts {escape(format_number(result.learned_ratio))} times as much crime in {escape(first)} cells "
              f"as in {escape(second)} cells, while the true ratio is {escape(format_number(result.true_ratio))}. "
              "Its ranking of cells follows recording (Spearman correlation "
              f"{escape(format_number(result.spearman_recording))}) more than offending (Spearman correlation "
              f"{escape(format_number(result.spearman_true))}). A forecast is only as fair as the records it learns "
              "from.</p>")
