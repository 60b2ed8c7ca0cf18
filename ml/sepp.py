"""A grid self-exciting point process (SEPP) baseline, fitted by expectation-maximization.

Mohler (2014), "Marked point process hotspot maps for homicide and gun crime
prediction in Chicago", International Journal of Forecasting 30(3),
DOI 10.1016/j.ijforecast.2014.01.004, and Mohler et al. (2015), "Randomized
controlled field trials of predictive policing", Journal of the American
Statistical Association 110(512), DOI 10.1080/01621459.2015.1077710, model
the crimes of each grid cell n as a Hawkes process with conditional intensity

    lambda_n(t) = mu_n + sum over the cell's crimes t_i < t of theta * omega * exp(-omega * (t - t_i)).

mu_n is the cell's background rate. Each crime triggers on average theta
further crimes in the same cell, after delays that are exponential with rate
omega. The parameters are fitted by expectation-maximization (EM). The
expectation step computes, for every crime, the probability that it is a
background crime and the probability that each earlier crime of its cell
triggered it. The maximization step updates mu_n, theta and omega in closed
form from those probabilities.

Riskcast's time unit is the hour and each crime sits at the start of its
hour. Crimes of the same cell-hour share one time, so none of them triggers
another. The M-step uses the usual approximation that every crime's offspring
fall inside the fitting window (theta is triggered crimes over all crimes),
which is close when 1/omega is short next to the window. The E-step pairs
each crime only with the earlier crimes of its cell within `max_lag_hours`,
which keeps EM linear in the number of crimes. The prediction uses every
crime of the window.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from ml.baselines import (
    SECONDS_PER_HOUR,
    RiskBaseline,
    RiskKind,
    as_utc,
    check_history,
    check_targets,
    window_events,
)

logger = logging.getLogger(__name__)

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class HawkesFit:
    """Parameters of a grid Hawkes process fitted by EM, and how the EM ended.

    `mu` has one background rate per cell (crimes per hour), `theta` is the
    mean number of crimes each crime triggers and `omega` the decay rate per
    hour, so 1/omega is the mean triggering delay in hours.
    """

    mu: np.ndarray
    theta: float
    omega: float
    n_iterations: int
    converged: bool
    log_likelihood: float


@dataclass(frozen=True)
class EventPairs:
    """Every (earlier crime i, later crime j) of the same cell at most max_lag hours apart."""

    earlier: np.ndarray
    later: np.ndarray
    lag_hours: np.ndarray


def pair_events(cell_index: np.ndarray, times: np.ndarray, max_lag_hours: float) -> EventPairs:
    """Pair each crime with the earlier crimes of its cell within `max_lag_hours`.

    Inputs must be sorted by cell, then time, and times must be
    non-negative. Rows at the same cell and time are never paired.
    """
    span = float(times.max()) + max_lag_hours + 1.0
    keys = cell_index.astype(np.float64) * span + times

    first_earlier = np.searchsorted(keys, keys - max_lag_hours, side="left")
    first_same_time = np.searchsorted(keys, keys, side="left")
    n_earlier = first_same_time - first_earlier

    later = np.repeat(np.arange(keys.size), n_earlier)
    pair_starts = np.cumsum(n_earlier) - n_earlier
    offset_in_group = np.arange(later.size) - np.repeat(pair_starts, n_earlier)
    earlier = np.repeat(first_earlier, n_earlier) + offset_in_group

    return EventPairs(earlier=earlier, later=later, lag_hours=times[later] - times[earlier])


def fit_grid_hawkes(
    cell_index: np.ndarray,
    times: np.ndarray,
    counts: np.ndarray,
    n_cells: int,
    window_hours: float,
    max_iterations: int = 500,
    tolerance: float = 1e-6,
    max_lag_hours: float = 1440.0,
    initial_theta: float = 0.5,
    initial_omega: float = 1.0 / 24.0,
) -> HawkesFit:
    """Fit mu (per cell), theta and omega to crimes at `times` (hours since the window start) by EM.

    Rows are (cell, time, count) with count >= 1 crimes. The EM stops when
    theta, omega and the largest mu change by less than `tolerance`, relative
    to their size, or after `max_iterations` iterations.
    """
    order = np.lexsort((times, cell_index))
    cell_index = cell_index[order]
    times = times[order].astype(np.float64)
    counts = counts[order].astype(np.float64)

    pairs = pair_events(cell_index, times, max_lag_hours)
    parent_counts = counts[pairs.earlier]
    child_counts = counts[pairs.later]
    n_crimes = float(counts.sum())

    mu = 0.5 * np.bincount(cell_index, weights=counts, minlength=n_cells) / window_hours
    theta = initial_theta
    omega = initial_omega
    converged = False
    n_iterations = 0

    for n_iterations in range(1, max_iterations + 1):
        # Expectation: the share of each crime's intensity from the background and from each earlier crime.
        triggering = theta * omega * np.exp(-omega * pairs.lag_hours)
        excitation = np.bincount(pairs.later, weights=parent_counts * triggering, minlength=times.size)
        intensity = mu[cell_index] + excitation

        background_mass = counts * mu[cell_index] / intensity
        pair_mass = child_counts * parent_counts * triggering / intensity[pairs.later]

        # Maximization: closed-form updates from the expected background and triggered crimes.
        new_mu = np.bincount(cell_index, weights=background_mass, minlength=n_cells) / window_hours
        triggered = float(pair_mass.sum())
        new_theta = triggered / n_crimes
        weighted_lag = float((pair_mass * pairs.lag_hours).sum())
        new_omega = triggered / weighted_lag if weighted_lag > 0 else omega

        change = max(
            abs(new_theta - theta) / max(new_theta, 1e-12),
            abs(new_omega - omega) / new_omega,
            float(np.abs(new_mu - mu).max()) / max(float(new_mu.max()), 1e-300),
        )
        mu, theta, omega = new_mu, new_theta, new_omega
        if change < tolerance:
            converged = True
            break

    log_likelihood = hawkes_log_likelihood(cell_index, times, counts, pairs, mu, theta, omega, window_hours)
    return HawkesFit(
        mu=mu,
        theta=theta,
        omega=omega,
        n_iterations=n_iterations,
        converged=converged,
        log_likelihood=log_likelihood,
    )


def hawkes_log_likelihood(
    cell_index: np.ndarray,
    times: np.ndarray,
    counts: np.ndarray,
    pairs: EventPairs,
    mu: np.ndarray,
    theta: float,
    omega: float,
    window_hours: float,
) -> float:
    """Return the log-likelihood of the crimes under the fitted process, with the E-step's pair truncation."""
    triggering = theta * omega * np.exp(-omega * pairs.lag_hours)
    excitation = np.bincount(pairs.later, weights=counts[pairs.earlier] * triggering, minlength=times.size)
    intensity = mu[cell_index] + excitation

    compensator = window_hours * float(mu.sum()) + theta * float((counts * -np.expm1(-omega * (window_hours - times))).sum())
    return float((counts * np.log(intensity)).sum()) - compensator


