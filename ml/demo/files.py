"""Reproducible file output for the demo writers: gzip CSV, atomic replace, stale file removal."""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)


def _write_gzip_csv(path: Path, header: tuple[str, ...], rows: Iterable[Iterable[str]]) -> None:
    """Write a gzip CSV with LF line ends and a zero gzip mtime, so the bytes are reproducible."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8")
    _write_bytes_atomically(path, gzip.compress(data, compresslevel=6, mtime=0))


def _write_bytes_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def _remove_stale_files(folder: Path, pattern: str, written: list[Path]) -> None:
    """Delete demo year files from an earlier run over other years."""
    for path in sorted(folder.glob(pattern)):
        if path not in written:
            path.unlink()
            logger.info("Deleted stale synthetic demo file %s", path)
