"""Scoring (group ``scoring``): 72-hour risk forecasts for every cell and target, issued every hour.

Partition hour ``c`` is a forecast issued at the start of ``c`` from data before ``c``, covering
target hours ``c`` to ``c + 71``. For each jurisdiction target it uses the latest registered
ensemble of that target whose training window ended at or before ``c``. A range that crosses a
refresh boundary therefore switches model at the boundary, and a model trained after ``c`` never
scores ``c``. Rows go to the warehouse table ``main.risk_scores``; a run replaces the rows of the issue
hours and targets it scores, so reruns never duplicate.

Scoring is split in two steps so that ranges can be scored in parallel processes
(``orchestration.scale_out``): ``score_to_staging`` only reads the warehouse and writes Parquet files,
and ``publish_scores`` swaps them in with one short write transaction.
"""


import logging
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl

from ml.atomic_files import temporary_path
from ml.ensemble import RiskEnsemble
from ml.feature_store import read_window
from ml.model_data import build_scoring_blocks
from ml.target_weather import TargetWeather, WeatherInputs
from orchestration.assets.models import LEGACY_TARGET, migrate_registry, table_columns
from orchestration.crash_hook import crash_point
from orchestration.jurisdiction import JurisdictionConfig, RunConfig, run_targets
from orchestration.partitions import chunks, partition_key, run_window
from orchestration.resources import RiskcastResource
from orchestration.settings import RiskcastSettings
from orchestration.warehouse import connect
from orchestration.weather_inputs import WeatherCoverage, model_weather_inputs, target_weather

CHUNK = timedelta(hours=24)
HOUR = timedelta(hours=1)
Log = logging.Logger | logging.LoggerAdapter

RISK_SCORES_DDL = """
CREATE TABLE IF NOT EXISTS main.risk_scores (
    cell_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    horizon_hours SMALLINT NOT NULL,
    target VARCHAR NOT NULL,
    risk DOUBLE NOT NULL,
    relative_risk DOUBLE,
    rank INTEGER NOT NULL,
    model_id VARCHAR NOT NULL,
    issued_at TIMESTAMP NOT NULL
)
"""
SCORE_COLUMNS = ("cell_id", "hour", "horizon_hours", "target", "risk", "relative_risk", "rank", "model_id",
                 "issued_at")
MAP_KEYS = ("issued_at", "horizon_hours", "target")
FORECAST_CHECK = "forecast_weather_coverage"


class NoModelError(LookupError):
    """No registered ensemble of a target was trained before the hours being scored."""


@dataclass(frozen=True)
class ModelSpan:
    """Issue hours ``[start, end)`` of one target that one registered model scores."""

    target: str
    model_id: str
    path: Path
    train_end: datetime
    start: datetime
    end: datetime


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def model_spans(warehouse: Path, target: str, start: datetime, end: datetime,
                released_only: bool = False) -> list[ModelSpan]:
    """Split the issue hours ``[start, end)`` by the model that scores them for ``target``.

    Hour ``h`` gets the registered model of ``target`` with the latest ``train_end <= h``. Among
    models with the same ``train_end``, the one registered last wins (then the highest model id).
    With ``released_only``, only models that passed the release gate and were promoted (current
    or retired in ``main.model_releases``) count.
    """
    with connect(warehouse, read_only=True) as connection:
        exists = connection.sql("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_schema = 'main' AND table_name = 'model_registry'").fetchone()[0]
        rows = []
        if exists:
            target_column = "target" if "target" in table_columns(connection, "model_registry") else f"'{LEGACY_TARGET}'"
            order = "registered_at NULLS FIRST, " if "registered_at" in table_columns(connection, "model_registry") else ""
            released = released_filter(connection) if released_only else ""
            rows = connection.execute(
                f"SELECT model_id, path, train_end FROM main.model_registry "
                f"WHERE {target_column} = ? AND train_end < ? {released}ORDER BY train_end, {order}model_id",
                [target, naive(end)]).fetchall()

    latest: dict[datetime, tuple[str, str]] = {}
    for model_id, path, train_end in rows:
        latest[train_end] = (model_id, path)
    ends = sorted(latest)
    before = [train_end for train_end in ends if train_end <= naive(start)]
    if not before and released_only:
        raise NoModelError(f"no {target} ensemble trained before {start.isoformat()} has passed the release gate "
                           f"and been promoted (release.score_with is 'current'); materialize release_candidate "
                           f"and current_ensemble, or read the Bias Audit report for why the gate failed")
    if not before:
        raise NoModelError(f"no {target} ensemble trained before {start.isoformat()} is registered; "
                           f"materialize risk_ensemble for a refresh partition ending at or before that hour")

    boundaries = [before[-1]] + [train_end for train_end in ends if naive(start) < train_end]
    spans = []
    for index, train_end in enumerate(boundaries):
        span_start = max(naive(start), train_end)
        span_end = boundaries[index + 1] if index + 1 < len(boundaries) else naive(end)
        model_id, path = latest[train_end]
        spans.append(ModelSpan(target, model_id, Path(path), train_end.replace(tzinfo=start.tzinfo),
                               span_start.replace(tzinfo=start.tzinfo), span_end.replace(tzinfo=start.tzinfo)))
    return spans


