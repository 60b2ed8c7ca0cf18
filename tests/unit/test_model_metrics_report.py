"""Unit tests for the Model Metrics HTML report on small hand-built backtest tables.

Three models (ensemble, compstat, naive) and two aggregations (hour, day). On the day
aggregation the ensemble beats compstat on ROC-AUC and PAI, scores worse than naive on ROC-AUC,
and ties naive on PAI (the interval includes 0). On the hour aggregation the verdicts are the
other way round, so a summary that reads the wrong aggregation fails.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import polars as pl
import pytest

from ml.reports import ModelMetricsInputs, render_model_metrics_report
from ml.reports.formatting import format_count, format_number, format_p_value, judge_difference

MODELS = ("ensemble", "compstat", "naive")
AGGREGATIONS = ("hour", "day")
# 4 ROC and PR figures, 3 hotspot figures (PAI, PEI, PEI*), 2 calibration figures and
# 4 time series figures (ROC-AUC and PAI per aggregation).
EXPECTED_FIGURES = 13


class TableParser(HTMLParser):
    """Collect every table as its caption and rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.cell: list[str] | None = None
        self.in_caption = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self.cell = []
        elif tag == "caption":
            self.in_caption = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1]["rows"][-1].append(" ".join(" ".join(self.cell).split()))
            self.cell = None
        elif tag == "caption":
            self.in_caption = False

    def handle_data(self, data: str) -> None:
        if self.in_caption:
            self.tables[-1]["caption"] += data
        elif self.cell is not None:
            self.cell.append(data)


def parse_tables(page: str) -> list[dict]:
    parser = TableParser()
    parser.feed(page)
    return parser.tables


def table_with_caption(page: str, *words: str) -> dict:
    matches = [table for table in parse_tables(page) if all(word in table["caption"] for word in words)]
    assert len(matches) == 1, f"expected one table captioned with {words}, found {len(matches)}"
    return matches[0]


def metrics_frame() -> pl.DataFrame:
    rows = []
    for aggregation in AGGREGATIONS:
        for index, model in enumerate(MODELS):
            rows += [
                {"model": model, "aggregation": aggregation, "metric": "roc_auc", "value": 0.712 - 0.05 * index,
                 "ci_low": 0.69 - 0.05 * index, "ci_high": 0.731 - 0.05 * index},
                {"model": model, "aggregation": aggregation, "metric": "pai", "value": 4.2 - index,
                 "ci_low": None, "ci_high": None},
                {"model": model, "aggregation": aggregation, "metric": "brier", "value": 0.0123,
                 "ci_low": 0.0121, "ci_high": 0.0125},
            ]
    return pl.DataFrame(rows, schema={"model": pl.String, "aggregation": pl.String, "metric": pl.String,
                                      "value": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64})


def comparison(model: str, aggregation: str, metric: str, reference: float, baseline: float,
               low: float, high: float, p_value: float) -> dict:
    return {"model": model, "aggregation": aggregation, "metric": metric, "reference_value": reference,
            "baseline_value": baseline, "difference": reference - baseline, "ci_low": low, "ci_high": high,
            "p_value": p_value}


def comparisons_frame() -> pl.DataFrame:
    return pl.DataFrame([
        comparison("compstat", "day", "roc_auc", 0.75, 0.70, 0.02, 0.08, 0.004),
        comparison("compstat", "day", "pai", 4.5, 3.7, 0.3, 1.3, 0.01),
        comparison("naive", "day", "roc_auc", 0.70, 0.73, -0.06, -0.01, 0.02),
        comparison("naive", "day", "pai", 4.5, 4.4, -0.2, 0.4, 0.5),
        comparison("naive", "day", "brier", 0.010, 0.012, -0.003, -0.001, 0.03),
        comparison("compstat", "hour", "roc_auc", 0.60, 0.65, -0.08, -0.02, 0.01),
        comparison("compstat", "hour", "pai", 2.0, 2.1, -0.5, 0.3, 0.6),
        comparison("naive", "hour", "roc_auc", 0.66, 0.60, 0.03, 0.09, 0.001),
        comparison("naive", "hour", "pai", 2.5, 1.5, 0.5, 1.5, 0.0002),
    ])


