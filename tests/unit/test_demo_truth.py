"""Tests for the known-truth mode of the demo writer: reporting, discovery and truth/cells.csv.

The counts are checked against the truth file and against the crime files read back the way
ingest reads them (the latest version of each ID wins), on small grids with a fixed seed.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.demo import TRUTH_HEADER, DemoSummary, Discovery, write_demo_extracts

START = date(2022, 1, 1)
END = date(2022, 6, 30)
DAYS = (END - START).days + 1
VIOLENT_CODES = {"01A", "02", "03", "04A", "04B"}
CELLS = 16
# Patrols only in the two south-west cells. With 16 cells and a detection rate of 0.25 the
# discovery probability there is min(1, 0.5 * 16 * 0.25) = 1, and 0 elsewhere.
PATROL_SHARE = np.array([0.5, 0.5] + [0.0] * (CELLS - 2))


def write(folder: Path, **known_truth: object) -> DemoSummary:
    return write_demo_extracts(folder, start=START, end=END, grid_rows=4, grid_cols=4,
                               **known_truth)


def read_truth(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "truth" / "cells.csv", dtype={"beat": str})


def latest_crimes(folder: Path) -> pd.DataFrame:
    """Read the crime rows and keep the latest version of each ID, the rule ingest applies."""
    frame = pd.read_csv(folder / "crimes" / "demo_crimes_2022.csv.gz", dtype=str, keep_default_na=False)
    frame["updated"] = pd.to_datetime(frame["Updated On"], format="%m/%d/%Y %I:%M:%S %p")
    return frame.sort_values("updated", kind="stable").drop_duplicates("ID", keep="last")


def binomial_bound(trials: int, probability: float) -> float:
    """Four standard deviations of a binomial count."""
    return 4.0 * math.sqrt(trials * probability * (1.0 - probability))


@pytest.fixture(scope="module")
def patrolled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Half of incidents reported everywhere, and police find every unreported one in two cells."""
    folder = tmp_path_factory.mktemp("patrolled")
    write(folder, reporting=0.5, discovered=Discovery(patrol_share=PATROL_SHARE, detection_rate=0.25))
    return folder


@pytest.fixture(scope="module")
def patterned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("patterned")
    write(folder, equal_risk=True, reporting="west_half_low")
    return folder


# ---------------------------------------------------------------------------
# Truth file
# ---------------------------------------------------------------------------


def test_truth_file_has_one_row_per_cell(patrolled: Path) -> None:
    truth = read_truth(patrolled)

    assert tuple(truth.columns) == TRUTH_HEADER
    assert truth["cell_id"].tolist()[:5] == ["R00C00", "R00C01", "R00C02", "R00C03", "R01C00"]
    assert truth["beat"].tolist()[:5] == ["0111", "0112", "0113", "0114", "0121"]
    assert len(truth) == CELLS


def test_written_is_reported_plus_discovered(patrolled: Path) -> None:
    truth = read_truth(patrolled)

    for kind in ("violent", "incidents"):
        assert (truth[f"written_{kind}"] == truth[f"reported_{kind}"] + truth[f"discovered_{kind}"]).all()
        assert (truth[f"written_{kind}"] <= truth[f"true_{kind}"]).all()
    assert (truth["true_violent"] < truth["true_incidents"]).all()


def test_truth_counts_match_crime_files(patrolled: Path) -> None:
    truth = read_truth(patrolled).set_index("beat")
    crimes = latest_crimes(patrolled)
    violent = crimes[crimes["FBI Code"].isin(VIOLENT_CODES)]

    # A second homicide victim gets its own ID under the same case number, so one written
    # incident is one case number.
    cases = crimes.groupby("Beat")["Case Number"].nunique().reindex(truth.index, fill_value=0)
    violent_cases = violent.groupby("Beat")["Case Number"].nunique().reindex(truth.index, fill_value=0)
    assert cases.tolist() == truth["written_incidents"].tolist()
    assert violent_cases.tolist() == truth["written_violent"].tolist()


def test_summary_points_to_truth_file(tmp_path: Path) -> None:
    summary = write(tmp_path, reporting=0.8)

    assert summary.truth_file == tmp_path / "truth" / "cells.csv"
    assert summary.truth_file.is_file()


def test_expected_violent_rate_matches_true_counts(patterned: Path) -> None:
    truth = read_truth(patterned)
    expected_total = truth["expected_violent_per_day"].sum() * DAYS
    true_total = truth["true_violent"].sum()

    assert truth["planted_risk"].tolist() == [1.0] * CELLS
    # Triggering makes the count overdispersed: its variance is about the mean / (1 - 0.3)**2.
    assert abs(true_total - expected_total) < 4.0 * math.sqrt(expected_total) / 0.7
    # Edge cells lose the children that fall off the grid, so the corners are lowest.
    assert truth["expected_violent_per_day"].idxmin() == 0
    assert truth["expected_violent_per_day"].max() / truth["expected_violent_per_day"].min() < 1.1


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def test_reporting_thins_by_its_probability(patrolled: Path) -> None:
    truth = read_truth(patrolled)
    true_total = int(truth["true_incidents"].sum())
    reported_total = int(truth["reported_incidents"].sum())

    assert abs(reported_total - 0.5 * true_total) < binomial_bound(true_total, 0.5)
    assert truth["reporting_probability"].tolist() == [0.5] * CELLS


