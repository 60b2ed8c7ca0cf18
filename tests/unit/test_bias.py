"""Unit tests of the bias audit: quintiles, group metrics, the disparity gate and the arrest audit."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from ml.bias import (
    GROUP_METRIC_SCHEMA,
    GroupDefinition,
    arrest_share_by_category,
    assign_groups,
    disparity_gate,
    group_metrics,
    parse_definitions,
)

BLACK_Q45 = [{"name": "black_q45", "column": "nh_black_share", "quintiles": [4, 5]}]


def demographics(values: list[float | None], populations: list[float], column: str = "nh_black_share") -> pl.DataFrame:
    return pl.DataFrame(
        {"cell_id": [f"c{i}" for i in range(len(values))], "population": populations, column: values},
        schema={"cell_id": pl.String, "population": pl.Float64, column: pl.Float64},
    )


def quintiles(frame: pl.DataFrame, column: str = "nh_black_share", **kwargs) -> list[int | None]:
    definition = [{"name": "group", "column": column, "quintiles": [5]}]
    return assign_groups(frame, definition, **kwargs)[f"{column}_quintile"].to_list()


# Quintiles


def test_quintiles_population_weighted():
    frame = demographics([0.1, 0.2, 0.3, 0.4, 0.5], [100, 100, 100, 100, 600])

    assert quintiles(frame) == [1, 1, 2, 2, 4]


def test_quintiles_unweighted():
    frame = demographics([0.1, 0.2, 0.3, 0.4, 0.5], [100, 100, 100, 100, 600])

    assert quintiles(frame, population_weighted=False) == [1, 2, 3, 4, 5]


def test_quintile_edge_goes_up():
    # Mid-ranks 0.2, 0.5 and 0.8: a mid-rank on an edge k/5 starts quintile k + 1.
    frame = demographics([0.1, 0.2, 0.3], [400, 200, 400])

    assert quintiles(frame) == [2, 3, 5]


def test_quintiles_ties_share_one():
    frame = demographics([0.5, 0.5, 0.1, 0.9], [100, 100, 100, 100])

    assert quintiles(frame) == [3, 3, 1, 5]


def test_quintiles_skip_null_and_empty_cells():
    frame = demographics([0.9, None, 0.8, 0.1, float("nan"), 0.2], [100, 100, 0, 100, 100, 100])

    groups = assign_groups(frame, [{"name": "high", "column": "nh_black_share", "quintiles": [4, 5]}])

    assert groups["nh_black_share_quintile"].to_list() == [5, None, None, 1, None, 3]
    assert groups["high"].to_list() == [True, False, False, False, False, False]


def test_groups_keep_population():
    frame = demographics([0.9, 0.1], [120, 80])

    groups = assign_groups(frame, BLACK_Q45)

    assert groups["population"].to_list() == [120.0, 80.0]
    assert groups.columns == ["cell_id", "population", "nh_black_share_quintile", "black_q45"]


def test_assign_groups_missing_column():
    frame = demographics([0.9, 0.1], [120, 80])

    with pytest.raises(ValueError, match="per_capita_income"):
        assign_groups(frame, [{"name": "poor", "column": "per_capita_income", "quintiles": [1]}])


def test_definitions_reject_bad_input():
    with pytest.raises(ValueError, match="quintiles must be whole numbers 1 to 5"):
        parse_definitions([{"name": "g", "column": "x", "quintiles": [0, 1]}])
    with pytest.raises(ValueError, match="not a defined group"):
        parse_definitions([{"name": "g", "column": "x", "quintiles": [1], "reference": "h"}])
    with pytest.raises(ValueError, match="unique"):
        parse_definitions([GroupDefinition("g", "x", (1,)), GroupDefinition("g", "y", (2,))])


# Group metrics on a hand-computed example


def tiny_frame() -> pl.DataFrame:
    """Four cells on two days, one map a day; cells c0 and c1 form the group, c2 and c3 its complement.

    Day 1: the ensemble flags c0, c1 and CompSTAT c0, c2; incidents c0 1, c2 2.
    Day 2: the ensemble flags c0, c2 and CompSTAT c1, c3; incidents c1 1, c3 1.
    """
    first = datetime(2017, 7, 1, 17, tzinfo=timezone.utc)
    second = datetime(2017, 7, 2, 17, tzinfo=timezone.utc)
    return pl.DataFrame({
        "cell_id": ["c0", "c1", "c2", "c3"] * 2,
        "hour": [first] * 4 + [second] * 4,
        "crime_count": [1, 0, 2, 0, 0, 1, 0, 1],
        "area_km2": [1.0, 2.0, 1.0, 4.0] * 2,
        "ensemble": [0.9, 0.8, 0.1, 0.2, 0.9, 0.1, 0.8, 0.2],
        "compstat": [0.9, 0.1, 0.8, 0.2, 0.1, 0.9, 0.2, 0.8],
    })


def tiny_groups() -> pl.DataFrame:
    return assign_groups(demographics([0.9, 0.8, 0.1, 0.2], [100, 100, 100, 100]), BLACK_Q45)


@pytest.fixture(scope="module")
def tiny_metrics() -> pl.DataFrame:
    return group_metrics(tiny_frame(), tiny_groups(), BLACK_Q45, coverage=0.5, n_boot=200, seed=3)


def value(metrics: pl.DataFrame, model: str, metric: str, column: str = "value") -> float | None:
    row = metrics.filter((pl.col("model") == model) & (pl.col("metric") == metric))
    assert row.height == 1
    return row[column][0]


def test_group_metrics_layout(tiny_metrics):
    assert tiny_metrics.schema == pl.Schema(GROUP_METRIC_SCHEMA)
    assert tiny_metrics.height == 2 * 11
    assert set(tiny_metrics["reference"]) == {"not_black_q45"}


@pytest.mark.parametrize(
    ("metric", "expected", "reference"),
    [
        ("flag_rate", 0.75, 0.25),
        ("tpr", 0.5, 0.0),
        ("fpr", 1.0, 0.5),
        ("fnr", 0.5, 1.0),
        ("precision", 1 / 3, 0.0),
        ("pai", 0.75, 0.0),
        ("exposure_share", 0.75, 0.25),
        ("population_share", 0.5, 0.5),
        ("incident_share", 0.4, 0.6),
        ("exposure_to_population", 1.5, 0.5),
        ("exposure_to_incidents", 1.875, 0.25 / 0.6),
    ],
)
def test_ensemble_group_metrics(tiny_metrics, metric, expected, reference):
    assert value(tiny_metrics, "ensemble", metric) == pytest.approx(expected)
    assert value(tiny_metrics, "ensemble", metric, "reference_value") == pytest.approx(reference)
    assert value(tiny_metrics, "ensemble", metric, "difference") == pytest.approx(expected - reference)


def test_ratio_versus_reference(tiny_metrics):
    assert value(tiny_metrics, "ensemble", "flag_rate", "ratio") == pytest.approx(3.0)
    assert value(tiny_metrics, "compstat", "flag_rate", "ratio") == pytest.approx(1.0)
    assert value(tiny_metrics, "ensemble", "tpr", "ratio") is None


def test_compstat_group_metrics(tiny_metrics):
    # CompSTAT flags c0 on day 1 (1 incident) and c1 on day 2 (1 incident) in the group.
    assert value(tiny_metrics, "compstat", "flag_rate") == pytest.approx(0.5)
    assert value(tiny_metrics, "compstat", "tpr") == pytest.approx(1.0)
    assert value(tiny_metrics, "compstat", "precision") == pytest.approx(1.0)
    assert value(tiny_metrics, "compstat", "pai") == pytest.approx(1.0 / (3 / 6))


def test_day_bootstrap_interval(tiny_metrics):
    # The group's flag rate is 1.0 on day 1 and 0.5 on day 2, so resamples give 0.5, 0.75 or 1.0.
    assert value(tiny_metrics, "ensemble", "flag_rate", "ci_low") == pytest.approx(0.5)
    assert value(tiny_metrics, "ensemble", "flag_rate", "ci_high") == pytest.approx(1.0)
    assert value(tiny_metrics, "ensemble", "population_share", "ci_low") == pytest.approx(0.5)


def test_period_hours_weight_exposure():
    frame = tiny_frame().rename({"hour": "period_start"}).with_columns(
        period_hours=pl.Series([8, 8, 8, 8, 24, 24, 24, 24], dtype=pl.UInt32)
    )

    metrics = group_metrics(frame, tiny_groups(), BLACK_Q45, coverage=0.5, n_boot=20)

    # Group: 2 flags of 8 h and 1 of 24 h = 40 of the city's 2 * 8 + 2 * 24 = 64 flagged hours.
    assert value(metrics, "ensemble", "exposure_share") == pytest.approx(40 / 64)
    assert value(metrics, "ensemble", "flag_rate") == pytest.approx(0.75)


def test_explicit_reference_group():
    definitions = [
        {"name": "black_q45", "column": "nh_black_share", "quintiles": [4, 5], "reference": "black_q1"},
        {"name": "black_q1", "column": "nh_black_share", "quintiles": [1]},
    ]
    groups = assign_groups(demographics([0.9, 0.8, 0.1, 0.2], [100, 100, 100, 100]), definitions)

    metrics = group_metrics(tiny_frame(), groups, definitions, coverage=0.5, n_boot=20)
    row = metrics.filter((pl.col("model") == "ensemble") & (pl.col("group") == "black_q45") & (pl.col("metric") == "flag_rate"))

    # black_q1 is c2 alone, flagged on day 2 only.
    assert row["reference"][0] == "black_q1"
    assert row["reference_value"][0] == pytest.approx(0.5)
    assert row["ratio"][0] == pytest.approx(1.5)


def test_cells_without_demographics_count_in_city():
    frame = pl.concat([
        tiny_frame(),
        tiny_frame().filter(pl.col("cell_id") == "c3").with_columns(cell_id=pl.lit("c9"), crime_count=pl.lit(0, dtype=pl.Int64)),
    ]).sort("hour", "cell_id")

    metrics = group_metrics(frame, tiny_groups(), BLACK_Q45, coverage=0.4, n_boot=20)

    # Five cells a map, two flagged a map (ceil(0.4 * 5)); the group keeps its flags.
    assert value(metrics, "ensemble", "exposure_share") == pytest.approx(0.75)
    assert value(metrics, "ensemble", "population_share") == pytest.approx(0.5)


def test_group_metrics_missing_model():
    with pytest.raises(ValueError, match=r"lacks columns \['sepp'\]"):
        group_metrics(tiny_frame(), tiny_groups(), BLACK_Q45, models=("ensemble", "sepp"))


# Disparity gate


def gate_frame(ensemble_ratio: float | None, compstat_ratio: float) -> pl.DataFrame:
    rows = [
        {"model": "ensemble", "group": "black_q45", "reference": "not_black_q45", "metric": "flag_rate", "ratio": ensemble_ratio},
        {"model": "compstat", "group": "black_q45", "reference": "not_black_q45", "metric": "flag_rate", "ratio": compstat_ratio},
        {"model": "ensemble", "group": "lowest_income", "reference": "not_lowest_income", "metric": "flag_rate", "ratio": 1.0},
        {"model": "compstat", "group": "lowest_income", "reference": "not_lowest_income", "metric": "flag_rate", "ratio": 1.0},
    ]
    return pl.DataFrame(rows, schema={**GROUP_METRIC_SCHEMA}, orient="row")


def test_gate_fails_on_planted_disparity(tiny_metrics):
    result = disparity_gate(tiny_metrics, metric="flag_rate", margin=0.1)

    assert not result.passed
    assert "black_q45" in result.message
    assert "ratio 3.000" in result.message
    assert "bound 1.100" in result.message
    assert "compstat ratio 1.000" in result.message


def test_gate_passes_without_disparity():
    result = disparity_gate(gate_frame(1.55, 1.5), margin=0.1)

    assert result.passed
    assert result.checks.height == 2


def test_gate_bound_is_inclusive():
    assert disparity_gate(gate_frame(1.6, 1.5), margin=0.1).passed
    assert not disparity_gate(gate_frame(1.61, 1.5), margin=0.1).passed


def test_gate_bounds_ratios_below_parity_too():
    """A group flagged a fifth as often as its reference is as far from parity as one flagged five times as often."""
    below = disparity_gate(gate_frame(0.2, 0.4), margin=0.1)

    assert not below.passed
    assert "ratio 0.200" in below.message
    assert "disparity 5.000" in below.message
    assert "bound 2.600" in below.message


def test_gate_passes_ratio_nearer_parity():
    """An ensemble ratio of 0.58 against CompSTAT's 0.46 is nearer parity, so it passes both ways of reading it."""
    assert disparity_gate(gate_frame(0.58, 0.46), margin=0.0).passed
    assert not disparity_gate(gate_frame(0.58, 0.46), margin=0.0, direction="higher").passed


