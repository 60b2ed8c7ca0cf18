"""Police deployment simulation: what a forecast's flagged cells would cost and could prevent.

The simulation follows the shift-staffing arithmetic of the commercial tool that Riskcast replaces.
Each shift has a fixed number of officers on duty. Most of them stay on regular beat patrol, and
the rest float. Every cell a model flags for the shift gets a fixed number of floating officers.
When the flagged cells need more officers than float, officers are held over on overtime, up to a
cap, and any remainder is counted as extra officers the department would have to find. A floating
patrol in a flagged cell prevents each crime that would have happened there during the shift with
a fixed probability.

The prevention model is deliberately simple and every number in it is an assumption:

- expected crimes prevented = prevention_probability x (incidents observed in flagged cell-shifts),
  summed over cell-shifts. The observed incidents are those recorded without the deployment, and
  each of them is taken to be prevented independently with that probability;
- every flagged cell is staffed, so the plan states what full staffing would take (overtime and
  extra officers) instead of leaving cells unstaffed;
- crime is not displaced to nearby cells, and patrols do not change what gets recorded.

Shifts are local: the forecast hours are grouped into the jurisdiction's shifts by
`ml.metrics.aggregate_periods`, so a shift that spans a daylight-saving change has 7 or 9 hours,
and officer-hours count the hours the shift actually has. A probability forecast is aggregated to
the chance of at least one incident in the shift, 1 - prod(1 - p), and a rate or score forecast is
summed over the shift's hours. Cells are flagged within each shift, either the top share of cells
by that aggregated risk (`ml.metrics.flag_top_share`) or every cell at or above a risk threshold.

The per-group exposure compares where the directed (floating) officer-hours go with each
demographic group's share of cells and of population, the exposure measure of the bias audit.
The regular beat patrol is the department's existing pattern, which no model changes, so it is
left out of the exposure.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import polars as pl

from ml.metrics import aggregate_periods, check_share, check_time_zone, flag_top_share

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
HOURS_PER_DAY = 24
DEFAULT_COVERAGE = 0.05
RISK_KINDS = ("probability", "rate", "score")

# Kinds of the models that the backtest writes to main.backtest_predictions (see main.backtest_models).
DEFAULT_RISK_KINDS: dict[str, str] = {
    "ensemble": "probability",
    "compstat": "rate",
    "compstat_day": "rate",
    "naive": "rate",
    "retrospective_hotspot": "rate",
    "prospective_hotspot": "rate",
    "sepp": "rate",
    "random": "score",
    "oracle": "score",
}

# Decimal places kept before rounding officer counts down, so that 300 * (1 - 0.8), which is
# 59.999999999999986 in floating point, gives 60 floating officers and not 59.
OFFICER_ROUND_DECIMALS = 9


@dataclass(frozen=True)
class DeploymentAssumptions:
    """Staffing and prevention assumptions of the deployment simulation.

    Every default is a placeholder of plausible size for a large city department, not a measured
    value: set each one per department before reading the results.

    - officers_per_shift (300): sworn officers on duty in the whole jurisdiction in one shift.
    - regular_patrol_share (0.8): share of those officers on regular beat patrol. The rest,
      rounded down to whole officers, float and can be sent to flagged cells.
    - officers_per_flagged_cell (2): floating officers sent to each flagged cell for the shift.
    - shift_hours (8): length of one shift in hours. The default shift starts are every
      shift_hours from local midnight, so shift_hours must then divide 24.
    - prevention_probability (0.1): probability that the floating patrol in a flagged cell
      prevents any one crime that would have happened there during the shift.
    - max_overtime_share (0.1): most officers that can work overtime in one shift, as a share of
      officers_per_shift, rounded down. A shortfall beyond it counts as extra officers.
    - overtime_rate (1.5): overtime pay as a multiple of the straight-time hourly cost.
    - officer_hourly_cost (60.0): straight-time cost of one officer-hour, in the department's
      currency, used only for the overtime cost.
    """

    officers_per_shift: int = 300
    regular_patrol_share: float = 0.8
    officers_per_flagged_cell: int = 2
    shift_hours: int = 8
    prevention_probability: float = 0.1
    max_overtime_share: float = 0.1
    overtime_rate: float = 1.5
    officer_hourly_cost: float = 60.0

    def __post_init__(self) -> None:
        check_whole_number(self.officers_per_shift, "officers_per_shift", minimum=0)
        check_whole_number(self.officers_per_flagged_cell, "officers_per_flagged_cell", minimum=1)
        check_whole_number(self.shift_hours, "shift_hours", minimum=1)
        if self.shift_hours > HOURS_PER_DAY:
            raise ValueError(f"shift_hours must be at most {HOURS_PER_DAY}, got {self.shift_hours!r}.")

        check_fraction(self.regular_patrol_share, "regular_patrol_share")
        check_fraction(self.prevention_probability, "prevention_probability")
        check_fraction(self.max_overtime_share, "max_overtime_share")
        check_non_negative(self.overtime_rate, "overtime_rate")
        check_non_negative(self.officer_hourly_cost, "officer_hourly_cost")

    @property
    def floating_officers(self) -> int:
        """Officers per shift who are not on regular patrol, rounded down to whole officers."""
        return round_down(self.officers_per_shift * (1 - self.regular_patrol_share))

    @property
    def max_overtime_officers(self) -> int:
        """Most officers who can work overtime in one shift, rounded down to whole officers."""
        return round_down(self.officers_per_shift * self.max_overtime_share)


@dataclass(frozen=True)
class DeploymentPlan:
    """The flagged cells and the staffing of every shift under one model.

    `cells` has one row per cell and shift: cell_id, period_start (UTC start of the shift),
    local_date, period_hours, risk (the model's risk aggregated over the shift) and flagged. Its
    floating_officers are the officers sent to the cell, and officer_hours is floating_officers x
    period_hours. It has area_km2 too when the forecasts have it.

    `shifts` has one row per shift, described in `plan_shifts`.
    """

    model: str
    flag_rule: str
    assumptions: DeploymentAssumptions
    time_zone: str
    shift_starts: tuple[int, ...]
    cells: pl.DataFrame
    shifts: pl.DataFrame


@dataclass(frozen=True)
class PreventionEstimate:
    """Incidents in flagged cells and the expected crimes prevented, per cell-shift and per shift.

    `cells` is the plan's cells with `incidents` and `expected_prevented` added. `shifts` has one
    row per shift: period_start, local_date, incidents, incidents_in_flagged_cells and
    expected_prevented. `incidents_outside_plan` counts observed incidents in hours or cells that
    the plan does not cover, which the estimate leaves out.
    """

    cells: pl.DataFrame
    shifts: pl.DataFrame
    incidents_outside_plan: int

    @property
    def incidents(self) -> int:
        return int(self.shifts["incidents"].sum())

    @property
    def incidents_in_flagged_cells(self) -> int:
        return int(self.shifts["incidents_in_flagged_cells"].sum())

    @property
    def expected_prevented(self) -> float:
        return float(self.shifts["expected_prevented"].sum())


def plan_shifts(
    forecasts: pl.DataFrame,
    model: str,
    assumptions: DeploymentAssumptions | None = None,
    *,
    time_zone: str,
    risk_kind: str | None = None,
    coverage: float | None = None,
    threshold: float | None = None,
    shift_starts: Sequence[int] | None = None,
) -> DeploymentPlan:
    """Flag cells for every local shift under `model` and work out the officers they need.

    `forecasts` has one row per cell and UTC hour (`cell_id`, `hour`) with the model's risk in
    the column named `model`, as in `main.backtest_predictions`. Every hour must have a forecast
    for every cell, and the hours must be consecutive. `risk_kind` is "probability", "rate" or
    "score" and defaults to the kind in DEFAULT_RISK_KINDS.

    Cells are flagged per shift by one rule. With `coverage` (the default, 0.05), the top
    ceil(coverage x cells) cells by aggregated risk are flagged, ties going to the smaller
    cell_id. With `threshold`, every cell whose aggregated risk is at or above it is flagged. The
    threshold is on the aggregated scale: a probability of at least one incident in the shift for
    a probability model, the expected count in the shift for a rate model.

    `assumptions` defaults to DeploymentAssumptions(). `shift_starts` are the local start hours of the shifts. They default to every
    `assumptions.shift_hours` from midnight, and given ones must be `shift_hours` apart.

    The plan's `shifts` frame has one row per shift with these columns:

    - period_start, local_date, period_hours, cells and cells_flagged;
    - officers_needed = cells_flagged x officers_per_flagged_cell, and floating_officers;
    - idle_floating_officers, the floating officers that no flagged cell needs;
    - shortfall_officers, the officers needed beyond those floating;
    - overtime_officers, the shortfall up to the overtime cap, and extra_officers, the rest;
    - overtime_hours = overtime_officers x period_hours, and
      overtime_cost = overtime_hours x officer_hourly_cost x overtime_rate;
    - officer_hours, the directed officer-hours in flagged cells.
    """
    assumptions = assumptions or DeploymentAssumptions()
    kind = resolve_risk_kind(model, risk_kind)
    flag_rule = resolve_flag_rule(coverage, threshold)
    check_time_zone(time_zone)
    starts = resolve_shift_starts(shift_starts, assumptions.shift_hours)
    hourly = check_forecasts(forecasts, model)

    shift_risk = aggregate_to_shifts(hourly, model, kind, time_zone, starts)
    flagged = flag_cells(shift_risk, coverage, threshold)

    cells = shift_risk.with_columns(flagged=pl.Series(flagged)).with_columns(
        floating_officers=pl.when(pl.col("flagged")).then(assumptions.officers_per_flagged_cell).otherwise(0).cast(pl.Int64),
    )
    cells = cells.with_columns(officer_hours=pl.col("floating_officers") * pl.col("period_hours").cast(pl.Int64))
    shifts = staff_shifts(cells, assumptions)

    logger.info(
        "Deployment plan for %s (%s) in %s: %d cells over %d shifts, %d cell-shifts flagged, "
        "%d shifts short of floating officers, %d overtime hours",
        model, flag_rule, time_zone, cells["cell_id"].n_unique(), shifts.height, int(cells["flagged"].sum()),
        int((shifts["shortfall_officers"] > 0).sum()), int(shifts["overtime_hours"].sum()),
    )
    return DeploymentPlan(
        model=model,
        flag_rule=flag_rule,
        assumptions=assumptions,
        time_zone=time_zone,
        shift_starts=starts,
        cells=cells,
        shifts=shifts,
    )


def resolve_risk_kind(model: str, risk_kind: str | None) -> str:
    """Return `risk_kind`, or the model's kind from DEFAULT_RISK_KINDS when it is None."""
    if risk_kind is None:
        if model not in DEFAULT_RISK_KINDS:
            raise ValueError(
                f"No default risk kind for model {model!r}. Pass risk_kind as one of {RISK_KINDS} "
                "(main.backtest_models lists each model's kind)."
            )
        return DEFAULT_RISK_KINDS[model]

    if risk_kind not in RISK_KINDS:
        raise ValueError(f"risk_kind must be one of {RISK_KINDS}, got {risk_kind!r} for model {model!r}.")
    return risk_kind


def resolve_flag_rule(coverage: float | None, threshold: float | None) -> str:
    """Validate the flag rule and return its description, such as "top 5% of cells"."""
    if coverage is not None and threshold is not None:
        raise ValueError(
            f"Pass either coverage or threshold, not both (got coverage={coverage!r}, threshold={threshold!r})."
        )

    if threshold is not None:
        is_number = isinstance(threshold, numbers.Real) and not isinstance(threshold, bool)
        if not (is_number and math.isfinite(threshold)):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}.")
        return f"risk >= {threshold:g}"

    share = DEFAULT_COVERAGE if coverage is None else coverage
    check_share(share, "coverage")
    return f"top {share:.0%} of cells"


