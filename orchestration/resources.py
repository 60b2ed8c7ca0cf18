"""Dagster resources shared by every asset: the run's configuration and the demo folder.

``RiskcastResource`` carries the three things every asset needs: where files go (settings), what
the city looks like (jurisdiction) and what this run does (run file). The data sources, one
resource per kind with a local and a live implementation, are in ``orchestration.sources``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg

from orchestration.jurisdiction import JurisdictionConfig, RunConfig, load_jurisdiction, load_run_config
from orchestration.settings import RiskcastSettings

logger = logging.getLogger(__name__)


class RiskcastResource(dg.ConfigurableResource):
    """The run file and the folder Riskcast writes to."""

    run_config_path: str
    home: str

    def run_config(self) -> RunConfig:
        return load_run_config(Path(self.run_config_path))

    def jurisdiction(self) -> JurisdictionConfig:
        return load_jurisdiction(self.run_config().jurisdiction)

    def settings(self) -> RiskcastSettings:
        settings = RiskcastSettings(home=Path(self.home), jurisdiction=self.jurisdiction().name)
        settings.ensure_dirs()
        return settings


def ensure_extracts_folder(folder: Path, generate_demo: bool) -> Path:
    """Return ``folder``, first writing the synthetic demo extracts into it when asked and missing.

    Every local source of the demo jurisdiction calls this, so whichever raw asset runs first
    writes the whole demo folder and the others find it in place.
    """
    if generate_demo and not (folder / "boundaries").is_dir():
        from ml.demo import write_demo_extracts

        logger.info("writing the synthetic demo extracts to %s", folder)
        write_demo_extracts(folder)
    return folder
