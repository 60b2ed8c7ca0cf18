"""Unit tests for ml.baselines: CompStat, naive, random and oracle baselines and the factory."""

import logging
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from ml.baselines import (
    BASELINE_NAMES,
    CompstatBaseline,
    NaiveBaseline,
    OracleBaseline,
    RandomBaseline,
    RiskBaseline,
    hour_of_week_from_clock,
    local_hour_of_week,
    make_baseline,
)
from ml.hotspots import ProspectiveHotspot, RetrospectiveHotspot
from ml.metrics import pai_at_area_coverage, roc_auc
from ml.sepp import SeppBaseline
from tests.unit.point_processes import cell_hour_targets, complete_spine, grid_cells, observed_counts

UTC = timezone.utc

# Monday 2017-10-02 00:00 CDT, the first hour after a cutoff at local midnight.
CUTOFF = datetime(2017, 10, 2, 5, tzinfo=UTC)


def utc_hours(start: datetime, end: datetime) -> pl.Series:
    """Return the UTC hour starts from `start` up to but excluding `end`."""
    return pl.datetime_range(start, end - timedelta(hours=1), "1h", eager=True, time_zone="UTC").alias("hour")


def spine(cells: list[str], start: datetime, end: datetime) -> pl.DataFrame:
    """Return a complete cell-hour history with zero counts."""
    frame = pl.DataFrame({"cell_id": cells}).join(pl.DataFrame(utc_hours(start, end)), how="cross")
    return frame.with_columns(crime_count=pl.lit(0, dtype=pl.Int64))


def set_count(history: pl.DataFrame, cell_id: str, hour: datetime, count: int) -> pl.DataFrame:
    """Return `history` with the count of one cell-hour replaced."""
    is_row = (pl.col("cell_id") == cell_id) & (pl.col("hour") == hour)
    return history.with_columns(crime_count=pl.when(is_row).then(count).otherwise(pl.col("crime_count")))


def hour_of_week_at(*moments: datetime) -> list[int]:
    return local_hour_of_week(pl.Series("hour", list(moments), dtype=pl.Datetime("us", "UTC")), "America/Chicago").to_list()


# hour of week


def test_hour_of_week_monday_cdt() -> None:
    assert hour_of_week_at(datetime(2017, 10, 2, 5, tzinfo=UTC)) == [0]


def test_hour_of_week_monday_cst() -> None:
    # DST ended on Sunday 2017-11-05, so Monday 00:00 local is 06:00 UTC.
    assert hour_of_week_at(datetime(2017, 11, 6, 6, tzinfo=UTC)) == [0]


def test_hour_of_week_repeated_autumn_hour() -> None:
    # 06:00 and 07:00 UTC on 2017-11-05 are both Sunday 01:00 local (CDT, then CST).
    sunday_1am = 6 * 24 + 1

    assert hour_of_week_at(datetime(2017, 11, 5, 6, tzinfo=UTC), datetime(2017, 11, 5, 7, tzinfo=UTC)) == [
        sunday_1am,
        sunday_1am,
    ]


def test_hour_of_week_skipped_spring_hour() -> None:
    # On Sunday 2017-03-12 local time jumps from 01:59 CST to 03:00 CDT.
    assert hour_of_week_at(datetime(2017, 3, 12, 7, tzinfo=UTC), datetime(2017, 3, 12, 8, tzinfo=UTC)) == [
        6 * 24 + 1,
        6 * 24 + 3,
    ]


def test_hour_of_week_gather_path_matches_clock() -> None:
    # More rows than hours in their span, in shuffled order, takes the lookup-and-gather path.
    hours = utc_hours(datetime(2016, 12, 25, tzinfo=UTC), datetime(2018, 1, 8, tzinfo=UTC))
    repeated = pl.concat([hours, hours]).shuffle(seed=3)

    fast = local_hour_of_week(repeated, "America/Chicago")
    direct = hour_of_week_from_clock(repeated, "America/Chicago")

    assert fast.to_list() == direct.to_list()
    assert fast.min() == 0
    assert fast.max() == 167


# fit


def test_compstat_is_risk_baseline() -> None:
    model = CompstatBaseline()

    assert isinstance(model, RiskBaseline)
    assert model.name == "compstat"


