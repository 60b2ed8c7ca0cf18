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
# # Model metrics: how well does the ensemble find crime, compared with CompSTAT?
#
# This notebook replays the rolling-origin backtest that Riskcast's evaluate job stores in
# `main.backtest_predictions`, for the hours, days and dates you choose below. It scores every
# model with `ml.backtest.score_backtest` and `ml.metrics`, the functions the pipeline uses, so
# with every hour selected its numbers are the pipeline's own (`docs/evaluation.md` describes
# the method). Change a value in the next cell and run the notebook again to see the effect.

# %% tags=["parameters"]
warehouse = None  # path of a warehouse.duckdb; None: $RISKCAST_HOME/demo/warehouse.duckdb or ./data/demo/...
jurisdiction = None  # jurisdiction name or YAML path; None: the warehouse folder's name
time_zone = None  # None: the jurisdiction's time zone
start_date = None  # first local date kept, "YYYY-MM-DD"; None: the backtest's first
end_date = None  # local date after the last one kept (excluded); None: the backtest's last
hours = list(range(24))  # local hours of the day kept, 0-23
weekdays = list(range(7))  # days of the week kept, 0 = Monday ... 6 = Sunday
coverage = 0.05  # share of cells flagged in each forecast map (and of the area for PAI)
models = None  # models to score, for example ["ensemble", "compstat"]; None: every model in the backtest
aggregations = ["hour", "shift", "day"]  # time scales to score
shift_starts = [0, 8, 16]  # local start hours of the shifts
n_boot = 200  # day-bootstrap resamples for the 95% intervals
seed = 11  # bootstrap seed

# %%
import logging

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from IPython.display import HTML, Markdown, display

from ml.backtest import ScoringSettings, score_backtest
from ml.metrics import flag_top_share, threshold_metrics, threshold_table
from ml.reports.maps import cell_geojson, choropleth, leaflet_assets
from orchestration.warehouse import open_connection
from support import (describe_warehouse, make_selection, read_backtest_predictions, readable, record,
                     select_hours, synthetic_notice)

logging.basicConfig(level=logging.WARNING)
info = describe_warehouse(warehouse, jurisdiction, time_zone)
selection = make_selection(start_date, end_date, hours, weekdays)
display(Markdown(synthetic_notice(info)))
display(Markdown(f"Warehouse: `{info.path}` ({info.display_name}, times in {info.time_zone}). "
                 f"Selection: {selection.describe()}."))

# %% [markdown]
# ## The forecasts
#
# Each row of the backtest is one cell in one hour: every model's risk for it, made before the
# day began, and the number of incidents recorded in it (`crime_count`).

# %%
predictions, kinds = read_backtest_predictions(info)
if models is not None:
    missing = [name for name in models if name not in kinds]
    if missing:
        raise ValueError(f"models {missing} are not in the backtest; it has {sorted(kinds)}")
    kinds = {name: kind for name, kind in kinds.items() if name in models or name == "ensemble"}
selected = select_hours(predictions, info, selection)
cells = selected["cell_id"].n_unique()
base_rate = float((selected["crime_count"] > 0).mean())
summary = pl.DataFrame({
    "quantity": ["cell-hours selected", "cells", "hours", "incidents", "cell-hours with an incident (base rate)"],
    "value": [f"{selected.height:,}", f"{cells:,}", f"{selected['hour'].n_unique():,}",
              f"{int(selected['crime_count'].sum()):,}", f"{base_rate:.3%}"],
})
display(readable(summary))
record("base_rate", base_rate)

# %% [markdown]
# ## Why accuracy misleads here
#
# Crime is rare in any one cell and hour. When only a small share of cell-hours has an
# incident, a "model" that never flags anything is right almost every time: its accuracy is
# one minus the base rate. The table compares it with each model flagging the top
# `coverage` share of cells in every hour. Accuracy barely moves; what matters is how many
# of the incidents the flags catch (the true positive rate, TPR) and how many flags are right
# (precision).

