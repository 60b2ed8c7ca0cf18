"""Unit tests for ml.metrics on small hand-built inputs with exact expected values."""

import io
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score

from ml.metrics import (
    PaiResult,
    ThresholdMetrics,
    aggregate_periods,
    brier_score,
    choose_threshold,
    expected_calibration_error,
    flag_top_share,
    hotspot_curve,
    log_loss,
    pai_at_area_coverage,
    pei_at_area_coverage,
    pr_auc,
    reliability_curve,
    roc_auc,
    threshold_metrics,
    threshold_table,
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


# pr_auc, brier_score, log_loss


def test_pr_auc_known_ranking() -> None:
    # Descending: 0.8 (crime), 0.4, 0.35 (crime). AP = 0.5 * 1 + 0.5 * 2/3.
    auc = pr_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))

    assert auc == pytest.approx(5 / 6)


def test_pr_auc_one_class_gives_none() -> None:
    assert pr_auc(np.array([0, 0]), np.array([0.1, 0.2])) is None


def test_brier_score_by_hand() -> None:
    score = brier_score(np.array([1, 0, 1]), np.array([0.8, 0.3, 0.4]))

    assert score == pytest.approx((0.04 + 0.09 + 0.36) / 3)


def test_log_loss_by_hand() -> None:
    loss = log_loss(np.array([1, 0, 1]), np.array([0.8, 0.3, 0.4]))

    assert loss == pytest.approx(-(math.log(0.8) + math.log(0.7) + math.log(0.4)) / 3)


def test_log_loss_clips_certain_miss() -> None:
    loss = log_loss(np.array([1]), np.array([0.0]))

    assert loss == pytest.approx(-math.log(1e-15))


@pytest.mark.parametrize("function", [brier_score, log_loss])
def test_probability_out_of_range_names_row(function) -> None:
    with pytest.raises(ValueError, match=r"probability must be within \[0, 1\], found 1.2 at row 1"):
        function(np.array([0, 1]), np.array([0.5, 1.2]))


# reliability_curve and expected_calibration_error


def test_reliability_curve_two_uniform_bins() -> None:
    curve = reliability_curve(np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.3, 0.7, 0.9]), n_bins=2, strategy="uniform")

    assert curve.columns == ["bin", "lower", "upper", "mean_predicted", "observed_rate", "n"]
    assert curve["n"].to_list() == [3, 2]
    assert curve["lower"].to_list() == [0.0, 0.5]
    assert curve["mean_predicted"].to_list() == pytest.approx([0.2, 0.8])
    assert curve["observed_rate"].to_list() == pytest.approx([1 / 3, 1.0])


def test_expected_calibration_error_two_bins() -> None:
    # Bin [0, 0.5): |0.2 - 1/3| over 3 rows; bin [0.5, 1]: |0.8 - 1| over 2 rows.
    ece = expected_calibration_error(np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.3, 0.7, 0.9]), n_bins=2, strategy="uniform")

    assert ece == pytest.approx((3 * (1 / 3 - 0.2) + 2 * 0.2) / 5)


def test_reliability_curve_quantile_bins() -> None:
    curve = reliability_curve(np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4]), n_bins=2)

    assert curve["n"].to_list() == [2, 2]
    assert curve["upper"].to_list() == pytest.approx([0.25, 0.4])
    assert curve["mean_predicted"].to_list() == pytest.approx([0.15, 0.35])
    assert curve["observed_rate"].to_list() == pytest.approx([0.5, 0.5])


def test_reliability_curve_empty_uniform_bin_is_null() -> None:
    curve = reliability_curve(np.array([0, 1]), np.array([0.01, 0.02]), n_bins=4, strategy="uniform")

    assert curve["n"].to_list() == [2, 0, 0, 0]
    assert curve["mean_predicted"].null_count() == 3
    assert expected_calibration_error(np.array([0, 1]), np.array([0.01, 0.02]), n_bins=4, strategy="uniform") == pytest.approx(0.485)