class SeppBaseline(RiskBaseline):
    """Grid Hawkes process per cell, fitted by EM on the `history_days` days before the cutoff.

    `predict` returns the expected count of each target hour [a, a+1) given
    the crimes before the cutoff. That is mu_n plus the triggering of those
    crimes integrated over the hour, theta * (1 - exp(-omega)) * sum of
    crime_count * exp(-omega * (a - t_i)). Crimes after the cutoff, and what
    they would trigger, are not forecast, so the risk decays towards mu_n.
    A cell without crimes in the window has mu_n = 0, which is the maximum
    likelihood estimate, and so risk 0.0.

    With `refit_hours` set, a fit whose cutoff is at or after the last EM's
    cutoff and less than `refit_hours` hours after it keeps mu, theta and
    omega, and only recomputes the triggering from the crimes before the new
    cutoff. A backtest can then call fit every day and pay for EM once a
    week. `refit_hours=None` runs EM on every fit. `fit_result` (the EM's
    parameters, iteration count, convergence and log-likelihood), `em_cutoff`
    and `ran_em` record the last EM. The baseline accepts a sparse history
    (only cell-hours with crimes) as well as the complete spine.
    """

    name = "sepp"
    risk_kind: RiskKind = "rate"

    def __init__(
        self,
        history_days: int = 365,
        refit_hours: int | None = 168,
        max_iterations: int = 500,
        tolerance: float = 1e-6,
        max_lag_hours: float = 1440.0,
    ) -> None:
        if isinstance(history_days, bool) or not isinstance(history_days, int) or history_days < 1:
            raise ValueError(f"history_days must be a positive whole number of days, got {history_days!r}.")

        if refit_hours is not None and (isinstance(refit_hours, bool) or not isinstance(refit_hours, int) or refit_hours < 1):
            raise ValueError(f"refit_hours must be a positive whole number of hours or None, got {refit_hours!r}.")

        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
            raise ValueError(f"max_iterations must be a positive whole number, got {max_iterations!r}.")

        for name, value in (("tolerance", tolerance), ("max_lag_hours", max_lag_hours)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}.")

        self.history_days = history_days
        self.refit_hours = refit_hours
        self.max_iterations = max_iterations
        self.tolerance = float(tolerance)
        self.max_lag_hours = float(max_lag_hours)

        self.cutoff: datetime | None = None
        self.em_cutoff: datetime | None = None
        self.ran_em: bool | None = None
        self.fit_result: HawkesFit | None = None
        self.background: pl.DataFrame | None = None
        self.cell_state: pl.DataFrame | None = None
        self.n_events: int | None = None

    @property
    def theta(self) -> float | None:
        """Mean number of crimes triggered by each crime, from the last EM."""
        return None if self.fit_result is None else self.fit_result.theta

    @property
    def omega(self) -> float | None:
        """Decay rate of the triggering per hour, from the last EM."""
        return None if self.fit_result is None else self.fit_result.omega

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "SeppBaseline":
        """Fit (or reuse) the process on the crimes of the `history_days` days before `cutoff`."""
        check_history(history)
        cutoff_utc = as_utc(cutoff, "cutoff")
        window_start = cutoff_utc - timedelta(days=self.history_days)
        events = window_events(history, window_start, cutoff_utc)

        self.ran_em = self.needs_em(cutoff_utc)
        if self.ran_em:
            self.run_em(events, window_start)
            self.em_cutoff = cutoff_utc

        self.cell_state = self.triggering_state(events, cutoff_utc)
        self.cutoff = cutoff_utc
        self.n_events = int(events["crime_count"].sum())
        return self

    def needs_em(self, cutoff: datetime) -> bool:
        """Return whether this fit must run EM rather than keep the last EM's parameters."""
        if self.fit_result is None or self.em_cutoff is None or self.refit_hours is None:
            return True
        hours_since_em = (cutoff - self.em_cutoff) / timedelta(hours=1)
        return hours_since_em < 0 or hours_since_em >= self.refit_hours

    def run_em(self, events: pl.DataFrame, window_start: datetime) -> None:
        """Fit mu, theta and omega by EM and store them."""
        cell_ids = events["cell_id"].unique().sort()
        cell_index = events.select(pl.col("cell_id").cast(pl.Enum(cell_ids)).to_physical())["cell_id"].to_numpy()
        times = (events["hour"] - window_start).dt.total_seconds().to_numpy() / SECONDS_PER_HOUR
        window_hours = float(self.history_days * HOURS_PER_DAY)

        result = fit_grid_hawkes(
            cell_index.astype(np.int64),
            times,
            events["crime_count"].to_numpy(),
            n_cells=cell_ids.len(),
            window_hours=window_hours,
            max_iterations=self.max_iterations,
            tolerance=self.tolerance,
            max_lag_hours=self.max_lag_hours,
        )
        self.fit_result = result
        self.background = pl.DataFrame({"cell_id": cell_ids, "mu": pl.Series(result.mu, dtype=pl.Float64)})

        logger.info(
            "SEPP EM on %d crimes in %d cells: theta %.4f, omega %.4f per hour (mean delay %.1f h), "
            "%d iterations, converged %s, log-likelihood %.1f.",
            int(events["crime_count"].sum()),
            cell_ids.len(),
            result.theta,
            result.omega,
            1.0 / result.omega,
            result.n_iterations,
            result.converged,
            result.log_likelihood,
        )
        if not result.converged:
            logger.warning(
                "SEPP EM stopped after max_iterations=%d without converging to tolerance %g. "
                "Raise max_iterations or tolerance.",
                self.max_iterations,
                self.tolerance,
            )
        if 1.0 / result.omega > self.max_lag_hours / 5:
            logger.warning(
                "SEPP mean triggering delay %.0f h is long next to max_lag_hours=%.0f, so the E-step misses pairs. "
                "Raise max_lag_hours.",
                1.0 / result.omega,
                self.max_lag_hours,
            )
        if result.theta >= 1:
            logger.warning("SEPP theta %.3f is at least 1, so the fitted process is explosive.", result.theta)

    def triggering_state(self, events: pl.DataFrame, cutoff: datetime) -> pl.DataFrame:
        """Return cell_id, mu and the decayed crime sum, sum of crime_count * exp(-omega * (cutoff - t_i)), per cell."""
        omega = self.fit_result.omega
        hours_before = (cutoff - events["hour"]).dt.total_seconds() / SECONDS_PER_HOUR

        decayed = (
            events.with_columns(decayed=events["crime_count"].cast(pl.Float64) * (-omega * hours_before).exp())
            .group_by("cell_id")
            .agg(pl.col("decayed").sum())
        )
        return (
            self.background.join(decayed, on="cell_id", how="full", coalesce=True)
            .with_columns(pl.col("mu").fill_null(0.0), pl.col("decayed").fill_null(0.0))
            .sort("cell_id")
        )

    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        """Return `targets` in input order with `risk`, the expected count in each target hour.

        Target hours must be at or after the cutoff.
        """
        if self.cell_state is None:
            raise RuntimeError("SeppBaseline.predict was called before fit. Call fit(history, cutoff) first.")
        check_targets(targets, extra_columns=("mu", "decayed"))

        early = targets.filter(pl.col("hour") < self.cutoff)
        if early.height:
            raise ValueError(
                f"targets has {early.height} rows before the cutoff {self.cutoff.isoformat()}, "
                f"for example {early['hour'][0]}. SEPP forecasts only hours at or after the cutoff."
            )

        theta = self.fit_result.theta
        omega = self.fit_result.omega
        hours_after = (targets["hour"] - self.cutoff).dt.total_seconds() / SECONDS_PER_HOUR
        hour_integral = theta * -math.expm1(-omega)

        joined = targets.with_columns(hours_after=hours_after).join(
            self.cell_state, on="cell_id", how="left", maintain_order="left"
        )
        n_missing = joined["mu"].null_count()
        if n_missing:
            logger.info("SEPP has no crimes for %d of %d target rows, so their risk is 0.0.", n_missing, joined.height)

        risk = pl.col("mu").fill_null(0.0) + hour_integral * pl.col("decayed").fill_null(0.0) * (
            -omega * pl.col("hours_after")
        ).exp()
        return joined.with_columns(risk=risk).drop("mu", "decayed", "hours_after")
