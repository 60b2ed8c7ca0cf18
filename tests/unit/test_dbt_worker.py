"""The warm dbt worker and the ``riskcast-dbt`` command that hands it one invocation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration.dbt import DBT_PROJECT_DIR
from orchestration.dbt_client import LENGTH, WORKER_VARIABLE
from orchestration.dbt_worker import CLIENT_GONE, UNUSED, WarmDbtWorker, dbt_exit_code

CLIENT = Path(sys.executable).with_name("riskcast-dbt")
DBT = Path(sys.executable).with_name("dbt")

pytestmark = pytest.mark.skipif(not CLIENT.is_file(), reason="riskcast-dbt is not installed; run pip install -e .")


def run_client(arguments: list[str], worker: WarmDbtWorker | None, folder: Path) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != WORKER_VARIABLE}
    environment["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    if worker is not None:
        environment.update(worker.environment())
    return subprocess.run([str(CLIENT), *arguments], env=environment, cwd=folder, capture_output=True,
                          text=True, timeout=300)


def log_pids(output: str) -> set[int]:
    """The process ids in dbt's JSON log lines."""
    pids = set()
    for line in output.splitlines():
        if line.startswith("{"):
            pids.add(json.loads(line)["info"]["pid"])
    return pids


def worker_is_running(pid: int) -> bool:
    """Whether the process exists and is not a zombie that no process has reaped yet."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def parse_arguments(target: Path) -> list[str]:
    return ["--log-format", "json", "parse", "--project-dir", str(DBT_PROJECT_DIR),
            "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target)]


def test_worker_runs_the_invocation(tmp_path: Path) -> None:
    worker = WarmDbtWorker.start()
    try:
        served = run_client(parse_arguments(tmp_path / "target"), worker, tmp_path)
        # The worker removes its socket's folder once it has a client, even if no teardown follows.
        assert not worker.folder.exists()
    finally:
        code = worker.stop()

    assert served.returncode == 0, served.stdout[-2000:]
    assert log_pids(served.stdout) == {worker.process.pid}
    assert (tmp_path / "target" / "manifest.json").is_file()
    assert code == 0
    assert not worker.folder.exists()


def test_second_invocation_runs_dbt_itself(tmp_path: Path) -> None:
    worker = WarmDbtWorker.start()
    try:
        first = run_client(["--help"], worker, tmp_path)
        second = run_client(parse_arguments(tmp_path / "target"), worker, tmp_path)
    finally:
        worker.stop()

    assert first.returncode == 0
    assert "Specify one of these sub-commands" in first.stdout
    assert second.returncode == 0, second.stdout[-2000:]
    pids = log_pids(second.stdout)
    assert len(pids) == 1
    assert worker.process.pid not in pids


def test_exit_code_matches_dbt(tmp_path: Path) -> None:
    arguments = ["run", "--project-dir", str(tmp_path / "missing"), "--profiles-dir", str(DBT_PROJECT_DIR)]
    plain = subprocess.run([str(DBT), *arguments], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    worker = WarmDbtWorker.start()
    try:
        served = run_client(arguments, worker, tmp_path)
    finally:
        code = worker.stop()

    assert plain.returncode == 2
    assert served.returncode == plain.returncode
    assert code == plain.returncode


def test_unused_worker_is_stopped() -> None:
    worker = WarmDbtWorker.start()
    code = worker.stop()

    assert code in (UNUSED, -15)
    assert worker.process.poll() is not None
    assert not worker.folder.exists()


def test_exit_codes_follow_dbt() -> None:
    assert dbt_exit_code(True, None) == 0
    assert dbt_exit_code(False, None) == 1
    assert dbt_exit_code(False, RuntimeError("profile not found")) == 2


def test_orphaned_worker_exits_by_itself(tmp_path: Path) -> None:
    # The parent ends at once, before the worker's Python has started, so the worker is an orphan
    # from its first instruction. The parent's output goes to a file, because the worker inherits it.
    output = tmp_path / "parent.out"
    starter = "from orchestration.dbt_worker import WarmDbtWorker; worker = WarmDbtWorker.start(); " \
              "print(worker.process.pid, worker.folder, flush=True)"
    with output.open("w", encoding="utf-8") as stdout:
        parent = subprocess.run([sys.executable, "-c", starter], cwd=Path(__file__).resolve().parents[2],
                                stdout=stdout, stderr=subprocess.DEVNULL, timeout=60)
    pid, folder = output.read_text(encoding="utf-8").split()

    deadline = time.monotonic() + 30
    while worker_is_running(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    running = worker_is_running(int(pid))
    if running:
        os.kill(int(pid), signal.SIGKILL)

    assert parent.returncode == 0
    assert not running
    assert not Path(folder).exists()


def test_worker_skips_departed_client(tmp_path: Path) -> None:
    # A client interrupted while the worker imports dbt has sent its whole request and closed its
    # socket before the worker replies with its pid.
    payload = json.dumps({"arguments": ["--help"], "environment": {}, "folder": str(tmp_path)}).encode("utf-8")
    worker = WarmDbtWorker.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client, (tmp_path / "out").open("w") as output:
            client.connect(worker.socket_path)
            socket.send_fds(client, [LENGTH.pack(len(payload))], [output.fileno()])
            client.sendall(payload)
        code = worker.process.wait(timeout=120)
    finally:
        worker.stop()

    assert code == CLIENT_GONE
    assert (tmp_path / "out").read_text(encoding="utf-8") == ""
