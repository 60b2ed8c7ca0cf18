"""Unit tests for ml.deployment against a hand-worked three-shift, five-cell example."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from ml.deployment import (
    DeploymentAssumptions,
    compare_models,
    expected_prevented,
    group_exposure,
    plan_shifts,
)

ZONE = "America/Chicago"
CELLS = ["A", "B", "C", "D", "E"]

# Monday 2017-07-10 in Chicago (CDT, UTC-5). The local shifts 00-08, 08-16 and 16-24 are the UTC
# hours 05-13, 13-21 and 21-05 of the next day.
DAY_START = datetime(2017, 7, 10, 5, tzinfo=UTC)
SHIFT_STARTS_UTC = [DAY_START, DAY_START + timedelta(hours=8), DAY_START + timedelta(hours=16)]

# CompSTAT rate per cell-hour, constant within each shift. The rates are multiples of 1/32, so the
# sums over 8 hours are exact in floating point. With threshold 0.75 on the shift's sum:
#   shift 0: A 8 x 0.25 = 2.0 flagged; B-E 8 x 0.0625 = 0.5          -> flags A
#   shift 1: A 1.0 and B 1.5 flagged; C 0.5; D and E 0.0             -> flags A, B
#   shift 2: A, B, C 3.0 flagged; D 8 x 0.09375 = 0.75 flagged (>=); E 0.5 -> flags A, B, C, D
COMPSTAT_RATES = [
    {"A": 0.25, "B": 0.0625, "C": 0.0625, "D": 0.0625, "E": 0.0625},
    {"A": 0.125, "B": 0.1875, "C": 0.0625, "D": 0.0, "E": 0.0},
    {"A": 0.375, "B": 0.375, "C": 0.375, "D": 0.09375, "E": 0.0625},
]

# Ensemble probability per cell-hour. Its top two cells per shift differ from CompSTAT's.
ENSEMBLE_PROBABILITIES = [
    {"A": 0.01, "B": 0.02, "C": 0.03, "D": 0.0, "E": 0.0},
    {"A": 0.0, "B": 0.05, "C": 0.0, "D": 0.0, "E": 0.04},
    {"A": 0.0, "B": 0.0, "C": 0.0, "D": 0.02, "E": 0.03},
]

# Observed incidents: (UTC hour, cell, count).
#   shift 0: A 1 at 05:00 and 1 at 12:00 (its first and last hour, flagged), B 1 (not flagged)
#   shift 1: B 3 (flagged), E 1 (not flagged)
#   shift 2: D 4 (flagged), E 2 at 04:00 on 11 July, the last hour of the local day (not flagged)
# Total 13 incidents, 2 + 3 + 4 = 9 of them in CompSTAT's flagged cell-shifts.
INCIDENTS = [
    (datetime(2017, 7, 10, 5, tzinfo=UTC), "A", 1),
    (datetime(2017, 7, 10, 12, tzinfo=UTC), "A", 1),
    (datetime(2017, 7, 10, 9, tzinfo=UTC), "B", 1),
    (datetime(2017, 7, 10, 15, tzinfo=UTC), "B", 3),
    (datetime(2017, 7, 10, 20, tzinfo=UTC), "E", 1),
    (datetime(2017, 7, 11, 1, tzinfo=UTC), "D", 4),
    (datetime(2017, 7, 11, 4, tzinfo=UTC), "E", 2),
]

# 10 officers on duty, 30% floating = 3, 2 per flagged cell, overtime capped at 20% of 10 = 2.
HAND_ASSUMPTIONS = DeploymentAssumptions(
    officers_per_shift=10,
    regular_patrol_share=0.7,
    officers_per_flagged_cell=2,
    shift_hours=8,
    prevention_probability=0.25,
    max_overtime_share=0.2,
    overtime_rate=1.5,
    officer_hourly_cost=40.0,
)


def hand_forecasts() -> pl.DataFrame:
    """The example's 24 hours x 5 cells in the layout of main.backtest_predictions."""
    rows = []
    incidents = {(hour, cell): count for hour, cell, count in INCIDENTS}
    for offset in range(24):
        hour = DAY_START + timedelta(hours=offset)
        shift = offset // 8
        for cell in CELLS:
            rows.append({
                "cell_id": cell,
                "hour": hour,
                "crime_count": incidents.get((hour, cell), 0),
                "area_km2": 1.0,
                "ensemble": ENSEMBLE_PROBABILITIES[shift][cell],
                "compstat": COMPSTAT_RATES[shift][cell],
            })
    return pl.DataFrame(rows)