def thresholds_frame() -> pl.DataFrame:
    rows = []
    counts = {
        ("ensemble", "day", "coverage"): (1234, 5678, 987654, 4321),
        ("ensemble", "day", "youden"): (3000, 90000, 903332, 2555),
        ("ensemble", "hour", "coverage"): (222, 44444, 23000000, 3333),
        ("compstat", "day", "coverage"): (1000, 5912, 987420, 4555),
        ("naive", "hour", "value"): (100, 1000, 23043444, 3455),
    }
    for (model, aggregation, rule), (tp, fp, tn, fn) in counts.items():
        total = tp + fp + tn + fn
        rows.append({
            "model": model, "aggregation": aggregation, "rule": rule,
            "threshold": None if rule == "coverage" else 0.0123, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "tpr": tp / (tp + fn), "tnr": tn / (tn + fp), "fpr": fp / (fp + tn), "fnr": fn / (tp + fn),
            "accuracy": (tp + tn) / total, "precision": tp / (tp + fp), "flag_rate": (tp + fp) / total,
        })
    return pl.DataFrame(rows, schema_overrides={"threshold": pl.Float64})


def hotspot_frame() -> pl.DataFrame:
    rows = []
    for aggregation in AGGREGATIONS:
        for index, model in enumerate(MODELS):
            for coverage in (0.01, 0.05, 0.2):
                rows.append({"model": model, "aggregation": aggregation, "coverage": coverage,
                             "hit_rate": coverage * (4 - index), "pai": 4.0 - index, "pei": 0.6 - 0.1 * index,
                             "pei_star": 0.5 - 0.1 * index, "area_share_used": coverage * 0.98})
    return pl.DataFrame(rows)


def curves_frame() -> pl.DataFrame:
    rows = []
    for aggregation in AGGREGATIONS:
        for model in MODELS:
            for x, y in ((0.0, 0.0), (0.1, 0.4), (0.5, 0.8), (1.0, 1.0)):
                rows.append({"model": model, "aggregation": aggregation, "curve": "roc", "x": x, "y": y})
            for x, y in ((0.0, 0.2), (0.5, 0.05), (1.0, 0.01)):
                rows.append({"model": model, "aggregation": aggregation, "curve": "pr", "x": x, "y": y})
    return pl.DataFrame(rows)


def reliability_frame() -> pl.DataFrame:
    rows = [{"model": "ensemble", "aggregation": aggregation, "bin": index, "mean_predicted": 0.01 * index,
             "observed_rate": 0.011 * index, "n": 1000 + index}
            for aggregation in AGGREGATIONS for index in range(5)]
    return pl.DataFrame(rows)


def timeseries_frame() -> pl.DataFrame:
    start = datetime(2017, 7, 2, tzinfo=timezone.utc)
    rows = []
    for aggregation in AGGREGATIONS:
        for model in MODELS:
            for week in range(3):
                for metric, value in (("roc_auc", 0.7), ("pai", 4.0)):
                    rows.append({"model": model, "aggregation": aggregation, "origin": start + timedelta(weeks=week),
                                 "metric": metric, "value": value + 0.01 * week, "ci_low": value - 0.05,
                                 "ci_high": value + 0.05})
    return pl.DataFrame(rows, schema_overrides={"origin": pl.Datetime("us", "UTC")})


def make_inputs(**changes: object) -> ModelMetricsInputs:
    inputs = ModelMetricsInputs(
        title="Chicago, violent crime, census tracts",
        synthetic=False,
        target="violent",
        target_description="At least one violent crime (homicide, robbery, aggravated assault or battery)",
        period_description="3 weekly origins, 2017-07-02 to 2017-07-22 (UTC)",
        issue_rule="Forecasts were issued each Sunday at 00:00 UTC for the next 7 days.",
        reference_model="ensemble",
        threshold_rule="top 5% of cells in each map",
        coverage=0.05,
        model_notes={
            "ensemble": "torch and LightGBM ensemble <v2> & friends",
            "compstat": "mean count per cell and hour of week over 2014-07-01 to 2017-06-30",
            "naive": "counts of the last week",
        },
        weather_note="Forecasts used the observed weather of each hour.",
        metrics=metrics_frame(),
        comparisons=comparisons_frame(),
        thresholds=thresholds_frame(),
        hotspot_curve=hotspot_frame(),
        curves=curves_frame(),
        reliability=reliability_frame(),
        timeseries=timeseries_frame(),
    )
    return dataclasses.replace(inputs, **changes)


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = render_model_metrics_report(tmp_path_factory.mktemp("report") / "model_metrics.html", make_inputs())
    return path.read_text(encoding="utf-8")


