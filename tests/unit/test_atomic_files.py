"""Temporary names, stale-file removal and folder replacement (``ml.atomic_files``), and the crash hook."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ml.atomic_files import process_running, remove_stale_temporaries, replace_folder, temporary_path
from orchestration.crash_hook import CRASH_VARIABLE, crash_point


def finished_pid() -> int:
    """Return the id of a process that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_temporary_path_names_this_process(tmp_path: Path) -> None:
    path = tmp_path / "day=2023-01-02.parquet"

    assert temporary_path(path) == tmp_path / f".day=2023-01-02.parquet.{os.getpid()}.tmp"
    assert temporary_path(path, kind="old").name.endswith(f".{os.getpid()}.old")


def test_stale_temporaries_of_finished_process_removed(tmp_path: Path) -> None:
    dead = finished_pid()
    assert not process_running(dead)
    stale_file = tmp_path / f".day=2023-01-02.parquet.{dead}.tmp"
    stale_file.write_bytes(b"half a file")
    stale_folder = tmp_path / f".model-a.{dead}.tmp"
    stale_folder.mkdir()
    (stale_folder / "net_000").write_text("member", encoding="utf-8")
    live_file = temporary_path(tmp_path / "day=2023-01-03.parquet")
    live_file.write_bytes(b"being written")
    final = tmp_path / "day=2023-01-01.parquet"
    final.write_bytes(b"whole")

    assert remove_stale_temporaries(tmp_path) == 2

    assert not stale_file.exists()
    assert not stale_folder.exists()
    assert live_file.read_bytes() == b"being written"
    assert final.read_bytes() == b"whole"


def test_stale_old_folder_restored_when_final_missing(tmp_path: Path) -> None:
    dead = finished_pid()
    aside = tmp_path / f".model-a.{dead}.old"
    aside.mkdir()
    (aside / "ensemble.json").write_text("{}", encoding="utf-8")
    other_aside = tmp_path / f".model-b.{dead}.old"
    other_aside.mkdir()
    (tmp_path / "model-b").mkdir()

    assert remove_stale_temporaries(tmp_path) == 2

    assert (tmp_path / "model-a" / "ensemble.json").read_text(encoding="utf-8") == "{}"
    assert not aside.exists()
    assert not other_aside.exists()
    assert (tmp_path / "model-b").is_dir()


def test_replace_folder_swaps_contents(tmp_path: Path) -> None:
    final = tmp_path / "model-a"
    final.mkdir()
    (final / "old.txt").write_text("old", encoding="utf-8")
    staged = temporary_path(final)
    staged.mkdir()
    (staged / "new.txt").write_text("new", encoding="utf-8")

    replace_folder(staged, final)

    assert sorted(path.name for path in final.iterdir()) == ["new.txt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model-a"]


def test_crash_point_without_variable_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_VARIABLE, "scores_staged")

    crash_point("scores_mid_publish")


def test_crash_point_unknown_name_rejected() -> None:
    with pytest.raises(ValueError, match="unknown crash point 'scores_halfway'"):
        crash_point("scores_halfway")
