"""Warehouse models (group ``warehouse``): the dbt project built on the DuckDB file.

``dbt build`` runs models and their data tests together, so a failing dbt test stops the models
below it and fails this step, which in turn keeps every Python asset downstream from running.
A job that selects some of the models (the hourly increment) builds only those, with their tests.
"""


import functools
import importlib.metadata
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets
from packaging import version

from orchestration.crash_hook import crash_point
from orchestration.dbt import DBT_PROJECT_DIR, RiskcastDbtTranslator, dbt_environment, dbt_vars
from orchestration.resources import RiskcastResource


def build_warehouse_assets(manifest: Path) -> dg.AssetsDefinition:
    @dbt_assets(manifest=manifest, dagster_dbt_translator=RiskcastDbtTranslator(), name="warehouse")
    def warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource,
                  riskcast: RiskcastResource) -> Iterator[Any]:
        """Typed, deduplicated incidents, cells, hourly weather and cell-hour counts."""
        settings = riskcast.settings()
        jurisdiction = riskcast.jurisdiction()
        os.environ.update(dbt_environment(settings, riskcast.run_config().memory_limit_gb))

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
    """A ``DbtCliResource`` that reads dbt's version from the installed package.

    dagster-dbt 0.29 learns the version by running ``dbt --version`` once per resource instance,
    and Dagster builds a new instance for every run. That subprocess took about 2 s of each hourly
    run on a 2-core machine, and dbt 1.11 also queries PyPI for the latest release there.
    Riskcast always runs the ``dbt`` executable of its own environment
    (``orchestration.dbt.dbt_executable``), whose version is the installed dbt-core package's.

    NOTE: this overrides a private member of ``DbtCliResource``; ``tests/unit/test_warehouse.py``
    fails when dagster-dbt stops reading it.
    """

    @property
    def _cli_version(self) -> version.Version:
        return installed_dbt_version()


def dbt_resource() -> DbtCliResource:
    from orchestration.dbt import dbt_executable

    return LocalDbtCliResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                               dbt_executable=dbt_executable())
