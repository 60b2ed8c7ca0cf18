"""The ``riskcast-dbt`` command: hand one dbt invocation to a warm dbt worker, or run dbt itself.

dagster-dbt runs dbt as a subprocess of the step and reads its JSON log lines from the
subprocess's stdout. Importing dbt takes about 2 s of a 2-core machine's time, which a new hour's
run pays every time. ``orchestration.dbt_worker`` starts a worker process at the start of the run,
which imports dbt while the raw assets ingest. This command is the subprocess that dagster-dbt
starts instead of ``dbt``: it connects to the worker's socket (named by ``RISKCAST_DBT_WORKER``),
passes its arguments, environment, working folder and its own stdout, and exits with dbt's exit
code. The worker writes dbt's log lines straight into that stdout, so dagster-dbt reads the same
stream as from ``dbt`` itself.

Without a worker (no variable, or no worker listening on the socket), it replaces itself with the real ``dbt``
(``RISKCAST_DBT_EXECUTABLE``, or ``dbt`` beside this interpreter). This module imports only the
standard library, so that the command starts in a few tens of milliseconds.

The exchange uses a Unix socket and passes the stdout descriptor with ``SCM_RIGHTS``
(``socket.send_fds``), as described in the Python documentation of the ``socket`` module.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

WORKER_VARIABLE = "RISKCAST_DBT_WORKER"
EXECUTABLE_VARIABLE = "RISKCAST_DBT_EXECUTABLE"

# Message framing: a request is an 8-byte length and then that many bytes of JSON. The worker
# replies with its process id at once, and with dbt's exit code when dbt has finished.
LENGTH = struct.Struct("!Q")
NUMBER = struct.Struct("!i")

# Exit code when the worker closed the connection without an exit code (it died during the run).
WORKER_LOST = 2


def real_dbt() -> str:
    """Return the path of the dbt executable that runs when no worker serves the invocation."""
    configured = os.environ.get(EXECUTABLE_VARIABLE)
    if configured:
        return configured
    return str(Path(sys.executable).parent / "dbt")


def read_exactly(connection: socket.socket, size: int) -> bytes | None:
    """Read ``size`` bytes from ``connection``, or return None when it closes first."""
    chunks = []
    remaining = size
    while remaining:
        chunk = connection.recv(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def connect_worker(path: str) -> socket.socket | None:
    """Connect to the worker's socket, or return None when no worker listens there."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError:
        connection.close()
        return None
    return connection


def send_request(connection: socket.socket, arguments: list[str]) -> None:
    """Send dbt's arguments, this process's environment and folder, and this process's stdout."""
    request = json.dumps({"arguments": arguments, "environment": dict(os.environ), "folder": os.getcwd()})
    payload = request.encode("utf-8")
    socket.send_fds(connection, [LENGTH.pack(len(payload))], [sys.stdout.fileno()])
    connection.sendall(payload)


def forward_signals(worker_pid: int) -> None:
    """Pass SIGINT and SIGTERM on to the worker, so that stopping this command stops dbt."""
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(worker_pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)


def run_on_worker(connection: socket.socket, arguments: list[str]) -> int | None:
    """Run dbt on the worker and return its exit code, or None when the worker took no request."""
    try:
        send_request(connection, arguments)
        pid = read_exactly(connection, NUMBER.size)
    except OSError:
        return None
    if pid is None:
        return None

    # NOTE: a SIGINT that arrives between the worker's reply and this call ends this command but
    # not dbt, which then runs on until the resource's teardown stops the worker.
    forward_signals(NUMBER.unpack(pid)[0])
    code = read_exactly(connection, NUMBER.size)
    if code is None:
        print(f"riskcast-dbt: the dbt worker (pid {NUMBER.unpack(pid)[0]}) exited before dbt finished. "
              f"See the run's dbt.log and rerun the step.", file=sys.stderr)
        return WORKER_LOST
    return NUMBER.unpack(code)[0]


def main() -> None:
    arguments = sys.argv[1:]
    path = os.environ.get(WORKER_VARIABLE)
    connection = connect_worker(path) if path else None
    if connection is not None:
        with connection:
            code = run_on_worker(connection, arguments)
        if code is not None:
            sys.exit(code)

    executable = real_dbt()
    os.execv(executable, [executable, *arguments])


if __name__ == "__main__":
    main()
