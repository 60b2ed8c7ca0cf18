"""Freshness checks and the run-file blocks behind them, run as real Dagster materializations on fixed clocks.

``freeze_time`` from Dagster's test utilities fixes the clock that both the event log and the
last-update checks read, so a materialization is stamped at one moment and the check is
evaluated at another.
"""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.test_utils import freeze_time

from orchestration.assets.raw import raw_crime_incidents, raw_offense_codes
from orchestration.definitions import build_definitions
from orchestration.executors import build_executor
from orchestration.freshness import SCORES_LAG_CHECK, build_last_update_checks, build_scores_lag_check
from orchestration.jurisdiction import ConfigError, load_run_config
from orchestration.operations_config import ExecutorSettings, FreshnessSettings
from orchestration.resources import RiskcastResource
from orchestration.sources.crimes import LocalCrimeSource
from orchestration.warehouse import connect
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

MATERIALIZED_AT = datetime(2023, 4, 1, 10, 0, tzinfo=timezone.utc)
ROWS = [crime_row("1", "A1", "03/31/2023 11:15:00 PM", "06", "04/01/2023 03:41:00 AM", "41.879", "-87.658"),
        crime_row("2", "A2", "03/31/2023 09:00:00 PM", "06", "03/31/2023 10:00:00 PM", "41.880", "-87.640")]


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    extracts = write_extracts(tmp_path / "extracts", ROWS, [])
    return write_run_file(tmp_path, jurisdiction, extracts, ("2023-01-01", "2023-03-01"), ("2023-03-01", "2023-03-02"))


def riskcast(run_file: Path) -> RiskcastResource:
    return RiskcastResource(run_config_path=str(run_file), home=str(run_file.parent / "home"))


def raw_check(settings: FreshnessSettings) -> dg.AssetChecksDefinition:
    """Return the last-update check definition that covers the reference raw assets, such as the offense codes."""
    return next(check for check in build_last_update_checks(settings)
                if dg.AssetKey("raw_offense_codes") in {key.asset_key for key in check.check_keys})


def run_check(instance: dg.DagsterInstance, run_file: Path, check: dg.AssetChecksDefinition,
              asset: dg.AssetsDefinition, check_key: dg.AssetCheckKey) -> dg.AssetCheckEvaluation:
    result = dg.materialize([asset, check], instance=instance, resources={"riskcast": riskcast(run_file)},
                            selection=dg.AssetSelection.checks(check_key))
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 1
    return evaluations[0]


RAW_KEY = dg.AssetCheckKey(dg.AssetKey("raw_offense_codes"), "freshness_check")