def test_gate_one_sided_ignores_ratios_below_parity():
    assert disparity_gate(gate_frame(0.2, 0.4), margin=0.1, direction="higher").passed


def test_gate_fails_on_zero_ratio():
    result = disparity_gate(gate_frame(0.0, 1.0), margin=0.1)

    assert not result.passed
    assert "undefined or 0" in result.message


def test_gate_fails_on_undefined_ratio():
    result = disparity_gate(gate_frame(None, 1.5), margin=0.1)

    assert not result.passed
    assert "undefined" in result.message


def test_gate_rejects_bad_margin():
    with pytest.raises(ValueError, match="margin"):
        disparity_gate(gate_frame(1.0, 1.0), margin=-0.1)
    with pytest.raises(ValueError, match="direction"):
        disparity_gate(gate_frame(1.0, 1.0), direction="lower")


# Input-bias audit


def audit_groups() -> pl.DataFrame:
    return pl.DataFrame({"cell_id": ["x", "y"], "population": [100.0, 300.0], "g": [True, False]})


def audit_incidents() -> pl.DataFrame:
    return pl.DataFrame({
        "cell_id": ["x", "x", "y", None, "x", "y", "y", "y"],
        "primary_type": ["NARCOTICS", "narcotics ", "NARCOTICS", "NARCOTICS", "BATTERY", "BATTERY", "BATTERY", "THEFT"],
        "arrest": ["true", "TRUE", "false", "true", "false", "false", "true", None],
    })