def resolve_shift_starts(shift_starts: Sequence[int] | None, shift_hours: int) -> tuple[int, ...]:
    """Return the local shift start hours, checking that they are `shift_hours` apart around the day."""
    if shift_starts is None:
        if HOURS_PER_DAY % shift_hours:
            raise ValueError(
                f"shift_hours {shift_hours} does not divide 24, so there are no default shift starts. "
                "Pass shift_starts."
            )
        return tuple(range(0, HOURS_PER_DAY, shift_hours))

    starts = tuple(shift_starts)
    valid = all(isinstance(start, numbers.Integral) and not isinstance(start, bool) for start in starts)
    if not starts or not valid or list(starts) != sorted(set(starts)) or starts[0] < 0 or starts[-1] >= HOURS_PER_DAY:
        raise ValueError(f"shift_starts must be increasing local hours in 0..23, got {shift_starts!r}.")

    # The last shift runs past midnight into the first one, so the gaps wrap around the day.
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    gaps.append(starts[0] + HOURS_PER_DAY - starts[-1])
    if any(gap != shift_hours for gap in gaps):
        raise ValueError(
            f"shift_starts {starts} give shifts of {gaps} hours, but shift_hours is {shift_hours}. "
            "Give starts shift_hours apart or change shift_hours."
        )
    return starts


