"""Great Expectations validations of warehouse tables, with three-valued results.

Suites are JSON files under ``expectations/suites`` in version control, each naming the table it
audits. The table is read from DuckDB through Arrow into pandas and validated with GX's pandas
data source, because GX 1.24's SQL data source fails on DuckDB. Every
expectation's status is ``passed``, ``failed`` or ``error``: ``error`` means GX could not evaluate
it (its result carries exception information) and counts as a failure, never as a clean result.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from orchestration.warehouse import connect

logger = logging.getLogger(__name__)

SUITES_DIR = Path(__file__).resolve().parents[1] / "expectations" / "suites"
Status = Literal["passed", "failed", "error"]


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    status: Status
    unexpected_count: int | None
    unexpected_percent: float | None
    observed_value: Any
    message: str | None


@dataclass
class SuiteOutcome:
    suite: str
    table: str
    row_count: int
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(outcome.status == "passed" for outcome in self.outcomes)

    def count(self, status: Status) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    def summary_rows(self) -> list[dict[str, Any]]:
        return [outcome.__dict__ for outcome in self.outcomes]


def load_suite_file(name: str) -> dict[str, Any]:
    path = SUITES_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"expectation suite not found: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def read_table(warehouse: Path, table: str, columns: set[str]) -> pd.DataFrame:
    """Read the suite's columns that the table has; absent ones fail expect_column_to_exist."""
    with connect(warehouse, read_only=True) as connection:
        present = [row[0] for row in connection.sql(f"DESCRIBE {table}").fetchall()]
        selected = [name for name in present if name in columns] or present[:1]
        select_list = ", ".join(f'"{name}"' for name in selected)
        return connection.sql(f"SELECT {select_list} FROM {table}").fetch_arrow_table().to_pandas()


def raised_exceptions(exception_info: Any) -> list[str]:
    """Messages of the exceptions GX caught while evaluating one expectation.

    GX 1.24 stores either one top-level entry or one entry per metric, keyed by the metric's id.
    """
    if not isinstance(exception_info, dict):
        return []
    entries = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    return [str(entry.get("exception_message") or "unknown error") for entry in entries
            if isinstance(entry, dict) and entry.get("raised_exception")]


def outcome_from_result(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    errors = raised_exceptions(result.exception_info)
    raised = bool(errors)
    message = "; ".join(dict.fromkeys(errors)) if raised else None
    if raised:
        status: Status = "error"
    else:
        status = "passed" if result.success else "failed"
    return ExpectationOutcome(
        expectation=config.type,
        column=config.kwargs.get("column"),
        status=status,
        unexpected_count=None if raised else details.get("unexpected_count"),
        unexpected_percent=None if raised else details.get("unexpected_percent"),
        observed_value=None if raised else details.get("observed_value"),
        message=message,
    )


def validate_frame(frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any] | None = None) -> SuiteOutcome:
    """Validate a pandas frame against a suite file with Great Expectations."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    spec = load_suite_file(suite_name)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (context.data_sources.add_pandas(f"riskcast_{suite_name}")
             .add_dataframe_asset(suite_name)
             .add_batch_definition_whole_dataframe("whole_table")
             .get_batch(batch_parameters={"dataframe": frame}))

    suite = gx.ExpectationSuite(name=suite_name)
    for item in spec["expectations"]:
        configuration = ExpectationConfiguration(type=item["type"], kwargs=item["kwargs"])
        suite.add_expectation(configuration.to_domain_obj())
    suite = context.suites.add(suite)

    validation = batch.validate(suite, expectation_parameters=parameters or {})
    outcome = SuiteOutcome(suite=suite_name, table=spec.get("table", ""), row_count=len(frame),
                           outcomes=[outcome_from_result(result) for result in validation.results])
    logger.info("suite %s on %d rows: %d passed, %d failed, %d errors", suite_name, len(frame),
                outcome.count("passed"), outcome.count("failed"), outcome.count("error"))
    return outcome


def validate_table(warehouse: Path, suite_name: str, parameters: dict[str, Any] | None = None) -> SuiteOutcome:
    spec = load_suite_file(suite_name)
    columns = {item["kwargs"]["column"] for item in spec["expectations"] if "column" in item["kwargs"]}
    frame = read_table(warehouse, spec["table"], columns)
    return validate_frame(frame, suite_name, parameters)
