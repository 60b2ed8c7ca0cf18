"""The "Data Input Audit" report: a self-contained static HTML page for stakeholders.

It states each check's result in plain language with its numbers, and draws bar charts of
records by local hour, day of week, month and year (overall and for the largest categories), a
category table, and two maps of the cells: records per km² and the unlocated share of the area
that each cell mostly belongs to. Charts and maps are inline SVG, so the page needs no network
and no plotting library. Every value that comes from data is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from orchestration.audit import SuiteOutcome
from orchestration.audit_rules import ALL, AuditRule, describe_ratio

DOW_LABELS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTH_LABELS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# Sequential colour classes, light to dark (ColorBrewer "YlOrRd", 6 classes).
PALETTE = ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026"]
NO_DATA_COLOUR = "#dddddd"
CATEGORY_CHARTS = 12


@dataclass
class RuleResult:
    rule: AuditRule
    outcome: SuiteOutcome
    frame: pd.DataFrame


@dataclass
class AuditFindings:
    """Everything the report shows, measured on one warehouse."""

    jurisdiction: str
    synthetic: bool
    results: list[RuleResult]
    skipped: dict[str, str]
    calendar: pd.DataFrame
    years: pd.DataFrame
    categories: pd.DataFrame
    cells: pd.DataFrame
    data_docs: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def result(self, name: str) -> RuleResult | None:
        return next((item for item in self.results if item.rule.name == name), None)


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def percent(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value) * 100:.{digits}f}%"


def number(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.4g}"
    return f"{int(value):,}"


# Charts.

def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, width: int = 360,
              height: int = 150) -> str:
    """Draw an SVG bar chart with the maximum value in its title."""
    top = max(values) if len(values) and max(values) > 0 else 1
    margin_left, margin_bottom, margin_top = 6, 18, 18
    plot_width = width - 2 * margin_left
    plot_height = height - margin_bottom - margin_top
    step = plot_width / max(len(values), 1)
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="{margin_left}" y="12" class="chart-title">{escape(title)} (max {number(top)})</text>']
    label_every = max(1, math.ceil(len(labels) / 12))
    for index, (label, value) in enumerate(zip(labels, values)):
        bar_height = plot_height * (value / top)
        x = margin_left + index * step
        y = margin_top + plot_height - bar_height
        parts.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" height="{bar_height:.1f}">'
                     f'<title>{escape(label)}: {number(value)}</title></rect>')
        if index % label_every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - 4}" class="axis">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def dimension_charts(frame: pd.DataFrame, prefix: str, width: int = 360, height: int = 150) -> str:
    """Four bar charts of ``frame``'s records by local hour, day of week, month of year and year."""
    hours = frame.groupby("local_hour")["records"].sum().reindex(range(24), fill_value=0)
    days = frame.groupby("local_dow")["records"].sum().reindex(range(1, 8), fill_value=0)
    months = frame.groupby("month_of_year")["records"].sum().reindex(range(1, 13), fill_value=0)
    years = frame.groupby("year")["records"].sum().sort_index()
    return "".join([
        bar_chart([str(hour) for hour in range(24)], hours.tolist(), f"{prefix} by hour of day", width, height),
        bar_chart(DOW_LABELS, days.tolist(), f"{prefix} by day of week", width, height),
        bar_chart(MONTH_LABELS, months.tolist(), f"{prefix} by month", width, height),
        bar_chart([str(year) for year in years.index], years.tolist(), f"{prefix} by year", width, height),
    ])


def colour_classes(values: pd.Series) -> tuple[list[float], list[str]]:
    """Quantile class breaks of the positive values, and the colour of every value."""
    positive = values[values > 0].dropna()
    if positive.empty:
        return [], [NO_DATA_COLOUR if pd.isna(value) else PALETTE[0] for value in values]
    breaks = sorted(set(positive.quantile([i / len(PALETTE) for i in range(1, len(PALETTE))]).tolist()))
    colours = []
    for value in values:
        if pd.isna(value) or value <= 0:
            colours.append(NO_DATA_COLOUR if pd.isna(value) else PALETTE[0])
            continue
        colours.append(PALETTE[min(sum(value > limit for limit in breaks), len(PALETTE) - 1)])
    return breaks, colours


