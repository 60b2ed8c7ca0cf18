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
# # Bias audit: where do the flags fall, and is the ensemble fairer than CompSTAT?
#
# A forecast sends patrols to the cells it flags. This notebook picks groups of cells by the
# census make-up of their residents. For each group it measures how often each model flags it,
# how often those flags are right, and how much patrol it draws compared with its share of
# residents and of recorded incidents. It compares the ensemble with CompSTAT, today's practice, through
# `ml.bias` (`docs/bias.md` describes the method). Groups are sets of places, never people.

# %% tags=["parameters"]
warehouse = None  # path of a warehouse.duckdb; None: $RISKCAST_HOME/demo/warehouse.duckdb or ./data/demo/...
jurisdiction = None  # jurisdiction name or YAML path; None: the warehouse folder's name
time_zone = None  # None: the jurisdiction's time zone
start_date = None  # first local date kept, "YYYY-MM-DD"; None: the backtest's first
end_date = None  # local date after the last one kept (excluded); None: the backtest's last
hours = list(range(24))  # local hours of the day kept, 0-23
weekdays = list(range(7))  # days of the week kept, 0 = Monday ... 6 = Sunday
coverage = 0.05  # share of cells flagged in each hourly forecast map
models = ["ensemble", "compstat"]  # the model and its baseline
n_boot = 200  # day-bootstrap resamples for the 95% intervals
seed = 0  # bootstrap seed
gate_metric = "flag_rate"  # the release gate's metric
gate_margin = 0.1  # how much further from parity than the baseline the model may be
gate_direction = "both"  # "both", or "higher" to bound only groups flagged more than their reference

# %%
import logging

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from IPython.display import HTML, Markdown, display

from ml.bias import disparity_gate, group_metrics
from ml.metrics import flag_top_share
from ml.reports.maps import cell_geojson, choropleth, leaflet_assets
from orchestration.warehouse import open_connection
from support import (describe_warehouse, make_selection, measured_groups, read_backtest_predictions, read_table,
                     readable, record, select_hours, synthetic_notice)

logging.basicConfig(level=logging.WARNING)
info = describe_warehouse(warehouse, jurisdiction, time_zone)
selection = make_selection(start_date, end_date, hours, weekdays)
display(Markdown(synthetic_notice(info)))
display(Markdown(f"Warehouse: `{info.path}` ({info.display_name}, times in {info.time_zone}). "
                 f"Selection: {selection.describe()}."))

# %% [markdown]
# ## The groups
#
# `main.bias_cell_groups` puts each cell into population-weighted quintiles of each census
# column: each quintile holds about a fifth of the residents. A group is a set of quintiles,
# for example the two fifths of residents who live in the cells with the highest Hispanic
# share. Each group is compared with its reference, the cells in the other quintiles.

# %%
groups = read_table(info, "main.bias_cell_groups")
definitions = measured_groups(info, groups)
total_population = float(groups["population"].fill_null(0).sum())
group_table = pl.DataFrame([{
    "group": definition.name,
    "definition": definition.description or f"{definition.column} quintiles {list(definition.quintiles)}",
    "cells": int(groups[definition.name].sum()),
    "population_share": float(groups.filter(pl.col(definition.name))["population"].fill_null(0).sum())
    / total_population if total_population else None,
} for definition in definitions])
display(readable(group_table, percent=["population_share"]))

# %% [markdown]
# ## Group metrics of both models
#
# In every hourly forecast map, each model flags the top `coverage` share of cells. Per group:
#
# - **flag rate**: the share of the group's cell-hours that are flagged;
# - **TPR**: of the group's cell-hours with an incident, the share flagged;
# - **FPR**: of its cell-hours without one, the share flagged (patrol without cause);
# - **precision**: of its flags, the share that had an incident;
# - **PAI** within the group, and **exposure to population**: the group's share of all flags
#   over its share of residents (above 1, more patrol than its size).
#
# The ratio divides the group's value by its reference's: 1 is parity.

# %%
predictions, kinds = read_backtest_predictions(info)
missing = [model for model in models if model not in kinds]
if missing:
    raise ValueError(f"models {missing} are not in the backtest; it has {sorted(kinds)}")
selected = select_hours(predictions, info, selection).select("cell_id", "hour", "crime_count", "area_km2", *models)
metrics = group_metrics(selected, groups, definitions, models=models, coverage=coverage,
                        time_zone=info.time_zone, n_boot=n_boot, seed=seed)
shown = ["flag_rate", "tpr", "fpr", "precision", "pai", "exposure_to_population"]
for metric in shown:
    table = (metrics.filter(pl.col("metric") == metric)
             .select("group", "model", "value", "ci_low", "ci_high", "reference_value", "ratio")
             .sort("group", "model"))
    display(Markdown(f"**{metric}**"))
    display(readable(table))
record("group_metrics", metrics)

# %% [markdown]
# ## Flag-rate ratios with their intervals
#
# Each bar is a group's flag rate over its reference's, with the 95% interval from resampling
# days. A model whose bars sit further from 1 than CompSTAT's spreads its patrols less evenly.

