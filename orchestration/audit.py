"""Great Expectations validations of warehouse tables, with three-valued results and severities.

Suites are JSON files under ``expectations/suites`` in version control. Each names the table it
audits, may list ``index_columns`` that name a failing row (a month, a category), and gives each
expectation a severity in its ``meta``: ``error`` blocks downstream assets, ``warning`` (the
default) only shows in the UI. Thresholds are ``$PARAMETER`` references filled from the
jurisdiction's ``audit:`` block.

Frames are validated with GX's pandas data source, because GX 1.24's SQL data source fails on
DuckDB; tables are read from DuckDB through Arrow. Every expectation's status is ``passed``,
``failed`` or ``error``: ``error`` means GX could not evaluate it (its result carries exception
information) and counts as an ERROR failure, never as a clean result. A validation that raises
as a whole is recorded the same way, as one errored outcome.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from orchestration.warehouse import connect

logger = logging.getLogger(__name__)

SUITES_DIR = Path(__file__).resolve().parents[1] / "expectations" / "suites"
Status = Literal["passed", "failed", "error"]
Severity = Literal["error", "warning"]
DATA_DOCS_SITE = "riskcast_audit"
# Rows of a failing expectation named in its outcome; the full list is in the Data Docs.
MAX_NAMED_ROWS = 50


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    status: Status
    severity: Severity
    unexpected_count: int | None
    unexpected_percent: float | None
    observed_value: Any
    message: str | None
    unexpected_rows: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        """Describe a failed or errored expectation in one line, naming its failing rows."""
        text = f"{self.expectation}({self.column or ''}): {self.status} [{self.severity}]"
        if self.status == "error":
            return f"{text} - {self.message}"
        if self.unexpected_count:
            text += f", {self.unexpected_count} unexpected"
        if self.unexpected_rows:
            text += ": " + "; ".join(", ".join(f"{key}={value}" for key, value in row.items())
                                     for row in self.unexpected_rows[:10])
        elif self.observed_value is not None:
            text += f", observed {self.observed_value}"
        return text


@dataclass
class SuiteOutcome:
    suite: str
    table: str
    row_count: int
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(outcome.status == "passed" for outcome in self.outcomes)

    @property
    def severity(self) -> Severity | None:
        """The highest severity among failed and errored expectations, or None when all passed.

        An errored expectation counts as ``error`` whatever its configured severity, because the
        audit could not tell whether the data is usable.
        """
        failing = [outcome for outcome in self.outcomes if outcome.status != "passed"]
        if not failing:
            return None
        if any(outcome.status == "error" or outcome.severity == "error" for outcome in failing):
            return "error"
        return "warning"

    def count(self, status: Status) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    def problems(self) -> list[str]:
        return [outcome.describe() for outcome in self.outcomes if outcome.status != "passed"]

    def summary_rows(self) -> list[dict[str, Any]]:
        return [json.loads(json.dumps(asdict(outcome), default=str)) for outcome in self.outcomes]


def load_suite_file(name: str) -> dict[str, Any]:
    path = SUITES_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"expectation suite not found: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def suite_columns(spec: dict[str, Any]) -> set[str]:
    return {item["kwargs"]["column"] for item in spec["expectations"] if "column" in item["kwargs"]}


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


def named_rows(details: dict[str, Any], index_columns: list[str]) -> list[dict[str, Any]]:
    """Return the index values (such as month or category) of the rows that failed an expectation."""
    rows = details.get("unexpected_index_list") or []
    if not index_columns or not rows or not isinstance(rows[0], dict):
        return []
    return [{name: str(row.get(name)) for name in index_columns} for row in rows[:MAX_NAMED_ROWS]]


def outcome_from_result(result: Any, index_columns: list[str] | None = None) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    errors = raised_exceptions(result.exception_info)
    raised = bool(errors)
    message = "; ".join(dict.fromkeys(errors)) if raised else None
    if raised:
        status: Status = "error"
    else:
        status = "passed" if result.success else "failed"
    severity: Severity = "error" if (config.meta or {}).get("severity") == "error" else "warning"
    return ExpectationOutcome(
        expectation=config.type,
        column=config.kwargs.get("column"),
        status=status,
        severity=severity,
        unexpected_count=None if raised else details.get("unexpected_count"),
        unexpected_percent=None if raised else details.get("unexpected_percent"),
        observed_value=None if raised else details.get("observed_value"),
        message=message,
        unexpected_rows=[] if raised or status == "passed" else named_rows(details, index_columns or []),
    )


def crashed_outcome(spec: dict[str, Any], frame: pd.DataFrame, error: Exception) -> SuiteOutcome:
    """Record a validation that raised as a whole as one errored expectation."""
    message = f"{type(error).__name__}: {error}"
    logger.error("suite %s could not be evaluated: %s", spec["name"], message)
    crash = ExpectationOutcome(expectation="validation", column=None, status="error", severity="error",
                               unexpected_count=None, unexpected_percent=None, observed_value=None,
                               message=message)
    return SuiteOutcome(suite=spec["name"], table=spec.get("table", ""), row_count=len(frame), outcomes=[crash])


def build_suite(gx: Any, spec: dict[str, Any]) -> Any:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = gx.ExpectationSuite(name=spec["name"], meta={"description": spec.get("description", "")})
    default_severity = spec.get("severity", "warning")
    for item in spec["expectations"]:
        meta = {"severity": default_severity, **item.get("meta", {})}
        configuration = ExpectationConfiguration(type=item["type"], kwargs=item["kwargs"], meta=meta)
        suite.add_expectation(configuration.to_domain_obj())
    return suite


def result_format(spec: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    index_columns = [name for name in spec.get("index_columns", []) if name in frame.columns]
    if not index_columns:
        return {"result_format": "SUMMARY"}
    return {"result_format": "COMPLETE", "unexpected_index_column_names": index_columns}


def validate_frame(frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any] | None = None,
                   context: Any = None, spec: dict[str, Any] | None = None) -> SuiteOutcome:
    """Validate a pandas frame against a suite file with Great Expectations.

    With a file ``context`` (see ``DataDocsProject``) the result is stored there for the Data
    Docs; without one an ephemeral context is used. ``spec`` replaces the suite file.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    spec = spec or load_suite_file(suite_name)
    try:
        validation = run_validation(gx, spec, frame, parameters or {}, context)
    except Exception as error:  # noqa: BLE001 - any failure inside GX must become an ERROR result
        return crashed_outcome(spec, frame, error)

    index_columns = result_format(spec, frame).get("unexpected_index_column_names", [])
    outcome = SuiteOutcome(suite=spec["name"], table=spec.get("table", ""), row_count=len(frame),
                           outcomes=[outcome_from_result(result, index_columns) for result in validation.results])
    logger.info("suite %s on %d rows: %d passed, %d failed, %d errors", spec["name"], len(frame),
                outcome.count("passed"), outcome.count("failed"), outcome.count("error"))
    return outcome


