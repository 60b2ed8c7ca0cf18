"""Unit tests for ml.backtest.score_backtest on synthetic forecasts with a known best model."""

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from ml.backtest import ScoringSettings, results_markdown, score_backtest

UTC = timezone.utc
N_CELLS = 40
N_DAYS = 14


@pytest.fixture(scope="module")
def predictions() -> pl.DataFrame:
    """Two weeks of hourly forecasts for 40 cells where the ensemble gets the true rates and CompSTAT noisy ones."""
    rng = np.random.default_rng(3)
    rate = rng.gamma(0.5, 0.02, size=N_CELLS)
    start = datetime(2017, 7, 2, 5, tzinfo=UTC)
    hours = pl.datetime_range(start, start + timedelta(days=N_DAYS) - timedelta(hours=1), "1h", eager=True,
                              time_zone="UTC")
    n_hours = hours.len()
    counts = rng.poisson(np.tile(rate, n_hours))
    noisy_rate = np.tile(rate * rng.uniform(0.2, 1.8, size=N_CELLS), n_hours)
    second = start + timedelta(days=7)
    origin = [(start if hour < second else second).replace(tzinfo=None) for hour in hours]
    return pl.DataFrame({
        "cell_id": [f"c{index:02d}" for index in range(N_CELLS)] * n_hours,
        "hour": np.repeat(hours.to_numpy(), N_CELLS),
        "origin": np.repeat(np.array(origin, dtype="datetime64[us]"), N_CELLS),
        "crime_count": counts,
        "area_km2": np.tile(rng.uniform(0.5, 2.0, size=N_CELLS), n_hours),
        "ensemble": 1 - np.exp(-np.tile(rate, n_hours)),
        "compstat": noisy_rate,
        "random": rng.uniform(size=N_CELLS * n_hours),
    }).with_columns(pl.col("hour").dt.replace_time_zone("UTC"), pl.col("origin").dt.replace_time_zone("UTC"))


@pytest.fixture(scope="module")
def tables(predictions: pl.DataFrame):
    kinds = {"ensemble": "probability", "compstat": "rate", "random": "score"}
    return score_backtest(predictions, kinds, ScoringSettings(time_zone="America/Chicago", n_boot=200))


def metric(tables, model: str, name: str, aggregation: str = "day") -> float:
    rows = tables.metrics.filter((pl.col("model") == model) & (pl.col("metric") == name)
                                 & (pl.col("aggregation") == aggregation))
    return rows["value"][0]


def test_the_model_that_knows_the_rates_ranks_best(tables) -> None:
    for aggregation in ("hour", "shift", "day"):
        assert metric(tables, "ensemble", "roc_auc", aggregation) > metric(tables, "compstat", "roc_auc", aggregation)
        assert metric(tables, "compstat", "roc_auc", aggregation) > metric(tables, "random", "roc_auc", aggregation)


def test_random_has_no_probability_metrics_but_rates_do(tables) -> None:
    random_metrics = set(tables.metrics.filter(pl.col("model") == "random")["metric"].to_list())
    compstat_metrics = set(tables.metrics.filter(pl.col("model") == "compstat")["metric"].to_list())

    assert "brier" not in random_metrics
    assert "pai" in random_metrics
    assert {"brier", "log_loss", "ece"} <= compstat_metrics
    assert tables.reliability.filter(pl.col("model") == "random").height == 0


def test_day_base_rate_exceeds_hour_base_rate(tables) -> None:
    assert tables.base_rates["day"] > tables.base_rates["shift"] > tables.base_rates["hour"]


def test_ensemble_beats_random_with_a_small_p_value(tables) -> None:
    row = tables.comparisons.filter((pl.col("model") == "random") & (pl.col("metric") == "roc_auc")
                                    & (pl.col("aggregation") == "day"))

    assert row["difference"][0] > 0
    assert row["ci_low"][0] > 0
    assert row["p_value"][0] < 0.05


def test_every_point_estimate_lies_in_its_interval(tables) -> None:
    with_interval = tables.metrics.filter(pl.col("ci_low").is_not_null())

    assert with_interval.height > 0
    assert ((with_interval["ci_low"] <= with_interval["value"] + 1e-9)
            & (with_interval["value"] <= with_interval["ci_high"] + 1e-9)).all()


def test_timeseries_has_one_row_per_origin_model_and_metric(tables) -> None:
    day = tables.timeseries.filter(pl.col("aggregation") == "day")

    assert day.height == 2 * 3 * 2
    assert day["origin"].n_unique() == 2


def test_results_table_lists_every_model_with_intervals(tables) -> None:
    text = results_markdown(tables.metrics)

    assert text.count("\n") == 1 + 3
    ensemble_line = next(line for line in text.splitlines() if line.startswith("| ensemble |"))
    random_line = next(line for line in text.splitlines() if line.startswith("| random |"))

    assert ensemble_line.count("[") == 6
    assert random_line.endswith("| n/a |")  # random has no Brier score
