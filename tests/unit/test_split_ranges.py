"""How a backfill range is cut into pieces for parallel processes."""

from datetime import datetime, timedelta, timezone

import pytest

from orchestration.scale_out import (
    backfill_run_config,
    hour_keys,
    parse_key,
    split_at_midnights,
    split_by_hours,
)

UTC = timezone.utc


def test_split_week_at_nearest_midnight() -> None:
    start = datetime(2023, 3, 25, tzinfo=UTC)

    pieces = split_at_midnights(start, start + timedelta(days=7), 2)

    assert pieces == [(start, datetime(2023, 3, 29, tzinfo=UTC)), (datetime(2023, 3, 29, tzinfo=UTC),
                                                                   datetime(2023, 4, 1, tzinfo=UTC))]


def test_split_pieces_cover_range_exactly() -> None:
    start = datetime(2017, 1, 1, 5, tzinfo=UTC)
    end = datetime(2017, 12, 31, 19, tzinfo=UTC)

    pieces = split_at_midnights(start, end, 8)

    assert len(pieces) == 8
    assert pieces[0][0] == start
    assert pieces[-1][1] == end
    assert all(left[1] == right[0] for left, right in zip(pieces, pieces[1:]))
    assert all(piece_start.hour == 0 for piece_start, _ in pieces[1:])


def test_split_short_range_one_piece() -> None:
    start = datetime(2023, 4, 1, 3, tzinfo=UTC)

    assert split_at_midnights(start, start + timedelta(hours=20), 4) == [(start, start + timedelta(hours=20))]


def test_split_more_pieces_than_days() -> None:
    start = datetime(2023, 4, 1, tzinfo=UTC)

    pieces = split_at_midnights(start, start + timedelta(days=3), 10)

    assert [piece_start.day for piece_start, _ in pieces] == [1, 2, 3]


def test_split_zero_pieces_rejected() -> None:
    with pytest.raises(ValueError, match="pieces is 0"):
        split_at_midnights(datetime(2023, 4, 1, tzinfo=UTC), datetime(2023, 4, 2, tzinfo=UTC), 0)


def test_hour_keys_round_trip() -> None:
    keys = hour_keys(parse_key("2023-03-12-06:00"), parse_key("2023-03-12-09:00"))

    assert keys == ["2023-03-12-06:00", "2023-03-12-07:00", "2023-03-12-08:00"]


def test_parse_key_rejects_date() -> None:
    with pytest.raises(ValueError, match="'2023-03-12' is not an hourly key"):
        parse_key("2023-03-12")


def test_run_config_pieces_and_processes() -> None:
    config = backfill_run_config("2023-04-01-00:00", "2023-04-07-23:00", 3, "scores_backfill_job")

    assert config["execution"]["config"]["max_concurrent"] == 3
    assert config["ops"]["plan_score_pieces"]["config"]["pieces"] == 3
    assert config["ops"]["publish_score_pieces"]["config"]["last_partition"] == "2023-04-07-23:00"


def test_split_by_hours_balances_pieces() -> None:
    start = datetime(2023, 4, 1, tzinfo=UTC)

    pieces = split_by_hours(start, start + timedelta(hours=72), 2)

    assert pieces == [(start, start + timedelta(hours=36)), (start + timedelta(hours=36), start + timedelta(hours=72))]


def test_split_by_hours_uneven_and_short() -> None:
    start = datetime(2023, 4, 1, 5, tzinfo=UTC)

    uneven = split_by_hours(start, start + timedelta(hours=7), 3)
    short = split_by_hours(start, start + timedelta(hours=2), 4)

    assert [int((end - begin) / timedelta(hours=1)) for begin, end in uneven] == [2, 2, 3]
    assert short == [(start, start + timedelta(hours=1)), (start + timedelta(hours=1), start + timedelta(hours=2))]