def hand_plan(assumptions: DeploymentAssumptions = HAND_ASSUMPTIONS):
    return plan_shifts(hand_forecasts(), "compstat", assumptions, time_zone=ZONE, threshold=0.75)


def flagged_cells(plan) -> list[list[str]]:
    """The flagged cell ids of each shift, in shift order."""
    flagged = plan.cells.filter(pl.col("flagged")).sort("period_start", "cell_id")
    return [
        flagged.filter(pl.col("period_start") == start)["cell_id"].to_list()
        for start in plan.shifts["period_start"].to_list()
    ]


# plan_shifts


def test_plan_threshold_flags_by_shift() -> None:
    plan = hand_plan()

    assert plan.shifts["period_start"].to_list() == SHIFT_STARTS_UTC
    assert plan.shifts["local_date"].to_list() == [date(2017, 7, 10)] * 3
    assert flagged_cells(plan) == [["A"], ["A", "B"], ["A", "B", "C", "D"]]
    assert plan.flag_rule == "risk >= 0.75"


def test_plan_rate_risk_is_summed() -> None:
    plan = hand_plan()

    risk = plan.cells.filter(pl.col("period_start") == SHIFT_STARTS_UTC[2]).sort("cell_id")["risk"].to_list()

    assert risk == [3.0, 3.0, 3.0, 0.75, 0.5]


def test_plan_staffing_arithmetic() -> None:
    shifts = hand_plan().shifts

    # Needed = 2 per flagged cell: 2, 4, 8 against 3 floating officers.
    assert shifts["cells_flagged"].to_list() == [1, 2, 4]
    assert shifts["officers_needed"].to_list() == [2, 4, 8]
    assert shifts["floating_officers"].to_list() == [3, 3, 3]
    assert shifts["idle_floating_officers"].to_list() == [1, 0, 0]
    assert shifts["shortfall_officers"].to_list() == [0, 1, 5]
    # Overtime covers the shortfall up to 2 officers. Shift 2's other 3 are extra officers.
    assert shifts["overtime_officers"].to_list() == [0, 1, 2]
    assert shifts["extra_officers"].to_list() == [0, 0, 3]
    # Overtime hours are overtime officers x 8, and the cost is hours x 40 x 1.5.
    assert shifts["overtime_hours"].to_list() == [0, 8, 16]
    assert shifts["overtime_cost"].to_list() == [0.0, 480.0, 960.0]
    # Directed officer-hours = 2 officers x 8 hours per flagged cell.
    assert shifts["officer_hours"].to_list() == [16, 32, 64]


def test_plan_cell_officer_hours() -> None:
    cells = hand_plan().cells.filter(pl.col("period_start") == SHIFT_STARTS_UTC[1]).sort("cell_id")

    assert cells["floating_officers"].to_list() == [2, 2, 0, 0, 0]
    assert cells["officer_hours"].to_list() == [16, 16, 0, 0, 0]
    assert cells["period_hours"].to_list() == [8] * 5


