"""Unit tests for ml.hotspots: the projection of cells, the retrospective kernel and prospective hot-spotting."""

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from ml.baselines import RandomBaseline
from ml.hotspots import ProspectiveHotspot, RetrospectiveHotspot, cells_from_lonlat
from ml.metrics import roc_auc
from tests.unit.point_processes import (
    START,
    cell_hour_targets,
    counts_frame,
    grid_cells,
    observed_counts,
    simulate_hawkes,
)

UTC = timezone.utc
CUTOFF = datetime(2017, 10, 2, 5, tzinfo=UTC)


def line_cells(*x_m: float) -> pl.DataFrame:
    """Return cells a, b, c, ... with centroids on the x axis."""
    return pl.DataFrame(
        {
            "cell_id": [chr(ord("a") + index) for index in range(len(x_m))],
            "x_m": [float(x) for x in x_m],
            "y_m": [0.0] * len(x_m),
            "area_km2": [0.25] * len(x_m),
        }
    )


def crimes(*rows: tuple[str, datetime, int]) -> pl.DataFrame:
    """Return a sparse history with one row per (cell_id, hour, crime_count)."""
    return pl.DataFrame(
        [{"cell_id": cell_id, "hour": hour, "crime_count": count} for cell_id, hour, count in rows],
        schema={"cell_id": pl.String, "hour": pl.Datetime("us", "UTC"), "crime_count": pl.Int64},
    )


def targets_at(cells: pl.DataFrame, hour: datetime = CUTOFF) -> pl.DataFrame:
    return pl.DataFrame({"cell_id": cells["cell_id"], "hour": [hour] * cells.height})


# cells


def test_cells_from_lonlat_distances() -> None:
    frame = pl.DataFrame(
        {
            "cell_id": ["a", "b", "c"],
            "centroid_lon": [-87.70, -87.70, -87.60],
            "centroid_lat": [41.80, 41.81, 41.80],
            "area_km2": [0.5, 0.7, 0.9],
        }
    )

    cells = cells_from_lonlat(frame)
    x = cells["x_m"].to_numpy()
    y = cells["y_m"].to_numpy()
    mean_lat = math.radians((41.80 + 41.81 + 41.80) / 3)

    assert cells.columns == ["cell_id", "x_m", "y_m", "area_km2"]
    assert y[1] - y[0] == pytest.approx(6_371_008.8 * math.radians(0.01))
    assert x[2] - x[0] == pytest.approx(6_371_008.8 * math.cos(mean_lat) * math.radians(0.10))
    assert x.mean() == pytest.approx(0.0, abs=1e-6)
    assert y.mean() == pytest.approx(0.0, abs=1e-6)


def test_cells_from_lonlat_rejects_missing_centroid() -> None:
    frame = pl.DataFrame({"cell_id": ["a"], "centroid_lon": [None], "centroid_lat": [41.8], "area_km2": [1.0]},
                         schema_overrides={"centroid_lon": pl.Float64})

    with pytest.raises(ValueError, match="must be finite"):
        cells_from_lonlat(frame)


def test_cells_reject_duplicate_ids() -> None:
    cells = line_cells(0, 100).with_columns(cell_id=pl.lit("a"))

    with pytest.raises(ValueError, match=r"cells.cell_id must be unique, found duplicates \['a'\]"):
        RetrospectiveHotspot(cells)


# retrospective hotspot


def test_retrospective_kernel_sum() -> None:
    cells = line_cells(0, 500, 5000)
    history = crimes(("a", CUTOFF - timedelta(hours=3), 2), ("a", CUTOFF - timedelta(weeks=2), 9))

    model = RetrospectiveHotspot(cells, weeks=1, bandwidth_m=500).fit(history, CUTOFF)
    risk = model.predict(targets_at(cells))["risk"].to_list()

    # Cell b is one bandwidth away (weight exp(-1/2)); cell c is beyond the 4-bandwidth cut.
    neighbour = math.exp(-0.5)
    assert risk[0] == pytest.approx(2 / (1 + neighbour) / 168)
    assert risk[1] == pytest.approx(2 * neighbour / (1 + neighbour) / 168)
    assert risk[2] == 0.0
    assert model.n_events == 2


