"""Hourly UTC partitions, refresh partitions for training, and the time window a run covers.

Hourly partitions are keyed by UTC hour, so daylight-saving changes neither skip nor double a
partition. Assets read the run's whole time window (one hour, a chunk or a full range in a single
run), never a single partition key.

Refresh partitions (weekly by default, in UTC) key the training asset. The model of the refresh
partition that ends at ``E`` trains on the hourly feature partitions of the trailing window
``[E - W, E)``, where ``W`` is the run file's ``train.end - train.start``: a whole number of
periods. Dagster's ``TimeWindowPartitionMapping`` expresses that window. Its offsets count
partitions of the downstream asset, so ``start_offset = -(W / period - 1)`` widens a refresh
partition back over ``W``, and ``end_offset = 0`` stops the window at ``E``. For scoring, an
offset of minus one period in hours maps issue hour ``h`` to the refresh partition that contains
``h - period``. That partition ends at or before ``h``, and the next one ends after ``h``, so it is
the latest model that may score ``h``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from orchestration.jurisdiction import ConfigError, JurisdictionConfig, RunConfig, previous_boundary

# Run tags that make one run cover a range of partitions, as a single-run backfill does.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def hourly_partitions(jurisdiction: JurisdictionConfig) -> dg.HourlyPartitionsDefinition:
    return dg.HourlyPartitionsDefinition(start_date=jurisdiction.partitions_start.strftime("%Y-%m-%d-%H:%M"),
                                         timezone="UTC")


def refresh_key_format(run: RunConfig) -> str:
    return "%Y-%m-%d" if run.refresh.hour == 0 else "%Y-%m-%d-%H:%M"


def trailing_periods(run: RunConfig) -> int:
    """Return how many refresh periods the training window spans (the run file makes it whole)."""
    return int((run.train.end - run.train.start) / run.refresh.length)


def refresh_partitions(run: RunConfig, jurisdiction: JurisdictionConfig) -> dg.TimeWindowPartitionsDefinition:
    """Refresh partitions whose trailing training windows all start on or after the first hourly partition."""
    earliest_end = jurisdiction.partitions_start + (run.train.end - run.train.start)
    first_end = previous_boundary(earliest_end, run.refresh)
    if first_end < earliest_end:
        first_end += run.refresh.length
    first_start = (first_end - run.refresh.length).strftime("%Y-%m-%d-%H:%M")
    if run.refresh.period == "daily":
        return dg.DailyPartitionsDefinition(start_date=first_start, hour_offset=run.refresh.hour or 0,
                                            timezone="UTC", fmt=refresh_key_format(run))
    return dg.WeeklyPartitionsDefinition(
        start_date=first_start, day_offset=(WEEKDAYS_FROM_SUNDAY.index(run.refresh.weekday or "sunday")),
        hour_offset=run.refresh.hour or 0, timezone="UTC", fmt=refresh_key_format(run))


# Dagster numbers weekly partition days from Sunday (cron's day of week).
WEEKDAYS_FROM_SUNDAY = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def training_window_mapping(run: RunConfig) -> dg.TimeWindowPartitionMapping:
    """Map a refresh partition to the hourly feature partitions of its trailing training window."""
    return dg.TimeWindowPartitionMapping(start_offset=-(trailing_periods(run) - 1), end_offset=0)


def scoring_model_mapping(run: RunConfig) -> dg.TimeWindowPartitionMapping:
    """Map an hourly issue partition to the latest refresh partition that ends at or before it."""
    period_hours = int(run.refresh.length / timedelta(hours=1))
    return dg.TimeWindowPartitionMapping(start_offset=-period_hours, end_offset=-period_hours)


def training_partition_key(run: RunConfig, jurisdiction: JurisdictionConfig,
                           partitions_def: dg.TimeWindowPartitionsDefinition) -> str:
    """Return the key of the refresh partition that ends at the run's ``train.end``."""
    start = run.train.end - run.refresh.length
    first = partitions_def.get_first_partition_window()
    if first is None or start < first.start:
        raise ConfigError(
            f"the training window {run.train.start.isoformat()} to {run.train.end.isoformat()} starts "
            f"before the jurisdiction's first hourly partition ({jurisdiction.partitions_start.isoformat()}, "
            f"from data_start); move train.start to {jurisdiction.partitions_start.isoformat()} or later")
    return start.strftime(refresh_key_format(run))


class PartitionRangeError(ValueError):
    """Error for a partition range that is inverted or reaches past the last existing partition."""


def run_window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime]:
    """Return the UTC ``[start, end)`` window of the partitions this run materializes.

    Dagster 1.13 runs a range given by run tags even when its end comes before its start or lies
    past the last partition, and hands the asset an inverted or future window. Both raise here,
    before anything is read or written.
    """
    window = context.partition_time_window
    key_range = context.partition_key_range
    check_window(window.start, window.end, key_range.start, key_range.end, context.assets_def.partitions_def)
    return window.start, window.end


def check_window(start: datetime, end: datetime, start_key: str, end_key: str,
                 partitions_def: dg.PartitionsDefinition | None) -> None:
    """Raise ``PartitionRangeError`` naming the bad bound of an inverted or future range."""
    if end <= start:
        raise PartitionRangeError(
            f"partition range end {end_key} is before its start {start_key}; give the earlier key as "
            f"the start ({RANGE_START_TAG}) and the later one as the end ({RANGE_END_TAG})")
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return
    last = partitions_def.get_last_partition_window()
    if last is None or end > last.end:
        last_key = partitions_def.get_last_partition_key() if last is not None else "none"
        raise PartitionRangeError(
            f"partition range end {end_key} is past the last existing partition {last_key}; a "
            f"partition exists once its time window has ended, so end the range at {last_key} or earlier")


def partition_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H:%M")


def chunks(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into consecutive pieces of at most ``size``."""
    pieces = []
    cursor = start
    while cursor < end:
        pieces.append((cursor, min(cursor + size, end)))
        cursor += size
    return pieces
