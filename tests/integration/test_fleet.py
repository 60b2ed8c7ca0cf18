"""Two jurisdictions as one multi-partitioned asset (jurisdiction x hour) give each city its own outputs.

The second jurisdiction is a copy of the small demo under another name, so its features and
scores must equal the demo's value for value, and they must land in its own folder and warehouse.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from ml.feature_store import day_file
from orchestration.fleet import FEATURES_KEY, SCORES_KEY, build_fleet_definitions, load_fleet
from orchestration.jurisdiction import ConfigError
from orchestration.partitions import RANGE_END_TAG, RANGE_START_TAG
from orchestration.warehouse import connect

DAYS = [date(2023, 3, 31), date(2023, 4, 1)]


@pytest.fixture(scope="module")
def fleet(small_demo_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fleet file of the demo and a renamed copy of it, with a copy of the demo's home."""
    folder = tmp_path_factory.mktemp("fleet")
    home = folder / "home"
    shutil.copytree(small_demo_run.folder / "home", home, ignore=shutil.ignore_patterns("dagster"))
    shutil.copytree(home / "smalldemo", home / "smalldemo_b")

    run = yaml.safe_load(small_demo_run.run_file.read_text(encoding="utf-8"))
    jurisdiction = yaml.safe_load(Path(run["jurisdiction"]).read_text(encoding="utf-8"))
    jurisdiction["name"] = "smalldemo_b"
    (folder / "smalldemo_b.yaml").write_text(yaml.safe_dump(jurisdiction), encoding="utf-8")
    (folder / "run_b.yaml").write_text(yaml.safe_dump({**run, "jurisdiction": str(folder / "smalldemo_b.yaml")}),
                                       encoding="utf-8")
    fleet_file = folder / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump({"run_files": [str(small_demo_run.run_file), "run_b.yaml"]}),
                          encoding="utf-8")
    return fleet_file, home


def scores(warehouse: Path) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql("SELECT * FROM main.risk_scores WHERE issued_at >= '2023-04-01' "
                              "AND issued_at < '2023-04-02' ORDER BY target, issued_at, horizon_hours, "
                              "cell_id").pl()


def clear(root: Path) -> None:
    for day in DAYS:
        day_file(root / "features", day).unlink()
    with connect(root / "warehouse.duckdb") as connection:
        connection.execute("DELETE FROM main.risk_scores WHERE issued_at >= '2023-04-01' "
                           "AND issued_at < '2023-04-02'")


def materialize(definitions: dg.Definitions, key: dg.AssetKey, first: str, last: str,
                instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = definitions.resolve_implicit_global_asset_job_def().get_subset(asset_selection={key})
    return job.execute_in_process(instance=instance, tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
                                  raise_on_error=False)


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    return [str(event.event_specific_data.error) for event in result.all_events if event.is_step_failure]


def test_fleet_partition_writes_own_city(fleet: tuple[Path, Path]) -> None:
    fleet_file, home = fleet
    a, b = home / "smalldemo", home / "smalldemo_b"
    reference_days = {day: pl.read_parquet(day_file(a / "features", day))
                      for day in DAYS}
    reference_scores = scores(a / "warehouse.duckdb")
    clear(a)
    clear(b)
    definitions = build_fleet_definitions(fleet_file, home)
    instance = dg.DagsterInstance.ephemeral()

    built = materialize(definitions, FEATURES_KEY, "2023-03-31-00:00|smalldemo_b", "2023-04-01-23:00|smalldemo_b",
                        instance)
    scored = materialize(definitions, SCORES_KEY, "2023-04-01-00:00|smalldemo_b", "2023-04-01-23:00|smalldemo_b",
                         instance)

    assert built.success, failures(built)
    assert scored.success, failures(scored)
    for day, frame in reference_days.items():
        assert_frame_equal(pl.read_parquet(day_file(b / "features", day)), frame)
        assert not day_file(a / "features", day).exists()
    assert_frame_equal(scores(b / "warehouse.duckdb"), reference_scores)
    assert scores(a / "warehouse.duckdb").height == 0
    materialized = instance.get_materialized_partitions(SCORES_KEY)
    assert len(materialized) == 24
    assert {str(key).split("|")[1] for key in materialized} == {"smalldemo_b"}


def test_fleet_range_across_cities_rejected(fleet: tuple[Path, Path]) -> None:
    fleet_file, home = fleet
    definitions = build_fleet_definitions(fleet_file, home)

    result = materialize(definitions, FEATURES_KEY, "2023-04-01-00:00|smalldemo", "2023-04-01-02:00|smalldemo_b",
                         dg.DagsterInstance.ephemeral())

    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "spans two jurisdictions" in str(failure.event_specific_data.error)


def test_fleet_partitions_city_by_hour(fleet: tuple[Path, Path]) -> None:
    fleet_file, home = fleet
    definitions = build_fleet_definitions(fleet_file, home)

    partitions = definitions.resolve_assets_def(SCORES_KEY).partitions_def

    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    assert [dimension.name for dimension in partitions.partitions_defs] == ["hour", "jurisdiction"]
    assert partitions.partitions_defs[1].partitions_def.get_partition_keys() == ["smalldemo", "smalldemo_b"]
    assert sorted(load_fleet(fleet_file)) == ["smalldemo", "smalldemo_b"]


def test_fleet_duplicate_city_rejected(fleet: tuple[Path, Path], tmp_path: Path) -> None:
    fleet_file, _ = fleet
    run_files = yaml.safe_load(fleet_file.read_text(encoding="utf-8"))["run_files"]
    twice = tmp_path / "fleet.yaml"
    twice.write_text(yaml.safe_dump({"run_files": [run_files[0], run_files[0]]}), encoding="utf-8")

    with pytest.raises(ConfigError, match="jurisdiction 'smalldemo' comes from both"):
        load_fleet(twice)
