"""Baseline risk forecasts that the ensemble is evaluated against.

CompStat is the NYPD's management and crime-statistics process, described by
Bratton & Malinowski (2008), "Police performance management in practice:
taking COMPSTAT to the next level", Policing 2(3), DOI 10.1093/police/pan036.
As a forecasting baseline it becomes a historical average per place and time
period. `CompstatBaseline` predicts, for each cell and hour, the mean count of
that cell in the same local hour of the week over the preceding years.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

logger = logging.getLogger(__name__)

SECONDS_PER_HOUR = 3600


class RiskBaseline(ABC):
    """A forecast fitted on cell-hour history that scores target cell-hours.

    `history` has columns `cell_id` (str), `hour` (Datetime in UTC, the start
    of the hour) and `crime_count` (int). `targets` has `cell_id` and `hour`.
    `predict` returns the target rows in their input order with a float64
    `risk` column added.
    """

    name: str

    @abstractmethod
    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "RiskBaseline":
        """Fit on the rows of `history` with hour < `cutoff` and return self."""

    @abstractmethod
    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        """Return `targets` with a float64 `risk` column, rows in input order."""


class CompstatBaseline(RiskBaseline):
    """Mean count per cell and local hour of week over the `years` years before the cutoff.

    The mean divides a cell's summed counts by the number of history rows that
    cell has in that hour of the week, so a cell-hour missing from the history
    is not counted as a zero. When the history covers less than `years` years
    before the cutoff, the fit uses what there is, and `history_start`,
    `history_end`, `history_weeks` and `description` record the span used.
    """

    name = "compstat"

    def __init__(self, years: int = 3, time_zone: str = "America/Chicago") -> None:
        if isinstance(years, bool) or not isinstance(years, int) or years < 1:
            raise ValueError(f"years must be a positive whole number, got {years!r}.")

        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"time_zone {time_zone!r} is not a known IANA time zone name, such as 'America/Chicago'."
            ) from error

        self.years = years
        self.time_zone = time_zone

        self.cutoff: datetime | None = None
        self.history_start: datetime | None = None
        self.history_end: datetime | None = None
        self.history_weeks: float | None = None
        self.description: str | None = None
        self.hour_of_week_means: pl.DataFrame | None = None

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "CompstatBaseline":
        """Average each cell's counts per local hour of week over the window before `cutoff`."""
        check_columns(history, {"cell_id": pl.String, "hour": pl.Datetime, "crime_count": None}, "history")
        check_utc_hours(history, "history")
        check_crime_counts(history)

        cutoff_utc = as_utc(cutoff, "cutoff")
        local_cutoff = cutoff_utc.astimezone(ZoneInfo(self.time_zone))
        window_start = subtract_years(local_cutoff, self.years).astimezone(timezone.utc)
        window = history.filter((pl.col("hour") >= window_start) & (pl.col("hour") < cutoff_utc))
        if window.height == 0:
            raise ValueError(
                f"history has no rows between {window_start.isoformat()} and the cutoff {cutoff_utc.isoformat()}. "
                "Pass history with hours before the cutoff."
            )

        self.hour_of_week_means = (
            window.with_columns(local_hour_of_week(window["hour"], self.time_zone))
            .group_by("cell_id", "hour_of_week")
            .agg(crime_sum=pl.col("crime_count").sum(), n_hours=pl.len())
            .select("cell_id", "hour_of_week", risk=pl.col("crime_sum").cast(pl.Float64) / pl.col("n_hours"))
            .sort("cell_id", "hour_of_week")
        )

        self.record_span(window, window_start, cutoff_utc)
        return self

    def record_span(self, window: pl.DataFrame, window_start: datetime, cutoff_utc: datetime) -> None:
        """Store the first and end hour used, its length in weeks and a one-sentence description.

        `history_end` is the end of the last hour used, which is the cutoff
        when the history reaches it.
        """
        first_hour = window["hour"].min()
        last_hour = window["hour"].max()

        self.cutoff = cutoff_utc
        self.history_start = first_hour
        self.history_end = last_hour + timedelta(hours=1)
        self.history_weeks = (self.history_end - self.history_start) / timedelta(weeks=1)

        # The span is printed in UTC, the time basis of Riskcast's windows and partitions.
        start_text = self.history_start.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
        end_text = self.history_end.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
        self.description = (
            f"mean count per cell and local hour of week ({self.time_zone}) "
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
        """Return `targets` in input order with `risk`, the fitted mean for its cell and local hour of week.

        Risk is 0.0 for a cell, or a cell and hour of week, absent from the history.
        """
        if self.hour_of_week_means is None:
            raise RuntimeError("CompstatBaseline.predict was called before fit. Call fit(history, cutoff) first.")
        check_columns(targets, {"cell_id": pl.String, "hour": pl.Datetime}, "targets")
        check_utc_hours(targets, "targets")
        clashing = [name for name in ("risk", "hour_of_week") if name in targets.columns]
        if clashing:
            raise ValueError(f"targets already has columns {clashing}, which predict adds. Drop them first.")

        keyed = targets.with_columns(local_hour_of_week(targets["hour"], self.time_zone))
        joined = keyed.join(
            self.hour_of_week_means,
            on=["cell_id", "hour_of_week"],
            how="left",
            maintain_order="left",
        )

        n_missing = joined["risk"].null_count()
        if n_missing:
            logger.info("CompStat has no history for %d of %d target rows, so their risk is 0.0.", n_missing, joined.height)
        return joined.with_columns(pl.col("risk").fill_null(0.0)).drop("hour_of_week")


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
