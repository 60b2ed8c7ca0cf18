"""A dbt process that imports dbt before the run needs it, and serves one invocation.

A new hour's run spends about 2 s importing dbt in the ``dbt build`` subprocess, after the raw
assets have finished. The dbt resource starts this worker when the run's resources are set up, so
the import overlaps the raw ingest. The warehouse step starts dbt through the
``riskcast-dbt`` command (``orchestration.dbt_client``), which hands its arguments, environment,
folder and stdout to the worker. The worker runs them with dbt's programmatic entry point
(``dbtRunner``, documented at https://docs.getdbt.com/reference/programmatic-invocations) and writes
dbt's log lines into the command's stdout. dbt still runs in a process of its own, so its memory is
counted and limited as before, and an interrupt still stops it.

The worker serves one invocation and exits. It also exits when its parent process ends, and the
resource's teardown stops a worker that served nothing. ``WarmDbtWorker.start`` runs it as
``python -m orchestration.dbt_worker SOCKET_PATH LISTENING_DESCRIPTOR PARENT_PID``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestration.dbt_client import LENGTH, NUMBER, WORKER_VARIABLE, read_exactly

logger = logging.getLogger(__name__)

# Seconds between checks that the parent process is still alive while the worker waits.
PARENT_CHECK_SECONDS = 1.0

# Exit codes of the worker itself: dbt's own code after an invocation, or these.
UNUSED = 3
BAD_REQUEST = 4
CLIENT_GONE = 5

# Seconds the teardown waits for a worker that is still running dbt before it stops it.
STOP_SECONDS = 10.0


def dbt_exit_code(success: bool, exception: BaseException | None) -> int:
    """Return the exit code that the ``dbt`` command gives for this outcome: 0, 1 (failures) or 2 (error)."""
    if success:
        return 0
    return 1 if exception is None else 2


def wait_for_client(listener: socket.socket, parent: int) -> socket.socket | None:
    """Accept the one client, or return None when the parent process has ended."""
    listener.settimeout(PARENT_CHECK_SECONDS)
    while True:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:
                return None
            continue
        connection.settimeout(None)
        return connection


def receive_request(connection: socket.socket) -> tuple[dict, int] | None:
    """Read the client's request and its stdout descriptor, or return None when the message is incomplete."""
    header, descriptors, _, _ = socket.recv_fds(connection, LENGTH.size, 1)
    if len(header) < LENGTH.size:
        header += read_exactly(connection, LENGTH.size - len(header)) or b""
    if len(header) < LENGTH.size or len(descriptors) != 1:
        return None

    payload = read_exactly(connection, LENGTH.unpack(header)[0])
    if payload is None:
        return None
    return json.loads(payload), descriptors[0]


def adopt(request: dict, descriptor: int) -> None:
    """Take over the client's stdout (for stdout and stderr), environment and working folder."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    sys.stdout.reconfigure(line_buffering=True)

    os.environ.clear()
    os.environ.update(request["environment"])
    os.chdir(request["folder"])


def run_dbt(arguments: list[str]) -> int:
    """Run one dbt command in this process and return the exit code ``dbt`` would give."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(arguments)
    sys.stdout.flush()
    return dbt_exit_code(result.success, result.exception)


def remove_empty_folder(folder: Path) -> None:
    """Remove the socket's folder, empty once the socket is gone, so a parent that dies leaves nothing."""
    try:
        folder.rmdir()
    except OSError as error:
        print(f"riskcast dbt worker {os.getpid()}: failed to remove {folder}: {error}. Remove it by hand.",
              file=sys.stderr)


def serve(path: str, listener: socket.socket, parent: int) -> int:
    """Import dbt, wait for one client on ``listener`` (bound at ``path``), run its command and return the exit code.

    ``parent`` is the pid of the process that started the worker. It comes from that process
    because a parent that ends before this process starts leaves ``os.getppid()`` at the new
    parent (init or a subreaper), which never changes again.
    """
    import dbt.cli.main  # noqa: F401  (the import this worker exists to do early)

    connection = wait_for_client(listener, parent)
    listener.close()
    os.unlink(path)
    remove_empty_folder(Path(path).parent)
    if connection is None:
        return UNUSED

    with connection:
        received = receive_request(connection)
        if received is None:
            print(f"riskcast dbt worker {os.getpid()}: incomplete request on {path}; the riskcast-dbt command "
                  f"that sent it runs dbt itself", file=sys.stderr)
            return BAD_REQUEST
        request, descriptor = received
        try:
            connection.sendall(NUMBER.pack(os.getpid()))
        except OSError as error:
            # The client sent its request and then ended, for example on an interrupt while
            # this worker was still importing dbt, so no process reads dbt's output.
            print(f"riskcast dbt worker {os.getpid()}: the riskcast-dbt command that sent the request on {path} "
                  f"has exited ({error}), so dbt does not run", file=sys.stderr)
            os.close(descriptor)
            return CLIENT_GONE
        adopt(request, descriptor)
        code = run_dbt(request["arguments"])
        connection.sendall(NUMBER.pack(code))
    return code


@dataclass
class WarmDbtWorker:
    """A started worker process, the folder of its socket, and the socket's path."""

    process: subprocess.Popen
    folder: Path

    @property
    def socket_path(self) -> str:
        return str(self.folder / "dbt.sock")

    @classmethod
    def start(cls) -> WarmDbtWorker:
        """Start a worker on a socket in a new private folder.

        The socket listens before the worker starts, so a client that comes while the worker
        still imports dbt waits for it instead of running dbt itself.
        """
        folder = Path(tempfile.mkdtemp(prefix="riskcast-dbt-"))
        path = folder / "dbt.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            listener.listen(1)
            process = subprocess.Popen(
                [sys.executable, "-m", "orchestration.dbt_worker", str(path), str(listener.fileno()),
                 str(os.getpid())],
                stdin=subprocess.DEVNULL, pass_fds=(listener.fileno(),),
                cwd=str(Path(__file__).resolve().parents[1]))
        return cls(process=process, folder=folder)

    def environment(self) -> dict[str, str]:
        """Return the variable that leads ``riskcast-dbt`` to this worker."""
        return {WORKER_VARIABLE: self.socket_path}

    def stop(self) -> int | None:
        """Wait for the worker to end, and stop it first when it has served nothing.

        Returns the worker's exit code: dbt's code when it served an invocation, otherwise
        ``UNUSED``, ``BAD_REQUEST``, ``CLIENT_GONE`` or a negative signal number.
        """
        if self.process.poll() is None and Path(self.socket_path).exists():
            self.process.terminate()
        try:
            code = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("dbt worker %s was still running %.0f s after the run's last step, so it is stopped",
                           self.process.pid, STOP_SECONDS)
            self.process.kill()
            code = self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        return code


def main() -> None:
    if len(sys.argv) != 4 or not sys.argv[2].isdigit() or not sys.argv[3].isdigit():
        raise SystemExit("usage: python -m orchestration.dbt_worker SOCKET_PATH LISTENING_DESCRIPTOR PARENT_PID "
                         "(WarmDbtWorker.start passes all three)")
    sys.exit(serve(sys.argv[1], socket.socket(fileno=int(sys.argv[2])), int(sys.argv[3])))


if __name__ == "__main__":
    main()