def test_reliability_curve_merges_tied_quantiles() -> None:
    curve = reliability_curve(np.zeros(6), np.full(6, 0.002), n_bins=10)

    assert curve.height == 1
    assert curve["n"].to_list() == [6]


def test_reliability_curve_rejects_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="strategy must be one of"):
        reliability_curve(np.array([0, 1]), np.array([0.1, 0.2]), strategy="equal")


# choose_threshold and threshold_table


def test_youden_known_best_cut() -> None:
    # J at 0.5, 0.4, 0.3, 0.2, 0.1 is 1/3, 2/3, 1/6, 1/2, 0.
    choice = choose_threshold(np.array([0, 1, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4, 0.5]), "youden")

    assert choice.threshold == 0.4
    np.testing.assert_array_equal(choice.flagged, [False, False, False, True, True])
    assert (choice.metrics.tp, choice.metrics.fp) == (2, 0)
    assert choice.flag_rate == pytest.approx(0.4)
    assert choice.rule == "youden"
    assert choice.value is None


def test_youden_tie_takes_highest_threshold() -> None:
    # J is 2/3 at both 0.5 and 0.3, and 0.5 flags fewer rows.
    choice = choose_threshold(np.array([0, 0, 1, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), "youden")

    assert choice.threshold == 0.5


def test_youden_one_class_raises() -> None:
    with pytest.raises(ValueError, match="needs both outcomes, got 0 positive and 2 negative"):
        choose_threshold(np.array([0, 0]), np.array([0.1, 0.2]), "youden")


def test_coverage_rule_flags_top_share_per_slice() -> None:
    risk = np.array([0.3, 0.2, 0.1, 0.9, 0.8])
    slice_ids = np.array([1, 1, 1, 2, 2])

    choice = choose_threshold(np.array([1, 0, 0, 0, 1]), risk, "coverage", value=0.5, slice_ids=slice_ids)

    np.testing.assert_array_equal(choice.flagged, [True, True, False, True, False])
    assert choice.threshold is None
    assert choice.metrics.tp == 1
    assert choice.metrics.fp == 2


def test_coverage_rule_needs_slices() -> None:
    with pytest.raises(ValueError, match="coverage rule needs value"):
        choose_threshold(np.array([0, 1]), np.array([0.1, 0.2]), "coverage", value=0.5)


def test_value_rule_flags_at_or_above() -> None:
    choice = choose_threshold(np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]), "value", value=0.2)

    np.testing.assert_array_equal(choice.flagged, [False, True, True])
    assert choice.threshold == 0.2
    assert choice.metrics.tpr == 1.0


def test_choose_threshold_rejects_unknown_rule() -> None:
    with pytest.raises(ValueError, match="rule must be one of"):
        choose_threshold(np.array([0, 1]), np.array([0.1, 0.2]), "f1")


def test_threshold_table_exact_rows() -> None:
    table = threshold_table(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]), [0.35, 0.9])

    assert table.columns == ["threshold", "tp", "fp", "tn", "fn", "tpr", "tnr", "fpr", "fnr", "accuracy", "precision", "flag_rate"]
    first = table.row(0, named=True)
    assert (first["tp"], first["fp"], first["tn"], first["fn"]) == (2, 1, 1, 0)
    assert first["precision"] == pytest.approx(2 / 3)
    assert first["flag_rate"] == pytest.approx(0.75)
    last = table.row(1, named=True)
    assert last["precision"] is None
    assert last["fnr"] == 1.0


def test_threshold_table_matches_threshold_metrics() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.random(500) < 0.2
    score = rng.integers(0, 20, 500) / 20
    thresholds = [0.0, 0.15, 0.5, 0.55, 0.95, 1.5]

    table = threshold_table(y_true, score, thresholds)

    for row, threshold in zip(table.iter_rows(named=True), thresholds):
        expected = threshold_metrics(y_true, score >= threshold)
        assert (row["tp"], row["fp"], row["tn"], row["fn"]) == (expected.tp, expected.fp, expected.tn, expected.fn)
        assert row["precision"] == expected.precision


# hotspot_curve and pei_at_area_coverage