# %%
observed = (selected["crime_count"] > 0).to_numpy()
hour_slices = selected["hour"].rank("dense").cast(pl.Int64).to_numpy()
never = threshold_table(observed, selected["ensemble"].to_numpy(), [float(selected["ensemble"].max()) + 1.0])
rows = [{"rule": "flag nothing", "accuracy": never["accuracy"][0], "tpr": 0.0, "precision": None,
         "false_flags_per_hit": None}]
for model in kinds:
    flags = flag_top_share(selected[model].to_numpy(), hour_slices, coverage)
    result = threshold_metrics(observed, flags)
    rows.append({"rule": f"{model}: top {coverage:.0%} of cells each hour", "accuracy": result.accuracy,
                 "tpr": result.tpr, "precision": result.precision,
                 "false_flags_per_hit": result.fp / result.tp if result.tp else None})
accuracy_table = pl.DataFrame(rows, schema={"rule": pl.String, "accuracy": pl.Float64, "tpr": pl.Float64,
                                            "precision": pl.Float64, "false_flags_per_hit": pl.Float64})
display(readable(accuracy_table, digits=2, percent=["accuracy", "tpr", "precision"]))
record("accuracy_table", accuracy_table)

# %% [markdown]
# ## What a false positive costs
#
# A flag is a cell a department would patrol for the hour. A flag in a cell where nothing
# happens (a false positive) spends officer time there that was not needed, and it puts the
# residents of that place under patrol without cause. The column `false_flags_per_hit` above
# says how many such flags each model makes for every flag that lands on an incident. The
# police deployment notebook turns flags into officers, overtime and expected crimes prevented.

# %% [markdown]
# ## Every metric, with 95% intervals
#
# `score_backtest` scores each model per hour, per shift and per day (a cell counts as
# positive when it had an incident in that period). The interval comes from resampling whole
# days (a paired day bootstrap). Read it as: other days like these would give values in this
# range. Higher is better for ROC-AUC, PR-AUC, PAI, PEI, hit rate, TPR and precision; lower is
# better for the Brier score, log loss, ECE and FPR.

# %%
settings = ScoringSettings(time_zone=info.time_zone, coverage=coverage, aggregations=tuple(aggregations),
                           shift_starts=tuple(shift_starts), n_boot=n_boot, seed=seed)
tables = score_backtest(selected, kinds, settings)
shown = ["roc_auc", "pr_auc", "pai", "pei_star", "hit_rate", "tpr", "fpr", "precision", "accuracy", "brier"]
for period in aggregations:
    table = (tables.metrics.filter((pl.col("aggregation") == period) & pl.col("metric").is_in(shown))
             .pivot(on="metric", index="model", values="value")
             .select("model", *[name for name in shown if name in tables.metrics["metric"].unique().to_list()]))
    display(Markdown(f"**Per {period}** (base rate {tables.base_rates[period]:.3%} of cell-{period}s)"))
    display(readable(table))
record("metrics", tables.metrics)

# %% [markdown]
# ## Ensemble minus each baseline
#
# A difference whose interval excludes 0 is a difference these days support; one whose
# interval includes 0 is not. The p-value tests "no difference" with the same resamples.

# %%
day_or_first = "day" if "day" in aggregations else aggregations[0]
comparisons = (tables.comparisons.filter((pl.col("aggregation") == day_or_first)
                                         & pl.col("metric").is_in(["roc_auc", "pai", "hit_rate"]))
               .select("model", "metric", "reference_value", "baseline_value", "difference", "ci_low", "ci_high",
                       "p_value").rename({"model": "baseline", "reference_value": "ensemble"}).sort("metric", "baseline"))
display(Markdown(f"Per {day_or_first}:"))
display(readable(comparisons))

