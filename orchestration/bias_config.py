"""Configuration of the bias audit, the release gate, the deployment simulation and the known-truth simulation.

The jurisdiction file's ``bias`` block sets which demographic groups of cells the audit measures
(``ml.bias.GroupDefinition``) and which crime categories are arrest-driven. The run file's
``release``, ``deployment`` and ``simulation`` blocks set the release gate's disparity bound, the
staffing assumptions of ``ml.deployment.DeploymentAssumptions`` and the size of the synthetic city
of ``ml.simulation``. Every field has a stated default, so a run file may leave each block out.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ml.bias import (
    ARREST_DRIVEN_PRIMARY_TYPES,
    COMPLEMENT,
    DEFAULT_BOOTSTRAP_RESAMPLES,
    DEFAULT_GROUPS,
    GROUP_METRICS,
    VICTIM_REPORTED_PRIMARY_TYPES,
    GroupDefinition,
    parse_definitions,
)
from ml.deployment import DeploymentAssumptions

DEFAULT_ASSUMPTIONS = DeploymentAssumptions()


class GroupConfig(BaseModel):
    """One demographic group of cells: the cells whose quintile of ``column`` is in ``quintiles``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="identifier of the group, letters, digits and underscores")
    column: str = Field(description="column of marts.dim_cell_demographics whose quintiles define the group")
    quintiles: list[int] = Field(min_length=1, description="population-weighted quintiles, 1 = lowest")
    reference: str = Field(default=COMPLEMENT,
                           description="what the group is compared with: 'complement' or another group's name")
    description: str = Field(default="", description="plain-language name shown in the reports")

    def definition(self) -> GroupDefinition:
        return GroupDefinition(self.name, self.column, tuple(self.quintiles), self.reference, self.description)


class BiasConfig(BaseModel):
    """The bias audit of one jurisdiction: its groups of cells and its arrest-driven categories."""

    model_config = ConfigDict(extra="forbid")

    groups: list[GroupConfig] | None = Field(
        default=None,
        description="groups the audit measures; default: ml.bias.DEFAULT_GROUPS (top two quintiles of Black, "
                    "Hispanic and white share, bottom and top income quintile), keeping those whose column the "
                    "jurisdiction's demographics provide")
    arrest_driven_categories: list[str] = Field(
        default_factory=lambda: list(ARREST_DRIVEN_PRIMARY_TYPES),
        description="crime types (the primary_type field) recorded mostly when police stop someone")
    victim_reported_categories: list[str] = Field(
        default_factory=lambda: list(VICTIM_REPORTED_PRIMARY_TYPES),
        description="crime types (the primary_type field) that a victim or witness reports")
    allow_arrest_driven_targets: bool = Field(
        default=False, description="allow targets that contain offense codes marked arrest_driven")

    @model_validator(mode="after")
    def check_groups(self) -> "BiasConfig":
        if self.groups is not None:
            parse_definitions([group.definition() for group in self.groups])
        overlap = sorted({value.upper() for value in self.arrest_driven_categories}
                         & {value.upper() for value in self.victim_reported_categories})
        if overlap:
            raise ValueError(f"bias categories {overlap} are listed as both arrest-driven and victim-reported; "
                             f"keep each in one list")
        return self

    def definitions(self, available_columns: set[str] | None = None) -> tuple[GroupDefinition, ...]:
        """Return the configured groups, or the default groups whose columns are in ``available_columns``.

        A configured group whose column is missing raises ValueError, because the jurisdiction
        requested it. A default group whose column is missing is left out.
        """
        if self.groups is not None:
            definitions = parse_definitions([group.definition() for group in self.groups])
            missing = sorted({d.column for d in definitions} - available_columns) if available_columns is not None else []
            if missing:
                raise ValueError(f"bias groups use the columns {missing}, which marts.dim_cell_demographics lacks "
                                 f"(it has {sorted(available_columns or [])}); add them to the jurisdiction's "
                                 f"demographics tables or change the groups")
            return definitions
        kept = [d for d in DEFAULT_GROUPS if available_columns is None or d.column in available_columns]
        names = {d.name for d in kept}
        return parse_definitions([d for d in kept if d.reference == COMPLEMENT or d.reference in names])

    def category_kinds(self) -> dict[str, str]:
        return {**{value.upper(): "arrest_driven" for value in self.arrest_driven_categories},
                **{value.upper(): "victim_reported" for value in self.victim_reported_categories}}


