"""Sensors: new extract files start the warehouse job, and revised records rebuild stale features.

The extract-files sensor lists the files that the jurisdiction's patterns match and keeps a fingerprint of
each (size and modification time, in nanoseconds) in its cursor. When the set of fingerprints
changes, it requests one run of the warehouse job, keyed by a digest of the new set, so the same
folder state never starts two runs. The raw assets replace or merge their tables idempotently, so
a run for a file that was touched but not changed leaves the warehouse as it was.

The stale-features sensor reads the hourly partitions that revised, new or removed records
touched (``raw.affected_partitions``, written by the raw crime ingest). A feature row for hour
``h`` contains the count of hour ``h`` and lags over the ``LOOKBACK_HOURS`` before it, so a change at
hour ``a`` makes the features of hours ``a`` to ``a + LOOKBACK_HOURS`` stale. The sensor requests
one features run per contiguous range of stale hours that were already materialized, once the
warehouse models have been rebuilt after the ingest.

The portal-freshness sensor reads the watermark of each portal source in ``raw.ingest_state``:
the newest revision time among the records ingested (UTC). When the newest record is older than
``freshness.max_age_hours``, no new record has arrived for that long. The sensor starts no runs.
It reports a source when it becomes stale and again when it is fresh, through the notification
resource and as an AssetObservation on the source's raw asset, and its skip message lists every age.

The run-failure sensor reports every failed run of the code location: its run id, job, partition
and failed steps with their errors, in the sensor log and through the notification resource.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from ml.features import HOUR, LOOKBACK_HOURS
from orchestration.jurisdiction import JurisdictionConfig
from orchestration.notifications import NotificationResource
from orchestration.operations_config import FreshnessSettings
from orchestration.partitions import RANGE_END_TAG, RANGE_START_TAG, partition_key
from orchestration.warehouse import connect

DEFAULT_INTERVAL_SECONDS = 60


def extract_patterns(jurisdiction: JurisdictionConfig) -> list[str]:
    """Return the glob patterns, relative to the extracts folder, of every file the jurisdiction reads."""
    patterns = [jurisdiction.crimes.files]
    if jurisdiction.weather is not None:
        patterns.extend(entry.pattern for entry in jurisdiction.weather.files)
    patterns.extend(dataset.files for dataset in jurisdiction.service_requests)
    patterns.extend(layer.file for layer in jurisdiction.boundaries.layers if layer.file is not None)
    if jurisdiction.demographics is not None:
        patterns.extend(table.file for table in jurisdiction.demographics.tables)
    return patterns


def folder_fingerprints(folder: Path, patterns: list[str]) -> dict[str, list[int]]:
    """Map each matching file's path (relative to ``folder``) to its size and modification time."""
    fingerprints: dict[str, list[int]] = {}
    for pattern in patterns:
        for path in sorted(folder.glob(pattern)):
            if path.is_file():
                status = path.stat()
                fingerprints[path.relative_to(folder).as_posix()] = [status.st_size, status.st_mtime_ns]
    return fingerprints


def changed_files(before: dict[str, list[int]], after: dict[str, list[int]]) -> list[str]:
    """Return the files added, changed or removed between two fingerprint maps, sorted."""
    names = set(before) | set(after)
    return sorted(name for name in names if before.get(name) != after.get(name))


def digest(fingerprints: dict[str, list[int]]) -> str:
    return hashlib.sha256(json.dumps(fingerprints, sort_keys=True).encode()).hexdigest()[:16]


def build_extracts_sensor(folder: Path, jurisdiction: JurisdictionConfig, job_name: str,
                          interval_seconds: int = DEFAULT_INTERVAL_SECONDS) -> dg.SensorDefinition:
    """Return a sensor that requests ``job_name`` when the extract files in ``folder`` change."""
    patterns = extract_patterns(jurisdiction)

    @dg.sensor(name=f"{jurisdiction.name}_extract_files", job_name=job_name,
               minimum_interval_seconds=interval_seconds, default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Runs {job_name} when files matching {patterns} are added, changed or "
                           f"removed in {folder}.")
    def extract_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        if not folder.is_dir():
            return dg.SkipReason(f"extracts folder {folder} does not exist; create it or fix extracts_folder "
                                 f"in the run file")
        current = folder_fingerprints(folder, patterns)
        previous = json.loads(context.cursor) if context.cursor else {}
        changed = changed_files(previous, current)
        if not changed:
            return dg.SkipReason(f"no change in the {len(current)} extract files in {folder}")

        context.log.info(f"{jurisdiction.name}: {len(changed)} extract files changed in {folder}: "
                         f"{', '.join(changed[:10])}")
        request = dg.RunRequest(run_key=digest(current), tags={
            "riskcast/trigger": "extract files changed",
            "riskcast/changed_files": ", ".join(changed)[:1000],
        })
        return dg.SensorResult(run_requests=[request], cursor=json.dumps(current, sort_keys=True))

    return extract_files_sensor