def test_compstat_fit_exact_means() -> None:
    history = spine(["A", "B"], CUTOFF - timedelta(weeks=3), CUTOFF)
    monday_midnight = [CUTOFF - timedelta(weeks=week) for week in (1, 2, 3)]
    history = set_count(history, "A", monday_midnight[0], 3)
    history = set_count(history, "A", monday_midnight[1], 2)
    history = set_count(history, "B", monday_midnight[2] + timedelta(hours=9), 6)

    model = CompstatBaseline(years=1).fit(history, CUTOFF)
    means = {
        (row["cell_id"], row["hour_of_week"]): row["risk"]
        for row in model.hour_of_week_means.iter_rows(named=True)
    }

    assert means[("A", 0)] == pytest.approx(5 / 3)
    assert means[("B", 9)] == pytest.approx(2.0)
    assert means[("A", 9)] == 0.0
    assert len(means) == 2 * 168


def test_compstat_divides_by_rows_present() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=3), CUTOFF)
    history = set_count(history, "A", CUTOFF - timedelta(weeks=1), 3)
    history = set_count(history, "A", CUTOFF - timedelta(weeks=2), 1)
    history = history.filter(pl.col("hour") != CUTOFF - timedelta(weeks=3))

    model = CompstatBaseline(years=1).fit(history, CUTOFF)
    risk = model.predict(pl.DataFrame({"cell_id": ["A"], "hour": [CUTOFF]}))["risk"]

    # Two Monday 00:00 rows remain, so the mean is (3 + 1) / 2, not (3 + 1) / 3.
    assert risk.to_list() == [2.0]


def test_compstat_pattern_survives_dst_change() -> None:
    # One crime every Monday 09:00 local from August to December, across the November DST change.
    start = datetime(2017, 8, 7, 5, tzinfo=UTC)
    cutoff = datetime(2017, 12, 4, 6, tzinfo=UTC)
    history = spine(["A"], start, cutoff)
    is_monday_9am = local_hour_of_week(history["hour"], "America/Chicago") == 9
    history = history.with_columns(crime_count=pl.when(is_monday_9am).then(1).otherwise(0).cast(pl.Int64))

    model = CompstatBaseline(years=1).fit(history, cutoff)
    targets = pl.DataFrame(
        {
            "cell_id": ["A", "A", "A"],
            "hour": [
                datetime(2017, 12, 4, 15, tzinfo=UTC),  # Monday 09:00 CST
                datetime(2018, 7, 2, 14, tzinfo=UTC),  # Monday 09:00 CDT
                datetime(2018, 7, 2, 15, tzinfo=UTC),  # Monday 10:00 CDT
            ],
        }
    )

    assert model.predict(targets)["risk"].to_list() == [1.0, 1.0, 0.0]


def test_compstat_cutoff_no_leakage() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=2), CUTOFF + timedelta(weeks=2))
    history = set_count(history, "A", CUTOFF - timedelta(weeks=1), 4)
    targets = pl.DataFrame({"cell_id": ["A"] * 168, "hour": utc_hours(CUTOFF, CUTOFF + timedelta(weeks=1))})
    before = CompstatBaseline(years=1).fit(history, CUTOFF)

    changed = set_count(history, "A", CUTOFF, 50)
    changed = set_count(changed, "A", CUTOFF + timedelta(weeks=1), 70)
    after = CompstatBaseline(years=1).fit(changed, CUTOFF)

    assert after.hour_of_week_means.equals(before.hour_of_week_means)
    assert after.predict(targets).equals(before.predict(targets))
    assert after.predict(targets)["risk"][0] == 2.0
    assert after.history_end == CUTOFF


def test_compstat_window_drops_old_rows() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=60), CUTOFF)
    history = set_count(history, "A", CUTOFF - timedelta(weeks=55), 100)
    history = set_count(history, "A", CUTOFF - timedelta(weeks=1), 52)

    model = CompstatBaseline(years=1).fit(history, CUTOFF)

    # The 1-year window starts 2016-10-02 00:00 local, a Sunday, so it contains 52 Monday 00:00 hours.
    assert model.history_start == datetime(2016, 10, 2, 5, tzinfo=UTC)
    assert model.predict(pl.DataFrame({"cell_id": ["A"], "hour": [CUTOFF]}))["risk"].to_list() == [1.0]


