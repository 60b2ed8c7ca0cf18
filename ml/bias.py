"""Bias audit: demographic groups of cells, group metrics of flagged forecasts, arrest-driven input bias.

Forecasts are about places, so groups are groups of cells: a cell belongs to "top two quintiles of
Black share" when its residents' share of non-Hispanic Black people falls in those quintiles.
The audit measures how the flags of a model (the cells a department would patrol) fall on each
group, and compares the ensemble with CompSTAT, the status quo (Bratton & Malinowski 2008).

What the warehouse contains (``marts.dim_cell_demographics``, one row per cell):

- population and race and ethnicity counts from ACS 2010-2014 table B03002, Cook County block groups
  summed to tracts by GEOID prefix and spread onto the cells by overlapping area; the ``*_share``
  columns are those counts over the population, null where the population is zero or unknown;
- ``per_capita_income`` and ``poverty_percent`` of the community area whose polygon contains the
  cell's centroid, from the City of Chicago table "Census Data - Selected socioeconomic indicators
  2008-2012" (PER_CAPITA_INCOME, in dollars, and PERCENT_HOUSEHOLDS_BELOW_POVERTY). The ACS 2014
  community-area file's ``PerCInc14`` is not used: its median is 9.8 times the 2008-2012 per-capita
  income, and divided by ``TRACTCnt`` (tracts per area) its median ratio to that income is 1.00.
  So it is a sum of tract per-capita incomes, not a per-capita income.

Quintiles are population-weighted: each quintile holds about a fifth of the residents, not a fifth
of the cells, so a large empty grid cell does not count as much as a dense tract. A cell's
quintile is set by the weighted mid-rank of its value, ``m = (W(value < v) + W(value == v) / 2) / W``,
and quintile ``k`` holds ``m`` in ``[(k - 1) / 5, k / 5)``. Cells of equal value share a quintile.
Cells with a null value or zero or null population get no quintile for that column, so they
belong to no group defined on it and to no complement of such a group.

Group metrics use ``fairlearn.metrics.MetricFrame`` (Weerts, Dudík, Edgar, Jalali, Lutz & Madaio
2023, "Fairlearn: Assessing and Improving Fairness of AI Systems", JMLR 24(257)). Rows are first
compacted to one row per (day, group membership, outcome, flag) with the number of cell-periods as
the sample weight, which leaves every metric exact and keeps MetricFrame fast on millions of rows.
Confidence intervals come from a bootstrap over local days (Efron & Tibshirani 1993), as in
``ml.bootstrap``: each resample draws the days with replacement and recomputes each metric from
per-day sums. Patrol exposure is counted in flagged cell-hours: a flagged cell-period counts its
hours (``period_hours`` when the frame has it, else 1).

Arrest-driven categories (narcotics, weapons, gambling, prostitution, public peace) are recorded
when police choose to look, so their records follow patrols more than offending. Lum & Isaac
(2016), "To predict and serve?", Significance 13(5), DOI 10.1111/j.1740-9713.2016.00960.x, showed
that a model trained on drug arrests in Oakland sent patrols to Black neighbourhoods at about twice
the rate of white ones, while survey estimates of drug use were near-uniform.
``arrest_share_by_category`` measures that skew against victim-reported violent crime.

The input comes from the warehouse: ``stg_crimes__incidents.arrest`` is the portal's Arrest flag
(mapped as ``arrest`` in the jurisdiction's crime columns), and
``orchestration.bias_inputs.read_incidents_for_arrest_audit`` returns each incident of a window
with its cell, ``primary_type`` and ``arrest``. A portal without an arrest flag (Philadelphia)
gives null arrests, so its arrest shares are null while its record shares are still measured.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score

from ml.bootstrap import percentile_interval, resample_weights
from ml.metrics import check_share, flag_top_share

logger = logging.getLogger(__name__)

N_QUINTILES = 5
COMPLEMENT = "complement"
DEFAULT_MODELS = ("ensemble", "compstat")
DEFAULT_BOOTSTRAP_RESAMPLES = 200

# Metrics of `group_metrics`, in output order.
GROUP_METRICS = (
    "flag_rate",
    "tpr",
    "fpr",
    "fnr",
    "precision",
    "pai",
    "exposure_share",
    "population_share",
    "incident_share",
    "exposure_to_population",
    "exposure_to_incidents",
)

GROUP_METRIC_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String,
    "group": pl.String,
    "reference": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "reference_value": pl.Float64,
    "difference": pl.Float64,
    "ratio": pl.Float64,
    "difference_ci_low": pl.Float64,
    "difference_ci_high": pl.Float64,
    "ratio_ci_low": pl.Float64,
    "ratio_ci_high": pl.Float64,
}

# Chicago "Primary Type" values. Arrest-driven: recorded mostly when police stop someone.
# Victim-reported: violent crime that a victim or witness reports.
ARREST_DRIVEN_PRIMARY_TYPES = (
    "NARCOTICS",
    "OTHER NARCOTIC VIOLATION",
    "WEAPONS VIOLATION",
    "CONCEALED CARRY LICENSE VIOLATION",
    "GAMBLING",
    "PROSTITUTION",
    "PUBLIC PEACE VIOLATION",
    "LIQUOR LAW VIOLATION",
    "INTERFERENCE WITH PUBLIC OFFICER",
    "PUBLIC INDECENCY",
)
VICTIM_REPORTED_PRIMARY_TYPES = (
    "HOMICIDE",
    "ROBBERY",
    "ASSAULT",
    "BATTERY",
    "CRIM SEXUAL ASSAULT",
    "CRIMINAL SEXUAL ASSAULT",
)
DEFAULT_CATEGORY_KINDS: dict[str, str] = {
    **{name: "arrest_driven" for name in ARREST_DRIVEN_PRIMARY_TYPES},
    **{name: "victim_reported" for name in VICTIM_REPORTED_PRIMARY_TYPES},
}
CATEGORY_KINDS = ("arrest_driven", "victim_reported", "other")


# Group definitions


@dataclass(frozen=True)
class GroupDefinition:
    """A group of cells: those whose quintile of `column` is one of `quintiles` (1 = lowest).

    `reference` is the group that differences and ratios compare against: "complement" (the
    cells with a quintile of `column` outside `quintiles`) or the name of another defined group.
    """

    name: str
    column: str
    quintiles: tuple[int, ...]
    reference: str = COMPLEMENT
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"group name must be letters, digits and underscores, got {self.name!r}.")
        bad = [q for q in self.quintiles if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= N_QUINTILES]
        if not self.quintiles or bad:
            raise ValueError(
                f"group {self.name!r}: quintiles must be whole numbers 1 to {N_QUINTILES}, got {list(self.quintiles)!r}."
            )
        if len(set(self.quintiles)) == N_QUINTILES and self.reference == COMPLEMENT:
            raise ValueError(f"group {self.name!r} takes every quintile, so its complement is empty; name a reference group.")


DEFAULT_GROUPS: tuple[GroupDefinition, ...] = (
    GroupDefinition("black_share_q45", "nh_black_share", (4, 5), description="top two quintiles of non-Hispanic Black share"),
    GroupDefinition("hispanic_share_q45", "hispanic_share", (4, 5), description="top two quintiles of Hispanic share"),
    GroupDefinition("white_share_q45", "nh_white_share", (4, 5), description="top two quintiles of non-Hispanic white share"),
    GroupDefinition("lowest_income", "per_capita_income", (1,), description="bottom quintile of per-capita income"),
    GroupDefinition("highest_income", "per_capita_income", (5,), description="top quintile of per-capita income"),
)


def parse_definitions(definitions: Sequence[GroupDefinition | Mapping]) -> tuple[GroupDefinition, ...]:
    """Turn group definitions given as dataclasses or dicts into checked GroupDefinitions.

    A dict has the keys name, column, quintiles and optionally reference and description.
    Raises ValueError on a repeated name or a reference to a group that is not defined.
    """
    parsed = []
    for number, item in enumerate(definitions):
        if isinstance(item, GroupDefinition):
            parsed.append(item)
            continue
        unknown = set(item) - {"name", "column", "quintiles", "reference", "description"}
        missing = {"name", "column", "quintiles"} - set(item)
        if unknown or missing:
            raise ValueError(
                f"group definition {number} ({item!r}) has unknown keys {sorted(unknown)} or lacks {sorted(missing)}; "
                "give name, column, quintiles and optionally reference and description."
            )
        parsed.append(GroupDefinition(
            name=str(item["name"]),
            column=str(item["column"]),
            quintiles=tuple(item["quintiles"]),
            reference=str(item.get("reference", COMPLEMENT)),
            description=str(item.get("description", "")),
        ))

    names = [definition.name for definition in parsed]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"group names must be unique, found {repeated} more than once.")
    for definition in parsed:
        if definition.reference != COMPLEMENT and definition.reference not in names:
            raise ValueError(
                f"group {definition.name!r} names reference {definition.reference!r}, which is not a defined group "
                f"(defined: {names}); use 'complement' or one of them."
            )
        if definition.reference == definition.name:
            raise ValueError(f"group {definition.name!r} cannot be its own reference.")
    return tuple(parsed)


# Quintiles and group membership


def quintile_column(column: str) -> str:
    """Return the name of the quintile column that `assign_groups` adds for `column`."""
    return f"{column}_quintile"


def assign_groups(
    demographics: pl.DataFrame,
    definitions: Sequence[GroupDefinition | Mapping] = DEFAULT_GROUPS,
    population_weighted: bool = True,
) -> pl.DataFrame:
    """Assign each cell its quintiles and its group memberships.

    `demographics` has one row per cell_id with population and every column the definitions
    name (the layout of ``marts.dim_cell_demographics``). Returns cell_id, population, one
    ``<column>_quintile`` (Int8, null where the cell has no quintile) per column used, and one
    boolean column per group, false where the cell has no quintile. Quintiles are
    population-weighted unless `population_weighted` is false, when every cell weighs 1.
    """
    parsed = parse_definitions(definitions)
    columns = list(dict.fromkeys(definition.column for definition in parsed))
    check_demographics(demographics, columns)

    result = demographics.select("cell_id", pl.col("population").cast(pl.Float64))
    for column in columns:
        quintiles = quintiles_of(demographics, column, population_weighted)
        result = result.join(quintiles, on="cell_id", how="left", maintain_order="left")

    for definition in parsed:
        quintile = pl.col(quintile_column(definition.column))
        result = result.with_columns(
            quintile.is_in(list(definition.quintiles)).fill_null(False).alias(definition.name)
        )
        logger.info(
            "Group %s (%s quintiles %s): %d of %d cells, population %.0f",
            definition.name, definition.column, list(definition.quintiles), int(result[definition.name].sum()),
            result.height, float(result.filter(pl.col(definition.name))["population"].sum()),
        )
    return result


def check_demographics(demographics: pl.DataFrame, columns: list[str]) -> None:
    """Raise ValueError when the demographics lack a column or repeat a cell."""
    missing = [name for name in ["cell_id", "population", *columns] if name not in demographics.columns]
    if missing:
        raise ValueError(
            f"demographics lack columns {missing} (it has {demographics.columns}); pass marts.dim_cell_demographics."
        )
    repeated = demographics.filter(pl.col("cell_id").is_duplicated())
    if repeated.height:
        raise ValueError(f"demographics repeat cell_id {repeated['cell_id'][0]!r}; pass one row per cell.")


def quintiles_of(demographics: pl.DataFrame, column: str, population_weighted: bool) -> pl.DataFrame:
    """Return cell_id and the weighted mid-rank quintile of `column`, null for cells without one."""
    value = pl.col(column).cast(pl.Float64)
    population = pl.col("population").cast(pl.Float64)
    usable = value.is_not_null() & value.is_not_nan() & population.is_not_null() & (population > 0)

    frame = demographics.select("cell_id", value.alias("value"), population.alias("population"), usable.alias("usable"))
    valid = frame.filter("usable")
    n_excluded = frame.height - valid.height
    if n_excluded:
        logger.info("%s: %d of %d cells have a null value or no population and get no quintile", column, n_excluded, frame.height)

    name = quintile_column(column)
    if valid.height == 0:
        logger.warning("%s: no cell has a value and a population, so no cell gets a quintile", column)
        return frame.select("cell_id", pl.lit(None, dtype=pl.Int8).alias(name))

    weight = pl.col("population") if population_weighted else pl.lit(1.0)
    by_value = (
        valid.group_by("value").agg(weight.sum().alias("weight")).sort("value")
        .with_columns(below=pl.col("weight").cum_sum() - pl.col("weight"))
    )
    total = float(by_value["weight"].sum())
    scaled = N_QUINTILES * (pl.col("below") + pl.col("weight") / 2) / total
    by_value = by_value.with_columns((scaled.floor() + 1).clip(upper_bound=N_QUINTILES).cast(pl.Int8).alias(name))

    quintiles = valid.join(by_value.select("value", name), on="value", how="left").select("cell_id", name)
    return frame.select("cell_id").join(quintiles, on="cell_id", how="left", maintain_order="left")


@dataclass(frozen=True)
class CellSets:
    """Cell memberships of every group and reference, as one bit per set in `pattern`."""

    names: tuple[str, ...]
    patterns: pl.DataFrame
    population: dict[str, float]
    total_population: float
    references: dict[str, str] = field(default_factory=dict)


def reference_name(definition: GroupDefinition) -> str:
    """Return the set name of a definition's reference group."""
    if definition.reference == COMPLEMENT:
        return f"not_{definition.name}"
    return definition.reference