FEATURES_ASSET = dg.AssetKey("cell_hour_features")
# The features read this mart, so they are rebuilt only after it has been rebuilt from the ingest.
COUNTS_ASSET = dg.AssetKey("fct_cell_hour_crimes")


def parse_partition_key(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=timezone.utc)


def stale_hours(affected: list[str], lookback_hours: int = LOOKBACK_HOURS) -> set[datetime]:
    """Return the feature hours whose rows read an affected hour: ``a`` to ``a + lookback_hours`` for each."""
    hours: set[datetime] = set()
    for key in affected:
        start = parse_partition_key(key)
        hours.update(start + step * HOUR for step in range(lookback_hours + 1))
    return hours


def contiguous_ranges(hours: set[datetime]) -> list[tuple[datetime, datetime]]:
    """Group hours into ``(first, last)`` runs of consecutive hours, in time order."""
    ranges: list[tuple[datetime, datetime]] = []
    for hour in sorted(hours):
        if ranges and hour - ranges[-1][1] == HOUR:
            ranges[-1] = (ranges[-1][0], hour)
        else:
            ranges.append((hour, hour))
    return ranges


def read_affected(warehouse: Path, after: datetime | None, until: datetime) -> tuple[list[str], datetime | None]:
    """Return the affected partition keys recorded after ``after`` and up to ``until``, and the latest record time."""
    if not warehouse.is_file():
        return [], None
    with connect(warehouse, read_only=True) as connection:
        exists = connection.execute("SELECT count(*) FROM information_schema.tables "
                                    "WHERE table_schema = 'raw' AND table_name = 'affected_partitions'").fetchone()[0]
        if not exists:
            return [], None
        rows = connection.execute(
            "SELECT DISTINCT partition_key, ingested_at FROM raw.affected_partitions "
            "WHERE ingested_at > ? AND ingested_at <= ? ORDER BY ingested_at, partition_key",
            [(after or datetime(1970, 1, 1)).replace(tzinfo=None), until.replace(tzinfo=None)]).fetchall()
    if not rows:
        return [], None
    return sorted({row[0] for row in rows}), max(row[1] for row in rows)


def build_stale_features_sensor(warehouse: Path, jurisdiction: JurisdictionConfig, job_name: str,
                                interval_seconds: int = DEFAULT_INTERVAL_SECONDS) -> dg.SensorDefinition:
    """Return a sensor that rebuilds the materialized feature partitions that revised records made stale."""

    @dg.sensor(name=f"{jurisdiction.name}_stale_features", job_name=job_name,
               minimum_interval_seconds=interval_seconds, default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Runs {job_name} for feature hours that revised crime records made stale "
                           f"(each change reaches {LOOKBACK_HOURS} hours ahead through the lag features).")
    def stale_features_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        rebuilt = context.instance.get_latest_materialization_event(COUNTS_ASSET)
        if rebuilt is None:
            return dg.SkipReason(f"{COUNTS_ASSET.to_user_string()} has not been materialized yet")
        rebuilt_at = datetime.fromtimestamp(rebuilt.timestamp, tz=timezone.utc)
        after = datetime.fromisoformat(context.cursor) if context.cursor else None

        affected, latest = read_affected(warehouse, after, rebuilt_at)
        if latest is None:
            return dg.SkipReason("no revised records since the last check")
        materialized = context.instance.get_materialized_partitions(FEATURES_ASSET)
        stale = {hour for hour in stale_hours(affected) if partition_key(hour) in materialized}
        ranges = contiguous_ranges(stale)

        context.log.info(f"{jurisdiction.name}: {len(affected)} affected hours make {len(stale)} materialized "
                         f"feature hours stale, in {len(ranges)} ranges")
        requests = [dg.RunRequest(run_key=f"{latest.isoformat()}:{partition_key(first)}:{partition_key(last)}",
                                  tags={RANGE_START_TAG: partition_key(first), RANGE_END_TAG: partition_key(last),
                                        "riskcast/trigger": "revised crime records"})
                    for first, last in ranges]
        return dg.SensorResult(run_requests=requests, cursor=latest.isoformat())

    return stale_features_sensor


