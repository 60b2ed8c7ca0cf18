"""Known-truth city, patrol feedback-loop simulation and a recording-bias check.

Real crime data show only what victims reported and what police chose to see, so
no real data set can show whether a forecast learned the true risk. This module
plants a true risk surface in a synthetic city and observes it through two
processes:

- reported crime: each true incident in cell c is recorded with the cell's
  reporting probability, which may differ by area;
- discovered crime: each true incident in cell c on day d is found by police
  with probability patrol_share[c, d] * detection_rate, where the patrol shares
  of a day sum to 1 over the cells. In a cell that receives every patrol,
  police discover a share `detection_rate` of its incidents.

`simulate_feedback` follows Ensign, Friedler, Neville, Scheidegger &
Venkatasubramanian (2018), "Runaway Feedback Loops in Predictive Policing",
Proceedings of the Conference on Fairness, Accountability and Transparency
(FAT* 2018), PMLR 81:160-171. Their model is a Polya urn: police go to a region
with probability proportional to the incidents recorded there, and each
incident they discover adds to that region's record. Because police only
discover crime where they patrol, the region with the higher rate takes a
growing share of patrols until it receives all of them. Their correction
counts each discovered incident with a weight inverse to the probability
that police were sent to its region, so the expected recorded count of every
region is again proportional to its true rate.

Here a rate predictor (the forecaster) runs once per simulated day, and
patrol shares follow its predicted rates. Two forecasters are available:

- "trailing_mean": each cell's mean recorded count per cell-day over a
  trailing window, or over all days, which is the urn;
- "lightgbm": a LightGBM model (G. Ke et al., "LightGBM: A Highly Efficient
  Gradient Boosting Decision Tree", NeurIPS 2017) with the Poisson objective.
  It is retrained every `retrain_days` days on the last `window_days` days of
  the record (all days when None) and predicts each cell's count for the next
  day from that cell's lagged recorded counts: the previous day, the means
  over the last 7 and 28 days and over all days, and the day of the week. It
  is a stand-in for Riskcast's forecast: the same model family as the
  ensemble's LightGBM member, trained on the same kind of lagged counts. It
  is not the full ensemble. The synthetic city has no weather, no neighbours
  and no hours, and the stand-in has no torch nets and no downsampling or
  base-rate correction.

The day's incidents then enter the record in one of three settings:
"discovered" (discovered incidents only), "reported" (reported incidents
only, which do not depend on patrols) and "corrected" (discovered incidents
weighted by 1 / patrol share of their cell).

The divergence between the patrol allocation p and the true risk share q
(true rate of a cell over the city's total) is the total variation distance
0.5 * sum_c |p_c - q_c|. It is 0 when patrols follow the true risk and
approaches 1 when all patrols go to cells with almost none of the risk.

`lum_isaac_check` follows Lum & Isaac (2016), "To predict and serve?",
Significance 13(5), DOI 10.1111/j.1740-9713.2016.00960.x: where true offending
is near-uniform over areas but recording differs by area, a rate model fitted
to the records ranks areas by recording, not by offending. The rate model is
`ml.baselines.CompstatBaseline` fitted on the hourly records.

Everything here is synthetic. Days are numbered from 0 and hours are UTC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

import lightgbm
import numpy as np
import polars as pl
from scipy.stats import spearmanr

from ml.baselines import CompstatBaseline

logger = logging.getLogger(__name__)

FEEDBACK_SETTINGS: tuple[str, ...] = ("discovered", "reported", "corrected")
FORECASTERS: tuple[str, ...] = ("trailing_mean", "lightgbm")

# Columns of the learned forecaster's features, all computed per cell from its recorded counts.
LAG_FEATURES: tuple[str, ...] = ("lag_1", "mean_7", "mean_28", "mean_all", "day_of_week")

# Boosting settings of the learned forecaster. A training set has at most
# window_days * n_cells rows (1,120 with the defaults), so small trees and few
# rounds suffice. LightGBM's parameter documentation says that deterministic=true
# gives the same model for the same data, parameters and thread count, and recommends
# force_row_wise or force_col_wise alongside it.
LIGHTGBM_ROUNDS = 50
LIGHTGBM_PARAMS: dict[str, object] = {
    "objective": "poisson",
    "num_leaves": 15,
    "learning_rate": 0.1,
    "min_child_samples": 20,
    "max_bin": 63,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbosity": -1,
}

DEFAULT_START = datetime(2021, 1, 4, tzinfo=timezone.utc)  # A Monday, so day 0 starts a week.

# Share of a day's incidents in each UTC hour 0 to 23: lowest in the early
# morning, highest in the late evening, the usual daily cycle of street crime.
# The values are a synthetic shape, not measured data.
DEFAULT_HOUR_PROFILE = np.array(
    [4.5, 4.0, 3.5, 2.8, 2.2, 1.8, 1.8, 2.2, 2.8, 3.4, 3.8, 4.0,
     4.4, 4.4, 4.4, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6, 5.6, 5.4, 4.4]
)
DEFAULT_HOUR_PROFILE = DEFAULT_HOUR_PROFILE / DEFAULT_HOUR_PROFILE.sum()


@dataclass(frozen=True)
class SimulatedCity:
    """A synthetic city with known true incident rates and the incidents that victims reported.

    `true_rate[c]` is the expected number of true incidents per day in cell c,
    `true_counts[d, c]` the true incidents on day d and `reported_counts[d, c]`
    those that victims reported. `group` labels each cell (for example an area
    type) and `hour_profile` gives the share of a day's incidents in each UTC
    hour.
    """

    cell_ids: list[str]
    group: np.ndarray
    true_rate: np.ndarray
    reporting_probability: np.ndarray
    true_counts: np.ndarray
    reported_counts: np.ndarray
    hour_profile: np.ndarray
    start: datetime

    @property
    def n_cells(self) -> int:
        return len(self.cell_ids)

    @property
    def n_days(self) -> int:
        return int(self.true_counts.shape[0])

    @property
    def true_share(self) -> np.ndarray:
        """Share of the city's true risk in each cell, summing to 1."""
        return self.true_rate / self.true_rate.sum()

    def daily_frame(self) -> pl.DataFrame:
        """Return one row per day and cell with the true rate, true count and reported count."""
        n_days, n_cells = self.true_counts.shape
        return pl.DataFrame(
            {
                "day": np.repeat(np.arange(n_days), n_cells),
                "cell_id": np.tile(np.array(self.cell_ids), n_days),
                "group": np.tile(self.group, n_days),
                "true_rate": np.tile(self.true_rate, n_days),
                "reporting_probability": np.tile(self.reporting_probability, n_days),
                "true_count": self.true_counts.reshape(-1),
                "reported_count": self.reported_counts.reshape(-1),
            }
        )

    def hourly_reported(self, seed: int) -> pl.DataFrame:
        """Split each day's reported incidents over its UTC hours by `hour_profile`.

        Returns the complete cell-hour spine (zeros included) with columns
        cell_id, hour (UTC hour start) and crime_count, the history layout of
        `ml.baselines`.
        """
        rng = np.random.default_rng(seed)
        hourly = rng.multinomial(self.reported_counts, self.hour_profile)  # (day, cell, hour)
        counts = hourly.transpose(1, 0, 2).reshape(self.n_cells, -1)  # (cell, day * 24 + hour)

        n_hours = self.n_days * 24
        hours = pl.datetime_range(
            self.start, self.start + timedelta(hours=n_hours - 1), "1h", eager=True, time_zone="UTC"
        )
        return pl.DataFrame(
            {
                "cell_id": np.repeat(np.array(self.cell_ids), n_hours),
                "hour": pl.concat([hours] * self.n_cells),
                "crime_count": counts.reshape(-1).astype(np.int64),
            }
        )


