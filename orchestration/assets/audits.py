"""Audit gates (the data input audit): Great Expectations suites run as Dagster asset checks.

``BLOCKING_CHECKS`` lists the checks of ERROR severity: when one fails, or GX cannot evaluate it,
Dagster skips the checked table's direct children in the same run, and with them everything
below. ``AUDITED_INPUTS`` makes every Python asset that reads warehouse tables such a child. The
other checks have WARN severity and blocking off, so their results show in the UI without
stopping a run.
"""


from typing import Any

import dagster as dg

from orchestration.audit import SuiteOutcome, validate_table
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

BLOCKING_CHECKS = ("crime_incidents_input_audit",)
# Tables with a blocking check. Every Python asset that reads warehouse tables depends on them
# directly, because a blocking check stops only the direct children of the asset it checks.
AUDITED_INPUTS = ("stg_crimes__incidents",)


def check_result(outcome: SuiteOutcome, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    failed = [f"{item.expectation}({item.column or ''}): {item.status}" + (f" - {item.message}" if item.message else "")
              for item in outcome.outcomes if item.status != "passed"]
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=severity,
        metadata={
            "suite": dg.MetadataValue.text(outcome.suite),
            "rows_validated": dg.MetadataValue.int(outcome.row_count),
            "expectations_passed": dg.MetadataValue.int(outcome.count("passed")),
            "expectations_failed": dg.MetadataValue.int(outcome.count("failed")),
            "expectations_errored": dg.MetadataValue.int(outcome.count("error")),
            "problems": dg.MetadataValue.md("\n".join(f"- {line}" for line in failed) or "none"),
            "results": dg.MetadataValue.json(outcome.summary_rows()),
        },
    )


def bounding_box_parameters(riskcast: RiskcastResource) -> dict[str, Any]:
    jurisdiction = riskcast.jurisdiction()
    box = jurisdiction.bounding_box
    return {"min_lat": box.min_lat, "max_lat": box.max_lat, "min_lon": box.min_lon,
            "max_lon": box.max_lon, "inside_box_share": jurisdiction.audit.min_inside_box_share}


@dg.asset_check(asset="stg_crimes__incidents", blocking=True,
                description="GX input audit of staged incidents: required columns, timestamps, "
                            "unique ids, coordinates inside the bounding box (ERROR: blocks downstream).")
def crime_incidents_input_audit(context: dg.AssetCheckExecutionContext,
                                riskcast: RiskcastResource) -> dg.AssetCheckResult:
    outcome = validate_table(riskcast.settings().warehouse_path, "stg_crimes__incidents",
                             bounding_box_parameters(riskcast))
    context.log.info(f"crime input audit: {outcome.count('passed')} passed, "
                     f"{outcome.count('failed')} failed, {outcome.count('error')} errors "
                     f"on {outcome.row_count} rows")
    return check_result(outcome, dg.AssetCheckSeverity.ERROR)


@dg.asset_check(asset="fct_hourly_weather",
                description="GX drift audit of hourly weather ranges (WARN: does not block).")
def hourly_weather_drift_audit(context: dg.AssetCheckExecutionContext,
                               riskcast: RiskcastResource) -> dg.AssetCheckResult:
    outcome = validate_table(riskcast.settings().warehouse_path, "fct_hourly_weather")
    context.log.info(f"weather audit: {outcome.count('failed')} failed of {len(outcome.outcomes)}")
    return check_result(outcome, dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset="quarantine_crime_incidents",
                description="Share of incidents quarantined, by reason (WARN above the jurisdiction's threshold).")
def quarantine_share_check(context: dg.AssetCheckExecutionContext,
                           riskcast: RiskcastResource) -> dg.AssetCheckResult:
    with connect(riskcast.settings().warehouse_path, read_only=True) as connection:
        total = connection.sql("SELECT count(*) FROM intermediate.int_incidents__located").fetchone()[0]
        by_reason = dict(connection.sql(
            "SELECT quarantine_reason, count(*) FROM marts.quarantine_crime_incidents GROUP BY 1 ORDER BY 1"
        ).fetchall())
    quarantined = sum(by_reason.values())
    share = quarantined / total if total else 1.0
    threshold = riskcast.jurisdiction().audit.max_quarantined_share
    context.log.info(f"quarantined {quarantined} of {total} incidents ({share:.2%}): {by_reason}")
    return dg.AssetCheckResult(
        passed=share <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "incidents": dg.MetadataValue.int(total),
            "quarantined": dg.MetadataValue.int(quarantined),
            "quarantined_share": dg.MetadataValue.float(share),
            "by_reason": dg.MetadataValue.json(by_reason),
        },
    )


ROW_ACCOUNTING_SQL = """
SELECT
    (SELECT count(*) FROM raw.crime_incidents) AS raw_rows,
    (SELECT count(*) FROM raw.crime_incidents WHERE nullif(trim(id), '') IS NULL) AS rows_without_id,
    (SELECT count(DISTINCT trim(id)) FROM raw.crime_incidents WHERE nullif(trim(id), '') IS NOT NULL) AS distinct_ids,
    (SELECT count(*) FROM staging.stg_crimes__incidents) AS staged,
    (SELECT count(*) FROM intermediate.int_incidents__located WHERE quarantine_reason IS NULL) AS located,
    (SELECT count(*) FROM marts.quarantine_crime_incidents) AS quarantined
"""


@dg.asset_check(asset="stg_crimes__incidents",
                description="Every raw crime row is accounted for: staged, superseded by a later "
                            "version of its id, or without an id; every staged row is located or "
                            "quarantined (WARN).")
def crime_row_accounting(context: dg.AssetCheckExecutionContext,
                         riskcast: RiskcastResource) -> dg.AssetCheckResult:
    with connect(riskcast.settings().warehouse_path, read_only=True) as connection:
        row = connection.sql(ROW_ACCOUNTING_SQL).fetchone()
    raw_rows, without_id, distinct_ids, staged, located, quarantined = row
    superseded = raw_rows - without_id - distinct_ids
    balanced = staged == distinct_ids and located + quarantined == staged
    context.log.info(f"crime rows: {raw_rows} raw = {staged} staged + {superseded} superseded versions "
                     f"+ {without_id} without id; staged = {located} located + {quarantined} quarantined")
    return dg.AssetCheckResult(
        passed=balanced,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "raw_rows": dg.MetadataValue.int(raw_rows),
            "superseded_versions": dg.MetadataValue.int(superseded),
            "rows_without_id": dg.MetadataValue.int(without_id),
            "staged": dg.MetadataValue.int(staged),
            "located": dg.MetadataValue.int(located),
            "quarantined": dg.MetadataValue.int(quarantined),
        },
    )


AUDIT_CHECKS = [crime_incidents_input_audit, hourly_weather_drift_audit, quarantine_share_check,
                crime_row_accounting]
