"""Stand-in weather forecasts and forecast-time weather features on hand-built hourly tables.

Observed tables hold a value equal to the hour's offset from the issue time, so every expected
number is arithmetic, and the sentinel 9999 in every observed row at or after the issue time.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from ml.weather_forecast import (
    VARIABLES,
    WeatherStandIn,
    climatology,
    day_of_year,
    forecast_time_features,
    forecast_time_weather,
    stand_in_forecast,
)

UTC = timezone.utc
HOUR = timedelta(hours=1)
SENTINEL = 9999.0
ISSUE = datetime(2024, 5, 15, 12, tzinfo=UTC)
HORIZONS = range(1, 73)
LEVELS = ("temperature_f", "precipitation_in", "relative_humidity", "wind_speed_mph")
PERSISTENCE = WeatherStandIn(method="persistence")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def offset(hour: datetime, issue: datetime = ISSUE) -> int:
    return int((hour - issue) / HOUR)


def observed_rain(hour_offset: int) -> float:
    return 0.25 if hour_offset % 3 == 0 else 0.0


def forecast_rain(hour_offset: int) -> float:
    return 0.5 if hour_offset % 4 == 0 else 0.0


def hourly_frame(hours: list[datetime], values: dict[str, list[float | None]]) -> pl.DataFrame:
    frame = pl.DataFrame({"hour": hours, **values}, schema_overrides={name: pl.Float64 for name in values})
    if "precipitation_is_trace" not in frame.columns:
        frame = frame.with_columns(pl.lit(False).alias("precipitation_is_trace"))
    return frame.with_columns(pl.col("hour").cast(pl.Datetime("us", "UTC")))


def index_table(issue: datetime = ISSUE, before: int = 400, after: int = 100) -> pl.DataFrame:
    """Observed hours with temperature = offset from ``issue``, rain every third hour, 9999 from ``issue`` on."""
    hours = [issue + k * HOUR for k in range(-before, after)]
    offsets = [offset(hour, issue) for hour in hours]
    return hourly_frame(hours, {
        "temperature_f": [float(k) if k < 0 else SENTINEL for k in offsets],
        "precipitation_in": [observed_rain(k) if k < 0 else SENTINEL for k in offsets],
        "relative_humidity": [50.0 + k if k < 0 else SENTINEL for k in offsets],
        "wind_speed_mph": [200.0 + k if k < 0 else SENTINEL for k in offsets],
    })


def archive_rows(issued_at: datetime, valid: list[datetime], temperature: float | None = None) -> pl.DataFrame:
    """Forecast rows with temperature 5000 + offset (or ``temperature``) and rain every fourth hour."""
    offsets = [offset(hour) for hour in valid]
    return pl.DataFrame({
        "issued_at": [issued_at] * len(valid),
        "valid_hour": valid,
        "temperature_f": [5000.0 + k if temperature is None else temperature for k in offsets],
        "precipitation_in": [forecast_rain(k) for k in offsets],
        "relative_humidity": [60.0] * len(valid),
        "wind_speed_mph": [7.0] * len(valid),
    }, schema_overrides={"temperature_f": pl.Float64}).with_columns(
        pl.col("issued_at").cast(pl.Datetime("us", "UTC")), pl.col("valid_hour").cast(pl.Datetime("us", "UTC")))


def full_archive() -> pl.DataFrame:
    return archive_rows(ISSUE - 6 * HOUR, [ISSUE + k * HOUR for k in range(72)])


def numeric_values(frame: pl.DataFrame) -> list[float]:
    values: list[float] = []
    for name, dtype in frame.schema.items():
        if dtype.is_numeric():
            values.extend(value for value in frame[name].to_list() if value is not None)
    return values


def assert_no_future_values(frame: pl.DataFrame) -> None:
    """Check that no value comes from an observed row at or after the issue time.

    Observed values before the issue time are below 0 (temperature), at most 0.25 (precipitation),
    below 50 (humidity) and below 200 (wind). A mean that included a 9999 row would exceed them.
    """
    assert SENTINEL not in numeric_values(frame)
    assert frame["temperature_f"].max() < 0
    assert frame["precipitation_in"].max() <= 0.25
    assert frame["relative_humidity"].max() < 50
    assert frame["wind_speed_mph"].max() < 200


def row(frame: pl.DataFrame, horizon: int) -> dict[str, object]:
    return frame.filter(pl.col("horizon_hours") == horizon).row(0, named=True)


# Settings


@pytest.mark.parametrize(("settings", "message"), [
    ({"method": "persist"}, "'persist'"),
    ({"blend_weight": 1.5}, "1.5"),
    ({"blend_tau_hours": 0.0}, "blend_tau_hours 0.0"),
    ({"climatology_years": 0}, "climatology_years 0"),
    ({"smoothing_days": 200}, "smoothing_days 200"),
    ({"persistence_max_gap_hours": -1}, "-1"),
])
def test_settings_reject_invalid_values(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeatherStandIn(**settings)  # type: ignore[arg-type]


def test_default_weight_decays_with_horizon() -> None:
    settings = WeatherStandIn()

    assert settings.method == "blend"
    assert settings.persistence_weight(24) == pytest.approx(math.exp(-1))
    assert settings.persistence_weight(72) == pytest.approx(math.exp(-3))
    assert WeatherStandIn(blend_weight=0.25).persistence_weight(72) == 0.25


def test_manifest_entry_records_settings() -> None:
    entry = WeatherStandIn(method="climatology", smoothing_days=3).manifest_entry()

    assert entry["method"] == "climatology"
    assert entry["smoothing_days"] == 3
    assert entry["blend_weight"] is None


def test_issue_time_must_be_utc_hour() -> None:
    with pytest.raises(ValueError, match="start of an hour"):
        stand_in_forecast(index_table(), ISSUE + timedelta(minutes=30))
    with pytest.raises(ValueError, match="UTC datetime"):
        stand_in_forecast(index_table(), ISSUE.replace(tzinfo=None))


def test_horizons_start_at_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        stand_in_forecast(index_table(), ISSUE, horizons=[0, 1])


# Persistence


def test_persistence_carries_last_hour() -> None:
    forecast = stand_in_forecast(index_table(), ISSUE, HORIZONS, PERSISTENCE)

    assert forecast.height == 72
    assert forecast["temperature_f"].to_list() == [-1.0] * 72
    assert forecast["relative_humidity"].to_list() == [49.0] * 72
    assert forecast["wind_speed_mph"].to_list() == [199.0] * 72
    assert forecast["precipitation_in"].to_list() == [0.0] * 72
    assert forecast["persistence_gap_hours"].to_list() == [0] * 72
    assert set(forecast["weather_source"]) == {"persistence"}


def test_valid_hour_of_horizon_one_is_issue_hour() -> None:
    forecast = stand_in_forecast(index_table(), ISSUE, HORIZONS, PERSISTENCE)

    for horizon in HORIZONS:
        assert row(forecast, horizon)["valid_hour"] == ISSUE + (horizon - 1) * HOUR
        assert row(forecast, horizon)["issued_at"] == ISSUE


def test_persistence_skips_missing_hours() -> None:
    table = index_table().with_columns(
        pl.when(pl.col("hour").is_in([ISSUE - HOUR, ISSUE - 2 * HOUR]))
        .then(None).otherwise(pl.col("temperature_f")).alias("temperature_f"))

    forecast = stand_in_forecast(table, ISSUE, HORIZONS, PERSISTENCE)

    assert forecast["temperature_f"].to_list() == [-3.0] * 72
    assert forecast["relative_humidity"].to_list() == [49.0] * 72
    assert forecast["persistence_gap_hours"].to_list() == [2] * 72


def test_persistence_stops_at_max_gap() -> None:
    table = index_table().with_columns(
        pl.when(pl.col("hour") >= ISSUE - 5 * HOUR).then(None).otherwise(pl.col("temperature_f"))
        .alias("temperature_f"))
    settings = WeatherStandIn(method="persistence", persistence_max_gap_hours=3)

    forecast = stand_in_forecast(table, ISSUE, [1, 2], settings)

    assert forecast["temperature_f"].to_list() == [None, None]
    assert forecast["wind_speed_mph"].to_list() == [199.0, 199.0]


def test_trace_counts_as_wet_for_persistence() -> None:
    table = index_table().with_columns(
        pl.when(pl.col("hour") == ISSUE - HOUR).then(True).otherwise(False).alias("precipitation_is_trace"))

    forecast = stand_in_forecast(table, ISSUE, [1, 72], PERSISTENCE)

    assert forecast["precipitation_in"].to_list() == [0.0, 0.0]
    assert forecast["precipitation_probability"].to_list() == [1.0, 1.0]


def test_stand_in_ignores_sentinel_rows() -> None:
    for method in ("persistence", "climatology", "blend"):
        forecast = stand_in_forecast(index_table(), ISSUE, HORIZONS, WeatherStandIn(method=method))

        assert_no_future_values(forecast)


# Climatology


def years_table(first_year: int, last_year: int, issue: datetime) -> pl.DataFrame:
    """Hourly rows from Jan 1 of ``first_year`` to Dec 31 of ``last_year``: temperature = 10 x (year - 2019)."""
    hours = pl.datetime_range(at(first_year, 1, 1), at(last_year, 12, 31, 23), "1h", eager=True,
                              time_zone="UTC", time_unit="us")
    return pl.DataFrame({"hour": hours}).with_columns(
        pl.when(pl.col("hour") >= issue).then(SENTINEL)
        .otherwise((pl.col("hour").dt.year() - 2019) * 10.0).alias("temperature_f"),
        pl.lit(0.0).alias("precipitation_in"),
        pl.lit(50.0).alias("relative_humidity"),
        pl.col("hour").dt.hour().cast(pl.Float64).alias("wind_speed_mph"),
    )


def climatology_value(table: pl.DataFrame, day: int, hour: int, column: str = "temperature_f") -> object:
    return table.filter((pl.col("day_of_year") == day) & (pl.col("hour_of_day") == hour))[column].item()


def test_day_of_year_merges_feb_29() -> None:
    days = pl.DataFrame({"hour": [at(2020, 2, 28), at(2020, 2, 29), at(2020, 3, 1), at(2021, 3, 1),
                                  at(2020, 12, 31), at(2021, 12, 31), at(2021, 1, 1)]})

    result = days.select(day_of_year(pl.col("hour")))["hour"].to_list()

    assert result == [59, 59, 60, 60, 365, 365, 1]


def test_climatology_reads_only_recent_past_years() -> None:
    issue = at(2024, 7, 1)
    table = years_table(2020, 2024, issue)

    result = climatology(table, issue, ["temperature_f"], years=3, smoothing_days=0)

    # July 1 is day 182 of a 365-day year. 2021-2023 give 20, 30 and 40; 2020 (10) is more than
    # three years back and 2024-07-01 is at the issue time.
    assert climatology_value(result, 182, 5) == pytest.approx(30.0)
    assert climatology_value(result, 182, 5, "temperature_f_samples") == 3


def test_climatology_pools_days_around_date() -> None:
    issue = at(2024, 7, 1)
    table = years_table(2020, 2024, issue)

    result = climatology(table, issue, ["temperature_f"], years=3, smoothing_days=7)

    # Days June 24 to July 8: 2021 from July 1 only (8 days of 20), 2022 and 2023 in full (15 days
    # of 30 and of 40), 2024 until June 30 (7 days of 50).
    expected = (8 * 20 + 15 * 30 + 15 * 40 + 7 * 50) / 45
    assert climatology_value(result, 182, 5) == pytest.approx(expected)
    assert climatology_value(result, 182, 5, "temperature_f_samples") == 45
    assert SENTINEL not in numeric_values(result)


def test_climatology_keys_feb_29_with_feb_28() -> None:
    hours = [at(2020, 2, 28, 6), at(2020, 2, 29, 6), at(2020, 3, 1, 6), at(2021, 3, 1, 6)]
    table = hourly_frame(hours, {"temperature_f": [10.0, 20.0, 30.0, 50.0], "precipitation_in": [0.0] * 4,
                                 "relative_humidity": [50.0] * 4, "wind_speed_mph": [5.0] * 4})

    result = climatology(table, at(2022, 1, 1), ["temperature_f"], years=3, smoothing_days=0)

    assert climatology_value(result, 59, 6) == pytest.approx(15.0)
    assert climatology_value(result, 60, 6) == pytest.approx(40.0)
    assert result.height == 365 * 24


def test_climatology_wraps_year_end() -> None:
    hours = [at(2022, 12, 30, 3), at(2022, 12, 31, 3), at(2023, 1, 2, 3), at(2023, 1, 4, 3)]
    table = hourly_frame(hours, {"temperature_f": [1.0, 2.0, 4.0, 100.0], "precipitation_in": [0.0] * 4,
                                 "relative_humidity": [50.0] * 4, "wind_speed_mph": [5.0] * 4})

    result = climatology(table, at(2023, 6, 1), ["temperature_f"], years=1, smoothing_days=2)

    # Jan 1 pools Dec 30 to Jan 3; Jan 4 is three days away.
    assert climatology_value(result, 1, 3) == pytest.approx(7.0 / 3)
    assert climatology_value(result, 1, 4) is None


def test_climatology_forecast_crosses_year_end() -> None:
    issue = at(2024, 12, 31, 22)
    table = years_table(2021, 2024, issue).with_columns(
        (pl.col("hour").dt.day() * 100.0 + pl.col("hour").dt.hour()).alias("relative_humidity"))
    settings = WeatherStandIn(method="climatology", smoothing_days=0)

    forecast = stand_in_forecast(table, issue, [1, 2, 3, 4], settings)

    assert forecast["relative_humidity"].to_list() == pytest.approx([3122.0, 3123.0, 100.0, 101.0])
    assert forecast["persistence_gap_hours"].to_list() == [None] * 4


def test_climatology_uses_utc_hours_across_dst() -> None:
    # Chicago moves its clocks forward at 2024-03-10 08:00 UTC. The forecast crosses that hour, and
    # each valid hour takes the climatology of its own UTC hour of day.
    issue = at(2024, 3, 10, 6)
    table = years_table(2021, 2024, issue)
    settings = WeatherStandIn(method="climatology", smoothing_days=1)

    forecast = stand_in_forecast(table, issue, HORIZONS, settings)

    hours = forecast["valid_hour"].to_list()
    assert len(set(hours)) == 72
    assert all(later - earlier == HOUR for earlier, later in zip(hours, hours[1:]))
    for horizon in HORIZONS:
        expected = float((6 + horizon - 1) % 24)
        assert row(forecast, horizon)["wind_speed_mph"] == pytest.approx(expected)


# Blend


def blend_table() -> pl.DataFrame:
    """Three past years at 30 degrees, then 10 degrees in the last day before the issue time."""
    table = years_table(2021, 2024, ISSUE).with_columns(
        pl.when(pl.col("hour") >= ISSUE).then(SENTINEL)
        .when(pl.col("hour") >= ISSUE - 24 * HOUR).then(10.0)
        .otherwise(30.0).alias("temperature_f"))
    return table


def test_blend_interpolates_by_horizon() -> None:
    # The pooled days of the climatology include the last day's 10 degrees.
    settings = WeatherStandIn(method="blend", smoothing_days=7)
    climate = stand_in_forecast(blend_table(), ISSUE, HORIZONS, WeatherStandIn(method="climatology"))

    forecast = stand_in_forecast(blend_table(), ISSUE, HORIZONS, settings)

    for horizon in HORIZONS:
        weight = math.exp(-horizon / 24)
        mean = row(climate, horizon)["temperature_f"]
        assert 10.0 < mean <= 30.0
        expected = weight * 10.0 + (1 - weight) * mean
        assert row(forecast, horizon)["temperature_f"] == pytest.approx(expected)
    assert set(forecast["weather_source"]) == {"blend"}


def test_blend_with_fixed_weight() -> None:
    settings = WeatherStandIn(method="blend", blend_weight=0.25, smoothing_days=0, climatology_years=2)

    forecast = stand_in_forecast(blend_table(), ISSUE, [30, 60], settings)

    # Without smoothing, May 16 17:00 and May 17 23:00 see only 2022 and 2023 (30 degrees).
    assert forecast["temperature_f"].to_list() == pytest.approx([0.25 * 10 + 0.75 * 30] * 2)


def test_blend_uses_climatology_without_persistence() -> None:
    table = blend_table().with_columns(
        pl.when(pl.col("hour") >= ISSUE - 48 * HOUR).then(None).otherwise(pl.col("temperature_f"))
        .alias("temperature_f"))
    settings = WeatherStandIn(method="blend", smoothing_days=0, climatology_years=2)

    forecast = stand_in_forecast(table, ISSUE, [30], settings)

    assert forecast["temperature_f"].to_list() == pytest.approx([30.0])


# Archived forecasts


def test_archive_row_wins_over_stand_in() -> None:
    weather = forecast_time_weather(index_table(), full_archive(), ISSUE, HORIZONS, PERSISTENCE)

    for horizon in HORIZONS:
        assert row(weather, horizon)["temperature_f"] == 5000.0 + horizon - 1
        assert row(weather, horizon)["weather_source"] == "forecast"
        assert row(weather, horizon)["forecast_issued_at"] == ISSUE - 6 * HOUR


def test_archive_gap_falls_back_per_hour() -> None:
    valid = [ISSUE + k * HOUR for k in range(72)]
    latest = archive_rows(ISSUE - 6 * HOUR, [hour for hour in valid if hour not in (ISSUE + 9 * HOUR,
                                                                                    ISSUE + 19 * HOUR)])
    older = archive_rows(ISSUE - 12 * HOUR, [ISSUE + 19 * HOUR, ISSUE + 40 * HOUR], temperature=-500.0)
    future = archive_rows(ISSUE + HOUR, valid, temperature=7777.0)
    incomplete = archive_rows(ISSUE - 3 * HOUR, [ISSUE + 29 * HOUR]).with_columns(
        pl.lit(None, dtype=pl.Float64).alias("wind_speed_mph"))
    archive = pl.concat([latest, older, future, incomplete])

    weather = forecast_time_weather(index_table(), archive, ISSUE, HORIZONS, PERSISTENCE)

    assert row(weather, 10)["temperature_f"] == -1.0
    assert row(weather, 10)["weather_source"] == "persistence"
    assert row(weather, 10)["forecast_issued_at"] is None
    assert row(weather, 20)["temperature_f"] == -500.0
    assert row(weather, 20)["forecast_issued_at"] == ISSUE - 12 * HOUR
    assert row(weather, 41)["temperature_f"] == 5040.0
    assert row(weather, 30)["temperature_f"] == 5029.0
    assert row(weather, 30)["forecast_issued_at"] == ISSUE - 6 * HOUR
    sources = weather["weather_source"].to_list()
    assert sources.count("persistence") == 1
    assert sources.count("forecast") == 71
    assert 7777.0 not in numeric_values(weather)


def test_archive_issued_at_issue_time_counts() -> None:
    archive = archive_rows(ISSUE, [ISSUE], temperature=42.0)

    weather = forecast_time_weather(index_table(), archive, ISSUE, [1, 2], PERSISTENCE)

    assert weather["temperature_f"].to_list() == [42.0, -1.0]
    assert weather["weather_source"].to_list() == ["forecast", "persistence"]


def test_archive_probability_overrides_amount() -> None:
    archive = archive_rows(ISSUE - HOUR, [ISSUE, ISSUE + HOUR]).with_columns(
        pl.Series("precipitation_probability", [0.3, None], dtype=pl.Float64))

    weather = forecast_time_weather(index_table(), archive, ISSUE, [1, 2], PERSISTENCE)

    # Offset 0 has 0.5 in of rain but an archived probability of 0.3; offset 1 is dry.
    assert weather["precipitation_probability"].to_list() == [0.3, 0.0]


def test_archive_without_columns_is_rejected() -> None:
    with pytest.raises(ValueError, match="wind_speed_mph"):
        forecast_time_weather(index_table(), full_archive().drop("wind_speed_mph"), ISSUE, [1], PERSISTENCE)


# Forecast-time features at every horizon


def mixed_value(hour_offset: int, observed: dict[int, float], forecast: dict[int, float]) -> float:
    """Observation before the issue time, forecast from it on."""
    return observed[hour_offset] if hour_offset < 0 else forecast[hour_offset]


def expected_window(valid_offset: int, window: int, observed: dict[int, float],
                    forecast: dict[int, float]) -> float:
    return sum(mixed_value(k, observed, forecast) for k in range(valid_offset - window, valid_offset))


def archive_features(level_hour: str = "valid") -> pl.DataFrame:
    weather = forecast_time_weather(index_table(), full_archive(), ISSUE, HORIZONS, PERSISTENCE)
    return forecast_time_features(index_table(), weather, ISSUE, level_hour)  # type: ignore[arg-type]


def test_temperature_changes_every_horizon() -> None:
    features = archive_features()
    observed = {k: float(k) for k in range(-400, 0)}
    forecast = {k: 5000.0 + k for k in range(72)}

    for horizon in HORIZONS:
        valid = horizon - 1
        for days in (1, 2, 3, 7, 14):
            expected = forecast[valid] - mixed_value(valid - 24 * days, observed, forecast)
            assert row(features, horizon)[f"temperature_change_{days}d"] == expected, (horizon, days)
            assert row(features, horizon)[f"temperature_change_{days}d_missing"] is False


def test_temperature_change_spot_values() -> None:
    features = archive_features()

    assert row(features, 1)["temperature_change_1d"] == 5000.0 - (-24.0)
    assert row(features, 24)["temperature_change_1d"] == 5023.0 - (-1.0)
    assert row(features, 25)["temperature_change_1d"] == 24.0
    assert row(features, 72)["temperature_change_7d"] == 5071.0 - (71.0 - 168.0)
    assert row(features, 72)["temperature_change_1d"] == 24.0


def test_precipitation_history_every_horizon() -> None:
    features = archive_features()
    observed_amount = {k: observed_rain(k) for k in range(-400, 0)}
    forecast_amount = {k: forecast_rain(k) for k in range(72)}
    observed_wet = {k: float(value > 0) for k, value in observed_amount.items()}
    forecast_wet = {k: float(value > 0) for k, value in forecast_amount.items()}

    for horizon in HORIZONS:
        valid = horizon - 1
        for days in (1, 3, 7):
            window = 24 * days
            total = expected_window(valid, window, observed_amount, forecast_amount)
            wet_hours = expected_window(valid, window, observed_wet, forecast_wet)
            assert row(features, horizon)[f"precipitation_total_{days}d"] == pytest.approx(total), (horizon, days)
            assert row(features, horizon)[f"precipitation_hours_{days}d"] == pytest.approx(wet_hours), (horizon, days)
            assert row(features, horizon)[f"precipitation_hours_{days}d_missing"] is False


def test_precipitation_spot_values() -> None:
    features = archive_features()

    # Horizon 1: offsets -24..-1 are observed, rain (0.25 in) on the 8 multiples of 3.
    assert row(features, 1)["precipitation_total_1d"] == pytest.approx(2.0)
    assert row(features, 1)["precipitation_hours_1d"] == pytest.approx(8.0)
    # Horizon 25: offsets 0..23 are forecast, rain (0.5 in) on the 6 multiples of 4.
    assert row(features, 25)["precipitation_total_1d"] == pytest.approx(3.0)
    assert row(features, 25)["precipitation_hours_1d"] == pytest.approx(6.0)
    # Horizon 13: offsets -12..-1 observed (4 wet) and 0..11 forecast (3 wet).
    assert row(features, 13)["precipitation_total_1d"] == pytest.approx(4 * 0.25 + 3 * 0.5)


def test_levels_every_horizon() -> None:
    features = archive_features()

    for horizon in HORIZONS:
        assert row(features, horizon)["temperature_f"] == 5000.0 + horizon - 1
        assert row(features, horizon)["wind_speed_mph"] == 7.0
        assert row(features, horizon)["temperature_f_missing"] is False


def test_previous_hour_levels_every_horizon() -> None:
    features = archive_features("previous")
    observed = {k: float(k) for k in range(-400, 0)}
    forecast = {k: 5000.0 + k for k in range(72)}

    assert row(features, 1)["temperature_f"] == -1.0
    assert row(features, 1)["wind_speed_mph"] == 199.0
    for horizon in HORIZONS:
        reference = horizon - 2
        assert row(features, horizon)["temperature_f"] == mixed_value(reference, observed, forecast)
        for days in (1, 7):
            expected = mixed_value(reference, observed, forecast) - mixed_value(reference - 24 * days,
                                                                               observed, forecast)
            assert row(features, horizon)[f"temperature_change_{days}d"] == expected, (horizon, days)


def test_persistence_features_every_horizon() -> None:
    weather = forecast_time_weather(index_table(), None, ISSUE, HORIZONS, PERSISTENCE)
    features = forecast_time_features(index_table(), weather, ISSUE)
    observed = {k: float(k) for k in range(-400, 0)}
    carried = {k: -1.0 for k in range(72)}
    # Offset -1 is not a multiple of 3, so persistence carries a dry hour.
    observed_amount = {k: observed_rain(k) for k in range(-400, 0)}
    dry = {k: 0.0 for k in range(72)}

    for horizon in HORIZONS:
        valid = horizon - 1
        expected_change = -1.0 - mixed_value(valid - 24, observed, carried)
        assert row(features, horizon)["temperature_change_1d"] == expected_change
        expected_total = expected_window(valid, 72, observed_amount, dry)
        assert row(features, horizon)["precipitation_total_3d"] == pytest.approx(expected_total)
    assert row(features, 72)["temperature_change_1d"] == 0.0
    assert row(features, 72)["precipitation_total_1d"] == 0.0


def test_features_never_read_sentinel() -> None:
    for method in ("persistence", "climatology", "blend"):
        weather = forecast_time_weather(index_table(), None, ISSUE, HORIZONS, WeatherStandIn(method=method))
        features = forecast_time_features(index_table(), weather, ISSUE)

        assert_no_future_values(features)
        assert not features["temperature_f_missing"].any()
        assert features["precipitation_total_7d"].max() <= 0.25 * 168


def test_sparse_window_is_missing() -> None:
    table = index_table().with_columns(
        pl.when(pl.col("hour").is_between(ISSUE - 30 * HOUR, ISSUE - 2 * HOUR)).then(None)
        .otherwise(pl.col("precipitation_in")).alias("precipitation_in"))
    weather = forecast_time_weather(table, full_archive(), ISSUE, HORIZONS, PERSISTENCE)

    features = forecast_time_features(table, weather, ISSUE)

    # Horizon 1 has 1 known hour of 24. Horizon 13 has 13: offset -1 (dry) and the forecast
    # offsets 0 to 11, wet at 0, 4 and 8.
    assert row(features, 1)["precipitation_total_1d_missing"] is True
    assert row(features, 1)["precipitation_total_1d"] == 0.0
    assert row(features, 13)["precipitation_hours_1d_missing"] is False
    assert row(features, 13)["precipitation_hours_1d"] == pytest.approx(3 * 24 / 13)


def test_features_need_contiguous_horizons() -> None:
    weather = forecast_time_weather(index_table(), None, ISSUE, [1, 3], PERSISTENCE)

    with pytest.raises(ValueError, match="every horizon"):
        forecast_time_features(index_table(), weather, ISSUE)


def test_variables_cover_weather_levels() -> None:
    assert set(LEVELS) < set(VARIABLES)
    assert "precipitation_probability" in VARIABLES