def test_plan_overtime_with_default_staffing() -> None:
    # 800 cells, top 5% = 40 flagged, needing 80 officers against 60 floating (300 x 0.2).
    cells = [f"T{number:03d}" for number in range(800)]
    hours = [DAY_START + timedelta(hours=offset) for offset in range(8)]
    forecasts = pl.DataFrame({"hour": hours}).join(
        pl.DataFrame({"cell_id": cells, "ensemble": [number / 10_000 for number in range(800)]}), how="cross"
    )

    plan = plan_shifts(forecasts, "ensemble", time_zone=ZONE)
    shift = plan.shifts.row(0, named=True)

    assert shift["cells_flagged"] == 40
    assert shift["officers_needed"] == 80
    assert shift["floating_officers"] == 60
    assert shift["shortfall_officers"] == 20
    # The cap is 300 x 0.1 = 30 officers, so all 20 work overtime: 160 hours at 60 x 1.5 = 14,400.
    assert shift["overtime_officers"] == 20
    assert shift["extra_officers"] == 0
    assert shift["overtime_hours"] == 160
    assert shift["overtime_cost"] == 14_400.0
    assert plan.cells.filter(pl.col("flagged"))["cell_id"].to_list() == cells[760:]


def test_plan_coverage_probability_risk() -> None:
    plan = plan_shifts(hand_forecasts(), "ensemble", HAND_ASSUMPTIONS, time_zone=ZONE, coverage=0.4)

    # ceil(0.4 x 5) = 2 cells per shift. Shift 0 has D and E tied at 0, below the top 2.
    assert flagged_cells(plan) == [["B", "C"], ["B", "E"], ["D", "E"]]
    assert plan.flag_rule == "top 40% of cells"
    risk = plan.cells.filter((pl.col("cell_id") == "B") & (pl.col("period_start") == SHIFT_STARTS_UTC[1]))["risk"]
    assert risk.item() == pytest.approx(1 - 0.95**8)


def test_plan_coverage_ties_to_smaller_cell() -> None:
    forecasts = hand_forecasts().with_columns(ensemble=pl.lit(0.01))

    plan = plan_shifts(forecasts, "ensemble", HAND_ASSUMPTIONS, time_zone=ZONE, coverage=0.4)

    assert flagged_cells(plan) == [["A", "B"], ["A", "B"], ["A", "B"]]


@pytest.mark.parametrize(
    ("day_start", "hours", "shift_hours"),
    [
        # 5 November 2017: clocks fall back at 02:00 CDT, so 00-08 local has 9 hours.
        (datetime(2017, 11, 5, 5, tzinfo=UTC), 25, [9, 8, 8]),
        # 12 March 2017: clocks spring forward at 02:00 CST, so 00-08 local has 7 hours.
        (datetime(2017, 3, 12, 6, tzinfo=UTC), 23, [7, 8, 8]),
    ],
)
def test_plan_dst_day_shift_hours(day_start: datetime, hours: int, shift_hours: list[int]) -> None:
    forecasts = pl.DataFrame({"hour": [day_start + timedelta(hours=offset) for offset in range(hours)]}).join(
        pl.DataFrame({"cell_id": ["A", "B"], "compstat": [0.5, 0.1]}), how="cross"
    )
    # No floating officers and a cap of 10, so each shift's 2 officers work overtime.
    assumptions = DeploymentAssumptions(officers_per_shift=10, regular_patrol_share=1.0, max_overtime_share=1.0)

    plan = plan_shifts(forecasts, "compstat", assumptions, time_zone=ZONE, coverage=0.5)

    assert plan.shifts.height == 3
    assert plan.shifts["local_date"].to_list() == [day_start.date()] * 3
    assert plan.shifts["period_hours"].to_list() == shift_hours
    assert plan.shifts["overtime_officers"].to_list() == [2, 2, 2]
    assert plan.shifts["overtime_hours"].to_list() == [2 * length for length in shift_hours]
    assert plan.shifts["officer_hours"].to_list() == [2 * length for length in shift_hours]


def test_prevented_dst_repeated_hour() -> None:
    # 07:00 UTC on 5 November is 01:00 CST, the second 01:00 of the day, inside the 9-hour shift.
    start = datetime(2017, 11, 5, 5, tzinfo=UTC)
    forecasts = pl.DataFrame({"hour": [start + timedelta(hours=offset) for offset in range(25)]}).join(
        pl.DataFrame({"cell_id": ["A", "B"], "compstat": [0.5, 0.1]}), how="cross"
    )
    observed = pl.DataFrame({"cell_id": ["A", "A"], "hour": [start + timedelta(hours=2), start + timedelta(hours=8)],
                             "crime_count": [1, 2]})
    plan = plan_shifts(forecasts, "compstat", HAND_ASSUMPTIONS, time_zone=ZONE, coverage=0.5)

    estimate = expected_prevented(plan, observed)

    assert estimate.shifts["incidents"].to_list() == [3, 0, 0]
    assert estimate.shifts["expected_prevented"].to_list() == [0.75, 0.0, 0.0]


