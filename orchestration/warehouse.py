"""Connections to the DuckDB warehouse, with the spatial extension loaded from site-packages.

DuckDB cannot download extensions on an offline machine, so the spatial extension comes from the
``duckdb-ext-spatial`` wheel, which lays it out as an extension directory that DuckDB searches.
The same directory is handed to dbt through ``RISKCAST_DUCKDB_EXTENSION_DIR``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

import duckdb

from orchestration.memory_limits import duckdb_memory_setting, memory_limit_bytes

logger = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 60.0


def spatial_extension_dir() -> Path:
    """Return the extension directory shipped by the ``duckdb-ext-spatial`` package."""
    spec = find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the DuckDB spatial extension package is not installed; "
            "run `pip install duckdb-ext-spatial==1.4.4.20260205` (it must match duckdb 1.4.4)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    expected = folder / f"v{duckdb.__version__}"
    if not expected.is_dir():
        raise RuntimeError(
            f"the spatial extension in {folder} does not match duckdb {duckdb.__version__}; "
            f"install the duckdb-ext-spatial release built for duckdb {duckdb.__version__}"
        )
    return folder


def open_connection(path: Path, read_only: bool = False, spatial: bool = False,
                    memory_limit: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, waiting while another process holds its write lock.

    DuckDB's ``memory_limit`` is set to ``memory_limit`` bytes (default: 55% of physical memory,
    below DuckDB's own default of 80%). Intermediate results above it spill to the folder
    ``<warehouse file>.tmp``, DuckDB's default temporary directory for a database file.
    """
    config = {"extension_directory": str(spatial_extension_dir()),
              "autoinstall_known_extensions": False,
              "autoload_known_extensions": False}
    deadline = time.monotonic() + LOCK_RETRY_SECONDS
    while True:
        try:
            connection = duckdb.connect(str(path), read_only=read_only, config=config)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            logger.info("warehouse %s is locked by another process; retrying", path)
            time.sleep(0.5)

    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET enable_progress_bar = false")
    connection.execute(f"SET memory_limit = '{duckdb_memory_setting(memory_limit or memory_limit_bytes(None))}'")
    if spatial:
        connection.execute("LOAD spatial")
    return connection


@contextmanager
def connect(path: Path, read_only: bool = False, spatial: bool = False,
            memory_limit: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a short-lived connection; dbt needs the file free between steps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = open_connection(path, read_only=read_only, spatial=spatial, memory_limit=memory_limit)
    try:
        yield connection
    finally:
        connection.close()
