"""Memory limits of the crime ingest: the size check before reading, and DuckDB spilling under a cap.

The extract is a generated portal-layout CSV of 30,000 rows (copied 20 times for the DuckDB test),
so the module runs in well under a minute on an idle machine while exceeding the tiny limits it sets.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ml.demo.bulk_crimes import PORTAL_HEADER, write_bulk_crime_csv
from orchestration.assets.raw import raw_crime_incidents, store_raw_crimes
from orchestration.ingest import (
    ExtractError,
    read_crime_extracts,
    read_text_table,
    select_mapped_columns,
)
from orchestration.jurisdiction import JurisdictionConfig, load_jurisdiction
from orchestration.dbt import dbt_environment
from orchestration.memory_limits import (
    dbt_duckdb_limit_bytes,
    GIB,
    ExtractTooLargeError,
    check_extracts_fit,
    estimated_ingest_bytes,
    measure_extract,
    memory_limit_bytes,
    physical_memory_bytes,
)
from orchestration.resources import RiskcastResource
from orchestration.settings import RiskcastSettings
from orchestration.sources.crimes import LocalCrimeSource
from orchestration.warehouse import connect
from tests.extracts import write_run_file, write_test_jurisdiction

ROWS = 30_000
TINY_LIMIT = 200 * 1024**2
COPIES = 20


@pytest.fixture(scope="module")
def chicago() -> JurisdictionConfig:
    return load_jurisdiction("chicago")


@pytest.fixture(scope="module")
def extracts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An extracts folder with one gzip crime file of ``ROWS`` generated rows."""
    folder = tmp_path_factory.mktemp("large_extracts")
    write_bulk_crime_csv(folder / "crimes" / "chicago_crimes_synthetic.csv.gz", ROWS, chunk_rows=7_000)
    return folder


def write_file_with_bad_tail(folder: Path, rows: int) -> Path:
    """Write generated rows, then one row whose date does not parse, far past the sampled head."""
    path = folder / "crimes" / "chicago_crimes_bad.csv"
    write_bulk_crime_csv(path, rows)
    bad_row = ["99999999", "JZ000001", "not a date"] + [""] * (len(PORTAL_HEADER) - 3)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(",".join(bad_row) + "\n")
    return path


def test_gzip_size_read_from_trailer(extracts: Path) -> None:
    path = next((extracts / "crimes").iterdir())
    with gzip.open(path, "rb") as handle:
        actual = len(handle.read())

    size = measure_extract(path)

    assert size.text_bytes == actual
    assert size.file_bytes == path.stat().st_size
    assert size.file_bytes < size.text_bytes


