"""Release (group ``models``): a trained ensemble becomes current only after the bias release gate passes.

``release_candidate`` takes the latest registered ensemble of every target and applies the run's
release gate: ``ml.bias.disparity_gate`` on ``main.bias_group_metrics``, under which the
ensemble's group disparity may exceed CompSTAT's by at most a margin. It records the bound and the
result in ``main.model_releases``, in ``release_gate.json`` beside each model's manifest, and in
its model card. The blocking asset check ``bias_disparity_gate`` on ``release_candidate`` fails
when the bound is exceeded, and then Dagster does not run ``current_ensemble``. That asset is the
promotion: it marks the candidates current and retires the ensembles they replace. With the run
setting ``release.score_with: current``, scoring uses current (or formerly current) ensembles only.
"""

import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl

from ml.manifest import write_model_card
from orchestration.assets.bias import bias_group_metrics, markdown_table, release_gate
from orchestration.jurisdiction import RunConfig, run_targets
from orchestration.resources import RiskcastResource
from orchestration.warehouse import connect

RELEASES_DDL = """
CREATE TABLE IF NOT EXISTS main.model_releases (
    model_id VARCHAR PRIMARY KEY,
    target VARCHAR NOT NULL,
    train_end TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,
    gate_passed BOOLEAN NOT NULL,
    metric VARCHAR NOT NULL,
    margin DOUBLE NOT NULL,
    direction VARCHAR NOT NULL,
    baseline VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    evaluated_at TIMESTAMP NOT NULL,
    promoted_at TIMESTAMP
)
"""
RELEASE_FILE = "release_gate.json"
RELEASED_STATUSES = ("current", "retired")


def latest_models(warehouse: Path, targets: list[str]) -> list[dict]:
    """Return the latest registered ensemble of each target (latest train_end, then latest registration)."""
    with connect(warehouse, read_only=True) as connection:
        rows = connection.execute(
            "SELECT model_id, target, train_end, path FROM main.model_registry WHERE target IN "
            f"({', '.join('?' for _ in targets)}) "
            "QUALIFY row_number() OVER (PARTITION BY target ORDER BY train_end DESC, registered_at DESC NULLS LAST, "
            "model_id DESC) = 1 ORDER BY target", targets).fetchall()
    found = {row[1] for row in rows}
    missing = [target for target in targets if target not in found]
    if missing:
        raise ValueError(f"no registered ensemble for the targets {missing}; materialize risk_ensemble first")
    return [{"model_id": row[0], "target": row[1], "train_end": row[2], "path": Path(row[3])} for row in rows]


def read_group_metrics(warehouse: Path) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql("SELECT * FROM main.bias_group_metrics").pl()


def backtest_span(warehouse: Path) -> str:
    with connect(warehouse, read_only=True) as connection:
        first, last = connection.sql("SELECT min(hour), max(hour) FROM main.backtest_predictions").fetchone()
    return f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"


def release_record(gate, run: RunConfig, status: str, window: str, evaluated_at: datetime) -> dict:
    """Build the release-gate record that is written beside a model and rendered in its card."""
    return {
        "status": status, "gate_passed": gate.passed, "metric": gate.metric, "margin": gate.margin,
        "direction": gate.direction, "baseline": run.release.baseline, "message": gate.message,
        "window": window, "evaluated_at": evaluated_at.isoformat(timespec="seconds"),
        "checks": gate.checks.select("group", "reference", "model_ratio", "baseline_ratio", "bound", "passed")
        .to_dicts(),
    }


def write_release(folder: Path, record: dict, bias_audit: Path) -> None:
    """Write ``release_gate.json`` beside the manifest and render the model card with it."""
    (folder / RELEASE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n",
                                       encoding="utf-8")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    write_model_card(folder, manifest, bias_audit, release=record)


def upsert_releases(warehouse: Path, models: list[dict], record: dict, evaluated_at: datetime) -> None:
    """Insert or replace the release rows of ``models`` with the record's gate result."""
    naive = evaluated_at.replace(tzinfo=None)
    with connect(warehouse) as connection:
        connection.execute(RELEASES_DDL)
        connection.execute("BEGIN TRANSACTION")
        for model in models:
            connection.execute("DELETE FROM main.model_releases WHERE model_id = ?", [model["model_id"]])
            connection.execute(
                "INSERT INTO main.model_releases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [model["model_id"], model["target"], model["train_end"], record["status"], record["gate_passed"],
                 record["metric"], record["margin"], record["direction"], record["baseline"], record["message"],
                 naive])
        connection.execute("COMMIT")


