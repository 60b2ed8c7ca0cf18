"""Model choice for scoring, rank and relative risk, table migrations, and the evaluation's metric table."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from orchestration.assets.evaluation import model_metrics, read_evaluation_rows
from orchestration.assets.models import REGISTRY_COLUMNS, REGISTRY_DDL, migrate_registry, table_columns
from orchestration.assets.scoring import (
    SCORE_COLUMNS,
    NoModelError,
    latest_model,
    migrate_risk_scores,
    model_spans,
    rank_and_relative_risk,
)
from orchestration.jurisdiction import Window
from orchestration.warehouse import connect

UTC = timezone.utc


def register(warehouse: Path, models: list[tuple[str, datetime]], target: str = "violent") -> None:
    with connect(warehouse) as connection:
        connection.execute(REGISTRY_DDL)
        for model_id, train_end in models:
            values = {"model_id": model_id, "target": target, "refresh_partition": None,
                      "train_start": datetime(2017, 1, 1), "train_end": train_end, "path": f"/models/{model_id}",
                      "training_rows": 1, "training_positives": 1, "base_rate": 0.5, "code_version": "test",
                      "registered_at": None}
            connection.execute(f"INSERT INTO main.model_registry VALUES ({', '.join('?' for _ in REGISTRY_COLUMNS)})",
                               [values[name] for name in REGISTRY_COLUMNS])


def test_latest_model_trained_before_hour(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    register(warehouse, [("old", datetime(2017, 9, 1)), ("new", datetime(2017, 10, 1)),
                         ("future", datetime(2017, 10, 8))])

    model_id, path = latest_model(warehouse, "violent", datetime(2017, 10, 1, tzinfo=UTC))

    assert model_id == "new"
    assert path == Path("/models/new")


def test_latest_model_of_its_target(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    register(warehouse, [("violent-old", datetime(2017, 9, 1)), ("violent-new", datetime(2017, 10, 1))])
    register(warehouse, [("robbery-old", datetime(2017, 9, 1)), ("robbery-later", datetime(2017, 10, 2))], "robbery")

    model_id, _ = latest_model(warehouse, "robbery", datetime(2017, 10, 1, 12, tzinfo=UTC))

    assert model_id == "robbery-old"


def test_spans_switch_at_train_end(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    register(warehouse, [("a", datetime(2017, 9, 24)), ("b", datetime(2017, 10, 1)), ("c", datetime(2017, 10, 8))])

    spans = model_spans(warehouse, "violent", datetime(2017, 9, 30, tzinfo=UTC), datetime(2017, 10, 8, tzinfo=UTC))

    assert [(span.model_id, span.start.day, span.end.day) for span in spans] == [("a", 30, 1), ("b", 1, 8)]


def test_no_model_before_hour(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    register(warehouse, [("future", datetime(2017, 10, 8))])

    with pytest.raises(NoModelError, match="no violent ensemble trained before 2017-10-01T00:00:00"):
        latest_model(warehouse, "violent", datetime(2017, 10, 1, tzinfo=UTC))


def test_empty_registry_names_the_fix(tmp_path: Path) -> None:
    with connect(tmp_path / "warehouse.duckdb"):
        pass

    with pytest.raises(NoModelError, match="materialize risk_ensemble"):
        latest_model(tmp_path / "warehouse.duckdb", "violent", datetime(2017, 10, 1, tzinfo=UTC))


def test_rank_and_relative_risk_per_map() -> None:
    issued = datetime(2017, 10, 1, tzinfo=UTC)
    scored = pl.DataFrame({
        "issued_at": [issued] * 8,
        "target": ["violent"] * 6 + ["robbery"] * 2,
        "cell_id": ["B", "A", "C", "A", "B", "C", "A", "B"],
        "horizon_hours": [1, 1, 1, 2, 2, 2, 1, 1],
        "risk": [0.02, 0.02, 0.05, 0.01, 0.03, 0.02, 0.1, 0.3],
    })

    ranked = rank_and_relative_risk(scored)
    by_key = {(row["target"], row["horizon_hours"], row["cell_id"]): (row["rank"], row["relative_risk"])
              for row in ranked.iter_rows(named=True)}

    assert by_key[("violent", 1, "C")] == (1, pytest.approx(0.05 / 0.03))
    assert by_key[("violent", 1, "A")] == (2, pytest.approx(0.02 / 0.03))
    assert by_key[("violent", 1, "B")] == (3, pytest.approx(0.02 / 0.03))
    assert by_key[("violent", 2, "B")] == (1, pytest.approx(1.5))
    assert by_key[("violent", 2, "C")] == (2, pytest.approx(1.0))
    assert by_key[("violent", 2, "A")] == (3, pytest.approx(0.5))
    assert by_key[("robbery", 1, "B")] == (1, pytest.approx(1.5))
    assert by_key[("robbery", 1, "A")] == (2, pytest.approx(0.5))


OLD_REGISTRY = """
CREATE TABLE main.model_registry (model_id VARCHAR PRIMARY KEY, train_start TIMESTAMP, train_end TIMESTAMP,
    path VARCHAR, training_rows BIGINT, training_positives BIGINT, base_rate DOUBLE, code_version VARCHAR)
