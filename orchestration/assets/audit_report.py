"""The audit reports (group ``audit``): GX Data Docs and the "Data Input Audit" HTML page.

The report asset runs every audit rule again, validating into a GX file project under
``RISKCAST_HOME/<jurisdiction>/reports/audit`` so that the results become a static Data Docs
site, and writes ``reports/data_input_audit.html`` beside it. It depends only on the audit
tables, never directly on an asset with a blocking check, so a failing audit still gets its
report: that is when the report is needed most.
"""


from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from orchestration.audit import DataDocsProject
from orchestration.audit_report import AuditFindings, RuleResult, render_report
from orchestration.audit_rules import active_rules, audit_parameters
from orchestration.assets.audits import evaluate_rule, frame_markdown
from orchestration.jurisdiction import JurisdictionConfig
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

REPORT_FILE = "data_input_audit.html"

CALENDAR_SQL = """
    SELECT audit_category, local_hour, local_dow, month(local_month) AS month_of_year,
           year(local_month) AS year, sum(records)::BIGINT AS records
    FROM audit.audit_crime_calendar
    WHERE local_month IS NOT NULL
    GROUP BY ALL
"""

YEARS_SQL = """
    SELECT
        year(local_month) AS year,
        sum(records)::BIGINT AS records,
        sum(missing_coordinates_records) / sum(records) AS missing_coordinates_share,
        sum(missing_coordinates_records + out_of_bounds_records) / sum(records) AS unlocated_share,
        sum(swapped_repaired_records)::BIGINT AS swapped_repaired,
        sum(midnight_records) / sum(records) AS midnight_share,
        sum(on_hour_records) / sum(records) AS on_hour_share,
        sum(first_of_month_records) / sum(records) AS first_of_month_share,
        sum(nonexistent_time_records)::BIGINT AS nonexistent_times,
        sum(ambiguous_time_records)::BIGINT AS ambiguous_times,
        sum(unknown_code_records)::BIGINT AS unknown_codes
    FROM audit.audit_crime_calendar
    WHERE local_month IS NOT NULL
    GROUP BY 1
    ORDER BY 1
"""

CATEGORIES_SQL = """
    SELECT
        audit_category AS category,
        sum(records)::BIGINT AS records,
        sum(records) / (SELECT sum(records) FROM audit.audit_crime_calendar) AS share_of_records,
        sum(missing_coordinates_records) / sum(records) AS missing_coordinates_share,
        sum(midnight_records) / sum(records) AS midnight_share,
        sum(on_hour_records) / sum(records) AS on_hour_share,
        sum(first_of_month_records) / sum(records) AS first_of_month_share
    FROM audit.audit_crime_calendar
    GROUP BY 1
    ORDER BY records DESC, category
"""

# Cell outlines simplified to a thousandth of the map's width, which keeps the page small
# without visible change at the drawn size.
CELLS_SQL = """
    WITH extent AS (SELECT max(ST_XMax(geom)) - min(ST_XMin(geom)) AS width FROM staging.stg_cells)
    SELECT audit.cell_id, audit.located_records, audit.records_per_km2, audit.area, audit.area_unlocated_share,
           ST_AsSVG(ST_SimplifyPreserveTopology(cells.geom, extent.width / 1000), false, 5) AS svg_path,
           ST_XMin(cells.geom) AS min_lon, ST_XMax(cells.geom) AS max_lon,
           ST_YMin(cells.geom) AS min_lat, ST_YMax(cells.geom) AS max_lat
    FROM audit.audit_crime_cells AS audit
    JOIN staging.stg_cells AS cells USING (cell_id)
    CROSS JOIN extent
    ORDER BY audit.cell_id
"""


def read_report_tables(warehouse: Path) -> dict[str, pd.DataFrame]:
    with connect(warehouse, read_only=True, spatial=True) as connection:
        return {name: connection.sql(sql).df() for name, sql in
                (("calendar", CALENDAR_SQL), ("years", YEARS_SQL), ("categories", CATEGORIES_SQL),
                 ("cells", CELLS_SQL))}


def audit_findings(jurisdiction: JurisdictionConfig, warehouse: Path, reports_dir: Path) -> AuditFindings:
    """Run every applicable rule into a Data Docs project, build the site, and gather the report's data."""
    parameters = audit_parameters(jurisdiction)
    rules, skipped = active_rules(jurisdiction)
    project = DataDocsProject(reports_dir / "audit")
    results = []
    for rule in rules:
        outcome, frame = evaluate_rule(rule, warehouse, parameters, validate=project.validate)
        results.append(RuleResult(rule, outcome, frame))
    index = project.build()
    tables = read_report_tables(warehouse)
    return AuditFindings(jurisdiction=jurisdiction.display_name, synthetic=jurisdiction.synthetic, results=results,
                         skipped=skipped, calendar=tables["calendar"], years=tables["years"],
                         categories=tables["categories"], cells=tables["cells"], data_docs=index,
                         parameters=parameters)


def headline_metadata(findings: AuditFindings) -> dict[str, Any]:
    years = findings.years
    records = int(years["records"].sum()) if not years.empty else 0
    failing = [result.rule.name for result in findings.results if not result.outcome.passed]
    return {
        "records": dg.MetadataValue.int(records),
        "checks_run": dg.MetadataValue.int(len(findings.results)),
        "checks_failing": dg.MetadataValue.text(", ".join(failing) or "none"),
        "checks_skipped": dg.MetadataValue.json(findings.skipped),
        "by_year": dg.MetadataValue.md(frame_markdown(years) if not years.empty else "no records"),
    }


@dg.asset(group_name="audit", kinds={"html", "great_expectations"},
          deps=["audit_crime_calendar", "audit_crime_by_area", "audit_crime_cells", "audit_crime_duplicates",
                "audit_crime_beat_district", "quarantine_crime_incidents", "quarantine_crime_raw_rows",
                "fct_hourly_weather"])
def data_input_audit_report(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Data Input Audit: a static HTML report for stakeholders, and GX Data Docs of every check."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    findings = audit_findings(jurisdiction, settings.warehouse_path, settings.reports_dir)

    path = settings.reports_dir / REPORT_FILE
    path.write_text(render_report(findings), encoding="utf-8")
    context.log.info(f"{jurisdiction.name}: audit report {path} and Data Docs {findings.data_docs}: "
                     f"{len(findings.results)} checks, {len(findings.skipped)} skipped")
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.path(str(path)),
        "report_url": dg.MetadataValue.url(path.as_uri()),
        "data_docs": dg.MetadataValue.path(str(findings.data_docs)),
        "data_docs_url": dg.MetadataValue.url(findings.data_docs.as_uri()),
        **headline_metadata(findings),
    })
