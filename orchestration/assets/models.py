"""Ensemble training (group ``models``): one ensemble per target for each refresh partition.

``risk_ensemble`` is partitioned by refresh period (weekly by default). The partition that ends
at ``E`` reads the hourly feature partitions of its trailing window ``[E - W, E)`` through a
``TimeWindowPartitionMapping`` (see ``orchestration.partitions``) and trains one ensemble per
jurisdiction target on the label ``label_<target>``; no feature or label at or after ``E`` is
read. Each ensemble is saved under ``RISKCAST_HOME/<jurisdiction>/models/<model_id>`` with its
manifest and model card, and registered in ``main.model_registry`` with its target and
``train_end = E``, so scoring can pick the latest model of each target trained before the hour
it scores.
"""


import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl

from ml.atomic_files import remove_stale_temporaries, replace_folder, temporary_path
from ml.ensemble import EnsembleConfig, RiskEnsemble
from ml.feature_store import open_window
from ml.manifest import (
    array_digest,
    array_sha256,
    code_version,
    feature_file_hashes,
    package_versions,
    write_manifest,
    write_model_card,
)
from ml.model_data import TrainingDesign, build_training_design
from ml.shared_arrays import SharedArrays
from ml.target_weather import TargetWeather, WeatherInputs
from orchestration.crash_hook import crash_point
from orchestration.jurisdiction import JurisdictionConfig, RunConfig, run_targets
from orchestration.resources import RiskcastResource
from orchestration.settings import RiskcastSettings
from orchestration.warehouse import connect
from orchestration.weather_inputs import target_weather

REPOSITORY = Path(__file__).resolve().parents[2]
HOUR = timedelta(hours=1)

REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS main.model_registry (
    model_id VARCHAR PRIMARY KEY,
    target VARCHAR NOT NULL,
    refresh_partition VARCHAR,
    train_start TIMESTAMP,
    train_end TIMESTAMP,
    path VARCHAR,
    training_rows BIGINT,
    training_positives BIGINT,
    base_rate DOUBLE,
    code_version VARCHAR,
    registered_at TIMESTAMP
)
"""
REGISTRY_COLUMNS = ("model_id", "target", "refresh_partition", "train_start", "train_end", "path",
                    "training_rows", "training_positives", "base_rate", "code_version", "registered_at")
# Registries written before targets existed hold violent-crime models only: the training asset
# then trained on the violent label alone.
LEGACY_TARGET = "violent"


def ensemble_config(run: RunConfig) -> EnsembleConfig:
    """Build the ensemble's config from the run file's ``ensemble`` block and the run's seed."""
    settings = run.ensemble.model_dump()
    settings["hidden_sizes"] = tuple(settings["hidden_sizes"])
    return EnsembleConfig(**settings, seed=run.seed)



def model_identifier(jurisdiction: str, target: str, train_end: datetime, data_hash: str,
                     parameters: dict) -> str:
    digest = hashlib.sha256((target + data_hash + json.dumps(parameters, sort_keys=True, default=str)).encode())
    return f"{jurisdiction}-{target}-{train_end:%Y%m%dT%H}-{digest.hexdigest()[:10]}"


def table_columns(connection: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [row[0] for row in connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? "
        "ORDER BY ordinal_position", [table]).fetchall()]