def cell_map(cells: pd.DataFrame, column: str, title: str, formatter: Any, width: int = 520) -> str:
    """Draw an SVG choropleth of the cells. ``cells`` has ``svg_path`` from ST_AsSVG, whose y is -latitude."""
    shapes = cells.dropna(subset=["svg_path"])
    if shapes.empty:
        return "<p>No cell geometry to draw.</p>"
    min_lon, max_lon = shapes["min_lon"].min(), shapes["max_lon"].max()
    min_lat, max_lat = shapes["min_lat"].min(), shapes["max_lat"].max()
    # Degrees of longitude shrink with latitude; scale x so that the map keeps its shape.
    x_scale = math.cos(math.radians((min_lat + max_lat) / 2))
    view_width = (max_lon - min_lon) * x_scale
    view_height = max_lat - min_lat
    height = int(width * view_height / view_width) if view_width else width
    breaks, colours = colour_classes(shapes[column])
    parts = [f'<figure class="map"><figcaption>{escape(title)}</figcaption>',
             f'<svg width="{width}" height="{height}" viewBox="{min_lon * x_scale} {-max_lat} {view_width} '
             f'{view_height}" role="img" aria-label="{escape(title)}">',
             f'<g transform="scale({x_scale:.6f},1)" stroke="#666" stroke-width="{view_height / 2000:.6f}">']
    for row, colour in zip(shapes.itertuples(index=False), colours):
        value = getattr(row, column)
        parts.append(f'<path d="{escape(row.svg_path)}" fill="{colour}"><title>{escape(row.cell_id)}: '
                     f'{escape(formatter(value))}</title></path>')
    parts.append("</g></svg>")
    legend = [f'<span class="swatch" style="background:{NO_DATA_COLOUR}"></span>no data']
    for index, colour in enumerate(PALETTE[:len(breaks) + 1]):
        if not breaks:
            label = "every value"
        elif index == 0:
            label = f"below {formatter(breaks[0])}"
        else:
            label = f"from {formatter(breaks[index - 1])}"
        legend.append(f'<span class="swatch" style="background:{colour}"></span>{escape(label)}')
    parts.append(f'<div class="legend">{" ".join(legend)}</div></figure>')
    return "".join(parts)


# Findings in plain language.

def status_label(result: RuleResult) -> str:
    outcome = result.outcome
    if outcome.passed:
        return "passed"
    return "ERROR" if outcome.severity == "error" else "WARN"


def listed(frame: pd.DataFrame, key: str, value: str, limit: int = 8) -> str:
    items = [f"{row[key]} ({percent(row[value], 1)})" for _, row in frame.head(limit).iterrows()]
    more = len(frame) - limit
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def heaping_sentences(frame: pd.DataFrame, parameters: dict[str, Any]) -> list[str]:
    overall = frame[frame["category"] == ALL].iloc[0]
    sentences = [f"Overall, {percent(overall['midnight_share'])} of records with a time sit at exactly 00:00 "
                 f"(a uniform clock would put 0.07% there), {percent(overall['on_hour_share'])} fall exactly on "
                 f"the hour (uniform: 1.67%), and {percent(overall['first_of_month_share'])} on the first of a "
                 f"month (uniform: about 3.3%)."]
    for column, label, limit in (("judged_midnight_share", "at midnight", "max_midnight_share"),
                                 ("judged_on_hour_share", "on the hour", "max_on_hour_share"),
                                 ("judged_first_of_month_share", "on the first of the month",
                                  "max_first_of_month_share")):
        heaped = frame[frame[column] > parameters[limit]].sort_values(column, ascending=False)
        if not heaped.empty:
            sentences.append(f"{len(heaped)} groups put more than {percent(parameters[limit], 0)} of their "
                             f"records {label}: {listed(heaped, 'category', column)}.")
    return sentences


