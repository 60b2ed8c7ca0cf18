"""Manifests and model cards: feature file hashes, and the sections of a model card."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ml.manifest import feature_file_hashes, write_model_card

UTC = timezone.utc


def write_day_files(root: Path, days: list[str]) -> None:
    root.mkdir(parents=True)
    for day in days:
        (root / f"day={day}.parquet").write_bytes(f"rows of {day}".encode())


def test_hashes_cover_window_days(tmp_path: Path) -> None:
    write_day_files(tmp_path / "features", ["2017-03-01", "2017-03-02", "2017-03-03"])

    hashes = feature_file_hashes(tmp_path / "features", datetime(2017, 3, 1, 5, tzinfo=UTC),
                                 datetime(2017, 3, 2, 5, tzinfo=UTC))

    assert [entry["file"] for entry in hashes] == ["day=2017-03-01.parquet", "day=2017-03-02.parquet"]
    assert hashes[0]["sha256"] == hashlib.sha256(b"rows of 2017-03-01").hexdigest()
    assert hashes[1]["bytes"] == len(b"rows of 2017-03-02")


def test_missing_day_file_names_it(tmp_path: Path) -> None:
    write_day_files(tmp_path / "features", ["2017-03-01"])

    with pytest.raises(FileNotFoundError, match="day=2017-03-02.parquet"):
        feature_file_hashes(tmp_path / "features", datetime(2017, 3, 1, tzinfo=UTC), datetime(2017, 3, 3, tzinfo=UTC))


def manifest(synthetic: bool) -> dict:
    return {
        "model_id": "city-robbery-20171001T00-abc", "target": "robbery", "target_offense_codes": ["03 (Robbery)"],
        "refresh_partition": "2017-09-24", "jurisdiction": "city", "jurisdiction_display_name": "City",
        "synthetic_data": synthetic, "spatial_unit": "census_tract", "train_start": "2017-01-01T00:00:00+00:00",
        "train_end": "2017-10-01T00:00:00+00:00", "horizon_hours": 72, "training_rows": 1000,
        "training_positives": 12, "base_rate": 0.012, "feature_files": [{"file": "day=2017-01-01.parquet"}],
        "training_data_sha256": "f" * 64, "feature_names": ["violent_1d", "horizon_hours"],
        "parameters": {"n_nets": 2, "lgbm_members": 1, "negative_ratio": 3.0, "validation_weeks": 4,
                       "weight_half_life_weeks": 2.0, "validation_fraction": 0.25}, "seed": 7,
        "weights": {"nets": 0.4, "lightgbm": 0.6},
        "members": [{"kind": "net", "bag": 0, "roc_auc": 0.7, "log_loss": 0.06, "brier": 0.01, "weight": 0.2}],
        "validation_metrics": {"ensemble": {"roc_auc": 0.71, "log_loss": 0.05, "brier": 0.011,
                                            "mean_probability": 0.012, "n_rows": 150, "n_pos": 2}},
        "training_seconds": 3.25, "code_version": "abc123", "packages": {"python": "3.11"},
    }


def test_card_says_bias_audit_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "city" / "models" / "m"
    folder.mkdir(parents=True)

    card = write_model_card(folder, manifest(False), tmp_path / "city" / "reports" / "bias_audit.html").read_text()

    assert "the report (../../reports/bias_audit.html) had not been produced" in card
    assert "places and hours, never people" in card
    assert "must not trigger enforcement" in card
    assert "Recorded crime is not all crime" in card
    assert "Feedback loops" in card
    assert "not a weather forecast" in card
    assert "1,000 cell-hours, 12 positives, base rate 0.01200" in card
    assert "recorded public data" in card
    assert "| ensemble | 0.7100 | 0.0500 | 0.0110 | 0.0120 | 150 | 2 |" in card
    assert "SYNTHETIC" not in card


def test_card_links_existing_bias_audit(tmp_path: Path) -> None:
    folder = tmp_path / "city" / "models" / "m"
    folder.mkdir(parents=True)
    audit = tmp_path / "city" / "reports" / "bias_audit.html"
    audit.parent.mkdir(parents=True)
    audit.write_text("<html></html>")

    card = write_model_card(folder, manifest(True), audit).read_text()

    assert "[bias_audit.html](../../reports/bias_audit.html)" in card
    assert "had not been produced" not in card
    assert "SYNTHETIC" in card
    assert "synthetic (generated demo data)" in card


def test_card_states_sampling_and_weighting(tmp_path: Path) -> None:
    folder = tmp_path / "city" / "models" / "m"
    folder.mkdir(parents=True)

    card = write_model_card(folder, manifest(False), tmp_path / "bias_audit.html").read_text()

    assert "2 feed-forward nets (torch) and 1 LightGBM member(s)" in card
    assert "(3 negatives per positive)" in card
    assert "over the last 4 weeks of the window (at most 25% of its hours)" in card
    assert "half-life of 2 weeks: nets 0.400, lightgbm 0.600" in card