"""
OLD_SCORES = """
CREATE TABLE main.risk_scores (cell_id VARCHAR NOT NULL, hour TIMESTAMP NOT NULL, horizon_hours SMALLINT NOT NULL,
    risk DOUBLE NOT NULL, relative_risk DOUBLE, model_id VARCHAR NOT NULL, issued_at TIMESTAMP NOT NULL)
"""


def test_old_registry_is_migrated(tmp_path: Path) -> None:
    with connect(tmp_path / "warehouse.duckdb") as connection:
        connection.execute(OLD_REGISTRY)
        connection.execute("INSERT INTO main.model_registry VALUES ('m1', '2017-01-01', '2017-10-01', '/m1', 5, 1, 0.2, 'x')")

        added = migrate_registry(connection)
        rows = connection.sql("SELECT model_id, target, train_end, refresh_partition FROM main.model_registry").fetchall()

        assert added == ["target", "refresh_partition", "registered_at"]
        assert sorted(table_columns(connection, "model_registry")) == sorted(REGISTRY_COLUMNS)
        assert rows == [("m1", "violent", datetime(2017, 10, 1), None)]
        assert migrate_registry(connection) == []
    assert latest_model(tmp_path / "warehouse.duckdb", "violent", datetime(2017, 10, 2, tzinfo=UTC))[0] == "m1"


def test_old_risk_scores_are_migrated(tmp_path: Path) -> None:
    with connect(tmp_path / "warehouse.duckdb") as connection:
        connection.execute(OLD_SCORES)
        connection.execute("INSERT INTO main.risk_scores VALUES "
                           "('A', '2017-10-01 00:00', 1, 0.01, 0.5, 'm1', '2017-10-01 00:00'), "
                           "('B', '2017-10-01 00:00', 1, 0.03, 1.5, 'm1', '2017-10-01 00:00'), "
                           "('A', '2017-10-01 01:00', 2, 0.02, 1.0, 'm1', '2017-10-01 00:00'), "
                           "('B', '2017-10-01 01:00', 2, 0.02, 1.0, 'm1', '2017-10-01 00:00')")

        added = migrate_risk_scores(connection)
        rows = connection.sql("SELECT cell_id, horizon_hours, target, rank, risk FROM main.risk_scores "
                              "ORDER BY horizon_hours, cell_id").fetchall()

        assert added == ["target", "rank"]
        assert table_columns(connection, "risk_scores") == list(SCORE_COLUMNS)
        assert rows == [("A", 1, "violent", 2, 0.01), ("B", 1, "violent", 1, 0.03),
                        ("A", 2, "violent", 1, 0.02), ("B", 2, "violent", 2, 0.02)]
        assert migrate_risk_scores(connection) == []


def test_evaluation_reads_primary_target_only(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with connect(warehouse) as connection:
        migrate_risk_scores(connection)
        connection.execute("CREATE SCHEMA marts")
        connection.execute("CREATE TABLE marts.hour_spine AS SELECT TIMESTAMP '2017-10-01 05:00' AS hour")
        connection.execute("CREATE TABLE marts.dim_cells AS SELECT 'A' AS cell_id, 2.0 AS area_km2")
        connection.execute("CREATE TABLE marts.fct_cell_hour_crimes AS SELECT 'A' AS cell_id, "
                           "TIMESTAMP '2017-10-01 00:00' AS hour, 3 AS crime_count, 1 AS violent_count")
        connection.execute("INSERT INTO main.risk_scores VALUES "
                           "('A', '2017-10-01 00:00', 1, 'violent', 0.2, 1.0, 1, 'v1', '2017-10-01 00:00'), "
                           "('A', '2017-10-01 00:00', 1, 'robbery', 0.7, 1.0, 1, 'r1', '2017-10-01 00:00')")
    window = Window(start=datetime(2017, 10, 1, tzinfo=UTC), end=datetime(2017, 10, 2, tzinfo=UTC))

    rows, unobserved = read_evaluation_rows(warehouse, window, "violent")

    assert rows.select("model_id", "risk", "violent_count").rows() == [("v1", 0.2, 1)]
    assert unobserved == 0
    with pytest.raises(ValueError, match="no column robbery_count"):
        read_evaluation_rows(warehouse, window, "robbery")


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
