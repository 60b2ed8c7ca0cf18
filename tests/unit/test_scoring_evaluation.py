"""Model choice for scoring, relative risk, and the evaluation's metric table."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from orchestration.assets.evaluation import model_metrics
from orchestration.assets.models import REGISTRY_DDL
from orchestration.assets.scoring import NoModelError, latest_model, relative_risk
from orchestration.warehouse import connect

UTC = timezone.utc


def register(warehouse: Path, models: list[tuple[str, datetime]]) -> None:
    with connect(warehouse) as connection:
        connection.execute(REGISTRY_DDL)
        for model_id, train_end in models:
            connection.execute("INSERT INTO main.model_registry VALUES (?, ?, ?, ?, 1, 1, 0.5, 'test')",
                               [model_id, datetime(2017, 1, 1), train_end, f"/models/{model_id}"])


def test_latest_model_trained_before_hour(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    register(warehouse, [("old", datetime(2017, 9, 1)), ("new", datetime(2017, 10, 1)),
                         ("future", datetime(2017, 10, 8))])

    model_id, path = latest_model(warehouse, datetime(2017, 10, 1, tzinfo=UTC))

    assert model_id == "new"
    assert path == Path("/models/new")


def test_no_model_before_hour(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    register(warehouse, [("future", datetime(2017, 10, 8))])

    with pytest.raises(NoModelError, match="2017-10-01T00:00:00"):
        latest_model(warehouse, datetime(2017, 10, 1, tzinfo=UTC))


def test_empty_registry_names_the_fix(tmp_path: Path) -> None:
    with connect(tmp_path / "warehouse.duckdb"):
        pass

    with pytest.raises(NoModelError, match="materialize risk_ensemble"):
        latest_model(tmp_path / "warehouse.duckdb", datetime(2017, 10, 1, tzinfo=UTC))


def test_relative_risk_per_map() -> None:
    issued = datetime(2017, 10, 1, tzinfo=UTC)
    keys = pl.DataFrame({"issued_at": [issued] * 4, "cell_id": ["A", "B", "A", "B"],
                         "horizon_hours": [1, 1, 2, 2]})

    scored = relative_risk(keys, np.array([0.01, 0.03, 0.02, 0.02]))

    assert scored["relative_risk"].to_list() == pytest.approx([0.5, 1.5, 1.0, 1.0])


def evaluation_rows(counts: list[int], areas: list[float]) -> pl.DataFrame:
    issued = datetime(2017, 10, 1, tzinfo=UTC)
    return pl.DataFrame({
        "issued_at": [issued] * len(counts),
        "horizon_hours": [1] * len(counts),
        "violent_count": counts,
        "area_km2": areas,
    })


def test_perfect_ranking_metrics() -> None:
    rows = evaluation_rows([1] + [0] * 19, [1.0] * 20)
    risk = np.linspace(0.9, 0.01, 20)

    metrics = model_metrics(rows, risk, 0.05, probabilities=True)

    assert metrics["roc_auc"] == pytest.approx(1.0)
    assert metrics["tpr"] == pytest.approx(1.0)
    assert metrics["fpr"] == pytest.approx(0.0)
    assert metrics["pai"] == pytest.approx(20.0)
    assert metrics["observed_rate"] == pytest.approx(0.05)
    assert metrics["brier"] == pytest.approx(float(np.mean((risk - np.array([1] + [0] * 19)) ** 2)))


def test_baseline_metrics_skip_probability_scores() -> None:
    rows = evaluation_rows([0, 2, 0, 0], [1.0, 1.0, 1.0, 7.0])

    metrics = model_metrics(rows, np.array([3.0, 2.0, 1.0, 0.0]), 0.25, probabilities=False)

    assert "brier" not in metrics
    assert metrics["tpr"] == pytest.approx(0.0)
    assert metrics["pai"] == pytest.approx(5.0)
    assert metrics["hit_rate"] == pytest.approx(1.0)
    assert metrics["area_share_used"] == pytest.approx(0.2)
