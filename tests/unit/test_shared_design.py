"""The training design read a few columns at a time and allocated in shared memory gives the same bytes and models.

Training reads its window from the day files in groups of columns (``WindowReader``) into a matrix
in /dev/shm (``SharedArrays``), and the workers read that matrix without a copy. Each test compares
the result with the in-memory path, value for value, so a reader that dropped, reordered or
misaligned rows, or a worker that read another block, fails.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import ml.shared_arrays as shared_arrays
from ml.ensemble import EnsembleConfig, MemberTrainer, RiskEnsemble
from ml.feature_registry import state_columns
from ml.feature_store import FeatureLayoutError, day_file, open_window, read_window, write_window
from ml.model_data import STATE_COLUMN_GROUP, build_training_design
from ml.shared_arrays import SharedArrays, shared_name
from tests.feature_inputs import features, violent_counts

UTC = timezone.utc
START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 1, 9, tzinfo=UTC)
CELLS = ["A", "B", "C"]
SHM = Path("/dev/shm")

needs_shm = pytest.mark.skipif(not SHM.is_dir(), reason="POSIX shared memory is not mounted at /dev/shm")


@pytest.fixture
def feature_root(tmp_path: Path) -> Path:
    """Day files of eight days (2024-01-01 to 2024-01-08) of features built from hand-made incidents in three cells."""
    violent = [("A", START + timedelta(hours=h)) for h in range(5, 190, 7)]
    violent += [("C", START + timedelta(hours=h)) for h in range(11, 190, 13)]
    frame = features(CELLS, violent_counts(violent), START, END, "America/Chicago")
    write_window(tmp_path, frame, START, END)
    return tmp_path


def test_reader_returns_the_sorted_window(feature_root: Path) -> None:
    start, end = START + timedelta(days=1, hours=5), END - timedelta(hours=3)
    whole = read_window(feature_root, start, end, len(CELLS))

    reader = open_window(feature_root, start, end, len(CELLS))
    names = ["violent_1d", "label_violent", "hour"]

    assert reader.height == whole.height == ((end - start) // timedelta(hours=1)) * len(CELLS)
    assert reader.columns == whole.columns
    assert reader.read(names).equals(whole.select(names))


def test_reader_design_equals_frame_design(feature_root: Path) -> None:
    whole = read_window(feature_root, START, END, len(CELLS))
    reader = open_window(feature_root, START, END, len(CELLS))
    assert len(state_columns(reader.columns)) > 2 * STATE_COLUMN_GROUP

    expected = build_training_design(whole, len(CELLS), 72, np.random.default_rng(4))
    with SharedArrays() as shared:
        design = build_training_design(reader, len(CELLS), 72, np.random.default_rng(4), allocate=shared.empty)
        same_bytes = np.array_equal(design.features, expected.features, equal_nan=True)

    assert same_bytes
    assert np.array_equal(design.target_rows, expected.target_rows)
    assert np.array_equal(design.target_hours, expected.target_hours)
    assert design.feature_names == expected.feature_names


def test_reader_refuses_unsorted_day_files(feature_root: Path) -> None:
    path = day_file(feature_root, (START + timedelta(days=2)).date())
    pl.read_parquet(path).sort("cell_id", "hour").write_parquet(path)

    with pytest.raises(FeatureLayoutError, match="not sorted by hour and cell"):
        open_window(feature_root, START, END, len(CELLS))


@needs_shm
def test_shared_array_unlinked_at_exit() -> None:
    with SharedArrays() as shared:
        array = shared.empty((1000, 7), np.float32)
        array[...] = np.arange(7000, dtype=np.float32).reshape(1000, 7)
        name = shared_name(array)

        assert name is not None and (SHM / name).is_file()
        assert shared_name(np.asarray(array)) == name
        assert shared_name(array[1:]) is None
        assert shared_name(array[:, :3]) is None

    assert not (SHM / name).exists()
    assert shared_name(array) is None
    assert array[999, 6] == 6999


def test_disabled_or_full_shared_memory_allocates_in_process(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    with SharedArrays(enabled=False) as shared:
        assert shared_name(shared.empty((10, 3), np.float32)) is None

    monkeypatch.setattr(shared_arrays, "free_bytes", lambda folder: 1000)
    with caplog.at_level(logging.WARNING, logger="ml.shared_arrays"), SharedArrays() as shared:
        array = shared.empty((100, 10), np.float32)

    assert shared_name(array) is None
    assert type(array) is np.ndarray
    assert "less than the 0.00 GB" in caplog.text


@needs_shm
def test_trainer_shares_without_copy() -> None:
    with SharedArrays() as shared:
        array = shared.empty((50, 4), np.float32)
        array[...] = 1.5
        with MemberTrainer(num_threads=2) as trainer:
            spec = trainer.share(array)
            copied = trainer.share(np.ones(5))

            assert spec.name == shared_name(array)
            assert [block.name for block in trainer.blocks] == [copied.name]


@needs_shm
def test_shared_design_ensemble_equals_copy(feature_root: Path) -> None:
    reader = open_window(feature_root, START, END, len(CELLS))
    config = EnsembleConfig(n_nets=3, lgbm_members=1, epochs=2, hidden_sizes=(8,), lgbm_n_estimators=10,
                            negative_ratio=5.0, validation_weeks=1, validation_fraction=0.3, num_threads=2,
                            seed=11, batch_size=64)
    labels = reader.read(["label_violent"])["label_violent"]

    with SharedArrays() as shared:
        design = build_training_design(reader, len(CELLS), 24, np.random.default_rng(4), allocate=shared.empty)
        training = design.for_target(pl.DataFrame(labels), "violent")
        assert shared_name(training.features) is not None
        on_shared = RiskEnsemble(config).fit(training.features, training.labels, training.target_hours,
                                             training.feature_names)
        in_process = np.array(training.features)
        on_copy = RiskEnsemble(replace(config, num_threads=1)).fit(in_process, training.labels,
                                                                   training.target_hours, training.feature_names)

    assert training.labels.sum() > 0
    assert on_shared.weights == on_copy.weights
    assert np.array_equal(on_shared.predict_proba(in_process), on_copy.predict_proba(in_process))