# One hour, total area 10 km², budget 2.5 km² at coverage 0.25. E leads on density
# (6 per km²), then A and B tie at 1 per km².
PEI_TIES_CSV = """cell,risk,crimes,area_km2
A,0.9,2,2.0
B,0.8,1,1.0
C,0.7,0,1.0
D,0.2,0,5.5
E,0.1,3,0.5
"""


def hotspot_of(csv: str, coverage: float):
    frame = pl.read_csv(io.StringIO(csv))
    return pei_at_area_coverage(
        frame["risk"].to_numpy(), frame["crimes"].to_numpy(), frame["area_km2"].to_numpy(),
        np.zeros(frame.height, dtype=np.int64), coverage=coverage,
    )


def test_pei_and_pei_star_against_the_densest_possible_capture() -> None:
    result = hotspot_of(PEI_TIES_CSV, coverage=0.25)

    # The model flags A (2 crimes in 2 km²), then B would exceed 2.5 km².
    assert result.crimes_captured == 2
    assert result.hit_rate == pytest.approx(1 / 3)
    assert result.pai == pytest.approx((2 / 6) / (2 / 10))
    # Best within 2.5 km²: E (3 crimes, 0.5 km²), then 2 km² at 1 crime per km² = 5 crimes.
    assert result.pei == pytest.approx(2 / 5)
    # Best within the 2 km² the model flagged: E, then 1.5 km² at 1 per km² = 4.5 crimes.
    assert result.pei_star == pytest.approx(2 / 4.5)


def test_pei_bound_does_not_depend_on_the_order_of_equal_density_cells() -> None:
    # Budget 1.2 km². Z and Y tie at 2 crimes per km², so the bound is 2.4 in either order.
    csv = """cell,risk,crimes,area_km2
X,0.1,2,1.5
Y,0.8,2,1.0
Z,0.9,1,0.5
W,0.2,0,9.0
"""
    swapped = csv.replace("Y,0.8,2,1.0\nZ,0.9,1,0.5", "Z,0.9,1,0.5\nY,0.8,2,1.0")
    result = hotspot_of(csv, coverage=0.1)

    assert swapped != csv
    assert result.crimes_captured == 1
    assert result.pei == pytest.approx(1 / 2.4)
    assert hotspot_of(swapped, coverage=0.1).pei == pytest.approx(1 / 2.4)
    # Model: Z, 1 crime in 0.5 km², as dense as anything can be.
    assert result.pei_star == pytest.approx(1.0)


def test_hotspot_curve_matches_pai_on_unequal_areas() -> None:
    frame = pai_fixture()
    arrays = (
        frame["predicted_risk"].to_numpy(), frame["observed_crimes_test"].to_numpy(),
        frame["area_km2"].to_numpy(), np.zeros(frame.height, dtype=np.int64),
    )

    curve = hotspot_curve(*arrays, coverages=(0.05, 0.2, 0.7))

    assert curve.columns == ["coverage", "hit_rate", "pai", "pei", "pei_star", "area_share_used", "n_crimes", "crimes_captured"]
    assert curve["pai"].to_list()[0] is None
    assert curve["pai"].to_list()[1:] == pytest.approx([5.0, 1.0])
    assert curve["crimes_captured"].to_list() == [0, 5, 7]
    # Coverage 0.2: the densest 2 km² are T1 and T2 (8 crimes); the model flagged T1 alone
    # (1 km²), the densest possible 1 km², so PEI* is 1 even though PEI is below it.
    assert curve["pei"].to_list()[1] == pytest.approx(5 / 8)
    assert curve["pei_star"].to_list()[1] == pytest.approx(1.0)
    assert all(value is None or value <= 1 for value in curve["pei"].to_list() + curve["pei_star"].to_list())
    for row in curve.iter_rows(named=True):
        assert row["pai"] == pai_at_area_coverage(*arrays, coverage=row["coverage"]).pai