def audit_row(audit: pl.DataFrame, category: str, group: str) -> dict:
    rows = audit.filter((pl.col("category") == category) & (pl.col("group") == group))
    assert rows.height == 1
    return rows.row(0, named=True)


def test_arrest_audit_overall():
    audit = arrest_share_by_category(audit_incidents(), audit_groups())

    narcotics = audit_row(audit, "NARCOTICS", "all")
    assert narcotics["records"] == 4
    assert narcotics["arrests"] == 3
    assert narcotics["arrest_share"] == pytest.approx(0.75)
    assert narcotics["category_kind"] == "arrest_driven"
    assert audit_row(audit, "BATTERY", "all")["category_kind"] == "victim_reported"
    assert audit_row(audit, "THEFT", "all")["category_kind"] == "other"
    assert audit_row(audit, "THEFT", "all")["arrest_share"] is None


def test_arrest_audit_groups():
    audit = arrest_share_by_category(audit_incidents(), audit_groups())

    narcotics = audit_row(audit, "NARCOTICS", "g")
    assert narcotics["records"] == 2
    assert narcotics["arrest_share"] == pytest.approx(1.0)
    assert narcotics["record_share"] == pytest.approx(2 / 3)
    assert narcotics["population_share"] == pytest.approx(0.25)
    assert narcotics["record_to_population"] == pytest.approx(8 / 3)

    battery = audit_row(audit, "BATTERY", "g")
    assert battery["records"] == 1
    assert battery["arrest_share"] == pytest.approx(0.0)
    assert battery["record_share"] == pytest.approx(1 / 3)

    theft = audit_row(audit, "THEFT", "g")
    assert theft["records"] == 0
    assert theft["record_share"] == pytest.approx(0.0)


def test_arrest_audit_without_groups():
    groups = audit_groups().drop("g")

    audit = arrest_share_by_category(audit_incidents(), groups)

    assert audit["group"].unique().to_list() == ["all"]
    assert audit_row(audit, "NARCOTICS", "all")["records"] == 4


def test_arrest_audit_rejects_bad_flag():
    incidents = audit_incidents().with_columns(arrest=pl.lit("Y"))

    with pytest.raises(ValueError, match="found 'Y' at row 0"):
        arrest_share_by_category(incidents, audit_groups())


def test_arrest_audit_names_missing_column():
    with pytest.raises(ValueError, match=r"lack columns \['arrest'\].*read_incidents_for_arrest_audit"):
        arrest_share_by_category(audit_incidents().drop("arrest"), audit_groups())