def test_retrospective_risks_sum_to_city_rate() -> None:
    cells = grid_cells(5, 300.0)
    history = crimes(("c000", CUTOFF - timedelta(days=1), 3), ("c012", CUTOFF - timedelta(days=20), 1),
                     ("c024", CUTOFF - timedelta(weeks=7), 4))

    model = RetrospectiveHotspot(cells, weeks=8, bandwidth_m=400).fit(history, CUTOFF)

    assert model.cell_risk["risk"].sum() == pytest.approx(8 / (8 * 168))
    assert model.risk_kind == "rate"
    assert model.name == "retrospective_hotspot"


def test_retrospective_ignores_cutoff_hour() -> None:
    cells = line_cells(0, 500)
    history = crimes(("a", CUTOFF - timedelta(hours=1), 1), ("b", CUTOFF, 10))

    risk = RetrospectiveHotspot(cells, weeks=1, bandwidth_m=1).fit(history, CUTOFF).predict(targets_at(cells))["risk"]

    assert risk.to_list() == [1 / 168, 0.0]


def test_retrospective_beats_random_on_stable_hotspots() -> None:
    cells = grid_cells(12, 400.0)
    cell_ids = cells["cell_id"].to_list()
    x = cells["x_m"].to_numpy()
    y = cells["y_m"].to_numpy()
    # Two smooth Gaussian hotspots on a low floor, stable over time.
    rate = 0.0005 + 0.02 * np.exp(-((x - 1200) ** 2 + (y - 1200) ** 2) / (2 * 600**2))
    rate += 0.015 * np.exp(-((x - 3600) ** 2 + (y - 3200) ** 2) / (2 * 500**2))
    cell_index, times = simulate_hawkes(rate, theta=0.0, omega=1.0, n_hours=9 * 168, seed=8)
    history = counts_frame(cell_ids, cell_index, times)
    cutoff = START + timedelta(weeks=8)
    targets = cell_hour_targets(cell_ids, cutoff, 168)
    outcome = observed_counts(targets, history) > 0

    kde = RetrospectiveHotspot(cells, weeks=8, bandwidth_m=400).fit(history, cutoff).predict(targets)["risk"]
    random = RandomBaseline(seed=2).fit(history, cutoff).predict(targets)["risk"]

    assert roc_auc(outcome, kde.to_numpy()) > 0.75
    assert roc_auc(outcome, random.to_numpy()) == pytest.approx(0.5, abs=0.05)


# prospective hotspot


def test_prospective_weights_by_hand() -> None:
    cells = line_cells(0, 500, 1000, 3000)
    history = crimes(
        ("a", CUTOFF - timedelta(weeks=1), 1),
        ("b", CUTOFF - timedelta(weeks=2), 2),
        ("d", CUTOFF - timedelta(weeks=3), 1),
        ("a", CUTOFF - timedelta(weeks=5), 7),  # older than the 4-week bandwidth
    )

    model = ProspectiveHotspot(cells, bandwidth_m=1000, distance_unit_m=500, weeks=4).fit(history, CUTOFF)
    score = model.cell_risk["score"].to_list()

    assert score[0] == pytest.approx(1 / 2 + 2 * (1 / 2) * (1 / 3))
    assert score[1] == pytest.approx((1 / 2) * (1 / 2) + 2 * (1 / 3))
    assert score[2] == pytest.approx((1 / 3) * (1 / 2) + 2 * (1 / 2) * (1 / 3))
    assert score[3] == pytest.approx(1 / 4)  # its own crime only; cell c is 4 units away


def test_prospective_risk_rescaled_to_city_rate() -> None:
    cells = line_cells(0, 500, 1000, 3000)
    history = crimes(("a", CUTOFF - timedelta(weeks=1), 1), ("b", CUTOFF - timedelta(weeks=2), 2),
                     ("d", CUTOFF - timedelta(weeks=3), 1))

    model = ProspectiveHotspot(cells, bandwidth_m=1000, distance_unit_m=500, weeks=4).fit(history, CUTOFF)
    risk = model.predict(targets_at(cells, CUTOFF + timedelta(hours=30)))["risk"].to_numpy()

    score_total = 5 / 6 + 11 / 12 + 1 / 2 + 1 / 4
    assert risk.sum() == pytest.approx(4 / (4 * 168))
    assert risk[0] == pytest.approx((5 / 6) / score_total * 4 / 672)
    assert model.risk_kind == "rate"
    assert model.name == "prospective_hotspot"