# %% [markdown]
# ## How to read PAI and the hotspot curve
#
# Flag the highest-risk cells until they cover a share of the city's area, then count the
# share of incidents that fell in them (the hit rate). PAI, the Predictive Accuracy Index, is
# the hit rate divided by the area share: a PAI of 4 means the flagged area holds four times
# the incidents its size alone would hold, and a map drawn at random scores about 1. The
# curve shows the hit rate at 1 to 20% of the area. PEI* compares the model with a perfect
# map of the same flagged area: 1 is the best possible.

# %%
curve = tables.hotspot_curve.filter(pl.col("aggregation") == aggregations[0])
figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for model in kinds:
    points = curve.filter(pl.col("model") == model).sort("coverage")
    style = {"linewidth": 2.5} if model in ("ensemble", "compstat") else {"linewidth": 1, "alpha": 0.7}
    left.plot(points["coverage"] * 100, points["hit_rate"] * 100, marker="o", label=model, **style)
    right.plot(points["coverage"] * 100, points["pai"], marker="o", label=model, **style)
left.plot([0, 20], [0, 20], color="grey", linestyle=":", label="area share (random)")
left.set(xlabel="share of the area flagged (%)", ylabel="share of incidents in it (%)",
         title=f"Hit rate per {aggregations[0]}")
right.axhline(1, color="grey", linestyle=":")
right.set(xlabel="share of the area flagged (%)", ylabel="PAI", title=f"PAI per {aggregations[0]}")
left.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## ROC curves
#
# The ROC curve plots the share of incident cell-hours caught (TPR) against the share of
# quiet cell-hours flagged (FPR) as the flagging threshold falls. Only its left edge matters
# for patrols: no department flags more than a few percent of the city.

# %%
roc = tables.curves.filter((pl.col("aggregation") == aggregations[0]) & (pl.col("curve") == "roc"))
figure, axis = plt.subplots(figsize=(5.5, 4.5))
for model in kinds:
    points = roc.filter(pl.col("model") == model)
    axis.plot(points["x"], points["y"], label=model, linewidth=2.5 if model in ("ensemble", "compstat") else 1)
axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
axis.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC per {aggregations[0]}")
axis.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Where each model flags
#
# The maps show, for each cell, the share of selected hours in which the ensemble and
# CompSTAT put it in the top `coverage` share of cells. Hover over a cell for its value.

# %%
flag_shares = selected.select("cell_id").with_columns(
    **{model: pl.Series(flag_top_share(selected[model].to_numpy(), hour_slices, coverage))
       for model in ("ensemble", "compstat") if model in kinds}
).group_by("cell_id").mean()
connection = open_connection(info.path, read_only=True, spatial=True)
try:
    polygons = cell_geojson(connection)
finally:
    connection.close()
mapped = polygons.join(flag_shares, on="cell_id", how="left")
display(HTML(leaflet_assets().head))
for model in ("ensemble", "compstat"):
    if model in kinds:
        display(HTML(choropleth(mapped, model, f"Share of hours flagged by {model}", f"flags_{model}",
                                formatter=lambda value: "n/a" if value is None else f"{value:.0%}")))

# %% [markdown]
# ## What the pipeline stored
#
# With every hour, weekday and date selected, the same coverage and the same models, the
# values above equal `main.backtest_metrics`, which the evaluate job wrote. The intervals
# match too when `n_boot` and `seed` equal the run file's. The check below compares the point values.

# %%
stored = pl.DataFrame()
connection = open_connection(info.path, read_only=True)
try:
    stored = connection.sql("SELECT model, aggregation, metric, value FROM main.backtest_metrics").pl()
finally:
    connection.close()
joined = tables.metrics.join(stored, on=["model", "aggregation", "metric"], how="inner", suffix="_stored")
differing = joined.filter((pl.col("value") - pl.col("value_stored")).abs().fill_null(0) > 1e-9)
display(Markdown(f"{joined.height} metric values are in both; {differing.height} differ from the stored ones "
                 f"(any difference comes from the selection or the parameters above)."))
record("stored_differences", differing.height)