def cell_sets(groups: pl.DataFrame, definitions: tuple[GroupDefinition, ...]) -> CellSets:
    """Build the membership bit pattern of every cell over the groups and their references."""
    masks: dict[str, pl.Expr] = {}
    references = {}
    for definition in definitions:
        if definition.name not in groups.columns:
            raise ValueError(f"groups lack column {definition.name!r}; build them with assign_groups from the same definitions.")
        masks[definition.name] = pl.col(definition.name)
        reference = reference_name(definition)
        references[definition.name] = reference
        if definition.reference == COMPLEMENT:
            quintile = pl.col(quintile_column(definition.column))
            masks[reference] = quintile.is_not_null() & ~quintile.is_in(list(definition.quintiles))
    if len(masks) > 62:
        raise ValueError(f"at most 62 groups and references fit one audit, got {len(masks)}; split the definitions.")

    names = tuple(masks)
    flags = groups.select("cell_id", pl.col("population").fill_null(0.0), *[mask.fill_null(False).alias(name) for name, mask in masks.items()])
    pattern = pl.sum_horizontal([pl.col(name).cast(pl.Int64) * (1 << bit) for bit, name in enumerate(names)])
    patterns = flags.select("cell_id", pattern.alias("pattern"))

    population = {name: float(flags.filter(pl.col(name))["population"].sum()) for name in names}
    return CellSets(names, patterns, population, float(flags["population"].sum()), references)