def test_raw_check_passes_when_fresh(run_file: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    check = raw_check(FreshnessSettings(reference_max_age_hours=3))
    with freeze_time(MATERIALIZED_AT):
        assert dg.materialize([raw_offense_codes], instance=instance,
                              resources={"riskcast": riskcast(run_file)}).success

    with freeze_time(MATERIALIZED_AT + timedelta(hours=2)):
        evaluation = run_check(instance, run_file, check, raw_offense_codes, RAW_KEY)

    assert evaluation.passed
    assert evaluation.metadata["dagster/last_updated_timestamp"].value == MATERIALIZED_AT.timestamp()
    assert evaluation.metadata["dagster/fresh_until_timestamp"].value == (MATERIALIZED_AT + timedelta(hours=3)).timestamp()


def test_raw_check_warns_when_stale(run_file: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    check = raw_check(FreshnessSettings(reference_max_age_hours=3))
    with freeze_time(MATERIALIZED_AT):
        assert dg.materialize([raw_offense_codes], instance=instance,
                              resources={"riskcast": riskcast(run_file)}).success

    with freeze_time(MATERIALIZED_AT + timedelta(hours=5)):
        evaluation = run_check(instance, run_file, check, raw_offense_codes, RAW_KEY)

    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["dagster/last_updated_timestamp"].value == MATERIALIZED_AT.timestamp()
    lower_bound = evaluation.metadata["dagster/freshness_lower_bound_timestamp"].value
    assert lower_bound == (MATERIALIZED_AT + timedelta(hours=2)).timestamp()
    assert "5 hours ago" in evaluation.description


def test_never_materialized_asset_fails(run_file: Path) -> None:
    check = raw_check(FreshnessSettings())

    evaluation = run_check(dg.DagsterInstance.ephemeral(), run_file, check, raw_offense_codes, RAW_KEY)

    assert not evaluation.passed
    assert "dagster/last_updated_timestamp" not in evaluation.metadata


def test_thresholds_come_from_the_run_file(tmp_path: Path) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    extracts = write_extracts(tmp_path / "extracts", ROWS, [])
    run_file = write_run_file(tmp_path, jurisdiction, extracts, ("2023-01-01", "2023-03-01"),
                              ("2023-03-01", "2023-03-02"),
                              freshness={"raw_max_age_hours": 2, "reference_max_age_hours": 30,
                                         "warehouse_max_age_hours": 5, "scores_max_lag_hours": 7})

    definitions = build_definitions(run_file, tmp_path / "home")

    bounds = {}
    for check in definitions.asset_checks or []:
        for spec in check.check_specs:
            params = (spec.metadata or {}).get("dagster/freshness_params")
            if params is not None:
                bounds[spec.asset_key.to_user_string()] = params.value["lower_bound_delta_seconds"] / 3600
    assert bounds["raw_crime_incidents"] == 2
    assert bounds["raw_weather_observations"] == 2
    assert bounds["raw_offense_codes"] == 30
    assert bounds["raw_cells"] == 30
    assert bounds["fct_cell_hour_crimes"] == 5
    assert bounds["int_incidents__located"] == 5
    assert bounds["risk_scores"] == 7


def test_freshness_sensor_is_stopped(tmp_path: Path, run_file: Path) -> None:
    definitions = build_definitions(run_file, tmp_path / "home")

    sensor = definitions.resolve_sensor_def("testcity_freshness_checks")

    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert dg.AssetCheckKey(dg.AssetKey("risk_scores"), "freshness_check") in sensor.asset_selection.resolve_checks(
        definitions.resolve_asset_graph())


# The issue-lag check on risk_scores, which reads main.risk_scores.

NOW = datetime(2023, 4, 1, 10, 15, tzinfo=timezone.utc)
SCORES_SPEC = dg.AssetSpec("risk_scores")
LAG_KEY = dg.AssetCheckKey(dg.AssetKey("risk_scores"), SCORES_LAG_CHECK)


def write_scores(run_file: Path, issue_hours: list[datetime], cells: int = 3) -> None:
    warehouse = run_file.parent / "home" / "testcity" / "warehouse.duckdb"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with connect(warehouse) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS main.risk_scores "
                           "(target VARCHAR, cell_id VARCHAR, hour TIMESTAMP, issued_at TIMESTAMP)")
        for issued_at in issue_hours:
            for cell in range(cells):
                naive = issued_at.replace(tzinfo=None)
                connection.execute("INSERT INTO main.risk_scores VALUES ('violent', ?, ?, ?)",
                                   [f"cell-{cell}", naive, naive])


def lag_evaluation(run_file: Path, max_lag_hours: float = 3) -> dg.AssetCheckEvaluation:
    check = build_scores_lag_check(FreshnessSettings(scores_max_lag_hours=max_lag_hours), clock=lambda: NOW)
    result = dg.materialize([SCORES_SPEC, check], instance=dg.DagsterInstance.ephemeral(),
                            resources={"riskcast": riskcast(run_file)}, selection=dg.AssetSelection.checks(LAG_KEY))
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 1
    return evaluations[0]


def test_scores_lag_passes_when_fresh(run_file: Path) -> None:
    write_scores(run_file, [NOW.replace(hour=8, minute=0), NOW.replace(hour=9, minute=0)])

    evaluation = lag_evaluation(run_file)

    assert evaluation.passed
    assert evaluation.metadata["newest_issue_hour"].value == "2023-04-01T09:00:00+00:00"
    assert evaluation.metadata["lag_hours"].value == 1.25
    assert evaluation.metadata["rows"].value == 6
    assert evaluation.metadata["rows_newest_issue_hour"].value == 3


def test_scores_lag_warns_when_stale(run_file: Path) -> None:
    write_scores(run_file, [NOW.replace(hour=4, minute=0), NOW.replace(hour=5, minute=0)], cells=2)

    evaluation = lag_evaluation(run_file)

    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["newest_issue_hour"].value == "2023-04-01T05:00:00+00:00"
    assert evaluation.metadata["lag_hours"].value == 5.25
    assert evaluation.metadata["max_lag_hours"].value == 3
    assert evaluation.metadata["rows"].value == 4
    assert "5.25 hours" in evaluation.description


def test_scores_lag_fails_without_table(run_file: Path) -> None:
    evaluation = lag_evaluation(run_file)

    assert not evaluation.passed
    assert evaluation.metadata["rows"].value == 0
    assert "no forecast yet" in evaluation.description


# Materialization metadata of the raw crimes.

def test_raw_crimes_carry_watermark_and_rows(run_file: Path) -> None:
    extracts = run_file.parent / "extracts"
    result = dg.materialize([raw_crime_incidents], instance=dg.DagsterInstance.ephemeral(), resources={
        "riskcast": riskcast(run_file), "crime_source": LocalCrimeSource(folder=str(extracts), generate_demo=False)})

    metadata = result.asset_materializations_for_node("raw_crime_incidents")[0].metadata

    # Chicago's Updated On is local time: 03:41 CDT on 2023-04-01 is 08:00 UTC once truncated to the hour.
    assert metadata["last_watermark"].value == "2023-04-01T08:00:00"
    assert metadata["dagster/row_count"].value == 2


# Run-file validation.

def test_scores_lag_of_one_hour_is_rejected() -> None:
    with pytest.raises(ValueError, match="scores_max_lag_hours 1 must be above 1"):
        FreshnessSettings(scores_max_lag_hours=1)


@pytest.mark.parametrize("block", [
    {"source": "socrata", "app_token": "abc123secretvalue"},
    {"notifications": {"kind": "slack", "webhook_url": "https://hooks.example.invalid/abc123secretvalue"}},
])
def test_literal_secret_is_rejected(tmp_path: Path, block: dict) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    run_file = write_run_file(tmp_path, jurisdiction, None, ("2023-01-01", "2023-03-01"),
                              ("2023-03-01", "2023-03-02"), **block)

    with pytest.raises(ConfigError) as error:
        load_run_config(run_file)

    assert "looks like a secret" in str(error.value)
    assert "environment" in str(error.value)
    assert "abc123secretvalue" not in str(error.value)


def test_webhook_env_name_is_accepted(tmp_path: Path) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    run_file = write_run_file(tmp_path, jurisdiction, None, ("2023-01-01", "2023-03-01"), ("2023-03-01", "2023-03-02"),
                              notifications={"kind": "slack", "webhook_env": "MY_WEBHOOK"})

    assert load_run_config(run_file).notifications.webhook_env == "MY_WEBHOOK"


# The executor block.


def executor_config(executor: dg.ExecutorDefinition) -> dict:
    """Return the configuration a configured executor runs with when a run sets none."""
    result = executor.apply_config_mapping({})
    assert result.success, result.errors
    return result.value["config"]


def test_default_executor_is_in_process(tmp_path: Path, run_file: Path) -> None:
    definitions = build_definitions(run_file, tmp_path / "home")

    assert definitions.resolve_job_def("warehouse_job").executor_def is dg.in_process_executor


def test_multiprocess_executor_limit(tmp_path: Path) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    extracts = write_extracts(tmp_path / "extracts", ROWS, [])
    run_file = write_run_file(tmp_path, jurisdiction, extracts, ("2023-01-01", "2023-03-01"),
                              ("2023-03-01", "2023-03-02"), executor={"kind": "multiprocess", "max_concurrent": 3})

    executor = build_definitions(run_file, tmp_path / "home").resolve_job_def("hourly_increment_job").executor_def

    assert executor.name == "riskcast_multiprocess"
    assert executor_config(executor)["max_concurrent"] == 3


def test_k8s_executor_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "dagster_k8s", None)

    with pytest.raises(ConfigError, match=r"pip install riskcast\[prod\]"):
        build_executor(ExecutorSettings(kind="k8s"))


