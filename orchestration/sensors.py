"""A sensor that starts the warehouse job when files appear or change in the extracts folder.

The sensor lists the files that the jurisdiction's patterns match and keeps a fingerprint of
each (size and modification time, in nanoseconds) in its cursor. When the set of fingerprints
changes, it requests one run of the warehouse job, keyed by a digest of the new set, so the same
folder state never starts two runs. The raw assets replace or merge their tables idempotently, so
a run for a file that was touched but not changed leaves the warehouse as it was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg

from orchestration.jurisdiction import JurisdictionConfig

DEFAULT_INTERVAL_SECONDS = 60


def extract_patterns(jurisdiction: JurisdictionConfig) -> list[str]:
    """The glob patterns, relative to the extracts folder, of every file the jurisdiction reads."""
    patterns = [jurisdiction.crimes.files, jurisdiction.cells.file]
    if jurisdiction.weather is not None:
        patterns.append(jurisdiction.weather.files)
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
    """Files added, changed or removed between two fingerprint maps, sorted."""
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
