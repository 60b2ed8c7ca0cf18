"""Memory budget of a run, and the check that rejects a crime extract too large for it before reading.

The crime ingest keeps the mapped columns of every extract file in memory at once (polars), then
copies them into DuckDB. Its peak resident memory therefore grows with the extract's size, and an
extract too large for the machine would push the process into swap or the kernel's OOM killer.
``check_extracts_fit`` estimates the ingest's peak from the files' uncompressed sizes before any
file is read, and raises ``ExtractTooLargeError`` naming the files, the estimate, the limit and
the fix when the estimate exceeds the budget.

The budget is the run file's ``memory_limit_gb``, or by default 55% of the machine's physical
memory, which leaves room for the Dagster process, dbt and the operating system. The same
budget bounds dbt's process: its DuckDB gets ``SET memory_limit`` to the budget less 1 GiB for the
rest of that process (``dbt_duckdb_limit_bytes``), and spills larger intermediate results to its
temporary directory instead of growing.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_SHARE = 0.55
GIB = 1024**3

# Peak RSS of the raw crime asset is a fixed part (the interpreter, Dagster, polars and DuckDB)
# plus a multiple of the CSV's bytes. A re-ingest costs the most, because it also loads the stored
# table and compares the two versions. benchmarks/resource_limits.py measured 1.19 GB for 1 and
# 2.53 GB for 4 generated Chicago city-years (62 and 248 MB of CSV), a slope of about 7.2. The
# constants round both parts up, so the estimate errs on the high side.
INGEST_BASE_BYTES = 800 * 1024**2
INGEST_BYTES_PER_CSV_BYTE = 8.0

# Memory that dbt's process uses beside DuckDB's buffer memory (dbt_duckdb_limit_bytes).
DBT_PROCESS_ALLOWANCE_BYTES = GIB

# Rows sampled from the head of a file to estimate its row count from its size.
SAMPLE_LINES = 2_000

# The Chicago and Philadelphia portal exports compress 3.5 to 4.1 times. A trailer that records
# more than MAX_GZIP_RATIO times the compressed size is taken for the data of a truncated file,
# and the text is then estimated at TYPICAL_GZIP_RATIO times the compressed size.
MAX_GZIP_RATIO = 50
TYPICAL_GZIP_RATIO = 5


class ExtractTooLargeError(ValueError):
    """The extracts' estimated ingest memory exceeds the run's memory limit."""


@dataclass(frozen=True)
class ExtractSize:
    """Size of one extract file: on disk, uncompressed, and an estimate of its rows."""

    path: Path
    file_bytes: int
    text_bytes: int
    estimated_rows: int


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_limit_bytes(limit_gb: float | None) -> int:
    """Return the run's memory budget in bytes: ``limit_gb`` GiB, or 55% of physical memory when None."""
    if limit_gb is not None:
        return int(limit_gb * GIB)
    return int(physical_memory_bytes() * DEFAULT_MEMORY_SHARE)


def uncompressed_bytes(path: Path) -> int:
    """Return the size of a file's text: the file's size, or for gzip the size its trailer records.

    The gzip trailer stores the size modulo 4 GiB, so whole multiples of 4 GiB are added until the
    size is at least the compressed size.
    """
    size = path.stat().st_size
    if path.suffix != ".gz" or size < 18:
        return size
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        recorded = struct.unpack("<I", handle.read(4))[0]
    # NOTE: a gzip file of several members records only its last member's size, so the estimate
    # of such a file (rare for portal exports) is too low.
    while recorded < size:
        recorded += 2**32
    if recorded > MAX_GZIP_RATIO * size:
        # A truncated file ends inside its data, so these bytes are no trailer. The read reports
        # the truncation; the estimate assumes a typical ratio meanwhile.
        logger.warning("%s: the gzip trailer records %d bytes for %d compressed, more than %dx; the file may be "
                       "truncated, so its text is estimated at %dx", path, recorded, size, MAX_GZIP_RATIO,
                       TYPICAL_GZIP_RATIO)
        return TYPICAL_GZIP_RATIO * size
    return recorded