# Group metrics


@dataclass(frozen=True)
class CompactRows:
    """Cell-period rows summed per (day, membership pattern, outcome, flag) for one model."""

    day: np.ndarray
    pattern: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    rows: np.ndarray
    crimes: np.ndarray
    area: np.ndarray
    hours: np.ndarray
    n_days: int


def group_metrics(
    frame: pl.DataFrame,
    groups: pl.DataFrame,
    definitions: Sequence[GroupDefinition | Mapping] = DEFAULT_GROUPS,
    models: Sequence[str] = DEFAULT_MODELS,
    coverage: float = 0.05,
    time_zone: str = "America/Chicago",
    n_boot: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> pl.DataFrame:
    """Compute flag, error and exposure metrics per group and model, with day-bootstrap intervals.

    `frame` is a forecast frame such as ``main.backtest_predictions``: cell_id, a time column
    (``period_start`` when present, as `ml.metrics.aggregate_periods` gives, else ``hour``),
    crime_count, area_km2, one risk column per model and optionally period_hours. Each distinct
    time is one forecast map, in which `ml.metrics.flag_top_share` flags the top `coverage`
    share of cells. A map's day is the local date of its time in `time_zone`.

    `groups` comes from `assign_groups` with the same definitions. Returns the tidy frame of
    GROUP_METRIC_SCHEMA, one row per (model, group, metric in GROUP_METRICS). Each row has the
    value in the group with its 95% interval, the value in the reference group, the difference
    (group minus reference) and the ratio (group over reference). The intervals of the difference
    and the ratio come from the same resamples. A value is null where its denominator is 0.
    Metrics:

    - flag_rate: flagged cell-periods over cell-periods.
    - tpr, fpr, fnr and precision: the flags against "at least one incident".
    - pai: (incidents in flagged cells / incidents) over (flagged area / area), within the group
      and pooled over maps.
    - exposure_share: the group's flagged cell-hours over the city's.
    - population_share and incident_share: the group's residents and recorded incidents over the
      city's.
    - exposure_to_population and exposure_to_incidents: exposure_share over each of them. Above 1,
      the group gets more patrol than its share of residents or incidents.
    """
    check_share(coverage, "coverage")
    parsed = parse_definitions(definitions)
    rows = forecast_rows(frame, models, time_zone)
    sets = cell_sets(groups, parsed)
    rows = attach_patterns(rows, sets)
    weights = resample_weights(int(rows["day"].max()) + 1, n_boot, seed)

    results = []
    for model in models:
        flagged = flag_top_share(rows[model].to_numpy(), rows["slice"].to_numpy(), coverage)
        compact = compact_rows(rows, flagged)
        point = {name: metric_frame_values(compact, bit, sets, name) for bit, name in enumerate(sets.names)}
        resampled = {name: resampled_values(compact, weights, bit, sets, name) for bit, name in enumerate(sets.names)}
        for definition in parsed:
            reference = sets.references[definition.name]
            results += metric_rows(model, definition.name, reference, point, resampled)
        logger.info(
            "Group metrics of %s: %d cell-periods, %d flagged at coverage %s, %d groups, %d days, %d resamples",
            model, rows.height, int(flagged.sum()), coverage, len(parsed), compact.n_days, n_boot,
        )
    return pl.DataFrame(results, schema=GROUP_METRIC_SCHEMA, orient="row")


def forecast_rows(frame: pl.DataFrame, models: Sequence[str], time_zone: str) -> pl.DataFrame:
    """Validate a forecast frame and return cell_id, slice, day, y_true, crimes, area, hours and the model columns."""
    time_column = "period_start" if "period_start" in frame.columns else "hour"
    required = ["cell_id", time_column, "crime_count", "area_km2", *models]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ValueError(f"the forecast frame lacks columns {missing} (it has {frame.columns}); pass backtest_predictions.")
    if not isinstance(frame.schema[time_column], pl.Datetime):
        raise ValueError(f"{time_column} must be a Datetime column, got {frame.schema[time_column]}.")
    for name in required:
        nulls = frame[name].null_count()
        if nulls:
            raise ValueError(f"{name} has {nulls} nulls, the first at row {int(frame[name].is_null().arg_true()[0])}; drop or fill them.")
    if frame.height == 0:
        raise ValueError("the forecast frame has no rows.")

    time = pl.col(time_column)
    if frame.schema[time_column].time_zone is None:
        time = time.dt.replace_time_zone("UTC")
    hours = pl.col("period_hours").cast(pl.Float64) if "period_hours" in frame.columns else pl.lit(1.0)
    rows = frame.select(
        pl.col("cell_id").cast(pl.String),
        time.dt.epoch("s").alias("slice"),
        time.dt.convert_time_zone(time_zone).dt.date().alias("local_date"),
        (pl.col("crime_count") > 0).alias("y_true"),
        pl.col("crime_count").cast(pl.Float64).alias("crimes"),
        pl.col("area_km2").cast(pl.Float64).alias("area"),
        hours.alias("hours"),
        *[pl.col(model).cast(pl.Float64) for model in models],
    )
    return rows.with_columns(day=(pl.col("local_date").rank("dense") - 1).cast(pl.Int64)).drop("local_date")


def attach_patterns(rows: pl.DataFrame, sets: CellSets) -> pl.DataFrame:
    """Join each row's membership pattern, 0 (no group) for cells the groups table lacks."""
    patterns = sets.patterns.with_columns(pl.col("cell_id").cast(pl.String))
    joined = rows.join(patterns, on="cell_id", how="left", maintain_order="left")
    unknown = joined.filter(pl.col("pattern").is_null())
    if unknown.height:
        logger.warning(
            "%d cell-periods of %d cells have no demographics row, so they count in the city totals only",
            unknown.height, unknown["cell_id"].n_unique(),
        )
    return joined.with_columns(pl.col("pattern").fill_null(0))


def compact_rows(rows: pl.DataFrame, flagged: np.ndarray) -> CompactRows:
    """Sum rows per (day, pattern, outcome, flag): the counts every group metric needs."""
    summed = (
        rows.select("day", "pattern", "y_true", "crimes", "area", "hours", pl.Series("y_pred", flagged))
        .group_by("day", "pattern", "y_true", "y_pred")
        .agg(pl.len().alias("rows"), pl.col("crimes").sum(), pl.col("area").sum(), pl.col("hours").sum())
        .sort("day", "pattern", "y_true", "y_pred")
    )
    return CompactRows(
        day=summed["day"].to_numpy(),
        pattern=summed["pattern"].to_numpy(),
        y_true=summed["y_true"].to_numpy(),
        y_pred=summed["y_pred"].to_numpy(),
        rows=summed["rows"].to_numpy().astype(np.float64),
        crimes=summed["crimes"].to_numpy(),
        area=summed["area"].to_numpy(),
        hours=summed["hours"].to_numpy(),
        n_days=int(rows["day"].max()) + 1,
    )


def pai_metric(y_true: np.ndarray, y_pred: np.ndarray, crimes: np.ndarray, area: np.ndarray) -> float:
    """Return (incidents in flagged rows / incidents) / (flagged area / area), NaN when undefined."""
    flagged = np.asarray(y_pred, dtype=bool)
    hit_rate = safe_divide(float(crimes[flagged].sum()), float(crimes.sum()))
    area_share = safe_divide(float(area[flagged].sum()), float(area.sum()))
    return safe_divide(hit_rate, area_share)


def exposure_metric(y_true: np.ndarray, y_pred: np.ndarray, hours: np.ndarray) -> float:
    """Return the flagged cell-hours."""
    return float(hours[np.asarray(y_pred, dtype=bool)].sum())


def incidents_metric(y_true: np.ndarray, y_pred: np.ndarray, crimes: np.ndarray) -> float:
    """Return the recorded incidents."""
    return float(crimes.sum())


def precision_metric(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    """Return scikit-learn's weighted precision, NaN when nothing is flagged."""
    return float(precision_score(y_true, y_pred, sample_weight=sample_weight, zero_division=np.nan))


def metric_frame_values(compact: CompactRows, bit: int, sets: CellSets, name: str) -> dict[str, float | None]:
    """Compute one set's point metrics with fairlearn's MetricFrame over the compact rows.

    The sensitive feature is membership of the set, and the set's values are MetricFrame's
    ``by_group`` row for True. Shares divide that row by ``overall`` (the whole city).
    """
    member = (compact.pattern >> bit) & 1 == 1
    by_rows = {"sample_weight": compact.rows}
    frame = MetricFrame(
        metrics={
            "flag_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "fnr": false_negative_rate,
            "precision": precision_metric,
            "pai": pai_metric,
            "exposure": exposure_metric,
            "incidents": incidents_metric,
        },
        y_true=compact.y_true.astype(int),
        y_pred=compact.y_pred.astype(int),
        sensitive_features=pl.Series(member).to_numpy(),
        sample_params={
            "flag_rate": by_rows,
            "tpr": by_rows,
            "fpr": by_rows,
            "fnr": by_rows,
            "precision": by_rows,
            "pai": {"crimes": compact.crimes, "area": compact.area},
            "exposure": {"hours": compact.hours},
            "incidents": {"crimes": compact.crimes},
        },
    )
    if True not in frame.by_group.index:
        return {metric: None for metric in GROUP_METRICS}

    inside = frame.by_group.loc[True]
    sums = set_sums(compact, member, np.ones(compact.n_days))
    values = {
        "flag_rate": float(inside["flag_rate"]),
        # fairlearn returns 0 for a rate with no denominator; the audit reports those as undefined.
        "tpr": float(inside["tpr"]) if sums["positives"] > 0 else math.nan,
        "fpr": float(inside["fpr"]) if sums["negatives"] > 0 else math.nan,
        "fnr": float(inside["fnr"]) if sums["positives"] > 0 else math.nan,
        "precision": float(inside["precision"]),
        "pai": float(inside["pai"]),
        "exposure_share": safe_divide(float(inside["exposure"]), float(frame.overall["exposure"])),
        "population_share": safe_divide(sets.population[name], sets.total_population),
        "incident_share": safe_divide(float(inside["incidents"]), float(frame.overall["incidents"])),
    }
    values["exposure_to_population"] = safe_divide(values["exposure_share"], values["population_share"])
    values["exposure_to_incidents"] = safe_divide(values["exposure_share"], values["incident_share"])
    return {metric: None if math.isnan(value) else value for metric, value in values.items()}


def set_sums(compact: CompactRows, member: np.ndarray, day_weights: np.ndarray) -> dict[str, np.ndarray]:
    """Sum the counts of one set (and of the city) with weights per day, (n_days,) or (n_boot, n_days)."""
    def per_day(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        weighted = values if mask is None else values * mask
        return day_weights @ np.bincount(compact.day, weights=weighted, minlength=compact.n_days)

    inside = member.astype(np.float64)
    flagged = compact.y_pred.astype(np.float64) * inside
    positive = compact.y_true.astype(np.float64) * inside
    return {
        "rows": per_day(compact.rows, inside),
        "flagged": per_day(compact.rows, flagged),
        "positives": per_day(compact.rows, positive),
        "negatives": per_day(compact.rows, inside - positive),
        "true_positives": per_day(compact.rows, flagged * compact.y_true),
        "crimes": per_day(compact.crimes, inside),
        "captured": per_day(compact.crimes, flagged),
        "area": per_day(compact.area, inside),
        "flagged_area": per_day(compact.area, flagged),
        "exposure": per_day(compact.hours, flagged),
        "city_exposure": per_day(compact.hours, compact.y_pred.astype(np.float64)),
        "city_crimes": per_day(compact.crimes),
    }


def resampled_values(compact: CompactRows, weights: np.ndarray, bit: int, sets: CellSets, name: str) -> dict[str, np.ndarray]:
    """Compute one set's metrics on every day resample from per-day sums; NaN where undefined."""
    member = (compact.pattern >> bit) & 1 == 1
    sums = set_sums(compact, member, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        true_positives = sums["true_positives"]
        values = {
            "flag_rate": sums["flagged"] / sums["rows"],
            "tpr": true_positives / sums["positives"],
            "fpr": (sums["flagged"] - true_positives) / sums["negatives"],
            "fnr": (sums["positives"] - true_positives) / sums["positives"],
            "precision": true_positives / sums["flagged"],
            "pai": (sums["captured"] / sums["crimes"]) / (sums["flagged_area"] / sums["area"]),
            "exposure_share": sums["exposure"] / sums["city_exposure"],
            "population_share": np.full(weights.shape[0], safe_divide(sets.population[name], sets.total_population)),
            "incident_share": sums["crimes"] / sums["city_crimes"],
        }
        values["exposure_to_population"] = values["exposure_share"] / values["population_share"]
        values["exposure_to_incidents"] = values["exposure_share"] / values["incident_share"]
    return {metric: np.where(np.isfinite(value), value, np.nan) for metric, value in values.items()}


def metric_rows(
    model: str,
    group: str,
    reference: str,
    point: dict[str, dict[str, float | None]],
    resampled: dict[str, dict[str, np.ndarray]],
) -> list[dict]:
    """Return the tidy rows of one (model, group): value, reference value, difference and ratio with intervals."""
    rows = []
    for metric in GROUP_METRICS:
        value = point[group][metric]
        reference_value = point[reference][metric]
        difference = None if value is None or reference_value is None else value - reference_value
        ratio = None if value is None or reference_value in (None, 0.0) else value / reference_value

        group_draws = resampled[group][metric]
        reference_draws = resampled[reference][metric]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_draws = group_draws / reference_draws
        ratio_draws = np.where(np.isfinite(ratio_draws), ratio_draws, np.nan)

        low, high = percentile_interval(group_draws)
        difference_low, difference_high = percentile_interval(group_draws - reference_draws)
        ratio_low, ratio_high = percentile_interval(ratio_draws)
        rows.append({
            "model": model,
            "group": group,
            "reference": reference,
            "metric": metric,
            "value": value,
            "ci_low": low,
            "ci_high": high,
            "reference_value": reference_value,
            "difference": difference,
            "ratio": ratio,
            "difference_ci_low": difference_low,
            "difference_ci_high": difference_high,
            "ratio_ci_low": ratio_low,
            "ratio_ci_high": ratio_high,
        })
    return rows


def safe_divide(numerator: float, denominator: float) -> float:
    """Return numerator / denominator, NaN when the denominator is 0 or either is NaN."""
    if denominator == 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


# Release gate


@dataclass(frozen=True)
class GateResult:
    """The outcome of `disparity_gate`: passed, the rule, and one row per group checked."""

    passed: bool
    metric: str
    margin: float
    message: str
    checks: pl.DataFrame
    direction: str = "both"


GATE_DIRECTIONS = ("both", "higher")


def disparity(ratio: pl.Expr, direction: str) -> pl.Expr:
    """Distance of a group-to-reference ratio from parity: max(r, 1/r) for "both", r for "higher"."""
    if direction == "higher":
        return ratio
    return pl.max_horizontal(ratio, 1.0 / ratio)


def disparity_gate(
    group_metrics: pl.DataFrame,
    metric: str = "flag_rate",
    margin: float = 0.1,
    model: str = "ensemble",
    baseline: str = "compstat",
    direction: str = "both",
) -> GateResult:
    """Fail when the model is further from parity than the baseline by more than `margin`, in any group.

    For every group, r_model and r_baseline are the `metric` ratios (group value over reference
    value) of `model` and `baseline`. With direction "both" (the default), a ratio's disparity is
    its distance from parity on the ratio scale, d(r) = max(r, 1/r): 2.0 and 0.5 are both twice
    the reference's rate, one above and one below. With "higher", d(r) = r, which bounds only a
    group getting more of the metric than its reference (for example more flags). The bound is
    d(r_baseline) + margin, and the group fails when d(r_model) exceeds it: with margin 0.1, a
    CompSTAT flag-rate ratio of 1.5 allows the ensemble ratios from 1 / 1.6 to 1.6. A group whose
    ratio is undefined or 0 for either model (a reference or group value of 0 or missing) fails,
    because the gate cannot show that it holds.
    """
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}.")
    if metric not in GROUP_METRICS:
        raise ValueError(f"metric must be one of {GROUP_METRICS}, got {metric!r}.")
    if direction not in GATE_DIRECTIONS:
        raise ValueError(f"direction must be one of {GATE_DIRECTIONS}, got {direction!r}.")

    selected = group_metrics.filter(pl.col("metric") == metric)
    for name in (model, baseline):
        if selected.filter(pl.col("model") == name).height == 0:
            raise ValueError(f"the group metrics hold no {metric!r} rows of model {name!r}; compute them for {model!r} and {baseline!r}.")

    positive = lambda column: pl.when(pl.col(column) > 0).then(pl.col(column))  # noqa: E731
    checks = (
        selected.filter(pl.col("model") == model).select("group", "reference", pl.col("ratio").alias("model_ratio"))
        .join(selected.filter(pl.col("model") == baseline).select("group", pl.col("ratio").alias("baseline_ratio")),
              on="group", how="full", coalesce=True, maintain_order="left")
        .with_columns(model_disparity=disparity(positive("model_ratio"), direction),
                      baseline_disparity=disparity(positive("baseline_ratio"), direction))
        .with_columns(bound=pl.col("baseline_disparity") + margin)
        .with_columns(passed=(pl.col("model_disparity") <= pl.col("bound")).fill_null(False))
    )

    failures = [gate_failure(row, metric, model, baseline, margin) for row in checks.filter(~pl.col("passed")).iter_rows(named=True)]
    passed = not failures
    scale = "distance from parity, max(r, 1/r)" if direction == "both" else "ratio"
    if passed:
        message = (f"{metric} disparity gate passed: in every group the {model}'s {scale} is within the {baseline}'s "
                   f"+ {margin:g} ({checks.height} groups).")
    else:
        message = f"{metric} disparity gate failed for {len(failures)} of {checks.height} groups: " + "; ".join(failures) + "."
    logger.info(message)
    return GateResult(passed=passed, metric=metric, margin=float(margin), message=message, checks=checks,
                      direction=direction)


def gate_failure(row: dict, metric: str, model: str, baseline: str, margin: float) -> str:
    """Describe why one group fails the gate."""
    if row["model_disparity"] is None or row["baseline_disparity"] is None:
        return (f"{row['group']}: the {metric} ratio is undefined or 0 ({model} {row['model_ratio']}, {baseline} "
                f"{row['baseline_ratio']}), so the bound cannot be checked")
    return (f"{row['group']}: {model} {metric} ratio {row['model_ratio']:.3f} vs {row['reference']} (disparity "
            f"{row['model_disparity']:.3f}) exceeds the bound {row['bound']:.3f} ({baseline} ratio "
            f"{row['baseline_ratio']:.3f}, disparity {row['baseline_disparity']:.3f}, + margin {margin:g})")


# Input-bias audit


ARREST_AUDIT_SCHEMA: dict[str, pl.DataType] = {
    "category": pl.String,
    "category_kind": pl.String,
    "group": pl.String,
    "records": pl.Int64,
    "arrests": pl.Int64,
    "arrest_share": pl.Float64,
    "record_share": pl.Float64,
    "population_share": pl.Float64,
    "record_to_population": pl.Float64,
}


def arrest_share_by_category(
    incidents: pl.DataFrame,
    groups: pl.DataFrame,
    category_column: str = "primary_type",
    arrest_column: str = "arrest",
    category_kinds: Mapping[str, str] = DEFAULT_CATEGORY_KINDS,
) -> pl.DataFrame:
    """Measure, per crime category, how often records carry an arrest and where records fall.

    `incidents` has cell_id (null for unlocated records), the category column and the arrest
    column (booleans, or the portal's "true"/"false" strings in any case). `groups` comes from
    `assign_groups`: cell_id, population and one boolean column per group.

    Returns the rows of ARREST_AUDIT_SCHEMA: per category, a row for group "all" (every record,
    located or not) and one per group. arrest_share is arrests over records with a known arrest
    flag. For a group, record_share is its records over the category's located records, and
    population_share is its residents over the residents of all cells in `groups`.
    record_to_population is their ratio: above 1, the group's cells contain more of the
    category's records than of the city's residents. category_kind is "arrest_driven", "victim_reported" or
    "other", from `category_kinds` keyed by upper-case category.
    """
    group_names = [name for name in groups.columns if groups.schema[name] == pl.Boolean]
    check_incidents(incidents, category_column, arrest_column)
    kinds = {str(key).upper(): value for key, value in category_kinds.items()}
    bad_kinds = sorted(set(kinds.values()) - set(CATEGORY_KINDS))
    if bad_kinds:
        raise ValueError(f"category_kinds values must be one of {CATEGORY_KINDS}, got {bad_kinds}.")

    records = incidents.select(
        pl.col("cell_id").cast(pl.String),
        pl.col(category_column).cast(pl.String).str.strip_chars().str.to_uppercase().alias("category"),
        arrest_flags(incidents, arrest_column).alias("arrest"),
    )
    n_unknown_category = records["category"].null_count()
    if n_unknown_category:
        logger.warning("%d of %d records have no category and are left out", n_unknown_category, records.height)
        records = records.filter(pl.col("category").is_not_null())

    membership = groups.select(pl.col("cell_id").cast(pl.String), *group_names)
    located = records.filter(pl.col("cell_id").is_not_null()).join(membership, on="cell_id", how="left")
    log_audit_counts(records, located, membership)

    total_population = float(groups["population"].fill_null(0.0).sum())
    category_kind = pl.col("category").replace_strict(kinds, default="other", return_dtype=pl.String)
    arrest_sums = [
        pl.len().alias("records"),
        pl.col("arrest").sum().cast(pl.Int64).alias("arrests"),
        pl.when(pl.col("arrest").count() > 0)
        .then(pl.col("arrest").sum() / pl.col("arrest").count())
        .alias("arrest_share"),
    ]

    overall = records.group_by("category").agg(*arrest_sums).with_columns(
        group=pl.lit("all"),
        record_share=pl.lit(None, dtype=pl.Float64),
        population_share=pl.lit(None, dtype=pl.Float64),
    )
    located_totals = located.group_by("category").agg(pl.len().alias("located"))
    parts = [overall]
    for name in group_names:
        population = float(groups.filter(pl.col(name))["population"].fill_null(0.0).sum())
        part = (
            located.filter(pl.col(name).fill_null(False)).group_by("category").agg(*arrest_sums)
            .join(located_totals, on="category", how="right")
            .with_columns(
                pl.col("records").fill_null(0),
                pl.col("arrests").fill_null(0),
                group=pl.lit(name),
                record_share=pl.col("records").fill_null(0) / pl.col("located"),
                population_share=pl.lit(safe_divide(population, total_population), dtype=pl.Float64).fill_nan(None),
            )
        )
        parts.append(part)

    result = pl.concat(parts, how="diagonal_relaxed").with_columns(
        category_kind=category_kind,
        record_to_population=pl.col("record_share") / pl.col("population_share"),
    )
    return result.select([pl.col(name).cast(dtype) for name, dtype in ARREST_AUDIT_SCHEMA.items()]).sort(
        "category_kind", "category", pl.col("group") != "all", "group"
    )


def check_incidents(incidents: pl.DataFrame, category_column: str, arrest_column: str) -> None:
    """Raise ValueError when the incidents lack a needed column."""
    missing = [name for name in ("cell_id", category_column, arrest_column) if name not in incidents.columns]
    if missing:
        raise ValueError(
            f"incidents lack columns {missing} (they have {incidents.columns}). Read them from the warehouse with "
            "orchestration.bias_inputs.read_incidents_for_arrest_audit, which returns cell_id, primary_type and arrest."
        )


def arrest_flags(incidents: pl.DataFrame, arrest_column: str) -> pl.Series:
    """Read the arrest column as booleans, null where missing; raise on any other value."""
    column = incidents[arrest_column]
    if column.dtype == pl.Boolean:
        return column
    text = column.cast(pl.String).str.strip_chars().str.to_lowercase()
    bad = text.is_not_null() & ~text.is_in(["true", "false"])
    if bad.any():
        position = int(bad.arg_true()[0])
        raise ValueError(
            f"{arrest_column} must be true or false, found {column[position]!r} at row {position}; map it to a boolean first."
        )
    return text == "true"


def log_audit_counts(records: pl.DataFrame, located: pl.DataFrame, membership: pl.DataFrame) -> None:
    """Log how many records the audit reads, places in a cell and matches to demographics."""
    unlocated = records.height - located.height
    known_cells = set(membership["cell_id"].to_list())
    no_demographics = located.filter(~pl.col("cell_id").is_in(list(known_cells))).height
    unknown_arrest = records["arrest"].null_count()
    logger.info(
        "Arrest audit: %d records, %d without a cell, %d in cells without demographics, %d without an arrest flag",
        records.height, unlocated, no_demographics, unknown_arrest,
    )