def verdict_item(page: str, baseline: str) -> str:
    items = re.findall(r"<li>(Against [^<]*)</li>", page)
    matching = [item for item in items if item.startswith(f"Against {baseline},")]
    assert len(matching) == 1, f"expected one verdict for {baseline}, found {items}"
    return matching[0]


def test_banner_only_when_synthetic(tmp_path: Path, report_page: str) -> None:
    empty = pl.DataFrame()
    synthetic = make_inputs(synthetic=True, metrics=empty, comparisons=empty, thresholds=empty, hotspot_curve=empty,
                            curves=empty, reliability=empty, timeseries=empty)
    synthetic_page = render_model_metrics_report(tmp_path / "synthetic.html", synthetic).read_text(encoding="utf-8")

    assert synthetic_page.count("SYNTHETIC DATA") == 1
    assert "class='banner'" in synthetic_page
    assert "SYNTHETIC DATA" not in report_page
    assert "class='banner'" not in report_page


def test_summary_verdict_beats_compstat(report_page: str) -> None:
    item = verdict_item(report_page, "compstat")

    assert "the ensemble forecast beat it on ROC-AUC (0.75 against 0.7, difference +0.05, " \
           "95% interval [0.02, 0.08], p = 0.004)" in item
    assert "and beat it on PAI at 5% coverage (4.5 against 3.7, difference +0.8, " \
           "95% interval [0.3, 1.3], p = 0.01)" in item
    assert "did not beat" not in item


def test_summary_verdict_loses_to_naive(report_page: str) -> None:
    item = verdict_item(report_page, "naive")

    assert "the ensemble forecast did not beat it on ROC-AUC: it scored worse (0.7 against 0.73, " \
           "difference -0.03, 95% interval [-0.06, -0.01], p = 0.02)" in item
    assert "did not beat it on PAI at 5% coverage, because the interval includes 0 (4.5 against 4.4, " \
           "difference +0.1, 95% interval [-0.2, 0.4], p = 0.5)" in item


def test_summary_verdict_without_interval(tmp_path: Path) -> None:
    empty = pl.DataFrame()
    comparisons = comparisons_frame().with_columns(
        pl.when(pl.col("model") == "compstat").then(None).otherwise(pl.col("ci_low")).alias("ci_low"),
        pl.when(pl.col("model") == "compstat").then(None).otherwise(pl.col("p_value")).alias("p_value"))
    inputs = make_inputs(comparisons=comparisons, hotspot_curve=empty, curves=empty, reliability=empty,
                         timeseries=empty)

    page = render_model_metrics_report(tmp_path / "no_interval.html", inputs).read_text(encoding="utf-8")
    item = verdict_item(page, "compstat")

    assert "has no verdict on ROC-AUC, because the difference has no interval (0.75 against 0.7, " \
           "difference +0.05)" in item
    assert "beat it on" not in item
    assert "did not beat it on ROC-AUC: it scored worse" in verdict_item(page, "naive")


def test_summary_uses_day_aggregation(report_page: str) -> None:
    summary = report_page[report_page.index("<section id='summary'>"):report_page.index("</section>")]

    assert "(cell-days; values are ensemble against the baseline" in summary
    assert "p &lt; 0.001" not in summary
    assert "0.0002" not in summary


def test_summary_states_base_rate_and_tpr(report_page: str) -> None:
    summary = report_page[report_page.index("<section id='summary'>"):report_page.index("</section>")]

    # Day: 1234 + 4321 = 5,555 positives of 998,887 cell-days; hour: 3,555 of 23,047,999 cell-hours.
    assert "0.556% of cell-days (5,555 of 998,887) had at least one violent incident." in summary
    assert "0.0154% of cell-hours (3,555 of 23,047,999) had at least one violent incident." in summary
    assert "Of the cell-days that had a violent incident, the true positive rate (TPR)" in summary
    assert "flagged 1,234 of the 5,555 cell-days with an incident, a TPR of 22.2%" in summary
    assert "it scores 1 minus the base rate: 99.4% for cell-days" in summary


