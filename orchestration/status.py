"""The state of one jurisdiction's pipeline, as ``riskcast status`` prints it.

Read from the Dagster instance under ``RISKCAST_HOME/dagster``: each asset's latest
materialization and, for partitioned assets, its materialized partitions; the latest result of
each asset check (the input audits and ``bias_disparity_gate``). Read from the warehouse: the
newest record of each portal source in ``raw.ingest_state``, aged the way the portal-freshness
sensor ages it, and the newest issue hour in ``main.risk_scores``. Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from orchestration.assets.models import table_columns
from orchestration.operations_config import FreshnessSettings
from orchestration.sensors import SourceAge, is_stale, read_ingest_state, source_age, utc_now
from orchestration.warehouse import connect

# Asset groups in the order data flows through them; groups not listed follow in name order.
GROUP_ORDER = ("raw", "warehouse", "audit", "features", "models", "scoring", "evaluation", "bias")


WAREHOUSE_GROUP = "warehouse"
GATE_CHECK = "bias_disparity_gate"


class StatusError(RuntimeError):
    """The warehouse or the Dagster instance that ``riskcast status`` reads does not exist."""


@dataclass(frozen=True)
class AssetState:
    """The latest materialization of one asset and, when partitioned, how many partitions exist."""

    key: str
    group: str
    materialized_at: datetime | None
    partitioned: bool
    partition_count: int = 0
    latest_partition: str | None = None

    def describe(self) -> str:
        if self.materialized_at is None:
            return "never materialized"
        text = f"materialized {format_time(self.materialized_at)}"
        if self.partitioned:
            text += f", latest partition {self.latest_partition} ({self.partition_count} materialized)"
        return text


@dataclass(frozen=True)
class CheckState:
    """The latest evaluation of one asset check: passed, failed, errored or never run."""

    name: str
    asset: str
    result: str
    severity: str | None
    evaluated_at: datetime | None

    def describe(self) -> str:
        if self.evaluated_at is None:
            return self.result
        severity = f" ({self.severity})" if self.severity else ""
        return f"{self.result}{severity} at {format_time(self.evaluated_at)}"


@dataclass(frozen=True)
class ScoresState:
    """The issue hours in ``main.risk_scores``: the newest one and how many there are."""

    newest_issue_hour: datetime | None
    issue_hours: int
    rows: int


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def open_instance(dagster_home: Path) -> dg.DagsterInstance:
    """Open the Dagster instance in ``dagster_home``, or raise ``StatusError`` when there is none."""
    if not (dagster_home / "dagster.yaml").is_file():
        raise StatusError(f"no Dagster instance at {dagster_home}: run `riskcast demo` or "
                          f"`riskcast run --config FILE` with the same --home first")
    return dg.DagsterInstance.from_config(str(dagster_home))


def group_rank(group: str) -> tuple[int, str]:
    return (GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), group)


def asset_states(definitions: dg.Definitions, instance: dg.DagsterInstance) -> list[AssetState]:
    """Return every asset's latest materialization, ordered by group along the data flow."""
    states = []
    for spec in definitions.resolve_all_asset_specs():
        event = instance.get_latest_materialization_event(spec.key)
        materialized_at = datetime.fromtimestamp(event.timestamp, tz=timezone.utc) if event is not None else None
        partitioned = spec.partitions_def is not None
        count, latest = 0, None
        if partitioned:
            keys = instance.get_materialized_partitions(spec.key)
            count = len(keys)
            # Hourly (``%Y-%m-%d-%H:%M``) and refresh (``%Y-%m-%d``) keys sort in time order as text.
            latest = max(keys) if keys else None
        states.append(AssetState(spec.key.to_user_string(), spec.group_name or "default", materialized_at,
                                 partitioned, count, latest))
    return sorted(states, key=lambda state: (group_rank(state.group), state.key))


def check_states(definitions: dg.Definitions, instance: dg.DagsterInstance) -> list[CheckState]:
    """Return the latest result of every asset check, sorted by asset and check name."""
    states = []
    for check_key in definitions.resolve_asset_graph().asset_check_keys:
        record = instance.get_latest_asset_check_evaluation_record(check_key)
        asset = check_key.asset_key.to_user_string()
        if record is None:
            states.append(CheckState(check_key.name, asset, "never run", None, None))
            continue
        evaluated_at = datetime.fromtimestamp(record.create_timestamp, tz=timezone.utc)
        evaluation = record.evaluation
        if record.status == AssetCheckExecutionRecordStatus.PLANNED or evaluation is None:
            # A planned check without a result: its run is in progress, or failed before the check ran.
            states.append(CheckState(check_key.name, asset, "not evaluated (run in progress or failed)",
                                     None, evaluated_at))
            continue
        states.append(CheckState(check_key.name, asset, "passed" if evaluation.passed else "failed",
                                 evaluation.severity.value, evaluated_at))
    return sorted(states, key=lambda state: (state.asset, state.name))