def test_hotspot_curve_pools_slices_as_sums() -> None:
    tie_frame = pl.read_csv(io.StringIO(PEI_TIES_CSV))
    # Hour 2: four 2.5 km² cells, budget one cell; the model's top cell has 1 crime, the best has 3.
    risk = np.concatenate([tie_frame["risk"].to_numpy(), [0.9, 0.1, 0.2, 0.3]])
    crimes = np.concatenate([tie_frame["crimes"].to_numpy(), [1, 3, 0, 0]])
    areas = np.concatenate([tie_frame["area_km2"].to_numpy(), np.full(4, 2.5)])
    slice_ids = np.array([1] * 5 + [2] * 4)

    row = hotspot_curve(risk, crimes, areas, slice_ids, coverages=(0.25,)).row(0, named=True)

    assert row["n_crimes"] == 10
    assert row["crimes_captured"] == 3
    assert row["pei"] == pytest.approx(3 / (5 + 3))
    # Model: 2 km² in hour 1 (best 4.5 crimes) and 2.5 km² in hour 2 (best 3 crimes).
    assert row["pei_star"] == pytest.approx(3 / 7.5)
    assert row["area_share_used"] == pytest.approx(4.5 / 20)


def test_hotspot_curve_rejects_invalid_coverage() -> None:
    with pytest.raises(ValueError, match="coverage must be a number with 0 < coverage <= 1"):
        hotspot_curve(np.array([0.2]), np.array([1]), np.array([1.0]), np.array([0]), coverages=(0.05, 2.0))


# aggregate_periods

UTC = timezone.utc


def cell_hours(first: datetime, n_hours: int, areas: dict[str, float]) -> pl.DataFrame:
    """One row per cell and UTC hour, each with one crime, probability 0.1 and score 1."""
    hours = [first + timedelta(hours=step) for step in range(n_hours)]
    rows = [
        {"cell_id": cell, "hour": hour, "crime_count": 1, "area_km2": area, "probability": 0.1, "score": 1.0}
        for cell, area in areas.items() for hour in hours
    ]
    return pl.DataFrame(rows).with_columns(pl.col("hour").dt.replace_time_zone("UTC"))


def period(result: pl.DataFrame, cell: str, start: datetime) -> dict:
    rows = result.filter((pl.col("cell_id") == cell) & (pl.col("period_start") == start))
    assert rows.height == 1
    return rows.row(0, named=True)


def test_day_aggregation_fall_back_day_has_25_hours() -> None:
    # 2017-11-04 00:00 CDT is 05:00 UTC; three local days until 2017-11-07 00:00 CST (06:00 UTC).
    frame = cell_hours(datetime(2017, 11, 4, 5, tzinfo=UTC), 73, {"T1": 1.5, "T2": 3.0})

    result = aggregate_periods(frame, "day", "America/Chicago", probability_columns=["probability"], rate_columns=["score"])

    assert result.height == 6
    day = period(result, "T2", datetime(2017, 11, 5, 5, tzinfo=UTC))
    assert day["period_hours"] == 25
    assert day["crime_count"] == 25
    assert day["score"] == 25.0
    assert day["area_km2"] == 3.0
    assert day["probability"] == pytest.approx(1 - 0.9**25)
    assert str(day["local_date"]) == "2017-11-05"
    assert period(result, "T1", datetime(2017, 11, 6, 6, tzinfo=UTC))["period_hours"] == 24


def test_day_aggregation_spring_forward_day_has_23_hours() -> None:
    # 2017-03-12 00:00 CST is 06:00 UTC and 2017-03-13 00:00 CDT is 05:00 UTC.
    frame = cell_hours(datetime(2017, 3, 12, 6, tzinfo=UTC), 23, {"T1": 1.0})

    result = aggregate_periods(frame, "day", "America/Chicago")

    assert result.height == 1
    assert result["period_hours"].to_list() == [23]
    assert result["period_start"].to_list() == [datetime(2017, 3, 12, 6, tzinfo=UTC)]