def estimate_rows(path: Path, text_bytes: int) -> int:
    """Estimate a CSV's data rows from its text size and the mean length of its first lines."""
    opener = gzip.open if path.suffix == ".gz" else open
    lengths = []
    try:
        with opener(path, "rb") as handle:
            handle.readline()
            for _ in range(SAMPLE_LINES):
                line = handle.readline()
                if not line:
                    break
                lengths.append(len(line))
    except (EOFError, OSError) as error:
        # A damaged file is reported with its name and the fix when it is read; the estimate
        # uses the lines sampled so far.
        logger.warning("%s: sampling its first lines stopped early (%s)", path, error)
    if not lengths:
        return 0
    return int(text_bytes / (sum(lengths) / len(lengths)))


def measure_extract(path: Path) -> ExtractSize:
    text_bytes = uncompressed_bytes(path)
    is_csv = path.name.endswith((".csv", ".csv.gz"))
    rows = estimate_rows(path, text_bytes) if is_csv else 0
    return ExtractSize(path=path, file_bytes=path.stat().st_size, text_bytes=text_bytes, estimated_rows=rows)


def estimated_ingest_bytes(sizes: list[ExtractSize]) -> int:
    """Return the estimated peak resident memory of ingesting all ``sizes`` in one run."""
    return INGEST_BASE_BYTES + int(INGEST_BYTES_PER_CSV_BYTE * sum(size.text_bytes for size in sizes))


def check_extracts_fit(files: list[Path], limit_bytes: int) -> list[ExtractSize]:
    """Raise ``ExtractTooLargeError`` when ingesting ``files`` is estimated to exceed ``limit_bytes``.

    Reads only each file's gzip trailer and first lines. Returns the measured sizes.
    """
    sizes = [measure_extract(path) for path in files]
    estimate = estimated_ingest_bytes(sizes)
    logger.info("crime extracts: %d files, %.2f GB of text, about %d rows; estimated ingest peak %.2f GB, "
                "limit %.2f GB", len(sizes), sum(size.text_bytes for size in sizes) / GIB,
                sum(size.estimated_rows for size in sizes), estimate / GIB, limit_bytes / GIB)
    if estimate <= limit_bytes:
        return sizes

    largest = max(sizes, key=lambda size: size.text_bytes)
    total_rows = sum(size.estimated_rows for size in sizes)
    raise ExtractTooLargeError(
        f"the crime extracts in {largest.path.parent} are too large for the memory limit: "
        f"{len(sizes)} {'file' if len(sizes) == 1 else 'files'} with about {total_rows:,} rows and "
        f"{sum(size.text_bytes for size in sizes) / GIB:.2f} GB of text "
        f"(largest: {largest.path.name}, {largest.file_bytes / GIB:.2f} GB on disk, "
        f"{largest.text_bytes / GIB:.2f} GB uncompressed, about {largest.estimated_rows:,} rows). "
        f"Ingesting them is estimated to need {estimate / GIB:.1f} GB, more than the limit of "
        f"{limit_bytes / GIB:.1f} GB. Raise memory_limit_gb in the run file (this machine has "
        f"{physical_memory_bytes() / GIB:.0f} GB), or move older years out of the extracts folder; "
        f"every file in the folder is loaded together, so splitting a file does not help"
    )


def dbt_duckdb_limit_bytes(budget_bytes: int) -> int:
    """Return DuckDB's ``memory_limit`` inside dbt's process: the budget less what that process uses outside it.

    dbt's process contains dbt and its Python interpreter, and DuckDB allocates some memory
    outside its buffer manager. Building ``int_incidents__located`` for four Chicago city-years, the process peaked
    0.7 to 0.9 GiB above DuckDB's limit (2.55 GiB under a 2 GiB limit, 3.90 GiB under 3 GiB).
    So DuckDB gets the budget less ``DBT_PROCESS_ALLOWANCE_BYTES``, and at least half the budget.
    """
    return max(budget_bytes - DBT_PROCESS_ALLOWANCE_BYTES, budget_bytes // 2)


def duckdb_memory_setting(limit_bytes: int) -> str:
    """Return ``limit_bytes`` as a DuckDB ``memory_limit`` value in whole MiB."""
    return f"{max(limit_bytes // 1024**2, 64)}MiB"