def test_every_figure_embedded(report_page: str) -> None:
    assert report_page.count("<svg ") == EXPECTED_FIGURES
    assert report_page.count('<svg role="img" aria-label="') == EXPECTED_FIGURES
    assert report_page.count("<figcaption>") == EXPECTED_FIGURES
    assert "<?xml" not in report_page
    assert "<script" not in report_page
    assert "<link" not in report_page
    assert " src=" not in report_page
    assert 'href="http' not in report_page


def test_every_svg_well_formed(report_page: str) -> None:
    svgs = re.findall(r"<svg .*?</svg>", report_page, flags=re.DOTALL)

    assert len(svgs) == EXPECTED_FIGURES
    for svg in svgs:
        root = ElementTree.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find("{http://www.w3.org/2000/svg}title").text == root.get("aria-label")


def test_svg_ids_unique(report_page: str) -> None:
    ids = re.findall(r'\sid="([^"]+)"', report_page)

    assert ids
    assert len(ids) == len(set(ids))


def test_confusion_matrix_holds_counts(report_page: str) -> None:
    table = table_with_caption(report_page, "cell-days", "coverage")
    header, incident_row, quiet_row = table["rows"]

    assert header == ["998,887 cell-days", "flagged", "not flagged"]
    assert incident_row[0] == "had a violent incident"
    assert incident_row[1].startswith("1,234 (")
    assert incident_row[2].startswith("4,321 (")
    assert quiet_row[0] == "had none"
    assert quiet_row[1].startswith("5,678 (")
    assert quiet_row[2] == "987,654 (98.9%)"


def test_confusion_matrix_per_rule(report_page: str) -> None:
    youden = table_with_caption(report_page, "cell-days", "youden")
    hour = table_with_caption(report_page, "cell-hours", "coverage")

    assert youden["rows"][1][1].startswith("3,000 (")
    assert youden["rows"][2][2].startswith("903,332 (")
    assert "threshold 0.0123" in youden["caption"]
    assert hour["rows"][2][2].startswith("23,000,000 (")
    assert "1,000 (" not in str(table_with_caption(report_page, "cell-days", "coverage")["rows"])


def test_headline_table_values(report_page: str) -> None:
    day = [table for table in parse_tables(report_page)
           if table["caption"] == "cell-days" and "ROC-AUC higher is better" in table["rows"][0]][0]
    header, *rows = day["rows"]
    by_model = {row[0]: dict(zip(header, row)) for row in rows}

    assert [row[0] for row in rows] == ["ensemble", "compstat", "naive"]
    assert by_model["ensemble"]["ROC-AUC higher is better"] == "0.712 [0.69, 0.731]"
    assert by_model["compstat"]["PAI higher is better"] == "3.2"
    assert by_model["naive"]["Brier score lower is better"] == "0.0123 [0.0121, 0.0125]"
    assert by_model["ensemble"]["PR-AUC higher is better"] == "not computed"


def test_comparison_table_verdicts(report_page: str) -> None:
    day = [table for table in parse_tables(report_page)
           if table["caption"] == "cell-days" and table["rows"][0][0] == "baseline"][0]
    verdicts = {(row[0], row[1]): row[-1] for row in day["rows"][1:]}

    assert verdicts == {
        ("compstat", "PAI"): "better",
        ("compstat", "ROC-AUC"): "better",
        ("naive", "Brier score"): "better",
        ("naive", "PAI"): "no clear difference",
        ("naive", "ROC-AUC"): "worse",
    }


def test_every_model_named(tmp_path: Path) -> None:
    notes = {**make_inputs().model_notes, "sepp": "self-exciting point process fitted by EM"}
    empty = pl.DataFrame()
    inputs = make_inputs(model_notes=notes, hotspot_curve=empty, curves=empty, reliability=empty, timeseries=empty)
    page = render_model_metrics_report(tmp_path / "report.html", inputs).read_text(encoding="utf-8")
    day = [table for table in parse_tables(page)
           if table["caption"] == "cell-days" and "ROC-AUC higher is better" in table["rows"][0]][0]

    for model in (*MODELS, "sepp"):
        assert model in page
    assert ["sepp", *["not computed"] * 7] in day["rows"]