def test_shift_aggregation_across_fall_back() -> None:
    frame = cell_hours(datetime(2017, 11, 5, 5, tzinfo=UTC), 25, {"T1": 1.0})

    result = aggregate_periods(frame, "shift", "America/Chicago", probability_columns=["probability"])

    # 00:00-08:00 local holds the repeated 01:00 hour; 08:00 CST is 14:00 UTC and 16:00 CST is 22:00 UTC.
    assert result["period_start"].to_list() == [
        datetime(2017, 11, 5, 5, tzinfo=UTC),
        datetime(2017, 11, 5, 14, tzinfo=UTC),
        datetime(2017, 11, 5, 22, tzinfo=UTC),
    ]
    assert result["period_hours"].to_list() == [9, 8, 8]
    assert result["probability"].to_list() == pytest.approx([1 - 0.9**9, 1 - 0.9**8, 1 - 0.9**8])


def test_shift_aggregation_across_spring_forward() -> None:
    frame = cell_hours(datetime(2017, 3, 12, 6, tzinfo=UTC), 23, {"T1": 1.0})

    result = aggregate_periods(frame, "shift", "America/Chicago")

    # 08:00 CDT is 13:00 UTC, so the first shift loses the skipped 02:00 hour.
    assert result["period_hours"].to_list() == [7, 8, 8]
    assert result["period_start"].to_list()[1] == datetime(2017, 3, 12, 13, tzinfo=UTC)


def test_shift_before_first_start_belongs_to_previous_day() -> None:
    # Shifts start at 06:00, 14:00 and 22:00 local. From 2017-11-05 22:00 CST (2017-11-06 04:00 UTC), 8 hours.
    frame = cell_hours(datetime(2017, 11, 6, 4, tzinfo=UTC), 8, {"T1": 1.0})

    result = aggregate_periods(frame, "shift", "America/Chicago", shift_starts=(6, 14, 22))

    assert result.height == 1
    assert result["period_hours"].to_list() == [8]
    assert str(result["local_date"][0]) == "2017-11-05"


def test_hour_period_keeps_rows() -> None:
    frame = cell_hours(datetime(2017, 11, 5, 5, tzinfo=UTC), 3, {"T1": 1.0})

    result = aggregate_periods(frame, "hour", "America/Chicago")

    assert result.height == 3
    assert result["period_start"].to_list() == frame["hour"].to_list()
    assert result.columns[: frame.width] == frame.columns


def test_naive_hours_read_as_utc() -> None:
    frame = cell_hours(datetime(2017, 3, 12, 6, tzinfo=UTC), 23, {"T1": 1.0})
    naive = frame.with_columns(pl.col("hour").dt.replace_time_zone(None))

    result = aggregate_periods(naive, "day", "America/Chicago")

    assert result["period_hours"].to_list() == [23]


def test_aggregate_rejects_duplicate_hour() -> None:
    frame = cell_hours(datetime(2017, 3, 12, 6, tzinfo=UTC), 2, {"T1": 1.0})
    doubled = pl.concat([frame, frame.head(1)])

    with pytest.raises(ValueError, match=r"duplicate \(cell_id, hour\) row.*cell_id 'T1'"):
        aggregate_periods(doubled, "day", "America/Chicago")


def test_aggregate_rejects_probability_above_one() -> None:
    frame = cell_hours(datetime(2017, 3, 12, 6, tzinfo=UTC), 2, {"T1": 1.0})
    bad = frame.with_columns(probability=pl.Series([0.1, 1.5]))

    with pytest.raises(ValueError, match=r"probability must be within \[0, 1\]: found 1.5 at row 1"):
        aggregate_periods(bad, "day", "America/Chicago", probability_columns=["probability"])


def test_aggregate_rejects_unknown_time_zone() -> None:
    frame = cell_hours(datetime(2017, 3, 12, 6, tzinfo=UTC), 2, {"T1": 1.0})

    with pytest.raises(ValueError, match="IANA name"):
        aggregate_periods(frame, "day", "Chicago")


def test_aggregate_rejects_changing_area() -> None:
    frame = cell_hours(datetime(2017, 3, 12, 6, tzinfo=UTC), 2, {"T1": 1.0})
    bad = frame.with_columns(area_km2=pl.Series([1.0, 2.0]))

    with pytest.raises(ValueError, match="area_km2 of cell 'T1' changes"):
        aggregate_periods(bad, "day", "America/Chicago")
