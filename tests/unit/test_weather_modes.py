"""Tests for the weather-mode backtest's planning, the forecast-coverage check and their report text."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ml.backtest import plan_issues
from ml.reports.model_metrics import weather_mode_section
from ml.target_weather import TargetWeather, WeatherInputs
from orchestration.assets.backtest import weather_note
from orchestration.assets.scoring import ModelCache, ModelSpan, forecast_check
from orchestration.assets.weather_modes import LABELS, plan_origins
from orchestration.jurisdiction import RunConfig
from orchestration.weather_inputs import WeatherCoverage, model_weather_inputs

UTC = timezone.utc


def run_config(**extra) -> RunConfig:
    return RunConfig(jurisdiction="demo", train={"start": "2023-05-05", "end": "2023-09-01"},
                     score={"start": "2023-09-01", "end": "2023-09-04"}, **extra)


def test_origins_split_issues() -> None:
    issues = plan_issues(datetime(2017, 7, 2, 5, tzinfo=UTC), datetime(2017, 8, 31, 5, tzinfo=UTC),
                         "America/Chicago", 0)
    origins = plan_origins(issues, refresh_days=28, train_days=182)
    assert [len(origin.issues) for origin in origins] == [28, 28, 4]
    assert origins[1].end == issues[0].issued_at + timedelta(days=28)
    assert origins[1].end - origins[1].start == timedelta(days=182)
    for origin in origins:
        assert all(origin.end <= issue.issued_at for issue in origin.issues)
    assert sum(len(origin.issues) for origin in origins) == len(issues)


def test_forecast_check_warns_only_when_forecasts_were_expected() -> None:
    missing = WeatherCoverage(forecast=100, stand_in=44)
    warned = forecast_check(missing, "nws")
    assert not warned.passed
    assert warned.severity == dg.AssetCheckSeverity.WARN
    assert "44 of 144" in warned.description
    assert warned.metadata["pairs_from_stand_in"].value == 44

    assert forecast_check(missing, "none").passed
    assert forecast_check(WeatherCoverage(forecast=144), "archive").passed
    assert forecast_check(WeatherCoverage(), "nws").passed


def test_coverage_note_counts_each_source() -> None:
    coverage = WeatherCoverage()
    weather = TargetWeather(pl.DataFrame({"hour": [datetime(2020, 1, 1, tzinfo=UTC)], "temperature_f": [1.0],
                                          "precipitation_in": [0.0], "relative_humidity": [50.0],
                                          "wind_speed_mph": [3.0]}),
                            WeatherInputs("stand_in"), 72)
    weather.columns([438_300, 438_300], [1, 2])
    coverage.add(weather)
    coverage.add(None)
    assert coverage.note() == ("0 of 72 issue-hour x horizon pairs from archived forecasts, 72 from the stand-in "
                               "forecast, 0 from observations")


def test_oracle_model_cannot_score(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"weather": {"mode": "observed", "stand_in": null}}')
    assert model_weather_inputs(folder) == WeatherInputs("observed")
    span = ModelSpan("violent", "oracle-model", folder, datetime(2020, 1, 1, tzinfo=UTC),
                     datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="oracle weather"):
        ModelCache().weather_inputs(span)


def test_model_without_weather_entry_is_legacy(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"model_id": "old"}')
    assert model_weather_inputs(tmp_path) is None
    assert model_weather_inputs(tmp_path / "absent") is None


def test_run_file_rejects_oracle_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        run_config(weather={"mode": "observed"})
    with pytest.raises(ValueError, match="blend_weight"):
        run_config(weather={"stand_in": {"blend_weight": 1.5}})
    assert run_config().weather.inputs().mode == "stand_in"


def test_weather_note_names_the_stand_in() -> None:
    assert "exp(-h / 24)" in weather_note(run_config())
    assert "persistence (the last observed value" in weather_note(
        run_config(weather={"stand_in": {"method": "persistence"}}))
    assert "no weather input" in weather_note(run_config(weather={"mode": "none"}))


def test_report_section_labels_the_oracle_and_escapes() -> None:
    rows = []
    for model, label in LABELS.items():
        for metric, aggregation, value in (("roc_auc", "hour", 0.7), ("roc_auc", "day", 0.71), ("pai", "day", 3.1)):
            rows.append({"model": model, "label": label, "metric": metric, "aggregation": aggregation,
                         "value": value, "ci_low": value - 0.01, "ci_high": value + 0.01})
    rows[0]["label"] = "(a) <script>x</script>"

    class Inputs:
        weather_modes = pl.DataFrame(rows)

    html = weather_mode_section(Inputs())  # type: ignore[arg-type]
    assert html.index("(a)") < html.index("(b) stand-in") < html.index("(c) observed weather: an oracle")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "[0.69, 0.71]" in html

    class Empty:
        weather_modes = None

    assert "riskcast weather-modes" in weather_mode_section(Empty())  # type: ignore[arg-type]
