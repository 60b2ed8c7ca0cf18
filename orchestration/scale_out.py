"""Partition ranges in parallel on Dagster's multiprocess executor.

A run of ``features_job`` or ``score_job`` over a range of hourly partitions is one step, so it uses
one core however many the machine has. The two backfill jobs here split a range into pieces and
run each piece as its own step, which Dagster's multiprocess executor places in its own process:

- ``features_backfill_job``: ``plan_feature_pieces`` splits ``[start, end]`` at UTC midnights (the
  feature store keeps one Parquet file per UTC day, so no two pieces write the same file), then
  ``build_feature_piece`` builds each piece with ``build_feature_window``, and
  ``summarize_feature_pieces`` totals them.
- ``scores_backfill_job``: ``plan_score_pieces`` splits the issue hours into equal pieces, then
  ``score_feature_piece`` scores each piece into staged Parquet files
  (``score_to_staging`` only reads the warehouse), and ``publish_score_pieces`` commits them all in
  one DuckDB transaction. DuckDB allows one writing process per file, so the writes stay serial
  while the model inference, which is most of the time, runs in parallel.

Each piece records an ``AssetMaterialization`` of ``cell_hour_features`` or ``risk_scores`` for every
hourly partition it covers, so the UI's partition view and sensors see a backfill done this way
exactly like one done by ``features_job`` or ``score_job``. The outputs are the same files and rows as
a single-process run of the same range; ``tests/unit/test_scale_out.py`` compares them value by value.

This is the single-machine form of the fan-out that the dagster-k8s and dagster-celery executors run
across machines (``docs/scaling.md``).
"""

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from orchestration.assets.features import FeatureSummary, build_feature_window
from orchestration.assets.scoring import ScoreSummary, publish_scores, score_to_staging
from orchestration.executors import build_executor
from orchestration.operations_config import ExecutorSettings
from orchestration.partitions import check_window, hourly_partitions, partition_key
from orchestration.resources import RiskcastResource

FEATURES_BACKFILL_JOB = "features_backfill_job"
SCORES_BACKFILL_JOB = "scores_backfill_job"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
KEY_FORMAT = "%Y-%m-%d-%H:%M"


class RangeConfig(dg.Config):
    """The hourly partitions to build, as in Dagster's range tags, and how many pieces to split them into."""

    first_partition: str
    last_partition: str
    pieces: int = 2


