"""Temporary names for files and folders that are renamed into place, and removal of stale ones.

A writer puts its output at ``temporary_path(final)`` in the same folder and renames it to
``final`` with ``os.replace``, which is atomic on one file system. A reader therefore sees the old
file or the new one, never half of one. The temporary name starts with a dot and carries the
writer's process id (``.day=2023-01-02.parquet.4711.tmp``), so two processes writing the same
file never share a temporary file. A later run can tell a killed writer's leftovers from a live
writer's output by checking whether that process still runs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

TEMPORARY_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<kind>tmp|old)$")


def temporary_path(path: Path, kind: str = "tmp") -> Path:
    """Return the name beside ``path`` that this process writes before renaming it to ``path``.

    ``kind`` ``old`` names the place where a folder being replaced waits until its successor is
    renamed in.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.{kind}")


def process_running(pid: int) -> bool:
    """Return whether a process with id ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporary files and folders in ``folder`` whose writing process no longer runs.

    A stale ``old`` folder is moved back to its final name when that name is missing. Its writer
    was killed after moving it aside and before renaming the new folder in, so it is still the
    last whole version. Returns how many entries were removed or restored.

    NOTE: a process id can be reused after a crash. A leftover then stays until that process
    ends, which costs disk space but never removes a live writer's file.
    """
    if not folder.is_dir():
        return 0
    cleaned = 0
    for entry in folder.iterdir():
        match = TEMPORARY_NAME.match(entry.name)
        if match is None or process_running(int(match["pid"])):
            continue

        final = folder / match["name"]
        if match["kind"] == "old" and not final.exists():
            os.replace(entry, final)
            logger.warning("restored %s from %s, left by a killed process %s", final, entry.name, match["pid"])
        else:
            remove_path(entry)
            logger.info("removed %s, left by a killed process %s", entry, match["pid"])
        cleaned += 1
    return cleaned


def replace_folder(staged: Path, final: Path) -> None:
    """Move the folder ``staged`` to ``final``, replacing a folder already there.

    The old folder is moved aside to a temporary name first, because a folder cannot replace a
    non-empty one in one rename. When the process dies between the two renames,
    ``remove_stale_temporaries`` moves the old folder back.
    """
    aside = temporary_path(final, kind="old")
    if final.exists():
        os.replace(final, aside)
    os.replace(staged, final)
    remove_path(aside)