def test_plan_custom_shift_starts() -> None:
    plan = plan_shifts(hand_forecasts(), "compstat", HAND_ASSUMPTIONS, time_zone=ZONE, threshold=0.75,
                       shift_starts=(6, 14, 22))

    # The 24 hours from local midnight cover the end of 9 July's 22:00 shift, two whole shifts
    # and the start of 10 July's 22:00 shift.
    assert plan.shifts["period_hours"].to_list() == [6, 8, 8, 2]
    assert plan.shifts["local_date"].to_list() == [date(2017, 7, 9)] + [date(2017, 7, 10)] * 3


# expected_prevented


def test_prevented_hand_example() -> None:
    estimate = expected_prevented(hand_plan(), hand_forecasts())

    assert estimate.shifts["incidents"].to_list() == [3, 4, 6]
    assert estimate.shifts["incidents_in_flagged_cells"].to_list() == [2, 3, 4]
    # 0.25 x 2, 0.25 x 3 and 0.25 x 4.
    assert estimate.shifts["expected_prevented"].to_list() == [0.5, 0.75, 1.0]
    assert estimate.incidents == 13
    assert estimate.incidents_in_flagged_cells == 9
    assert estimate.expected_prevented == 2.25
    assert estimate.incidents_outside_plan == 0


def test_prevented_zero_probability() -> None:
    assumptions = DeploymentAssumptions(**{**vars(HAND_ASSUMPTIONS), "prevention_probability": 0.0})

    estimate = expected_prevented(hand_plan(assumptions), hand_forecasts())

    assert estimate.expected_prevented == 0.0
    assert estimate.shifts["expected_prevented"].to_list() == [0.0, 0.0, 0.0]
    assert estimate.incidents_in_flagged_cells == 9


def test_prevented_sparse_observations() -> None:
    observed = pl.DataFrame(
        {"cell_id": [cell for _, cell, _ in INCIDENTS], "hour": [hour for hour, _, _ in INCIDENTS],
         "crime_count": [count for _, _, count in INCIDENTS]}
    )
    # One incident before the plan, one after it and one in a cell the plan lacks.
    outside = pl.DataFrame({
        "cell_id": ["A", "A", "Z"],
        "hour": [DAY_START - timedelta(hours=1), DAY_START + timedelta(hours=24), DAY_START],
        "crime_count": [1, 1, 1],
    })

    estimate = expected_prevented(hand_plan(), pl.concat([observed, outside]))

    assert estimate.incidents == 13
    assert estimate.expected_prevented == 2.25
    assert estimate.incidents_outside_plan == 3


def test_prevented_rejects_negative_counts() -> None:
    observed = pl.DataFrame({"cell_id": ["A"], "hour": [DAY_START], "crime_count": [-1]})

    with pytest.raises(ValueError, match="observed row 0 .* crime_count must be a non-negative count"):
        expected_prevented(hand_plan(), observed)


# compare_models


def test_compare_models_thresholds() -> None:
    comparison = compare_models(hand_forecasts(), ["ensemble", "compstat"], HAND_ASSUMPTIONS, time_zone=ZONE,
                                thresholds={"ensemble": 0.3, "compstat": 0.75})
    compstat = comparison.row(1, named=True)

    assert comparison["model"].to_list() == ["ensemble", "compstat"]
    assert compstat["shifts"] == 3
    assert compstat["cells_flagged_total"] == 7
    assert compstat["cells_flagged_per_shift"] == pytest.approx(7 / 3)
    assert compstat["officers_needed_per_shift"] == pytest.approx(14 / 3)
    assert compstat["officers_needed_max"] == 8
    assert compstat["shifts_with_shortfall"] == 2
    assert compstat["overtime_hours_total"] == 24
    assert compstat["overtime_cost_total"] == 1440.0
    assert compstat["extra_officers_max"] == 3
    assert compstat["extra_officer_shifts_total"] == 3
    assert compstat["directed_officer_hours_total"] == 112
    assert compstat["incidents_total"] == 13
    assert compstat["incidents_in_flagged_cells"] == 9
    assert compstat["hit_rate"] == pytest.approx(9 / 13)
    assert compstat["expected_prevented_total"] == 2.25
    assert compstat["expected_prevented_per_shift"] == 0.75


