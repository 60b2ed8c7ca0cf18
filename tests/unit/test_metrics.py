"""Unit tests for ml.metrics on small hand-built inputs with exact expected values."""

import io
import math

import numpy as np
import polars as pl
import pytest

from ml.metrics import (
    PaiResult,
    ThresholdMetrics,
    flag_top_share,
    pai_at_area_coverage,
    roc_auc,
    threshold_metrics,
)

# Four tracts in one hour: total area 10 km² and 10 crimes.
PAI_FIXTURE_CSV = """geoid,area_km2,predicted_risk,observed_crimes_test
T1,1.0,0.90,5
T2,1.0,0.10,3
T3,6.0,0.80,2
T4,2.0,0.05,0
"""


def pai_fixture() -> pl.DataFrame:
    return pl.read_csv(io.StringIO(PAI_FIXTURE_CSV))


def pai_of_fixture(coverage: float) -> PaiResult:
    frame = pai_fixture()
    return pai_at_area_coverage(
        risk=frame["predicted_risk"].to_numpy(),
        crime_count=frame["observed_crimes_test"].to_numpy(),
        area_km2=frame["area_km2"].to_numpy(),
        slice_ids=np.zeros(frame.height, dtype=np.int64),
        coverage=coverage,
    )


# threshold_metrics


def test_threshold_metrics_exact_values() -> None:
    y_true = np.array([1, 1, 0, 0, 1])
    flagged = np.array([True, False, True, False, True])

    result = threshold_metrics(y_true, flagged)

    assert (result.tp, result.fp, result.tn, result.fn) == (2, 1, 1, 1)
    assert result.tpr == pytest.approx(2 / 3)
    assert result.tnr == pytest.approx(1 / 2)
    assert result.fpr == pytest.approx(1 / 2)
    assert result.fnr == pytest.approx(1 / 3)
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.precision == pytest.approx(2 / 3)


def test_threshold_metrics_no_positives() -> None:
    result = threshold_metrics(np.array([0, 0]), np.array([0, 0]))

    assert (result.tp, result.fp, result.tn, result.fn) == (0, 0, 2, 0)
    assert result.tpr is None
    assert result.fnr is None
    assert result.precision is None
    assert result.tnr == 1.0
    assert result.fpr == 0.0
    assert result.accuracy == 1.0


def test_threshold_metrics_all_flagged_positives() -> None:
    result = threshold_metrics(np.array([True, True]), np.array([True, True]))

    assert result.tnr is None
    assert result.fpr is None
    assert result.tpr == 1.0
    assert result.precision == 1.0


def test_threshold_metrics_empty_input() -> None:
    result = threshold_metrics(np.array([], dtype=bool), np.array([], dtype=bool))

    assert result == ThresholdMetrics(0, 0, 0, 0, None, None, None, None, None, None)


def test_threshold_metrics_rejects_counts() -> None:
    with pytest.raises(ValueError, match="y_true must contain only 0 and 1, found 2. For crime counts"):
        threshold_metrics(np.array([0, 2]), np.array([0, 1]))


def test_threshold_metrics_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="y_true=3, flagged=2"):
        threshold_metrics(np.array([0, 1, 1]), np.array([0, 1]))


# flag_top_share


def test_flag_top_share_slice_ties() -> None:
    # Slice 7 has rows 0, 2, 4, 6 and slice 3 has rows 1, 3, 5, interleaved.
    risk = np.array([0.5, 0.2, 0.9, 0.2, 0.5, 0.2, 0.1])
    slice_ids = np.array([7, 3, 7, 3, 7, 3, 7])

    flagged = flag_top_share(risk, slice_ids, share=0.5)

    # Slice 7: ceil(0.5 * 4) = 2 rows, row 2 (0.9) then row 0, which wins the 0.5 tie with row 4.
    # Slice 3: ceil(0.5 * 3) = 2 rows, all tied, so the first two rows 1 and 3.
    expected = np.array([True, True, True, True, False, False, False])
    np.testing.assert_array_equal(flagged, expected)


def test_flag_top_share_rounds_up_per_slice() -> None:
    risk = np.array([0.3, 0.2, 0.1, 0.9, 0.8])
    slice_ids = np.array(["a", "a", "a", "b", "b"])

    flagged = flag_top_share(risk, slice_ids, share=0.01)

    np.testing.assert_array_equal(flagged, [True, False, False, True, False])


