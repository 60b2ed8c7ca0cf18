"""Shared fixtures: the shared real-data folder, and isolated Riskcast homes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RISKCAST_SHARED_DATA", REPOSITORY.parent / "shared" / "data"))


@pytest.fixture
def chicago_data() -> Path:
    folder = SHARED_DATA / "chicago"
    if not (folder / "crimes").is_dir():
        pytest.skip(f"real Chicago data not found at {folder}; it lives in ../shared/data beside the repository")
    return folder


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep each test's RISKCAST_HOME, RISKCAST_CONFIG and DAGSTER_HOME changes to itself."""
    for name in ("RISKCAST_HOME", "RISKCAST_CONFIG", "DAGSTER_HOME", "RISKCAST_WAREHOUSE"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