def test_prospective_beats_random_on_near_repeats() -> None:
    cells = grid_cells(15, 500.0)
    cell_ids = cells["cell_id"].to_list()
    side = 15
    neighbours = []
    for index in range(side * side):
        row, column = divmod(index, side)
        near = [index]
        near += [(row + dr) * side + column + dc for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0))
                 if 0 <= row + dr < side and 0 <= column + dc < side]
        neighbours.append(np.array(near))
    # A uniform background, so that only the contagion of recent crimes makes a cell riskier.
    background = np.full(side * side, 0.0004)
    cell_index, times = simulate_hawkes(background, theta=0.8, omega=1 / 72, n_hours=30 * 168, seed=4,
                                        neighbours=neighbours)
    history = counts_frame(cell_ids, cell_index, times)

    prospective_risk = []
    random_risk = []
    outcomes = []
    for week in range(10, 30, 2):
        cutoff = START + timedelta(weeks=week)
        targets = cell_hour_targets(cell_ids, cutoff, 72)
        outcomes.append(observed_counts(targets, history) > 0)
        model = ProspectiveHotspot(cells, bandwidth_m=800, distance_unit_m=500, weeks=8).fit(history, cutoff)
        prospective_risk.append(model.predict(targets)["risk"].to_numpy())
        random_risk.append(RandomBaseline(seed=1).fit(history, cutoff).predict(targets)["risk"].to_numpy())

    outcome = np.concatenate(outcomes)
    assert roc_auc(outcome, np.concatenate(prospective_risk)) > 0.6
    assert roc_auc(outcome, np.concatenate(random_risk)) == pytest.approx(0.5, abs=0.03)


# input checks


@pytest.mark.parametrize("bandwidth_m", [-100.0, 0.0, math.nan])
def test_hotspots_reject_bad_bandwidth(bandwidth_m: float) -> None:
    cells = line_cells(0, 500)

    with pytest.raises(ValueError, match=r"bandwidth_m must be a positive number, got .*in metres"):
        RetrospectiveHotspot(cells, bandwidth_m=bandwidth_m)
    with pytest.raises(ValueError, match="bandwidth_m must be a positive number"):
        ProspectiveHotspot(cells, bandwidth_m=bandwidth_m)


def test_prospective_rejects_bad_distance_unit() -> None:
    with pytest.raises(ValueError, match="distance_unit_m must be a positive number, got -1"):
        ProspectiveHotspot(line_cells(0, 500), distance_unit_m=-1)


def test_hotspots_reject_zero_weeks() -> None:
    with pytest.raises(ValueError, match="weeks must be a positive whole number of weeks, got 0"):
        RetrospectiveHotspot(line_cells(0), weeks=0)


def test_hotspots_reject_no_events() -> None:
    history = crimes(("a", CUTOFF - timedelta(weeks=20), 1), ("a", CUTOFF, 1))

    with pytest.raises(ValueError, match=r"history has no crimes \(crime_count > 0\) between .* lengthen the window"):
        RetrospectiveHotspot(line_cells(0)).fit(history, CUTOFF)
    with pytest.raises(ValueError, match="history has no crimes"):
        ProspectiveHotspot(line_cells(0)).fit(history, CUTOFF)


def test_hotspots_reject_unknown_history_cell() -> None:
    history = crimes(("zz", CUTOFF - timedelta(hours=1), 1))

    with pytest.raises(ValueError, match=r"history has crimes in 1 cells that are not in cells, for example \['zz'\]"):
        ProspectiveHotspot(line_cells(0)).fit(history, CUTOFF)


def test_hotspots_reject_unknown_target_cell() -> None:
    model = RetrospectiveHotspot(line_cells(0)).fit(crimes(("a", CUTOFF - timedelta(hours=1), 1)), CUTOFF)

    with pytest.raises(ValueError, match=r"targets has 1 cells that are not in the cells given to retrospective_hotspot"):
        model.predict(pl.DataFrame({"cell_id": ["q"], "hour": [CUTOFF]}))


def test_hotspots_reject_naive_cutoff() -> None:
    history = crimes(("a", CUTOFF - timedelta(hours=1), 1))

    with pytest.raises(ValueError, match="cutoff must be timezone-aware"):
        ProspectiveHotspot(line_cells(0)).fit(history, datetime(2017, 10, 2))


def test_hotspots_predict_before_fit() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        ProspectiveHotspot(line_cells(0)).predict(targets_at(line_cells(0)))
