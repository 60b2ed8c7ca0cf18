"""Baseline risk forecasts that the ensemble is evaluated against, and their shared interface.

CompStat is the NYPD's management and crime-statistics process, described by
Bratton & Malinowski (2008), "Police performance management in practice:
taking COMPSTAT to the next level", Policing 2(3), DOI 10.1093/police/pan036.
As a forecasting baseline it becomes a historical average per place and time
period. `CompstatBaseline` predicts, for each cell and hour, the mean count of
that cell in the same local hour of the week (or the same local day of the
week) over the preceding years.

The other baselines in this module need no paper: `NaiveBaseline` repeats the
last period's counts, `RandomBaseline` scores at random (a lower bound) and
`OracleBaseline` scores with the observed counts of the target hours (an upper
bound). The spatial kernels are in `ml.hotspots` and the self-exciting point
process in `ml.sepp`. `make_baseline` builds any of them by name.

Every baseline has a `risk_kind`. "rate" means `risk` is an expected count per
cell-hour, so 1 - exp(-risk) is the Poisson probability of at least one crime.
"score" means `risk` only ranks cell-hours.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import polars as pl

logger = logging.getLogger(__name__)

SECONDS_PER_HOUR = 3600
HOURS_PER_DAY = 24

RiskKind = Literal["rate", "score"]
CompstatPeriod = Literal["hour_of_week", "day_of_week"]
COMPSTAT_PERIODS: tuple[str, ...] = ("hour_of_week", "day_of_week")


class RiskBaseline(ABC):
    """A forecast fitted on cell-hour history that scores target cell-hours.

    `history` has columns `cell_id` (str), `hour` (Datetime in UTC, the start
    of the hour) and `crime_count` (int). `targets` has `cell_id` and `hour`.
    `predict` returns the target rows in their input order with a float64
    `risk` column added. `risk_kind` is "rate" when `risk` is an expected
    count per cell-hour and "score" when it only ranks cell-hours.
    """

    name: str
    risk_kind: RiskKind

    @abstractmethod
    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "RiskBaseline":
        """Fit on the rows of `history` with hour < `cutoff` and return self."""

    @abstractmethod
    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        """Return `targets` with a float64 `risk` column, rows in input order."""


class CompstatBaseline(RiskBaseline):
    """Mean count per cell and local period over the `years` years before the cutoff.

    With `period="hour_of_week"` (name "compstat") the period is the local
    hour of the week. With `period="day_of_week"` (name "compstat_day") it is
    the local day of the week, and the risk is the cell's mean count per hour
    on that weekday. That equals the mean daily count divided by 24 when every
    local day in the window has 24 hours. Every hour of a day gets the same
    risk, so the ranking of cells in any hour is the daily ranking. The
    23-hour and 25-hour days of daylight-saving changes count with their real
    number of hours.

    The mean divides a cell's summed counts by the number of history rows that
    cell has in that period, so a cell-hour missing from the history is not
    counted as a zero. CompStat therefore needs the complete cell-hour spine,
    zeros included, because on a sparse history of crime rows alone every
    mean would be at least 1. When the history covers less than `years` years before the
    cutoff, the fit uses what there is, and `history_start`, `history_end`,
    `history_weeks` and `description` record the span used.
    """

    name = "compstat"
    risk_kind: RiskKind = "rate"

    def __init__(
        self,
        years: int = 3,
        time_zone: str = "America/Chicago",
        period: CompstatPeriod = "hour_of_week",
    ) -> None:
        if isinstance(years, bool) or not isinstance(years, int) or years < 1:
            raise ValueError(f"years must be a positive whole number, got {years!r}.")

        check_time_zone(time_zone)

        if period not in COMPSTAT_PERIODS:
            raise ValueError(f"period must be one of {list(COMPSTAT_PERIODS)}, got {period!r}.")

        self.years = years
        self.time_zone = time_zone
        self.period = period
        self.name = "compstat" if period == "hour_of_week" else "compstat_day"

        self.cutoff: datetime | None = None
        self.history_start: datetime | None = None
        self.history_end: datetime | None = None
        self.history_weeks: float | None = None
        self.description: str | None = None
        self.period_means: pl.DataFrame | None = None

    @property
    def hour_of_week_means(self) -> pl.DataFrame | None:
        """Fitted means with columns cell_id, hour_of_week and risk, or None before fit or for day_of_week."""
        if self.period != "hour_of_week":
            return None
        return self.period_means

    @property
    def day_of_week_means(self) -> pl.DataFrame | None:
        """Fitted means per hour with columns cell_id, day_of_week (0 is Monday) and risk, or None."""
        if self.period != "day_of_week":
            return None
        return self.period_means

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "CompstatBaseline":
        """Average each cell's counts per local period over the window before `cutoff`."""
        check_history(history)

        cutoff_utc = as_utc(cutoff, "cutoff")
        local_cutoff = cutoff_utc.astimezone(ZoneInfo(self.time_zone))
        window_start = subtract_years(local_cutoff, self.years).astimezone(timezone.utc)
        window = history.lazy().filter((pl.col("hour") >= window_start) & (pl.col("hour") < cutoff_utc))
        span = window.select(first=pl.col("hour").min(), last=pl.col("hour").max()).collect()
        first_hour, last_hour = span["first"][0], span["last"][0]
        if first_hour is None:
            raise ValueError(
                f"history has no rows between {window_start.isoformat()} and the cutoff {cutoff_utc.isoformat()}. "
                "Pass history with hours before the cutoff."
            )

        # Three years of a city's cell-hours are tens of millions of rows. The local period is
        # computed once per hour of the span and joined, and the streaming engine aggregates the
        # window in pieces, so neither a copy of the window nor a period column of its length is held.
        span_hours = pl.datetime_range(first_hour, last_hour, interval="1h", eager=True,
                                       time_unit=history.schema["hour"].time_unit, time_zone="UTC").alias("hour")
        periods = pl.DataFrame([span_hours, self.local_period(span_hours)])
        self.period_means = (
            window.join(periods.lazy(), on="hour", how="inner")
            .group_by("cell_id", self.period)
            .agg(crime_sum=pl.col("crime_count").sum(), n_hours=pl.len())
            .select("cell_id", self.period, risk=pl.col("crime_sum").cast(pl.Float64) / pl.col("n_hours"))
            .sort("cell_id", self.period)
            .collect(engine="streaming")
        )

        self.record_span(first_hour, last_hour, window_start, cutoff_utc)
        return self

    def local_period(self, hours: pl.Series) -> pl.Series:
        """Return the local hour of week (0 to 167) or day of week (0 is Monday) of each UTC hour."""
        hour_of_week = local_hour_of_week(hours, self.time_zone)
        if self.period == "hour_of_week":
            return hour_of_week
        return (hour_of_week // HOURS_PER_DAY).alias("day_of_week")

    def record_span(self, first_hour: datetime, last_hour: datetime, window_start: datetime,
                    cutoff_utc: datetime) -> None:
        """Store the first and end hour used, its length in weeks and a one-sentence description.

        `history_end` is the end of the last hour used, which is the cutoff
        when the history reaches it.
        """
        self.cutoff = cutoff_utc
        self.history_start = first_hour
        self.history_end = last_hour + timedelta(hours=1)
        self.history_weeks = (self.history_end - self.history_start) / timedelta(weeks=1)

        # The span is printed in UTC, the time basis of Riskcast's windows and partitions.
        start_text = self.history_start.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
        end_text = self.history_end.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
        if self.period == "hour_of_week":
            averaged = "mean count per cell and local hour of week"
        else:
            averaged = "mean count per hour per cell and local day of week"
        self.description = (
            f"{averaged} ({self.time_zone}) "
            f"over {start_text} to {end_text} UTC ({self.history_weeks:.1f} weeks)"
        )
        if self.history_start > window_start:
            requested_weeks = (cutoff_utc - window_start) / timedelta(weeks=1)
            self.description += (f", less than the {self.years} years ({requested_weeks:.1f} weeks) "
                                 f"requested because the data starts later")

        if self.history_start > window_start:
            logger.warning(
                "CompStat history starts at %s, later than the %d-year window start %s, so the fit uses %.1f weeks.",
                self.history_start.isoformat(),
                self.years,
                window_start.isoformat(),
                self.history_weeks,
            )
        logger.info("Fitted CompStat baseline: %s", self.description)

    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        """Return `targets` in input order with `risk`, the fitted mean for its cell and local period.

        Risk is 0.0 for a cell, or a cell and period, absent from the history.
        """
        if self.period_means is None:
            raise RuntimeError("CompstatBaseline.predict was called before fit. Call fit(history, cutoff) first.")
        check_targets(targets, extra_columns=(self.period,))

        keyed = targets.with_columns(self.local_period(targets["hour"]))
        joined = keyed.join(
            self.period_means,
            on=["cell_id", self.period],
            how="left",
            maintain_order="left",
        )

        n_missing = joined["risk"].null_count()
        if n_missing:
            logger.info("CompStat has no history for %d of %d target rows, so their risk is 0.0.", n_missing, joined.height)
        return joined.with_columns(pl.col("risk").fill_null(0.0)).drop(self.period)


class NaiveBaseline(RiskBaseline):
    """Count of each cell over the `period_hours` hours before the cutoff, divided by `period_hours`.

    The risk is the same for every target hour of a cell: last period's mean
    count per hour. The baseline is meant for the complete cell-hour spine,
    but it treats a missing cell-hour as zero crimes, so a sparse history of
    crime rows gives the same result for the cells it contains. A target cell
    with no history row in the period gets risk 0.0.
    """

    name = "naive"
    risk_kind: RiskKind = "rate"

    def __init__(self, period_hours: int = 168) -> None:
        if isinstance(period_hours, bool) or not isinstance(period_hours, int) or period_hours < 1:
            raise ValueError(f"period_hours must be a positive whole number of hours, got {period_hours!r}.")

        self.period_hours = period_hours
        self.cutoff: datetime | None = None
        self.cell_rates: pl.DataFrame | None = None

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "NaiveBaseline":
        """Sum each cell's counts over the last `period_hours` hours before `cutoff`."""
        check_history(history)

        cutoff_utc = as_utc(cutoff, "cutoff")
        window_start = cutoff_utc - timedelta(hours=self.period_hours)
        window = history.filter((pl.col("hour") >= window_start) & (pl.col("hour") < cutoff_utc))
        if window.height == 0:
            raise ValueError(
                f"history has no rows between {window_start.isoformat()} and the cutoff {cutoff_utc.isoformat()}. "
                f"Pass history that covers the {self.period_hours} hours before the cutoff."
            )

        first_hour = history["hour"].min()
        if first_hour > window_start:
            logger.warning(
                "Naive baseline: history starts at %s, after the period start %s, so the earlier hours count as zero.",
                first_hour.isoformat(),
                window_start.isoformat(),
            )

        self.cell_rates = (
            window.group_by("cell_id")
            .agg(crime_sum=pl.col("crime_count").sum())
            .select("cell_id", risk=pl.col("crime_sum").cast(pl.Float64) / self.period_hours)
            .sort("cell_id")
        )
        self.cutoff = cutoff_utc
        logger.info(
            "Fitted naive baseline on %d crimes in %d cells over the %d hours before %s.",
            int(window["crime_count"].sum()),
            self.cell_rates.height,
            self.period_hours,
            cutoff_utc.isoformat(),
        )
        return self

    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        """Return `targets` in input order with `risk`, the cell's mean count per hour in the last period."""
        if self.cell_rates is None:
            raise RuntimeError("NaiveBaseline.predict was called before fit. Call fit(history, cutoff) first.")
        check_targets(targets)

        return join_cell_risk(targets, self.cell_rates)


class RandomBaseline(RiskBaseline):
    """Uniform random scores on [0, 1), the lower bound of any ranking.

    The generator is seeded with `seed` and the cutoff's hour, so a rerun of
    the same fit and predict gives the same scores, and each cutoff of a
    backtest gets different ones.
    """

    name = "random"
    risk_kind: RiskKind = "score"

    def __init__(self, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative whole number, got {seed!r}.")

        self.seed = seed
        self.cutoff: datetime | None = None

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "RandomBaseline":
        """Check the inputs and store the cutoff. The scores do not depend on the history."""
        check_history(history)
        self.cutoff = as_utc(cutoff, "cutoff")
        return self

    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        """Return `targets` in input order with a uniform random `risk` per row."""
        if self.cutoff is None:
            raise RuntimeError("RandomBaseline.predict was called before fit. Call fit(history, cutoff) first.")
        check_targets(targets)

        cutoff_hour = int(self.cutoff.timestamp()) // SECONDS_PER_HOUR
        generator = np.random.default_rng([self.seed, cutoff_hour])
        return targets.with_columns(risk=pl.Series(generator.random(targets.height), dtype=pl.Float64))


class OracleBaseline(RiskBaseline):
    """Perfect knowledge: the risk of a target cell-hour is its observed count.

    Unlike every other baseline, `fit` keeps the rows at and after the cutoff,
    because the history passed to the oracle must include the target hours.
    The scores are the upper bound for hit rate and PAI: ranking by the true
    counts flags the cells with crimes first. A target cell-hour absent from
    the history gets 0.0, so the oracle accepts a sparse history of crime rows.
    """

    name = "oracle"
    risk_kind: RiskKind = "score"

    def __init__(self) -> None:
        self.cutoff: datetime | None = None
        self.counts: pl.DataFrame | None = None

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "OracleBaseline":
        """Store the counts of every cell-hour in `history`, including those after `cutoff`."""
        check_history(history)
        self.cutoff = as_utc(cutoff, "cutoff")

        self.counts = history.group_by("cell_id", "hour").agg(risk=pl.col("crime_count").sum().cast(pl.Float64))
        n_after = int(history.filter(pl.col("hour") >= self.cutoff)["crime_count"].sum())
        if n_after == 0:
            logger.warning(
                "Oracle history has no crimes at or after the cutoff %s, so every target risk will be 0.0. "
                "Pass history that includes the target hours.",
                self.cutoff.isoformat(),
            )
        return self

    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        """Return `targets` in input order with `risk`, the observed count of the cell-hour."""
        if self.counts is None:
            raise RuntimeError("OracleBaseline.predict was called before fit. Call fit(history, cutoff) first.")
        check_targets(targets)

        joined = targets.join(self.counts, on=["cell_id", "hour"], how="left", maintain_order="left")
        return joined.with_columns(pl.col("risk").fill_null(0.0))


BASELINE_NAMES: tuple[str, ...] = (
    "compstat",
    "compstat_day",
    "naive",
    "retrospective_hotspot",
    "prospective_hotspot",
    "sepp",
    "random",
    "oracle",
)


def make_baseline(
    name: str,
    cells: pl.DataFrame | None = None,
    time_zone: str = "America/Chicago",
    seed: int = 0,
    **params: Any,
) -> RiskBaseline:
    """Build the baseline called `name` (one of BASELINE_NAMES) with its keyword `params`.

    `cells` (cell_id, x_m, y_m and area_km2, as built by `ml.hotspots.cells_from_lonlat`)
    is required by the two hotspot baselines, `time_zone` is used by CompStat
    and `seed` by the random baseline. The others ignore them. An unknown name
    or a parameter the baseline does not take raises ValueError.
    """
    # Imported here because ml.hotspots and ml.sepp import the input checks of this module.
    from ml.hotspots import ProspectiveHotspot, RetrospectiveHotspot
    from ml.sepp import SeppBaseline

    if name not in BASELINE_NAMES:
        raise ValueError(f"Unknown baseline {name!r}. Choose one of {list(BASELINE_NAMES)}.")

    if name in ("compstat", "compstat_day"):
        check_parameters(name, CompstatBaseline, params, fixed=("time_zone", "period"))
        period = "hour_of_week" if name == "compstat" else "day_of_week"
        return CompstatBaseline(time_zone=time_zone, period=period, **params)

    if name in ("retrospective_hotspot", "prospective_hotspot"):
        if cells is None:
            raise ValueError(f"Baseline {name!r} needs cells (cell_id, x_m, y_m, area_km2). Pass cells=.")
        hotspot_class = RetrospectiveHotspot if name == "retrospective_hotspot" else ProspectiveHotspot
        check_parameters(name, hotspot_class, params, fixed=("cells",))
        return hotspot_class(cells, **params)

    if name == "random":
        check_parameters(name, RandomBaseline, params, fixed=("seed",))
        return RandomBaseline(seed=seed)

    baseline_class = {"naive": NaiveBaseline, "sepp": SeppBaseline, "oracle": OracleBaseline}[name]
    check_parameters(name, baseline_class, params, fixed=())
    return baseline_class(**params)


def check_parameters(name: str, baseline_class: type, params: dict[str, Any], fixed: tuple[str, ...]) -> None:
    """Raise ValueError when `params` has a name the constructor lacks or that make_baseline sets itself."""
    accepted = [parameter for parameter in inspect.signature(baseline_class.__init__).parameters if parameter != "self"]
    settable = [parameter for parameter in accepted if parameter not in fixed]
    unknown = sorted(set(params) - set(settable))
    if unknown:
        raise ValueError(f"Baseline {name!r} does not take parameters {unknown}. It takes {settable}.")


def join_cell_risk(targets: pl.DataFrame, cell_risk: pl.DataFrame) -> pl.DataFrame:
    """Return `targets` in input order with the `risk` of its cell from `cell_risk`, 0.0 for unknown cells."""
    joined = targets.join(cell_risk, on="cell_id", how="left", maintain_order="left")

    n_missing = joined["risk"].null_count()
    if n_missing:
        logger.info("%d of %d target rows are in cells without history, so their risk is 0.0.", n_missing, joined.height)
    return joined.with_columns(pl.col("risk").fill_null(0.0))


def local_hour_of_week(hours: pl.Series, time_zone: str) -> pl.Series:
    """Return the hour of the week in `time_zone` local time, 0 for Monday 00:00 up to 167.

    Each UTC hour start maps to the local hour that contains it. In the autumn
    DST change both UTC hours of the repeated local hour get the same hour of
    week, and no UTC hour maps to the local hour skipped in spring.
    """
    epoch_hours = hours.dt.epoch("s") // SECONDS_PER_HOUR
    first_hour = epoch_hours.min()
    n_span_hours = 0 if first_hour is None else epoch_hours.max() - first_hour + 1

    # Local weekday and hour each took about 0.1 s per million rows (2-core
    # machine), so long inputs compute them once per hour of the span and gather.
    if n_span_hours == 0 or n_span_hours >= hours.len():
        return hour_of_week_from_clock(hours, time_zone)

    span = pl.datetime_range(
        hours.min(),
        hours.min() + timedelta(hours=n_span_hours - 1),
        interval="1h",
        eager=True,
        time_unit=hours.dtype.time_unit,
        time_zone="UTC",
    )
    return hour_of_week_from_clock(span, time_zone).gather(epoch_hours - first_hour)


def hour_of_week_from_clock(hours: pl.Series, time_zone: str) -> pl.Series:
    """Return the local hour of week of each UTC hour from its local weekday and hour."""
    local = hours.dt.convert_time_zone(time_zone)
    weekday_from_monday = local.dt.weekday().cast(pl.Int16) - 1
    hour_of_week = weekday_from_monday * 24 + local.dt.hour().cast(pl.Int16)
    return hour_of_week.alias("hour_of_week")


def check_hour_starts(hours: pl.Series, frame_name: str) -> None:
    """Raise ValueError unless every value is the start of a UTC hour."""
    misaligned = hours.filter(hours.dt.epoch("us") % (SECONDS_PER_HOUR * 1_000_000) != 0)
    if misaligned.len():
        raise ValueError(
            f"{frame_name}.hour must contain hour starts, found {misaligned[0]}. Truncate with .dt.truncate('1h')."
        )


def check_columns(frame: pl.DataFrame, expected: dict[str, type[pl.DataType] | None], frame_name: str) -> None:
    """Raise ValueError when a column is missing or has the wrong dtype class (None accepts any dtype)."""
    missing = [name for name in expected if name not in frame.columns]
    if missing:
        raise ValueError(f"{frame_name} is missing columns {missing}. It has {frame.columns}.")

    for name, dtype_class in expected.items():
        actual = frame.schema[name]
        if dtype_class is not None and not isinstance(actual, dtype_class):
            raise ValueError(f"{frame_name}.{name} must be {dtype_class.__name__}, got {actual}.")


def check_utc_hours(frame: pl.DataFrame, frame_name: str) -> None:
    """Raise ValueError unless `hour` is a UTC Datetime of hour starts without nulls."""
    dtype = frame.schema["hour"]
    if dtype.time_zone != "UTC":
        raise ValueError(
            f"{frame_name}.hour must be a Datetime with time_zone='UTC', got {dtype}. "
            "Convert it with .dt.replace_time_zone('UTC') or .dt.convert_time_zone('UTC')."
        )

    n_null = frame["hour"].null_count()
    if n_null:
        raise ValueError(f"{frame_name}.hour has {n_null} null values. Drop or fill them first.")

    check_hour_starts(frame["hour"], frame_name)


def window_events(history: pl.DataFrame, window_start: datetime, cutoff: datetime) -> pl.DataFrame:
    """Return the cell-hours with crimes in [window_start, cutoff) as cell_id, hour and crime_count, sorted.

    Works on a complete spine or on a sparse history of crime rows alone.
    Duplicate rows of a cell-hour are summed. Raises ValueError when the
    window has no crimes, because no event-based forecast can be fitted then.
    """
    events = (
        history.filter((pl.col("hour") >= window_start) & (pl.col("hour") < cutoff) & (pl.col("crime_count") > 0))
        .group_by("cell_id", "hour")
        .agg(pl.col("crime_count").sum().cast(pl.Int64))
        .sort("cell_id", "hour")
    )
    if events.height == 0:
        raise ValueError(
            f"history has no crimes (crime_count > 0) between {window_start.isoformat()} and the cutoff "
            f"{cutoff.isoformat()}. Pass history with crimes before the cutoff, or lengthen the window."
        )
    return events


def check_time_zone(time_zone: str) -> None:
    """Raise ValueError unless `time_zone` is an IANA time zone name."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"time_zone {time_zone!r} is not a known IANA time zone name, such as 'America/Chicago'."
        ) from error


def check_history(history: pl.DataFrame) -> None:
    """Raise ValueError unless `history` has cell_id (String), UTC hour starts and non-negative integer counts."""
    check_columns(history, {"cell_id": pl.String, "hour": pl.Datetime, "crime_count": None}, "history")
    check_utc_hours(history, "history")
    check_crime_counts(history)


def check_targets(targets: pl.DataFrame, extra_columns: tuple[str, ...] = ()) -> None:
    """Raise ValueError unless `targets` has cell_id and UTC hour starts, and no column that predict adds."""
    check_columns(targets, {"cell_id": pl.String, "hour": pl.Datetime}, "targets")
    check_utc_hours(targets, "targets")

    clashing = [name for name in ("risk", *extra_columns) if name in targets.columns]
    if clashing:
        raise ValueError(f"targets already has columns {clashing}, which predict adds. Drop them first.")


def check_crime_counts(history: pl.DataFrame) -> None:
    """Raise ValueError unless `cell_id` has no nulls and `crime_count` contains non-negative integers without nulls."""
    dtype = history.schema["crime_count"]
    if not dtype.is_integer():
        raise ValueError(f"history.crime_count must be an integer column, got {dtype}.")

    for name in ("cell_id", "crime_count"):
        n_null = history[name].null_count()
        if n_null:
            raise ValueError(f"history.{name} has {n_null} null values, but a complete spine has a value in every row.")

    lowest = history["crime_count"].min()
    if lowest is not None and lowest < 0:
        raise ValueError(f"history.crime_count must be >= 0, found {lowest}.")


def as_utc(moment: datetime, name: str) -> datetime:
    """Convert a timezone-aware datetime to UTC, raising ValueError for a naive one."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}. Add tzinfo=timezone.utc.")
    return moment.astimezone(timezone.utc)


def subtract_years(moment: datetime, years: int) -> datetime:
    """Move `moment` back by whole calendar years on its own clock, mapping 29 February to 28 February."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)
