"""Unit tests for ml.sepp: event pairing, EM on planted grid Hawkes processes, prediction and refits."""

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from ml.baselines import CompstatBaseline, RandomBaseline
from ml.metrics import roc_auc
from ml.sepp import SeppBaseline, fit_grid_hawkes, pair_events
from tests.unit.point_processes import (
    START,
    cell_hour_targets,
    complete_spine,
    counts_frame,
    observed_counts,
    simulate_hawkes,
)

UTC = timezone.utc
CUTOFF = datetime(2017, 10, 2, 5, tzinfo=UTC)
YEAR_HOURS = 365 * 24


def crimes(*rows: tuple[str, datetime, int]) -> pl.DataFrame:
    """Return a sparse history with one row per (cell_id, hour, crime_count)."""
    return pl.DataFrame(
        [{"cell_id": cell_id, "hour": hour, "crime_count": count} for cell_id, hour, count in rows],
        schema={"cell_id": pl.String, "hour": pl.Datetime("us", "UTC"), "crime_count": pl.Int64},
    )


@pytest.fixture(scope="module")
def planted_year() -> tuple[np.ndarray, pl.DataFrame, list[str]]:
    """Return (background rates, sparse history, cell ids) of a planted process: theta 0.5, omega 0.1 per hour."""
    rng = np.random.default_rng(1)
    background = rng.gamma(2.0, 0.001, 400)
    cell_index, times = simulate_hawkes(background, theta=0.5, omega=0.1, n_hours=YEAR_HOURS, seed=2)
    cell_ids = [f"c{index:03d}" for index in range(400)]
    return background, counts_frame(cell_ids, cell_index, times), cell_ids


# pairing and EM


def test_pair_events_within_lag() -> None:
    cell_index = np.array([0, 0, 0, 0, 1, 1])
    times = np.array([0.0, 1.0, 1.0, 5.0, 2.0, 3.0])

    pairs = pair_events(cell_index, times, max_lag_hours=4.0)
    found = sorted(zip(pairs.earlier.tolist(), pairs.later.tolist(), pairs.lag_hours.tolist()))

    # Rows 1 and 2 share a time, so neither triggers the other; row 0 is 5 hours before row 3.
    assert found == [(0, 1, 1.0), (0, 2, 1.0), (1, 3, 4.0), (2, 3, 4.0), (4, 5, 1.0)]


def test_em_single_crime() -> None:
    result = fit_grid_hawkes(np.array([0]), np.array([10.0]), np.array([1]), n_cells=2, window_hours=100.0)

    assert result.mu.tolist() == [0.01, 0.0]
    assert result.theta == 0.0
    assert result.converged


def test_em_same_hour_crimes_not_triggered() -> None:
    result = fit_grid_hawkes(np.array([0]), np.array([10.0]), np.array([3]), n_cells=1, window_hours=100.0)

    assert result.mu.tolist() == [0.03]
    assert result.theta == 0.0


def test_em_recovers_planted_parameters(planted_year: tuple[np.ndarray, pl.DataFrame, list[str]]) -> None:
    background, history, cell_ids = planted_year

    model = SeppBaseline(history_days=365).fit(history, START + timedelta(days=365))
    result = model.fit_result
    fitted_mu = model.background.join(
        pl.DataFrame({"cell_id": cell_ids, "planted": background}), on="cell_id"
    )

    # Crimes sit at hour starts, so a child in its parent's hour is counted as background and
    # lags are rounded to hours. That biases theta and omega slightly down, hence the tolerances.
    assert result.converged
    assert result.n_iterations < 500
    assert model.theta == pytest.approx(0.5, abs=0.05)
    assert model.omega == pytest.approx(0.1, rel=0.15)
    assert np.corrcoef(fitted_mu["mu"], fitted_mu["planted"])[0, 1] > 0.85
    assert fitted_mu["mu"].sum() == pytest.approx(background.sum(), rel=0.1)