def test_compstat_short_history_records_span(caplog: pytest.LogCaptureFixture) -> None:
    start = datetime(2017, 9, 4, 5, tzinfo=UTC)  # Monday 2017-09-04 00:00 CDT, 4 weeks before the cutoff

    with caplog.at_level(logging.WARNING, logger="ml.baselines"):
        model = CompstatBaseline(years=3).fit(spine(["A"], start, CUTOFF), CUTOFF)

    assert model.history_start == start
    assert model.history_end == CUTOFF
    assert model.history_weeks == pytest.approx(4.0)
    assert model.description == (
        "mean count per cell and local hour of week (America/Chicago) over 2017-09-04 05:00 to 2017-10-02 05:00 UTC "
        "(4.0 weeks), less than the 3 years (156.6 weeks) requested because the data starts later"
    )
    assert "later than the 3-year window start" in caplog.text


def test_compstat_full_window_description() -> None:
    cutoff = datetime(2017, 10, 1, 5, tzinfo=UTC)
    history = spine(["A"], datetime(2014, 9, 1, 5, tzinfo=UTC), cutoff)

    model = CompstatBaseline(years=3).fit(history, cutoff)

    assert model.history_start == datetime(2014, 10, 1, 5, tzinfo=UTC)
    assert model.description.endswith("over 2014-10-01 05:00 to 2017-10-01 05:00 UTC (156.6 weeks)")


# predict


def test_compstat_predict_keeps_row_order() -> None:
    history = spine(["A", "B"], CUTOFF - timedelta(weeks=1), CUTOFF)
    history = set_count(history, "A", CUTOFF - timedelta(weeks=1) + timedelta(hours=2), 3)
    history = set_count(history, "B", CUTOFF - timedelta(weeks=1) + timedelta(hours=1), 5)
    model = CompstatBaseline(years=1).fit(history, CUTOFF)

    targets = pl.DataFrame(
        {
            "cell_id": ["B", "A", "unknown", "A", "B"],
            "hour": [CUTOFF + timedelta(hours=hours) for hours in (1, 2, 2, 1, 1)],
            "row_label": ["first", "second", "third", "fourth", "fifth"],
        }
    )
    predicted = model.predict(targets)

    assert predicted.columns == ["cell_id", "hour", "row_label", "risk"]
    assert predicted.schema["risk"] == pl.Float64
    assert predicted["row_label"].to_list() == targets["row_label"].to_list()
    assert predicted["risk"].to_list() == [5.0, 3.0, 0.0, 0.0, 5.0]


def test_compstat_predict_before_fit_raises() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        CompstatBaseline().predict(pl.DataFrame({"cell_id": ["A"], "hour": [CUTOFF]}))


# input checks


def test_compstat_rejects_naive_cutoff() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=1), CUTOFF)

    with pytest.raises(ValueError, match="cutoff must be timezone-aware"):
        CompstatBaseline().fit(history, datetime(2017, 10, 2))


def test_compstat_rejects_local_time_hours() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=1), CUTOFF)
    local = history.with_columns(pl.col("hour").dt.convert_time_zone("America/Chicago"))

    with pytest.raises(ValueError, match="history.hour must be a Datetime with time_zone='UTC'"):
        CompstatBaseline().fit(local, CUTOFF)


def test_compstat_rejects_mid_hour_timestamps() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=1), CUTOFF)
    shifted = history.with_columns(pl.col("hour") + timedelta(minutes=30))

    with pytest.raises(ValueError, match="must contain hour starts"):
        CompstatBaseline().fit(shifted, CUTOFF)


def test_compstat_rejects_missing_column() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=1), CUTOFF).drop("crime_count")

    with pytest.raises(ValueError, match=r"history is missing columns \['crime_count'\]"):
        CompstatBaseline().fit(history, CUTOFF)


def test_compstat_rejects_empty_window() -> None:
    history = spine(["A"], CUTOFF, CUTOFF + timedelta(weeks=1))

    with pytest.raises(ValueError, match="history has no rows between"):
        CompstatBaseline().fit(history, CUTOFF)


@pytest.mark.parametrize(("years", "time_zone"), [(0, "America/Chicago"), (1, "Mars/Olympus_Mons")])
def test_compstat_rejects_invalid_settings(years: int, time_zone: str) -> None:
    with pytest.raises(ValueError):
        CompstatBaseline(years=years, time_zone=time_zone)


# CompStat by day of week


def test_compstat_day_name_and_kind() -> None:
    model = CompstatBaseline(period="day_of_week")

    assert model.name == "compstat_day"
    assert model.risk_kind == "rate"
    assert CompstatBaseline().risk_kind == "rate"


