"""The plain-language summary of the Model Metrics report, written from the numbers.

It is for readers who are not forecasters. It explains what is forecast, how rare it is, what a
true positive rate means here, why accuracy misleads at low base rates and how to read PAI. Then
it states whether the reference model beat each baseline, judged from the 95% interval of the
paired difference.
"""

from __future__ import annotations

from ml.reports.formatting import (
    escape,
    format_count,
    format_interval,
    format_number,
    format_p_value,
    format_share,
    format_signed,
    is_missing,
    judge_difference,
    metric_label,
    ordered_aggregations,
    ordered_models,
    aggregation_units,
)
from ml.reports.inputs import ModelMetricsInputs, all_aggregations, base_rate, distinct, first_row

# Metrics each baseline verdict covers, in the order the sentence names them.
VERDICT_METRICS = ("roc_auc", "pai")

BOUND_NOTES = {
    "random": "Random flagging is a lower bound, so any useful forecast should beat it.",
    "oracle": "The oracle knows the outcomes in advance, so it is an upper bound that no forecast can beat.",
}


def preferred_aggregation(names: list[str]) -> str | None:
    """Day if present, else hour, else the first of ``names`` in report order."""
    ordered = ordered_aggregations(names)
    for preferred in ("day", "hour"):
        if preferred in ordered:
            return preferred
    return ordered[0] if ordered else None


def metric_phrase(inputs: ModelMetricsInputs, metric: str) -> str:
    if metric == "pai":
        return f"PAI at {format_share(inputs.coverage)} coverage"
    return metric_label(metric)


def base_rate_paragraph(inputs: ModelMetricsInputs) -> str:
    sentences = []
    for aggregation in ordered_aggregations(distinct(inputs.thresholds, "aggregation")
                                            + distinct(inputs.metrics, "aggregation")):
        rate = base_rate(inputs, aggregation)
        if rate is None:
            continue
        counts = (f" ({format_count(rate.positives)} of {format_count(rate.total)})"
                  if rate.total is not None else "")
        sentences.append(f"{format_share(rate.rate)} of {aggregation_units(aggregation)}{counts} had at least "
                         f"one {inputs.target} incident.")
    if not sentences:
        return "<p>How often the target happens (the base rate) was not computed.</p>"
    return (f"<p><strong>How often it happens.</strong> {escape(' '.join(sentences))} This share is the "
            "base rate.</p>")


def true_positive_paragraph(inputs: ModelMetricsInputs, aggregation: str) -> str:
    units = aggregation_units(aggregation)
    text = (f"<p><strong>True positive rate.</strong> Of the {escape(units)} that had a "
            f"{escape(inputs.target)} incident, the true positive rate (TPR) is the share that the forecast "
            f"had flagged in advance. The false positive rate (FPR) is the share of quiet {escape(units)} "
            "that were flagged anyway.")
    row = first_row(inputs.thresholds, model=inputs.reference_model, aggregation=aggregation, rule="coverage")
    if row is not None:
        text += (f" With the threshold rule ({escape(inputs.threshold_rule)}), the "
                 f"{escape(inputs.reference_model)} forecast flagged {format_count(row['tp'])} of the "
                 f"{format_count(row['tp'] + row['fn'])} {escape(units)} with an incident, a TPR of "
                 f"{format_share(row['tpr'])}, and an FPR of {format_share(row['fpr'])}.")
    return text + "</p>"


def accuracy_paragraph(inputs: ModelMetricsInputs, aggregation: str) -> str:
    units = aggregation_units(aggregation)
    text = ("<p><strong>Why accuracy misleads.</strong> Accuracy is the share of units classified "
            "correctly. A forecast that flags nothing is correct on every quiet unit, so it scores "
            "1 minus the base rate")
    rate = base_rate(inputs, aggregation)
    if rate is None:
        return text + ". The report therefore compares models on the other metrics.</p>"

    text += f": {format_share(1 - rate.rate)} for {escape(units)}, while finding no incident at all."
    row = first_row(inputs.thresholds, model=inputs.reference_model, aggregation=aggregation, rule="coverage")
    if row is not None and row["accuracy"] is not None:
        relation = "below" if row["accuracy"] < 1 - rate.rate else "not below"
        text += (f" The {escape(inputs.reference_model)} forecast's accuracy at the coverage threshold is "
                 f"{format_share(row['accuracy'])}, {relation} that, although it finds "
                 f"{format_share(row['tpr'])} of the incidents.")
    return text + " Compare models on TPR, PAI and ROC-AUC instead.</p>"