# %%
ratios = metrics.filter(pl.col("metric") == "flag_rate").sort("group", "model")
names = [definition.name for definition in definitions]
figure, axis = plt.subplots(figsize=(8, 0.6 * len(names) + 1.5))
for offset, model in zip((-0.18, 0.18), models):
    rows = ratios.filter(pl.col("model") == model)
    values = dict(zip(rows["group"], rows["ratio"]))
    lows = dict(zip(rows["group"], rows["ratio_ci_low"]))
    highs = dict(zip(rows["group"], rows["ratio_ci_high"]))
    positions = np.arange(len(names)) + offset
    points = np.array([values.get(name) if values.get(name) is not None else np.nan for name in names], dtype=float)
    errors = np.array([[max(points[i] - (lows.get(name) or points[i]), 0), max((highs.get(name) or points[i]) - points[i], 0)]
                       for i, name in enumerate(names)]).T
    axis.barh(positions, points, height=0.34, xerr=errors, label=model, alpha=0.85)
axis.axvline(1, color="black", linewidth=1)
axis.set_yticks(np.arange(len(names)), names)
axis.set_xlabel("flag rate of the group / flag rate of its reference")
axis.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Why group metrics can conflict
#
# When two groups have different base rates (shares of cell-hours with a recorded incident),
# no model can give them equal flag rates, equal TPR and equal precision at once: flagging
# each group in proportion to its incidents makes the flag rates unequal, and equal flag rates
# make the TPR or precision unequal (Kleinberg, Mullainathan & Raghavan 2016; Chouldechova 2017).
# Which one to equalise is a policy choice. Riskcast's release gate bounds the flag rate
# relative to CompSTAT's, and this table shows the base rates that drive the trade-off.

# %%
base_rates = []
for definition in definitions:
    members = selected.join(groups.select("cell_id", definition.name), on="cell_id").filter(pl.col(definition.name))
    base_rates.append({"group": definition.name, "cell_hours": members.height,
                       "base_rate": float((members["crime_count"] > 0).mean()) if members.height else None})
overall = pl.DataFrame([{"group": "whole city", "cell_hours": selected.height,
                         "base_rate": float((selected["crime_count"] > 0).mean())}])
display(readable(pl.concat([pl.DataFrame(base_rates), overall]), percent=["base_rate"]))

# %% [markdown]
# ## The release gate
#
# The gate reads each group's ratio as a distance from parity, `max(r, 1/r)`, and fails the
# ensemble when its distance exceeds CompSTAT's by more than the margin in any group.

# %%
gate = disparity_gate(metrics, metric=gate_metric, margin=gate_margin, model=models[0], baseline=models[1],
                      direction=gate_direction)
display(Markdown(f"**{'Passed' if gate.passed else 'Failed'}.** {gate.message}"))
display(readable(gate.checks))
record("gate", {"passed": gate.passed, "message": gate.message})
releases = read_table(info, "main.model_releases")
latest = releases.sort("evaluated_at", descending=True).head(1)
if latest.height:
    display(Markdown(f"The pipeline's last gate ({latest['evaluated_at'][0]}): {latest['status'][0]}. "
                     f"{latest['message'][0]}"))

# %% [markdown]
# ## Where the groups are, and where each model flags
#
# The first maps show the groups' cells; the last two the share of selected hours in which
# each model flagged each cell.

# %%
connection = open_connection(info.path, read_only=True, spatial=True)
try:
    polygons = cell_geojson(connection)
finally:
    connection.close()
hour_slices = selected["hour"].rank("dense").cast(pl.Int64).to_numpy()
flags = selected.select("cell_id").with_columns(**{
    model: pl.Series(flag_top_share(selected[model].to_numpy(), hour_slices, coverage)) for model in models
}).group_by("cell_id").mean()
mapped = polygons.join(groups, on="cell_id", how="left").join(flags, on="cell_id", how="left")
display(HTML(leaflet_assets().head))
for definition in definitions[:3]:
    display(HTML(choropleth(mapped, definition.name, definition.description or definition.name,
                            f"group_{definition.name}", kind="categorical",
                            labels={True: "in the group", False: "not in the group"})))
for model in models:
    display(HTML(choropleth(mapped, model, f"Share of hours flagged by {model}", f"bias_flags_{model}",
                            formatter=lambda value: "n/a" if value is None else f"{value:.0%}")))

# %% [markdown]
# ## Input bias: arrests per crime type
#
# Some crime types are recorded mostly when police stop someone (narcotics, weapons). Their
# records follow where police already patrol, so a model trained on them would send patrols
# back to the same places. `main.bias_input_audit` gives, per type, the share of records with
# an arrest and where the records fall over the groups.

# %%
audit = read_table(info, "main.bias_input_audit")
if audit.height == 0:
    display(Markdown(f"{info.display_name}'s records carry no arrest flag, so there is no input-bias table."))
else:
    display(readable(audit.filter(pl.col("group") == "all").sort("records", descending=True)
                     .select("category", "category_kind", "records", "arrest_share").head(15),
                     percent=["arrest_share"]))

# %% [markdown]
# ## The feedback loop, in a city whose truth is known
#
# `ml.simulation` plants a risk surface in a synthetic city and lets a simple forecaster send
# patrols day after day. When the forecaster learns only from what patrols discover, patrols
# drift away from the true risk (Ensign et al. 2018); learning from victim reports does not.
# The divergence is the total variation distance between the patrol allocation and the true
# risk shares: 0 is a perfect match.

# %%
summary = read_table(info, "main.sim_feedback_summary")
display(readable(summary))
daily = read_table(info, "main.sim_feedback_daily")
figure, axis = plt.subplots(figsize=(7, 3.5))
for setting in daily["setting"].unique().sort():
    rows = daily.filter(pl.col("setting") == setting).sort("day")
    axis.plot(rows["day"], rows["divergence"], label=setting)
axis.set(xlabel="simulated day", ylabel="divergence from true risk", title="Feedback-loop simulation")
axis.legend()
plt.show()