class ReleaseSettings(BaseModel):
    """The release gate: promote a trained ensemble to current only when its disparity is bounded.

    For every group, the gate compares the ensemble's ratio of ``metric`` (group over reference)
    with CompSTAT's on the same backtest forecasts, and fails when the ensemble's ratio exceeds
    CompSTAT's by more than ``margin`` (``ml.bias.disparity_gate``). The gate measures the backtest
    forecasts of the primary target; a release is the set of latest ensembles of every target.
    """

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(default="flag_rate", description=f"group metric whose ratio is bounded, one of {GROUP_METRICS}")
    margin: float = Field(default=0.1, ge=0, allow_inf_nan=False,
                          description="how far the ensemble's ratio may exceed the baseline's, on the ratio scale")
    baseline: str = Field(default="compstat", description="the status quo that the ensemble is compared with")
    direction: Literal["both", "higher"] = Field(
        default="both",
        description="'both' bounds the distance from parity max(r, 1/r), so a group flagged far less than its "
                    "reference fails too; 'higher' bounds only a group getting more of the metric")
    score_with: Literal["latest", "current"] = Field(
        default="latest",
        description="which ensembles score: 'latest' (the latest registered one trained before each hour, as in "
                    "backtests) or 'current' (only ensembles that passed the release gate)")
    n_boot: int = Field(default=DEFAULT_BOOTSTRAP_RESAMPLES, ge=20,
                        description="bootstrap resamples of days for the group metrics' intervals")
    seed: int = Field(default=13, description="seed of the bootstrap")

    @model_validator(mode="after")
    def check_metric(self) -> "ReleaseSettings":
        if self.metric not in GROUP_METRICS:
            raise ValueError(f"release.metric must be one of {list(GROUP_METRICS)}, got {self.metric!r}")
        return self


class DeploymentSettings(BaseModel):
    """Assumptions of the police deployment simulation; each default is ``DeploymentAssumptions``'s."""

    model_config = ConfigDict(extra="forbid")

    officers_per_shift: int = Field(default=DEFAULT_ASSUMPTIONS.officers_per_shift, ge=0,
                                    description="sworn officers on duty in the whole jurisdiction in one shift")
    regular_patrol_share: float = Field(default=DEFAULT_ASSUMPTIONS.regular_patrol_share, ge=0, le=1,
                                        description="share of them on regular beat patrol; the rest float")
    officers_per_flagged_cell: int = Field(default=DEFAULT_ASSUMPTIONS.officers_per_flagged_cell, ge=1,
                                           description="floating officers sent to each flagged cell for a shift")
    shift_hours: int = Field(default=DEFAULT_ASSUMPTIONS.shift_hours, ge=1, le=24, description="hours per shift")
    prevention_probability: float = Field(
        default=DEFAULT_ASSUMPTIONS.prevention_probability, ge=0, le=1,
        description="probability that a floating patrol prevents any one crime in its cell during the shift")
    max_overtime_share: float = Field(default=DEFAULT_ASSUMPTIONS.max_overtime_share, ge=0, le=1,
                                      description="most officers on overtime in a shift, as a share of officers_per_shift")
    overtime_rate: float = Field(default=DEFAULT_ASSUMPTIONS.overtime_rate, ge=0,
                                 description="overtime pay as a multiple of straight time")
    officer_hourly_cost: float = Field(default=DEFAULT_ASSUMPTIONS.officer_hourly_cost, ge=0,
                                       description="straight-time cost of one officer-hour")

    def assumptions(self) -> DeploymentAssumptions:
        return DeploymentAssumptions(**self.model_dump())


class SimulationSettings(BaseModel):
    """Size of the synthetic city of the feedback-loop and Lum & Isaac simulations (``ml.simulation``).

    The defaults are 20 cells, 10 true incidents per cell and day, two simulated years, 5% of
    patrols spread evenly and the LightGBM forecaster retrained weekly. With seed 2018 they give
    these divergences between patrols and true risk (first day, last day, mean of the last 30
    days). When only discovered crime feeds back: 0.08, 0.68 and 0.68, with 83% of patrols in the
    top cell on the last day. With reported crime: 0.08, 0.04 and 0.05. With the corrected counts:
    0.08, 0.13 and 0.12. The trailing-mean forecaster gives 0.04, 0.78 and 0.78 (discovered),
    0.04, 0.02 and 0.02 (reported) and 0.04, 0.11 and 0.09 (corrected). Sparse cities (a few incidents per cell and day) make the
    corrected counts noisy, because one discovery in a rarely patrolled cell weighs a lot.
    """

    model_config = ConfigDict(extra="forbid")

    n_cells: int = Field(default=20, ge=2, description="cells of the synthetic city")
    history_days: int = Field(default=28, ge=1, description="days of reported records before patrols are steered")
    simulated_days: int = Field(default=730, ge=1, description="days the feedback loop runs")
    window_days: int | None = Field(default=56, ge=1,
                                    description="trailing days the rate predictor averages or trains on; "
                                                "null for all days")
    mean_daily_rate: float = Field(default=10.0, gt=0, description="mean true incidents per cell and day")
    risk_log_sd: float = Field(default=0.6, ge=0, description="spread of the planted risk surface (log scale)")
    reporting_probability: float = Field(default=0.5, ge=0, le=1,
                                         description="share of true incidents that victims report")
    detection_rate: float = Field(default=1.0, gt=0, le=1,
                                  description="share of a cell's incidents found when it receives every patrol")
    exploration: float = Field(default=0.05, ge=0, lt=1,
                               description="share of patrols spread evenly over all cells")
    forecaster: Literal["trailing_mean", "lightgbm"] = Field(
        default="lightgbm",
        description="rate predictor that steers patrols: 'trailing_mean' (mean recorded count per day over "
                    "window_days) or 'lightgbm' (a Poisson LightGBM model on each cell's lagged recorded counts, "
                    "trained on the last window_days days)")
    retrain_days: int = Field(default=7, ge=1, description="days between retrainings of the lightgbm forecaster")
    seed: int = Field(default=2018, description="seed of the synthetic city, the discoveries and the lightgbm forecaster")