def check_forecasts(forecasts: pl.DataFrame, model: str) -> pl.DataFrame:
    """Return the cell-hour columns the plan needs, raising ValueError on incomplete forecasts.

    Missing `crime_count` is filled with 0 because `aggregate_periods` requires it and the plan
    takes observed incidents separately. Missing `area_km2` is filled with 1.0 and left out of the
    plan's cells.
    """
    missing = [name for name in ("cell_id", "hour", model) if name not in forecasts.columns]
    if missing:
        raise ValueError(
            f"forecasts lack the columns {missing} (they have {forecasts.columns}). "
            f"Pass one row per cell_id and hour with the risk of {model!r} in a column of that name."
        )
    if forecasts.height == 0:
        raise ValueError("forecasts has no rows. Pass at least one shift of cell-hour forecasts.")
    if not isinstance(forecasts.schema["hour"], pl.Datetime):
        raise ValueError(f"forecasts hour must be a Datetime column of UTC hour starts, got {forecasts.schema['hour']}.")
    if not forecasts.schema[model].is_numeric():
        raise ValueError(f"The risk column {model!r} must be numeric, got {forecasts.schema[model]}.")

    hourly = forecasts.select(
        "cell_id",
        "hour",
        pl.col(model).cast(pl.Float64),
        pl.col("crime_count") if "crime_count" in forecasts.columns else pl.lit(0).alias("crime_count"),
        pl.col("area_km2") if "area_km2" in forecasts.columns else pl.lit(1.0).alias("area_km2"),
    )
    check_complete_grid(hourly)
    return hourly