@dataclass(frozen=True)
class SourceAge:
    """The newest record of one ingest source: its watermark and how old it is at the check."""

    source: str
    watermark: str | None
    age: timedelta | None
    problem: str | None = None

    def describe(self) -> str:
        if self.problem is not None:
            return f"{self.source}: {self.problem}"
        return f"{self.source}: newest record at {self.watermark} is {format_age(self.age)} old"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_age(age: timedelta | None) -> str:
    """Format an age as hours with two decimals, such as ``8.25 hours``."""
    if age is None:
        return "unknown"
    return f"{age / timedelta(hours=1):.2f} hours"


def read_ingest_state(warehouse: Path) -> list[tuple[str, str | None]] | None:
    """Return ``(source, watermark)`` of every row of ``raw.ingest_state``, or None before the first ingest."""
    if not warehouse.is_file():
        return None
    with connect(warehouse, read_only=True) as connection:
        exists = connection.execute("SELECT count(*) FROM information_schema.tables "
                                    "WHERE table_schema = 'raw' AND table_name = 'ingest_state'").fetchone()[0]
        if not exists:
            return None
        return connection.execute("SELECT source, watermark FROM raw.ingest_state ORDER BY source").fetchall()


def source_age(source: str, watermark: str | None, now: datetime) -> SourceAge:
    """Return how old a source's watermark is at ``now``; a watermark without a UTC offset is read as UTC."""
    if watermark is None:
        return SourceAge(source, None, None, "no record has been ingested yet (the watermark is empty)")
    try:
        moment = datetime.fromisoformat(watermark)
    except ValueError:
        return SourceAge(source, watermark, None,
                         f"watermark {watermark!r} is not an ISO 8601 timestamp; delete its row from "
                         f"raw.ingest_state so that the next ingest writes it again")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return SourceAge(source, watermark, now - moment)


def is_stale(age: SourceAge, max_age: timedelta) -> bool:
    return age.age is None or age.age > max_age


def source_asset(source: str, jurisdiction: JurisdictionConfig) -> dg.AssetKey | None:
    """Return the raw asset that an ingest-state source key belongs to, or None for an unknown key."""
    crime_sources = {"extracts:crime_incidents"}
    if jurisdiction.crimes.api is not None:
        crime_sources.add(f"socrata:{jurisdiction.crimes.api.dataset_id}")
    request_sources = {f"socrata:{dataset.api.dataset_id}" for dataset in jurisdiction.service_requests
                       if dataset.api is not None}
    if source in crime_sources:
        return dg.AssetKey("raw_crime_incidents")
    if source in request_sources:
        return dg.AssetKey("raw_service_requests")
    if source.startswith("noaa-lcd:"):
        return dg.AssetKey("raw_weather_observations")
    return None


def freshness_observation(age: SourceAge, stale: bool, max_age: timedelta,
                          jurisdiction: JurisdictionConfig) -> dg.AssetObservation | None:
    asset = source_asset(age.source, jurisdiction)
    if asset is None:
        return None
    metadata: dict[str, dg.MetadataValue] = {
        "source": dg.MetadataValue.text(age.source),
        "watermark": dg.MetadataValue.text(age.watermark or "none"),
        "stale": dg.MetadataValue.bool(stale),
        "max_age_hours": dg.MetadataValue.float(max_age / timedelta(hours=1)),
    }
    if age.age is not None:
        metadata["age_hours"] = dg.MetadataValue.float(round(age.age / timedelta(hours=1), 4))
    return dg.AssetObservation(asset_key=asset, metadata=metadata, description=age.describe())


