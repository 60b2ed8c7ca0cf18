"""Hand-computed values for each feature family: neighbours, other crime, weather changes,
precipitation history, 311 requests (across a DST change), cell attributes, and no look-ahead."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml.feature_registry import (
    CALENDAR_COLUMNS,
    KEY_COLUMNS,
    FeatureLayout,
    feature_specs,
    label_column,
    panel_schema,
    registry_markdown,
)
from orchestration.assets.features import feature_layout
from orchestration.jurisdiction import load_jurisdiction
from tests.feature_inputs import crime_counts, features, violent_counts

UTC = timezone.utc
CHICAGO = "America/Chicago"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def value(frame: pl.DataFrame, cell: str, hour: datetime, column: str) -> object:
    return frame.filter((pl.col("cell_id") == cell) & (pl.col("hour") == hour))[column].item()


def hourly_weather(start: datetime, end: datetime, temperature, precipitation=None,
                   trace_hours: tuple[datetime, ...] = ()) -> pl.DataFrame:
    hours = pl.datetime_range(start, end - timedelta(hours=1), "1h", time_zone="UTC", eager=True)
    return pl.DataFrame({
        "hour": hours,
        "temperature_f": [temperature(hour) for hour in hours],
        "precipitation_in": [precipitation(hour) if precipitation else 0.0 for hour in hours],
        "relative_humidity": [60.0] * hours.len(),
        "wind_speed_mph": [8.0] * hours.len(),
        "precipitation_is_trace": [hour in trace_hours for hour in hours],
    }, schema_overrides={"temperature_f": pl.Float64, "precipitation_in": pl.Float64})


CHAIN = [("A", "B"), ("B", "A"), ("B", "C"), ("C", "B")]


def test_neighbour_means_adjacent_only() -> None:
    counts = violent_counts([("B", at(2024, 1, 3, 5)), ("C", at(2024, 1, 3, 5)), ("C", at(2024, 1, 3, 6))])
    frame = features(["A", "B", "C", "D"], counts, at(2024, 1, 3), at(2024, 1, 4), neighbours=CHAIN)
    later = at(2024, 1, 3, 8)

    assert value(frame, "A", later, "nbr_violent_1d") == 1.0      # B only
    assert value(frame, "B", later, "nbr_violent_1d") == 1.0      # (A: 0 + C: 2) / 2
    assert value(frame, "C", later, "nbr_violent_1d") == 1.0      # B only
    assert value(frame, "B", at(2024, 1, 3, 6), "nbr_violent_1d") == 0.5   # C's 06:00 event not yet
    assert value(frame, "D", later, "nbr_violent_1d") == 0.0
    assert value(frame, "D", later, "nbr_violent_1d_missing") is True
    assert value(frame, "B", later, "nbr_violent_1d_missing") is False
    assert value(frame, "B", later, "neighbour_count") == 2
    assert value(frame, "D", later, "neighbour_count") == 0


def test_other_categories_and_unmapped_codes() -> None:
    counts = crime_counts([("A", at(2024, 1, 3, 5), "property", 2), ("A", at(2024, 1, 3, 5), "unknown", 1),
                           ("A", at(2024, 1, 3, 5), "violent", 1)])
    frame = features(["A"], counts, at(2024, 1, 3), at(2024, 1, 4))
    later = at(2024, 1, 3, 6)

    assert value(frame, "A", later, "property_1d") == 2
    assert value(frame, "A", later, "violent_1d") == 1
    assert value(frame, "A", later, "other_1d") == 0
    assert value(frame, "A", later, "all_crime_7d") == 4
    assert value(frame, "A", at(2024, 1, 3, 5), "label_violent") == 1
    assert "label_property" not in frame.columns


def test_two_day_lag_and_near_repeat() -> None:
    frame = features(["A"], violent_counts([("A", at(2024, 1, 3, 5))]), at(2024, 1, 3), at(2024, 1, 6))

    assert value(frame, "A", at(2024, 1, 5, 5), "violent_2d") == 1
    assert value(frame, "A", at(2024, 1, 5, 6), "violent_2d") == 0
    assert value(frame, "A", at(2024, 1, 3, 5), "hours_since_violent") == 672.0
    assert value(frame, "A", at(2024, 1, 4, 7), "hours_since_violent") == 26.0


def test_temperature_changes_by_lag() -> None:
    start = at(2024, 3, 1)
    weather = hourly_weather(start - timedelta(days=20), start + timedelta(days=1),
                             lambda hour: (hour - start).total_seconds() / 3600 * 0.1)
    frame = features(["A"], violent_counts([]), start, start + timedelta(hours=3), weather=weather)

    assert value(frame, "A", start, "temperature_f") == pytest.approx(-0.1)
    assert value(frame, "A", start, "temperature_change_1d") == pytest.approx(2.4)
    assert value(frame, "A", start, "temperature_change_3d") == pytest.approx(7.2)
    assert value(frame, "A", start, "temperature_change_14d") == pytest.approx(33.6)
    assert value(frame, "A", start, "temperature_change_14d_missing") is False


def test_temperature_change_with_unobserved_hour() -> None:
    start = at(2024, 3, 1)
    gap = start - timedelta(hours=25)
    weather = hourly_weather(start - timedelta(days=20), start + timedelta(days=1),
                             lambda hour: None if hour == gap else 40.0)
    frame = features(["A"], violent_counts([]), start, start + timedelta(hours=2), weather=weather)

    assert value(frame, "A", start, "temperature_change_1d_missing") is True
    assert value(frame, "A", start, "temperature_change_1d") == 0.0
    assert value(frame, "A", start + timedelta(hours=1), "temperature_change_1d_missing") is False


def test_precipitation_history_counts_traces() -> None:
    start = at(2024, 5, 10)
    wet = {start - timedelta(hours=3), start - timedelta(hours=30)}
    trace = (start - timedelta(hours=2),)
    weather = hourly_weather(start - timedelta(days=20), start + timedelta(days=1), lambda hour: 60.0,
                             lambda hour: 0.1 if hour in wet else 0.0, trace)
    frame = features(["A"], violent_counts([]), start, start + timedelta(hours=2), weather=weather)

    assert value(frame, "A", start, "precipitation_hours_1d") == 2.0      # the trace and -3 h
    assert value(frame, "A", start, "precipitation_hours_3d") == 3.0
    assert value(frame, "A", start, "hours_since_precipitation") == 2.0
    assert value(frame, "A", start, "hours_since_precipitation_missing") is False
    assert value(frame, "A", start, "precipitation_in") == 0.0             # the hour before was dry


def test_precipitation_history_partial_windows() -> None:
    start = at(2024, 5, 10)
    unobserved = {start - timedelta(hours=k) for k in range(0, 13)}       # half the day before start
    weather = hourly_weather(start - timedelta(days=20), start + timedelta(days=1), lambda hour: 60.0,
                             lambda hour: None if hour in unobserved else
                             (0.2 if hour == start - timedelta(hours=13) else 0.0))
    frame = features(["A"], violent_counts([]), start, start + timedelta(hours=2), weather=weather)

    assert value(frame, "A", start, "precipitation_hours_1d_missing") is False
    assert value(frame, "A", start, "precipitation_hours_1d") == 2.0      # 1 wet in 12 seen, x 24/12
    assert value(frame, "A", start + timedelta(hours=1), "precipitation_hours_1d_missing") is True
    assert value(frame, "A", start + timedelta(hours=1), "precipitation_hours_1d") == 0.0


def test_city_without_weather_all_missing() -> None:
    frame = features(["A"], violent_counts([]), at(2024, 5, 10), at(2024, 5, 11))

    assert frame["temperature_f_missing"].all()
    assert frame["hours_since_precipitation_missing"].all()
    assert frame["temperature_f"].unique().to_list() == [50.0]


REQUEST_LAYOUT = FeatureLayout(targets=("violent",), groups=("violent",), categories=("violent",),
                               request_types=("graffiti", "potholes"), data_start=date(2020, 1, 1))


def requests_frame(rows: list[tuple[str, date, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"cell_id": pl.String, "local_date": pl.Date, "request_type": pl.String,
                                      "requests": pl.Int64}, orient="row")


def test_requests_earlier_days_across_dst() -> None:
    requests = requests_frame([("A", date(2024, 3, 9), "graffiti", 3), ("B", date(2024, 3, 9), "potholes", 1),
                               ("B", date(2024, 3, 10), "potholes", 1), ("B", date(2024, 3, 11), "potholes", 1)])
    frame = features(["A", "B"], violent_counts([]), at(2024, 3, 9, 12), at(2024, 3, 12, 12), CHICAGO,
                     requests=requests, layout=REQUEST_LAYOUT)

    assert value(frame, "A", at(2024, 3, 10, 5), "requests_graffiti_1d") == 0   # 23:00 on the 9th, CST
    assert value(frame, "A", at(2024, 3, 10, 6), "requests_graffiti_1d") == 3   # midnight of the 10th
    assert value(frame, "A", at(2024, 3, 11, 4), "requests_graffiti_1d") == 3   # 23:00 on the 10th, CDT
    assert value(frame, "A", at(2024, 3, 11, 5), "requests_graffiti_1d") == 0   # midnight of the 11th
    assert value(frame, "A", at(2024, 3, 11, 5), "requests_graffiti_7d") == 3
    assert value(frame, "B", at(2024, 3, 11, 5), "requests_potholes_7d") == 2
    assert value(frame, "B", at(2024, 3, 12, 5), "requests_potholes_1d") == 1


def test_requests_empty_city_day_flagged() -> None:
    requests = requests_frame([("A", date(2024, 3, 9), "graffiti", 3), ("A", date(2024, 3, 11), "graffiti", 1)])
    frame = features(["A"], violent_counts([]), at(2024, 3, 10, 12), at(2024, 3, 12, 12), CHICAGO,
                     requests=requests, layout=REQUEST_LAYOUT)
    noon_11th = at(2024, 3, 11, 17)

    assert value(frame, "A", noon_11th, "requests_graffiti_1d_missing") is True    # the 10th is empty
    assert value(frame, "A", noon_11th, "requests_graffiti_7d_missing") is True
    assert value(frame, "A", noon_11th, "requests_graffiti_7d") == 3
    assert value(frame, "A", at(2024, 3, 10, 17), "requests_graffiti_1d_missing") is False


def test_population_median_imputation() -> None:
    frame = features(["A", "B", "C", "D"], violent_counts([]), at(2024, 1, 3), at(2024, 1, 3, 2),
                     population=[100.0, None, 300.0, 1000.0])

    assert value(frame, "B", at(2024, 1, 3), "population") == 300.0
    assert value(frame, "B", at(2024, 1, 3), "population_missing") is True
    assert value(frame, "A", at(2024, 1, 3), "population_missing") is False


def test_history_before_data_start_is_flagged() -> None:
    layout = FeatureLayout(targets=("violent",), groups=("violent",), categories=("violent",),
                           request_types=(), data_start=date(2024, 1, 1))
    frame = features(["A"], violent_counts([]), at(2024, 1, 28, 23), at(2024, 1, 29, 1), layout=layout)

    assert value(frame, "A", at(2024, 1, 28, 23), "history_incomplete") is True
    assert value(frame, "A", at(2024, 1, 29, 0), "history_incomplete") is False


def test_panel_columns_all_registered() -> None:
    layout = FeatureLayout(targets=("violent", "robbery"), groups=("other", "robbery", "violent"),
                           categories=("other", "violent"), request_types=("graffiti",),
                           data_start=date(2020, 1, 1))
    specs = {spec.name: spec for spec in feature_specs(layout)}
    schema = panel_schema(layout)
    inputs = [name for name in schema if name not in KEY_COLUMNS + CALENDAR_COLUMNS
              and not name.startswith("label_")]

    for name in inputs:
        base = name.removesuffix("_missing") if name not in specs else name
        assert base in specs, name
        assert len(specs[base].definition) > 30
    assert [name for name in schema if name.startswith("label_")] == [label_column("violent"), label_column("robbery")]
    assert "nbr_robbery_28d" in schema
    assert "nbr_other_1d" not in schema
    assert "| `requests_graffiti_7d` |" in registry_markdown(layout)


def test_features_doc_matches_registry() -> None:
    layout = feature_layout(load_jurisdiction("chicago"))
    document = (Path(__file__).resolve().parents[2] / "docs" / "features.md").read_text(encoding="utf-8")

    assert registry_markdown(layout) in document


def test_features_ignore_inputs_after_cutoff() -> None:
    """No look-ahead: removing every input from the cut-off on leaves earlier rows unchanged."""
    start, end, cutoff = at(2024, 3, 8), at(2024, 3, 12), at(2024, 3, 10, 9)
    rng = np.random.default_rng(4)
    hours = [start - timedelta(days=30) + timedelta(hours=int(k)) for k in rng.integers(0, 34 * 24, 300)]
    counts = crime_counts([(str(rng.choice(["A", "B", "C"])), hour, str(rng.choice(["violent", "property"])), 1)
                           for hour in hours])
    weather = hourly_weather(start - timedelta(days=20), end, lambda hour: hour.hour * 1.5,
                             lambda hour: 0.1 if hour.hour % 7 == 0 else 0.0)
    requests = requests_frame([(cell, date(2024, 3, day), "graffiti", day) for cell in "ABC" for day in range(1, 13)])
    layout = FeatureLayout(targets=("violent",), groups=("property", "violent"), categories=("property", "violent"),
                           request_types=("graffiti",), data_start=date(2020, 1, 1))

    def build(crime: pl.DataFrame, weather_rows: pl.DataFrame, request_rows: pl.DataFrame) -> pl.DataFrame:
        return features(["A", "B", "C"], crime, start, end, CHICAGO, weather=weather_rows, requests=request_rows,
                        neighbours=CHAIN, layout=layout).filter(pl.col("hour") < cutoff)

    local_cutoff_date = pl.Series([cutoff - timedelta(hours=1)]).dt.convert_time_zone(CHICAGO).dt.date()[0]
    full = build(counts, weather, requests)
    truncated = build(counts.filter(pl.col("hour") < cutoff),
                      weather.filter(pl.col("hour") < cutoff - timedelta(hours=1)),
                      requests.filter(pl.col("local_date") < local_cutoff_date))

    assert full.height == 3 * 57
    assert full["violent_7d"].sum() > 0
    assert full["requests_graffiti_1d"].sum() > 0
    assert full.equals(truncated)