def test_k8s_executor_is_configured() -> None:
    pytest.importorskip("dagster_k8s", reason="the prod extra (dagster-k8s) is not installed")

    executor = build_executor(ExecutorSettings(kind="k8s", max_concurrent=4, job_namespace="riskcast",
                                               env_vars=["RISKCAST_HOME"]))

    config = executor_config(executor)
    assert executor.name == "riskcast_k8s"
    assert config["max_concurrent"] == 4
    assert config["job_namespace"] == "riskcast"
    assert config["env_vars"] == ["RISKCAST_HOME"]


def test_k8s_fields_need_k8s_kind() -> None:
    with pytest.raises(ValueError, match="apply to kind k8s only"):
        ExecutorSettings(kind="multiprocess", job_namespace="riskcast")


# The dagster.yaml examples of the two deployments.

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("deployment", ["local", "prod"])
def test_instance_config_limits_one_run_per_warehouse(deployment: str) -> None:
    config = yaml.safe_load((DEPLOY / deployment / "dagster.yaml").read_text(encoding="utf-8"))

    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limits == [{"key": "riskcast/warehouse", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    assert config["telemetry"] == {"enabled": False}


def test_local_instance_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((DEPLOY / "local" / "dagster.yaml").read_text(encoding="utf-8"),
                                       encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        queue = instance.get_concurrency_config().run_queue_config
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert queue.tag_concurrency_limits[0]["key"] == "riskcast/warehouse"