def test_compstat_day_exact_means() -> None:
    history = spine(["A", "B"], CUTOFF - timedelta(weeks=3), CUTOFF)
    history = set_count(history, "A", CUTOFF - timedelta(weeks=1), 3)  # Monday 00:00
    history = set_count(history, "A", CUTOFF - timedelta(weeks=2) + timedelta(hours=13), 2)  # Monday 13:00
    history = set_count(history, "A", CUTOFF - timedelta(weeks=2) + timedelta(hours=14), 1)  # Monday 14:00
    history = set_count(history, "B", CUTOFF - timedelta(days=1), 6)  # Sunday 00:00

    model = CompstatBaseline(years=1, period="day_of_week").fit(history, CUTOFF)
    means = {(row["cell_id"], row["day_of_week"]): row["risk"] for row in model.day_of_week_means.iter_rows(named=True)}

    # Cell A has 6 crimes on 3 Mondays, a mean of 2 a day, or 2 / 24 an hour.
    assert means[("A", 0)] == pytest.approx(2 / 24)
    assert means[("B", 6)] == pytest.approx(2 / 24)
    assert means[("A", 1)] == 0.0
    assert len(means) == 2 * 7
    assert model.hour_of_week_means is None


def test_compstat_day_same_risk_all_day() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=2), CUTOFF)
    history = set_count(history, "A", CUTOFF - timedelta(weeks=1) + timedelta(hours=20), 12)
    model = CompstatBaseline(years=1, period="day_of_week").fit(history, CUTOFF)

    targets = pl.DataFrame({"cell_id": ["A"] * 25, "hour": utc_hours(CUTOFF, CUTOFF + timedelta(hours=25))})
    risk = model.predict(targets)["risk"].to_list()

    # 12 crimes over two Mondays is 6 a day, 0.25 an hour; Tuesday had none.
    assert risk[:24] == [0.25] * 24
    assert risk[24] == 0.0


def test_compstat_day_description() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=4), CUTOFF)

    model = CompstatBaseline(years=1, period="day_of_week").fit(history, CUTOFF)

    assert model.description.startswith("mean count per hour per cell and local day of week (America/Chicago)")


def test_compstat_rejects_unknown_period() -> None:
    with pytest.raises(ValueError, match=r"period must be one of \['hour_of_week', 'day_of_week'\], got 'month'"):
        CompstatBaseline(period="month")


# naive


def test_naive_exact_last_week_rate() -> None:
    history = spine(["A", "B"], CUTOFF - timedelta(weeks=2), CUTOFF + timedelta(hours=5))
    history = set_count(history, "A", CUTOFF - timedelta(hours=1), 3)
    history = set_count(history, "A", CUTOFF - timedelta(hours=168), 4)
    history = set_count(history, "A", CUTOFF - timedelta(hours=169), 100)  # before the period
    history = set_count(history, "B", CUTOFF, 50)  # at the cutoff, not used

    model = NaiveBaseline().fit(history, CUTOFF)
    targets = pl.DataFrame({"cell_id": ["B", "A", "C"], "hour": [CUTOFF, CUTOFF + timedelta(hours=3), CUTOFF]})
    predicted = model.predict(targets)

    assert predicted["risk"].to_list() == [0.0, 7 / 168, 0.0]
    assert model.name == "naive"
    assert model.risk_kind == "rate"


def test_naive_sparse_history_matches_spine() -> None:
    history = spine(["A", "B"], CUTOFF - timedelta(hours=24), CUTOFF)
    history = set_count(history, "A", CUTOFF - timedelta(hours=2), 2)
    history = set_count(history, "B", CUTOFF - timedelta(hours=20), 1)
    sparse = history.filter(pl.col("crime_count") > 0)
    targets = pl.DataFrame({"cell_id": ["A", "B"], "hour": [CUTOFF, CUTOFF]})

    from_spine = NaiveBaseline(period_hours=24).fit(history, CUTOFF).predict(targets)
    from_sparse = NaiveBaseline(period_hours=24).fit(sparse, CUTOFF).predict(targets)

    assert from_sparse.equals(from_spine)
    assert from_spine["risk"].to_list() == [2 / 24, 1 / 24]


def test_naive_rejects_empty_period() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=3), CUTOFF - timedelta(weeks=2))

    with pytest.raises(ValueError, match="history has no rows between .* Pass history that covers the 168 hours"):
        NaiveBaseline().fit(history, CUTOFF)


@pytest.mark.parametrize("period_hours", [0, -5, 1.5, True])
def test_naive_rejects_invalid_period(period_hours: object) -> None:
    with pytest.raises(ValueError, match="period_hours must be a positive whole number of hours"):
        NaiveBaseline(period_hours=period_hours)