def check_complete_grid(hourly: pl.DataFrame) -> None:
    """Raise ValueError unless every hour has every cell and the hours are consecutive."""
    if hourly["hour"].null_count() or hourly["cell_id"].null_count():
        raise ValueError("forecasts have a null cell_id or hour. Drop or fill those rows before planning.")

    n_cells = hourly["cell_id"].n_unique()
    per_hour = hourly.group_by("hour").agg(n_cells=pl.col("cell_id").n_unique(), n_rows=pl.len()).sort("hour")
    incomplete = per_hour.filter((pl.col("n_cells") != n_cells) | (pl.col("n_rows") != n_cells))
    if incomplete.height:
        row = incomplete.row(0, named=True)
        raise ValueError(
            f"The forecasts for hour {row['hour']} have {row['n_rows']} rows for {row['n_cells']} cells, "
            f"but the forecasts name {n_cells} cells. Give every hour exactly one forecast per cell."
        )

    hours = per_hour["hour"]
    gaps = hours.diff().drop_nulls()
    gap_rows = (gaps != HOUR).arg_true()
    if gap_rows.len():
        position = int(gap_rows[0])
        raise ValueError(
            f"The forecasts skip from hour {hours[position]} to {hours[position + 1]}. "
            "Pass consecutive hours so every shift is complete."
        )


def aggregate_to_shifts(
    hourly: pl.DataFrame, model: str, kind: str, time_zone: str, shift_starts: tuple[int, ...]
) -> pl.DataFrame:
    """Aggregate the model's cell-hour risk to cell-shifts, with `risk` the shift's value."""
    probability_columns = [model] if kind == "probability" else []
    rate_columns = [] if kind == "probability" else [model]
    shifts = aggregate_periods(
        hourly,
        "shift",
        time_zone,
        shift_starts=shift_starts,
        probability_columns=probability_columns,
        rate_columns=rate_columns,
    )

    columns = ["cell_id", "period_start", "local_date", "period_hours"]
    if "area_km2" in hourly.columns:
        columns.append("area_km2")
    return shifts.select(*columns, pl.col(model).alias("risk")).sort("period_start", "cell_id")