def simulate_city(
    n_cells: int,
    n_days: int,
    seed: int,
    *,
    mean_daily_rate: float = 10.0,
    risk_log_sd: float = 0.6,
    true_rate: np.ndarray | None = None,
    reporting_probability: float | np.ndarray = 0.5,
    group: np.ndarray | None = None,
    hour_profile: np.ndarray | None = None,
    start: datetime = DEFAULT_START,
) -> SimulatedCity:
    """Plant a true risk surface, draw daily true incidents and thin them to reported incidents.

    Unless `true_rate` (incidents per cell per day) is given, each cell's rate
    is `mean_daily_rate` times a lognormal factor with log-standard deviation
    `risk_log_sd`, rescaled so the cells' mean rate is `mean_daily_rate`. True
    counts are Poisson with that rate on every day. `reporting_probability` is
    one probability for every cell or one per cell.
    """
    check_positive_int(n_cells, "n_cells", minimum=2)
    check_positive_int(n_days, "n_days")
    rng = np.random.default_rng(seed)

    if true_rate is None:
        true_rate = planted_risk_surface(n_cells, rng, mean_daily_rate, risk_log_sd)
    true_rate = per_cell_array(true_rate, n_cells, "true_rate")
    if not np.all(np.isfinite(true_rate)) or np.any(true_rate < 0) or true_rate.sum() <= 0:
        raise ValueError("true_rate must contain finite rates >= 0 with a positive total. Check the rates passed.")

    reporting = per_cell_array(reporting_probability, n_cells, "reporting_probability")
    check_probabilities(reporting, "reporting_probability")
    labels = np.array(["all"] * n_cells) if group is None else per_cell_array(group, n_cells, "group")
    profile = check_hour_profile(DEFAULT_HOUR_PROFILE if hour_profile is None else hour_profile)

    true_counts = rng.poisson(true_rate, size=(n_days, n_cells))
    reported_counts = rng.binomial(true_counts, reporting)

    logger.info(
        "Simulated city: %d cells, %d days, %d true incidents, %d reported (%.1f%%).",
        n_cells, n_days, true_counts.sum(), reported_counts.sum(),
        100.0 * reported_counts.sum() / max(true_counts.sum(), 1),
    )
    return SimulatedCity(
        cell_ids=[f"cell_{index:03d}" for index in range(n_cells)],
        group=labels,
        true_rate=true_rate,
        reporting_probability=reporting,
        true_counts=true_counts,
        reported_counts=reported_counts,
        hour_profile=profile,
        start=start,
    )


