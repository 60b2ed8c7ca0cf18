"""Shared fixtures: the shared real-data folder, and isolated Riskcast homes."""

from __future__ import annotations

import os
import socket
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


LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any name lookup of a host other than this machine, so no test can reach a real portal.

    Live clients are tested against servers that the tests start on 127.0.0.1. A configuration
    that still names a real portal then fails at once with this message instead of sending
    traffic out.
    """
    resolve = socket.getaddrinfo

    def loopback_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOOPBACK_HOSTS and not str(name).startswith("127."):
            raise OSError(f"tests may only connect to 127.0.0.1, not {name!r}: point the client at a "
                          f"local test server")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_getaddrinfo)
