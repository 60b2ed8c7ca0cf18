"""Hourly feature sets (group ``features``): one row per cell per UTC hour, in Parquet files.

A run over any range of hourly partitions builds its whole window in one process, a month at a
time. It replaces exactly those hours in the day files, so a backfill gives the same files whether
it runs as one run, one run per hour or chunks.
"""


from datetime import datetime, timedelta

import dagster as dg
import polars as pl

from ml.feature_store import write_window
from ml.features import HOUR, LOOKBACK_HOURS, build_cell_hour_features
from orchestration.assets.audits import AUDITED_INPUTS
from orchestration.partitions import chunks, run_window
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

CHUNK = timedelta(days=31)


def read_cells(connection) -> list[str]:
    return [row[0] for row in connection.sql("SELECT cell_id FROM marts.dim_cells ORDER BY cell_id").fetchall()]


def read_counts(connection, start: datetime, end: datetime) -> pl.DataFrame:
    return connection.execute(
        "SELECT cell_id, hour, crime_count, violent_count FROM marts.fct_cell_hour_crimes "
        "WHERE hour >= ? AND hour < ? ORDER BY cell_id, hour",
        [start.replace(tzinfo=None), end.replace(tzinfo=None)],
    ).pl().with_columns(pl.col("hour").dt.replace_time_zone("UTC"))


def read_weather(connection, start: datetime, end: datetime) -> pl.DataFrame:
    return connection.execute(
        "SELECT hour, temperature_f, precipitation_in, relative_humidity, wind_speed_mph, weather_missing "
        "FROM marts.fct_hourly_weather WHERE hour >= ? AND hour < ? ORDER BY hour",
        [start.replace(tzinfo=None), end.replace(tzinfo=None)],
    ).pl().with_columns(pl.col("hour").dt.replace_time_zone("UTC"))


def build_features_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="cell_hour_features",
        group_name="features",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # stg_crimes__incidents is read only through fct_cell_hour_crimes, but a direct dependency
        # is what lets its blocking input audit stop this asset: Dagster blocks only the direct
        # children of a checked asset, and the dbt step builds both tables at once.
        deps=["fct_cell_hour_crimes", "fct_hourly_weather", "dim_cells", *AUDITED_INPUTS],
        kinds={"polars", "parquet"},
    )
    def cell_hour_features(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
        """Calendar, lagged violent counts, recent crime and last observed weather per cell and hour."""
        start, end = run_window(context)
        jurisdiction = riskcast.jurisdiction()
        settings = riskcast.settings()

        rows = 0
        weather_missing = 0
        positives = 0
        with connect(settings.warehouse_path, read_only=True) as connection:
            cells = read_cells(connection)
            for piece_start, piece_end in chunks(start, end, CHUNK):
                counts = read_counts(connection, piece_start - LOOKBACK_HOURS * HOUR, piece_end)
                weather = read_weather(connection, piece_start - HOUR, piece_end - HOUR)
                frame = build_cell_hour_features(
                    cells, counts, weather, piece_start, piece_end, jurisdiction.time_zone,
                    jurisdiction.holiday_country, jurisdiction.holiday_subdivision)
                write_window(settings.features_dir, frame, piece_start, piece_end)

                rows += frame.height
                weather_missing += int(frame["weather_missing"].sum())
                positives += int((frame["label_violent"] > 0).sum())
                context.log.info(f"features {piece_start.isoformat()} to {piece_end.isoformat()}: "
                                 f"{frame.height} rows for {len(cells)} cells")

        context.log.info(f"partitions {context.partition_key_range.start} to "
                         f"{context.partition_key_range.end}: {rows} feature rows written")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(rows),
            "cells": dg.MetadataValue.int(len(cells)),
            "window_start": dg.MetadataValue.text(start.isoformat()),
            "window_end": dg.MetadataValue.text(end.isoformat()),
            "weather_missing_share": dg.MetadataValue.float(weather_missing / rows if rows else 0.0),
            "violent_cell_hour_share": dg.MetadataValue.float(positives / rows if rows else 0.0),
            "path": dg.MetadataValue.path(str(settings.features_dir)),
        })

    return cell_hour_features
