"""Freshness checks: whether the raw assets, two warehouse marts and the published forecasts are recent.

Two kinds of asset check, all of WARN severity and none blocking:

- Last-update checks, from ``dg.build_last_update_freshness_checks``, on every raw asset, on
  ``int_incidents__located`` and ``fct_cell_hour_crimes``, and on ``risk_scores``. Each passes when
  the asset's latest materialization is no older than the run file's ``freshness`` threshold
  (``raw_max_age_hours``, ``reference_max_age_hours``, ``warehouse_max_age_hours``,
  ``scores_max_lag_hours``). The reference raw assets (offense codes and the geography) are
  rebuilt by the nightly job, not by the hourly one, so they have a threshold of their own. A run that
  materializes an asset runs its check afterwards, and the sensor from
  ``dg.build_sensor_for_freshness_checks`` runs the checks again once they may have become overdue.
- The issue-lag check on ``risk_scores`` reads ``main.risk_scores``. It passes when the newest
  ``issued_at`` is no more than ``scores_max_lag_hours`` before now. A backfill of old hours keeps
  the asset's last update recent but leaves this lag large, so the two checks can disagree.

Dagster 1.13 also has ``dg.FreshnessPolicy``, which the daemon evaluates into a freshness state
in the UI. Riskcast uses checks instead, because a check result stores the values it judged
(last update, lag, threshold) as metadata and runs inside the job, so a test can execute it on
a fixed clock. The check factories are marked superseded by ``FreshnessPolicy`` in 1.13, but
still supported, so their ``SupersessionWarning`` is silenced where they are called.
"""

import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from orchestration.operations_config import FreshnessSettings
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

RAW_ASSETS = ("raw_crime_incidents", "raw_service_requests", "raw_weather_observations")
REFERENCE_RAW_ASSETS = ("raw_offense_codes", "raw_boundaries", "raw_cells", "raw_demographics")
WAREHOUSE_MODELS = ("int_incidents__located", "fct_cell_hour_crimes")
SCORES_ASSET = "risk_scores"
SCORES_LAG_CHECK = "risk_scores_issue_lag"
HOUR = timedelta(hours=1)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def build_last_update_checks(settings: FreshnessSettings) -> list[dg.AssetChecksDefinition]:
    """Build one last-update freshness check per raw asset, warehouse mart and ``risk_scores``."""
    groups = (
        (RAW_ASSETS, settings.raw_max_age_hours),
        (REFERENCE_RAW_ASSETS, settings.reference_max_age_hours),
        (WAREHOUSE_MODELS, settings.warehouse_max_age_hours),
        ((SCORES_ASSET,), settings.scores_max_lag_hours),
    )
    checks: list[dg.AssetChecksDefinition] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        for names, max_age_hours in groups:
            checks.extend(dg.build_last_update_freshness_checks(
                assets=[dg.AssetKey(name) for name in names], lower_bound_delta=timedelta(hours=max_age_hours),
                severity=dg.AssetCheckSeverity.WARN))
    return checks


def build_freshness_checks_sensor(checks: list[dg.AssetChecksDefinition], jurisdiction: str,
                                  settings: FreshnessSettings) -> dg.SensorDefinition:
    """Build the sensor that runs the last-update checks again once they may have become overdue.

    It starts STOPPED unless ``freshness.enabled`` is true, like the portal-freshness sensor.
    """
    status = dg.DefaultSensorStatus.RUNNING if settings.enabled else dg.DefaultSensorStatus.STOPPED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks, name=f"{jurisdiction}_freshness_checks",
            minimum_interval_seconds=settings.interval_minutes * 60, default_status=status)


def read_newest_issue(warehouse: Path) -> tuple[datetime | None, int, int] | None:
    """Return the newest ``issued_at`` (UTC), its row count and the table's row count, or None without the table."""
    if not warehouse.is_file():
        return None
    with connect(warehouse, read_only=True) as connection:
        exists = connection.execute("SELECT count(*) FROM information_schema.tables "
                                    "WHERE table_schema = 'main' AND table_name = 'risk_scores'").fetchone()[0]
        if not exists:
            return None
        newest, rows = connection.execute("SELECT max(issued_at), count(*) FROM main.risk_scores").fetchone()
        if newest is None:
            return None, 0, rows
        newest_rows = connection.execute("SELECT count(*) FROM main.risk_scores WHERE issued_at = ?",
                                         [newest]).fetchone()[0]
    return newest.replace(tzinfo=timezone.utc), newest_rows, rows


def issue_lag_result(newest: tuple[datetime | None, int, int] | None, now: datetime,
                     max_lag: timedelta) -> dg.AssetCheckResult:
    """Judge the newest issue hour of ``main.risk_scores`` against ``now`` and ``max_lag``."""
    metadata: dict[str, dg.MetadataValue] = {
        "max_lag_hours": dg.MetadataValue.float(max_lag / HOUR),
        "checked_at": dg.MetadataValue.text(now.isoformat()),
    }
    if newest is None or newest[0] is None:
        rows = newest[2] if newest is not None else 0
        metadata["rows"] = dg.MetadataValue.int(rows)
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
            description="main.risk_scores has no forecast yet; materialize risk_scores for the latest hour")

    issued_at, newest_rows, rows = newest
    lag = now - issued_at
    passed = lag <= max_lag
    metadata |= {
        "newest_issue_hour": dg.MetadataValue.text(issued_at.isoformat()),
        "lag_hours": dg.MetadataValue.float(round(lag / HOUR, 4)),
        "rows": dg.MetadataValue.int(rows),
        "rows_newest_issue_hour": dg.MetadataValue.int(newest_rows),
    }
    verdict = "within" if passed else "more than"
    description = (f"the newest forecast was issued at {issued_at.isoformat()}, {lag / HOUR:.2f} hours before "
                   f"{now.isoformat()}: {verdict} the {max_lag / HOUR:g} hours allowed")
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
                               description=description)


def build_scores_lag_check(settings: FreshnessSettings,
                           clock: Callable[[], datetime] = utc_now) -> dg.AssetChecksDefinition:
    """Build the check that the newest forecast in ``main.risk_scores`` is recent; ``clock`` returns UTC now."""
    max_lag = timedelta(hours=settings.scores_max_lag_hours)

    @dg.asset_check(name=SCORES_LAG_CHECK, asset=SCORES_ASSET, blocking=False,
                    description=f"The newest issued_at in main.risk_scores is no more than "
                                f"{settings.scores_max_lag_hours:g} hours old.")
    def risk_scores_issue_lag(context: dg.AssetCheckExecutionContext,
                              riskcast: RiskcastResource) -> dg.AssetCheckResult:
        warehouse = riskcast.settings().warehouse_path
        result = issue_lag_result(read_newest_issue(warehouse), clock(), max_lag)
        log = context.log.info if result.passed else context.log.warning
        log(f"{riskcast.jurisdiction().name}: {result.description}")
        return result

    return risk_scores_issue_lag