def released_filter(connection: duckdb.DuckDBPyConnection) -> str:
    """Return SQL that keeps the registry rows of promoted models, none when no release table exists."""
    if not table_columns(connection, "model_releases"):
        return "AND false "
    return "AND model_id IN (SELECT model_id FROM main.model_releases WHERE status IN ('current', 'retired')) "


def latest_model(warehouse: Path, target: str, hour: datetime) -> tuple[str, Path]:
    """Return the id and folder of the model that scores ``target`` for issue hour ``hour``."""
    span = model_spans(warehouse, target, hour, hour + HOUR)[0]
    return span.model_id, span.path


def rank_and_relative_risk(scored: pl.DataFrame) -> pl.DataFrame:
    """Add relative risk and rank within each map (one issue hour, horizon and target).

    ``relative_risk`` is the cell's risk divided by the mean risk over all cells of the map, so
    it averages 1 in every map. ``rank`` 1 is the highest risk of the map. Cells with equal risk
    are ranked by ascending ``cell_id``, so ranks are unique and repeatable.
    """
    ordered = scored.sort([*MAP_KEYS, "risk", "cell_id"], descending=[False, False, False, True, False])
    return ordered.with_columns(
        (pl.col("risk") / pl.col("risk").mean().over(MAP_KEYS)).alias("relative_risk"),
        (pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over(MAP_KEYS)).alias("rank"),
    )


