"""A test hook that kills the process at a named point of a job, so tests can check crash recovery.

It does nothing unless ``RISKCAST_CRASH_AT`` names one of ``CRASH_POINTS``. When it does, the
process sends itself SIGKILL at that point, as a power loss or the kernel's out-of-memory killer
would stop it: no ``finally`` block, ``atexit`` handler or transaction rollback runs. A process
that leads its own process group (a test starts it with ``start_new_session=True``) kills the
whole group, so a dbt subprocess dies with it instead of finishing on its own.

Never set the variable outside tests.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

logger = logging.getLogger(__name__)

CRASH_VARIABLE = "RISKCAST_CRASH_AT"

CRASH_POINTS = {
    "raw_before_commit": "a raw table's rows are inserted, and its transaction is not committed",
    "dbt_between_models": "dbt has built its first model and is building the next ones",
    "features_half_written": "half of a window's day files are renamed into place, the others not written",
    "training_member_saved": "one member of an ensemble is saved, and the rest and the manifest are not",
    "scores_staged": "the scores are in Parquet staging files, none of them published",
    "scores_mid_publish": "the old scores are deleted inside the publish transaction, the new ones not inserted",
}


def crash_point(name: str) -> None:
    """Kill this process (or its process group) with SIGKILL when ``RISKCAST_CRASH_AT`` is ``name``."""
    if name not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {name!r}; add it to CRASH_POINTS in {__name__}")
    if os.environ.get(CRASH_VARIABLE) != name:
        return

    logger.warning("%s=%s: killing process %d with SIGKILL (%s)", CRASH_VARIABLE, name, os.getpid(),
                   CRASH_POINTS[name])
    sys.stdout.flush()
    sys.stderr.flush()
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
