"""Re-ingesting extracts: nothing changes for the same file; a corrected record names its partitions.

The pure comparison runs on small frames. The ingest runs the real raw asset in Dagster against a
DuckDB file three times: first load, the same extract again, then a corrected extract.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.jurisdiction import load_jurisdiction
from orchestration.revisions import compare_versions, utc_hours
from orchestration.warehouse import connect
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

CHICAGO = load_jurisdiction("chicago")


def frame(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame({"id": [row[0] for row in rows], "date": [row[1] for row in rows],
                         "offense_code": [row[2] for row in rows], "latitude": ["41.88"] * len(rows),
                         "longitude": ["-87.62"] * len(rows)})


def test_nonexistent_local_time_moves_forward() -> None:
    hours = utc_hours(pl.Series(["03/10/2024 02:30:00 AM"]), CHICAGO)

    assert hours.dt.strftime("%Y-%m-%d %H:%M").to_list() == ["2024-03-10 08:00"]


def test_ambiguous_local_time_takes_first_occurrence() -> None:
    hours = utc_hours(pl.Series(["11/03/2024 01:30:00 AM"]), CHICAGO)

    assert hours.dt.strftime("%Y-%m-%d %H:%M").to_list() == ["2024-11-03 06:00"]


def test_same_rows_change_nothing() -> None:
    rows = frame([("1", "01/01/2024 10:00:00 PM", "06"), ("2", "01/02/2024 10:00:00 PM", "03")])

    changes = compare_versions(rows, rows.reverse(), CHICAGO)

    assert changes.changed == 0
    assert changes.partitions == []


def test_revised_time_touches_old_and_new_hours() -> None:
    before = frame([("1", "01/01/2024 10:00:00 PM", "06")])
    after = frame([("1", "01/01/2024 11:15:00 PM", "06")])

    changes = compare_versions(before, after, CHICAGO)

    assert changes.revised_ids == ["1"]
    assert changes.partitions == ["2024-01-02-04:00", "2024-01-02-05:00"]


def test_new_and_removed_records() -> None:
    before = frame([("1", "01/01/2024 10:00:00 PM", "06"), ("2", "01/03/2024 01:00:00 AM", "06")])
    after = frame([("1", "01/01/2024 10:00:00 PM", "06"), ("3", "01/04/2024 01:00:00 AM", "03")])

    changes = compare_versions(before, after, CHICAGO)

    assert (changes.new_ids, changes.revised_ids, changes.removed_ids) == (["3"], [], ["2"])
    assert changes.partitions == ["2024-01-03-07:00", "2024-01-04-07:00"]


def test_later_duplicate_row_is_the_version_compared() -> None:
    before = frame([("1", "01/01/2024 10:00:00 PM", "06")])
    after = frame([("1", "01/01/2024 10:00:00 PM", "06"), ("1", "01/01/2024 10:00:00 PM", "04A")])

    assert compare_versions(before, after, CHICAGO).revised_ids == ["1"]


ORIGINAL = [
    crime_row("900101", "ZZ1", "07/04/2023 12:15:00 AM", "08B", "07/11/2023 03:41:00 PM", "41.879", "-87.658"),
    crime_row("900102", "ZZ2", "07/04/2023 12:15:00 PM", "06", "07/11/2023 03:41:00 PM", "41.879", "-87.658"),
]
# 900102 corrected: a robbery two hours later, published with a later Updated On.
CORRECTED = [
    ORIGINAL[0],
    crime_row("900102", "ZZ2", "07/04/2023 02:15:00 PM", "03", "07/20/2023 09:00:00 AM", "41.879", "-87.658"),
]


def ingest(folder: Path, rows: list[str]) -> dg.ExecuteInProcessResult:
    extracts = write_extracts(folder / "extracts", rows, [])
    jurisdiction = write_test_jurisdiction(folder, "2023-01-01")
    run_file = write_run_file(folder, jurisdiction, extracts, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))
    job = build_definitions(run_file, folder / "home").resolve_job_def(WAREHOUSE_JOB)
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                  asset_selection=[dg.AssetKey("raw_crime_incidents")])


def raw_state(warehouse: Path) -> tuple[list[tuple], list[tuple], list[tuple], list[tuple]]:
    with connect(warehouse, read_only=True) as connection:
        return (
            connection.sql("SELECT * EXCLUDE (source_file, source_row) FROM raw.crime_incidents ORDER BY id").fetchall(),
            connection.sql("SELECT change, incident_id FROM raw.crime_changes ORDER BY ALL").fetchall(),
            connection.sql("SELECT partition_key FROM raw.affected_partitions ORDER BY ALL").fetchall(),
            connection.sql("SELECT source, watermark, pulled_rows FROM raw.ingest_state").fetchall(),
        )


@pytest.fixture(scope="module")
def ingests(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dg.ExecuteInProcessResult, tuple]]:
    folder = tmp_path_factory.mktemp("revisions")
    warehouse = folder / "home" / "testcity" / "warehouse.duckdb"
    outcomes = []
    for rows in (ORIGINAL, ORIGINAL, CORRECTED):
        result = ingest(folder, rows)
        assert result.success
        outcomes.append((result, raw_state(warehouse)))
    return outcomes


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    materialization = result.asset_materializations_for_node("raw_crime_incidents")[0]
    return {key: value.value for key, value in materialization.metadata.items()}


def test_first_ingest_records_no_changes(ingests: list) -> None:
    _, (_, changes, partitions, state) = ingests[0]

    assert metadata(ingests[0][0])["first_ingest"] is True
    assert (changes, partitions) == ([], [])
    assert state == [("extracts:crime_incidents", "2023-07-11T20:00:00", 2)]


def test_same_extract_twice_changes_nothing(ingests: list) -> None:
    first_rows = ingests[0][1][0]
    second_rows, changes, partitions, _ = ingests[1][1]

    assert second_rows == first_rows
    assert (changes, partitions) == ([], [])
    assert metadata(ingests[1][0])["records_revised"] == 0


def test_corrected_record_replaces_old_and_names_partitions(ingests: list) -> None:
    rows, changes, partitions, state = ingests[2][1]

    assert len(rows) == 2
    assert changes == [("revised", "900102")]
    # 12:15 PM CDT is 17:15 UTC, and the corrected 02:15 PM is 19:15 UTC.
    assert partitions == [("2023-07-04-17:00",), ("2023-07-04-19:00",)]
    assert state == [("extracts:crime_incidents", "2023-07-20T14:00:00", 2)]
    assert metadata(ingests[2][0])["affected_partitions"] == 2


def test_latest_updated_on_wins_over_row_order() -> None:
    """Staging keeps the version with the latest Updated On even when an older one is read last."""
    before = frame([("1", "01/01/2024 10:00:00 PM", "06")]).with_columns(pl.lit("01/05/2024 10:00:00 AM").alias("updated_on"))
    after = pl.concat([
        frame([("1", "01/01/2024 10:00:00 PM", "06")]).with_columns(pl.lit("01/05/2024 10:00:00 AM").alias("updated_on")),
        frame([("1", "01/01/2024 10:00:00 PM", "03")]).with_columns(pl.lit("01/04/2024 10:00:00 AM").alias("updated_on")),
    ])

    assert compare_versions(before, after, CHICAGO).changed == 0