def test_empty_frames_not_computed(tmp_path: Path) -> None:
    empty = pl.DataFrame()
    inputs = make_inputs(metrics=empty, comparisons=empty, thresholds=empty, hotspot_curve=empty, curves=empty,
                         reliability=empty, timeseries=empty)

    page = render_model_metrics_report(tmp_path / "empty.html", inputs).read_text(encoding="utf-8")

    assert "<svg" not in page
    for section in ("Headline metrics: not computed", "Comparisons with the baselines: not computed",
                    "Confusion matrix of ensemble: not computed", "ROC and precision-recall curves: not computed",
                    "Threshold table: not computed", "PAI, PEI and PEI* against coverage: not computed",
                    "Calibration: not computed", "Backtest time series: not computed"):
        assert section in page
    assert "How often the target happens (the base rate) was not computed." in page
    assert "No comparison of ensemble with a baseline was computed" in page


def test_missing_aggregation_not_computed(tmp_path: Path) -> None:
    empty = pl.DataFrame()
    inputs = make_inputs(curves=curves_frame().filter(pl.col("curve") == "roc"),
                         timeseries=timeseries_frame().filter(pl.col("metric") == "pai"),
                         hotspot_curve=empty, reliability=empty)

    page = render_model_metrics_report(tmp_path / "partial.html", inputs).read_text(encoding="utf-8")

    assert "Precision-recall curves for cell-days: not computed" in page
    assert "ROC-AUC per origin for cell-hours: not computed" in page
    # ROC curves and PAI per origin remain, for each of the two aggregations.
    assert page.count("<svg ") == 4


def test_model_notes_escaped(report_page: str) -> None:
    assert "torch and LightGBM ensemble &lt;v2&gt; &amp; friends" in report_page
    assert "<v2>" not in report_page


def test_title_escaped(tmp_path: Path) -> None:
    empty = pl.DataFrame()
    inputs = make_inputs(title="A <b>bold</b> city", metrics=empty, comparisons=empty, thresholds=empty,
                         hotspot_curve=empty, curves=empty, reliability=empty, timeseries=empty)

    page = render_model_metrics_report(tmp_path / "title.html", inputs).read_text(encoding="utf-8")

    assert "A &lt;b&gt;bold&lt;/b&gt; city" in page
    assert "<b>bold" not in page


def test_rerun_writes_same_bytes(tmp_path: Path, report_page: str) -> None:
    path = render_model_metrics_report(tmp_path / "again.html", make_inputs())

    assert path.read_text(encoding="utf-8") == report_page


def test_missing_column_raises() -> None:
    with pytest.raises(ValueError, match=r"ModelMetricsInputs.comparisons has 9 rows but lacks the columns \['p_value'\]"):
        make_inputs(comparisons=comparisons_frame().drop("p_value"))


def test_invalid_coverage_raises() -> None:
    with pytest.raises(ValueError, match="coverage must be a share of the area in \\(0, 1\\], got 5"):
        make_inputs(coverage=5)


def test_number_formats() -> None:
    assert format_number(0.71234) == "0.712"
    assert format_number(12345.6) == "12,346"
    assert format_number(None) == "n/a"
    assert format_count(1234567) == "1,234,567"
    assert format_p_value(0.0002) == "< 0.001"
    assert format_p_value(0.0412) == "0.041"


def test_judge_difference_directions() -> None:
    assert judge_difference("roc_auc", 0.01, 0.05) == "better"
    assert judge_difference("roc_auc", -0.05, -0.01) == "worse"
    assert judge_difference("roc_auc", -0.01, 0.05) == "no clear difference"
    assert judge_difference("brier", -0.003, -0.001) == "better"
    assert judge_difference("ece", 0.001, 0.003) == "worse"
    assert judge_difference("pai", None, 0.3) == "no interval"
    assert judge_difference("mystery", 0.1, 0.2) == "direction unknown"
