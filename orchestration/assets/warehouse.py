"""Warehouse models (group ``warehouse``): the dbt project built on the DuckDB file.

``dbt build`` runs models and their data tests together, so a failing dbt test stops the models
below it and fails this step, which in turn keeps every Python asset downstream from running.
A job that selects some of the models (the hourly increment) builds only those, with their tests.
"""


import functools
import importlib.metadata
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets
from packaging import version
from pydantic import PrivateAttr

from orchestration.crash_hook import crash_point
from orchestration.dbt import DBT_PROJECT_DIR, RiskcastDbtTranslator, dbt_environment, dbt_executable, dbt_vars
from orchestration.dbt_worker import WarmDbtWorker
from orchestration.resources import RiskcastResource


def build_warehouse_assets(manifest: Path) -> dg.AssetsDefinition:
    @dbt_assets(manifest=manifest, dagster_dbt_translator=RiskcastDbtTranslator(), name="warehouse")
    def warehouse(context: dg.AssetExecutionContext, dbt: LocalDbtCliResource,
                  riskcast: RiskcastResource) -> Iterator[Any]:
        """Typed, deduplicated incidents, cells, hourly weather and cell-hour counts."""
        settings = riskcast.settings()
        jurisdiction = riskcast.jurisdiction()
        os.environ.update(dbt_environment(settings, riskcast.run_config().memory_limit_gb))
        os.environ.update(dbt.worker_environment())

        arguments = ["build", "--vars", json.dumps(dbt_vars(jurisdiction))]
        context.log.info(f"{jurisdiction.name}: dbt {' '.join(arguments)} on {settings.warehouse_path}")
        for event in dbt.cli(arguments, context=context, target_path=settings.dbt_target_dir).stream():
            yield event
            if isinstance(event, dg.Output):
                crash_point("dbt_between_models")

    return warehouse


@functools.cache
def installed_dbt_version() -> version.Version:
    """Return the version of the dbt-core package installed beside this interpreter."""
    return version.parse(importlib.metadata.version("dbt-core"))


class LocalDbtCliResource(DbtCliResource):
    """A ``DbtCliResource`` that reads dbt's version from the installed package and starts dbt early.

    dagster-dbt 0.29 learns the version by running ``dbt --version`` once per resource instance,
    and Dagster builds a new instance for every run. That subprocess took about 2 s of each hourly
    run on a 2-core machine, and dbt 1.11 also queries PyPI for the latest release there.
    Riskcast always runs the ``dbt`` of its own environment (``orchestration.dbt.dbt_executable``),
    whose version is the installed dbt-core package's.

    When a run sets up its resources, this resource starts a ``WarmDbtWorker``, which imports dbt
    while the steps before the warehouse run. The resource's executable is ``riskcast-dbt``, which
    hands the invocation to that worker, or runs ``dbt`` itself when there is none.

    dagster-dbt also builds a dbt adapter in the Dagster process before each invocation (about
    0.3 s: profile, project and macros), which only its optional column-metadata and row-count
    fetches use. Riskcast requests neither, so this resource skips it.

    NOTE: ``_cli_version`` and ``_initialize_dbt_core_adapter`` override private members of
    ``DbtCliResource``; ``tests/unit/test_warehouse.py`` fails when dagster-dbt stops calling them.
    """

    _worker: WarmDbtWorker | None = PrivateAttr(default=None)

    @property
    def _cli_version(self) -> version.Version:
        return installed_dbt_version()

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)
        self._worker = WarmDbtWorker.start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._worker is not None:
            for name, value in self._worker.environment().items():
                if os.environ.get(name) == value:
                    del os.environ[name]
            code = self._worker.stop()
            if context.log:
                context.log.debug(f"dbt worker {self._worker.process.pid} exited with code {code}")
            self._worker = None

    def worker_environment(self) -> dict[str, str]:
        """Return the variables that lead ``riskcast-dbt`` to this run's worker (none without one)."""
        return self._worker.environment() if self._worker is not None else {}


def dbt_command() -> str:
    """Return ``riskcast-dbt`` beside this interpreter, or ``dbt`` when the package's scripts are not installed."""
    client = Path(dbt_executable()).with_name("riskcast-dbt")
    return str(client) if client.is_file() else dbt_executable()


def dbt_resource() -> LocalDbtCliResource:
    return LocalDbtCliResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                               dbt_executable=dbt_command())