def flag_cells(shift_risk: pl.DataFrame, coverage: float | None, threshold: float | None) -> np.ndarray:
    """Flag cells within each shift by the top-share rule or the threshold rule."""
    risk = shift_risk["risk"].to_numpy()
    if threshold is not None:
        return risk >= threshold

    share = DEFAULT_COVERAGE if coverage is None else coverage
    slice_ids = shift_risk["period_start"].dt.epoch("s").to_numpy()
    return flag_top_share(risk, slice_ids, share)


def staff_shifts(cells: pl.DataFrame, assumptions: DeploymentAssumptions) -> pl.DataFrame:
    """Compare each shift's officers needed with its floating officers and price the shortfall."""
    shifts = (
        cells.group_by("period_start")
        .agg(
            local_date=pl.col("local_date").first(),
            period_hours=pl.col("period_hours").max(),
            cells=pl.len().cast(pl.Int64),
            cells_flagged=pl.col("flagged").sum().cast(pl.Int64),
            officer_hours=pl.col("officer_hours").sum(),
        )
        .sort("period_start")
    )

    floating = assumptions.floating_officers
    needed = pl.col("cells_flagged").cast(pl.Int64) * assumptions.officers_per_flagged_cell
    shifts = shifts.with_columns(
        officers_needed=needed,
        floating_officers=pl.lit(floating, dtype=pl.Int64),
        idle_floating_officers=(floating - needed).clip(lower_bound=0),
        shortfall_officers=(needed - floating).clip(lower_bound=0),
    )

    # The shortfall is met by overtime first, up to the cap, and the rest by extra officers.
    shifts = shifts.with_columns(
        overtime_officers=pl.col("shortfall_officers").clip(upper_bound=assumptions.max_overtime_officers),
    )
    shifts = shifts.with_columns(
        overtime_hours=pl.col("overtime_officers") * pl.col("period_hours").cast(pl.Int64),
        extra_officers=pl.col("shortfall_officers") - pl.col("overtime_officers"),
    )
    shifts = shifts.with_columns(
        overtime_cost=pl.col("overtime_hours") * (assumptions.officer_hourly_cost * assumptions.overtime_rate),
    )

    return shifts.select(
        "period_start", "local_date", "period_hours", "cells", "cells_flagged", "officers_needed",
        "floating_officers", "idle_floating_officers", "shortfall_officers", "overtime_officers",
        "overtime_hours", "overtime_cost", "extra_officers", "officer_hours",
    )


def expected_prevented(plan: DeploymentPlan, observed: pl.DataFrame) -> PreventionEstimate:
    """Estimate the crimes the plan's floating patrols would prevent, given the observed incidents.

    `observed` has `cell_id`, `hour` (UTC start, a naive Datetime read as UTC) and `crime_count`:
    either every cell-hour or only the cell-hours with incidents. Each incident is assigned to the
    shift that contains its hour. The expected crimes prevented in a cell-shift are
    prevention_probability x incidents when the cell is flagged and 0 otherwise. Incidents in
    hours or cells outside the plan are counted in `incidents_outside_plan` and logged.
    """
    counts = observed_counts(observed)
    assigned = assign_to_shifts(counts, plan.shifts)

    planned_cells = plan.cells.select("cell_id", "period_start")
    inside = assigned.join(planned_cells, on=["cell_id", "period_start"], how="semi")
    outside = int(counts["crime_count"].sum()) - int(inside["crime_count"].sum())
    if outside:
        logger.warning(
            "%d observed incidents fall in hours or cells outside the %s plan and are left out of the estimate",
            outside, plan.model,
        )

    per_cell = inside.group_by("cell_id", "period_start").agg(incidents=pl.col("crime_count").sum().cast(pl.Int64))
    probability = plan.assumptions.prevention_probability
    cells = (
        plan.cells.join(per_cell, on=["cell_id", "period_start"], how="left")
        .with_columns(incidents=pl.col("incidents").fill_null(0))
        .with_columns(expected_prevented=pl.when(pl.col("flagged")).then(pl.col("incidents") * probability).otherwise(0.0))
    )

    shifts = (
        cells.group_by("period_start")
        .agg(
            local_date=pl.col("local_date").first(),
            incidents=pl.col("incidents").sum(),
            incidents_in_flagged_cells=pl.col("incidents").filter(pl.col("flagged")).sum(),
            expected_prevented=pl.col("expected_prevented").sum(),
        )
        .sort("period_start")
    )

    estimate = PreventionEstimate(cells=cells, shifts=shifts, incidents_outside_plan=outside)
    logger.info(
        "%s plan: %d of %d incidents in flagged cell-shifts, %.1f expected prevented at probability %g",
        plan.model, estimate.incidents_in_flagged_cells, estimate.incidents, estimate.expected_prevented, probability,
    )
    return estimate


