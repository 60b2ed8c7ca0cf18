# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Data input audit: what went into the warehouse, and what was set aside
#
# Every forecast rests on the crime records the portal published. This notebook shows what
# the warehouse holds: the records set aside in quarantine tables and why, the audit rules
# that judge the inputs (the Great Expectations suites the pipeline runs as Dagster checks),
# and where and when records were made, so you can see gaps, heaping and shifts before you
# trust a model trained on them. It reads the `audit.*` and `marts.quarantine_*` tables
# that dbt builds and the rules in `orchestration.audit_rules`.

# %% tags=["parameters"]
warehouse = None  # path of a warehouse.duckdb; None: $RISKCAST_HOME/demo/warehouse.duckdb or ./data/demo/...
jurisdiction = None  # jurisdiction name or YAML path; None: the warehouse folder's name
time_zone = None  # None: the jurisdiction's time zone
start_date = None  # first local month kept, "YYYY-MM-DD" (its month counts); None: the first
end_date = None  # records before this local date are kept; None: up to the last
hours = list(range(24))  # local hours of the day kept, 0-23
weekdays = list(range(7))  # days of the week kept, 0 = Monday ... 6 = Sunday
top_categories = 12  # categories shown in the category table
run_audit_rules = True  # validate every audit rule again with Great Expectations (needs the jurisdiction file)

# %%
import logging
from datetime import date

import matplotlib.pyplot as plt
import polars as pl
from IPython.display import HTML, Markdown, display

from ml.reports.maps import cell_geojson, choropleth, leaflet_assets
from orchestration.warehouse import open_connection
from support import WEEKDAY_NAMES, describe_warehouse, make_selection, readable, record, synthetic_notice

logging.basicConfig(level=logging.WARNING)
info = describe_warehouse(warehouse, jurisdiction, time_zone)
selection = make_selection(start_date, end_date, hours, weekdays)
display(Markdown(synthetic_notice(info)))
display(Markdown(f"Warehouse: `{info.path}` ({info.display_name}, local times in {info.time_zone}). "
                 f"Selection: {selection.describe()}."))

# %% [markdown]
# ## Quarantine: records set aside, with the reason
#
# Some records cannot be used: no coordinates, outside the city, a time after the extract was
# read or before the data start, an unreadable row. None is dropped silently, because each goes
# to a quarantine table with the rule it broke. These counts cover the whole warehouse, whatever the selection.

# %%
connection = open_connection(info.path, read_only=True)
try:
    tables = [row[0] for row in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' "
        "AND table_name LIKE 'quarantine%' ORDER BY table_name").fetchall()]
    quarantine_counts = {table: connection.sql(f"SELECT count(*) FROM marts.{table}").fetchone()[0]
                         for table in tables}
    reasons = []
    for table in tables:
        columns = [row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = ?",
            [table]).fetchall()]
        reason = next((name for name in ("quarantine_rule", "quarantine_reason", "reason") if name in columns), None)
        if reason is not None and quarantine_counts[table]:
            reasons.append(connection.sql(
                f"SELECT '{table}' AS table_name, {reason} AS reason, count(*) AS records "
                f"FROM marts.{table} GROUP BY ALL ORDER BY records DESC").pl())
finally:
    connection.close()
display(readable(pl.DataFrame({"table": list(quarantine_counts), "records": list(quarantine_counts.values())})))
if reasons:
    display(Markdown("By reason:"))
    display(readable(pl.concat(reasons)))
record("quarantine_counts", quarantine_counts)

# %% [markdown]
# ## The audit rules
#
# Each rule measures one property of the inputs and a Great Expectations suite judges the
# measurement. A failed rule of ERROR severity stops the pipeline before features are built;
# a WARNING lets it go on and reports the problem. The pipeline's own report of the same rules
# is `reports/data_input_audit.html`, with the GX Data Docs beside it.

# %%
rule_rows = []
if run_audit_rules and info.config is not None:
    from orchestration.assets.audits import evaluate_rule
    from orchestration.audit_rules import active_rules, audit_parameters

    rules, skipped = active_rules(info.config)
    parameters = audit_parameters(info.config)
    logging.disable(logging.INFO)  # Great Expectations logs every temporary Data Docs folder at INFO.
    for rule in rules:
        outcome, _ = evaluate_rule(rule, info.path, parameters)
        rule_rows.append({"rule": rule.name, "about": rule.asset, "blocking": rule.blocking,
                          "result": "passed" if outcome.passed else (outcome.severity or "failed"),
                          "problem": "; ".join(outcome.problems())[:300]})
    logging.disable(logging.NOTSET)
    for name, reason in skipped.items():
        rule_rows.append({"rule": name, "about": "", "blocking": False, "result": "skipped", "problem": reason})
    display(readable(pl.DataFrame(rule_rows)))