def test_naive_rejects_naive_datetimes() -> None:
    history = spine(["A"], CUTOFF - timedelta(weeks=1), CUTOFF).with_columns(pl.col("hour").dt.replace_time_zone(None))

    with pytest.raises(ValueError, match="history.hour must be a Datetime with time_zone='UTC'"):
        NaiveBaseline().fit(history, CUTOFF)


# random and oracle


def test_random_is_uniform_and_reproducible() -> None:
    targets = pl.DataFrame({"cell_id": [f"c{i}" for i in range(20_000)], "hour": [CUTOFF] * 20_000})
    history = spine(["A"], CUTOFF - timedelta(hours=1), CUTOFF)

    first = RandomBaseline(seed=7).fit(history, CUTOFF).predict(targets)["risk"]
    again = RandomBaseline(seed=7).fit(history, CUTOFF).predict(targets)["risk"]
    next_day = RandomBaseline(seed=7).fit(history, CUTOFF + timedelta(days=1)).predict(targets)["risk"]

    assert first.equals(again)
    assert not first.equals(next_day)
    assert first.min() >= 0.0
    assert first.max() < 1.0
    assert first.mean() == pytest.approx(0.5, abs=0.01)
    assert RandomBaseline().risk_kind == "score"


def test_random_auc_near_half() -> None:
    rng = np.random.default_rng(11)
    n_rows = 50_000
    targets = pl.DataFrame({"cell_id": [f"c{i % 500}" for i in range(n_rows)], "hour": [CUTOFF] * n_rows})
    outcome = rng.random(n_rows) < 0.1

    risk = RandomBaseline(seed=3).fit(spine(["A"], CUTOFF - timedelta(hours=1), CUTOFF), CUTOFF).predict(targets)["risk"]

    assert roc_auc(outcome, risk.to_numpy()) == pytest.approx(0.5, abs=0.015)


def test_oracle_scores_observed_counts() -> None:
    history = spine(["A", "B"], CUTOFF - timedelta(hours=2), CUTOFF + timedelta(hours=2))
    history = set_count(history, "A", CUTOFF + timedelta(hours=1), 2)
    history = set_count(history, "B", CUTOFF, 1)
    sparse = history.filter(pl.col("crime_count") > 0)
    targets = pl.DataFrame(
        {"cell_id": ["A", "A", "B", "C"], "hour": [CUTOFF, CUTOFF + timedelta(hours=1), CUTOFF, CUTOFF]}
    )

    model = OracleBaseline().fit(sparse, CUTOFF)

    assert model.predict(targets)["risk"].to_list() == [0.0, 2.0, 1.0, 0.0]
    assert model.name == "oracle"
    assert model.risk_kind == "score"


def test_oracle_hit_rate_is_one() -> None:
    cells = grid_cells(10, 500.0)
    cell_ids = cells["cell_id"].to_list()
    rng = np.random.default_rng(5)
    history = complete_spine(cell_ids, pl.DataFrame(schema={"cell_id": pl.String, "hour": pl.Datetime("us", "UTC"),
                                                            "crime_count": pl.Int64}), CUTOFF, CUTOFF + timedelta(hours=24))
    history = history.with_columns(crime_count=pl.Series(rng.poisson(0.01, history.height)))
    targets = cell_hour_targets(cell_ids, CUTOFF, 24)
    counts = observed_counts(targets, history)

    risk = OracleBaseline().fit(history, CUTOFF).predict(targets)["risk"].to_numpy()
    hours = targets["hour"].dt.epoch("s").to_numpy()
    area = np.full(targets.height, 0.25)
    result = pai_at_area_coverage(risk, counts, area, hours, coverage=0.05)

    # At most 5 of 100 cells are hit in any hour here, so the top 5% of the area contains every crime.
    assert counts.sum() > 10
    assert int(np.bincount(np.unique(hours, return_inverse=True)[1], weights=counts > 0).max()) <= 5
    assert result.hit_rate == 1.0


# factory


def test_factory_builds_every_name() -> None:
    cells = grid_cells(3, 500.0)

    built = {name: make_baseline(name, cells=cells, time_zone="America/New_York", seed=4) for name in BASELINE_NAMES}

    assert [model.name for model in built.values()] == list(BASELINE_NAMES)
    assert isinstance(built["compstat"], CompstatBaseline)
    assert built["compstat_day"].period == "day_of_week"
    assert built["compstat"].time_zone == "America/New_York"
    assert isinstance(built["retrospective_hotspot"], RetrospectiveHotspot)
    assert isinstance(built["prospective_hotspot"], ProspectiveHotspot)
    assert isinstance(built["sepp"], SeppBaseline)
    assert built["random"].seed == 4
    assert {model.risk_kind for name, model in built.items() if name not in ("random", "oracle")} == {"rate"}
    assert all(isinstance(model, RiskBaseline) for model in built.values())


