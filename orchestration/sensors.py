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
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from ml.features import HOUR, LOOKBACK_HOURS
from orchestration.jurisdiction import JurisdictionConfig
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