def observed_counts(observed: pl.DataFrame) -> pl.DataFrame:
    """Return cell_id, hour (UTC) and crime_count, raising ValueError on missing or invalid values."""
    missing = [name for name in ("cell_id", "hour", "crime_count") if name not in observed.columns]
    if missing:
        raise ValueError(f"observed lacks the columns {missing} (it has {observed.columns}).")
    if not isinstance(observed.schema["hour"], pl.Datetime):
        raise ValueError(f"observed hour must be a Datetime column of UTC hour starts, got {observed.schema['hour']}.")
    if not observed.schema["crime_count"].is_numeric():
        raise ValueError(f"observed crime_count must be numeric, got {observed.schema['crime_count']}.")

    counts = observed.select("cell_id", "hour", "crime_count")
    bad = counts.select(
        (pl.col("crime_count").is_null() | (pl.col("crime_count") < 0) | pl.col("cell_id").is_null()
         | pl.col("hour").is_null()).alias("bad")
    )["bad"]
    if bad.any():
        position = int(bad.arg_true()[0])
        raise ValueError(
            f"observed row {position} has a null cell_id or hour or an invalid crime_count: {counts.row(position)}. "
            "crime_count must be a non-negative count."
        )

    hour = pl.col("hour")
    if counts.schema["hour"].time_zone is None:
        return counts.with_columns(hour.dt.replace_time_zone("UTC"))
    return counts.with_columns(hour.dt.convert_time_zone("UTC"))


def assign_to_shifts(counts: pl.DataFrame, shifts: pl.DataFrame) -> pl.DataFrame:
    """Attach the period_start of the plan shift containing each observed hour, dropping other hours."""
    # The plan's hours are consecutive, so each shift ends period_hours after its UTC start.
    bounds = shifts.select(
        "period_start",
        period_end=pl.col("period_start") + pl.duration(hours=pl.col("period_hours")),
    )
    joined = counts.sort("hour").join_asof(bounds, left_on="hour", right_on="period_start", strategy="backward")
    return joined.filter(pl.col("hour") < pl.col("period_end"))


def compare_models(
    forecasts: pl.DataFrame,
    models: Sequence[str] = ("ensemble", "compstat"),
    assumptions: DeploymentAssumptions | None = None,
    *,
    time_zone: str,
    risk_kinds: Mapping[str, str] | None = None,
    coverage: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    shift_starts: Sequence[int] | None = None,
) -> pl.DataFrame:
    """Plan every model's deployment over the same forecasts and summarise them side by side.

    `forecasts` is in the layout of `main.backtest_predictions`: cell_id, hour, crime_count (the
    observed incidents) and one risk column per model. All models are flagged by the top
    `coverage` share of cells per shift, unless `thresholds` gives a threshold for every model,
    each on its own model's aggregated scale (see `plan_shifts`).

    Returns one row per model (columns in COMPARISON_SCHEMA). Per shift it gives the mean cells
    flagged, the mean and max officers needed and the max extra officers. Over the period it gives
    the shift count, cell-shifts flagged, shifts short of floating officers, overtime hours and
    cost, extra officer-shifts and directed officer-hours. It ends with the incidents (all and in
    flagged cells), their ratio (hit_rate) and the expected crimes prevented, in total and per shift.
    """
    if not models:
        raise ValueError("models is empty. Name at least one risk column, such as 'ensemble'.")
    if "crime_count" not in forecasts.columns:
        raise ValueError("forecasts lack crime_count, the observed incidents that the comparison scores against.")
    if thresholds is not None and coverage is not None:
        raise ValueError("Pass either coverage or thresholds, not both.")
    if thresholds is not None:
        unset = [model for model in models if model not in thresholds]
        if unset:
            raise ValueError(f"thresholds has no threshold for {unset}. Give one per model, on its own risk scale.")

    assumptions = assumptions or DeploymentAssumptions()
    kinds = dict(risk_kinds or {})
    rows = []
    for model in models:
        threshold = None if thresholds is None else thresholds[model]
        plan = plan_shifts(
            forecasts, model, assumptions, time_zone=time_zone, risk_kind=kinds.get(model),
            coverage=coverage, threshold=threshold, shift_starts=shift_starts,
        )
        estimate = expected_prevented(plan, forecasts.select("cell_id", "hour", "crime_count"))
        rows.append(summarise_plan(plan, estimate))

    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA, orient="row")