def test_factory_passes_parameters() -> None:
    model = make_baseline("naive", period_hours=24)
    hotspot = make_baseline("prospective_hotspot", cells=grid_cells(2, 100.0), bandwidth_m=300.0, weeks=4)

    assert model.period_hours == 24
    assert hotspot.bandwidth_m == 300.0
    assert hotspot.weeks == 4


def test_factory_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="Unknown baseline 'kde'. Choose one of"):
        make_baseline("kde")


def test_factory_rejects_unknown_parameter() -> None:
    with pytest.raises(ValueError, match=r"Baseline 'naive' does not take parameters \['weeks'\]. It takes \['period_hours'\]"):
        make_baseline("naive", weeks=3)


def test_factory_rejects_fixed_parameter() -> None:
    with pytest.raises(ValueError, match=r"does not take parameters \['period'\]"):
        make_baseline("compstat", period="day_of_week")


def test_factory_hotspot_needs_cells() -> None:
    with pytest.raises(ValueError, match="needs cells"):
        make_baseline("retrospective_hotspot")


# stable hotspots


def test_compstat_and_naive_beat_random_on_stable_hotspots() -> None:
    cells = grid_cells(8, 500.0)
    cell_ids = cells["cell_id"].to_list()
    rng = np.random.default_rng(21)
    rate = np.where(rng.random(64) < 0.2, 0.05, 0.003)
    start = CUTOFF - timedelta(weeks=52)
    history = complete_spine(cell_ids, pl.DataFrame(schema={"cell_id": pl.String, "hour": pl.Datetime("us", "UTC"),
                                                            "crime_count": pl.Int64}), start, CUTOFF + timedelta(days=7))
    n_hours = history.height // 64
    history = history.with_columns(crime_count=pl.Series(rng.poisson(np.repeat(rate, n_hours))))
    targets = cell_hour_targets(cell_ids, CUTOFF, 168)
    outcome = observed_counts(targets, history) > 0

    aucs = {}
    for name in ("compstat", "compstat_day", "naive", "random"):
        model = make_baseline(name, seed=1).fit(history, CUTOFF)
        aucs[name] = roc_auc(outcome, model.predict(targets)["risk"].to_numpy())

    assert aucs["random"] == pytest.approx(0.5, abs=0.05)
    assert aucs["compstat_day"] > 0.75
    assert aucs["naive"] > 0.75
    assert aucs["compstat"] > 0.7


@pytest.mark.parametrize("period", ["hour_of_week", "day_of_week"])
def test_compstat_streaming_fit_equals_copy(period: str) -> None:
    """The streamed fit gives the same means as adding a period column to a copy of the window and averaging."""
    hours = pl.datetime_range(datetime(2014, 1, 1, tzinfo=timezone.utc), datetime(2017, 12, 1, tzinfo=timezone.utc),
                              "1h", eager=True, time_zone="UTC")
    spine = pl.DataFrame({"hour": hours}).join(pl.DataFrame({"cell_id": [f"c{i}" for i in range(6)]}), how="cross")
    rng = np.random.default_rng(5)
    spine = spine.select("cell_id", "hour", crime_count=pl.Series(rng.poisson(0.05, spine.height)).cast(pl.Int64))
    cutoff = datetime(2017, 11, 5, 8, tzinfo=timezone.utc)

    baseline = CompstatBaseline(years=3, time_zone="America/Chicago", period=period).fit(spine, cutoff)

    window = spine.filter((pl.col("hour") >= baseline.history_start) & (pl.col("hour") < cutoff))
    expected = (window.with_columns(baseline.local_period(window["hour"]))
                .group_by("cell_id", period)
                .agg(crime_sum=pl.col("crime_count").sum(), n_hours=pl.len())
                .select("cell_id", period, risk=pl.col("crime_sum").cast(pl.Float64) / pl.col("n_hours"))
                .sort("cell_id", period))
    assert baseline.period_means.height == 6 * (168 if period == "hour_of_week" else 7)
    assert baseline.period_means.equals(expected)
    assert baseline.history_end == cutoff
