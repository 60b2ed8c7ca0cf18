"""Hourly UTC partitions, and reading the time window a run covers.

Hourly partitions are keyed by UTC hour, so daylight-saving changes neither skip nor double a
partition. Assets read the run's whole time window (one hour, a chunk or a full range in a single
run), never a single partition key.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from orchestration.jurisdiction import JurisdictionConfig

# Run tags that make one run cover a range of partitions, as a single-run backfill does.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def hourly_partitions(jurisdiction: JurisdictionConfig) -> dg.HourlyPartitionsDefinition:
    return dg.HourlyPartitionsDefinition(start_date=jurisdiction.partitions_start.strftime("%Y-%m-%d-%H:%M"),
                                         timezone="UTC")


def run_window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime]:
    """Return the UTC ``[start, end)`` window of the partitions this run materializes."""
    window = context.partition_time_window
    return window.start, window.end


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