COMPARISON_SCHEMA = {
    "model": pl.String,
    "flag_rule": pl.String,
    "shifts": pl.Int64,
    "cells_flagged_per_shift": pl.Float64,
    "cells_flagged_total": pl.Int64,
    "officers_needed_per_shift": pl.Float64,
    "officers_needed_max": pl.Int64,
    "shifts_with_shortfall": pl.Int64,
    "overtime_hours_total": pl.Int64,
    "overtime_cost_total": pl.Float64,
    "extra_officers_max": pl.Int64,
    "extra_officer_shifts_total": pl.Int64,
    "directed_officer_hours_total": pl.Int64,
    "incidents_total": pl.Int64,
    "incidents_in_flagged_cells": pl.Int64,
    "hit_rate": pl.Float64,
    "expected_prevented_total": pl.Float64,
    "expected_prevented_per_shift": pl.Float64,
}


def summarise_plan(plan: DeploymentPlan, estimate: PreventionEstimate) -> dict:
    """Summarise a plan and its prevention estimate as one row of `compare_models`."""
    shifts = plan.shifts
    n_shifts = shifts.height
    incidents = estimate.incidents
    hit_rate = estimate.incidents_in_flagged_cells / incidents if incidents else None

    return {
        "model": plan.model,
        "flag_rule": plan.flag_rule,
        "shifts": n_shifts,
        "cells_flagged_per_shift": float(shifts["cells_flagged"].mean()),
        "cells_flagged_total": int(shifts["cells_flagged"].sum()),
        "officers_needed_per_shift": float(shifts["officers_needed"].mean()),
        "officers_needed_max": int(shifts["officers_needed"].max()),
        "shifts_with_shortfall": int((shifts["shortfall_officers"] > 0).sum()),
        "overtime_hours_total": int(shifts["overtime_hours"].sum()),
        "overtime_cost_total": float(shifts["overtime_cost"].sum()),
        "extra_officers_max": int(shifts["extra_officers"].max()),
        "extra_officer_shifts_total": int(shifts["extra_officers"].sum()),
        "directed_officer_hours_total": int(shifts["officer_hours"].sum()),
        "incidents_total": incidents,
        "incidents_in_flagged_cells": estimate.incidents_in_flagged_cells,
        "hit_rate": hit_rate,
        "expected_prevented_total": estimate.expected_prevented,
        "expected_prevented_per_shift": estimate.expected_prevented / n_shifts,
    }


def group_exposure(plan: DeploymentPlan, groups: pl.DataFrame, population_column: str = "population") -> pl.DataFrame:
    """Compare each group's share of the plan's directed officer-hours with its share of cells and people.

    `groups` has one row per cell: cell_id, one boolean column per demographic group (a cell may
    belong to several groups or none) and, optionally, a population column. Every cell of the
    plan needs a row, and cells without forecasts are ignored.

    Returns one row per group: group, cells, cell_share, population and population_share (null
    without a population column), officer_hours, exposure_share (the group's share of all
    directed officer-hours), and exposure_to_cell_ratio and exposure_to_population_ratio
    (exposure_share divided by the other share, so 1 is proportional exposure). A share or ratio
    whose denominator is 0 is null.
    """
    group_columns = check_groups(groups, population_column)
    has_population = population_column in groups.columns

    hours_per_cell = plan.cells.group_by("cell_id").agg(officer_hours=pl.col("officer_hours").sum())
    missing = hours_per_cell.join(groups, on="cell_id", how="anti")
    if missing.height:
        examples = missing["cell_id"].sort().head(5).to_list()
        raise ValueError(
            f"groups has no row for {missing.height} of the plan's cells, for example {examples}. "
            "Give every forecast cell a row, with False where it belongs to no group."
        )

    ignored = groups.join(hours_per_cell, on="cell_id", how="anti").height
    if ignored:
        logger.info("group_exposure: %d cells in groups have no forecasts in the %s plan and are ignored", ignored, plan.model)

    cells = hours_per_cell.join(groups, on="cell_id", how="left")
    total_hours = int(cells["officer_hours"].sum())
    total_population = float(cells[population_column].sum()) if has_population else None

    rows = []
    for name in group_columns:
        members = cells.filter(pl.col(name))
        rows.append(exposure_row(name, members, cells.height, total_hours, population_column, total_population))
    return pl.DataFrame(rows, schema=EXPOSURE_SCHEMA, orient="row")


