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
# # Police deployment: what would patrolling the flagged cells take, and what could it prevent?
#
# This notebook turns each model's flags into a staffing plan per local shift with
# `ml.deployment`: officers sent to every flagged cell, overtime when the floating officers do
# not suffice, and the crimes a patrol might prevent. Every number rests on the assumptions in
# the parameter cell. They are placeholders of plausible size, not measurements: set them to
# your department's before reading the results (`docs/bias.md`, "Deployment simulation").

# %% tags=["parameters"]
warehouse = None  # path of a warehouse.duckdb; None: $RISKCAST_HOME/demo/warehouse.duckdb or ./data/demo/...
jurisdiction = None  # jurisdiction name or YAML path; None: the warehouse folder's name
time_zone = None  # None: the jurisdiction's time zone
start_date = None  # first local date kept, "YYYY-MM-DD"; None: the backtest's first
end_date = None  # local date after the last one kept (excluded); None: the backtest's last
hours = list(range(24))  # shifts kept by their local start hour, 0-23
weekdays = list(range(7))  # shifts kept by their local weekday, 0 = Monday ... 6 = Sunday
coverage = 0.05  # share of cells flagged in each shift
models = ["ensemble", "compstat"]  # models compared
shift_starts = [0, 8, 16]  # local start hours of the shifts
officers_per_shift = 300  # sworn officers on duty in one shift
regular_patrol_share = 0.8  # share of them on regular beat patrol; the rest float
officers_per_flagged_cell = 2  # floating officers sent to each flagged cell
shift_hours = 8  # hours per shift
prevention_probability = 0.1  # chance that a patrol prevents each crime in its cell during the shift
max_overtime_share = 0.1  # most officers on overtime in one shift, as a share of officers_per_shift
overtime_rate = 1.5  # overtime pay over straight-time pay
officer_hourly_cost = 60.0  # straight-time cost of one officer-hour

# %%
import logging

import matplotlib.pyplot as plt
import polars as pl
from IPython.display import HTML, Markdown, display

from ml.deployment import DeploymentAssumptions, group_exposure
from ml.reports.maps import cell_geojson, choropleth, leaflet_assets
from orchestration.warehouse import open_connection
from support import (compare_selected_shifts, describe_warehouse, make_selection, read_backtest_predictions,
                     read_table, readable, record, select_whole_days, synthetic_notice)

logging.basicConfig(level=logging.WARNING)
info = describe_warehouse(warehouse, jurisdiction, time_zone)
selection = make_selection(start_date, end_date, hours, weekdays)
assumptions = DeploymentAssumptions(
    officers_per_shift=officers_per_shift, regular_patrol_share=regular_patrol_share,
    officers_per_flagged_cell=officers_per_flagged_cell, shift_hours=shift_hours,
    prevention_probability=prevention_probability, max_overtime_share=max_overtime_share,
    overtime_rate=overtime_rate, officer_hourly_cost=officer_hourly_cost,
)
display(Markdown(synthetic_notice(info)))
display(Markdown(f"Warehouse: `{info.path}` ({info.display_name}, times in {info.time_zone}). "
                 f"Selection: {selection.describe()}. Floating officers per shift: "
                 f"{assumptions.floating_officers}; overtime cap: {assumptions.max_overtime_officers} officers."))

# %% [markdown]
# ## The plan, model by model
#
# Each shift, a model flags the top `coverage` share of cells by its risk for the shift. Each
# flagged cell gets `officers_per_flagged_cell` floating officers. If the flagged cells need
# more officers than float, officers are held over on overtime up to the cap, and any beyond
# it are counted as extra officers the department would have to find. The prevention estimate
# is `prevention_probability` times the incidents recorded in flagged cells during their
# shifts. It assumes that crime is not displaced next door and that patrols do not change what
# gets recorded.

# %%
predictions, kinds = read_backtest_predictions(info)
missing = [model for model in models if model not in kinds]
if missing:
    raise ValueError(f"models {missing} are not in the backtest; it has {sorted(kinds)}")
