"""Arrays allocated in shared memory from the start, so that training workers read them without a copy.

The ensemble's worker processes read the training matrix from POSIX shared memory
(``ml.ensemble.MemberTrainer``). A matrix built in the process's own memory has to be copied
there, so the largest array of a run is in memory twice: 1.6 GB each for a six-month Chicago
window. ``SharedArrays.empty`` returns an array whose pages already live in a
shared-memory file (``/dev/shm/riskcast-...``, the place ``multiprocessing.shared_memory`` uses on
Linux), and records its address. ``MemberTrainer.share`` looks the address up with
``shared_name`` and hands the workers the file's name instead of copying.

The block is created with ``multiprocessing.shared_memory`` (so its resource tracker registers it, as it
registers the trainer's own blocks), mapped with ``numpy.memmap`` and unlinked when the
``SharedArrays`` context ends. An unlinked file's pages are freed once the last mapping of it is
gone, so an array that is still referenced then (for example from a traceback) stays valid, and
nothing is left in /dev/shm.
Where /dev/shm is missing or too small, ``empty`` allocates ordinary memory, and the trainer
copies or trains in one process as before.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SHARED_MEMORY_FOLDER = Path("/dev/shm")


@dataclass(frozen=True)
class SharedArrayKey:
    """Start address of an array's data, its shape and its dtype: a view of another part has another key."""

    address: int
    shape: tuple[int, ...]
    dtype: str


# Shared arrays alive in this process, by key: the name of their shared-memory file.
SHARED_NAMES: dict[SharedArrayKey, str] = {}


def array_key(array: np.ndarray) -> SharedArrayKey:
    return SharedArrayKey(array.__array_interface__["data"][0], tuple(array.shape), array.dtype.str)


def shared_name(array: np.ndarray) -> str | None:
    """Return the shared-memory name holding exactly ``array`` (C-contiguous, whole), or None."""
    if not array.flags.c_contiguous:
        return None
    return SHARED_NAMES.get(array_key(array))


def shared_memory_fits(n_bytes: int) -> bool:
    """Return whether /dev/shm has ``n_bytes`` free, with a 10% margin; True where /dev/shm does not exist.

    Writing past the size of a full tmpfs kills the process with SIGBUS instead of raising,
    so the space is checked before any block is created.
    """
    available = free_bytes(SHARED_MEMORY_FOLDER)
    return available is None or available >= 1.1 * n_bytes


def free_bytes(folder: Path) -> int | None:
    """Free bytes of the file system at ``folder``, or None where the folder does not exist."""
    if not folder.is_dir():
        return None
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


class SharedArrays:
    """Context that allocates arrays in shared memory and removes their files when it ends.

    ``enabled=False`` (one training process, so no worker reads them) allocates ordinary arrays.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.blocks: list[SharedMemory] = []
        self.keys: list[SharedArrayKey] = []

    def __enter__(self) -> SharedArrays:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for key in self.keys:
            SHARED_NAMES.pop(key, None)
        for block in self.blocks:
            block.unlink()
        self.keys.clear()
        self.blocks.clear()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """Return an uninitialized array of ``shape`` and ``dtype``, in shared memory when it fits."""
        dtype = np.dtype(dtype)
        n_bytes = int(np.prod(shape)) * dtype.itemsize
        if not self.fits(n_bytes):
            return np.empty(shape, dtype=dtype)

        block = SharedMemory(name=f"riskcast-{uuid.uuid4().hex}", create=True, size=n_bytes)
        self.blocks.append(block)
        # The array maps the block's file itself, so the block can be closed now and unlinked at the end
        # while the array stays valid for as long as it is referenced.
        block.close()
        array = np.memmap(SHARED_MEMORY_FOLDER / block.name, dtype=dtype, mode="r+", shape=shape)
        key = array_key(array)
        SHARED_NAMES[key] = block.name
        self.keys.append(key)
        logger.info("allocated %.2f GB in shared memory (%s) for a %s %s array", n_bytes / 1e9, block.name,
                    "x".join(str(size) for size in shape), dtype.name)
        return array

    def fits(self, n_bytes: int) -> bool:
        """Return whether this context shares arrays and /dev/shm exists with ``n_bytes`` free (10% margin)."""
        if not self.enabled or n_bytes == 0 or not SHARED_MEMORY_FOLDER.is_dir():
            return False
        if not shared_memory_fits(n_bytes):
            logger.warning("shared memory (%s) has less than the %.2f GB the array needs; allocating it in this "
                           "process's memory, which the training workers then read from a copy",
                           SHARED_MEMORY_FOLDER, n_bytes / 1e9)
            return False
        return True