def planted_risk_surface(n_cells: int, rng: np.random.Generator, mean_daily_rate: float, log_sd: float) -> np.ndarray:
    """Return lognormal per-cell rates rescaled to the mean `mean_daily_rate`."""
    if not mean_daily_rate > 0:
        raise ValueError(f"mean_daily_rate must be > 0 incidents per cell per day, got {mean_daily_rate!r}.")
    if not log_sd >= 0:
        raise ValueError(f"risk_log_sd must be >= 0, got {log_sd!r}.")

    factors = np.exp(rng.normal(0.0, log_sd, size=n_cells))
    return factors / factors.mean() * mean_daily_rate


def discover(
    true_counts: np.ndarray, patrol_share: np.ndarray, detection_rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw the incidents police discover: each with probability patrol_share * detection_rate of its cell."""
    probability = np.clip(patrol_share * detection_rate, 0.0, 1.0)
    return rng.binomial(true_counts, probability)


def allocate_patrols(predicted_rate: np.ndarray, exploration: float) -> np.ndarray:
    """Share patrols in proportion to the predicted rates, with `exploration` spread evenly over all cells.

    When every predicted rate is 0 the patrols are spread evenly.
    """
    n_cells = predicted_rate.size
    total = predicted_rate.sum()
    if total <= 0:
        return np.full(n_cells, 1.0 / n_cells)
    return (1.0 - exploration) * predicted_rate / total + exploration / n_cells


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Return the total variation distance 0.5 * sum |p - q| between two distributions over cells."""
    return float(0.5 * np.abs(p - q).sum())


class RatePredictor(Protocol):
    """A forecaster of the feedback loop: each cell's expected recorded count on one day.

    `recorded[d, c]` is the record of cell c on day d. Only days before `day`
    are filled in, and a predictor must read no later day.
    """

    def predict_rate(self, recorded: np.ndarray, day: int) -> np.ndarray: ...


class TrailingMeanPredictor:
    """Mean recorded count per day of each cell over the last `window_days` days, or all days when None."""

    def __init__(self, window_days: int | None) -> None:
        self.window_days = window_days

    def predict_rate(self, recorded: np.ndarray, day: int) -> np.ndarray:
        first = 0 if self.window_days is None else max(0, day - self.window_days)
        return recorded[first:day].mean(axis=0)


class LightGBMPredictor:
    """Poisson LightGBM model of each cell's next-day count from its lagged recorded counts.

    The model is trained on the first day it predicts and again once
    `retrain_days` days have passed since its last training. A training set
    has one row per cell and target day: the features of `lag_features` and
    the recorded count of that day. Its target days are the last
    `window_days` days before the training day, or every day from day 1 when
    None. Weekdays are counted from `first_weekday`, the weekday of day 0
    (Monday = 0).
    """

    def __init__(self, window_days: int | None, retrain_days: int, first_weekday: int, seed: int) -> None:
        self.window_days = window_days
        self.retrain_days = retrain_days
        self.first_weekday = first_weekday
        self.params = {**LIGHTGBM_PARAMS, "seed": seed}
        self.booster: lightgbm.Booster | None = None
        self.trained_day: int | None = None
        self.trainings = 0

    def predict_rate(self, recorded: np.ndarray, day: int) -> np.ndarray:
        if self.trained_day is None or day - self.trained_day >= self.retrain_days:
            self.train(recorded, day)

        if self.booster is None:
            return np.zeros(recorded.shape[1])
        features = lag_features(recorded[:day], np.array([day]), self.first_weekday)
        return self.booster.predict(features, num_threads=1)

    def train(self, recorded: np.ndarray, day: int) -> None:
        """Fit a new model on the target days before `day`, or none when nothing has been recorded."""
        first = 1 if self.window_days is None else max(1, day - self.window_days)
        target_days = np.arange(first, day)
        features = lag_features(recorded[:day], target_days, self.first_weekday)
        labels = recorded[target_days].reshape(-1)
        self.trained_day = day
        self.trainings += 1

        # LightGBM rejects a Poisson training set whose labels sum to zero, so
        # an empty record leaves no model and the patrols spread evenly.
        if labels.sum() <= 0:
            logger.warning("Learned forecaster on day %d: no recorded incidents in %d training rows, so no model "
                           "and patrols spread evenly.", day, labels.size)
            self.booster = None
            return

        dataset = lightgbm.Dataset(
            features, label=labels, feature_name=list(LAG_FEATURES), categorical_feature=["day_of_week"],
            params={"max_bin": self.params["max_bin"], "verbosity": -1},
        )
        self.booster = lightgbm.train(
            self.params, dataset, num_boost_round=LIGHTGBM_ROUNDS, keep_training_booster=True
        )
        logger.debug("Learned forecaster on day %d: trained on %d rows of days %d to %d.",
                     day, labels.size, first, day - 1)


def lag_features(recorded: np.ndarray, target_days: np.ndarray, first_weekday: int) -> np.ndarray:
    """Return the lag features of every cell on each target day, one row per day and cell, days first.

    `recorded` contains at least the days before the last target day, and every
    target day must be >= 1. The features are the count of the previous day,
    the mean count per day over the last 7 and 28 days and over all days
    before the target day (shorter windows near day 0), and the weekday.
    """
    n_cells = recorded.shape[1]
    cumulative = np.vstack([np.zeros((1, n_cells)), np.cumsum(recorded, axis=0)])  # cumulative[d] = sum of days < d

    def trailing_mean(days: int) -> np.ndarray:
        first = np.maximum(target_days - days, 0)
        totals = cumulative[target_days] - cumulative[first]
        return totals / (target_days - first)[:, None]

    columns = [
        trailing_mean(1),
        trailing_mean(7),
        trailing_mean(28),
        cumulative[target_days] / target_days[:, None],
        np.repeat(((first_weekday + target_days) % 7)[:, None], n_cells, axis=1).astype(np.float64),
    ]
    return np.stack([column.reshape(-1) for column in columns], axis=1)


def make_rate_predictor(
    forecaster: str, window_days: int | None, retrain_days: int, first_weekday: int, seed: int
) -> TrailingMeanPredictor | LightGBMPredictor:
    """Build the rate predictor named `forecaster`, one of FORECASTERS."""
    if forecaster == "trailing_mean":
        return TrailingMeanPredictor(window_days)
    if forecaster == "lightgbm":
        return LightGBMPredictor(window_days, retrain_days, first_weekday, seed)
    raise ValueError(f"forecaster must be one of {list(FORECASTERS)}, got {forecaster!r}.")


@dataclass(frozen=True)
class FeedbackResult:
    """Outputs of `simulate_feedback`.

    `daily` has one row per setting and day with these columns:

    - day, setting;
    - divergence: total variation distance between patrol shares and true risk shares;
    - top_share and top_cell: the patrol share and id of the most-patrolled cell;
    - true_top_share: the patrol share of the cell with the highest true rate;
    - true_count, discovered_count, reported_count: the day's city totals;
    - recorded_count: the count added to the record that day, weighted in the corrected setting;
    - recorded_total: the record so far, history included.

    `cells` has one row per setting, day and cell: patrol_share, true_share, recorded_count.
    `forecaster` names the rate predictor that steered the patrols.
    """

    daily: pl.DataFrame
    cells: pl.DataFrame
    forecaster: str = "trailing_mean"


def simulate_feedback(
    city: SimulatedCity,
    seed: int,
    *,
    history_days: int = 28,
    window_days: int | None = 56,
    detection_rate: float = 1.0,
    exploration: float = 0.0,
    settings: tuple[str, ...] = FEEDBACK_SETTINGS,
    forecaster: str = "trailing_mean",
    retrain_days: int = 7,
) -> FeedbackResult:
    """Run the patrol feedback loop on `city` for each setting and report every day.

    The first `history_days` days of the city are the record before
    deployment: its reported incidents. On each later day the forecaster
    predicts each cell's rate. With "trailing_mean" the predicted rate of a
    cell is its mean recorded count per day over the last `window_days` days,
    or over all recorded days when None (the Polya urn). With "lightgbm" a
    Poisson LightGBM model (`LightGBMPredictor`), retrained every
    `retrain_days` days on the last `window_days` days of the record (all days
    when None) and seeded with `seed`, predicts each cell's count. Patrols are
    shared by `allocate_patrols`, and the setting chooses which of the day's incidents
    enter the record. All settings use the same true and reported incidents,
    and the discoveries of each setting come from their own seeded random
    stream. The reported setting converges to the reported surface, which is
    the true surface only when every cell has the same reporting probability.

    NOTE: with `exploration` 0 and a trailing window, a cell whose window contains
    no records gets no patrols, so in the discovered and corrected settings it
    never enters the record again. The correction is unbiased only while every
    cell has a positive patrol share, which `exploration` > 0 guarantees.
    """
    check_feedback_parameters(
        city, history_days, window_days, detection_rate, exploration, settings, forecaster, retrain_days
    )
    streams = np.random.SeedSequence(seed).spawn(len(settings))

    daily_frames = []
    cell_frames = []
    for setting, stream in zip(settings, streams):
        daily, cells = run_setting(
            city, setting, np.random.default_rng(stream), history_days, window_days, detection_rate, exploration,
            forecaster=forecaster, retrain_days=retrain_days, model_seed=seed,
        )
        daily_frames.append(daily)
        cell_frames.append(cells)

    result = FeedbackResult(daily=pl.concat(daily_frames), cells=pl.concat(cell_frames), forecaster=forecaster)
    log_feedback_summary(result.daily, city.n_days - history_days, forecaster)
    return result


def log_feedback_summary(daily: pl.DataFrame, n_simulated_days: int, forecaster: str) -> None:
    """Log each setting's divergence on its first and last day and its final top-cell share."""
    summary = daily.group_by("setting", maintain_order=True).agg(
        first_divergence=pl.col("divergence").first(),
        last_divergence=pl.col("divergence").last(),
        last_top_share=pl.col("top_share").last(),
    )
    for row in summary.iter_rows(named=True):
        logger.info(
            "Feedback setting %s with the %s forecaster over %d days: divergence %.3f on the first day, "
            "%.3f on the last, top-cell share %.3f.",
            row["setting"], forecaster, n_simulated_days, row["first_divergence"], row["last_divergence"],
            row["last_top_share"],
        )


def run_setting(
    city: SimulatedCity,
    setting: str,
    rng: np.random.Generator,
    history_days: int,
    window_days: int | None,
    detection_rate: float,
    exploration: float,
    *,
    forecaster: str = "trailing_mean",
    retrain_days: int = 7,
    model_seed: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Simulate one feedback setting day by day and return its daily and per-cell frames.

    `forecaster`, `retrain_days` and `model_seed` choose the rate predictor
    as in `simulate_feedback`. Each setting trains its own models.
    """
    predictor = make_rate_predictor(forecaster, window_days, retrain_days, city.start.weekday(), model_seed)
    recorded = np.zeros(city.true_counts.shape, dtype=np.float64)
    recorded[:history_days] = city.reported_counts[:history_days]
    true_share = city.true_share
    true_top = int(np.argmax(city.true_rate))

    shares = []
    rows = []
    for day in range(history_days, city.n_days):
        predicted_rate = predictor.predict_rate(recorded, day)
        patrol_share = allocate_patrols(predicted_rate, exploration)

        discovered = discover(city.true_counts[day], patrol_share, detection_rate, rng)
        recorded[day] = record_day(setting, discovered, city.reported_counts[day], patrol_share)

        top = int(np.argmax(patrol_share))
        shares.append(patrol_share)
        rows.append(
            {
                "day": day,
                "setting": setting,
                "divergence": total_variation(patrol_share, true_share),
                "top_share": float(patrol_share[top]),
                "top_cell": city.cell_ids[top],
                "true_top_share": float(patrol_share[true_top]),
                "true_count": int(city.true_counts[day].sum()),
                "discovered_count": int(discovered.sum()),
                "reported_count": int(city.reported_counts[day].sum()),
                "recorded_count": float(recorded[day].sum()),
                "recorded_total": float(recorded[: day + 1].sum()),
            }
        )

    if isinstance(predictor, LightGBMPredictor):
        logger.info("Feedback setting %s: the learned forecaster was trained %d times over %d days.",
                    setting, predictor.trainings, city.n_days - history_days)
    return pl.DataFrame(rows), cell_frame(city, setting, history_days, np.array(shares), recorded[history_days:])


def record_day(setting: str, discovered: np.ndarray, reported: np.ndarray, patrol_share: np.ndarray) -> np.ndarray:
    """Return the counts a setting adds to the record for one day."""
    if setting == "discovered":
        return discovered.astype(np.float64)
    if setting == "reported":
        return reported.astype(np.float64)

    # A cell with a discovery had a positive discovery probability, so its patrol share is > 0.
    weights = np.divide(1.0, patrol_share, out=np.zeros_like(patrol_share), where=patrol_share > 0)
    return discovered * weights


def cell_frame(
    city: SimulatedCity, setting: str, history_days: int, patrol_shares: np.ndarray, recorded: np.ndarray
) -> pl.DataFrame:
    """Return one row per simulated day and cell with its patrol share, true share and recorded count."""
    n_days, n_cells = patrol_shares.shape
    return pl.DataFrame(
        {
            "day": np.repeat(np.arange(history_days, history_days + n_days), n_cells),
            "setting": [setting] * (n_days * n_cells),
            "cell_id": np.tile(np.array(city.cell_ids), n_days),
            "patrol_share": patrol_shares.reshape(-1),
            "true_share": np.tile(city.true_share, n_days),
            "recorded_count": recorded.reshape(-1),
        }
    )


@dataclass(frozen=True)
class LumIsaacResult:
    """Outputs of `lum_isaac_check`.

    `cells` has one row per cell: cell_id, group, true_rate,
    reporting_probability, recorded_count, learned_rate (the rate model's
    expected count per day) and learned_rank (1 is the highest). The
    correlations are Spearman's rank correlation of learned_rate with the
    reporting probability and with the true rate. The group ratios divide the
    mean of the first group by the mean of the second.
    """

    cells: pl.DataFrame
    spearman_recording: float
    spearman_true: float
    learned_ratio: float
    true_ratio: float
    groups: tuple[str, str]


def lum_isaac_check(
    seed: int,
    *,
    n_cells: int = 40,
    n_days: int = 182,
    mean_daily_rate: float = 4.0,
    true_rate_spread: float = 0.05,
    reporting_ranges: dict[str, tuple[float, float]] | None = None,
) -> LumIsaacResult:
    """Fit a rate model to records skewed by area and compare its ranking with recording and offending.

    True rates are `mean_daily_rate` times a factor drawn uniformly from
    [1 - spread, 1 + spread], so offending is near-uniform. Half of the cells
    belong to each of two groups, and each cell's reporting probability is
    drawn uniformly from its group's range in `reporting_ranges` (default
    0.6 to 0.9 for "group_a" and 0.15 to 0.45 for "group_b"). A
    `CompstatBaseline` (mean count per cell and day of week, UTC) is fitted on
    all simulated hours and predicts the following week.
    """
    check_positive_int(n_cells, "n_cells", minimum=4)
    if not 0 <= true_rate_spread < 1:
        raise ValueError(f"true_rate_spread must be in [0, 1), got {true_rate_spread!r}.")
    ranges = reporting_ranges or {"group_a": (0.6, 0.9), "group_b": (0.15, 0.45)}
    if len(ranges) != 2:
        raise ValueError(f"reporting_ranges must name exactly two groups, got {sorted(ranges)}.")

    rng = np.random.default_rng(seed)
    group = np.array([name for name in ranges for _ in range(n_cells // 2)] + [list(ranges)[-1]] * (n_cells % 2))
    reporting = np.array([rng.uniform(*ranges[name]) for name in group])
    true_rate = mean_daily_rate * rng.uniform(1 - true_rate_spread, 1 + true_rate_spread, size=n_cells)

    city = simulate_city(
        n_cells, n_days, seed + 1, true_rate=true_rate, reporting_probability=reporting, group=group
    )
    learned_rate = learned_daily_rates(city, seed + 2)
    return summarize_lum_isaac(city, learned_rate, tuple(ranges))


def learned_daily_rates(city: SimulatedCity, seed: int) -> np.ndarray:
    """Fit `CompstatBaseline` on the city's hourly records and return each cell's predicted count per day."""
    history = city.hourly_reported(seed)
    cutoff = city.start + timedelta(days=city.n_days)
    model = CompstatBaseline(years=1, time_zone="UTC", period="day_of_week").fit(history, cutoff)

    week = pl.datetime_range(cutoff, cutoff + timedelta(hours=7 * 24 - 1), "1h", eager=True, time_zone="UTC")
    targets = pl.DataFrame({"cell_id": city.cell_ids}).join(pl.DataFrame({"hour": week}), how="cross")
    weekly = model.predict(targets).group_by("cell_id").agg(pl.col("risk").sum())
    by_cell = dict(weekly.iter_rows())
    return np.array([by_cell[cell] / 7.0 for cell in city.cell_ids])


def summarize_lum_isaac(city: SimulatedCity, learned_rate: np.ndarray, groups: tuple[str, str]) -> LumIsaacResult:
    """Correlate the learned rates with recording and with offending and compare the two groups."""
    order = np.argsort(-learned_rate, kind="stable")
    rank = np.empty(city.n_cells, dtype=np.int64)
    rank[order] = np.arange(1, city.n_cells + 1)

    cells = pl.DataFrame(
        {
            "cell_id": city.cell_ids,
            "group": city.group,
            "true_rate": city.true_rate,
            "reporting_probability": city.reporting_probability,
            "recorded_count": city.reported_counts.sum(axis=0),
            "learned_rate": learned_rate,
            "learned_rank": rank,
        }
    )
    first, second = (city.group == groups[0]), (city.group == groups[1])
    result = LumIsaacResult(
        cells=cells,
        spearman_recording=float(spearmanr(learned_rate, city.reporting_probability).statistic),
        spearman_true=float(spearmanr(learned_rate, city.true_rate).statistic),
        learned_ratio=float(learned_rate[first].mean() / learned_rate[second].mean()),
        true_ratio=float(city.true_rate[first].mean() / city.true_rate[second].mean()),
        groups=groups,
    )
    logger.info(
        "Lum-Isaac check on %d cells: Spearman %.3f with recording, %.3f with true rates; "
        "%s/%s learned rate ratio %.2f against a true ratio of %.2f.",
        city.n_cells, result.spearman_recording, result.spearman_true, groups[0], groups[1],
        result.learned_ratio, result.true_ratio,
    )
    return result


def check_feedback_parameters(
    city: SimulatedCity,
    history_days: int,
    window_days: int | None,
    detection_rate: float,
    exploration: float,
    settings: tuple[str, ...],
    forecaster: str,
    retrain_days: int,
) -> None:
    """Raise ValueError for a parameter of `simulate_feedback` outside its range."""
    check_positive_int(history_days, "history_days")
    if history_days >= city.n_days:
        raise ValueError(
            f"history_days ({history_days}) must be less than the city's n_days ({city.n_days}), "
            "so that some days are simulated. Simulate a longer city or shorten the history."
        )
    if window_days is not None:
        check_positive_int(window_days, "window_days")
    if not 0 < detection_rate <= 1:
        raise ValueError(f"detection_rate must be in (0, 1], got {detection_rate!r}.")
    if not 0 <= exploration < 1:
        raise ValueError(f"exploration must be in [0, 1), got {exploration!r}.")

    unknown = [name for name in settings if name not in FEEDBACK_SETTINGS]
    if unknown or not settings:
        raise ValueError(f"settings must be a non-empty subset of {list(FEEDBACK_SETTINGS)}, got {list(settings)}.")

    if forecaster not in FORECASTERS:
        raise ValueError(f"forecaster must be one of {list(FORECASTERS)}, got {forecaster!r}.")
    check_positive_int(retrain_days, "retrain_days")


def check_positive_int(value: int, name: str, minimum: int = 1) -> None:
    """Raise ValueError unless `value` is a whole number >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}.")


def per_cell_array(value: float | np.ndarray, n_cells: int, name: str) -> np.ndarray:
    """Broadcast a scalar to one value per cell, or check that an array has one value per cell."""
    array = np.asarray(value)
    if array.ndim == 0:
        return np.full(n_cells, array.item())
    if array.shape != (n_cells,):
        raise ValueError(f"{name} must be a scalar or have one value per cell ({n_cells}), got shape {array.shape}.")
    return array


def check_probabilities(values: np.ndarray, name: str) -> None:
    """Raise ValueError unless every value is a probability in [0, 1]."""
    bad = np.flatnonzero(~((values >= 0) & (values <= 1)))
    if bad.size:
        raise ValueError(f"{name} must be in [0, 1], got {values[bad[0]]!r} for cell {bad[0]}.")


def check_hour_profile(profile: np.ndarray) -> np.ndarray:
    """Return `profile` as 24 float shares after checking that they are >= 0 and sum to 1."""
    shares = np.asarray(profile, dtype=np.float64)
    if shares.shape != (24,) or np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
        raise ValueError("hour_profile must have 24 shares >= 0 (UTC hours 0 to 23) that sum to 1.")
    return shares
