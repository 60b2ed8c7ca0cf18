"""Ensemble training (group ``models``): bagged torch nets and LightGBM, with a manifest.

The asset trains on the run file's training window, saves the ensemble under
``RISKCAST_HOME/<jurisdiction>/models/<model_id>``, writes its manifest and model card, and
registers it in ``main.model_registry`` so scoring can pick the latest model trained before the
hour it scores.
"""


import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import numpy as np

from ml.ensemble import EnsembleConfig, RiskEnsemble
from ml.feature_store import read_window
from ml.manifest import array_sha256, code_version, package_versions, write_manifest, write_model_card
from ml.model_data import build_training_set
from orchestration.jurisdiction import RunConfig
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

REPOSITORY = Path(__file__).resolve().parents[2]

REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS main.model_registry (
    model_id VARCHAR PRIMARY KEY,
    train_start TIMESTAMP,
    train_end TIMESTAMP,
    path VARCHAR,
    training_rows BIGINT,
    training_positives BIGINT,
    base_rate DOUBLE,
    code_version VARCHAR
)
"""


def ensemble_config(run: RunConfig) -> EnsembleConfig:
    """Build the ensemble's config from the run file's ``ensemble`` block and the run's seed."""
    settings = run.ensemble.model_dump()
    settings["hidden_sizes"] = tuple(settings["hidden_sizes"])
    return EnsembleConfig(**settings, seed=run.seed)


def model_identifier(jurisdiction: str, train_end: datetime, data_hash: str, parameters: dict) -> str:
    digest = hashlib.sha256((data_hash + json.dumps(parameters, sort_keys=True, default=str)).encode())
    return f"{jurisdiction}-{train_end:%Y%m%dT%H}-{digest.hexdigest()[:10]}"


def register_model(warehouse: Path, manifest: dict) -> None:
    with connect(warehouse) as connection:
        connection.execute(REGISTRY_DDL)
        connection.execute("DELETE FROM main.model_registry WHERE model_id = ?", [manifest["model_id"]])
        connection.execute(
            "INSERT INTO main.model_registry VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [manifest["model_id"], manifest["train_start_naive"], manifest["train_end_naive"],
             manifest["path"], manifest["training_rows"], manifest["training_positives"],
             manifest["base_rate"], manifest["code_version"]],
        )


@dg.asset(group_name="models", deps=["cell_hour_features"], kinds={"pytorch", "lightgbm"})
def risk_ensemble(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Train the ensemble that gives each cell's probability of a violent incident in an hour."""
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    window = run.train

    with connect(settings.warehouse_path, read_only=True) as connection:
        n_cells = connection.sql("SELECT count(*) FROM marts.dim_cells").fetchone()[0]
    panel = read_window(settings.features_dir, window.start, window.end, n_cells)
    training = build_training_set(panel, n_cells, run.horizon_hours, np.random.default_rng(run.seed))
    del panel
    context.log.info(f"{jurisdiction.name}: training on {training.labels.size} rows, "
                     f"{int(training.labels.sum())} positives, {window.start} to {window.end}")

    config = ensemble_config(run)
    ensemble = RiskEnsemble(config).fit(training.features, training.labels, training.target_hours,
                                        training.feature_names)

    data_hash = array_sha256(training.features, training.labels)
    parameters = {**config.__dict__, "horizon_hours": run.horizon_hours}
    model_id = model_identifier(jurisdiction.name, window.end, data_hash, parameters)
    folder = settings.models_dir / model_id
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    ensemble.save(folder)

    manifest = {
        "model_id": model_id,
        "jurisdiction": jurisdiction.name,
        "jurisdiction_display_name": jurisdiction.display_name,
        "synthetic_data": jurisdiction.synthetic,
        "spatial_unit": jurisdiction.cells.spatial_unit,
        "train_start": window.start.isoformat(),
        "train_end": window.end.isoformat(),
        "train_start_naive": window.start.astimezone(timezone.utc).replace(tzinfo=None),
        "train_end_naive": window.end.astimezone(timezone.utc).replace(tzinfo=None),
        "horizon_hours": run.horizon_hours,
        "training_rows": int(training.labels.size),
        "training_positives": int(training.labels.sum()),
        "base_rate": training.base_rate,
        "training_data_sha256": data_hash,
        "feature_names": training.feature_names,
        "parameters": parameters,
        "seed": run.seed,
        "weights": ensemble.weights,
        "members": ensemble.member_report,
        "code_version": code_version(REPOSITORY),
        "packages": package_versions(),
        "path": str(folder),
    }
    write_manifest(folder, manifest)
    write_model_card(folder, manifest, jurisdiction.synthetic)
    register_model(settings.warehouse_path, manifest)

    context.log.info(f"{jurisdiction.name}: registered model {model_id} with weights {ensemble.weights}")
    return dg.MaterializeResult(metadata={
        "model_id": dg.MetadataValue.text(model_id),
        "training_rows": dg.MetadataValue.int(int(training.labels.size)),
        "training_positives": dg.MetadataValue.int(int(training.labels.sum())),
        "base_rate": dg.MetadataValue.float(training.base_rate),
        "weights": dg.MetadataValue.json(ensemble.weights),
        "members": dg.MetadataValue.json(ensemble.member_report),
        "model_card": dg.MetadataValue.path(str(folder / "MODEL_CARD.md")),
        "training_data_sha256": dg.MetadataValue.text(data_hash),
    })