def month_sentences(frame: pd.DataFrame, parameters: dict[str, Any]) -> list[str]:
    worst = frame.sort_values("unlocated_share", ascending=False).head(1)
    sentences = []
    if not worst.empty:
        row = worst.iloc[0]
        sentences.append(f"The unlocated share per month ranges from {percent(frame['unlocated_share'].min())} "
                         f"to {percent(row['unlocated_share'])} ({row['month']}); {number(frame['swapped_repaired_records'].sum())} "
                         f"records were placed after repairing swapped coordinates.")
    high = frame[frame["judged_unlocated_share"] > parameters["max_unlocated_share"]]
    if not high.empty:
        sentences.append(f"{len(high)} months exceed the threshold of {percent(parameters['max_unlocated_share'], 0)}: "
                         f"{listed(high, 'month', 'unlocated_share')}.")
    rises = frame[frame["judged_share_rise"] > parameters["max_unlocated_share_rise"]]
    if not rises.empty:
        sentences.append(f"The share rises by more than {percent(parameters['max_unlocated_share_rise'], 0)} points "
                         f"into {', '.join(rises['month'])}.")
    return sentences


def drift_sentences(frame: pd.DataFrame, parameters: dict[str, Any]) -> list[str]:
    judged = frame[frame["js_distance"].notna()]
    flagged = frame[frame["flagged_distance"] > parameters["max_drift_distance"]]
    volume = frame[frame["absolute_volume_change"] > parameters["max_year_volume_change"]]
    sentences = [f"{len(judged)} period comparisons were tested (chi-square at alpha {parameters['drift_alpha']}, "
                 f"Jensen-Shannon distance threshold {parameters['max_drift_distance']}); the largest distance is "
                 f"{number(judged['js_distance'].max()) if not judged.empty else 'n/a'}."]
    if not flagged.empty:
        sentences.append("Drift flagged in " + ", ".join(
            f"{row.dimension} {row.period} (distance {row.js_distance:.3f})" for row in flagged.itertuples()) + ".")
    years = frame[frame["dimension"] == "year_volume"]
    if not years.empty:
        sentences.append("Yearly volume against the mean of earlier complete years: " + ", ".join(
            f"{row.period} {row.volume_change:+.1%}" for row in years.itertuples()) + ".")
    if not volume.empty:
        sentences.append(f"{len(volume)} years change by more than {percent(parameters['max_year_volume_change'], 0)}.")
    return sentences


def category_break_sentences(frame: pd.DataFrame, parameters: dict[str, Any]) -> list[str]:
    """Explain category breaks at source-system changes, and list each change's flagged categories."""
    months = parameters["source_change_months"]
    factor = parameters["max_source_change_factor"]
    sentences = [f"When the police records system behind the data changes, a category can start or stop "
                 f"containing some kinds of incident. Its monthly count then jumps at the change date "
                 f"although crime did not change. Such a jump is likely a definition change: do not read "
                 f"it as a rise or fall of crime. This check compares each category's mean monthly count "
                 f"in the {months} months before and after each known change, and the level of its trend "
                 f"at the change date, and flags a category when both change by more than a factor of "
                 f"{factor:g}, up or down."]

    for change_date, rows in frame.groupby("change_date", sort=True):
        note = rows["change_note"].iloc[0]
        uncovered = rows[rows["note"].str.startswith("not judged: the data")]
        if not uncovered.empty:
            sentences.append(f"{change_date} ({note}): {uncovered['note'].iloc[0]}.")
            continue

        categories = rows[rows["category"] != ALL]
        small = categories[categories["judged_break_factor"].isna()]
        flagged = categories[categories["flagged"]]
        text = f"{change_date} ({note}): {len(categories)} categories compared"
        if not small.empty:
            text += (f", of which {len(small)} had fewer than {parameters['min_source_change_records']} records "
                     f"and were not judged")
        if flagged.empty:
            sentences.append(text + f"; no category changes by more than a factor of {factor:g}.")
            continue
        listed_breaks = [f"{row.category} ({row.before_mean:,.1f} records a month before, {row.after_mean:,.1f} "
                         f"after, {describe_ratio(row.mean_ratio)}; trend level at the date "
                         f"{describe_ratio(row.step_ratio)})" for row in flagged.itertuples()]
        sentences.append(text + f". Possible definition changes: {', '.join(listed_breaks)}.")

        whole = rows[(rows["category"] == ALL) & rows["flagged"]]
        if not whole.empty:
            row = whole.iloc[0]
            sentences.append(f"All categories together also change {describe_ratio(row['mean_ratio'])} "
                             f"({row['before_mean']:,.1f} to {row['after_mean']:,.1f} records a month), so the "
                             f"change added or dropped records rather than only moving them between categories.")
    return sentences


