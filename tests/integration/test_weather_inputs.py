"""Forecast-time weather in the real pipeline: manifests, archived forecasts in scoring, and the WARN check.

Uses the small demo run of ``conftest.py``: its models were trained in the default mode
(``stand_in``). A copy of its home scores one issue hour with an archive that covers only the
first 35 horizons, so the run must finish, warn, and count 35 archived and 37 stand-in hours.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from orchestration.assets.raw_forecasts import raw_weather_forecasts
from orchestration.assets.scoring import FORECAST_CHECK
from orchestration.definitions import SCORE_JOB, build_definitions
from orchestration.resources import RiskcastResource
from orchestration.runner import range_tags
from orchestration.sources.forecasts import LocalForecastSource, write_forecast_archive
from orchestration.warehouse import connect

UTC = timezone.utc
HOUR = timedelta(hours=1)
ISSUE = datetime(2023, 4, 1, tzinfo=UTC)


def archive_frame(issued: datetime, hours: int, temperature: float) -> pl.DataFrame:
    valid = [issued + offset * HOUR for offset in range(hours)]
    return pl.DataFrame({
        "issued_at": [issued] * hours, "valid_hour": valid, "temperature_f": [temperature] * hours,
        "precipitation_probability": [0.9] * hours, "precipitation_in": [0.2] * hours,
        "relative_humidity": [95.0] * hours, "wind_speed_mph": [30.0] * hours,
        "fetched_at": [issued] * hours, "source": ["test archive"] * hours,
    }).with_columns(pl.col(name).dt.replace_time_zone(None) for name in ("issued_at", "valid_hour", "fetched_at"))


def issue_scores(warehouse: Path) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.execute(
            "SELECT cell_id, horizon_hours, target, risk FROM main.risk_scores WHERE issued_at = ? "
            "ORDER BY target, horizon_hours, cell_id", [ISSUE.replace(tzinfo=None)]).pl()


@pytest.fixture(scope="module")
def forecast_run(small_demo_run, tmp_path_factory: pytest.TempPathFactory):
    """Score the first issue hour again in a copy of the demo home, with a partial forecast archive."""
    folder = tmp_path_factory.mktemp("forecast_run")
    home = folder / "home"
    shutil.copytree(small_demo_run.home, home, ignore=shutil.ignore_patterns("dagster"))
    run = yaml.safe_load(small_demo_run.run_file.read_text(encoding="utf-8"))
    run["forecast_source"] = "archive"
    run_file = folder / "run.yaml"
    run_file.write_text(yaml.safe_dump(run), encoding="utf-8")

    archive = folder / "forecasts"
    # Issued an hour before the issue time, covering it and 34 more hours; the later issue must be ignored.
    write_forecast_archive(archive_frame(ISSUE - HOUR, 36, 99.0), archive)
    write_forecast_archive(archive_frame(ISSUE + 5 * HOUR, 72, -40.0), archive)

    instance = dg.DagsterInstance.ephemeral()
    resources = {"riskcast": RiskcastResource(run_config_path=str(run_file), home=str(home)),
                 "forecast_source": LocalForecastSource(folder=str(archive))}
    assert dg.materialize([raw_weather_forecasts], resources=resources, instance=instance).success

    definitions = build_definitions(run_file, home)
    result = definitions.resolve_job_def(SCORE_JOB).execute_in_process(
        instance=instance, tags=range_tags(ISSUE, ISSUE + HOUR), raise_on_error=False)
    yield result, home / "smalldemo" / "warehouse.duckdb", small_demo_run
    instance.dispose()


def test_manifest_records_the_weather_mode(small_demo_run) -> None:
    manifests = sorted((small_demo_run.home / "smalldemo" / "models").glob("*/manifest.json"))
    assert manifests
    for path in manifests:
        entry = json.loads(path.read_text())["weather"]
        assert entry["mode"] == "stand_in"
        assert entry["oracle_weather"] is False
        assert entry["stand_in"]["method"] == "blend"
        assert entry["stand_in"]["blend_tau_hours"] == 24.0
        assert entry["target_hour_sources"]["stand_in"] > 0
        assert entry["target_hour_sources"]["observed"] == 0
        assert "target_temperature_f" in json.loads(path.read_text())["feature_names"]


def test_missing_forecast_warns_only(forecast_run) -> None:
    result, _, _ = forecast_run
    assert result.success
    evaluations = [evaluation for evaluation in result.get_asset_check_evaluations()
                   if evaluation.check_name == FORECAST_CHECK]
    assert len(evaluations) == 1
    evaluation = evaluations[0]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["pairs_from_forecasts"].value == 35
    assert evaluation.metadata["pairs_from_stand_in"].value == 37


def test_archived_forecast_changes_only_what_it_covers(forecast_run) -> None:
    _, warehouse, small_demo_run = forecast_run
    before = issue_scores(small_demo_run.warehouse)
    after = issue_scores(warehouse)
    assert before.height == after.height > 0
    joined = before.join(after, on=["cell_id", "horizon_hours", "target"], suffix="_forecast")
    changed = joined.filter((pl.col("risk") - pl.col("risk_forecast")).abs() > 1e-9)
    assert changed.height > 0
    assert changed["horizon_hours"].min() == 1


def test_scores_without_archive_match_the_demo(small_demo_run, tmp_path: Path) -> None:
    """Scoring the same hour again with no archive reproduces the demo's scores exactly."""
    home = tmp_path / "home"
    shutil.copytree(small_demo_run.home, home, ignore=shutil.ignore_patterns("dagster"))
    definitions = build_definitions(small_demo_run.run_file, home)
    with dg.DagsterInstance.ephemeral() as instance:
        result = definitions.resolve_job_def(SCORE_JOB).execute_in_process(
            instance=instance, tags=range_tags(ISSUE, ISSUE + HOUR))
    assert result.success
    check = [e for e in result.get_asset_check_evaluations() if e.check_name == FORECAST_CHECK][0]
    assert check.passed
    assert check.metadata["pairs_from_stand_in"].value == 72
    before = issue_scores(small_demo_run.warehouse)
    again = issue_scores(home / "smalldemo" / "warehouse.duckdb")
    assert before.equals(again)
