"""Refresh partitions: the trailing-window mapping, run file checks, and model choice when scoring.

The materialized tests train tiny ensembles for three weekly refresh partitions of a hand-made
four-cell city (ending 2023-01-22, 2023-01-29 and 2023-02-05, all Sundays at 00:00 UTC) and score
issue hours on both sides of the 2023-01-29 boundary.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ml.feature_store import write_window
from orchestration.assets.models import REGISTRY_COLUMNS
from orchestration.jurisdiction import ConfigError, load_jurisdiction, load_run_config
from orchestration.partitions import (
    hourly_partitions,
    refresh_partitions,
    scoring_model_mapping,
    training_partition_key,
    training_window_mapping,
)
from orchestration.warehouse import connect
from tests.extracts import write_run_file
from tests.tiny_city import (
    CELLS,
    FEATURES_END,
    build_tiny_home,
    incident_counts,
    materialize,
    score_range,
    tiny_features,
    write_tiny_city,
)

UTC = timezone.utc
HOUR = timedelta(hours=1)
BOUNDARY = datetime(2023, 1, 29, tzinfo=UTC)


def upstream_hours(run_file: Path, refresh_key: str) -> list[str]:
    run = load_run_config(run_file)
    jurisdiction = load_jurisdiction(run.jurisdiction)
    refresh = refresh_partitions(run, jurisdiction)
    hourly = hourly_partitions(jurisdiction)
    result = training_window_mapping(run).get_upstream_mapped_partitions_result_for_partitions(
        refresh.empty_subset().with_partition_keys([refresh_key]), refresh, hourly)
    assert not result.required_but_nonexistent_subset.get_partition_keys()
    return sorted(result.partitions_subset.get_partition_keys())


def hour_keys(start: datetime, end: datetime) -> list[str]:
    count = int((end - start) / HOUR)
    return [(start + step * HOUR).strftime("%Y-%m-%d-%H:%M") for step in range(count)]


def test_chicago_partition_maps_to_its_39_weeks() -> None:
    run_file = Path("orchestration/runs/chicago.yaml")

    hours = upstream_hours(run_file, "2017-09-24")

    assert hours == hour_keys(datetime(2017, 1, 1, tzinfo=UTC), datetime(2017, 10, 1, tzinfo=UTC))
    assert len(hours) == 273 * 24
    assert hours[-1] == "2017-09-30-23:00"


def test_philadelphia_partition_ends_at_05_utc() -> None:
    run_file = Path("orchestration/runs/philadelphia.yaml")

    hours = upstream_hours(run_file, "2017-03-15-05:00")

    assert hours == hour_keys(datetime(2017, 3, 1, 5, tzinfo=UTC), datetime(2017, 3, 22, 5, tzinfo=UTC))
    assert max(hours) < "2017-03-22-05:00"


def test_daily_partition_maps_to_trailing_days(tmp_path: Path) -> None:
    run_file = write_run_file(tmp_path, "demo", None, ("2023-06-01T06:00:00", "2023-06-11T06:00:00"),
                              ("2023-06-11T06:00:00", "2023-06-12T06:00:00"), refresh={"period": "daily"})

    hours = upstream_hours(run_file, "2023-06-10-06:00")

    assert hours == hour_keys(datetime(2023, 6, 1, 6, tzinfo=UTC), datetime(2023, 6, 11, 6, tzinfo=UTC))


def test_bundled_runs_train_partition_ending_at_train_end() -> None:
    for name, key in (("chicago", "2017-09-24"), ("philadelphia", "2017-03-15-05:00"), ("demo", "2023-08-25")):
        run = load_run_config(Path(f"orchestration/runs/{name}.yaml"))
        jurisdiction = load_jurisdiction(run.jurisdiction)
        refresh = refresh_partitions(run, jurisdiction)

        assert training_partition_key(run, jurisdiction, refresh) == key
        assert refresh.time_window_for_partition_key(key).end == run.train.end


def test_scoring_hour_maps_to_partition_ended_before_it() -> None:
    run = load_run_config(Path("orchestration/runs/chicago.yaml"))
    jurisdiction = load_jurisdiction(run.jurisdiction)
    hourly, refresh = hourly_partitions(jurisdiction), refresh_partitions(run, jurisdiction)
    cases = {"2017-10-01-00:00": "2017-09-24", "2017-09-30-23:00": "2017-09-17", "2017-10-04-12:00": "2017-09-24",
             "2017-10-07-23:00": "2017-09-24", "2017-10-08-00:00": "2017-10-01"}

    for hour, expected in cases.items():
        result = scoring_model_mapping(run).get_upstream_mapped_partitions_result_for_partitions(
            hourly.empty_subset().with_partition_keys([hour]), hourly, refresh)

        assert result.partitions_subset.get_partition_keys() == [expected], hour


def test_train_end_off_boundary_is_rejected(tmp_path: Path) -> None:
    path = write_run_file(tmp_path, "demo", None, ("2023-05-05", "2023-09-01"), ("2023-09-01", "2023-09-02"),
                          refresh={"period": "weekly", "weekday": "sunday"})

    with pytest.raises(ConfigError) as caught:
        load_run_config(path)

    assert "train.end 2023-09-01T00:00:00+00:00 (friday, 00:00 UTC)" in str(caught.value)
    assert "sunday at 00:00 UTC" in str(caught.value)
    assert "2023-08-27T00:00:00+00:00" in str(caught.value)


def test_window_of_partial_weeks_is_rejected(tmp_path: Path) -> None:
    path = write_run_file(tmp_path, "demo", None, ("2023-05-01", "2023-09-01"), ("2023-09-01", "2023-09-02"),
                          refresh={"period": "weekly"})

    with pytest.raises(ConfigError) as caught:
        load_run_config(path)

    assert "lasts 123 days" in str(caught.value)
    assert "Set train.start to 2023-05-05T00:00:00+00:00 (17 periods)" in str(caught.value)


def test_anchor_defaults_to_train_end(tmp_path: Path) -> None:
    path = write_run_file(tmp_path, "demo", None, ("2017-03-01T05:00:00", "2017-03-22T05:00:00"),
                          ("2017-03-22T05:00:00", "2017-03-23T05:00:00"), refresh={"period": "weekly"})

    refresh = load_run_config(path).refresh

    assert (refresh.period, refresh.weekday, refresh.hour) == ("weekly", "wednesday", 5)


def test_window_before_data_start_names_fix(tmp_path: Path) -> None:
    run_file = write_tiny_city(tmp_path, ["violent"])
    content = run_file.read_text(encoding="utf-8").replace("2023-01-15", "2022-12-25")
    run_file.write_text(content, encoding="utf-8")
    run = load_run_config(run_file)
    jurisdiction = load_jurisdiction(run.jurisdiction)

    with pytest.raises(ConfigError, match="move train.start to 2023-01-01T00:00:00\\+00:00 or later"):
        training_partition_key(run, jurisdiction, refresh_partitions(run, jurisdiction))


# Materialized: three refresh partitions of the tiny city, then scores across a boundary.

REFRESH_KEYS = ("2023-01-15", "2023-01-22", "2023-01-29")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dg.DagsterInstance]:
    folder = tmp_path_factory.mktemp("tiny_city")
    run_file = write_tiny_city(folder, ["violent"])
    home = folder / "home"
    build_tiny_home(run_file, home)
    instance = dg.DagsterInstance.ephemeral()
    for key in REFRESH_KEYS:
        assert materialize(run_file, home, "risk_ensemble", instance, partition_key=key).success
    return run_file, home, instance


def warehouse_of(home: Path) -> Path:
    return home / "tinycity" / "warehouse.duckdb"


def registry(home: Path) -> pl.DataFrame:
    with connect(warehouse_of(home), read_only=True) as connection:
        return connection.sql("SELECT * FROM main.model_registry ORDER BY train_end").pl()


def read_scores(home: Path) -> pl.DataFrame:
    with connect(warehouse_of(home), read_only=True) as connection:
        return connection.sql("SELECT * FROM main.risk_scores ORDER BY target, issued_at, horizon_hours, cell_id").pl()


def score_across_boundary(run_file: Path, home: Path, instance: dg.DagsterInstance) -> pl.DataFrame:
    tags = score_range(BOUNDARY - 2 * HOUR, BOUNDARY + HOUR)
    assert materialize(run_file, home, "risk_scores", instance, tags=tags).success
    return read_scores(home)


def test_registry_train_end_per_partition(trained: tuple[Path, Path, dg.DagsterInstance]) -> None:
    models = registry(trained[1])

    assert models["refresh_partition"].to_list() == list(REFRESH_KEYS)
    assert models["train_end"].to_list() == [datetime(2023, 1, 22), datetime(2023, 1, 29), datetime(2023, 2, 5)]
    assert models["train_start"].to_list() == [datetime(2023, 1, 8), datetime(2023, 1, 15), datetime(2023, 1, 22)]
    assert models["target"].to_list() == ["violent"] * 3


def test_issue_hour_uses_latest_model_before_it(trained: tuple[Path, Path, dg.DagsterInstance]) -> None:
    run_file, home, instance = trained
    models = dict(zip(registry(home)["refresh_partition"], registry(home)["model_id"], strict=True))

    scores = score_across_boundary(run_file, home, instance)
    used = dict(scores.group_by("issued_at").agg(pl.col("model_id").unique()).iter_rows())

    assert used == {
        datetime(2023, 1, 28, 22): [models["2023-01-15"]],
        datetime(2023, 1, 28, 23): [models["2023-01-15"]],
        datetime(2023, 1, 29, 0): [models["2023-01-22"]],
        datetime(2023, 1, 29, 1): [models["2023-01-22"]],
    }
    assert models["2023-01-29"] not in scores["model_id"].to_list()
    assert scores.height == 4 * len(CELLS) * 72


def test_each_target_uses_its_own_models(trained: tuple[Path, Path, dg.DagsterInstance],
                                         tmp_path: Path) -> None:
    run_file, home, instance = trained
    violent = registry(home)
    robbery = violent.filter(pl.col("refresh_partition") == "2023-01-15").with_columns(
        pl.lit("robbery").alias("target"), (pl.col("model_id") + "-robbery").alias("model_id"))
    with connect(warehouse_of(home)) as connection:
        connection.register("robbery", robbery.select(REGISTRY_COLUMNS).to_arrow())
        connection.execute("INSERT INTO main.model_registry SELECT * FROM robbery")
    two_targets = write_tiny_city(tmp_path, ["violent", "robbery"])

    try:
        scores = score_across_boundary(two_targets, home, instance)
    finally:
        with connect(warehouse_of(home)) as connection:
            connection.execute("DELETE FROM main.model_registry WHERE target = 'robbery'")
            connection.execute("DELETE FROM main.risk_scores WHERE target = 'robbery'")
    per_target = scores.group_by("target").agg(pl.col("model_id").unique().sort(), pl.len()).sort("target")

    assert {target: models for target, models, _ in per_target.iter_rows()} == {
        "robbery": [robbery["model_id"][0]],
        "violent": sorted(violent["model_id"][:2].to_list()),
    }
    assert per_target["len"].to_list() == [4 * len(CELLS) * 72] * 2


def test_same_seed_gives_same_scores(trained: tuple[Path, Path, dg.DagsterInstance]) -> None:
    run_file, home, instance = trained
    before = score_across_boundary(run_file, home, instance)
    models_before = registry(home)["model_id"].to_list()

    assert materialize(run_file, home, "risk_ensemble", instance, partition_key="2023-01-22").success
    after = score_across_boundary(run_file, home, instance)

    assert registry(home)["model_id"].to_list() == models_before
    assert after["risk"].to_list() == before["risk"].to_list()
    assert after["relative_risk"].to_list() == before["relative_risk"].to_list()
    assert after["rank"].to_list() == before["rank"].to_list()


def test_manifest_records_window_and_files(trained: tuple[Path, Path, dg.DagsterInstance]) -> None:
    home = trained[1]
    path = Path(registry(home).filter(pl.col("refresh_partition") == "2023-01-22")["path"][0])
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))

    assert manifest["train_start"] == "2023-01-15T00:00:00+00:00"
    assert manifest["train_end"] == "2023-01-29T00:00:00+00:00"
    assert [entry["file"] for entry in manifest["feature_files"]] == [
        f"day=2023-01-{day:02d}.parquet" for day in range(15, 29)]
    assert manifest["target"] == "violent"
    assert manifest["refresh_partition"] == "2023-01-22"
    assert manifest["seed"] == 11


def test_training_ignores_hours_after_end(tmp_path: Path) -> None:
    run_file = write_tiny_city(tmp_path, ["violent"])
    home = tmp_path / "home"
    settings = build_tiny_home(run_file, home)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(run_file, home, "risk_ensemble", instance, partition_key="2023-01-15").success
    before = registry(home)
    end = datetime(2023, 1, 22, tzinfo=UTC)
    other = tiny_features(run_file, incident_counts(99), end, FEATURES_END)
    write_window(settings.features_dir, other, end, FEATURES_END)

    assert materialize(run_file, home, "risk_ensemble", instance, partition_key="2023-01-15").success
    after = registry(home)

    assert after["model_id"].to_list() == before["model_id"].to_list()
    assert after["training_positives"].to_list() == before["training_positives"].to_list()
