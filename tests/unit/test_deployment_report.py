"""Unit tests for the Police Deployment HTML report on a hand-worked comparison.

One UTC day of the 4 x 4 grid of tests/unit/report_grid.py has three 8-hour shifts. At 25%
coverage each model flags 4 cells per shift: the ensemble c30, c31, c32 and c00, CompSTAT c00,
c10, c20 and c30. With 10 officers, 80% on regular patrol, 2 floating officers are left; 4 cells
at 2 officers need 8, a shortfall of 6, of which 3 (30% of 10) work overtime and 3 are extra.
Incidents: 1 in c31 at 02:00, 1 in c00 at 10:00 and 3 in c32 at 17:00. The ensemble's flags hold
all 5, CompSTAT's only the 1 in c00, so at prevention probability 0.1 the ensemble prevents 0.5
crimes and CompSTAT 0.1.
"""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from ml.deployment import DeploymentAssumptions, compare_models, group_exposure, plan_shifts
from ml.reports.cell_values import flagged_share_by_cell
from ml.reports.deployment import DeploymentReportInputs, render_police_deployment_report
from tests.unit.report_grid import MARKUP_ID, demographics, forecasts, grid_cells, table_with, visible_text

ASSUMPTIONS = DeploymentAssumptions(officers_per_shift=10, max_overtime_share=0.3)
COVERAGE = 0.25


def day_forecasts() -> pl.DataFrame:
    frame = forecasts(days=1)
    extra = (pl.col("cell_id") == "c32") & (pl.col("hour").dt.hour() == 17)
    return frame.with_columns(pl.when(extra).then(3).otherwise(pl.col("crime_count")).alias("crime_count"))


@pytest.fixture(scope="module")
def inputs() -> DeploymentReportInputs:
    frame = day_forecasts()
    comparison = compare_models(frame, assumptions=ASSUMPTIONS, time_zone="UTC", coverage=COVERAGE)
    groups = demographics().select("cell_id", "population", (pl.col("share_x") == 1.0).alias("east"))
    plans = [plan_shifts(frame, model, ASSUMPTIONS, time_zone="UTC", coverage=COVERAGE)
             for model in ("ensemble", "compstat")]
    exposure = pl.concat([group_exposure(plan, groups).with_columns(model=pl.lit(plan.model)) for plan in plans])
    cells = grid_cells().select("cell_id", "geojson")
    for plan in plans:
        cells = cells.join(flagged_share_by_cell(plan), on="cell_id")
    return DeploymentReportInputs(
        title="Grid <city>", synthetic=True, period_description="2024-03-04", time_zone="UTC",
        assumptions=ASSUMPTIONS, comparison=comparison, exposure=exposure, cells=cells)


@pytest.fixture(scope="module")
def page(inputs: DeploymentReportInputs) -> str:
    return render_police_deployment_report(inputs)


def comparison_values(page: str) -> dict[str, list[str]]:
    rows = table_with(page, "Deployment over 2024-03-04")
    return {row[0]: row[1:] for row in rows[1:]}


def test_comparison_hand_worked(page: str) -> None:
    values = comparison_values(page)

    assert values["tracts (cells) flagged per shift, mean"] == ["4", "4"]
    assert values["officers needed per shift, mean"] == ["8", "8"]
    assert values["shifts short of floating officers"] == ["3", "3"]
    assert values["overtime hours, total"] == ["72", "72"]
    assert values["overtime cost, total"] == ["6,480", "6,480"]
    assert values["extra officers needed in the worst shift"] == ["3", "3"]
    assert values["of which in flagged cell-shifts"] == ["5", "1"]
    assert values["share of incidents in flagged cell-shifts"] == ["100%", "20%"]
    assert values["expected crimes prevented, total"] == ["0.5", "0.1"]


def test_comparison_header_names_models(page: str) -> None:
    rows = table_with(page, "Deployment over")

    assert rows[0] == ["measure", "Riskcast (ensemble)", "CompSTAT (compstat)"]


def test_arithmetic_uses_run_numbers(page: str) -> None:
    text = visible_text(page)

    assert "which leaves 2 floating officers" in text
    assert "up to 1 cells per shift can be staffed without overtime" in text
    assert "Riskcast: 0.1 × 5 incidents in flagged cell-shifts = 0.5 expected crimes prevented." in text
    assert "CompSTAT: 0.1 × 1 incidents in flagged cell-shifts = 0.1 expected crimes prevented." in text


def test_assumptions_table_marks_changes(page: str) -> None:
    rows = {row[0]: row[1:3] for row in table_with(page, "Deployment assumptions")[1:]}

    assert len(rows) == 8
    assert rows["officers_per_shift"] == ["10", "changed (default 300)"]
    assert rows["max_overtime_share"] == ["0.3", "changed (default 0.1)"]
    assert rows["regular_patrol_share"] == ["0.8", "default"]


def test_exposure_per_allocation(page: str) -> None:
    rows = table_with(page, "Directed patrol exposure by group")

    assert rows[1] == ["east", "25%", "20%", "75%", "3.75", "25%", "1.25"]


def test_maps_and_escaping(page: str) -> None:
    assert "<figure class='cell-map' id='flagged_share_ensemble'>" in page
    assert "<figure class='cell-map' id='flagged_share_compstat'>" in page
    assert page.count("<div class='map-legend'") == 2
    assert 'alert("cell")' not in page
    assert "Grid &lt;city&gt;" in page


def test_absent_inputs_explained(inputs: DeploymentReportInputs) -> None:
    bare = dataclasses.replace(inputs, comparison=None, exposure=None, cells=None,
                               absent_reasons={"exposure": "no demographics were loaded."})

    text = visible_text(render_police_deployment_report(bare))

    assert "The comparison is not shown: it was not computed for this run." in text
    assert "The exposure table is not shown: no demographics were loaded." in text
    assert "The maps is not shown" in text
    assert "which leaves 2 floating officers" in text
