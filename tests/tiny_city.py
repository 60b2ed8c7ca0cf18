"""A tiny hand-made city for training and scoring tests: four cells, hourly features, no extracts.

The warehouse holds only ``marts.dim_cells``; the feature files are built from seeded random
incidents by ``ml.features.build_cell_hour_features``, with no weather, 311 or neighbours. Ensembles are tiny (two nets of eight
units, ten LightGBM trees) so that a refresh partition trains in a few seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import yaml

from ml.feature_store import write_window
from ml.features import LOOKBACK_HOURS, FeatureInputs, build_cell_hour_features
from orchestration.assets.features import build_features_asset, feature_layout
from orchestration.assets.models import build_training_asset
from orchestration.assets.scoring import build_scoring_asset
from orchestration.jurisdiction import JURISDICTIONS_DIR, load_jurisdiction, load_run_config
from orchestration.partitions import (
    hourly_partitions,
    refresh_partitions,
    scoring_model_mapping,
    training_window_mapping,
)
from orchestration.resources import RiskcastResource
from orchestration.settings import RiskcastSettings
from orchestration.warehouse import connect

UTC = timezone.utc
HOUR = timedelta(hours=1)
CELLS = ["C1", "C2", "C3", "C4"]
NAME = "tinycity"
DATA_START = datetime(2023, 1, 1, tzinfo=UTC)
FEATURES_END = datetime(2023, 2, 6, tzinfo=UTC)
# Sundays: refresh partitions 2023-01-15, 2023-01-22 and 2023-01-29 end on the next Sunday.
TRAIN = ("2023-01-15", "2023-01-29")
SCORE = ("2023-01-29", "2023-01-30")
TINY_ENSEMBLE = {"n_nets": 2, "epochs": 2, "hidden_sizes": [8], "lgbm_n_estimators": 10}


def write_tiny_city(folder: Path, targets: list[str], run_name: str = "run.yaml") -> Path:
    """Write the jurisdiction and run files; return the run file."""
    content = yaml.safe_load((JURISDICTIONS_DIR / "demo.yaml").read_text(encoding="utf-8"))
    content.update(name=NAME, display_name="Tiny City (synthetic test data)", data_start="2023-01-01",
                   targets=targets)
    jurisdiction = folder / f"{NAME}-{'-'.join(targets)}.yaml"
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    run_file = folder / run_name
    run_file.write_text(yaml.safe_dump({
        "jurisdiction": str(jurisdiction), "extracts_folder": None,
        "train": {"start": TRAIN[0], "end": TRAIN[1]}, "score": {"start": SCORE[0], "end": SCORE[1]},
        "refresh": {"period": "weekly", "weekday": "sunday", "hour": 0},
        "ensemble": TINY_ENSEMBLE, "seed": 11,
    }), encoding="utf-8")
    return run_file


def incident_counts(seed: int) -> pl.DataFrame:
    """Sparse counts with a different rate per cell, from the features' lookback to FEATURES_END."""
    rng = np.random.default_rng(seed)
    first = DATA_START - LOOKBACK_HOURS * HOUR
    n_hours = int((FEATURES_END - first) / HOUR)
    rows = []
    for cell, rate in zip(CELLS, (0.30, 0.15, 0.08, 0.03), strict=True):
        for step in np.flatnonzero(rng.random(n_hours) < rate):
            hour = first + int(step) * HOUR
            rows.append((cell, hour, "violent", 1))
            rows.append((cell, hour, "other", 1))
            if step % 2:
                rows.append((cell, hour, "robbery", 1))
    return pl.DataFrame(rows, schema={"cell_id": pl.String, "hour": pl.Datetime("us", "UTC"),
                                      "crime_group": pl.String, "incidents": pl.Int64}, orient="row")


def tiny_features(run_file: Path, counts: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """Build the tiny city's feature rows of ``[start, end)`` from sparse group counts."""
    layout = feature_layout(load_jurisdiction(load_run_config(run_file).jurisdiction))
    cells = pl.DataFrame({"cell_id": CELLS, "area_km2": [1.0] * len(CELLS), "population": [None] * len(CELLS)},
                         schema={"cell_id": pl.String, "area_km2": pl.Float64, "population": pl.Float64})
    neighbours = pl.DataFrame(schema={"cell_id": pl.String, "neighbour_id": pl.String})
    inputs = FeatureInputs(cells=cells, neighbours=neighbours, crime_counts=counts)
    return build_cell_hour_features(inputs, layout, start, end, "America/Chicago", "US", "IL")


def build_tiny_home(run_file: Path, home: Path) -> RiskcastSettings:
    """Write the warehouse's cell table and the feature files of DATA_START to FEATURES_END."""
    settings = RiskcastSettings(home=home, jurisdiction=NAME)
    settings.ensure_dirs()
    with connect(settings.warehouse_path) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS marts")
        connection.execute("CREATE OR REPLACE TABLE marts.dim_cells AS SELECT unnest(?) AS cell_id", [CELLS])
    frame = tiny_features(run_file, incident_counts(5), DATA_START, FEATURES_END)
    write_window(settings.features_dir, frame, DATA_START, FEATURES_END)
    return settings


def tiny_assets(run_file: Path) -> list[dg.AssetsDefinition]:
    run = load_run_config(run_file)
    jurisdiction = load_jurisdiction(run.jurisdiction)
    hourly = hourly_partitions(jurisdiction)
    refresh = refresh_partitions(run, jurisdiction)
    return [build_features_asset(hourly), build_training_asset(refresh, training_window_mapping(run)),
            build_scoring_asset(hourly, scoring_model_mapping(run))]


def materialize(run_file: Path, home: Path, asset: str, instance: dg.DagsterInstance,
                partition_key: str | None = None, tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    """Materialize one asset of the tiny city, the others present only as graph neighbours."""
    return dg.materialize(
        tiny_assets(run_file), selection=[asset], partition_key=partition_key, tags=tags, instance=instance,
        resources={"riskcast": RiskcastResource(run_config_path=str(run_file), home=str(home))})


def score_range(first: datetime, last: datetime) -> dict[str, str]:
    """Tags that make one run score the issue hours ``first`` to ``last`` inclusive."""
    return {"dagster/asset_partition_range_start": first.strftime("%Y-%m-%d-%H:%M"),
            "dagster/asset_partition_range_end": last.strftime("%Y-%m-%d-%H:%M")}
