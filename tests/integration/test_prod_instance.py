"""The production Dagster instance (deploy/prod/dagster.yaml) on a real, throwaway PostgreSQL cluster.

The test creates a cluster in a temporary folder with ``initdb``, starts it with ``pg_ctl`` on
127.0.0.1 and a free port, points the ``RISKCAST_PG_*`` variables at it, and runs part of
Riskcast's warehouse job against ``DagsterInstance.get()``. PostgreSQL refuses to run as root,
so as root the server commands run as the ``postgres`` system user. The cluster is stopped
and its folder removed after the test, whether it passed or not.
"""

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

pytestmark = pytest.mark.postgres

REPOSITORY = Path(__file__).resolve().parents[2]
PROD_CONFIG = REPOSITORY / "deploy" / "prod" / "dagster.yaml"
SERVER_USER = "postgres"
DATABASE = "riskcast_dagster"
ROWS = [crime_row("1", "A1", "03/31/2023 11:15:00 PM", "06", "04/01/2023 03:41:00 AM", "41.879", "-87.658")]
RAW_ASSETS = [dg.AssetKey("raw_offense_codes"), dg.AssetKey("raw_crime_incidents"), dg.AssetKey("raw_boundaries")]


def server_binary(name: str) -> str | None:
    """Return the path of a PostgreSQL server program: on PATH, else in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def as_server_user(command: list[str]) -> list[str]:
    """Prefix ``command`` so it runs as the postgres user when this process is root."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SERVER_USER, "--", *command]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Cluster:
    """A running PostgreSQL cluster: where it listens and the superuser it was created with."""

    port: int
    user: str
    password: str


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) not found; install Debian's postgresql package")
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed; install the prod extra")
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed; install the prod extra")

    folder = Path(tempfile.mkdtemp(prefix="riskcast-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user=SERVER_USER, group=SERVER_USER)
    data = folder / "data"
    password = secrets.token_urlsafe(16)
    password_file = folder / "password"
    password_file.write_text(password, encoding="utf-8")
    if os.geteuid() == 0:
        shutil.chown(password_file, user=SERVER_USER, group=SERVER_USER)

    port = free_port()
    subprocess.run(as_server_user([initdb, "-D", str(data), "-U", "riskcast", "--auth=scram-sha-256",
                                   f"--pwfile={password_file}", "--no-instructions"]),
                   check=True, capture_output=True, cwd=folder)
    options = f"-h 127.0.0.1 -p {port} -k {folder}"
    subprocess.run(as_server_user([pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-o", options,
                                   "-w", "start"]), check=True, capture_output=True, cwd=folder)
    try:
        yield Cluster(port=port, user="riskcast", password=password)
    finally:
        subprocess.run(as_server_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                       check=False, capture_output=True, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


def connect(cluster: Cluster, database: str):  # noqa: ANN201 - psycopg2 is imported only when present
    import psycopg2

    return psycopg2.connect(host="127.0.0.1", port=cluster.port, user=cluster.user, password=cluster.password,
                            dbname=database)


@pytest.fixture
def prod_home(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME with the prod dagster.yaml, and the RISKCAST_PG_* variables pointing at a new database."""
    connection = connect(cluster, "postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {DATABASE}")
    connection.close()

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROD_CONFIG, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("RISKCAST_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("RISKCAST_PG_PORT", str(cluster.port))
    monkeypatch.setenv("RISKCAST_PG_DB", DATABASE)
    monkeypatch.setenv("RISKCAST_PG_USER", cluster.user)
    monkeypatch.setenv("RISKCAST_PG_PASSWORD", cluster.password)
    return home


def test_prod_config_reads_connection_from_env() -> None:
    storage = yaml.safe_load(PROD_CONFIG.read_text(encoding="utf-8"))["storage"]["postgres"]

    assert "postgres_url" not in storage
    assert storage["postgres_db"] == {
        "hostname": {"env": "RISKCAST_PG_HOST"},
        "port": {"env": "RISKCAST_PG_PORT"},
        "db_name": {"env": "RISKCAST_PG_DB"},
        "username": {"env": "RISKCAST_PG_USER"},
        "password": {"env": "RISKCAST_PG_PASSWORD"},
        "scheme": "postgresql+psycopg2",
    }


def test_runs_are_stored_in_postgres(prod_home: Path, cluster: Cluster, tmp_path: Path) -> None:
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    extracts = write_extracts(tmp_path / "extracts", ROWS, [])
    run_file = write_run_file(tmp_path, jurisdiction, extracts, ("2023-01-01", "2023-03-01"),
                              ("2023-03-01", "2023-03-02"))
    definitions = build_definitions(run_file, tmp_path / "home")

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4
        result = definitions.resolve_job_def(WAREHOUSE_JOB).execute_in_process(
            instance=instance, asset_selection=RAW_ASSETS)
    assert result.success

    connection = connect(cluster, DATABASE)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pipeline_name, status FROM runs WHERE run_id = %s", [result.run_id])
        assert cursor.fetchall() == [(WAREHOUSE_JOB, "SUCCESS")]
        cursor.execute("SELECT asset_key FROM event_logs WHERE run_id = %s "
                       "AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY asset_key", [result.run_id])
        stored = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s "
                       "AND dagster_event_type = 'ASSET_CHECK_EVALUATION'", [result.run_id])
        check_evaluations = cursor.fetchone()[0]
    connection.close()
    assert stored == sorted(key.to_string() for key in RAW_ASSETS)
    assert check_evaluations >= len(RAW_ASSETS)

    with dg.DagsterInstance.get() as reopened:
        event = reopened.get_latest_materialization_event(dg.AssetKey("raw_offense_codes"))
        assert event is not None
        assert event.run_id == result.run_id
        assert event.asset_materialization.metadata["dagster/row_count"].value == 26
