"""Warehouse models (group ``warehouse``): the dbt project built on the DuckDB file.

``dbt build`` runs models and their data tests together, so a failing dbt test stops the models
below it and fails this step, which in turn keeps every Python asset downstream from running.
"""


import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

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


def dbt_resource() -> DbtCliResource:
    from orchestration.dbt import dbt_executable

    return DbtCliResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                          dbt_executable=dbt_executable())