def one_row_sentence(name: str, row: pd.Series, parameters: dict[str, Any]) -> list[str]:
    if name == "crime_duplicate_rows":
        return [f"{number(row['raw_rows'])} raw rows: {number(row['duplicated_ids'])} ids appear on more than one row "
                f"({number(row['duplicate_id_rows'])} rows, {percent(row['duplicate_id_share'])}), "
                f"{number(row['exact_duplicate_rows'])} rows are exact copies of another row, and "
                f"{number(row['copied_records'])} staged records repeat another record under a different id "
                f"({percent(row['copied_record_share'], 3)}). Copies are counted, not dropped."]
    if name == "crime_shared_case_numbers":
        return [f"{number(row['shared_case_numbers'])} case numbers are shared by {number(row['records_sharing_case'])} "
                f"records ({percent(row['shared_case_share'], 3)}), as multi-victim cases are; the records are kept "
                f"and crime counts use distinct case numbers."]
    if name == "crime_location_quality":
        return [f"{number(row['outside_cells_records'])} records with coordinates lie outside every cell "
                f"({percent(row['outside_cells_share'], 3)} of records with coordinates); {number(row['swapped_records'])} "
                f"have latitude and longitude swapped, of which {number(row['swapped_repaired_records'])} were repaired."]
    if name == "crime_unknown_offense_codes":
        codes = row["unknown_codes"] or "none"
        return [f"{number(row['unknown_code_records'])} records ({percent(row['unknown_code_share'], 3)}) carry an offense "
                f"code that the jurisdiction does not map: {codes}."]
    if name == "crime_beat_district_consistency":
        return [f"{number(row['mismatched_records'])} of {number(row['checked_records'])} records "
                f"({percent(row['mismatch_share'], 3)}) name a district that their beat is not in; for example "
                f"{row['mismatch_examples'] or 'none'}."]
    if name == "crime_row_accounting":
        return [f"{number(row['raw_rows'])} raw rows = {number(row['staged'])} staged + {number(row['superseded_versions'])} "
                f"superseded versions + {number(row['quarantined_raw_rows'])} quarantined without an id; "
                f"{number(row['staged'])} staged = {number(row['located'])} located + {number(row['quarantined'])} "
                f"quarantined. Balances: raw {number(row['raw_balance'])}, staged {number(row['staged_balance'])}, "
                f"audit {number(row['audited_balance'])}."]
    if name == "quarantine_share_check":
        return [f"{number(row['quarantined'])} of {number(row['incidents'])} incidents ({percent(row['quarantined_share'])}) "
                f"are quarantined: {row['by_reason'] or 'none'}."]
    if name == "hourly_weather_coverage":
        return [f"{number(row['weather_missing_hours'])} of {number(row['hours'])} hours ({percent(row['weather_missing_share'])}) "
                f"have no routine weather report; {percent(row['suspect_share'])} carry a suspect value and "
                f"{percent(row['trace_share'])} trace precipitation."]
    return []