def test_em_without_triggering_finds_little(planted_year: tuple[np.ndarray, pl.DataFrame, list[str]]) -> None:
    background, _, cell_ids = planted_year
    cell_index, times = simulate_hawkes(background, theta=0.0, omega=0.1, n_hours=YEAR_HOURS, seed=9)
    history = counts_frame(cell_ids, cell_index, times)

    model = SeppBaseline(history_days=365).fit(history, START + timedelta(days=365))

    assert model.theta < 0.05


def test_em_iteration_bound() -> None:
    history = crimes(*[("a", CUTOFF - timedelta(hours=hours), 1) for hours in (2, 5, 6, 30, 31, 200)])

    model = SeppBaseline(history_days=30, max_iterations=2).fit(history, CUTOFF)

    assert model.fit_result.n_iterations == 2
    assert not model.fit_result.converged


# predict


def test_predict_integrates_hour_exactly() -> None:
    history = crimes(("a", CUTOFF - timedelta(hours=3), 2), ("a", CUTOFF - timedelta(hours=40), 1),
                     ("b", CUTOFF - timedelta(hours=100), 1))
    model = SeppBaseline(history_days=10).fit(history, CUTOFF)
    mu = dict(model.background.iter_rows())
    theta, omega = model.theta, model.omega
    targets = pl.DataFrame({"cell_id": ["a", "b", "zz"], "hour": [CUTOFF + timedelta(hours=4), CUTOFF, CUTOFF]})

    risk = model.predict(targets)["risk"].to_list()

    # The integral over [a, a+1) of theta * omega * exp(-omega (s - t_i)) is theta * (exp(-omega (a - t_i)) - exp(-omega (a + 1 - t_i))).
    def triggered(count: int, hours_before_target: float) -> float:
        return count * theta * (math.exp(-omega * hours_before_target) - math.exp(-omega * (hours_before_target + 1)))

    assert theta > 0
    assert risk[0] == pytest.approx(mu["a"] + triggered(2, 7) + triggered(1, 44))
    assert risk[1] == pytest.approx(mu["b"] + triggered(1, 100))
    assert risk[2] == 0.0
    assert model.risk_kind == "rate"
    assert model.name == "sepp"


def test_predict_ignores_crimes_after_cutoff() -> None:
    history = crimes(("a", CUTOFF - timedelta(hours=3), 2), ("a", CUTOFF - timedelta(hours=40), 1))
    later = pl.concat([history, crimes(("a", CUTOFF, 9), ("a", CUTOFF + timedelta(hours=2), 4))])
    targets = pl.DataFrame({"cell_id": ["a"] * 5, "hour": [CUTOFF + timedelta(hours=h) for h in range(5)]})

    before = SeppBaseline(history_days=10).fit(history, CUTOFF).predict(targets)
    after = SeppBaseline(history_days=10).fit(later, CUTOFF).predict(targets)

    assert after.equals(before)


def test_sepp_beats_compstat_after_bursts() -> None:
    rng = np.random.default_rng(5)
    background = rng.gamma(2.0, 0.0015, 100)
    cell_ids = [f"c{index:03d}" for index in range(100)]
    n_hours = 30 * 7 * 24
    cell_index, times = simulate_hawkes(background, theta=0.6, omega=0.2, n_hours=n_hours, seed=6)
    sparse = counts_frame(cell_ids, cell_index, times)
    spine = complete_spine(cell_ids, sparse, START, START + timedelta(hours=n_hours))

    scores: dict[str, list[np.ndarray]] = {"sepp": [], "compstat": [], "random": []}
    outcomes = []
    sepp = SeppBaseline(history_days=140, refit_hours=24 * 7)
    for day in range(150, 206, 4):
        cutoff = START + timedelta(days=day)
        targets = cell_hour_targets(cell_ids, cutoff, 6)
        outcomes.append(observed_counts(targets, sparse) > 0)
        scores["sepp"].append(sepp.fit(sparse, cutoff).predict(targets)["risk"].to_numpy())
        compstat = CompstatBaseline(years=1).fit(spine, cutoff)
        scores["compstat"].append(compstat.predict(targets)["risk"].to_numpy())
        scores["random"].append(RandomBaseline(seed=3).fit(sparse, cutoff).predict(targets)["risk"].to_numpy())

    outcome = np.concatenate(outcomes)
    auc = {name: roc_auc(outcome, np.concatenate(values)) for name, values in scores.items()}

    assert outcome.sum() > 50
    assert auc["sepp"] > auc["compstat"] + 0.05
    assert auc["sepp"] > auc["random"] + 0.15