def build_freshness_sensor(warehouse: Path, jurisdiction: JurisdictionConfig, settings: FreshnessSettings,
                           clock: Callable[[], datetime] = utc_now) -> dg.SensorDefinition:
    """Return a sensor that reports portal sources whose newest record is older than ``max_age_hours``.

    ``clock`` returns the current UTC time; tests pass a fixed one. The cursor is the sorted list
    of sources reported stale, so each source is reported once when it becomes stale and once when
    it is fresh again.
    """
    max_age = timedelta(hours=settings.max_age_hours)
    prefixes = tuple(settings.source_prefixes)
    status = dg.DefaultSensorStatus.RUNNING if settings.enabled else dg.DefaultSensorStatus.STOPPED

    @dg.sensor(name=f"{jurisdiction.name}_portal_freshness", minimum_interval_seconds=settings.interval_minutes * 60,
               default_status=status,
               description=f"Reports the sources in raw.ingest_state matching {list(prefixes)} whose newest "
                           f"record is more than {settings.max_age_hours:g} hours old. Starts no runs.")
    def portal_freshness_sensor(context: dg.SensorEvaluationContext,
                                notifications: NotificationResource) -> dg.SensorResult | dg.SkipReason:
        state = read_ingest_state(warehouse)
        if state is None:
            return dg.SkipReason(f"{warehouse} has no raw.ingest_state table yet; run {jurisdiction.name}'s "
                                 f"warehouse job once to ingest the sources")
        checked = [(source, watermark) for source, watermark in state if source.startswith(prefixes)]
        if not checked:
            return dg.SkipReason(f"raw.ingest_state has no source matching {list(prefixes)} (sources: "
                                 f"{', '.join(source for source, _ in state) or 'none'}); fix "
                                 f"freshness.source_prefixes in the run file")

        now = clock()
        ages = [source_age(source, watermark, now) for source, watermark in checked]
        stale = {age.source for age in ages if is_stale(age, max_age)}
        reported = set(json.loads(context.cursor)) if context.cursor else set()
        newly_stale = [age for age in ages if age.source in stale - reported]
        fresh_again = [age for age in ages if age.source in reported - stale]

        summary = (f"{jurisdiction.name}: {len(stale)} of {len(ages)} portal sources have no record newer than "
                   f"{settings.max_age_hours:g} hours at {now.isoformat()}. "
                   + "; ".join(age.describe() for age in ages))
        if stale:
            context.log.warning(summary)
        else:
            context.log.info(summary)
        if newly_stale:
            notifications.notify(f"Riskcast {jurisdiction.name}: no new portal record for more than "
                                 f"{settings.max_age_hours:g} hours", [age.describe() for age in newly_stale])
        if fresh_again:
            notifications.notify(f"Riskcast {jurisdiction.name}: portal sources are fresh again",
                                 [age.describe() for age in fresh_again])

        observations = [freshness_observation(age, age.source in stale, max_age, jurisdiction)
                        for age in [*newly_stale, *fresh_again]]
        return dg.SensorResult(skip_reason=summary, cursor=json.dumps(sorted(stale)),
                               asset_events=[event for event in observations if event is not None])

    return portal_freshness_sensor


def root_error_message(error: object) -> str:
    """Return the message of the innermost error of a Dagster error chain: the user's exception."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = getattr(error, "message", None) or str(error)
    return message.strip()


def failed_steps(context: dg.RunFailureSensorContext) -> list[tuple[str, str]]:
    """Return ``(step key, error message)`` of each failed step of the run, in event order."""
    steps = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        steps.append((event.step_key or "unknown step", root_error_message(error) if error else event.message or ""))
    return steps


def failure_report(context: dg.RunFailureSensorContext) -> tuple[str, list[str]]:
    """Return the subject and detail lines that report one failed run."""
    run = context.dagster_run
    subject = f"Riskcast run {run.run_id} of {run.job_name} failed"
    lines = []
    partition = run.tags.get("dagster/partition") or run.tags.get(RANGE_START_TAG)
    if partition:
        end = run.tags.get(RANGE_END_TAG)
        lines.append(f"partition: {partition}" + (f" to {end}" if end and end != partition else ""))
    steps = failed_steps(context)
    lines.extend(f"step {step_key} failed: {message}" for step_key, message in steps)
    if not steps:
        lines.append(f"run failed before any step failed: {context.failure_event.message or 'no message'}")
    return subject, lines


def build_run_failure_sensor(jurisdiction: JurisdictionConfig) -> dg.SensorDefinition:
    """Return a sensor that logs every failed run of the code location and sends it as a notification.

    It starts no runs, so it defaults to RUNNING.
    """

    @dg.run_failure_sensor(name=f"{jurisdiction.name}_run_failures", default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Logs each failed run with its run id, job and failed steps, and sends "
                                       "the report through the notifications resource.")
    def run_failure_sensor(context: dg.RunFailureSensorContext, notifications: NotificationResource) -> None:
        subject, lines = failure_report(context)
        context.log.error("\n".join([subject, *lines]))
        notifications.notify(subject, lines)

    return run_failure_sensor
