"""Unit tests for notebooks/support.py: the reader's selection and the deployment comparison by shift."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml.deployment import DeploymentAssumptions, compare_models
from notebooks.support import (
    Selection,
    WarehouseInfo,
    compare_selected_shifts,
    default_warehouse,
    make_selection,
    resolve_warehouse,
    select_hours,
)

INFO = WarehouseInfo(path=Path("warehouse.duckdb"), jurisdiction="test", display_name="Test", time_zone="America/Chicago",
                     synthetic=True)
ALL = Selection(None, None, tuple(range(24)), tuple(range(7)))
CELLS = ["a", "b", "c", "d"]
# Monday 2017-07-10 00:00 in Chicago (CDT, UTC-5) is 05:00 UTC; two local days of forecasts.
START = datetime(2017, 7, 10, 5, tzinfo=UTC)


def forecasts(days: int = 2) -> pl.DataFrame:
    generator = np.random.default_rng(4)
    hours = [START + timedelta(hours=step) for step in range(24 * days)]
    rows = [{"cell_id": cell, "hour": hour, "crime_count": int(generator.poisson(0.3)), "area_km2": 1.0,
             "ensemble": float(generator.uniform(0.01, 0.2)), "compstat": float(generator.uniform(0.0, 0.3))}
            for hour in hours for cell in CELLS]
    return pl.DataFrame(rows)


def test_selection_keeps_local_hours_weekdays_and_dates() -> None:
    frame = forecasts().with_columns(pl.col("hour").dt.replace_time_zone(None))
    selection = make_selection("2017-07-11", None, [8, 9], [1])

    kept = select_hours(frame, INFO, selection)

    # Tuesday 2017-07-11 08:00 and 09:00 in Chicago are 13:00 and 14:00 UTC, four cells each.
    assert kept.height == 8
    assert sorted(set(kept["hour"].to_list())) == [datetime(2017, 7, 11, 13, tzinfo=UTC),
                                                   datetime(2017, 7, 11, 14, tzinfo=UTC)]


def test_select_hours_empty_result_raises() -> None:
    with pytest.raises(ValueError, match="keeps none of the 192 rows"):
        select_hours(forecasts(), INFO, make_selection(None, None, [3], [6]))


@pytest.mark.parametrize(("arguments", "message"), [
    (("2017-07-11", "2017-07-10", [1], [0]), "is not after start_date"),
    ((None, None, [24], [0]), "hours must be local hours 0 to 23"),
    ((None, None, [], [0]), "hours must be local hours 0 to 23"),
    ((None, None, [1], [7]), r"weekdays must be 0 \(Monday\) to 6"),
])
def test_bad_selection_parameters_are_refused(arguments: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_selection(*arguments)


def test_default_warehouse_follows_riskcast_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RISKCAST_HOME", str(tmp_path))

    assert default_warehouse() == tmp_path / "demo" / "warehouse.duckdb"
    with pytest.raises(FileNotFoundError, match="run `riskcast demo`"):
        resolve_warehouse(None)


def test_every_shift_selected_equals_compare_models() -> None:
    frame = forecasts()
    assumptions = DeploymentAssumptions(officers_per_shift=10, regular_patrol_share=0.8)
    kinds = {"ensemble": "probability", "compstat": "rate"}

    expected = compare_models(frame, ("ensemble", "compstat"), assumptions, time_zone=INFO.time_zone,
                              risk_kinds=kinds, coverage=0.25, shift_starts=(0, 8, 16))
    comparison, plans, _ = compare_selected_shifts(frame, ["ensemble", "compstat"], assumptions, INFO, ALL,
                                                   risk_kinds=kinds, coverage=0.25, shift_starts=[0, 8, 16])

    assert comparison.equals(expected)
    assert plans["ensemble"].shifts.height == 6


def test_selected_shifts_are_summarised_alone() -> None:
    frame = forecasts()
    kinds = {"ensemble": "probability", "compstat": "rate"}
    # Only the 08:00 shift of Tuesday.
    selection = make_selection(None, None, [8], [1])

    comparison, plans, estimates = compare_selected_shifts(
        frame, ["ensemble"], DeploymentAssumptions(), INFO, selection, risk_kinds=kinds, coverage=0.25,
        shift_starts=[0, 8, 16])

    shift_start = datetime(2017, 7, 11, 13, tzinfo=UTC)
    in_shift = frame.filter((pl.col("hour") >= shift_start) & (pl.col("hour") < shift_start + timedelta(hours=8)))
    assert comparison["shifts"].to_list() == [1]
    assert plans["ensemble"].shifts["period_start"].to_list() == [shift_start]
    assert comparison["incidents_total"].to_list() == [int(in_shift["crime_count"].sum())]
    assert estimates["ensemble"].cells.height == len(CELLS)


def test_shift_selection_without_starts_raises() -> None:
    with pytest.raises(ValueError, match=r"no shift starts at the selected hours \[9\]"):
        compare_selected_shifts(forecasts(), ["ensemble"], DeploymentAssumptions(), INFO,
                                make_selection(None, None, [9], list(range(7))),
                                risk_kinds={"ensemble": "probability"}, coverage=0.25, shift_starts=[0, 8, 16])


def test_selection_describes_itself() -> None:
    selection = make_selection("2017-07-10", "2017-07-12", [0, 1], [5, 6])

    assert selection.describe() == ("local dates 2017-07-10 to 2017-07-12 (end excluded), hours [0, 1], "
                                    "on Saturday, Sunday")
    assert selection.start_date == date(2017, 7, 10)