# refits


def test_refit_keeps_parameters_within_refit_hours() -> None:
    history = crimes(*[("a", CUTOFF - timedelta(hours=hours), 1) for hours in (2, 5, 6, 30, 31, 200)])
    history = pl.concat([history, crimes(("a", CUTOFF + timedelta(hours=10), 3))])
    model = SeppBaseline(history_days=30, refit_hours=168).fit(history, CUTOFF)
    theta, omega = model.theta, model.omega
    target = pl.DataFrame({"cell_id": ["a"], "hour": [CUTOFF + timedelta(hours=24)]})

    model.fit(history, CUTOFF + timedelta(hours=24))
    reused = model.predict(target)["risk"][0]

    assert not model.ran_em
    assert model.em_cutoff == CUTOFF
    assert (model.theta, model.omega) == (theta, omega)
    decayed = dict(model.cell_state.select("cell_id", "decayed").iter_rows())["a"]
    assert decayed == pytest.approx(sum(math.exp(-omega * hours) for hours in (26, 29, 30, 54, 55, 224)) +
                                    3 * math.exp(-omega * 14))
    assert reused > dict(model.background.iter_rows())["a"]

    model.fit(history, CUTOFF + timedelta(hours=168))
    assert model.ran_em
    assert model.em_cutoff == CUTOFF + timedelta(hours=168)


def test_refit_none_runs_em_every_fit() -> None:
    history = crimes(("a", CUTOFF - timedelta(hours=2), 1), ("a", CUTOFF - timedelta(hours=5), 1))
    model = SeppBaseline(history_days=30, refit_hours=None).fit(history, CUTOFF)

    model.fit(history, CUTOFF + timedelta(hours=1))

    assert model.ran_em


# input checks


def test_sepp_rejects_no_events() -> None:
    history = crimes(("a", CUTOFF - timedelta(days=400), 1))

    with pytest.raises(ValueError, match=r"history has no crimes \(crime_count > 0\) between"):
        SeppBaseline().fit(history, CUTOFF)


def test_sepp_rejects_naive_cutoff() -> None:
    with pytest.raises(ValueError, match="cutoff must be timezone-aware"):
        SeppBaseline().fit(crimes(("a", CUTOFF - timedelta(hours=1), 1)), datetime(2017, 10, 2))


def test_sepp_rejects_targets_before_cutoff() -> None:
    model = SeppBaseline().fit(crimes(("a", CUTOFF - timedelta(hours=1), 1)), CUTOFF)

    with pytest.raises(ValueError, match="targets has 1 rows before the cutoff"):
        model.predict(pl.DataFrame({"cell_id": ["a"], "hour": [CUTOFF - timedelta(hours=1)]}))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"history_days": 0}, "history_days must be a positive whole number of days, got 0"),
        ({"refit_hours": -1}, "refit_hours must be a positive whole number of hours or None, got -1"),
        ({"max_iterations": 0}, "max_iterations must be a positive whole number, got 0"),
        ({"max_lag_hours": -24.0}, "max_lag_hours must be a positive number, got -24.0"),
    ],
)
def test_sepp_rejects_invalid_settings(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SeppBaseline(**settings)


def test_sepp_predict_before_fit() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        SeppBaseline().predict(pl.DataFrame({"cell_id": ["a"], "hour": [CUTOFF]}))