forecasts = select_whole_days(predictions, info, selection).select("cell_id", "hour", "crime_count", "area_km2", *models)
comparison, plans, estimates = compare_selected_shifts(forecasts, models, assumptions, info, selection, risk_kinds=kinds,
                                            coverage=coverage, shift_starts=shift_starts)
display(readable(comparison.transpose(include_header=True, header_name="quantity",
                                      column_names=comparison["model"].to_list()).slice(1), digits=2))
record("comparison", comparison)

# %% [markdown]
# ## What a false positive costs here
#
# Every flagged cell-shift without an incident still takes its officers for the whole shift.
# The table counts those shifts and the officer-hours they take. The same officers could have
# been on regular patrol, and the residents of those cells were patrolled without cause.

# %%
rows = []
for model, estimate in estimates.items():
    flagged = estimate.cells.filter(pl.col("flagged"))
    empty = flagged.filter(pl.col("incidents") == 0)
    rows.append({"model": model, "flagged_cell_shifts": flagged.height, "without_an_incident": empty.height,
                 "share_without": empty.height / flagged.height if flagged.height else None,
                 "officer_hours_without_an_incident": int(empty["officer_hours"].sum())})
display(readable(pl.DataFrame(rows), percent=["share_without"]))

# %% [markdown]
# ## Officers needed per shift
#
# The line is the floating officers available. Shifts above it need overtime or extra officers.

# %%
figure, axis = plt.subplots(figsize=(9, 3.5))
for model, plan in plans.items():
    shifts = plan.shifts.sort("period_start")
    axis.step(shifts["period_start"], shifts["officers_needed"], where="post", label=model)
axis.axhline(assumptions.floating_officers, color="grey", linestyle=":", label="floating officers")
axis.set(xlabel="shift start (UTC)", ylabel="officers needed", title="Officers needed for the flagged cells")
axis.legend()
figure.autofmt_xdate()
plt.show()

# %% [markdown]
# ## Who gets the patrols
#
# Each group's share of the directed officer-hours, against its share of cells and of
# residents. A ratio above 1 means the group's places get more patrol than their size alone
# would give them.

# %%
groups = read_table(info, "main.bias_cell_groups")
membership = groups.select("cell_id", "population", *[name for name, dtype in groups.schema.items()
                                                       if dtype == pl.Boolean])
exposure = pl.concat([group_exposure(plan, membership).with_columns(model=pl.lit(model))
                      for model, plan in plans.items()])
display(readable(exposure.select("group", "model", "cell_share", "population_share", "exposure_share",
                                 "exposure_to_cell_ratio", "exposure_to_population_ratio").sort("group", "model"),
                 percent=["cell_share", "population_share", "exposure_share"]))
record("exposure", exposure)

# %% [markdown]
# ## Where the officers go
#
# The share of selected shifts in which each model flagged each cell.

# %%
connection = open_connection(info.path, read_only=True, spatial=True)
try:
    polygons = cell_geojson(connection)
finally:
    connection.close()
display(HTML(leaflet_assets().head))
for model, plan in plans.items():
    shares = plan.cells.group_by("cell_id").agg(flagged_share=pl.col("flagged").cast(pl.Float64).mean())
    display(HTML(choropleth(polygons.join(shares, on="cell_id", how="left"), "flagged_share",
                            f"Share of shifts flagged by {model}", f"deployment_{model}",
                            formatter=lambda value: "n/a" if value is None else f"{value:.0%}")))

# %% [markdown]
# ## What the pipeline stored
#
# `main.deployment_comparison` contains the evaluate job's plan under the run file's assumptions.
# With every date, shift and weekday selected and the same assumptions, the table above equals it.

# %%
stored = read_table(info, "main.deployment_comparison")
same = stored.select(comparison.columns).sort("model").equals(comparison.sort("model"))
display(Markdown("The comparison above equals `main.deployment_comparison`." if same else
                 "The comparison above differs from `main.deployment_comparison`: the selection or the "
                 "assumptions differ from the run file's."))
display(readable(stored, digits=2))
record("matches_stored", same)
