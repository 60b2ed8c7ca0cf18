"""Audit gates (the data input audit): Great Expectations suites run as Dagster asset checks.

Every rule in ``orchestration.audit_rules`` that applies to the jurisdiction becomes one asset
check on the asset it is about. The check measures the warehouse tables, validates the
measurement with the rule's GX suite and fails with the highest severity among its failed
expectations. A measurement or validation that raises fails with ERROR severity, so an audit
that could not run is never read as clean.

``BLOCKING_CHECKS`` lists the checks whose suites have ERROR expectations: when one fails with
ERROR severity, Dagster skips the checked asset's direct children in the same run, and with
them everything below. ``AUDITED_INPUTS`` makes every Python asset that reads warehouse tables
such a child. The other checks have blocking off, so their results show in the UI without
stopping a run.
"""


from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from orchestration.audit import SuiteOutcome, crashed_outcome, load_suite_file, validate_frame
from orchestration.audit_rules import AuditRule, active_rules, audit_parameters
from orchestration.jurisdiction import JurisdictionConfig
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

BLOCKING_CHECKS = ("crime_incidents_input_audit", "crime_row_accounting", "crime_completeness",
                   "crime_unlocated_by_month")
# Assets with a blocking check. Every Python asset that reads warehouse tables depends on them
# directly, because a blocking check stops only the direct children of the asset it checks.
AUDITED_INPUTS = ("stg_crimes__incidents", "int_incidents__located")
# Rows of a multi-row measurement shown in a check's metadata; the report and Data Docs show all.
METADATA_ROWS = 25


def measure(rule: AuditRule, warehouse: Path, parameters: dict[str, Any]) -> pd.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return rule.measure(connection, parameters)


def evaluate_rule(rule: AuditRule, warehouse: Path, parameters: dict[str, Any],
                  validate: Any = validate_frame) -> tuple[SuiteOutcome, pd.DataFrame]:
    """Measure a rule on the warehouse and validate the measurement with the rule's suite.

    A measurement that fails (a missing table or column, a SQL error) becomes an errored suite
    outcome, like a GX crash. ``validate`` lets the report validate into its Data Docs project.
    """
    try:
        frame = measure(rule, warehouse, parameters)
    except (duckdb.Error, KeyError, ValueError) as error:
        frame = pd.DataFrame()
        return crashed_outcome(load_suite_file(rule.suite), frame, error), frame
    return validate(frame, rule.suite, parameters), frame


def scalar_metadata(frame: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    """Convert the columns of a one-row measurement to metadata values, leaving out NULLs."""
    values: dict[str, dg.MetadataValue] = {}
    for name, value in frame.iloc[0].items():
        if pd.isna(value):
            continue
        if isinstance(value, (bool, np.bool_)):
            values[str(name)] = dg.MetadataValue.bool(bool(value))
        elif isinstance(value, (int, np.integer)):
            values[str(name)] = dg.MetadataValue.int(int(value))
        elif isinstance(value, (float, np.floating)):
            values[str(name)] = dg.MetadataValue.float(float(value))
        else:
            values[str(name)] = dg.MetadataValue.text(str(value))
    return values


def frame_markdown(frame: pd.DataFrame) -> str:
    shown = frame.head(METADATA_ROWS)
    header = "| " + " | ".join(str(name) for name in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    lines = [header, rule]
    for row in shown.itertuples(index=False):
        cells = [f"{value:.4g}" if isinstance(value, float) else str(value) for value in row]
        lines.append("| " + " | ".join(cells) + " |")
    if len(frame) > METADATA_ROWS:
        lines.append(f"\n{len(frame) - METADATA_ROWS} more rows in the Data Input Audit report.")
    return "\n".join(lines)


def check_result(outcome: SuiteOutcome, frame: pd.DataFrame,
                 summary: dict[str, str] | None = None) -> dg.AssetCheckResult:
    """Turn a suite outcome into a check result, with the measurement and ``summary`` as metadata."""
    severity = dg.AssetCheckSeverity.ERROR if outcome.severity == "error" else dg.AssetCheckSeverity.WARN
    metadata: dict[str, dg.MetadataValue] = {
        "suite": dg.MetadataValue.text(outcome.suite),
        "rows_validated": dg.MetadataValue.int(outcome.row_count),
        "expectations_passed": dg.MetadataValue.int(outcome.count("passed")),
        "expectations_failed": dg.MetadataValue.int(outcome.count("failed")),
        "expectations_errored": dg.MetadataValue.int(outcome.count("error")),
        "problems": dg.MetadataValue.md("\n".join(f"- {line}" for line in outcome.problems()) or "none"),
        "results": dg.MetadataValue.json(outcome.summary_rows()),
    }
    if len(frame) == 1:
        metadata.update(scalar_metadata(frame))
    elif len(frame) > 1:
        metadata["measurement"] = dg.MetadataValue.md(frame_markdown(frame))
    for key, text in (summary or {}).items():
        metadata[key] = dg.MetadataValue.text(text)
    return dg.AssetCheckResult(passed=outcome.passed, severity=severity, metadata=metadata)


def build_audit_check(rule: AuditRule) -> dg.AssetChecksDefinition:
    @dg.asset_check(name=rule.name, asset=rule.asset, blocking=rule.blocking, description=rule.description,
                    additional_deps=list(rule.additional_deps))
    def audit_check(context: dg.AssetCheckExecutionContext, riskcast: RiskcastResource) -> dg.AssetCheckResult:
        jurisdiction = riskcast.jurisdiction()
        outcome, frame = evaluate_rule(rule, riskcast.settings().warehouse_path, audit_parameters(jurisdiction))
        context.log.info(f"{jurisdiction.name}: {rule.name} on {outcome.row_count} rows: "
                         f"{outcome.count('passed')} passed, {outcome.count('failed')} failed, "
                         f"{outcome.count('error')} errors")
        for problem in outcome.problems():
            context.log.warning(f"{rule.name}: {problem}")
        summary = rule.summarize(frame) if rule.summarize is not None and not frame.empty else None
        return check_result(outcome, frame, summary)

    return audit_check


def build_audit_checks(jurisdiction: JurisdictionConfig) -> list[dg.AssetChecksDefinition]:
    """Build one asset check per audit rule that applies to the jurisdiction."""
    rules, _ = active_rules(jurisdiction)
    return [build_audit_check(rule) for rule in rules]