def test_flag_top_share_ignores_float_noise() -> None:
    # 0.07 * 100 is 7.000000000000001 in float64, which a bare ceil turns into 8.
    risk = np.arange(100, dtype=float)

    flagged = flag_top_share(risk, np.zeros(100), share=0.07)

    assert flagged.sum() == 7
    np.testing.assert_array_equal(np.flatnonzero(flagged), np.arange(93, 100))


def test_flag_top_share_full_share_flags_all() -> None:
    flagged = flag_top_share(np.array([0.1, 0.2, 0.3]), np.array([1, 2, 2]), share=1.0)

    assert flagged.all()


def test_flag_top_share_matches_lexsort_order() -> None:
    rng = np.random.default_rng(12)
    risk = rng.integers(0, 4, size=2_000).astype(float)
    slice_ids = rng.integers(0, 25, size=2_000)
    share = 0.3

    flagged = flag_top_share(risk, slice_ids, share)

    expected = np.zeros(risk.size, dtype=bool)
    for slice_id in np.unique(slice_ids):
        rows = np.flatnonzero(slice_ids == slice_id)
        ranked = rows[np.lexsort((rows, -risk[rows]))]
        expected[ranked[: math.ceil(share * rows.size)]] = True
    np.testing.assert_array_equal(flagged, expected)


def test_flag_top_share_datetime_slices() -> None:
    hours = np.array(["2017-10-02T05", "2017-10-02T06", "2017-10-02T05"], dtype="datetime64[h]")

    flagged = flag_top_share(np.array([0.1, 0.1, 0.2]), hours, share=0.5)

    np.testing.assert_array_equal(flagged, [False, True, True])


def test_flag_top_share_empty_input() -> None:
    flagged = flag_top_share(np.array([], dtype=float), np.array([], dtype=np.int64), share=0.5)

    assert flagged.dtype == bool
    assert flagged.size == 0


@pytest.mark.parametrize("share", [0, -0.1, 1.5, float("nan"), True])
def test_flag_top_share_rejects_invalid_share(share: float) -> None:
    with pytest.raises(ValueError, match="share must be a number with 0 < share <= 1"):
        flag_top_share(np.array([0.1]), np.array([0]), share=share)


def test_flag_top_share_rejects_nan_risk() -> None:
    with pytest.raises(ValueError, match="risk must be finite, found nan at row 1"):
        flag_top_share(np.array([0.1, np.nan]), np.array([0, 0]), share=0.5)


def test_flag_top_share_rejects_nat_slice() -> None:
    hours = np.array(["2017-10-02T05", "NaT"], dtype="datetime64[h]")

    with pytest.raises(ValueError, match="missing id at row 1"):
        flag_top_share(np.array([0.1, 0.2]), hours, share=0.5)


# roc_auc


def test_roc_auc_exact_value() -> None:
    # Of the 4 positive-negative pairs, 3 are ranked correctly.
    auc = roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))

    assert auc == pytest.approx(0.75)


def test_roc_auc_ties_count_half() -> None:
    auc = roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5]))

    assert auc == pytest.approx(0.5)


def test_roc_auc_one_class_gives_none() -> None:
    assert roc_auc(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3])) is None
    assert roc_auc(np.array([True, True]), np.array([0.1, 0.2])) is None


def test_roc_auc_returns_plain_float() -> None:
    auc = roc_auc(np.array([0, 1]), np.array([0.2, 0.8]))

    assert type(auc) is float
    assert auc == 1.0


# pai_at_area_coverage


def test_pai_fixture_stop_rule() -> None:
    # The budget is 2 km². T1 (1 km²) fits, and T3 (6 km²) would exceed it, so selection ends there.
    result = pai_of_fixture(coverage=0.2)

    assert result.hit_rate == pytest.approx(0.5)
    assert result.area_share_used == pytest.approx(0.1)
    assert result.pai == pytest.approx(5.0)
    assert result.coverage == 0.2
    assert result.n_crimes == 10


def test_pai_fixture_not_skip_or_count() -> None:
    result = pai_of_fixture(coverage=0.2)

    # Skipping T3 and continuing would flag T1 + T2, with hit rate 0.8 over area share 0.2.
    assert result.pai != pytest.approx(4.0)
    # Counting cells instead of km² would give (5 / 10) / (1 / 4) for the top cell.
    assert result.pai != pytest.approx(2.0)


def test_pai_fixture_larger_budget() -> None:
    result = pai_of_fixture(coverage=0.7)

    assert result.hit_rate == pytest.approx(0.7)
    assert result.area_share_used == pytest.approx(0.7)
    assert result.pai == pytest.approx(1.0)


