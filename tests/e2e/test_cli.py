"""The ``riskcast`` command as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.warehouse import connect

pytestmark = pytest.mark.e2e

RISKCAST = str(Path(sys.executable).parent / "riskcast")


def run_cli(*arguments: str, home: Path) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("RISKCAST_CONFIG", "DAGSTER_HOME")}
    return subprocess.run([RISKCAST, "--home", str(home), *arguments], capture_output=True, text=True,
                          env=environment, timeout=1800, check=False)


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = run_cli("demo", home=tmp_path)
    warehouse = tmp_path / "demo" / "warehouse.duckdb"

    # 0: every job ran and the ensembles were promoted; 3: every job ran and the bias gate blocked them.
    assert result.returncode in (0, 3), result.stderr[-3000:]
    assert "SYNTHETIC" in result.stdout
    assert str(warehouse) in result.stdout
    for report in ("model_metrics.html", "bias_audit.html", "police_deployment.html"):
        assert str(tmp_path / "demo" / "reports" / report) in result.stdout
        assert (tmp_path / "demo" / "reports" / report).is_file()
    with connect(warehouse, read_only=True) as connection:
        scores = connection.sql("SELECT count(*) FROM main.risk_scores").fetchone()[0]
        models = {row[0] for row in connection.sql("SELECT DISTINCT model FROM main.evaluation_metrics").fetchall()}
        statuses = {row[0] for row in connection.sql("SELECT DISTINCT status FROM main.model_releases").fetchall()}
    assert scores == 64 * 72 * 72 * 3
    assert models == {"ensemble", "compstat"}
    assert statuses == ({"current"} if result.returncode == 0 else {"blocked"})
    assert ("bias release gate failed" in result.stderr) == (result.returncode == 3)
    assert "Release:" in result.stdout
    assert (tmp_path / "dagster").is_dir()


def test_missing_run_file_is_reported(tmp_path: Path) -> None:
    result = run_cli("run", "--config", str(tmp_path / "absent.yaml"), home=tmp_path)

    assert result.returncode == 1
    assert "configuration file not found" in result.stderr
    assert "absent.yaml" in result.stderr


def test_missing_extracts_folder_is_reported(tmp_path: Path) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text("jurisdiction: chicago\nextracts_folder: nowhere\n"
                        "train: {start: 2017-01-01, end: 2017-02-01}\nscore: {start: 2017-02-01, end: 2017-02-02}\n"
                        "refresh: {period: daily}\n",
                        encoding="utf-8")

    result = run_cli("run", "--config", str(run_file), home=tmp_path)

    assert result.returncode == 1
    assert "extracts folder not found" in result.stderr
    assert str(tmp_path / "nowhere") in result.stderr