def run_validation(gx: Any, spec: dict[str, Any], frame: pd.DataFrame, parameters: dict[str, Any],
                   context: Any) -> Any:
    name = spec["name"]
    if context is None:
        context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_or_update_pandas(f"riskcast_{name}")
    asset = source.add_dataframe_asset(name)
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_table")
    suite = context.suites.add_or_update(build_suite(gx, spec))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite))
    return definition.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters,
                          result_format=result_format(spec, frame))


def validate_table(warehouse: Path, suite_name: str, parameters: dict[str, Any] | None = None) -> SuiteOutcome:
    spec = load_suite_file(suite_name)
    frame = read_table(warehouse, spec["table"], suite_columns(spec))
    return validate_frame(frame, suite_name, parameters)


class DataDocsProject:
    """A GX file data context whose validation results become a static Data Docs site.

    The project lives in ``<folder>/gx`` and the site in ``<folder>/data_docs``; both are
    rebuilt from scratch on every audit, so the site shows the current run only. Building needs
    no network, but the generated pages load their stylesheets and scripts from public CDNs
    when a browser opens them.
    """

    def __init__(self, folder: Path) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx

        self.folder = folder
        self.site_dir = folder / "data_docs"
        for generated in (folder / "gx", self.site_dir):
            if generated.exists():
                shutil.rmtree(generated)
        folder.mkdir(parents=True, exist_ok=True)
        self.context = gx.get_context(mode="file", project_root_dir=str(folder))
        self.context.variables.progress_bars = {"globally": False}
        for site in list(self.context.get_site_names()):
            self.context.delete_data_docs_site(site)
        self.context.add_data_docs_site(DATA_DOCS_SITE, {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(self.site_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })

    def validate(self, frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any]) -> SuiteOutcome:
        return validate_frame(frame, suite_name, parameters, context=self.context)

    def build(self) -> Path:
        """Build the site and return its index page."""
        self.context.build_data_docs(site_names=[DATA_DOCS_SITE])
        index = self.site_dir / "index.html"
        if not index.is_file():
            raise RuntimeError(f"GX did not write the Data Docs index {index}")
        return index
