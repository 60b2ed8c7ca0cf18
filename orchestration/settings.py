"""Paths for everything Riskcast writes, from one setting: ``RISKCAST_HOME``.

The embedded default keeps a DuckDB warehouse, Parquet files, trained models and reports in one
folder per jurisdiction, and one Dagster instance for all jurisdictions beside them. The folder
defaults to ``./data`` (git-ignored) and is read from the environment only when a settings object
is built, never at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_VARIABLE = "RISKCAST_HOME"
DEFAULT_HOME = Path("data")


@dataclass(frozen=True)
class RiskcastSettings:
    """File locations of Riskcast for one jurisdiction."""

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
    def staging_dir(self) -> Path:
        """Scratch folder for outputs computed before they are committed to the warehouse."""
        return self.root / "staging"

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
        write_instance_config(self.dagster_home)


INSTANCE_CONFIG = """# Written by Riskcast when this folder was created; edit freely, Riskcast never overwrites it.
# Dagster's usage statistics stay off: Riskcast runs on machines without outside network access.
telemetry:
  enabled: false
"""


def write_instance_config(dagster_home: Path) -> None:
    """Write a ``dagster.yaml`` that turns off usage statistics, unless one exists."""
    path = dagster_home / "dagster.yaml"
    if not path.exists():
        path.write_text(INSTANCE_CONFIG, encoding="utf-8")
