"""Schedules: the hourly increment, the weekly model refresh and the nightly evaluation.

A Dagster schedule requests runs of one job, and it cannot wait for one run to end before it
requests the next. Riskcast's steps must run in order, and every run that writes the warehouse
opens the same DuckDB file, which accepts one writing process at a time. So each schedule requests
exactly one run, of a job whose asset selection is the whole chain of its tick. Inside that run
Dagster orders the steps by the asset graph, and a failed step or a failed blocking audit check
stops every step downstream of it:

- ``hourly_increment_job`` (hourly partitions): ingest of crimes, 311 requests and weather, the
  dbt models that the hour's features and scores read (unpartitioned, rebuilt in every run) and
  the blocking input audits, then the features of the partition's hour and the 72-hour scores
  issued at that hour (``orchestration.hourly`` lists what it leaves out). The tick at minute ``M`` of hour ``H`` requests
  partition ``H - 1``, the newest hour that has ended: a partition exists once its window has ended,
  and the scores of issue hour ``c`` read the feature row of ``c``.
- ``model_refresh_job`` (refresh partitions): trains the refresh partition that ended last, then
  applies the bias release gate and promotes the ensembles that pass. It ticks ``refresh_minute``
  minutes after the partition's end, later than the hourly tick of that hour, so the partition's
  last feature hour has been requested first.
- ``nightly_evaluation_job`` (unpartitioned): the whole warehouse (geography, every input audit
  and the Data Input Audit report), evaluation, backtest, bias audit, deployment and feedback
  simulations and their reports, then the release gate and promotion.

Each run key is the partition key (or the date of the nightly tick), so a tick evaluated twice
starts one run. Each partitioned run is one partition of a partitioned job, so a missed tick is a
missing partition: it shows in the job's Partitions tab and can be backfilled there or with
``dagster job backfill`` (``docs/operations.md``). Partitions are keyed by UTC hour and the
schedules tick in UTC, so a daylight-saving change neither skips nor repeats a tick.
"""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg

from orchestration.jurisdiction import JurisdictionConfig, RunConfig
from orchestration.partitions import WEEKDAYS_FROM_SUNDAY

TRIGGER_TAG = "riskcast/trigger"
# Every scheduled run carries this tag with the jurisdiction's name. A run queue limit of one run
# per value (docs/operations.md) keeps two runs from opening the same DuckDB file at once.
WAREHOUSE_TAG = "riskcast/warehouse"


def schedule_status(run: RunConfig) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if run.schedules.enabled else dg.DefaultScheduleStatus.STOPPED


def tick_time(context: dg.ScheduleEvaluationContext) -> datetime:
    """Return the tick's scheduled time in UTC; a schedule evaluated outside a tick uses the current time."""
    moment = context.scheduled_execution_time or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def ended_partition_key(partitions_def: dg.TimeWindowPartitionsDefinition, moment: datetime) -> str | None:
    """Return the key of the newest partition whose window ended at or before ``moment``, or None before the first."""
    with dg.partition_loading_context(effective_dt=moment):
        return partitions_def.get_last_partition_key()


def refresh_cron(run: RunConfig) -> str:
    """Return the cron expression (UTC) of the tick ``refresh_minute`` minutes after each refresh partition ends."""
    minute = run.schedules.refresh_minute
    hour = run.refresh.hour or 0
    if run.refresh.period == "daily":
        return f"{minute} {hour} * * *"
    weekday = WEEKDAYS_FROM_SUNDAY.index(run.refresh.weekday or "sunday")
    return f"{minute} {hour} * * {weekday}"


def build_partition_schedule(name: str, cron: str, job: dg.UnresolvedAssetJobDefinition,
                             partitions_def: dg.TimeWindowPartitionsDefinition, run: RunConfig,
                             jurisdiction: JurisdictionConfig, description: str) -> dg.ScheduleDefinition:
    """Return a schedule that requests, at each tick, the partition of ``job`` that ended last."""

    @dg.schedule(name=name, cron_schedule=cron, job=job, execution_timezone="UTC",
                 default_status=schedule_status(run), description=description)
    def partition_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        tick = tick_time(context)
        key = ended_partition_key(partitions_def, tick)
        if key is None:
            first = partitions_def.get_first_partition_window()
            first_end = first.end.isoformat() if first is not None else "unknown"
            return dg.SkipReason(f"no partition of {job.name} has ended by {tick.isoformat()}; the first one "
                                 f"ends at {first_end}")

        context.log.info(f"{jurisdiction.name}: tick {tick.isoformat()} requests {job.name} partition {key}")
        return dg.RunRequest(run_key=key, partition_key=key,
                             tags={TRIGGER_TAG: name, WAREHOUSE_TAG: jurisdiction.name})

    return partition_schedule


def build_nightly_schedule(name: str, job: dg.UnresolvedAssetJobDefinition, run: RunConfig,
                           jurisdiction: JurisdictionConfig) -> dg.ScheduleDefinition:
    """Return a schedule that requests one run of the unpartitioned ``job`` every night."""
    cron = f"{run.schedules.nightly_minute} {run.schedules.nightly_hour_utc} * * *"

    @dg.schedule(name=name, cron_schedule=cron, job=job, execution_timezone="UTC",
                 default_status=schedule_status(run),
                 description=f"Runs {job.name} (warehouse, input audit report, evaluation, bias report, release "
                             f"gate) every day at "
                             f"{run.schedules.nightly_hour_utc:02d}:{run.schedules.nightly_minute:02d} UTC.")
    def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tick = tick_time(context)
        night = tick.date().isoformat()
        context.log.info(f"{jurisdiction.name}: tick {tick.isoformat()} requests {job.name} for {night}")
        return dg.RunRequest(run_key=night, tags={TRIGGER_TAG: name, WAREHOUSE_TAG: jurisdiction.name})

    return nightly_schedule


def build_schedules(run: RunConfig, jurisdiction: JurisdictionConfig,
                    hourly_job: dg.UnresolvedAssetJobDefinition, hourly_partitions: dg.TimeWindowPartitionsDefinition,
                    refresh_job: dg.UnresolvedAssetJobDefinition, refresh_partitions: dg.TimeWindowPartitionsDefinition,
                    nightly_job: dg.UnresolvedAssetJobDefinition) -> list[dg.ScheduleDefinition]:
    """Return the hourly increment, model refresh and nightly evaluation schedules of one jurisdiction."""
    minute = run.schedules.hourly_minute
    hourly = build_partition_schedule(
        f"{jurisdiction.name}_hourly_increment", f"{minute} * * * *", hourly_job, hourly_partitions, run,
        jurisdiction,
        f"At minute {minute} of every hour (UTC), runs {hourly_job.name} for the hour that ended last: "
        f"ingest, the warehouse models the hour reads, blocking input audits, that hour's features and the "
        f"scores issued at it.")
    refresh = build_partition_schedule(
        f"{jurisdiction.name}_model_refresh", refresh_cron(run), refresh_job, refresh_partitions, run,
        jurisdiction,
        f"{run.schedules.refresh_minute} minutes after each {run.refresh.period} refresh partition ends, "
        f"runs {refresh_job.name}: trains that partition's ensembles, then applies the release gate.")
    nightly = build_nightly_schedule(f"{jurisdiction.name}_nightly_evaluation", nightly_job, run, jurisdiction)
    return [hourly, refresh, nightly]
