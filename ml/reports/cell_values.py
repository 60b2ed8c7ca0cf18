"""Per-cell values that the Bias Audit and Police Deployment maps colour cells by.

``cell_flag_summary`` flags cells in each forecast map the way ``ml.bias.group_metrics`` does
(``ml.metrics.flag_top_share``, the top ``coverage`` share of cells per distinct time), so the maps
and the group tables count the same flags. ``flagged_share_by_cell`` reads a deployment plan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import polars as pl

from ml.deployment import DeploymentPlan
from ml.metrics import check_share, flag_top_share

logger = logging.getLogger(__name__)


def cell_flag_summary(frame: pl.DataFrame, models: Sequence[str], coverage: float) -> pl.DataFrame:
    """Summarise every cell's risk and flags per model over a forecast frame.

    ``frame`` has cell_id, a time column (period_start when present, else hour), one risk column
    per model and optionally period_hours, as ``ml.bias.group_metrics`` reads it. Returns one
    row per cell: for each model ``mean_risk_<model>`` (mean over its forecast maps),
    ``flag_rate_<model>`` (share of its maps that flag it) and ``exposure_share_<model>`` (its
    share of the city's flagged cell-hours).
    """
    check_share(coverage, "coverage")
    time_column = "period_start" if "period_start" in frame.columns else "hour"
    missing = [name for name in ("cell_id", time_column, *models) if name not in frame.columns]
    if missing:
        raise ValueError(f"the forecast frame lacks columns {missing} (it has {frame.columns}); pass "
                         "backtest_predictions with one risk column per model")

    hours = pl.col("period_hours").cast(pl.Float64) if "period_hours" in frame.columns else pl.lit(1.0)
    rows = frame.select(pl.col("cell_id").cast(pl.String), pl.col(time_column).dt.epoch("s").alias("slice"),
                        hours.alias("hours"), *[pl.col(model).cast(pl.Float64) for model in models])

    summaries = []
    for model in models:
        flagged = flag_top_share(rows[model].to_numpy(), rows["slice"].to_numpy(), coverage)
        with_flags = rows.with_columns(flagged=pl.Series(flagged))
        total_hours = float(with_flags.filter(pl.col("flagged"))["hours"].sum())
        summary = with_flags.group_by("cell_id").agg(
            pl.col(model).mean().alias(f"mean_risk_{model}"),
            pl.col("flagged").mean().alias(f"flag_rate_{model}"),
            (pl.col("hours").filter(pl.col("flagged")).sum() / total_hours if total_hours else pl.lit(None, pl.Float64))
            .alias(f"exposure_share_{model}"),
        )
        summaries.append(summary)
        logger.info("cell summary of %s: %d cells, %d of %d cell-periods flagged at coverage %s", model,
                    summary.height, int(flagged.sum()), rows.height, coverage)

    result = summaries[0]
    for summary in summaries[1:]:
        result = result.join(summary, on="cell_id", how="full", coalesce=True)
    return result.sort("cell_id")


def flagged_share_by_cell(plan: DeploymentPlan) -> pl.DataFrame:
    """Return cell_id and flagged_share_<model>: the share of the plan's shifts that flag the cell."""
    return (plan.cells.group_by("cell_id").agg(pl.col("flagged").mean().alias(f"flagged_share_{plan.model}"))
            .sort("cell_id"))
