"""The small synthetic demo run that several integration modules read, built once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from orchestration.cli import ReleaseBlockedError, run_main_job
from tests.integration.test_demo_pipeline import write_small_demo


@dataclass(frozen=True)
class SmallDemoRun:
    """A finished main job on the 4 x 4 demo: its run file, warehouse, Dagster instance and folder."""

    run_file: Path
    warehouse: Path
    instance: dg.DagsterInstance
    folder: Path


@pytest.fixture(scope="session")
def small_demo_run(tmp_path_factory: pytest.TempPathFactory) -> SmallDemoRun:
    """Run the whole main job once; tests that change its tables put them back."""
    folder = tmp_path_factory.mktemp("demo_pipeline")
    run_file, _ = write_small_demo(folder)
    instance = dg.DagsterInstance.ephemeral()
    try:
        run_main_job(run_file, folder / "home", instance=instance)
    except ReleaseBlockedError:
        pass  # Every job ran; the release tests check the gate's verdict.
    return SmallDemoRun(run_file, folder / "home" / "smalldemo" / "warehouse.duckdb", instance, folder)
