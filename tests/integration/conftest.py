"""The small synthetic demo run that several integration modules read, built once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from orchestration.cli import ReleaseBlockedError, run_main_job
from orchestration.settings import INSTANCE_CONFIG
from tests.browser import open_chromium
from tests.integration.test_demo_pipeline import write_small_demo

# The browser tests open this instance in the Dagster UI, where the community sign-up dialog that
# Dagster shows on localhost would cover the pages.
TEST_INSTANCE_CONFIG = INSTANCE_CONFIG + "nux:\n  enabled: false\n"


@dataclass(frozen=True)
class SmallDemoRun:
    """A finished main job on the 4 x 4 demo: its run file, warehouse, Dagster instance and folders."""

    run_file: Path
    warehouse: Path
    instance: dg.DagsterInstance
    folder: Path
    home: Path
    dagster_home: Path


@pytest.fixture(scope="session")
def small_demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallDemoRun]:
    """Run the whole main job once. Tests that change its tables put them back.

    The Dagster instance is persistent (SQLite files in ``home/dagster``), so a webserver started
    with ``DAGSTER_HOME`` set to that folder shows the runs, materializations and check results.
    """
    folder = tmp_path_factory.mktemp("demo_pipeline")
    run_file, _ = write_small_demo(folder)
    home = folder / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(TEST_INSTANCE_CONFIG, encoding="utf-8")
    instance = dg.DagsterInstance.from_config(str(dagster_home))

    try:
        run_main_job(run_file, home, instance=instance)
    except ReleaseBlockedError:
        pass  # Every job ran; the release tests check the gate's verdict.
    yield SmallDemoRun(run_file, home / "smalldemo" / "warehouse.duckdb", instance, folder, home, dagster_home)
    instance.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Chromium for one test module, which skips when Chromium is not installed."""
    with open_chromium() as driver:
        yield driver