def migrate_risk_scores(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """Create ``main.risk_scores`` or rebuild an older one without ``target`` or ``rank``; return those added.

    Rows of an older table get target ``violent`` (the only target it knew) and the rank that
    ``rank_and_relative_risk`` gives them.
    """
    exists = connection.sql("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema = 'main' AND table_name = 'risk_scores'").fetchone()[0]
    if not exists:
        connection.execute(RISK_SCORES_DDL)
        return []
    present = table_columns(connection, "risk_scores")
    added = [name for name in ("target", "rank") if name not in present]
    if not added:
        return []

    target = "target" if "target" in present else f"'{LEGACY_TARGET}'"
    rank = ("rank" if "rank" in present else
            f"row_number() OVER (PARTITION BY issued_at, horizon_hours, {target} ORDER BY risk DESC, cell_id)")
    connection.execute("BEGIN TRANSACTION")
    connection.execute("ALTER TABLE main.risk_scores RENAME TO risk_scores_before_migration")
    connection.execute(RISK_SCORES_DDL)
    connection.execute(
        f"INSERT INTO main.risk_scores ({', '.join(SCORE_COLUMNS)}) "
        f"SELECT cell_id, hour, horizon_hours, {target}, risk, relative_risk, {rank}, model_id, issued_at "
        f"FROM main.risk_scores_before_migration")
    connection.execute("DROP TABLE main.risk_scores_before_migration")
    connection.execute("COMMIT")
    return added


class ModelCache:
    """Fitted ensembles loaded once per run, by model id, optionally limited to ``threads`` threads each."""

    def __init__(self, threads: int | None = None) -> None:
        self.loaded: dict[str, RiskEnsemble] = {}
        self.weather: dict[str, WeatherInputs | None] = {}
        self.threads = threads

    def weather_inputs(self, span: ModelSpan) -> WeatherInputs | None:
        """Return the weather mode the span's model was trained with; oracle-weather models cannot score."""
        if span.model_id not in self.weather:
            inputs = model_weather_inputs(span.path)
            if inputs is not None and inputs.mode == "observed":
                raise ValueError(f"model {span.model_id} was trained on observed weather of the target hours "
                                 f"(oracle weather), which no forecaster has at issue time; retrain it with "
                                 f"weather.mode stand_in or none before scoring")
            self.weather[span.model_id] = inputs
        return self.weather[span.model_id]

    def get(self, span: ModelSpan) -> RiskEnsemble:
        if span.model_id not in self.loaded:
            ensemble = RiskEnsemble.load(span.path)
            if self.threads is not None:
                limit_threads(ensemble, self.threads)
            self.loaded[span.model_id] = ensemble
        return self.loaded[span.model_id]


def limit_threads(ensemble: RiskEnsemble, threads: int) -> None:
    """Make the nets and LightGBM members of ``ensemble`` predict with ``threads`` threads.

    Processes that score side by side would otherwise each start one thread per core.
    """
    ensemble.config = replace(ensemble.config, num_threads=threads)
    for member in ensemble.lightgbm_members:
        member.num_threads = threads


def score_piece(cutoff_rows: pl.DataFrame, spans: list[ModelSpan], models: ModelCache,
                horizon_hours: int, jurisdiction, warehouse: Path,
                coverage: WeatherCoverage | None = None) -> list[pl.DataFrame]:
    """Score the feature rows of one chunk of issue hours with every span that covers part of it.

    Each model reads the target-hour weather of the mode it was trained with, built from the
    warehouse's observations before each issue hour and its forecast archive. ``coverage`` counts
    where that weather came from.
    """
    piece_start = cutoff_rows["hour"].min()
    piece_end = cutoff_rows["hour"].max() + HOUR
    frames: dict[tuple, tuple[pl.DataFrame, np.ndarray]] = {}
    weathers: dict[tuple, TargetWeather | None] = {}
    scored = []
    for span in spans:
        start, end = max(span.start, piece_start), min(span.end, piece_end)
        if start >= end:
            continue
        ensemble = models.get(span)
        inputs = models.weather_inputs(span)
        key = (start, end, tuple(ensemble.feature_names), inputs)
        if key not in frames:
            rows = cutoff_rows.filter((pl.col("hour") >= start) & (pl.col("hour") < end))
            weather_key = (start, end, inputs)
            if weather_key not in weathers:
                weathers[weather_key] = target_weather(warehouse, inputs, horizon_hours, start, end - HOUR)
            frames[key] = build_scoring_blocks(rows, horizon_hours, jurisdiction.time_zone,
                                               jurisdiction.holiday_country, jurisdiction.holiday_subdivision,
                                               ensemble.feature_names, inputs, weathers[weather_key])
        keys, features = frames[key]
        risk = pl.Series("risk", ensemble.predict_proba(features), dtype=pl.Float64)
        scored.append(keys.with_columns(risk, pl.lit(span.target).alias("target"),
                                        pl.lit(span.model_id).alias("model_id")))
    if coverage is not None:
        for weather in weathers.values():
            coverage.add(weather)
    return scored


def to_table(scored: pl.DataFrame) -> pl.DataFrame:
    return rank_and_relative_risk(scored).with_columns(
        pl.col("issued_at").dt.replace_time_zone(None),
        pl.col("hour").dt.replace_time_zone(None),
    ).select(SCORE_COLUMNS)


@dataclass
class ScoreSummary:
    """Counts, spans and staged files from scoring a range of issue hours."""

    targets: list[str]
    spans: list[ModelSpan]
    files: list[Path]
    rows: int = 0
    risk_sum: float = 0.0
    risk_max: float = 0.0
    weather: WeatherCoverage = field(default_factory=WeatherCoverage)

    def add(self, other: "ScoreSummary") -> None:
        self.weather.forecast += other.weather.forecast
        self.weather.stand_in += other.weather.stand_in
        self.weather.observed += other.weather.observed
        self.files += other.files
        self.rows += other.rows
        self.risk_sum += other.risk_sum
        self.risk_max = max(self.risk_max, other.risk_max)

    def metadata(self, start: datetime, end: datetime) -> dict[str, dg.MetadataValue]:
        return {
            "dagster/row_count": dg.MetadataValue.int(self.rows),
            "targets": dg.MetadataValue.json(self.targets),
            "models": dg.MetadataValue.json([
                {"target": span.target, "model_id": span.model_id, "issue_start": span.start.isoformat(),
                 "issue_end": span.end.isoformat()} for span in self.spans]),
            "issue_hours": dg.MetadataValue.int(int((end - start) / HOUR)),
            "newest_issue_hour": dg.MetadataValue.text((end - HOUR).isoformat()),
            "mean_risk": dg.MetadataValue.float(self.risk_sum / self.rows if self.rows else float("nan")),
            "max_risk": dg.MetadataValue.float(self.risk_max),
            "target_hour_weather": dg.MetadataValue.text(self.weather.note()),
        }


def scoring_spans(settings: RiskcastSettings, run: RunConfig, jurisdiction: JurisdictionConfig,
                  start: datetime, end: datetime) -> tuple[list[str], list[ModelSpan]]:
    """Return the run's targets and the model spans that score issue hours ``[start, end)``."""
    targets = run_targets(run, jurisdiction)
    released_only = run.release.score_with == "current"
    spans = [span for target in targets
             for span in model_spans(settings.warehouse_path, target, start, end, released_only)]
    return targets, spans


def score_to_staging(settings: RiskcastSettings, run: RunConfig, jurisdiction: JurisdictionConfig,
                     start: datetime, end: datetime, staging: Path, log: Log,
                     threads: int | None = None) -> ScoreSummary:
    """Score issue hours ``[start, end)`` into Parquet files under ``staging``; the warehouse is only read.

    Nothing is visible to readers until ``publish_scores`` commits the files, so several processes
    can score disjoint ranges at once while none of them holds the warehouse's write lock.
    ``threads`` caps each model's prediction threads (default: the ensemble's ``num_threads``).
    """
    targets, spans = scoring_spans(settings, run, jurisdiction, start, end)
    for span in spans:
        log.info(f"{span.target}: issue hours {span.start.isoformat()} to {span.end.isoformat()} "
                 f"use {span.model_id} (train_end {span.train_end.isoformat()})")
    with connect(settings.warehouse_path, read_only=True) as connection:
        n_cells = connection.sql("SELECT count(*) FROM marts.dim_cells").fetchone()[0]

    staging.mkdir(parents=True, exist_ok=True)
    summary = ScoreSummary(targets=targets, spans=spans, files=[])
    models = ModelCache(threads)
    for piece_start, piece_end in chunks(start, end, CHUNK):
        cutoff_rows = read_window(settings.features_dir, piece_start, piece_end, n_cells)
        pieces = score_piece(cutoff_rows, spans, models, run.horizon_hours, jurisdiction, settings.warehouse_path,
                             summary.weather)
        for index, scored in enumerate(pieces):
            table = to_table(scored)
            path = staging / f"scores_{partition_key(piece_start).replace(':', '')}_{index}.parquet"
            write_parquet_atomically(table, path)

            summary.files.append(path)
            summary.rows += table.height
            summary.risk_sum += float(table["risk"].sum())
            summary.risk_max = max(summary.risk_max, float(table["risk"].max()))
        log.info(f"scored issue hours {piece_start.isoformat()} to {piece_end.isoformat()} "
                 f"for {len(targets)} targets: {summary.rows} rows so far")
    return summary


def write_parquet_atomically(table: pl.DataFrame, path: Path) -> None:
    """Write ``table`` beside ``path`` and rename it into place, so no reader sees half a file."""
    temporary = temporary_path(path)
    table.write_parquet(temporary, compression="zstd", statistics=True)
    temporary.replace(path)


def publish_scores(warehouse: Path, files: list[Path], windows: list[tuple[datetime, datetime]],
                   targets: list[str]) -> int:
    """Replace the scores of ``targets`` for the issue hours of ``windows`` with the staged files.

    One transaction deletes the old rows of every window and inserts the new ones, so a reader sees
    either all the old scores or all the new ones. Returns the number of rows inserted.
    """
    with connect(warehouse) as connection:
        migrate_registry(connection)
        migrate_risk_scores(connection)
        connection.execute("BEGIN TRANSACTION")
        for start, end in windows:
            connection.execute(
                f"DELETE FROM main.risk_scores WHERE issued_at >= ? AND issued_at < ? "
                f"AND target IN ({', '.join('?' for _ in targets)})", [naive(start), naive(end), *targets])
        crash_point("scores_mid_publish")
        inserted = 0
        if files:
            inserted = connection.execute(
                f"INSERT INTO main.risk_scores ({', '.join(SCORE_COLUMNS)}) "
                f"SELECT {', '.join(SCORE_COLUMNS)} FROM read_parquet(?)", [[str(path) for path in files]]
            ).fetchone()[0]
        connection.execute("COMMIT")
    return inserted


def forecast_check(weather: WeatherCoverage, forecast_source: str) -> dg.AssetCheckResult:
    """WARN when hours fell back to the stand-in although the run reads forecasts; never stops the run."""
    metadata = {
        "forecast_source": dg.MetadataValue.text(forecast_source),
        "pairs_from_forecasts": dg.MetadataValue.int(weather.forecast),
        "pairs_from_stand_in": dg.MetadataValue.int(weather.stand_in),
        "note": dg.MetadataValue.text(weather.note()),
    }
    if forecast_source == "none" or weather.total == 0 or weather.stand_in == 0:
        reason = ("the run reads no forecasts (forecast_source: none), so the stand-in is the configured weather"
                  if forecast_source == "none" else "every target hour had the weather the models read")
        return dg.AssetCheckResult(check_name=FORECAST_CHECK, passed=True, metadata=metadata, description=reason)
    description = (f"{weather.stand_in} of {weather.total} issue-hour x horizon pairs had no archived forecast "
                   f"(forecast_source: {forecast_source}) and used the stand-in forecast instead; check "
                   f"raw_weather_forecasts' last run for a failed or partial fetch")
    return dg.AssetCheckResult(check_name=FORECAST_CHECK, passed=False, severity=dg.AssetCheckSeverity.WARN,
                               metadata=metadata, description=description)


def build_scoring_asset(partitions_def: dg.PartitionsDefinition,
                        model_mapping: dg.PartitionMapping) -> dg.AssetsDefinition:
    """Build ``risk_scores``; ``model_mapping`` maps an issue hour to the refresh partition it may use."""

    @dg.asset(
        name="risk_scores",
        group_name="scoring",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["cell_hour_features", "raw_weather_forecasts",
              dg.AssetDep("risk_ensemble", partition_mapping=model_mapping)],
        kinds={"duckdb"},
        check_specs=[dg.AssetCheckSpec(
            FORECAST_CHECK, asset="risk_scores", blocking=False,
            description="Warns when a target hour's weather fell back to the stand-in forecast although the run "
                        "reads forecasts (forecast_source archive or nws): the forecast was missing or incomplete.")],
    )
    def risk_scores(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
        """Probability, relative risk and rank of each target per cell for each of the next 72 hours."""
        start, end = run_window(context)
        settings = riskcast.settings()
        staging = settings.staging_dir / f"scores_{context.run_id}"

        summary = score_to_staging(settings, riskcast.run_config(), riskcast.jurisdiction(), start, end,
                                   staging, context.log)
        crash_point("scores_staged")
        published = publish_scores(settings.warehouse_path, summary.files, [(start, end)], summary.targets)
        shutil.rmtree(staging, ignore_errors=True)

        context.log.info(f"partitions {context.partition_key_range.start} to {context.partition_key_range.end}: "
                         f"wrote {published} risk scores for targets {summary.targets}; target-hour weather: "
                         f"{summary.weather.note()}")
        check = forecast_check(summary.weather, riskcast.run_config().forecast_source)
        if not check.passed:
            context.log.warning(f"partitions {context.partition_key_range.start} to "
                                f"{context.partition_key_range.end}: {check.description}")
        return dg.MaterializeResult(metadata=summary.metadata(start, end), check_results=[check])

    return risk_scores
