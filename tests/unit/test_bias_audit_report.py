"""Unit tests for the Bias Audit HTML report, built from the real ml.bias and ml.simulation functions.

In the grid of tests/unit/report_grid.py the ensemble flags three of the four east cells in
every hour and CompSTAT one. So the ensemble's east flag-rate ratio is 9 against CompSTAT's 1,
and the release gate fails for east, with bound 1 + 0.1. West passes with both ratios 1.
"""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from ml.bias import GroupDefinition, arrest_share_by_category, assign_groups, disparity_gate, group_metrics
from ml.reports.bias_audit import BiasAuditInputs, render_bias_audit_report
from ml.reports.cell_values import cell_flag_summary
from ml.simulation import lum_isaac_check, simulate_city, simulate_feedback
from tests.unit.report_grid import MARKUP_ID, demographics, forecasts, grid_cells, table_with, visible_text

DEFINITIONS = (
    GroupDefinition("east", "share_x", (5,), description="east <edge> cells"),
    GroupDefinition("west", "share_w", (5,), description="west cells"),
)
COVERAGE = 0.25


@pytest.fixture(scope="module")
def inputs() -> BiasAuditInputs:
    frame = forecasts(days=3)
    groups = assign_groups(demographics(), DEFINITIONS)
    metrics = group_metrics(frame, groups, DEFINITIONS, coverage=COVERAGE, n_boot=20)
    incidents = pl.DataFrame({
        "cell_id": ["c30", "c31", "c00", "c10", "c20", "c21"],
        "primary_type": ["NARCOTICS", "NARCOTICS", "BATTERY", "BATTERY", "THEFT", "NARCOTICS"],
        "arrest": [True, True, False, False, False, True],
    })
    cells = grid_cells().select("cell_id", "geojson").join(
        cell_flag_summary(frame, ["ensemble", "compstat"], COVERAGE), on="cell_id")
    city = simulate_city(6, 40, seed=3)
    return BiasAuditInputs(
        title="Grid <city> & co",
        synthetic=True,
        period_description="3 days from 2024-03-04",
        cell_hours=frame.height,
        coverage=COVERAGE,
        bootstrap_resamples=20,
        definitions=DEFINITIONS,
        groups=groups,
        group_metrics=metrics,
        gate=disparity_gate(metrics, margin=0.1),
        cells=cells,
        arrest_audit=arrest_share_by_category(incidents, groups),
        feedback=simulate_feedback(city, seed=4, history_days=10, window_days=None),
        lum_isaac=lum_isaac_check(5, n_cells=8, n_days=28),
    )


@pytest.fixture(scope="module")
def page(inputs: BiasAuditInputs) -> str:
    return render_bias_audit_report(inputs)


def test_gate_failing_group(page: str) -> None:
    rows = table_with(page, "Release gate on the flag rate ratio")

    assert rows[1] == ["east", "not_east", "9", "1", "9", "1.1", "-7.9", "FAIL"]
    assert rows[2] == ["west", "not_west", "1", "1", "1", "1.1", "+0.1", "pass"]
    text = visible_text(page)
    assert "Release gate FAILED." in text
    assert "east: ensemble flag_rate ratio 9.000 vs not_east (disparity 9.000) exceeds the bound 1.100" in text
    assert "the larger of the ratio and its inverse" in text
    assert "A failed gate blocks the release" in text


def test_group_metrics_both_models(page: str) -> None:
    rows = table_with(page, "east against not_east")

    assert rows[0][1:] == ["ensemble value", "ensemble reference", "ensemble difference", "ensemble ratio",
                           "compstat value", "compstat reference", "compstat difference", "compstat ratio"]
    flag_rate = rows[1]
    assert flag_rate[0] == "flag rate"
    assert flag_rate[1] == "0.75 [0.75, 0.75]"
    assert flag_rate[2] == "0.0833"
    assert flag_rate[4] == "9 [9, 9]"
    assert flag_rate[5] == "0.25 [0.25, 0.25]"
    assert flag_rate[8] == "1 [1, 1]"


def test_exposure_table(page: str) -> None:
    rows = table_with(page, "Exposure by group")

    east = rows[1]
    assert east[0] == "east"
    assert east[1] == "20%"
    assert east[3] == "75% [75%, 75%]"
    assert east[6] == "25% [25%, 25%]"


def test_group_definitions_table(page: str) -> None:
    rows = table_with(page, "Group definitions")

    assert rows[1] == ["east", "east <edge> cells", "share_x", "5", "complement", "4", "400", "20%"]


def test_report_maps_present(page: str) -> None:
    for map_id in ("group_east", "group_west", "mean_risk_ensemble", "flag_rate_ensemble", "flag_rate_compstat",
                   "exposure_share_ensemble", "exposure_share_compstat"):
        assert f"<figure class='cell-map' id='{map_id}'>" in page
    assert page.count("<div class='map-legend'") == 8
    assert page.count("L.map(") == 8
    assert page.count("a JS library for interactive maps") == 1


def test_report_escapes_inputs(page: str) -> None:
    assert 'alert("cell")' not in page
    assert "Grid &lt;city&gt; &amp; co" in page
    assert "east &lt;edge&gt; cells" in page


def test_arrest_audit_highlight(page: str) -> None:
    rows = table_with(page, "Arrest share per category")

    narcotics = next(row for row in rows if row[0] == "NARCOTICS")
    assert narcotics == ["NARCOTICS", "arrest-driven", "3", "3", "100%"]
    skew = table_with(page, "Record skew")
    assert skew[0] == ["category", "kind", "east", "west"]
    assert skew[1] == ["NARCOTICS", "arrest-driven", "3.33", "0"]
    assert "highlight" in page
    assert "excluded from the default targets (violent, robbery, property)" in visible_text(page)


def test_simulation_tables(page: str, inputs: BiasAuditInputs) -> None:
    rows = table_with(page, "Feedback settings, day 10 and day 39")

    daily = inputs.feedback.daily
    discovered = daily.filter(pl.col("setting") == "discovered").sort("day")
    assert [row[0] for row in rows[1:]] == ["discovered", "reported", "corrected"]
    assert rows[1][2] == f"{discovered['divergence'][0]:.3g}"
    assert rows[1][3] == f"{discovered['divergence'][-1]:.3g}"
    text = visible_text(page)
    assert f"true ratio is {inputs.lum_isaac.true_ratio:.3g}" in text
    assert f"{inputs.lum_isaac.learned_ratio:.3g} times as much crime in group_a cells" in text


def test_absent_sections_explained(inputs: BiasAuditInputs) -> None:
    bare = dataclasses.replace(
        inputs, groups=None, group_metrics=None, gate=None, cells=None, arrest_audit=None, feedback=None,
        lum_isaac=None,
        absent_reasons={"arrest_audit": "the Philadelphia warehouse has no arrest column."})

    page = render_bias_audit_report(bare)

    text = visible_text(page)
    assert "The arrest audit is not shown: the Philadelphia warehouse has no arrest column." in text
    assert "The release gate is not shown: it was not computed for this run." in text
    assert "The group metrics is not shown" in text
    assert "The cell maps is not shown" in text
    assert "The feedback-loop simulation is not shown" in text
    assert "L.map(" not in page


def test_report_is_deterministic(inputs: BiasAuditInputs, page: str) -> None:
    assert render_bias_audit_report(inputs) == page