def test_truncated_gzip_is_estimated_not_raised(tmp_path: Path, extracts: Path) -> None:
    """A cut-off download has no trailer: the estimate falls back to a typical ratio and leaves the error to the read."""
    source = next((extracts / "crimes").iterdir())
    data = source.read_bytes()
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(data[: len(data) // 3])

    size = measure_extract(truncated)

    assert size.text_bytes < 10 * truncated.stat().st_size
    assert size.estimated_rows > 0


def test_row_estimate_within_five_percent(extracts: Path) -> None:
    size = measure_extract(next((extracts / "crimes").iterdir()))

    assert abs(size.estimated_rows - ROWS) / ROWS < 0.05


def test_default_limit_is_share_of_memory() -> None:
    assert memory_limit_bytes(None) == int(physical_memory_bytes() * 0.55)
    assert memory_limit_bytes(2.5) == int(2.5 * GIB)


def test_dbt_duckdb_limit_leaves_allowance(tmp_path: Path) -> None:
    settings = RiskcastSettings(home=tmp_path, jurisdiction="chicago")

    assert dbt_duckdb_limit_bytes(3 * GIB) == 2 * GIB
    assert dbt_duckdb_limit_bytes(int(1.5 * GIB)) == int(0.75 * GIB)
    assert dbt_environment(settings, 3)["RISKCAST_DUCKDB_MEMORY_LIMIT"] == "2048MiB"
    assert dbt_environment(settings, 12)["RISKCAST_DUCKDB_MEMORY_LIMIT"] == "11264MiB"


def test_size_check_passes_under_limit(extracts: Path) -> None:
    files = sorted((extracts / "crimes").iterdir())
    sizes = check_extracts_fit(files, estimated_ingest_bytes([measure_extract(files[0])]))

    assert [size.path for size in sizes] == files


def test_size_check_message_names_limit_and_fix(extracts: Path, chicago: JurisdictionConfig) -> None:
    with pytest.raises(ExtractTooLargeError) as raised:
        read_crime_extracts(extracts, chicago.crimes, memory_limit=TINY_LIMIT)
    message = str(raised.value)

    assert "chicago_crimes_synthetic.csv.gz" in message
    assert "limit of 0.2 GB" in message
    assert "memory_limit_gb in the run file" in message
    assert "move older years out of the extracts folder" in message


def test_size_check_message_counts_rows(extracts: Path, chicago: JurisdictionConfig) -> None:
    with pytest.raises(ExtractTooLargeError) as raised:
        read_crime_extracts(extracts, chicago.crimes, memory_limit=TINY_LIMIT)
    estimate = measure_extract(next((extracts / "crimes").iterdir())).estimated_rows

    assert f"about {estimate:,} rows" in str(raised.value)
    assert abs(estimate - ROWS) / ROWS < 0.05


def test_size_check_runs_before_reading(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    # The bad date sits after the sampled head, so only a full read finds it. With the default
    # limit the read reaches it. With a tiny limit the size check raises first.
    write_file_with_bad_tail(tmp_path, 20_000)

    with pytest.raises(ExtractError, match="cannot parse 'not a date'"):
        read_crime_extracts(tmp_path, chicago.crimes, memory_limit=memory_limit_bytes(None))
    with pytest.raises(ExtractTooLargeError):
        read_crime_extracts(tmp_path, chicago.crimes, memory_limit=TINY_LIMIT)


def test_mapped_columns_read_equal_full_read(extracts: Path, chicago: JurisdictionConfig) -> None:
    path = next((extracts / "crimes").iterdir())
    mapped = list(chicago.crimes.columns.values())
    full = select_mapped_columns(read_text_table(path), path, chicago.crimes.columns, ("id", "date"))
    narrow = select_mapped_columns(read_text_table(path, mapped), path, chicago.crimes.columns, ("id", "date"))

    assert narrow.columns == full.columns
    assert narrow.equals(full)
    assert narrow.height == ROWS


def test_mapped_columns_skip_unmapped(extracts: Path, chicago: JurisdictionConfig) -> None:
    path = next((extracts / "crimes").iterdir())
    frame = read_text_table(path, list(chicago.crimes.columns.values()))

    assert "Description" not in frame.columns
    assert "Location" not in frame.columns
    assert set(frame.columns) == set(chicago.crimes.columns.values())


def test_duckdb_result_same_under_cap(tmp_path: Path, extracts: Path, chicago: JurisdictionConfig) -> None:
    # 64 MiB is the smallest limit that Riskcast sets. The table is larger than that as a polars
    # frame, and the query sorts all of it with a window, so DuckDB has to evict or spill blocks.
    # NOTE: the test checks the result and the settings, not that a spill file was written.
    frame = read_crime_extracts(extracts, chicago.crimes).frame
    frame = pl.concat([frame.with_columns(pl.col("id") + f"-{copy}") for copy in range(COPIES)])
    query = """
        SELECT id, date, row_number() OVER (PARTITION BY beat ORDER BY date, id) AS position
        FROM raw.crime_incidents ORDER BY id
    """

    store_raw_crimes(tmp_path / "capped.duckdb", tmp_path / "capped", frame, memory_limit=64 * 1024**2)
    with connect(tmp_path / "capped.duckdb", memory_limit=64 * 1024**2) as connection:
        setting = connection.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        spill_folder = connection.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        # With one buffer per thread, two threads left too little of 64 MiB for the window's
        # sort in about half of the runs (an out-of-memory error), so the query runs on one.
        connection.execute("SET threads = 1")
        capped = connection.execute(query).pl()
    store_raw_crimes(tmp_path / "free.duckdb", tmp_path / "free", frame, memory_limit=memory_limit_bytes(None))
    with connect(tmp_path / "free.duckdb") as connection:
        free = connection.execute(query).pl()

    assert frame.estimated_size() > 64 * 1024**2
    assert setting == "64.0 MiB"
    assert spill_folder == str(tmp_path / "capped.duckdb.tmp")
    assert capped.height == COPIES * ROWS
    assert capped.equals(free)


def test_raw_asset_rejects_too_large_extract(tmp_path: Path, extracts: Path) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2014-01-01")
    content = jurisdiction.read_text(encoding="utf-8").replace("crimes/chicago_crimes_*.csv", "crimes/*.csv.gz")
    jurisdiction.write_text(content, encoding="utf-8")
    run_file = write_run_file(tmp_path, jurisdiction, extracts, ("2014-01-01", "2014-02-01"),
                              ("2014-02-01", "2014-02-02"), memory_limit_gb=0.1)
    resources = {
        "riskcast": RiskcastResource(run_config_path=str(run_file), home=str(tmp_path / "home")),
        "crime_source": LocalCrimeSource(folder=str(extracts), memory_limit_gb=0.1),
    }

    with pytest.raises(ExtractTooLargeError, match="limit of 0.1 GB"):
        dg.materialize([raw_crime_incidents], resources=resources, instance=dg.DagsterInstance.ephemeral())

    assert not (tmp_path / "home" / "testcity" / "warehouse.duckdb").exists()


def test_raw_asset_stores_extract_under_limit(tmp_path: Path, extracts: Path) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2014-01-01")
    content = jurisdiction.read_text(encoding="utf-8").replace("crimes/chicago_crimes_*.csv", "crimes/*.csv.gz")
    jurisdiction.write_text(content, encoding="utf-8")
    run_file = write_run_file(tmp_path, jurisdiction, extracts, ("2014-01-01", "2014-02-01"),
                              ("2014-02-01", "2014-02-02"), memory_limit_gb=4)
    resources = {
        "riskcast": RiskcastResource(run_config_path=str(run_file), home=str(tmp_path / "home")),
        "crime_source": LocalCrimeSource(folder=str(extracts), memory_limit_gb=4),
    }

    result = dg.materialize([raw_crime_incidents], resources=resources, instance=dg.DagsterInstance.ephemeral())
    with connect(tmp_path / "home" / "testcity" / "warehouse.duckdb", read_only=True) as connection:
        rows, first_id = connection.execute("SELECT count(*), min(id) FROM raw.crime_incidents").fetchone()

    assert result.success
    assert rows == ROWS
    assert first_id == "10000000"