@dg.asset(group_name="models", deps=["risk_ensemble", bias_group_metrics], kinds={"duckdb", "python"})
def release_candidate(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Gate the latest ensemble of every target and write the bound and the result into its model card."""
    run = riskcast.run_config()
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    models = latest_models(settings.warehouse_path, run_targets(run, jurisdiction))
    gate = release_gate(read_group_metrics(settings.warehouse_path), run)

    evaluated_at = datetime.now(timezone.utc)
    status = "candidate" if gate.passed else "blocked"
    record = release_record(gate, run, status, backtest_span(settings.warehouse_path), evaluated_at)
    upsert_releases(settings.warehouse_path, models, record, evaluated_at)
    for model in models:
        write_release(model["path"], record, settings.reports_dir / "bias_audit.html")

    log = context.log.info if gate.passed else context.log.error
    log(f"release_candidate: {len(models)} ensembles ({', '.join(m['model_id'] for m in models)}) are {status}: "
        f"{gate.message}")
    return dg.MaterializeResult(metadata={
        "status": dg.MetadataValue.text(status),
        "gate": dg.MetadataValue.text(gate.message),
        "checks": dg.MetadataValue.md(markdown_table(gate.checks.select(
            "group", "reference", "model_ratio", "baseline_ratio", "model_disparity", "bound", "passed"))),
        "models": dg.MetadataValue.json({m["target"]: m["model_id"] for m in models}),
        **{f"{m['target']}_model_card": dg.MetadataValue.path(str(m["path"] / "MODEL_CARD.md")) for m in models},
    })


@dg.asset_check(asset=release_candidate, name="bias_disparity_gate", blocking=True,
                description="Fails, and so blocks promotion to current, when the ensemble's group disparity "
                            "exceeds CompSTAT's by more than the run's release margin.")
def bias_disparity_gate(riskcast: RiskcastResource) -> dg.AssetCheckResult:
    run = riskcast.run_config()
    settings = riskcast.settings()
    gate = release_gate(read_group_metrics(settings.warehouse_path), run)
    return dg.AssetCheckResult(
        passed=gate.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=gate.message,
        metadata={
            "metric": dg.MetadataValue.text(gate.metric),
            "margin": dg.MetadataValue.float(gate.margin),
            "direction": dg.MetadataValue.text(gate.direction),
            "failed_groups": dg.MetadataValue.int(int((~gate.checks["passed"]).sum())),
            "checks": dg.MetadataValue.md(markdown_table(gate.checks.select(
                "group", "model_ratio", "baseline_ratio", "model_disparity", "bound", "passed"))),
        },
    )


@dg.asset(group_name="models", deps=[release_candidate], kinds={"duckdb"})
def current_ensemble(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Promote the candidates that passed the release gate to current and retire the ensembles they replace."""
    settings = riskcast.settings()
    promoted_at = datetime.now(timezone.utc)
    with connect(settings.warehouse_path) as connection:
        connection.execute(RELEASES_DDL)
        candidates = connection.sql("SELECT model_id, target FROM main.model_releases WHERE status = 'candidate' "
                                    "ORDER BY target").fetchall()
        if not candidates:
            raise ValueError("no ensemble passed the release gate and awaits promotion; materialize "
                             "release_candidate first")
        targets = [target for _, target in candidates]
        retiring = [row[0] for row in connection.execute(
            f"SELECT model_id FROM main.model_releases WHERE status = 'current' AND target IN "
            f"({', '.join('?' for _ in targets)})", targets).fetchall()]
        connection.execute("BEGIN TRANSACTION")
        connection.execute(
            f"UPDATE main.model_releases SET status = 'retired' WHERE status = 'current' AND target IN "
            f"({', '.join('?' for _ in targets)})", targets)
        connection.execute("UPDATE main.model_releases SET status = 'current', promoted_at = ? "
                           "WHERE status = 'candidate'", [promoted_at.replace(tzinfo=None)])
        connection.execute("COMMIT")
        statuses = connection.execute(
            "SELECT releases.model_id, releases.status, registry.path FROM main.model_releases AS releases "
            "JOIN main.model_registry AS registry USING (model_id) WHERE releases.model_id IN "
            f"({', '.join('?' for _ in candidates + retiring)})",
            [model for model, _ in candidates] + retiring).fetchall()

    for _, status, path in statuses:
        if (Path(path) / RELEASE_FILE).is_file():
            update_status(Path(path), status, settings.reports_dir / "bias_audit.html")
    context.log.info(f"current_ensemble: promoted {', '.join(model for model, _ in candidates)} to current, "
                     f"retired {len(retiring)} earlier ensembles")
    return dg.MaterializeResult(metadata={
        "current": dg.MetadataValue.json({target: model for model, target in candidates}),
    })


def update_status(folder: Path, status: str, bias_audit: Path) -> None:
    """Rewrite a model's release record and card with a new status."""
    record = json.loads((folder / RELEASE_FILE).read_text(encoding="utf-8"))
    record["status"] = status
    write_release(folder, record, bias_audit)