def finding_sentences(result: RuleResult, parameters: dict[str, Any]) -> list[str]:
    frame = result.frame
    name = result.rule.name
    if frame.empty:
        return []
    if name == "crime_time_heaping":
        return heaping_sentences(frame, parameters)
    if name == "crime_unlocated_by_month":
        return month_sentences(frame, parameters)
    if name == "crime_distribution_drift":
        return drift_sentences(frame, parameters)
    if name == "crime_category_breaks":
        return category_break_sentences(frame, parameters)
    if name == "crime_unlocated_by_area":
        high = frame[frame["judged_unlocated_share"] > parameters["max_unlocated_share"]]
        return [f"Unlocated share per area ranges from {percent(frame['unlocated_share'].min())} to "
                f"{percent(frame['unlocated_share'].max())}; {len(high)} areas exceed "
                f"{percent(parameters['max_unlocated_share'], 0)}."]
    if name == "crime_completeness":
        overall = frame[frame["category"] == ALL].iloc[0]
        return [f"{number(overall['records'])} records: {number(overall['missing_time_records'])} without a time, "
                f"{percent(overall['missing_coordinates_share'])} without coordinates, "
                f"{percent(overall['missing_offense_code_share'])} without an offense code. Highest share without "
                f"coordinates by category: {listed(frame[frame['category'] != ALL].sort_values('missing_coordinates_share', ascending=False), 'category', 'missing_coordinates_share', 5)}."]
    if name == "crime_dst_local_times":
        return ["Per year: " + ", ".join(f"{row.year}: {number(row.nonexistent_records)} in the skipped hour, "
                                         f"{number(row.ambiguous_records)} in the doubled hour" for row in frame.itertuples())
                + ". Skipped-hour times move forward by one hour; doubled-hour times take the first (daylight-time) occurrence."]
    if name == "crime_late_updates":
        return ["Per event year: " + ", ".join(
            f"{row.year}: median lag {row.median_lag_days:.0f} days, {percent(row.late_share, 1)} updated more than "
            f"{parameters['late_update_days']} days later" for row in frame.itertuples()) + "."]
    if name == "crime_category_volume":
        changed = frame[frame["status"] != "steady"]
        if changed.empty:
            return ["No category vanished or appeared from one month to the next."]
        return ["Changes: " + ", ".join(f"{row.category} {row.status} in {row.month}" for row in changed.head(20).itertuples()) + "."]
    if len(frame) == 1:
        return one_row_sentence(name, frame.iloc[0], parameters)
    return []