def migrate_registry(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """Create ``main.model_registry`` or add the columns an older version lacks; return those added.

    Rows of an older registry get target ``violent`` (the only target it knew), and no refresh
    partition or registration time.
    """
    connection.execute(REGISTRY_DDL)
    present = table_columns(connection, "model_registry")
    added = []
    if "target" not in present:
        connection.execute(f"ALTER TABLE main.model_registry ADD COLUMN target VARCHAR DEFAULT '{LEGACY_TARGET}'")
        added.append("target")
    for name, kind in (("refresh_partition", "VARCHAR"), ("registered_at", "TIMESTAMP")):
        if name not in present:
            connection.execute(f"ALTER TABLE main.model_registry ADD COLUMN {name} {kind}")
            added.append(name)
    return added


def register_model(warehouse: Path, manifest: dict) -> None:
    """Insert the model's registry row, replacing a row with the same model id."""
    values = {
        "model_id": manifest["model_id"], "target": manifest["target"],
        "refresh_partition": manifest["refresh_partition"], "train_start": naive_utc(manifest["train_start"]),
        "train_end": naive_utc(manifest["train_end"]), "path": manifest["path"],
        "training_rows": manifest["training_rows"], "training_positives": manifest["training_positives"],
        "base_rate": manifest["base_rate"], "code_version": manifest["code_version"],
        "registered_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }
    with connect(warehouse) as connection:
        migrate_registry(connection)
        connection.execute("BEGIN TRANSACTION")
        connection.execute("DELETE FROM main.model_registry WHERE model_id = ?", [manifest["model_id"]])
        connection.execute(
            f"INSERT INTO main.model_registry ({', '.join(REGISTRY_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in REGISTRY_COLUMNS)})",
            [values[name] for name in REGISTRY_COLUMNS])
        connection.execute("COMMIT")


def naive_utc(moment: str) -> datetime:
    return datetime.fromisoformat(moment).astimezone(timezone.utc).replace(tzinfo=None)


def offense_codes_of(jurisdiction: JurisdictionConfig, target: str) -> list[str]:
    """Return ``code (offense)`` for each offense code whose category or group is ``target``."""
    return [f"{code} ({meaning.offense})" for code, meaning in sorted(jurisdiction.offense_codes.items())
            if meaning.category == target or target in meaning.groups]


@dataclass(frozen=True)
class TrainingRequest:
    """Inputs of one refresh partition's training: its window, its design and labels, and the run's settings."""

    partition_key: str
    start: datetime
    end: datetime
    labels: pl.DataFrame
    """The window's ``label_*`` columns, one row per cell and hour in the panel's order."""
    design: TrainingDesign
    """The input matrix, built once: the run's seed gives every target the same rows and horizons."""
    features_digest: "hashlib._Hash"
    """The SHA-256 state after the design's features; each target's data hash adds its labels."""
    feature_files: list[dict]
    run: RunConfig
    jurisdiction: JurisdictionConfig
    settings: RiskcastSettings
    weather_inputs: WeatherInputs | None = None
    weather: TargetWeather | None = None


def weather_entry(request: TrainingRequest) -> dict | None:
    """Return the manifest's record of the weather inputs, with where the target hours' weather came from."""
    if request.weather_inputs is None:
        return None
    entry = request.weather_inputs.manifest_entry()
    entry["target_hour_sources"] = dict(request.weather.coverage) if request.weather is not None else {}
    return entry


def train_target(request: TrainingRequest, target: str, log: dg.DagsterLogManager) -> dict:
    """Train, save, manifest and register the ensemble of one target; return its manifest."""
    run, jurisdiction = request.run, request.jurisdiction
    training = request.design.for_target(request.labels, target)
    log.info(f"{jurisdiction.name} {target}: training on {training.labels.size} rows, "
             f"{int(training.labels.sum())} positives, {request.start.isoformat()} to {request.end.isoformat()}")

    config = ensemble_config(run)
    started = time.perf_counter()
    ensemble = RiskEnsemble(config).fit(training.features, training.labels, training.target_hours,
                                        training.feature_names)
    training_seconds = time.perf_counter() - started

    data_hash = array_sha256(training.labels, prefix=request.features_digest)
    weather_settings = request.weather_inputs.manifest_entry() if request.weather_inputs else None
    parameters = {**config.__dict__, "horizon_hours": run.horizon_hours, "weather": weather_settings}
    model_id = model_identifier(jurisdiction.name, target, request.end, data_hash, parameters)
    final_folder = request.settings.models_dir / model_id
    staged_folder = temporary_path(final_folder)
    remove_stale_temporaries(request.settings.models_dir)
    if staged_folder.exists():
        shutil.rmtree(staged_folder)
    staged_folder.mkdir(parents=True)
    ensemble.save(staged_folder, after_member=crash_after_first_member)

    manifest = {
        "model_id": model_id,
        "target": target,
        "target_offense_codes": offense_codes_of(jurisdiction, target),
        "refresh_partition": request.partition_key,
        "refresh_period": run.refresh.period,
        "jurisdiction": jurisdiction.name,
        "jurisdiction_display_name": jurisdiction.display_name,
        "synthetic_data": jurisdiction.synthetic,
        "spatial_unit": jurisdiction.cells.spatial_unit,
        "train_start": request.start.isoformat(),
        "train_end": request.end.isoformat(),
        "horizon_hours": run.horizon_hours,
        "training_rows": int(training.labels.size),
        "training_positives": int(training.labels.sum()),
        "base_rate": training.base_rate,
        "feature_files": request.feature_files,
        "training_data_sha256": data_hash,
        "feature_names": training.feature_names,
        "weather": weather_entry(request),
        "parameters": parameters,
        "seed": run.seed,
        "weights": ensemble.weights,
        "members": ensemble.member_report,
        "validation_metrics": getattr(ensemble, "validation_metrics", {}),
        "training_seconds": training_seconds,
        "code_version": code_version(REPOSITORY),
        "packages": package_versions(),
        "path": str(final_folder),
    }
    write_manifest(staged_folder, manifest)
    write_model_card(staged_folder, manifest, request.settings.reports_dir / "bias_audit.html")
    replace_folder(staged_folder, final_folder)
    register_model(request.settings.warehouse_path, manifest)
    log.info(f"{jurisdiction.name} {target}: registered model {model_id} (train_end {request.end.isoformat()}) "
             f"with weights {ensemble.weights} after {training_seconds:.1f} s")
    return manifest


def crash_after_first_member(name: str) -> None:
    crash_point("training_member_saved")


def training_window(context: dg.AssetExecutionContext, run: RunConfig) -> tuple[datetime, datetime]:
    """Return the trailing window ``[E - W, E)`` that the partition mapping gives this refresh partition."""
    window = context.asset_partitions_time_window_for_input("cell_hour_features")
    expected = run.train.end - run.train.start
    if window.end != context.partition_time_window.end or window.end - window.start != expected:
        raise ValueError(
            f"refresh partition {context.partition_key} maps to the feature hours {window.start.isoformat()} to "
            f"{window.end.isoformat()}, not to a trailing window of {expected} ending at "
            f"{context.partition_time_window.end.isoformat()}; it starts too close to the jurisdiction's "
            f"data_start, so train a later refresh partition")
    return window.start, window.end


def build_training_asset(partitions_def: dg.PartitionsDefinition,
                         features_mapping: dg.PartitionMapping) -> dg.AssetsDefinition:
    """Build ``risk_ensemble`` on the refresh partitions, reading features through ``features_mapping``."""

    @dg.asset(
        name="risk_ensemble",
        group_name="models",
        partitions_def=partitions_def,
        deps=[dg.AssetDep("cell_hour_features", partition_mapping=features_mapping)],
        kinds={"pytorch", "lightgbm"},
    )
    def risk_ensemble(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
        """Train one ensemble per target (bagged torch nets and LightGBM) on the hours before the partition's end."""
        run = riskcast.run_config()
        jurisdiction = riskcast.jurisdiction()
        settings = riskcast.settings()
        start, end = training_window(context, run)

        with connect(settings.warehouse_path, read_only=True) as connection:
            n_cells = connection.sql("SELECT count(*) FROM marts.dim_cells").fetchone()[0]
        inputs = run.weather.inputs()
        weather = target_weather(settings.warehouse_path, inputs, run.horizon_hours, start, end - HOUR)
        reader = open_window(settings.features_dir, start, end, n_cells)
        labels = reader.read([name for name in reader.columns if name.startswith("label_")])
        context.log.info(f"refresh partition {context.partition_key}: {reader.height} feature rows from "
                         f"{len(reader.paths)} day files, {start.isoformat()} to {end.isoformat()}, "
                         f"targets {run_targets(run, jurisdiction)}")

        # The design lives in shared memory from the start, so the training workers read it without a copy.
        # It is filled from the day files a few columns at a time, so the whole panel is never in memory.
        with SharedArrays(enabled=ensemble_config(run).num_threads > 1) as shared:
            design = build_training_design(reader, n_cells, run.horizon_hours, np.random.default_rng(run.seed),
                                           weather_inputs=inputs, weather=weather, allocate=shared.empty)
            request = TrainingRequest(
                partition_key=context.partition_key, start=start, end=end, labels=labels, design=design,
                features_digest=array_digest(design.features),
                feature_files=feature_file_hashes(settings.features_dir, start, end),
                run=run, jurisdiction=jurisdiction, settings=settings, weather_inputs=inputs, weather=weather)
            del design
            manifests = [train_target(request, target, context.log) for target in run_targets(run, jurisdiction)]
        return dg.MaterializeResult(metadata=training_metadata(manifests, start, end))

    return risk_ensemble


def training_metadata(manifests: list[dict], start: datetime, end: datetime) -> dict[str, dg.MetadataValue]:
    """Asset metadata: the window, and per target the model id, rows, positives and validation AUC."""
    table = "| target | model_id | rows | positives | base rate | validation ROC-AUC | seconds |\n|---|---|---|---|---|---|---|\n"
    table += "\n".join(
        f"| {m['target']} | {m['model_id']} | {m['training_rows']} | {m['training_positives']} | "
        f"{m['base_rate']:.5f} | {m['validation_metrics'].get('ensemble', {}).get('roc_auc', 'n/a')} | "
        f"{m['training_seconds']:.1f} |" for m in manifests)
    metadata = {
        "train_start": dg.MetadataValue.text(start.isoformat()),
        "train_end": dg.MetadataValue.text(end.isoformat()),
        "models": dg.MetadataValue.md(table),
        "training_rows": dg.MetadataValue.int(sum(m["training_rows"] for m in manifests)),
        "feature_files": dg.MetadataValue.int(len(manifests[0]["feature_files"]) if manifests else 0),
    }
    for manifest in manifests:
        target = manifest["target"]
        metadata[f"{target}_model_id"] = dg.MetadataValue.text(manifest["model_id"])
        metadata[f"{target}_weights"] = dg.MetadataValue.json(manifest["weights"])
        metadata[f"{target}_model_card"] = dg.MetadataValue.path(str(Path(manifest["path"]) / "MODEL_CARD.md"))
    return metadata
