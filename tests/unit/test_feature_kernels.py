"""The array kernels of the fast feature build against plain numpy formulas, compared exactly.

Each kernel in ``ml.features`` is written for speed (slice loops instead of ``cumsum`` along the
hour axis, one transpose per target, vectorised dates). These tests compute the same values the
plain way and require bit-equal results, including int16 wrap-around and float32 summation order.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import sparse

from ml.feature_registry import CRIME_LAG_DAYS, FeatureLayout
from ml.features import (
    LOOKBACK_HOURS,
    WEATHER_LOOKBACK_HOURS,
    FeatureInputs,
    build_cell_hour_features,
    history_incomplete,
    hours_since_last,
    neighbour_matrix,
    neighbour_means,
    prefix_sums,
    scatter_add,
    transpose,
    window_sums,
)

UTC = timezone.utc
NO_EVENT = -(10**9)


def plain_window_sums(array: np.ndarray, window: int, first_output: int) -> np.ndarray:
    """Trailing sums with an int64 ``cumsum``, cast to int32 as the int32 prefix sums wrap."""
    prefix = np.concatenate([np.zeros((1, *array.shape[1:]), dtype=np.int64), np.cumsum(array, axis=0)])
    rows = np.arange(first_output, array.shape[0])
    return (prefix[rows] - prefix[np.maximum(rows - window, 0)]).astype(np.int32)


def plain_hours_since(array: np.ndarray, first_output: int, cap: int) -> np.ndarray:
    """Hours since the last positive row with one ``np.maximum.accumulate`` over int64 indices."""
    n_rows = array.shape[0]
    column = (-1, *([1] * (array.ndim - 1)))
    index = np.where(array > 0, np.arange(n_rows).reshape(column), NO_EVENT)
    last_at_or_before = np.concatenate([np.full((1, *array.shape[1:]), NO_EVENT),
                                        np.maximum.accumulate(index, axis=0)])
    rows = np.arange(first_output, n_rows)
    last_before = last_at_or_before[rows]
    return np.minimum(rows.reshape(column) - last_before, cap).astype(np.float32)


def test_scatter_add_matches_add_at() -> None:
    """Repeated positions add up, and int64 values wrap into int32 as ``np.add.at`` wraps them."""
    rng = np.random.default_rng(2)
    positions = (rng.integers(0, 3, 500), rng.integers(0, 40, 500), rng.integers(0, 5, 500))
    values = rng.integers(1, 4, 500).astype(np.int64)
    values[:2] = 2**31 + 7
    array = np.zeros((3, 40, 5), dtype=np.int32)
    expected = np.zeros((3, 40, 5), dtype=np.int32)

    scatter_add(array, positions, values)
    np.add.at(expected, positions, values)

    np.testing.assert_array_equal(array, expected)
    assert int(array.sum(dtype=np.int64)) != int(values.sum())


@pytest.mark.parametrize(("window", "first_output"), [(24, 30), (30, 30), (48, 10), (1, 0)])
def test_window_sums_match_cumsum(window: int, first_output: int) -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 3, size=(60, 7)).astype(np.int32)

    sums = window_sums(prefix_sums(counts), window, first_output)

    assert sums.dtype == np.int32
    np.testing.assert_array_equal(sums, plain_window_sums(counts, window, first_output))


def test_window_sums_wrap_like_astype() -> None:
    """A sum beyond the int16 range is cast as ``astype(np.int16)`` casts it, not clipped."""
    counts = np.full((10, 3), 20_000, dtype=np.int32)

    sums = window_sums(prefix_sums(counts), 3, 5, np.int16)

    assert sums.dtype == np.int16
    np.testing.assert_array_equal(sums, plain_window_sums(counts, 3, 5).astype(np.int16))
    assert int(sums[0, 0]) == 60_000 - 65_536


def test_prefix_sums_along_middle_axis() -> None:
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 4, size=(3, 50, 6)).astype(np.int32)

    prefix = prefix_sums(counts, axis=1)

    assert prefix.shape == (3, 51, 6)
    np.testing.assert_array_equal(prefix[:, 0], 0)
    np.testing.assert_array_equal(prefix[:, 1:], np.cumsum(counts, axis=1))


@pytest.mark.parametrize("first_output", [0, 1, 12, 40])
def test_hours_since_matches_accumulate(first_output: int) -> None:
    rng = np.random.default_rng(5)
    counts = (rng.random((48, 9)) < 0.08).astype(np.int32)
    counts[0, 0] = 1
    counts[:, 1] = 0
    counts[-1, 2] = 1

    since = hours_since_last(counts, first_output, cap=20)

    assert since.dtype == np.float32
    np.testing.assert_array_equal(since, plain_hours_since(counts, first_output, cap=20))
    assert since[:, 1].max() == 20


@pytest.mark.parametrize("first_output", [0, 1, 30])
def test_hours_since_of_one_series(first_output: int) -> None:
    rng = np.random.default_rng(6)
    wet = rng.random(60) < 0.1
    wet[0] = True

    since = hours_since_last(wet, first_output, cap=15)

    np.testing.assert_array_equal(since, plain_hours_since(wet.astype(np.int8), first_output, cap=15))


def grid_weights(rows: int, columns: int) -> tuple[list[str], sparse.csr_matrix, np.ndarray]:
    """Queen-contiguity weights of a grid plus one cell without neighbours."""
    names = {(row, column): f"G{row:02d}{column:02d}" for row in range(rows) for column in range(columns)}
    pairs = [(names[(row, column)], names[(row + dr, column + dc)])
             for row, column in names for dr in (-1, 0, 1) for dc in (-1, 0, 1)
             if (dr or dc) and (row + dr, column + dc) in names]
    cells = sorted(names.values()) + ["Z_isolated"]
    frame = pl.DataFrame(pairs, schema=["cell_id", "neighbour_id"], orient="row")
    weights, degree = neighbour_matrix(frame, cells)
    return cells, weights, degree


def test_neighbour_means_match_product_per_window() -> None:
    cells, weights, degree = grid_weights(4, 5)
    rng = np.random.default_rng(7)
    n_hours = LOOKBACK_HOURS + 50
    counts = rng.integers(0, 3, size=(n_hours, len(cells))).astype(np.int32)

    means = neighbour_means(weights, prefix_sums(counts), LOOKBACK_HOURS)

    assert sorted(means) == sorted(CRIME_LAG_DAYS)
    for days, values in means.items():
        own = plain_window_sums(counts, days * 24, LOOKBACK_HOURS).astype(np.float32)
        expected = np.asarray((weights @ own.T).T, dtype=np.float32)
        assert values.dtype == np.float32
        assert values.flags.c_contiguous
        np.testing.assert_array_equal(values, expected)
        np.testing.assert_array_equal(values[:, -1], 0.0)
    assert degree[-1] == 0
    assert means[28].max() > 0


def test_neighbour_matrix_skips_invalid_pairs() -> None:
    """Self pairs, ids outside ``cells`` and null ids are dropped, and a repeated pair counts once."""
    pairs = pl.DataFrame({
        "cell_id": ["A", "A", "B", "B", "C", "A", "X", None, "C"],
        "neighbour_id": ["B", "C", "A", "B", "A", "B", "A", "C", None],
    })

    weights, degree = neighbour_matrix(pairs, ["A", "B", "C", "D"])

    expected = np.array([[0, 0.5, 0.5, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32)
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights.toarray(), expected)
    assert degree.dtype == np.int16
    assert degree.tolist() == [2, 1, 1, 0]


def test_neighbour_matrix_without_pairs() -> None:
    empty = pl.DataFrame(schema={"cell_id": pl.String, "neighbour_id": pl.String})

    weights, degree = neighbour_matrix(empty, ["A", "B"])

    assert weights.shape == (2, 2)
    assert weights.nnz == 0
    assert degree.tolist() == [0, 0]


@pytest.mark.parametrize(("shape", "block"), [((7, 130), 64), ((130, 7), 64), ((5, 5), 2)])
def test_transpose_copies_in_bands(shape: tuple[int, int], block: int) -> None:
    array = np.arange(shape[0] * shape[1], dtype=np.int32).reshape(shape)

    copied = transpose(array, block)

    assert copied.flags.c_contiguous
    np.testing.assert_array_equal(copied, array.T)


def test_neighbour_means_reject_short_lookback() -> None:
    _, weights, _ = grid_weights(2, 2)
    prefix = prefix_sums(np.zeros((LOOKBACK_HOURS, 5), dtype=np.int32))

    with pytest.raises(ValueError, match="shorter than the longest window"):
        neighbour_means(weights, prefix, LOOKBACK_HOURS - 1)


@pytest.mark.parametrize("start", [
    datetime(2020, 2, 20, 0, tzinfo=UTC),
    datetime(2020, 2, 20, 7, 30, tzinfo=UTC),
    datetime(2020, 3, 8, 23, tzinfo=UTC),
    datetime(2020, 3, 20, 0, tzinfo=UTC),
])
def test_history_incomplete_matches_datetimes(start: datetime) -> None:
    data_start = date(2020, 2, 9)
    midnight = datetime(2020, 2, 9, tzinfo=UTC)
    n_out = 24 * 30

    flags = history_incomplete(start, n_out, data_start)

    expected = [start + (k - LOOKBACK_HOURS) * timedelta(hours=1) < midnight for k in range(n_out)]
    assert flags.tolist() == expected


def small_city(first: datetime, end: datetime) -> FeatureInputs:
    """Six cells with random incidents, weather and 311 requests over ``[first, end)``."""
    rng = np.random.default_rng(8)
    cells = ["A", "B", "C", "D", "E", "F"]
    hours = pl.datetime_range(first, end - timedelta(hours=1), "1h", time_zone="UTC", eager=True)
    n_rows = 3000
    counts = pl.DataFrame({
        "cell_id": rng.choice(cells, n_rows),
        "hour": hours.gather(rng.integers(0, hours.len(), n_rows)),
        "crime_group": rng.choice(["other", "property", "violent", "unknown"], n_rows),
        "incidents": rng.integers(1, 3, n_rows),
    }).group_by("cell_id", "hour", "crime_group").agg(pl.col("incidents").sum())
    weather = pl.DataFrame({
        "hour": hours,
        "temperature_f": rng.normal(40, 10, hours.len()),
        "precipitation_in": np.where(rng.random(hours.len()) < 0.1, 0.05, 0.0),
        "relative_humidity": rng.uniform(30, 95, hours.len()),
        "wind_speed_mph": rng.gamma(2.0, 5.0, hours.len()),
        "precipitation_is_trace": rng.random(hours.len()) < 0.05,
    })
    days = [first.date() + timedelta(days=int(offset)) for offset in rng.integers(0, (end - first).days, 400)]
    requests = pl.DataFrame({"cell_id": rng.choice(cells, len(days)), "local_date": days,
                             "request_type": "graffiti"}) \
        .group_by("cell_id", "local_date", "request_type").len("requests") \
        .with_columns(pl.col("requests").cast(pl.Int64))
    neighbours = pl.DataFrame([("A", "B"), ("B", "A"), ("B", "C"), ("C", "B"), ("D", "E"), ("E", "D")],
                              schema=["cell_id", "neighbour_id"], orient="row")
    cells_frame = pl.DataFrame({"cell_id": cells, "area_km2": rng.uniform(0.5, 2.0, len(cells)),
                                "population": rng.uniform(500, 5000, len(cells))})
    return FeatureInputs(cells_frame, neighbours, counts, weather, requests)


def test_rows_beyond_window_change_nothing() -> None:
    """Counts, weather and 311 rows outside a window's lookback leave its features as they are."""
    layout = FeatureLayout(targets=("violent",), groups=("other", "property", "violent"),
                           categories=("other", "property", "violent"), request_types=("graffiti",),
                           data_start=date(2020, 1, 1))
    start, end = datetime(2020, 4, 1, tzinfo=UTC), datetime(2020, 4, 4, tzinfo=UTC)
    wide = small_city(datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 7, 1, tzinfo=UTC))
    first = start - timedelta(hours=max(LOOKBACK_HOURS, WEATHER_LOOKBACK_HOURS))
    in_hours = (pl.col("hour") >= first) & (pl.col("hour") < end)
    narrow = FeatureInputs(
        wide.cells, wide.neighbours, wide.crime_counts.filter(in_hours), wide.weather.filter(in_hours),
        wide.requests.filter((pl.col("local_date") >= date(2020, 3, 20)) & (pl.col("local_date") <= date(2020, 4, 5))),
    )

    from_wide = build_cell_hour_features(wide, layout, start, end, "America/Chicago")
    from_narrow = build_cell_hour_features(narrow, layout, start, end, "America/Chicago")

    assert from_wide.height == 6 * 72
    assert from_wide["violent_28d"].sum() > 0
    assert from_wide["nbr_violent_7d"].max() > 0
    assert from_wide["requests_graffiti_7d"].sum() > 0
    assert_frame_equal(from_wide, from_narrow, check_exact=True)
