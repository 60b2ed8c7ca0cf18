"""Scoring (group ``scoring``): 72-hour risk forecasts for every cell, issued every hour.

Partition hour ``c`` is a forecast issued at the start of ``c`` from data before ``c``, covering
target hours ``c`` to ``c + 71``. It uses the latest registered ensemble whose training window
ended at or before ``c``. Rows go to the warehouse table ``main.risk_scores``; a run replaces the
rows of the issue hours in its window, so reruns never duplicate.
"""


from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from ml.ensemble import RiskEnsemble
from ml.feature_store import read_window
from ml.model_data import build_scoring_frame
from orchestration.partitions import chunks, run_window
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

CHUNK = timedelta(hours=24)

RISK_SCORES_DDL = """
CREATE TABLE IF NOT EXISTS main.risk_scores (
    cell_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    horizon_hours SMALLINT NOT NULL,
    risk DOUBLE NOT NULL,
    relative_risk DOUBLE,
    model_id VARCHAR NOT NULL,
    issued_at TIMESTAMP NOT NULL
)
"""


class NoModelError(LookupError):
    """No registered ensemble was trained before the hours being scored."""


def latest_model(warehouse: Path, issued_from: datetime) -> tuple[str, Path]:
    with connect(warehouse, read_only=True) as connection:
        exists = connection.sql("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_schema = 'main' AND table_name = 'model_registry'").fetchone()[0]
        row = None
        if exists:
            row = connection.execute(
                "SELECT model_id, path FROM main.model_registry WHERE train_end <= ? "
                "ORDER BY train_end DESC, model_id DESC LIMIT 1", [issued_from.replace(tzinfo=None)]).fetchone()
    if row is None:
        raise NoModelError(f"no ensemble trained before {issued_from.isoformat()} is registered; "
                           f"materialize risk_ensemble with a training window ending at or before that hour")
    return row[0], Path(row[1])


def relative_risk(keys: pl.DataFrame, risk: np.ndarray) -> pl.DataFrame:
    """Add risk and risk relative to the mean over cells for the same issue hour and horizon."""
    scored = keys.with_columns(pl.Series("risk", risk, dtype=pl.Float64))
    return scored.with_columns(
        (pl.col("risk") / pl.col("risk").mean().over(["issued_at", "horizon_hours"])).alias("relative_risk")
    )


def build_scoring_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="risk_scores",
        group_name="scoring",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["cell_hour_features", "risk_ensemble"],
        kinds={"duckdb"},
    )
    def risk_scores(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
        """Probability and relative risk of violent crime per cell for each of the next 72 hours."""
        start, end = run_window(context)
        run = riskcast.run_config()
        jurisdiction = riskcast.jurisdiction()
        settings = riskcast.settings()
        model_id, model_path = latest_model(settings.warehouse_path, start)
        ensemble = RiskEnsemble.load(model_path)

        with connect(settings.warehouse_path, read_only=True) as connection:
            n_cells = connection.sql("SELECT count(*) FROM marts.dim_cells").fetchone()[0]

        pieces = []
        for piece_start, piece_end in chunks(start, end, CHUNK):
            cutoff_rows = read_window(settings.features_dir, piece_start, piece_end, n_cells)
            keys, features = build_scoring_frame(cutoff_rows, run.horizon_hours, jurisdiction.time_zone,
                                                 jurisdiction.holiday_country, jurisdiction.holiday_subdivision,
                                                 ensemble.feature_names)
            pieces.append(relative_risk(keys, ensemble.predict_proba(features)))
            context.log.info(f"scored issue hours {piece_start.isoformat()} to {piece_end.isoformat()}: "
                             f"{keys.height} rows with {model_id}")
        scores = pl.concat(pieces).with_columns(
            pl.lit(model_id).alias("model_id"),
            pl.col("issued_at").dt.replace_time_zone(None),
            pl.col("hour").dt.replace_time_zone(None),
        ).select("cell_id", "hour", "horizon_hours", "risk", "relative_risk", "model_id", "issued_at")

        arrow_table = scores.to_arrow()
        with connect(settings.warehouse_path) as connection:
            connection.execute(RISK_SCORES_DDL)
            connection.execute("BEGIN TRANSACTION")
            connection.execute("DELETE FROM main.risk_scores WHERE issued_at >= ? AND issued_at < ?",
                               [start.replace(tzinfo=None), end.replace(tzinfo=None)])
            connection.register("incoming", arrow_table)
            connection.execute("INSERT INTO main.risk_scores SELECT * FROM incoming")
            connection.unregister("incoming")
            connection.execute("COMMIT")

        context.log.info(f"partitions {context.partition_key_range.start} to {context.partition_key_range.end}: "
                         f"wrote {scores.height} risk scores")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(scores.height),
            "model_id": dg.MetadataValue.text(model_id),
            "issue_hours": dg.MetadataValue.int(int((end - start) / timedelta(hours=1))),
            "mean_risk": dg.MetadataValue.float(float(scores["risk"].mean())),
            "max_risk": dg.MetadataValue.float(float(scores["risk"].max())),
        })

    return risk_scores