def test_compare_models_ensemble_threshold() -> None:
    comparison = compare_models(hand_forecasts(), ["ensemble", "compstat"], HAND_ASSUMPTIONS, time_zone=ZONE,
                                thresholds={"ensemble": 0.3, "compstat": 0.75})
    ensemble = comparison.row(0, named=True)

    # 1 - (1 - p)^8 >= 0.3 needs p >= 0.0436, which only B has, in shift 1 (0.05). That one
    # cell-shift needs 2 of the 3 floating officers and holds B's 3 incidents: 0.25 x 3 prevented.
    assert ensemble["cells_flagged_total"] == 1
    assert ensemble["officers_needed_max"] == 2
    assert ensemble["overtime_hours_total"] == 0
    assert ensemble["incidents_in_flagged_cells"] == 3
    assert ensemble["expected_prevented_total"] == 0.75


def test_compare_models_same_coverage() -> None:
    comparison = compare_models(hand_forecasts(), ["ensemble", "compstat"], HAND_ASSUMPTIONS, time_zone=ZONE,
                                coverage=0.4)

    # Both flag 2 cells per shift, so the staffing is the same: 4 needed, 1 short, 1 on overtime.
    assert comparison["cells_flagged_total"].to_list() == [6, 6]
    assert comparison["overtime_hours_total"].to_list() == [24, 24]
    # Ensemble flags B, C / B, E / D, E: incidents 1 + 4 + 6 = 11. CompSTAT flags A, B / A, B /
    # A, B (ties to the smaller cell_id): incidents 3 + 3 + 0 = 6.
    assert comparison["incidents_in_flagged_cells"].to_list() == [11, 6]
    assert comparison["expected_prevented_total"].to_list() == [2.75, 1.5]


def test_compare_models_needs_every_threshold() -> None:
    with pytest.raises(ValueError, match=r"thresholds has no threshold for \['ensemble'\]"):
        compare_models(hand_forecasts(), ["ensemble", "compstat"], time_zone=ZONE, thresholds={"compstat": 0.75})


# group_exposure


def test_group_exposure_hand_example() -> None:
    # Officer-hours per cell over the three shifts: A 48, B 32, C 16, D 16, E 0, total 112.
    groups = pl.DataFrame({
        "cell_id": CELLS,
        "north": [True, True, False, False, False],
        "south": [False, False, False, True, True],
        "population": [1000, 1000, 2000, 500, 500],
    })

    exposure = group_exposure(hand_plan(), groups)
    north = exposure.row(0, named=True)
    south = exposure.row(1, named=True)

    assert exposure["group"].to_list() == ["north", "south"]
    assert north["officer_hours"] == 80
    assert north["exposure_share"] == pytest.approx(80 / 112)
    assert north["cell_share"] == 0.4
    assert north["population_share"] == 0.4
    assert north["exposure_to_cell_ratio"] == pytest.approx((80 / 112) / 0.4)
    assert north["exposure_to_population_ratio"] == pytest.approx((80 / 112) / 0.4)
    assert south["officer_hours"] == 16
    assert south["exposure_share"] == pytest.approx(16 / 112)
    assert south["population_share"] == 0.2
    assert south["exposure_to_population_ratio"] == pytest.approx((16 / 112) / 0.2)


