"""Paths for everything Riskcast writes, from one setting: ``RISKCAST_HOME``.

The embedded default keeps a DuckDB warehouse, Parquet files, trained models, reports and the
Dagster instance under one folder per jurisdiction. The folder defaults to ``./data`` (git-ignored)
and is read from the environment only when a settings object is built, never at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_VARIABLE = "RISKCAST_HOME"
DEFAULT_HOME = Path("data")


@dataclass(frozen=True)
class RiskcastSettings:
    """Where Riskcast keeps its files for one jurisdiction."""

    home: Path
    jurisdiction: str

    @classmethod
    def from_env(cls, jurisdiction: str) -> "RiskcastSettings":
        home = Path(os.environ.get(HOME_VARIABLE, str(DEFAULT_HOME))).expanduser().resolve()
        return cls(home=home, jurisdiction=jurisdiction)

    @property
    def root(self) -> Path:
        return self.home / self.jurisdiction

    @property
    def warehouse_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def dbt_target_dir(self) -> Path:
        return self.root / "dbt" / "target"

    @property
    def dbt_log_dir(self) -> Path:
        return self.root / "dbt" / "logs"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def demo_extracts_dir(self) -> Path:
        return self.home / "demo_extracts"

    def ensure_dirs(self) -> None:
        for path in (self.raw_dir, self.features_dir, self.models_dir, self.reports_dir,
                     self.dbt_target_dir, self.dbt_log_dir, self.dagster_home):
            path.mkdir(parents=True, exist_ok=True)
