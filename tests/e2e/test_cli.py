"""The ``riskcast`` command as a user runs it.

One ``riskcast demo`` run per module (``demo_home``) serves every test that needs a finished main
job. The tests run in file order, and the status test reads the demo's partitions before the
backfill test adds hours after them.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from polars.testing import assert_frame_equal

from orchestration.warehouse import connect

pytestmark = pytest.mark.e2e

RISKCAST = str(Path(sys.executable).parent / "riskcast")


def run_cli(*arguments: str, home: Path) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("RISKCAST_CONFIG", "DAGSTER_HOME")}
    return subprocess.run([RISKCAST, "--home", str(home), *arguments], capture_output=True, text=True,
                          env=environment, timeout=1800, check=False)


@dataclass(frozen=True)
class DemoRun:
    """The finished ``riskcast demo`` command and the home folder it wrote."""

    home: Path
    result: subprocess.CompletedProcess[str]

    @property
    def warehouse(self) -> Path:
        return self.home / "demo" / "warehouse.duckdb"


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    home = tmp_path_factory.mktemp("cli_demo")
    return DemoRun(home, run_cli("demo", home=home))


def test_demo_runs_end_to_end(demo_home: DemoRun) -> None:
    result = demo_home.result
    tmp_path = demo_home.home
    warehouse = demo_home.warehouse

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


def test_demo_prints_progress_per_job(demo_home: DemoRun) -> None:
    progress = [line for line in demo_home.result.stderr.splitlines() if re.match(r"\[\d+/\d+\] ", line)]

    assert progress[0] == "[1/6] warehouse_job ..."
    assert progress[2] == "[2/6] features_job (2023-05-05-00:00 .. 2023-09-03-23:00) ..."
    assert progress[4] == "[3/6] train_job (2023-08-25) ..."
    assert progress[6] == "[4/6] score_job (2023-09-01-00:00 .. 2023-09-03-23:00) ..."
    assert progress[1].startswith("[1/6] warehouse_job done in ")
    assert progress[1].endswith(" s")
    assert progress[10] == "[6/6] release_job ..."
    outcome = "done in" if demo_home.result.returncode == 0 else "failed after"
    assert progress[11].startswith(f"[6/6] release_job {outcome} ")
    assert len(progress) == 12
    # The progress lines go to stderr only, so stdout stays the summary.
    assert "[1/6]" not in demo_home.result.stdout


def test_status_shows_demo_partitions(demo_home: DemoRun) -> None:
    result = run_cli("status", home=demo_home.home)
    lines = result.stdout.splitlines()

    assert result.returncode == 0, result.stderr[-3000:]
    assert line_of(lines, "scoring     risk_scores ").endswith("latest partition 2023-09-03-23:00 (72 materialized)")
    # 2023-05-05 to 2023-09-04 is 122 days of hourly feature partitions.
    assert line_of(lines, "features    cell_hour_features ").endswith("latest partition 2023-09-03-23:00 (2928 materialized)")
    assert line_of(lines, "models      risk_ensemble ").endswith("latest partition 2023-08-25 (1 materialized)")
    gate = line_of(lines, "release_candidate / bias_disparity_gate")
    assert (" passed (ERROR) at " in gate) == (demo_home.result.returncode == 0)
    assert (" failed (ERROR) at " in gate) == (demo_home.result.returncode == 3)
    assert re.fullmatch(r"Checks:      \d+ passed(, \d+ failed \(.*\))?", line_of(lines, "Checks:"))
    # The demo's scores and newest crime record are from 2023, far older than the freshness limits.
    assert line_of(lines, "risk_scores / risk_scores_issue_lag").split()[3:5] == ["failed", "(WARN)"]
    assert line_of(lines, "extracts:crime_incidents").strip().startswith("STALE  extracts:crime_incidents: newest")
    assert line_of(lines, "Scores:") == ("Scores:      newest issue hour 2023-09-03 23:00:00 UTC, 72 issue hours, "
                                         f"{64 * 72 * 72 * 3:,} rows in main.risk_scores")


def line_of(lines: list[str], text: str) -> str:
    matches = [line for line in lines if text in line]
    assert len(matches) == 1, f"{len(matches)} lines contain {text!r}: {lines}"
    return matches[0]


def test_score_at_prints_top_cells(demo_home: DemoRun) -> None:
    result = run_cli("score", "--at", "2023-09-02T05:00", home=demo_home.home)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "[1/1] score_job (2023-09-02-05:00) ..." in result.stderr
    printed = [line.split() for line in result.stdout.splitlines()[2:]]
    with connect(demo_home.warehouse, read_only=True) as connection:
        expected = connection.sql(
            "SELECT target, rank, cell_id, risk, relative_risk FROM main.risk_scores "
            "WHERE issued_at = TIMESTAMP '2023-09-02 05:00' AND horizon_hours = 1 AND rank <= 10 "
            "ORDER BY target, rank").fetchall()
    assert len(expected) == 30
    assert len(printed) == 30
    for row, (target, rank, cell_id, risk, relative_risk) in zip(printed, expected):
        assert row[:3] == [target, str(rank), cell_id]
        assert abs(float(row[3]) - risk) < 1e-6
        assert abs(float(row[4]) - relative_risk) < 1e-3
    risks = [float(row[3]) for row in printed if row[0] == "violent"]
    assert risks == sorted(risks, reverse=True)


def test_backfill_scores_new_hours(demo_home: DemoRun) -> None:
    query = ("SELECT count(*), count(DISTINCT issued_at) FROM main.risk_scores "
             "WHERE issued_at >= TIMESTAMP '2023-09-04 00:00' AND issued_at < TIMESTAMP '2023-09-04 03:00'")
    with connect(demo_home.warehouse, read_only=True) as connection:
        before = connection.sql(query).fetchone()

    result = run_cli("backfill", "--from", "2023-09-04", "--to", "2023-09-04T03:00", home=demo_home.home)

    with connect(demo_home.warehouse, read_only=True) as connection:
        after = connection.sql(query).fetchone()
    assert result.returncode == 0, result.stderr[-3000:]
    assert before == (0, 0)
    assert after == (3 * 64 * 72 * 3, 3)
    assert "[1/2] features_job (2023-09-04-00:00 .. 2023-09-04-02:00) ..." in result.stderr
    assert "[2/2] score_job (2023-09-04-00:00 .. 2023-09-04-02:00) ..." in result.stderr
    assert "Backfilled features and scores of 3 hourly partitions: 2023-09-04-00:00 .. 2023-09-04-02:00" \
        in result.stdout
    with dg.DagsterInstance.from_config(str(demo_home.home / "dagster")) as instance:
        scored = instance.get_materialized_partitions(dg.AssetKey("risk_scores"))
    assert {"2023-09-04-00:00", "2023-09-04-02:00"} <= scored
    assert "2023-09-04-03:00" not in scored


def test_backfill_with_two_workers_matches_one(demo_home: DemoRun) -> None:
    query = ("SELECT * FROM main.risk_scores WHERE issued_at >= TIMESTAMP '2023-09-04 22:00' "
             "AND issued_at < TIMESTAMP '2023-09-05 02:00' ORDER BY target, issued_at, horizon_hours, cell_id")
    one = run_cli("backfill", "--from", "2023-09-04T22:00", "--to", "2023-09-05T02:00", home=demo_home.home)
    with connect(demo_home.warehouse) as connection:
        reference = connection.sql(query).pl()
        connection.execute("DELETE FROM main.risk_scores WHERE issued_at >= TIMESTAMP '2023-09-04 22:00' "
                           "AND issued_at < TIMESTAMP '2023-09-05 02:00'")

    two = run_cli("backfill", "--from", "2023-09-04T22:00", "--to", "2023-09-05T02:00", "--workers", "2",
                  home=demo_home.home)

    with connect(demo_home.warehouse, read_only=True) as connection:
        rebuilt = connection.sql(query).pl()
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    assert reference.height == 4 * 64 * 72 * 3
    assert_frame_equal(rebuilt, reference)
    assert "[1/2] features_backfill_job (2023-09-04-22:00 .. 2023-09-05-01:00, 2 processes) ..." in two.stderr
    assert "[2/2] scores_backfill_job (2023-09-04-22:00 .. 2023-09-05-01:00, 2 processes) ..." in two.stderr
    with dg.DagsterInstance.from_config(str(demo_home.home / "dagster")) as instance:
        runs = instance.get_run_records(dg.RunsFilter(job_name="features_backfill_job"), limit=1)
        pieces = {event.step_key for event in instance.all_logs(runs[0].dagster_run.run_id)
                  if event.is_dagster_event and event.dagster_event.is_step_success
                  and event.step_key.startswith("build_feature_piece")}
    assert len(pieces) == 2


def test_backfill_bad_from_names_value(demo_home: DemoRun) -> None:
    result = run_cli("backfill", "--from", "2023-13-01", "--to", "2023-09-04", home=demo_home.home)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("riskcast: --from '2023-13-01' is not an ISO date")
    assert "Traceback" not in result.stderr


def test_evaluate_prints_metrics_and_gate(demo_home: DemoRun) -> None:
    result = run_cli("evaluate", home=demo_home.home)

    with connect(demo_home.warehouse, read_only=True) as connection:
        statuses = {row[0] for row in connection.sql(
            "SELECT status FROM main.model_releases "
            "QUALIFY row_number() OVER (PARTITION BY target ORDER BY evaluated_at DESC) = 1").fetchall()}
        roc_auc = connection.sql("SELECT value FROM main.evaluation_metrics "
                                 "WHERE model = 'ensemble' AND metric = 'roc_auc'").fetchone()[0]
    assert result.returncode in (0, 3), result.stderr[-3000:]
    assert statuses == ({"current"} if result.returncode == 0 else {"blocked"})
    assert f"  ensemble  roc_auc  {roc_auc:.4f}" in result.stdout
    assert result.stdout.count("Release:     ") == 3
    assert "[1/2] evaluate_job ..." in result.stderr
    assert "[2/2] release_job ..." in result.stderr
    assert ("bias release gate failed" in result.stderr) == (result.returncode == 3)


def test_report_build_rewrites_reports(demo_home: DemoRun) -> None:
    started = time.time()

    result = run_cli("report", "--build", home=demo_home.home)

    reports = demo_home.home / "demo" / "reports"
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("data_input_audit.html", "score_metrics.html", "model_metrics.html", "bias_audit.html",
                 "police_deployment.html"):
        assert f"Report:      {reports / name}" in result.stdout
        assert (reports / name).stat().st_mtime >= started, name
    assert "[1/1] report assets (" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ui_serves_on_loopback(demo_home: DemoRun) -> None:
    port = free_port()
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("RISKCAST_CONFIG", "DAGSTER_HOME")}
    # A new session makes dagster dev and its webserver, daemon and code server one process group.
    process = subprocess.Popen([RISKCAST, "--home", str(demo_home.home), "ui", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment,
                               start_new_session=True)
    answer = None
    try:
        deadline = time.monotonic() + 180
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
                    answer = response.read().decode()
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        try:
            os.killpg(process.pid, signal.SIGTERM)  # children that outlived dagster dev, if any
        except ProcessLookupError:
            pass

    assert answer is not None, process.stderr.read()[-3000:] if process.stderr else "no output"
    assert f'"dagster_version":"{dg.__version__}"' in answer


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
