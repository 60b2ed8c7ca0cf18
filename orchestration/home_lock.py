"""One writer per jurisdiction folder: an exclusive file lock that ``riskcast`` commands hold while they run jobs.

Two commands that materialize overlapping partitions at once would otherwise interleave their
writes: both rewrite the same feature day files and both replace the same scores. DuckDB lets one
process at a time open the warehouse for writing, but Riskcast's connections are short, so two
runs could still take turns statement by statement. The lock makes the second command wait up to
``RISKCAST_LOCK_WAIT_SECONDS`` (default 0) and then fail with a message that names the process
holding the lock.

The lock is ``fcntl.flock`` on ``<home>/<jurisdiction>/riskcast.lock``. The kernel releases it when
the holding process exits, even after SIGKILL, so a crash never leaves a stale lock. While it is
held no other ``riskcast`` command writes in the folder, so the holder also removes what killed
runs left behind: score staging folders and temporary files.

NOTE: runs launched from the Dagster UI or by its schedules and sensors do not take this lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ml.atomic_files import remove_stale_temporaries
from orchestration.settings import RiskcastSettings

logger = logging.getLogger(__name__)

LOCK_FILE = "riskcast.lock"
WAIT_VARIABLE = "RISKCAST_LOCK_WAIT_SECONDS"
POLL_SECONDS = 0.5


class HomeLockedError(RuntimeError):
    """Another process holds the jurisdiction folder's lock."""


def lock_wait_seconds() -> float:
    """Return how long to wait for the lock, from ``RISKCAST_LOCK_WAIT_SECONDS`` (default 0)."""
    text = os.environ.get(WAIT_VARIABLE, "0")
    try:
        seconds = float(text)
    except ValueError:
        raise HomeLockedError(f"{WAIT_VARIABLE}={text!r} is not a number of seconds; set it to 0 to fail at "
                              f"once when another run holds the lock, or to how long to wait") from None
    if seconds < 0:
        raise HomeLockedError(f"{WAIT_VARIABLE}={text!r} is negative; set it to 0 or more seconds")
    return seconds


@contextmanager
def home_lock(settings: RiskcastSettings, wait_seconds: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock of ``settings.root`` while the block runs.

    Waits up to ``wait_seconds`` (default ``lock_wait_seconds()``) for another holder, then
    raises ``HomeLockedError``. Once the lock is taken, removes the leftovers of killed runs.
    """
    settings.root.mkdir(parents=True, exist_ok=True)
    path = settings.root / LOCK_FILE
    wait = lock_wait_seconds() if wait_seconds is None else wait_seconds
    handle = path.open("a+", encoding="utf-8")
    try:
        acquire(handle, path, wait)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}: {' '.join(sys.argv)}\n")
        handle.flush()
        remove_leftovers(settings)
        yield
    finally:
        handle.close()


def acquire(handle, path: Path, wait_seconds: float) -> None:
    """Take the lock on ``handle``, polling until ``wait_seconds`` have passed."""
    deadline = time.monotonic() + wait_seconds
    logged = False
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = read_holder(path)
            if time.monotonic() >= deadline:
                raise HomeLockedError(
                    f"another riskcast process holds the lock {path} ({holder}), so this run would interleave "
                    f"its writes with it; wait for that run to end and run again, or set {WAIT_VARIABLE} "
                    f"to the number of seconds to wait for it") from None
            if not logged:
                logger.info("waiting up to %.0f s for the lock %s, held by %s", wait_seconds, path, holder)
                logged = True
            time.sleep(POLL_SECONDS)


def read_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "holder unknown"
    return text or "holder unknown"


def remove_leftovers(settings: RiskcastSettings) -> None:
    """Delete score staging folders and the temporary files of killed writers under ``settings.root``.

    Call only while holding the lock: a staging folder of a run that is still going would be lost.
    """
    staging = settings.staging_dir
    stale = sorted(staging.iterdir()) if staging.is_dir() else []
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    temporaries = sum(remove_stale_temporaries(folder)
                      for folder in (settings.raw_dir, settings.features_dir, settings.models_dir))
    if stale or temporaries:
        logger.warning("removed %d score staging folders and %d temporary files left by killed runs in %s",
                       len(stale), temporaries, settings.root)