def summarize_group(states: list[AssetState]) -> str:
    """Count a group's materialized assets and give the span of their latest materializations."""
    times = [state.materialized_at for state in states if state.materialized_at is not None]
    if not times:
        return f"{len(states)} assets, none materialized"
    return (f"{len(times)} of {len(states)} assets materialized, latest between {format_time(min(times))} "
            f"and {format_time(max(times))}")


def summarize_checks(checks: list[CheckState]) -> str:
    """Count checks by result, and the failed ones by severity, such as ``120 passed, 2 failed (2 WARN)``."""
    results: dict[str, int] = {}
    failed: dict[str, int] = {}
    for check_state in checks:
        results[check_state.result] = results.get(check_state.result, 0) + 1
        if check_state.result == "failed":
            failed[check_state.severity or "unknown"] = failed.get(check_state.severity or "unknown", 0) + 1
    parts = []
    for result, count in sorted(results.items(), key=lambda item: item[0] != "passed"):
        part = f"{count} {result}"
        if result == "failed":
            part += " (" + ", ".join(f"{n} {severity}" for severity, n in sorted(failed.items())) + ")"
        parts.append(part)
    return ", ".join(parts) or "no asset checks defined"


def source_ages(warehouse: Path, freshness: FreshnessSettings,
                now: datetime | None = None) -> list[SourceAge] | None:
    """Return the age of each portal source's newest record, or None before the first ingest.

    Only sources whose ``raw.ingest_state`` key starts with one of ``freshness.source_prefixes``
    count, as in the portal-freshness sensor.
    """
    state = read_ingest_state(warehouse)
    if state is None:
        return None
    moment = now or utc_now()
    prefixes = tuple(freshness.source_prefixes)
    return [source_age(source, watermark, moment) for source, watermark in state if source.startswith(prefixes)]


def scores_state(warehouse: Path) -> ScoresState:
    with connect(warehouse, read_only=True) as connection:
        if not table_columns(connection, "risk_scores"):
            return ScoresState(None, 0, 0)
        newest, hours, rows = connection.sql(
            "SELECT max(issued_at), count(DISTINCT issued_at), count(*) FROM main.risk_scores").fetchone()
    newest_utc = newest.replace(tzinfo=timezone.utc) if newest is not None else None
    return ScoresState(newest_utc, hours, rows)


def status_lines(definitions: dg.Definitions, instance: dg.DagsterInstance, warehouse: Path,
                 freshness: FreshnessSettings, now: datetime | None = None, everything: bool = False) -> list[str]:
    """Return the lines of the status report: assets, checks, freshness and scores.

    Without ``everything``, the dbt models of the ``warehouse`` group share one line, and only
    the checks that did not pass are listed, with ``bias_disparity_gate`` always shown.
    """
    if not warehouse.is_file():
        raise StatusError(f"no warehouse at {warehouse}: run `riskcast demo` or `riskcast run --config FILE` "
                          f"with the same --home first")
    lines = ["Assets:"]
    assets = asset_states(definitions, instance)
    for asset in assets:
        if everything or asset.group != WAREHOUSE_GROUP:
            lines.append(f"  {asset.group:<11} {asset.key:<32} {asset.describe()}")
        elif asset is next(state for state in assets if state.group == WAREHOUSE_GROUP):
            lines.append(f"  {WAREHOUSE_GROUP:<11} {'(dbt models)':<32} "
                         f"{summarize_group([state for state in assets if state.group == WAREHOUSE_GROUP])}")

    checks = check_states(definitions, instance)
    lines.append(f"Checks:      {summarize_checks(checks)}")
    for check_state in checks:
        if everything or check_state.result != "passed" or check_state.name == GATE_CHECK:
            lines.append(f"  {check_state.asset + ' / ' + check_state.name:<60} {check_state.describe()}")

    max_age = timedelta(hours=freshness.max_age_hours)
    lines.append(f"Freshness (stale when the newest record is older than {freshness.max_age_hours:g} hours):")
    ages = source_ages(warehouse, freshness, now)
    if ages is None:
        lines.append("  no raw.ingest_state table yet: the warehouse job has not ingested any source")
    elif not ages:
        lines.append(f"  no source in raw.ingest_state matches {list(freshness.source_prefixes)}")
    for age in ages or []:
        verdict = "STALE" if is_stale(age, max_age) else "fresh"
        lines.append(f"  {verdict:<6} {age.describe()}")

    scores = scores_state(warehouse)
    if scores.newest_issue_hour is None:
        lines.append("Scores:      none in main.risk_scores")
    else:
        lines.append(f"Scores:      newest issue hour {format_time(scores.newest_issue_hour)}, "
                     f"{scores.issue_hours} issue hours, {scores.rows:,} rows in main.risk_scores")
    return lines