def test_west_half_low_pattern_sets_probabilities(patterned: Path) -> None:
    truth = read_truth(patterned)
    west = truth["cell_id"].str[4:6].astype(int) < 2

    assert set(truth.loc[west, "reporting_probability"]) == {0.3}
    assert set(truth.loc[~west, "reporting_probability"]) == {0.9}
    for half, probability in ((west, 0.3), (~west, 0.9)):
        true_count = int(truth.loc[half, "true_incidents"].sum())
        reported = int(truth.loc[half, "reported_incidents"].sum())
        assert abs(reported - probability * true_count) < binomial_bound(true_count, probability)


def test_per_cell_probabilities_are_honoured(tmp_path: Path) -> None:
    probabilities = np.tile([0.0, 1.0], CELLS // 2)
    write(tmp_path, reporting=probabilities)
    truth = read_truth(tmp_path)
    crimes = latest_crimes(tmp_path)

    silent = truth[probabilities == 0.0]
    full = truth[probabilities == 1.0]
    assert (silent["written_incidents"] == 0).all()
    assert (full["written_incidents"] == full["true_incidents"]).all()
    assert set(crimes["Beat"]) == set(full["beat"])


def test_reporting_one_keeps_default_crime_files(tmp_path: Path) -> None:
    write(tmp_path / "default")
    write(tmp_path / "all_reported", reporting=1.0)

    for name in ("crimes/demo_crimes_2022.csv.gz", "311/demo_311_service_requests_2022.csv.gz"):
        assert (tmp_path / "default" / name).read_bytes() == (tmp_path / "all_reported" / name).read_bytes()


def test_default_run_removes_stale_truth_file(tmp_path: Path) -> None:
    write(tmp_path, reporting=0.5)
    summary = write(tmp_path)

    assert summary.truth_file is None
    assert not (tmp_path / "truth" / "cells.csv").exists()


def test_same_seed_writes_same_truth(tmp_path: Path) -> None:
    write(tmp_path / "first", reporting="east_half_low")
    write(tmp_path / "second", reporting="east_half_low")

    first = (tmp_path / "first" / "truth" / "cells.csv").read_bytes()
    assert first == (tmp_path / "second" / "truth" / "cells.csv").read_bytes()


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------


def test_discovery_follows_patrol_share(patrolled: Path) -> None:
    truth = read_truth(patrolled)
    patrolled_cells = truth.iloc[:2]
    unpatrolled_cells = truth.iloc[2:]

    assert patrolled_cells["discovery_probability"].tolist() == [1.0, 1.0]
    assert (unpatrolled_cells["discovery_probability"] == 0.0).all()
    assert (patrolled_cells["written_incidents"] == patrolled_cells["true_incidents"]).all()
    assert (unpatrolled_cells["discovered_incidents"] == 0).all()
    assert truth["patrol_share"].tolist() == PATROL_SHARE.tolist()


def test_discovery_finds_its_share_of_unreported(tmp_path: Path) -> None:
    even = Discovery(patrol_share=np.full(CELLS, 1.0 / CELLS), detection_rate=0.4)
    write(tmp_path, reporting=0.5, discovered=even)
    truth = read_truth(tmp_path)
    unreported = int((truth["true_incidents"] - truth["reported_incidents"]).sum())
    discovered = int(truth["discovered_incidents"].sum())

    assert truth["discovery_probability"].tolist() == pytest.approx([0.4] * CELLS)
    assert abs(discovered - 0.4 * unreported) < binomial_bound(unreported, 0.4)


def test_without_discovery_nothing_is_discovered(patterned: Path) -> None:
    truth = read_truth(patterned)

    assert (truth["discovered_incidents"] == 0).all()
    assert truth["patrol_share"].isna().all()
    assert (truth["written_incidents"] == truth["reported_incidents"]).all()


# ---------------------------------------------------------------------------
# Invalid input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("known_truth", "message"),
    [
        ({"reporting": 1.5}, r"reporting probability 1\.5: it must lie between 0 and 1"),
        ({"reporting": -0.1}, r"reporting probability -0\.1"),
        ({"reporting": float("nan")}, r"reporting probability nan"),
        ({"reporting": [0.5] * (CELLS - 1) + [2.0]}, r"reporting probability 2\.0 for cell 15"),
        ({"reporting": [0.5] * 3}, r"got shape \(3,\), but the grid has 16 cells"),
        ({"reporting": "north_half_low"}, r"Unknown demo reporting pattern 'north_half_low'"),
        ({"discovered": Discovery(patrol_share=[0.1] * CELLS, detection_rate=0.5)},
         r"patrol shares: they sum to 1\.6"),
        ({"discovered": Discovery(patrol_share=[1.0 / CELLS] * CELLS, detection_rate=2.0)},
         r"detection rate 2\.0"),
        ({"discovered": Discovery(patrol_share=[1.0] + [0.0] * (CELLS - 2) + [-0.0001],
                                  detection_rate=0.5)},
         r"patrol share -0\.0001 for cell 15"),
    ],
)
def test_invalid_known_truth_raises(tmp_path: Path, known_truth: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write(tmp_path, **known_truth)

    assert not (tmp_path / "crimes").exists()
