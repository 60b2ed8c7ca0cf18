"""Unit tests for ml.baselines: the CompStat hour-of-week average on small hand-built histories."""

import logging
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from ml.baselines import CompstatBaseline, RiskBaseline, hour_of_week_from_clock, local_hour_of_week

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
