"""The asset selection of the hourly increment: what one new hour's features and scores need.

An hourly run ingests the sources that gain rows every hour (crimes, 311 requests, weather
observations and forecasts). It rebuilds the dbt models downstream of them that the features, the
scores or a blocking input audit read, runs those blocking audits, then builds the hour's features
and scores. Everything else stays with ``warehouse_job`` and ``nightly_evaluation_job``: the
geography path (boundaries, cells, demographics and their models), the offense codes, the audit
models that only the report reads, the non-blocking (WARN) audit checks and the Data Input Audit
report. Those read their tables as the last full warehouse build left them.

dagster-dbt turns a job that selects some of the dbt models into ``dbt build --select`` on those
models. Their data tests run too, because the job selects every check on a selected asset except
the non-blocking audit checks.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

# Raw assets whose sources gain rows every hour.
HOURLY_RAW_ASSETS = ("raw_crime_incidents", "raw_service_requests", "raw_weather_observations",
                     "raw_weather_forecasts")
WAREHOUSE_GROUP = "warehouse"


def check_spec_of(check: dg.AssetChecksDefinition) -> dg.AssetCheckSpec:
    """Return the spec of a definition that contains exactly one check, as every audit check does."""
    specs = list(check.check_specs)
    if len(specs) != 1:
        raise ValueError(f"expected one check in {check.node_def.name}, found {len(specs)}; build one "
                         f"definition per audit rule")
    return specs[0]


def blocking_check_inputs(audit_checks: Iterable[dg.AssetChecksDefinition]) -> set[dg.AssetKey]:
    """Return the assets that the blocking audit checks measure: each checked asset and its additional deps."""
    keys: set[dg.AssetKey] = set()
    for check in audit_checks:
        spec = check_spec_of(check)
        if not spec.blocking:
            continue
        keys.add(spec.asset_key)
        keys.update(dep.asset_key for dep in spec.additional_deps)
    return keys


def non_blocking_check_keys(audit_checks: Iterable[dg.AssetChecksDefinition]) -> list[dg.AssetCheckKey]:
    return [check_spec_of(check).key for check in audit_checks if not check_spec_of(check).blocking]


def hourly_increment_selection(features: dg.AssetsDefinition, scores: dg.AssetsDefinition,
                               audit_checks: list[dg.AssetChecksDefinition]) -> dg.AssetSelection:
    """Select the hourly raw assets, the warehouse models an hour needs, the blocking audits, features and scores.

    A warehouse model is selected when it lies downstream of an hourly raw asset and upstream of
    (or equal to) a table that the features, the scores or a blocking audit check read.
    """
    hourly_raw = dg.AssetSelection.assets(*HOURLY_RAW_ASSETS)
    read_keys = {*features.dependency_keys, *scores.dependency_keys, *blocking_check_inputs(audit_checks)}
    models = (hourly_raw.downstream() & dg.AssetSelection.assets(*read_keys).upstream()
              & dg.AssetSelection.groups(WAREHOUSE_GROUP))

    selection = hourly_raw | models | dg.AssetSelection.assets(features, scores)
    return selection - dg.AssetSelection.checks(*non_blocking_check_keys(audit_checks))