EXPOSURE_SCHEMA = {
    "group": pl.String,
    "cells": pl.Int64,
    "cell_share": pl.Float64,
    "population": pl.Float64,
    "population_share": pl.Float64,
    "officer_hours": pl.Int64,
    "exposure_share": pl.Float64,
    "exposure_to_cell_ratio": pl.Float64,
    "exposure_to_population_ratio": pl.Float64,
}


def check_groups(groups: pl.DataFrame, population_column: str) -> list[str]:
    """Return the group columns, raising ValueError on a missing cell_id, duplicates, nulls or wrong types."""
    if "cell_id" not in groups.columns:
        raise ValueError(f"groups lacks cell_id (it has {groups.columns}).")
    duplicated = groups.filter(pl.col("cell_id").is_duplicated())
    if duplicated.height:
        raise ValueError(f"groups has several rows for cell {duplicated['cell_id'][0]!r}. Give each cell one row.")

    group_columns = [name for name in groups.columns if name not in ("cell_id", population_column)]
    if not group_columns:
        raise ValueError("groups has no group columns. Add one boolean column per demographic group.")
    for name in group_columns:
        if groups.schema[name] != pl.Boolean:
            raise ValueError(f"group column {name!r} must be boolean, got {groups.schema[name]}.")
        if groups[name].null_count():
            raise ValueError(f"group column {name!r} has {groups[name].null_count()} nulls. Use False for non-members.")

    if population_column in groups.columns:
        population = groups[population_column]
        if not population.dtype.is_numeric() or population.null_count() or (population < 0).any():
            raise ValueError(f"{population_column} must be a non-negative number for every cell, with no nulls.")
    return group_columns


def exposure_row(
    name: str, members: pl.DataFrame, n_cells: int, total_hours: int, population_column: str,
    total_population: float | None,
) -> dict:
    """Compute one group's cells, population and officer-hours with their shares and ratios."""
    cell_share = members.height / n_cells
    officer_hours = int(members["officer_hours"].sum())
    exposure_share = officer_hours / total_hours if total_hours else None

    population = None
    population_share = None
    if total_population is not None:
        population = float(members[population_column].sum())
        population_share = population / total_population if total_population else None

    return {
        "group": name,
        "cells": members.height,
        "cell_share": cell_share,
        "population": population,
        "population_share": population_share,
        "officer_hours": officer_hours,
        "exposure_share": exposure_share,
        "exposure_to_cell_ratio": ratio_or_none(exposure_share, cell_share),
        "exposure_to_population_ratio": ratio_or_none(exposure_share, population_share),
    }


def ratio_or_none(numerator: float | None, denominator: float | None) -> float | None:
    """Divide, returning None when either value is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def round_down(value: float) -> int:
    """Round a non-negative officer count down, after removing floating-point noise."""
    return math.floor(round(value, OFFICER_ROUND_DECIMALS))


def check_whole_number(value: object, name: str, minimum: int) -> None:
    """Raise ValueError unless `value` is an integer of at least `minimum`."""
    is_integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not (is_integer and value >= minimum):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}.")


def check_fraction(value: object, name: str) -> None:
    """Raise ValueError unless 0 <= value <= 1."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must be a share between 0 and 1, got {value!r}.")


def check_non_negative(value: object, name: str) -> None:
    """Raise ValueError unless `value` is a finite number >= 0."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
