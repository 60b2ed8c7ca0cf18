"""The Lum & Isaac (2016) check on the full pipeline, with a known-truth demo city.

Every cell of a 6 x 6 synthetic grid has the same true violent rate, but victims in the west half
report only 30% of incidents and victims in the east half 90%. The whole main job (ingest,
warehouse, audits, features, ensemble, scoring, backtest) runs on the recorded incidents. A model
that learns from records should forecast about three times the risk in the east, although the
truth file shows equal true rates. Lum and Isaac, "To predict and serve?", Significance 13(5),
2016, DOI 10.1111/j.1740-9713.2016.00960.x.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from ml.demo import write_demo_extracts
from orchestration.cli import ReleaseBlockedError, run_main_job
from orchestration.jurisdiction import JURISDICTIONS_DIR
from orchestration.warehouse import connect

GRID_SIDE = 6
WEST_REPORTING = 0.3
EAST_REPORTING = 0.9
# The recorded rates differ by 0.9 / 0.3 = 3. The small ensemble of this test learns a ratio of
# about 2.1 (measured once with seed 7), because lagged counts over four weeks are a noisy
# measure of a cell's rate and the model shrinks toward the city mean.
MIN_RISK_RATIO = 1.6
MAX_RISK_RATIO = 4.5


def write_known_truth_demo(folder: Path) -> tuple[Path, Path]:
    """Write the equal-risk, unequal-reporting demo and a run file with a small ensemble."""
    extracts = folder / "extracts"
    write_demo_extracts(extracts, start=date(2022, 9, 1), end=date(2023, 4, 30), grid_rows=GRID_SIDE,
                        grid_cols=GRID_SIDE, equal_risk=True, reporting="west_half_low")
    content = yaml.safe_load((JURISDICTIONS_DIR / "demo.yaml").read_text(encoding="utf-8"))
    content["name"] = "truthdemo"
    content["data_start"] = "2022-09-01"
    jurisdiction = folder / "truthdemo.yaml"
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")

    run_file = folder / "run.yaml"
    run_file.write_text(yaml.safe_dump({
        "jurisdiction": str(jurisdiction),
        "extracts_folder": str(extracts),
        "targets": ["violent"],
        # 25 weeks: weekly refresh partitions end on Saturdays, the weekday of train.end.
        "train": {"start": "2022-10-08", "end": "2023-04-01"},
        "score": {"start": "2023-04-01", "end": "2023-04-02"},
        # About 1,000 rows per net's downsample: batches of 64 give the nets about 16 steps an
        # epoch, where the default 1,024 would give one.
        "ensemble": {"n_nets": 5, "epochs": 6, "batch_size": 64},
        "backtest": {"window": {"start": "2023-04-01", "end": "2023-04-08"}, "n_boot": 50,
                     "baselines": ["compstat", "naive"]},
        "simulation": {"forecaster": "trailing_mean", "simulated_days": 60},
    }), encoding="utf-8")
    return run_file, extracts


@pytest.fixture(scope="module")
def truth_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("known_truth")
    run_file, extracts = write_known_truth_demo(folder)
    try:
        run_main_job(run_file, folder / "home", instance=dg.DagsterInstance.ephemeral())
    except ReleaseBlockedError:
        pass  # Every job ran, and only the bias gate kept the ensemble from becoming current.
    return extracts, folder / "home" / "truthdemo" / "warehouse.duckdb"


def with_half(frame: pl.DataFrame) -> pl.DataFrame:
    """Label each `RrrCcc` cell west or east, the halves of the "west_half_low" pattern."""
    column = pl.col("cell_id").str.slice(4, 2).cast(pl.Int32)
    return frame.with_columns(pl.when(column < GRID_SIDE // 2).then(pl.lit("west"))
                              .otherwise(pl.lit("east")).alias("half"))


def half_means(frame: pl.DataFrame, value: str) -> dict[str, float]:
    return dict(with_half(frame).group_by("half").agg(pl.col(value).mean()).iter_rows())


def test_truth_file_shows_equal_true_rates(truth_run: tuple[Path, Path]) -> None:
    truth = pl.read_csv(truth_run[0] / "truth" / "cells.csv", schema_overrides={"beat": pl.String})
    expected = half_means(truth, "expected_violent_per_day")
    observed = half_means(truth, "true_violent")
    reporting = half_means(truth, "reporting_probability")

    assert truth.height == GRID_SIDE * GRID_SIDE
    assert truth["planted_risk"].to_list() == [1.0] * truth.height
    assert expected["east"] == pytest.approx(expected["west"], rel=1e-12)
    assert observed["east"] / observed["west"] == pytest.approx(1.0, abs=0.2)
    assert reporting["west"] == pytest.approx(WEST_REPORTING)
    assert reporting["east"] == pytest.approx(EAST_REPORTING)


def test_records_follow_reporting(truth_run: tuple[Path, Path]) -> None:
    truth = pl.read_csv(truth_run[0] / "truth" / "cells.csv", schema_overrides={"beat": pl.String})
    written = half_means(truth, "written_violent")

    assert 2.0 < written["east"] / written["west"] < 4.5


def test_scored_risk_follows_reporting_not_offending(truth_run: tuple[Path, Path]) -> None:
    with connect(truth_run[1], read_only=True) as connection:
        scores = connection.sql("SELECT cell_id, risk FROM main.risk_scores WHERE target = 'violent'").pl()
    truth = pl.read_csv(truth_run[0] / "truth" / "cells.csv", schema_overrides={"beat": pl.String})
    risk = half_means(scores, "risk")
    offending = half_means(truth, "true_violent")

    # Measured: a risk ratio of 2.08 against 2.29 for the written violent incidents and 0.87 for
    # the true ones. An observation step that wrote every incident would give a ratio near 1.
    assert scores["cell_id"].n_unique() == GRID_SIDE * GRID_SIDE
    assert risk["east"] / risk["west"] > MIN_RISK_RATIO
    assert risk["east"] / risk["west"] < MAX_RISK_RATIO
    assert risk["east"] / risk["west"] > 2.0 * offending["east"] / offending["west"]


def test_backtest_risk_follows_reporting(truth_run: tuple[Path, Path]) -> None:
    with connect(truth_run[1], read_only=True) as connection:
        predictions = connection.sql("SELECT cell_id, ensemble FROM main.backtest_predictions").pl()
    risk = half_means(predictions, "ensemble")

    assert risk["east"] / risk["west"] > MIN_RISK_RATIO
    assert risk["east"] / risk["west"] < MAX_RISK_RATIO