def frame_table(frame: pd.DataFrame, limit: int = 40) -> str:
    if frame.empty:
        return "<p>No rows measured.</p>"
    shown = frame.head(limit)
    head = "".join(f"<th>{escape(name)}</th>" for name in shown.columns)
    rows = []
    for row in shown.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append(f"<td>{'' if math.isnan(value) else escape(f'{value:.4g}')}</td>")
            else:
                cells.append(f"<td>{escape(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = f"<p class='note'>{len(frame) - limit} more rows are in the Data Docs.</p>" if len(frame) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"


def finding_section(result: RuleResult, parameters: dict[str, Any]) -> str:
    label = status_label(result)
    sentences = finding_sentences(result, parameters)
    problems = result.outcome.problems()
    parts = [f'<section class="finding {label.lower()}"><h3><span class="badge">{escape(label)}</span> '
             f'{escape(result.rule.name)}</h3><p>{escape(result.rule.description)}</p>']
    if sentences:
        parts.append("<ul>" + "".join(f"<li>{escape(sentence)}</li>" for sentence in sentences) + "</ul>")
    if problems:
        parts.append("<p>Failed expectations:</p><ul>" + "".join(f"<li><code>{escape(problem)}</code></li>"
                                                                for problem in problems) + "</ul>")
    parts.append(f"<details><summary>Measurement ({len(result.frame)} rows)</summary>{frame_table(result.frame)}</details>")
    parts.append("</section>")
    return "".join(parts)


# The page.

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.banner { background: #fff3cd; border: 1px solid #e0c060; padding: 0.6em; font-weight: bold; }
.finding { border-left: 6px solid #6c6; padding: 0.2em 1em; margin: 1em 0; background: #fafafa; }
.finding.warn { border-color: #e6a700; } .finding.error { border-color: #c00; }
.badge { font-size: 0.8em; padding: 1px 6px; border-radius: 3px; background: #ddd; }
.chart rect { fill: #4a78a8; } .chart text { font-size: 10px; fill: #333; }
.chart .axis { text-anchor: middle; font-size: 9px; } .chart-title { font-weight: bold; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; } .maps { display: flex; flex-wrap: wrap; gap: 24px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin: 0 3px 0 8px; border: 1px solid #999; }
.legend { font-size: 0.8em; } .note { font-size: 0.85em; color: #555; }
"""


def summary_table(findings: AuditFindings) -> str:
    rows = []
    for result in findings.results:
        rows.append(f"<tr><td>{escape(result.rule.name)}</td><td>{escape(status_label(result))}</td>"
                    f"<td>{escape(result.rule.asset)}</td><td>{result.outcome.count('failed')}</td>"
                    f"<td>{result.outcome.count('error')}</td></tr>")
    for name, reason in findings.skipped.items():
        rows.append(f"<tr><td>{escape(name)}</td><td>skipped</td><td colspan='3'>{escape(reason)}</td></tr>")
    return ("<table><thead><tr><th>check</th><th>result</th><th>asset</th><th>failed</th><th>errors</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def category_section(findings: AuditFindings) -> str:
    calendar = findings.calendar
    top = findings.categories.head(CATEGORY_CHARTS)["category"].tolist()
    charts = []
    for category in top:
        subset = calendar[calendar["audit_category"] == category]
        charts.append(f"<h4>{escape(category)}</h4><div class='charts'>{dimension_charts(subset, 'records', 260, 110)}</div>")
    rest = len(findings.categories) - len(top)
    note = f"<p class='note'>{rest} smaller categories are in the table above.</p>" if rest > 0 else ""
    return "".join(charts) + note


def render_report(findings: AuditFindings) -> str:
    """Render the whole report as one HTML document."""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    failing = [result for result in findings.results if not result.outcome.passed]
    errors = [result for result in failing if result.outcome.severity == "error"]
    banner = ("<p class='banner'>SYNTHETIC DATA: this jurisdiction is generated; no record in it is real.</p>"
              if findings.synthetic else "")
    docs = (f"<p>Great Expectations Data Docs with every expectation's result: "
            f"<a href='{escape(findings.data_docs.as_uri())}'>{escape(findings.data_docs)}</a></p>"
            if findings.data_docs else "")
    verdict = (f"{len(errors)} checks fail with ERROR severity and block the forecasting steps."
               if errors else "No check fails with ERROR severity, so the data may feed the forecasts.")
    sections = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Data Input Audit: "
        f"{escape(findings.jurisdiction)}</title><style>{STYLE}</style></head><body>",
        banner,
        f"<h1>Data Input Audit: {escape(findings.jurisdiction)}</h1>",
        f"<p class='note'>Generated {escape(generated)}. Times are local wall-clock times of the jurisdiction.</p>",
        f"<p><strong>{escape(verdict)}</strong> {len(failing) - len(errors)} checks warn. {docs}</p>",
        "<h2>Checks</h2>", summary_table(findings),
        "<h2>Records by year</h2>", frame_table(findings.years),
        "<h2>Records by time</h2><div class='charts'>", dimension_charts(findings.calendar, "records"), "</div>",
        "<h2>Categories</h2>", frame_table(findings.categories, limit=60),
        "<h2>Categories by time</h2>", category_section(findings),
        "<h2>Maps</h2><div class='maps'>",
        cell_map(findings.cells, "records_per_km2", "Located records per km² by cell",
                 lambda value: "n/a" if pd.isna(value) else f"{value:,.0f}"),
        cell_map(findings.cells, "area_unlocated_share",
                 "Unlocated share of the area each cell mostly belongs to", lambda value: percent(value, 1)),
        "</div>",
        "<h2>Findings</h2>",
        *(finding_section(result, findings.parameters) for result in findings.results),
        "</body></html>",
    ]
    return "\n".join(sections)
