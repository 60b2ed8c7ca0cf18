"""The dbt project as Dagster assets: manifest preparation, asset keys and the dbt environment.

dagster-dbt builds assets from dbt's ``manifest.json``. Riskcast parses the project once per
version of its files and caches the manifest outside the source tree, keyed by a hash of the
project's files, so loading the code location does not re-parse unchanged models.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator

from orchestration.jurisdiction import JurisdictionConfig, ServiceRequestSourceConfig, WeatherSourceConfig
from orchestration.memory_limits import dbt_duckdb_limit_bytes, duckdb_memory_setting, memory_limit_bytes
from orchestration.settings import RiskcastSettings
from orchestration.warehouse import spatial_extension_dir

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"


def dbt_executable() -> str:
    return str(Path(sys.executable).parent / "dbt")


def project_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(DBT_PROJECT_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".sql", ".yml", ".yaml", ".csv"):
            digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "riskcast" / "dbt"


def dbt_environment(settings: RiskcastSettings, memory_limit_gb: float | None = None) -> dict[str, str]:
    """Return the variables that point dbt at the warehouse and keep its process within the run's memory budget."""
    return {
        "RISKCAST_WAREHOUSE": str(settings.warehouse_path),
        "RISKCAST_DUCKDB_EXTENSION_DIR": str(spatial_extension_dir()),
        "RISKCAST_DUCKDB_MEMORY_LIMIT": duckdb_memory_setting(
            dbt_duckdb_limit_bytes(memory_limit_bytes(memory_limit_gb))),
        "DBT_LOG_PATH": str(settings.dbt_log_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def prepare_manifest() -> Path:
    """Return the path of a manifest for the current project files, parsing when needed."""
    target = cache_dir() / project_fingerprint()
    manifest = target / "manifest.json"
    if manifest.is_file():
        return manifest

    from dbt.cli.main import dbtRunner

    target.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    result = dbtRunner().invoke([
        "parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(target), "--log-path", str(target / "logs"), "--quiet",
    ])
    if not result.success or not manifest.is_file():
        raise RuntimeError(f"dbt parse of {DBT_PROJECT_DIR} failed: {result.exception}; run "
                           f"`dbt parse --project-dir {DBT_PROJECT_DIR} --profiles-dir {DBT_PROJECT_DIR}` to see why")
    return manifest


# Hours an incident may lie after the extract's reference time before int_incidents__located
# quarantines it as future_time. A day absorbs a portal clock that runs ahead and a record entered
# shortly before its event time, while a mistyped year stays far outside.
FUTURE_TIME_TOLERANCE_HOURS = 24

# DuckDB's spelling of the Socrata floating-timestamp format, as in 2023-07-04T00:15:00.000.
DEFAULT_API_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"

# Specifiers of polars (chrono) formats and their DuckDB equivalents. DuckDB's %f reads 1 to 6
# fractional digits and %g exactly 3; its %z reads an offset with or without minutes and colon,
# which chrono spells %#z and %:z.
CHRONO_TO_DUCKDB_FRACTIONS = (("%.3f", ".%g"), ("%.6f", ".%f"), ("%.f", ".%f"), ("%#z", "%z"), ("%:z", "%z"))


def duckdb_timestamp_format(chrono_format: str) -> str:
    """Translate a polars (chrono) strptime format into the DuckDB format that staging uses.

    NOTE: chrono's ``%.f`` also accepts a time without fractional seconds, but DuckDB's ``.%f``
    requires them. Such a value passes the ingest check and then fails staging's not_null test
    on ``occurred_at_utc``. Socrata writes floating timestamps with milliseconds.
    """
    translated = chrono_format
    for chrono, duckdb in CHRONO_TO_DUCKDB_FRACTIONS:
        translated = translated.replace(chrono, duckdb)
    return translated


def duckdb_timestamp_formats(chrono_format: str) -> list[str]:
    """Return the DuckDB formats that read what a polars (chrono) format reads.

    A format with fractional seconds gets a second format without them, because some Socrata
    responses write floating timestamps without milliseconds, such as 2011-01-07T00:00:00.
    """
    translated = duckdb_timestamp_format(chrono_format)
    without_fraction = translated.replace(".%f", "").replace(".%g", "")
    return [translated] if without_fraction == translated else [translated, without_fraction]


def service_request_vars(dataset: ServiceRequestSourceConfig) -> dict[str, Any]:
    """Settings of one 311 dataset that staging reads from ``var('service_request_datasets')``."""
    api_format = dataset.api.timestamp_format if dataset.api else "%Y-%m-%dT%H:%M:%S%.f"
    return {
        "name": dataset.request_type,
        "file_formats": duckdb_timestamp_formats(dataset.timestamp_format),
        "api_formats": duckdb_timestamp_formats(api_format),
        "date_only": dataset.creation_is_date_only,
        "duplicate_statuses": dataset.duplicate_statuses,
    }


def dbt_vars(jurisdiction: JurisdictionConfig) -> dict[str, Any]:
    """Jurisdiction settings that the dbt models read with ``var()``."""
    box = jurisdiction.bounding_box
    weather = jurisdiction.weather
    api = jurisdiction.crimes.api
    demographics = jurisdiction.demographics
    return {
        "time_zone": jurisdiction.time_zone,
        "crime_timestamp_format": duckdb_timestamp_format(jurisdiction.crimes.timestamp_format),
        "crime_time_basis": jurisdiction.crimes.time_basis,
        "crime_api_timestamp_format": (duckdb_timestamp_format(api.timestamp_format) if api
                                       else DEFAULT_API_TIMESTAMP_FORMAT),
        "service_request_datasets": [service_request_vars(dataset) for dataset in jurisdiction.service_requests],
        "weather_stations": weather_station_vars(weather),
        "weather_layouts": weather_layout_vars(weather),
        "data_start": jurisdiction.data_start.isoformat(),
        "future_time_tolerance_hours": FUTURE_TIME_TOLERANCE_HOURS,
        "min_lat": box.min_lat,
        "max_lat": box.max_lat,
        "min_lon": box.min_lon,
        "max_lon": box.max_lon,
        "cells_layer": jurisdiction.cells.layer,
        "demographics_counts_layer": demographics.counts_layer if demographics else None,
        "demographics_income_layer": demographics.income_layer if demographics else None,
        "max_boundary_overlap_m2": jurisdiction.boundaries.max_overlap_m2,
        **audit_vars(jurisdiction),
    }


def audit_vars(jurisdiction: JurisdictionConfig) -> dict[str, Any]:
    """Return the audit settings that shape the audit models: the area field and the beat rule.

    An area field or a beat/district rule whose crime fields the jurisdiction does not map is
    passed as empty, so the models measure nothing for it and the checks skip it.
    """
    audit = jurisdiction.audit
    mapped = jurisdiction.crimes.columns
    area_field = audit.area_field if audit.area_field in mapped else ""
    rule = audit.beat_district
    beat_digits = rule.beat_digits if rule is not None and {"beat", "district"} <= set(mapped) else 0
    return {"audit_area_field": area_field, "audit_beat_digits": beat_digits}


def weather_station_vars(weather: WeatherSourceConfig | None) -> list[dict[str, Any]]:
    """Return the stations in fallback order (rank 1 first) with their LST offset in whole minutes."""
    if weather is None:
        return []
    return [{"id": station.id, "rank": rank, "utc_offset_minutes": round(station.utc_offset_hours * 60)}
            for rank, station in enumerate(weather.stations, start=1)]


def weather_layout_vars(weather: WeatherSourceConfig | None) -> list[dict[str, Any]]:
    """Return each layout's DuckDB timestamp format, report type classes and precipitation conventions."""
    if weather is None:
        return []
    return [{"name": name, "timestamp_format": duckdb_timestamp_format(layout.timestamp_format),
             "report_types": layout.report_types, "trace_values": layout.trace_values,
             "blank_precipitation_is_zero": layout.blank_precipitation == "zero"}
            for name, layout in weather.layouts.items()]


class RiskcastDbtTranslator(DagsterDbtTranslator):
    """Names each model's asset after the model alone and puts it in the ``warehouse`` group.

    Sources keep the asset keys their ``meta.dagster.asset_key`` gives, which are the raw assets.
    """

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props.get("resource_type") in ("model", "seed", "snapshot"):
            return dg.AssetKey(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props.get("resource_type") in ("model", "seed", "snapshot"):
            return "warehouse"
        return super().get_group_name(dbt_resource_props)