def pai_paragraph(inputs: ModelMetricsInputs, aggregation: str) -> str:
    text = ("<p><strong>Reading PAI.</strong> The Predictive Accuracy Index (PAI) divides the share of "
            "incidents that fell in the flagged cells by the share of the city's area those cells cover. "
            "Flagging cells at random gives a PAI of about 1, and a PAI of 5 means the flagged area held "
            f"five times as many incidents as its size alone would suggest. The report flags "
            f"{format_share(inputs.coverage)} of the area.")
    row = first_row(inputs.metrics, model=inputs.reference_model, aggregation=aggregation, metric="pai")
    if row is not None and row["value"] is not None:
        text += (f" For {escape(aggregation_units(aggregation))} the {escape(inputs.reference_model)} "
                 f"forecast's PAI is {format_number(row['value'])}.")
    return text + "</p>"


def p_value_text(value: float | None) -> str:
    formatted = format_p_value(value)
    return f"p {formatted}" if formatted.startswith("<") else f"p = {formatted}"


def comparison_numbers(row: dict) -> str:
    """Write the values, difference, interval and p-value of one comparison, leaving out missing parts."""
    parts = [f"{format_number(row['reference_value'])} against {format_number(row['baseline_value'])}",
             f"difference {format_signed(row['difference'])}"]
    interval = format_interval(row["ci_low"], row["ci_high"])
    if interval:
        parts.append(f"95% interval {interval}")
    if not is_missing(row["p_value"]):
        parts.append(p_value_text(row["p_value"]))
    return ", ".join(parts)


def verdict_clause(inputs: ModelMetricsInputs, baseline: str, aggregation: str, metric: str) -> str:
    """Write a verb phrase whose subject is the reference model, such as "beat it on ROC-AUC (...)"."""
    phrase = metric_phrase(inputs, metric)
    row = first_row(inputs.comparisons, model=baseline, aggregation=aggregation, metric=metric)
    if row is None:
        return f"has no {phrase} comparison with it (not computed)"

    numbers = comparison_numbers(row)
    verdict = judge_difference(metric, row["ci_low"], row["ci_high"])
    if verdict == "better":
        return f"beat it on {phrase} ({numbers})"
    if verdict == "worse":
        return f"did not beat it on {phrase}: it scored worse ({numbers})"
    if verdict == "no clear difference":
        return f"did not beat it on {phrase}, because the interval includes 0 ({numbers})"
    return f"has no verdict on {phrase}, because the difference has no interval ({numbers})"


def verdict_list(inputs: ModelMetricsInputs, aggregation: str) -> str:
    reference = escape(inputs.reference_model)
    baselines = [model for model in ordered_models(distinct(inputs.comparisons, "model"), inputs.reference_model)
                 if model != inputs.reference_model]
    items = []
    for baseline in baselines:
        clauses = [verdict_clause(inputs, baseline, aggregation, metric) for metric in VERDICT_METRICS]
        sentence = f"Against {baseline}, the {inputs.reference_model} forecast " + " and ".join(clauses) + "."
        note = BOUND_NOTES.get(baseline)
        items.append(f"<li>{escape(sentence)}{' ' + escape(note) if note else ''}</li>")
    return (f"<p><strong>Against the baselines</strong> ({escape(aggregation_units(aggregation))}; values are "
            f"{reference} against the baseline, and the difference is {reference} minus the baseline):</p>"
            f"<ul class='verdicts'>{''.join(items)}</ul>")


def summary_section(inputs: ModelMetricsInputs) -> str:
    """Render the summary section: target, base rate, TPR, accuracy, PAI and one verdict per baseline."""
    compared = preferred_aggregation(distinct(inputs.comparisons, "aggregation"))
    aggregation = compared or preferred_aggregation(all_aggregations(inputs))
    parts = [
        "<section id='summary'><h2>Summary</h2>",
        f"<p><strong>What is forecast.</strong> {escape(inputs.target_description)} "
        f"(target <code>{escape(inputs.target)}</code>), over {escape(inputs.period_description)}. "
        f"{escape(inputs.issue_rule)}</p>",
        base_rate_paragraph(inputs),
    ]
    if aggregation is not None:
        parts += [
            true_positive_paragraph(inputs, aggregation),
            accuracy_paragraph(inputs, aggregation),
            pai_paragraph(inputs, aggregation),
        ]
    if compared is None:
        parts.append(f"<p>No comparison of {escape(inputs.reference_model)} with a baseline was computed "
                     "(not computed), so the summary gives no verdicts.</p>")
    else:
        parts.append(verdict_list(inputs, compared))
    parts.append("</section>")
    return "\n".join(parts)