def test_pai_pools_over_slices() -> None:
    fixture = pai_fixture()
    # Hour 2: five 1 km² cells, budget 1 km² at coverage 0.2, and the top cell has no crime.
    risk = np.concatenate([fixture["predicted_risk"].to_numpy(), [0.2, 0.9, 0.3, 0.1, 0.0]])
    crimes = np.concatenate([fixture["observed_crimes_test"].to_numpy(), [1, 0, 2, 0, 0]])
    areas = np.concatenate([fixture["area_km2"].to_numpy(), np.ones(5)])
    slice_ids = np.array([1, 1, 1, 1, 2, 2, 2, 2, 2])

    result = pai_at_area_coverage(risk, crimes, areas, slice_ids, coverage=0.2)

    # Pooled: 5 of 13 crimes in 2 of 15 km², so PAI = (5 / 13) / (2 / 15) = 75 / 26.
    # A mean of the per-slice PAIs would give (5.0 + 0.0) / 2 = 2.5.
    assert result.n_crimes == 13
    assert result.hit_rate == pytest.approx(5 / 13)
    assert result.area_share_used == pytest.approx(2 / 15)
    assert result.pai == pytest.approx(75 / 26)


def test_pai_risk_ties_go_to_earlier_row() -> None:
    result = pai_at_area_coverage(
        risk=np.array([0.5, 0.5]),
        crime_count=np.array([0, 4]),
        area_km2=np.array([1.0, 1.0]),
        slice_ids=np.array([0, 0]),
        coverage=0.5,
    )

    assert result.hit_rate == 0.0
    assert result.pai == 0.0


def test_pai_exact_budget_fill() -> None:
    # The cumulative area 0.1 + 0.2 is 0.30000000000000004 in float64, just over 0.3 * 1.0.
    result = pai_at_area_coverage(
        risk=np.array([0.9, 0.8, 0.7]),
        crime_count=np.array([1, 1, 2]),
        area_km2=np.array([0.1, 0.2, 0.7]),
        slice_ids=np.array([0, 0, 0]),
        coverage=0.3,
    )

    assert result.area_share_used == pytest.approx(0.3)
    assert result.hit_rate == pytest.approx(0.5)


def test_pai_no_crimes_gives_none() -> None:
    result = pai_at_area_coverage(
        risk=np.array([0.9, 0.1]),
        crime_count=np.array([0, 0]),
        area_km2=np.array([1.0, 1.0]),
        slice_ids=np.array([0, 0]),
        coverage=0.5,
    )

    assert result.pai is None
    assert result.hit_rate is None
    assert result.n_crimes == 0
    assert result.area_share_used == pytest.approx(0.5)


def test_pai_nothing_flagged_gives_none() -> None:
    # Budget 0.05 * 10 = 0.5 km², smaller than every cell.
    result = pai_of_fixture(coverage=0.05)

    assert result.pai is None
    assert result.hit_rate == 0.0
    assert result.area_share_used == 0.0


@pytest.mark.parametrize(
    ("areas", "message"),
    [
        ([1.0, 0.0], "area_km2 must be > 0, found 0.0 at row 1"),
        ([-2.0, 1.0], "area_km2 must be > 0, found -2.0 at row 0"),
        ([1.0, np.inf], "area_km2 must be finite, found inf at row 1"),
        ([np.nan, 1.0], "area_km2 must be finite, found nan at row 0"),
    ],
)
def test_pai_rejects_invalid_area(areas: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pai_at_area_coverage(np.array([0.2, 0.1]), np.array([1, 0]), np.array(areas), np.array([0, 0]))


@pytest.mark.parametrize("coverage", [0.0, 1.01, -0.5, float("inf")])
def test_pai_rejects_invalid_coverage(coverage: float) -> None:
    with pytest.raises(ValueError, match="coverage must be a number with 0 < coverage <= 1"):
        pai_at_area_coverage(np.array([0.2]), np.array([1]), np.array([1.0]), np.array([0]), coverage=coverage)


def test_pai_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="crime_count=1, area_km2=2"):
        pai_at_area_coverage(np.array([0.2, 0.1]), np.array([1]), np.array([1.0, 1.0]), np.array([0, 0]))


def test_pai_rejects_negative_crime_count() -> None:
    with pytest.raises(ValueError, match="crime_count must be non-negative whole numbers, found -1.0 at row 1"):
        pai_at_area_coverage(np.array([0.2, 0.1]), np.array([1, -1]), np.array([1.0, 1.0]), np.array([0, 0]))


def test_pai_rejects_empty_input() -> None:
    empty = np.array([], dtype=float)

    with pytest.raises(ValueError, match="received no rows"):
        pai_at_area_coverage(empty, empty, empty, empty)