def test_group_exposure_without_population() -> None:
    groups = pl.DataFrame({"cell_id": CELLS, "north": [True, True, False, False, False]})

    exposure = group_exposure(hand_plan(), groups)

    assert exposure["population_share"].to_list() == [None]
    assert exposure["exposure_to_population_ratio"].to_list() == [None]
    assert exposure["exposure_to_cell_ratio"].item() == pytest.approx((80 / 112) / 0.4)


def test_group_exposure_rejects_missing_cells() -> None:
    groups = pl.DataFrame({"cell_id": ["A", "B"], "north": [True, True]})

    with pytest.raises(ValueError, match=r"groups has no row for 3 of the plan's cells, for example \['C', 'D', 'E'\]"):
        group_exposure(hand_plan(), groups)


def test_group_exposure_rejects_non_boolean() -> None:
    groups = pl.DataFrame({"cell_id": CELLS, "north": [1, 1, 0, 0, 0]})

    with pytest.raises(ValueError, match="group column 'north' must be boolean"):
        group_exposure(hand_plan(), groups)


# Assumptions and input checks


def test_assumptions_default_officer_counts() -> None:
    assumptions = DeploymentAssumptions()

    # 300 x (1 - 0.8) is 59.999999999999986 in floating point.
    assert assumptions.floating_officers == 60
    assert assumptions.max_overtime_officers == 30


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("officers_per_shift", -1, "officers_per_shift must be a whole number >= 0, got -1"),
        ("officers_per_shift", 2.5, "officers_per_shift must be a whole number >= 0, got 2.5"),
        ("officers_per_flagged_cell", 0, "officers_per_flagged_cell must be a whole number >= 1, got 0"),
        ("shift_hours", 25, "shift_hours must be at most 24, got 25"),
        ("regular_patrol_share", 1.2, "regular_patrol_share must be a share between 0 and 1, got 1.2"),
        ("regular_patrol_share", float("nan"), "regular_patrol_share must be a share between 0 and 1, got nan"),
        ("prevention_probability", -0.1, "prevention_probability must be a share between 0 and 1, got -0.1"),
        ("max_overtime_share", 2, "max_overtime_share must be a share between 0 and 1, got 2"),
        ("overtime_rate", -1.5, "overtime_rate must be a finite number >= 0, got -1.5"),
    ],
)
def test_assumptions_reject_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeploymentAssumptions(**{field: value})


def test_plan_rejects_missing_cell_hour() -> None:
    forecasts = hand_forecasts().filter(~((pl.col("cell_id") == "C") & (pl.col("hour") == DAY_START)))

    with pytest.raises(ValueError, match="hour 2017-07-10 05:00:00.* 4 rows for 4 cells, but the forecasts name 5"):
        plan_shifts(forecasts, "compstat", time_zone=ZONE)


def test_plan_rejects_hour_gap() -> None:
    forecasts = hand_forecasts().filter(pl.col("hour") != DAY_START + timedelta(hours=3))

    with pytest.raises(ValueError, match="skip from hour 2017-07-10 07:00:00.* to 2017-07-10 09:00:00"):
        plan_shifts(forecasts, "compstat", time_zone=ZONE)


def test_plan_rejects_both_rules() -> None:
    with pytest.raises(ValueError, match="either coverage or threshold, not both"):
        plan_shifts(hand_forecasts(), "compstat", time_zone=ZONE, coverage=0.1, threshold=0.5)


def test_plan_rejects_unknown_risk_kind() -> None:
    forecasts = hand_forecasts().rename({"compstat": "gradient_boost"})

    with pytest.raises(ValueError, match="No default risk kind for model 'gradient_boost'"):
        plan_shifts(forecasts, "gradient_boost", time_zone=ZONE)


def test_plan_rejects_uneven_shift_starts() -> None:
    with pytest.raises(ValueError, match=r"give shifts of \[10, 6, 8\] hours, but shift_hours is 8"):
        plan_shifts(hand_forecasts(), "compstat", time_zone=ZONE, shift_starts=(0, 10, 16))


def test_plan_rejects_missing_model_column() -> None:
    with pytest.raises(ValueError, match=r"forecasts lack the columns \['sepp'\]"):
        plan_shifts(hand_forecasts(), "sepp", time_zone=ZONE)
