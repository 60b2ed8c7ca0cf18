"""Dagster resources: the run's configuration and the city's data sources.

``RiskcastResource`` carries the three things every asset needs: where files go (settings), what
the city looks like (jurisdiction) and what this run does (run file). ``CityDataSource`` is the
abstract source of portal extracts. ``LocalExtractsSource`` reads a folder of exports, and for the
synthetic demo jurisdiction it writes that folder first when it is missing.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg

from orchestration.ingest import ExtractTable, read_cells, read_crime_extracts, read_weather_extracts
from orchestration.jurisdiction import (
    JurisdictionConfig,
    RunConfig,
    load_jurisdiction,
    load_run_config,
)
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


class CityDataSource(dg.ConfigurableResource, ABC):
    """A source of crime incidents, weather observations and cell boundaries for one city."""

    @abstractmethod
    def crime_incidents(self, jurisdiction: JurisdictionConfig) -> ExtractTable: ...

    @abstractmethod
    def weather_observations(self, jurisdiction: JurisdictionConfig) -> ExtractTable | None: ...

    @abstractmethod
    def cells(self, jurisdiction: JurisdictionConfig) -> ExtractTable: ...


class LocalExtractsSource(CityDataSource):
    """A folder of portal exports laid out as the jurisdiction file's patterns describe."""

    folder: str
    generate_demo: bool = False

    def extracts_folder(self) -> Path:
        folder = Path(self.folder)
        if self.generate_demo and not (folder / "boundaries").is_dir():
            from ml.demo import write_demo_extracts

            logger.info("writing the synthetic demo extracts to %s", folder)
            write_demo_extracts(folder)
        return folder

    def crime_incidents(self, jurisdiction: JurisdictionConfig) -> ExtractTable:
        return read_crime_extracts(self.extracts_folder(), jurisdiction.crimes)

    def weather_observations(self, jurisdiction: JurisdictionConfig) -> ExtractTable | None:
        if jurisdiction.weather is None:
            return None
        return read_weather_extracts(self.extracts_folder(), jurisdiction.weather)

    def cells(self, jurisdiction: JurisdictionConfig) -> ExtractTable:
        return read_cells(self.extracts_folder(), jurisdiction.cells)
