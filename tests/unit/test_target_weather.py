"""Tests for ml.target_weather: the array path against the one-issue reference, and its honesty.

The reference is ``ml.weather_forecast.forecast_time_weather`` followed by
``forecast_time_features`` (levels at the valid hour), computed one issue time at a time. At
midnight cut-offs the array path must give the same value for every horizon from 1 to 72.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from ml.model_data import build_scoring_frame, build_training_set
from ml.target_weather import (
    PREFIX,
    TARGET_WEATHER_COLUMNS,
    TargetWeather,
    WeatherInputs,
    base_names,
    cutoff_weather_columns,
)
from ml.weather_forecast import (
    UTC_HOUR,
    WeatherStandIn,
    forecast_time_features,
    forecast_time_weather,
    observations_before,
)

UTC = timezone.utc
HOUR = timedelta(hours=1)
H = 72
FIRST = datetime(2015, 1, 1, tzinfo=UTC)
LAST = datetime(2017, 9, 1, tzinfo=UTC)
ISSUES = [datetime(2017, 3, 12, tzinfo=UTC), datetime(2017, 6, 30, tzinfo=UTC), datetime(2017, 8, 20, tzinfo=UTC)]


def observed_weather(seed: int = 3) -> pl.DataFrame:
    """Hourly weather with a daily and yearly cycle, noise, missing values, gaps of whole hours and traces."""
    rng = np.random.default_rng(seed)
    hours = pl.datetime_range(FIRST, LAST, "1h", closed="left", time_zone="UTC", eager=True)
    n = hours.len()
    t = np.arange(n)
    temperature = 50 + 25 * np.sin(2 * np.pi * t / (24 * 365.25)) + 8 * np.sin(2 * np.pi * t / 24) \
        + rng.normal(0, 4, n)
    rain = np.where(rng.random(n) < 0.08, rng.exponential(0.05, n), 0.0)
    frame = pl.DataFrame({
        "hour": hours,
        "temperature_f": np.where(rng.random(n) < 0.05, np.nan, temperature),
        "precipitation_in": np.where(rng.random(n) < 0.2, np.nan, rain),
        "relative_humidity": rng.uniform(30, 100, n),
        "wind_speed_mph": rng.gamma(2, 4, n),
        "precipitation_is_trace": rng.random(n) < 0.03,
    }).with_columns(pl.col(name).fill_nan(None) for name in ("temperature_f", "precipitation_in"))
    gap = (pl.col("hour") >= datetime(2017, 6, 28, 20, tzinfo=UTC)) & (pl.col("hour") < datetime(2017, 6, 29, 4, tzinfo=UTC))
    return frame.filter(~gap & (rng.random(n) > 0.02))


def archive(issues: list[datetime]) -> pl.DataFrame:
    """Forecasts issued 6 hours before each issue for its first 36 hours, one row lacking a level."""
    rows = []
    for issue in issues:
        issued = issue - 6 * HOUR
        for offset in range(42):
            valid = issued + offset * HOUR
            rows.append({"issued_at": issued, "valid_hour": valid, "temperature_f": 60.0 + offset,
                         "precipitation_in": 0.02 if offset % 5 == 0 else 0.0,
                         "relative_humidity": 55.0, "wind_speed_mph": 7.0,
                         "precipitation_probability": None if offset % 3 else 0.4})
    frame = pl.DataFrame(rows).with_columns(pl.col("issued_at").cast(UTC_HOUR), pl.col("valid_hour").cast(UTC_HOUR))
    return frame.with_columns(pl.when(pl.col("valid_hour") == issues[0] + 2 * HOUR).then(None)
                              .otherwise(pl.col("wind_speed_mph")).alias("wind_speed_mph"))


def reference(observed: pl.DataFrame, issue: datetime, settings: WeatherStandIn,
              forecasts: pl.DataFrame | None) -> pl.DataFrame:
    weather = forecast_time_weather(observed, forecasts, issue, range(1, H + 1), settings)
    return forecast_time_features(observed, weather, issue, level_hour="valid")


def oracle_reference(observed: pl.DataFrame, issue: datetime) -> pl.DataFrame:
    """The reference features when the 'forecast' is what was later observed."""
    rows = observations_before(observed, datetime(2100, 1, 1, tzinfo=UTC))
    grid = pl.DataFrame({"horizon_hours": np.arange(1, H + 1, dtype=np.int32),
                         "valid_hour": [issue + h * HOUR for h in range(H)]}).with_columns(
        pl.col("valid_hour").cast(UTC_HOUR))
    weather = grid.join(rows.rename({"hour": "valid_hour"}), on="valid_hour", how="left", maintain_order="left")
    return forecast_time_features(observed, weather, issue, level_hour="valid")


def array_path(observed: pl.DataFrame, inputs: WeatherInputs, issues: list[datetime],
               forecasts: pl.DataFrame | None = None) -> tuple[dict[str, np.ndarray], TargetWeather]:
    weather = TargetWeather(observed, inputs, H, forecasts)
    cutoffs = np.repeat([int(issue.timestamp()) // 3600 for issue in issues], H)
    horizons = np.tile(np.arange(1, H + 1), len(issues))
    return weather.columns(cutoffs, horizons), weather


def assert_matches(mine: dict[str, np.ndarray], expected: pl.DataFrame, block: int) -> None:
    rows = slice(block * H, (block + 1) * H)
    for name in base_names():
        for suffix in ("", "_missing"):
            want = expected[f"{name}{suffix}"].cast(pl.Float64).to_numpy()
            got = mine[f"{PREFIX}{name}{suffix}"][rows]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=f"{name}{suffix} at block {block}")


@pytest.fixture(scope="module")
def observed() -> pl.DataFrame:
    return observed_weather()


@pytest.mark.parametrize("method", ["persistence", "climatology", "blend"])
def test_stand_in_matches_reference_at_every_horizon(observed: pl.DataFrame, method: str) -> None:
    settings = WeatherStandIn(method=method)
    mine, weather = array_path(observed, WeatherInputs("stand_in", settings), ISSUES)
    for block, issue in enumerate(ISSUES):
        assert_matches(mine, reference(observed, issue, settings, None), block)
    assert weather.coverage == {"forecast": 0, "stand_in": len(ISSUES) * H, "observed": 0}


def test_fixed_blend_weight_matches_reference(observed: pl.DataFrame) -> None:
    settings = WeatherStandIn(method="blend", blend_weight=0.3, climatology_years=2, smoothing_days=3)
    mine, _ = array_path(observed, WeatherInputs("stand_in", settings), ISSUES)
    for block, issue in enumerate(ISSUES):
        assert_matches(mine, reference(observed, issue, settings, None), block)


def test_archive_overrides_stand_in_like_reference(observed: pl.DataFrame) -> None:
    forecasts = archive(ISSUES)
    settings = WeatherStandIn()
    mine, weather = array_path(observed, WeatherInputs("stand_in", settings), ISSUES, forecasts)
    for block, issue in enumerate(ISSUES):
        assert_matches(mine, reference(observed, issue, settings, forecasts), block)
    # 36 hours per issue are covered, less the first issue's hour whose row lacks the wind speed.
    assert weather.coverage["forecast"] == len(ISSUES) * 36 - 1
    assert mine["target_temperature_f"][0] == pytest.approx(66.0)


def test_oracle_matches_reference_with_observed_weather(observed: pl.DataFrame) -> None:
    mine, weather = array_path(observed, WeatherInputs("observed"), ISSUES)
    for block, issue in enumerate(ISSUES):
        assert_matches(mine, oracle_reference(observed, issue), block)
    assert weather.coverage["observed"] == len(ISSUES) * H


def test_stand_in_ignores_later_observations(observed: pl.DataFrame) -> None:
    issue = ISSUES[1]
    poisoned = observed.with_columns(
        pl.when(pl.col("hour") >= issue).then(9999.0).otherwise(pl.col(name)).alias(name)
        for name in ("temperature_f", "precipitation_in", "relative_humidity", "wind_speed_mph"))
    inputs = WeatherInputs("stand_in", WeatherStandIn())
    clean, _ = array_path(observed, inputs, [issue])
    dirty, _ = array_path(poisoned, inputs, [issue])
    for name in TARGET_WEATHER_COLUMNS:
        np.testing.assert_array_equal(clean[name], dirty[name], err_msg=name)
    oracle, _ = array_path(poisoned, WeatherInputs("observed"), [issue])
    assert oracle["target_temperature_f"].max() == pytest.approx(9999.0)


def test_climatology_comes_from_the_cutoff_day(observed: pl.DataFrame) -> None:
    """A cut-off at 05:00 uses the climatology built before its day's midnight."""
    midnight = ISSUES[0]
    settings = WeatherStandIn(method="climatology")
    weather = TargetWeather(observed, WeatherInputs("stand_in", settings), H)
    later = int(midnight.timestamp()) // 3600 + 5
    values = weather.columns(np.full(H - 5, later), np.arange(1, H - 4))
    at_midnight = weather.columns(np.full(H, later - 5), np.arange(1, H + 1))
    np.testing.assert_allclose(values["target_temperature_f"], at_midnight["target_temperature_f"][5:])
    assert list(weather.climatologies) == [later // 24]


def test_rows_gather_their_own_pair(observed: pl.DataFrame) -> None:
    weather = TargetWeather(observed, WeatherInputs("stand_in", WeatherStandIn()), H)
    cutoff = int(ISSUES[2].timestamp()) // 3600
    both = weather.columns(np.array([cutoff, cutoff + 24, cutoff]), np.array([30, 6, 30]))
    alone = weather.columns(np.array([cutoff + 24]), np.array([6]))
    assert both["target_temperature_f"][0] == both["target_temperature_f"][2]
    assert both["target_temperature_f"][1] == alone["target_temperature_f"][0]


def test_horizon_outside_range_is_rejected(observed: pl.DataFrame) -> None:
    weather = TargetWeather(observed, WeatherInputs("observed"), H)
    with pytest.raises(ValueError, match="horizons must be 1 to 72"):
        weather.columns(np.array([420_000]), np.array([73]))


def test_mode_none_drops_weather() -> None:
    inputs = WeatherInputs("none")
    assert inputs.state_columns(["crime_1d", "temperature_f", "temperature_f_missing",
                                 "hours_since_precipitation", "cell_area_km2"]) == ["crime_1d", "cell_area_km2"]
    assert "precipitation_hours_7d_missing" in cutoff_weather_columns()
    with pytest.raises(ValueError, match="mode 'none'"):
        TargetWeather(pl.DataFrame(), inputs, H)
    with pytest.raises(ValueError, match="weather mode 'future'"):
        WeatherInputs("future")  # type: ignore[arg-type]


def test_manifest_entry_round_trips() -> None:
    inputs = WeatherInputs("stand_in", WeatherStandIn(method="persistence", persistence_max_gap_hours=6))
    entry = inputs.manifest_entry()
    assert entry["mode"] == "stand_in"
    assert entry["oracle_weather"] is False
    assert entry["stand_in"]["method"] == "persistence"
    assert WeatherInputs.from_manifest(entry) == inputs
    assert WeatherInputs.from_manifest(None) is None
    assert WeatherInputs("observed").manifest_entry()["oracle_weather"] is True


def panel(observed: pl.DataFrame, start: datetime, hours: int, cells: int = 2) -> pl.DataFrame:
    """A tiny feature panel with one weather state column and a label."""
    times = [start + h * HOUR for h in range(hours)]
    return pl.DataFrame({
        "cell_id": [f"c{c}" for _ in times for c in range(cells)],
        "hour": [t for t in times for _ in range(cells)],
        "local_hour": [t.hour for t in times for _ in range(cells)],
        "day_of_week": [t.weekday() for t in times for _ in range(cells)],
        "month": [t.month for t in times for _ in range(cells)],
        "is_holiday": [False for _ in times for _ in range(cells)],
        "violent_1d": np.arange(hours * cells, dtype=np.float32),
        "temperature_f": np.full(hours * cells, 50.0, dtype=np.float32),
        "label_violent": np.arange(hours * cells) % 7 == 0,
    }).with_columns(pl.col("hour").cast(UTC_HOUR), pl.col("label_violent").cast(pl.Int16))


def test_training_set_carries_target_weather_of_each_row(observed: pl.DataFrame) -> None:
    start = ISSUES[1]
    frame = panel(observed, start, 96)
    inputs = WeatherInputs("observed")
    weather = TargetWeather(observed, inputs, H)
    training = build_training_set(frame, 2, H, np.random.default_rng(1), "violent", inputs, weather)
    names = training.feature_names
    assert names[-1] == "horizon_hours"
    assert "target_temperature_f" in names
    assert "temperature_f" in names

    rows = observations_before(observed, datetime(2100, 1, 1, tzinfo=UTC))
    truth = dict(zip((rows["hour"].dt.epoch("s") // 3600).to_list(), rows["temperature_f"].to_list()))
    column = names.index("target_temperature_f")
    target_hours = training.target_hours
    for row in range(0, training.labels.size, 17):
        expected = truth.get(int(target_hours[row]))
        if expected is not None:
            assert training.features[row, column] == pytest.approx(expected, abs=1e-3)

    none = build_training_set(frame, 2, H, np.random.default_rng(1), "violent", WeatherInputs("none"), None)
    assert "temperature_f" not in none.feature_names and not any(n.startswith(PREFIX + "t") for n in none.feature_names)


def test_scoring_frame_carries_stand_in_weather(observed: pl.DataFrame) -> None:
    issue = ISSUES[0]
    rows = panel(observed, issue, 1)
    inputs = WeatherInputs("stand_in", WeatherStandIn())
    weather = TargetWeather(observed, inputs, H)
    keys, matrix = build_scoring_frame(rows, H, "America/Chicago", "US", None, None, inputs, weather)
    names = [*["violent_1d", "temperature_f"], *[]]
    expected = reference(observed, issue, WeatherStandIn(), None)["temperature_f"].to_numpy()
    from ml.model_data import model_inputs
    order = model_inputs(names, inputs)
    column = order.index("target_temperature_f")
    np.testing.assert_allclose(matrix[:H, column], expected, rtol=1e-5)
    np.testing.assert_allclose(matrix[H:, column], expected, rtol=1e-5)
    assert keys.height == 2 * H