def parse_key(key: str) -> datetime:
    """Read an hourly partition key such as ``2017-07-01-05:00`` as a UTC time."""
    try:
        return datetime.strptime(key, KEY_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError as error:
        raise ValueError(f"partition key {key!r} is not an hourly key; write it as YYYY-MM-DD-HH:00, "
                         f"for example 2017-07-01-05:00") from error


def split_at_midnights(start: datetime, end: datetime, pieces: int) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into at most ``pieces`` windows whose inner bounds are UTC midnights.

    The bounds are the midnights nearest to equal shares of the hours. A window shorter than a
    day is never split, and two bounds that round to the same midnight become one.
    """
    if pieces < 1:
        raise ValueError(f"pieces is {pieces}; give 1 or more")
    bounds = [start]
    step = (end - start) / pieces
    for index in range(1, pieces):
        target = start + step * index
        midnight = target.replace(hour=0, minute=0, second=0, microsecond=0)
        if target - midnight >= DAY / 2:
            midnight += DAY
        if bounds[-1] < midnight < end:
            bounds.append(midnight)
    bounds.append(end)
    return list(zip(bounds[:-1], bounds[1:]))


def split_by_hours(start: datetime, end: datetime, pieces: int) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into at most ``pieces`` windows of whole hours, as equal as they can be.

    Scoring pieces write their own staged files, so unlike feature pieces they need no day bounds.
    """
    if pieces < 1:
        raise ValueError(f"pieces is {pieces}; give 1 or more")
    hours = int((end - start) / HOUR)
    count = min(pieces, hours)
    bounds = [start + HOUR * (hours * index // count) for index in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def hour_keys(start: datetime, end: datetime) -> list[str]:
    keys = []
    cursor = start
    while cursor < end:
        keys.append(partition_key(cursor))
        cursor += HOUR
    return keys


def plan(context: dg.OpExecutionContext, config: RangeConfig, riskcast: RiskcastResource, splitter):
    """Validate the range against the jurisdiction's partitions and yield one dynamic output per piece."""
    start = parse_key(config.first_partition)
    end = parse_key(config.last_partition) + HOUR
    check_window(start, end, config.first_partition, config.last_partition,
                 hourly_partitions(riskcast.jurisdiction()))
    pieces = splitter(start, end, config.pieces)
    context.log.info(f"partitions {config.first_partition} to {config.last_partition}: {len(pieces)} pieces "
                     f"of {', '.join(str(int((piece_end - piece_start) / HOUR)) for piece_start, piece_end in pieces)}"
                     f" hours")
    threads = max(1, (os.cpu_count() or 1) // len(pieces))
    for piece_start, piece_end in pieces:
        yield dg.DynamicOutput((piece_start.isoformat(), piece_end.isoformat(), threads),
                               mapping_key=piece_start.strftime("h%Y%m%d%H"))


@dg.op(out=dg.DynamicOut(tuple), description="Split the partition range into day-aligned pieces.")
def plan_feature_pieces(context: dg.OpExecutionContext, config: RangeConfig, riskcast: RiskcastResource):
    yield from plan(context, config, riskcast, split_at_midnights)


@dg.op(out=dg.DynamicOut(tuple), description="Split the issue hours into pieces of equal length.")
def plan_score_pieces(context: dg.OpExecutionContext, config: RangeConfig, riskcast: RiskcastResource):
    yield from plan(context, config, riskcast, split_by_hours)


def piece_window(piece: tuple[str, str]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(piece[0]), datetime.fromisoformat(piece[1])


def record_partitions(context: dg.OpExecutionContext, asset: str, start: datetime, end: datetime,
                      metadata: dict[str, dg.MetadataValue]) -> None:
    """Record a materialization of ``asset`` for each hourly partition of ``[start, end)``."""
    for key in hour_keys(start, end):
        context.log_event(dg.AssetMaterialization(asset_key=asset, partition=key, metadata=metadata))


@dg.op(description="Build and write the hourly features of one piece (read-only warehouse, one file per day).")
def build_feature_piece(context: dg.OpExecutionContext, riskcast: RiskcastResource,
                        piece: tuple) -> FeatureSummary:
    start, end = piece_window(piece)
    settings = riskcast.settings()

    summary = build_feature_window(settings, riskcast.jurisdiction(), start, end, context.log)

    record_partitions(context, "cell_hour_features", start, end, {
        "piece_start": dg.MetadataValue.text(start.isoformat()),
        "piece_rows": dg.MetadataValue.int(summary.rows),
        "run_step": dg.MetadataValue.text(context.get_step_execution_context().step.key),
    })
    context.log.info(f"piece {partition_key(start)} to {partition_key(end - HOUR)} (pid {os.getpid()}): "
                     f"{summary.rows} feature rows written")
    return summary


@dg.op(description="Total the feature rows of every piece.")
def summarize_feature_pieces(context: dg.OpExecutionContext, summaries: list[FeatureSummary]) -> dict[str, int]:
    total = FeatureSummary()
    for summary in summaries:
        total.add(summary)
    context.log.info(f"{len(summaries)} pieces: {total.rows} feature rows for {total.cells} cells")
    return {"pieces": len(summaries), "rows": total.rows}


@dg.op(description="Score the 72-hour forecasts of one piece's issue hours into staged Parquet files.")
def score_feature_piece(context: dg.OpExecutionContext, riskcast: RiskcastResource,
                        piece: tuple) -> ScoreSummary:
    start, end = piece_window(piece)
    settings = riskcast.settings()
    staging = settings.staging_dir / f"scores_{context.run_id}" / start.strftime("%Y%m%d%H")

    summary = score_to_staging(settings, riskcast.run_config(), riskcast.jurisdiction(), start, end, staging,
                               context.log, threads=piece[2])

    context.log.info(f"piece {partition_key(start)} to {partition_key(end - HOUR)} (pid {os.getpid()}): "
                     f"{summary.rows} scores staged in {len(summary.files)} files")
    return summary


@dg.op(description="Commit every piece's staged scores to main.risk_scores in one transaction.")
def publish_score_pieces(context: dg.OpExecutionContext, config: RangeConfig, riskcast: RiskcastResource,
                         summaries: list[ScoreSummary]) -> dict[str, int]:
    start = parse_key(config.first_partition)
    end = parse_key(config.last_partition) + HOUR
    settings = riskcast.settings()
    total = ScoreSummary(targets=summaries[0].targets if summaries else [], spans=[], files=[])
    for summary in summaries:
        total.add(summary)
        total.spans += summary.spans

    published = publish_scores(settings.warehouse_path, total.files, [(start, end)], total.targets)
    shutil.rmtree(settings.staging_dir / f"scores_{context.run_id}", ignore_errors=True)

    record_partitions(context, "risk_scores", start, end, {
        "published_rows": dg.MetadataValue.int(published),
        "range_start": dg.MetadataValue.text(start.isoformat()),
        "range_end": dg.MetadataValue.text(end.isoformat()),
    })
    context.log.info(f"partitions {config.first_partition} to {config.last_partition}: published {published} "
                     f"risk scores from {len(summaries)} pieces for targets {total.targets}")
    return {"pieces": len(summaries), "rows": published}


def backfill_executor(settings: ExecutorSettings | None) -> dg.ExecutorDefinition:
    """Return the fan-out jobs' executor: Kubernetes when the run file sets ``k8s``, else multiprocess.

    The multiprocess executor is left unconfigured, so each run sets ``max_concurrent`` (the CLI's
    ``--workers``, or the launchpad's ``execution`` config). Unlike other jobs, whose steps share the
    warehouse file, these pieces only read it, so they may run side by side.
    """
    if settings is not None and settings.kind == "k8s":
        return build_executor(settings)
    return dg.multiprocess_executor


def build_backfill_jobs(tags: dict[str, str], settings: ExecutorSettings | None = None) -> list[dg.JobDefinition]:
    """Build the two fan-out jobs on the executor that ``backfill_executor`` returns."""
    executor = backfill_executor(settings)

    @dg.job(name=FEATURES_BACKFILL_JOB, executor_def=executor, tags=tags,
            description="Build hourly features for a partition range, split into day-aligned pieces that run "
                        "in parallel processes.")
    def features_backfill_job():
        summarize_feature_pieces(plan_feature_pieces().map(build_feature_piece).collect())

    @dg.job(name=SCORES_BACKFILL_JOB, executor_def=executor, tags=tags,
            description="Score a range of issue hours in parallel processes, then publish every piece's scores "
                        "in one warehouse transaction.")
    def scores_backfill_job():
        publish_score_pieces(plan_score_pieces().map(score_feature_piece).collect())

    return [features_backfill_job, scores_backfill_job]


def backfill_run_config(first_partition: str, last_partition: str, workers: int, job_name: str) -> dict:
    """Run config for one of the backfill jobs: the range, ``workers`` pieces and processes."""
    plan_op = "plan_feature_pieces" if job_name == FEATURES_BACKFILL_JOB else "plan_score_pieces"
    range_config = {"first_partition": first_partition, "last_partition": last_partition, "pieces": workers}
    # A spawned process imports Dagster, polars and torch again for each step. A forkserver that
    # has already imported the step code forks each step from that state instead.
    start_method = {"forkserver": {"preload_modules": ["orchestration.scale_out"]}}
    run_config: dict = {"ops": {plan_op: {"config": range_config}},
                        "execution": {"config": {"max_concurrent": workers, "start_method": start_method}},
                        # Dagster's console logger prints every event at DEBUG: one line per partition here.
                        "loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if job_name == SCORES_BACKFILL_JOB:
        run_config["ops"]["publish_score_pieces"] = {"config": range_config}
    return run_config


def standalone_definitions(run_config_path: Path, home: Path) -> dg.Definitions:
    """Return definitions of just the backfill jobs and their resource, cheap to load in each step's process.

    These are the jobs of ``riskcast backfill --workers``, which run on this machine, so they use the
    multiprocess executor whatever the run file's ``executor`` block sets.
    """
    from orchestration.jurisdiction import load_jurisdiction, load_run_config
    from orchestration.schedules import WAREHOUSE_TAG

    jurisdiction = load_jurisdiction(load_run_config(run_config_path).jurisdiction)
    return dg.Definitions(
        jobs=build_backfill_jobs({WAREHOUSE_TAG: jurisdiction.name}),
        resources={"riskcast": RiskcastResource(run_config_path=str(run_config_path.resolve()), home=str(home))},
    )


def backfill_job(job_name: str, run_config_path: str, home: str) -> dg.JobDefinition:
    """Return one fan-out job for a run file and home; each step's process calls this to rebuild the job."""
    return standalone_definitions(Path(run_config_path), Path(home)).resolve_job_def(job_name)


def run_parallel_backfill(job_name: str, run_config_path: Path, home: Path, first_partition: str,
                          last_partition: str, workers: int, instance: dg.DagsterInstance) -> dg.JobExecutionResult:
    """Execute one backfill job of the run file in ``workers`` processes.

    The multiprocess executor starts a process for each step, which rebuilds the job from
    ``backfill_job`` with the run file and home passed here (not from environment variables,
    which a forkserver started earlier would not see). The instance must be persistent, not
    ``DagsterInstance.ephemeral()``.
    """
    job = dg.build_reconstructable_job("orchestration.scale_out", "backfill_job",
                                       reconstructable_args=(job_name, str(run_config_path.resolve()),
                                                             str(home.resolve())))
    return dg.execute_job(job, instance=instance,
                          run_config=backfill_run_config(first_partition, last_partition, workers, job_name))