else:
    display(Markdown("The audit rules are not run here: set `run_audit_rules = True` and name the jurisdiction file."))
record("audit_rules", rule_rows)

# %% [markdown]
# ## Records in the selection
#
# `audit.audit_crime_calendar` counts records per local month, hour of day, day of week and
# category, with the counts of each quality problem. The selection applies to the local hour,
# the day of week and the month.

# %%
connection = open_connection(info.path, read_only=True)
try:
    calendar = connection.sql("SELECT * FROM audit.audit_crime_calendar WHERE local_month IS NOT NULL").pl()
finally:
    connection.close()
first_month = date(selection.start_date.year, selection.start_date.month, 1) if selection.start_date else None
kept = calendar.filter(
    pl.col("local_hour").is_in(list(selection.hours))
    & (pl.col("local_dow") - 1).is_in(list(selection.weekdays))  # ISO day of week: 1 = Monday
    & ((pl.col("local_month") >= first_month) if first_month else pl.lit(True))
    & ((pl.col("local_month") < selection.end_date) if selection.end_date else pl.lit(True))
)
problems = ["missing_coordinates_records", "out_of_bounds_records", "swapped_repaired_records",
            "midnight_records", "on_hour_records", "first_of_month_records", "unknown_code_records"]
by_year = (kept.group_by(pl.col("local_month").dt.year().alias("year"))
           .agg(pl.col("records").sum(), *[pl.col(name).sum() for name in problems]).sort("year"))
shares = by_year.select("year", "records", *[(pl.col(name) / pl.col("records")).alias(name.replace("_records", "_share"))
                                            for name in problems])
display(readable(shares, percent=[name.replace("_records", "_share") for name in problems]))
record("records_selected", int(kept["records"].sum()))

# %% [markdown]
# ## When records happen, and when they only seem to
#
# Real incidents spread over the hours, with a low in the early morning. A spike at midnight
# or on the hour, or on the first of the month, usually means that the officer did not know the
# time and a default was typed in ("heaping"): those records tell little about the hour of the
# crime. One hour in 24 is 4.2%: a midnight share far above it is heaping.

# %%
figure, axes = plt.subplots(1, 3, figsize=(13, 3.5))
by_hour = kept.group_by("local_hour").agg(pl.col("records").sum()).sort("local_hour")
axes[0].bar(by_hour["local_hour"], by_hour["records"], color="#fd8d3c")
axes[0].set(xlabel="local hour", ylabel="records", title="By hour of day")
by_day = kept.group_by("local_dow").agg(pl.col("records").sum()).sort("local_dow")
axes[1].bar([WEEKDAY_NAMES[day - 1][:3] for day in by_day["local_dow"]], by_day["records"], color="#feb24c")
axes[1].set(title="By day of week")
by_month = kept.group_by("local_month").agg(pl.col("records").sum()).sort("local_month")
axes[2].plot(by_month["local_month"], by_month["records"], marker="o", color="#bd0026")
axes[2].set(title="By month")
figure.autofmt_xdate()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Categories
#
# The largest categories in the selection, with the share of their records that had no
# coordinates (which cannot be placed in a cell, so no forecast learns from them).

# %%
categories = (kept.group_by(pl.col("audit_category").alias("category"))
              .agg(pl.col("records").sum(), pl.col("missing_coordinates_records").sum(), pl.col("midnight_records").sum())
              .with_columns(share_of_records=pl.col("records") / pl.col("records").sum(),
                            missing_coordinates_share=pl.col("missing_coordinates_records") / pl.col("records"),
                            midnight_share=pl.col("midnight_records") / pl.col("records"))
              .sort("records", descending=True).head(top_categories)
              .select("category", "records", "share_of_records", "missing_coordinates_share", "midnight_share"))
display(readable(categories, percent=["share_of_records", "missing_coordinates_share", "midnight_share"]))

# %% [markdown]
# ## Where records fall
#
# Located records per km² in each cell, over the whole warehouse. A cell with far fewer
# records than its neighbours may be a gap in the data rather than a safe place.

# %%
connection = open_connection(info.path, read_only=True, spatial=True)
try:
    polygons = cell_geojson(connection)
    density = connection.sql("SELECT cell_id, records_per_km2::DOUBLE AS records_per_km2 "
                             "FROM audit.audit_crime_cells").pl()
finally:
    connection.close()
display(HTML(leaflet_assets().head))
display(HTML(choropleth(polygons.join(density, on="cell_id", how="left"), "records_per_km2",
                        "Located records per km²", "audit_density")))
