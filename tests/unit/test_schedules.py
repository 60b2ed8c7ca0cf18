"""The hourly, model-refresh and nightly schedules, evaluated on fixed clocks with Dagster's test context."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from orchestration.assets.audits import BLOCKING_CHECKS
from orchestration.audit_rules import ALL_RULES
from orchestration.definitions import HOURLY_JOB, NIGHTLY_JOB, REFRESH_JOB, build_definitions
from orchestration.jurisdiction import ConfigError, load_run_config
from orchestration.schedules import TRIGGER_TAG, WAREHOUSE_TAG
from tests.extracts import write_extracts, write_run_file, write_test_jurisdiction

HOURLY = "testcity_hourly_increment"
REFRESH = "testcity_model_refresh"
NIGHTLY = "testcity_nightly_evaluation"
# Weekly refresh partitions end on Saturdays at 00:00 UTC; 2023-04-01 is a Saturday.
WEEKLY = {"period": "weekly", "weekday": "saturday", "hour": 0}


def write_weekly_run(folder: Path, **extra: object) -> Path:
    jurisdiction = write_test_jurisdiction(folder, "2023-01-01")
    extracts = write_extracts(folder / "extracts", [], [])
    return write_run_file(folder, jurisdiction, extracts, ("2023-01-07", "2023-04-01"), ("2023-04-01", "2023-04-02"),
                          refresh=WEEKLY, **extra)


@pytest.fixture(scope="module")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    folder = tmp_path_factory.mktemp("schedules")
    return build_definitions(write_weekly_run(folder), folder / "home")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def tick(definitions: dg.Definitions, name: str, moment: datetime) -> dg.RunRequest | dg.SkipReason:
    schedule = definitions.resolve_schedule_def(name)
    return schedule(dg.build_schedule_context(scheduled_execution_time=moment))


def test_hourly_tick_requests_the_hour_that_ended(definitions: dg.Definitions) -> None:
    request = tick(definitions, HOURLY, utc(2023, 4, 1, 10, 15))

    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2023-04-01-09:00"
    assert request.run_key == "2023-04-01-09:00"
    assert request.tags[TRIGGER_TAG] == HOURLY
    assert request.tags[WAREHOUSE_TAG] == "testcity"


def test_hourly_schedule_runs_the_whole_increment(definitions: dg.Definitions) -> None:
    schedule = definitions.resolve_schedule_def(HOURLY)
    job = definitions.resolve_job_def(HOURLY_JOB)
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}

    assert schedule.job_name == HOURLY_JOB
    assert schedule.cron_schedule == "15 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert {"raw_crime_incidents", "fct_cell_hour_crimes", "cell_hour_features", "risk_scores"} <= selected
    assert "risk_ensemble" not in selected
    assert job.partitions_def == definitions.resolve_job_def("features_job").partitions_def


def test_hourly_key_is_a_partition_of_the_job(definitions: dg.Definitions) -> None:
    partitions_def = definitions.resolve_job_def(HOURLY_JOB).partitions_def
    request = tick(definitions, HOURLY, utc(2023, 4, 1, 10, 15))

    window = partitions_def.time_window_for_partition_key(request.partition_key)

    assert window.start == utc(2023, 4, 1, 9)
    assert window.end == utc(2023, 4, 1, 10)


def test_hourly_ticks_across_spring_forward(definitions: dg.Definitions) -> None:
    # Chicago moved its clocks from 02:00 CST to 03:00 CDT on 2023-03-12, at 08:00 UTC.
    ticks = [utc(2023, 3, 12, 6, 15) + step * timedelta(hours=1) for step in range(5)]

    keys = [tick(definitions, HOURLY, moment).partition_key for moment in ticks]

    assert keys == ["2023-03-12-05:00", "2023-03-12-06:00", "2023-03-12-07:00", "2023-03-12-08:00",
                    "2023-03-12-09:00"]


def test_tick_in_another_zone_is_read_in_utc(definitions: dg.Definitions) -> None:
    chicago_time = datetime(2023, 3, 12, 3, 15, tzinfo=timezone(timedelta(hours=-5)))

    request = tick(definitions, HOURLY, chicago_time)

    assert request.partition_key == "2023-03-12-07:00"


def test_hourly_tick_before_first_partition_is_skipped(definitions: dg.Definitions) -> None:
    result = tick(definitions, HOURLY, utc(2023, 1, 1, 0, 15))

    assert isinstance(result, dg.SkipReason)
    assert "the first one ends at 2023-01-01T01:00:00+00:00" in result.skip_message


def test_weekly_tick_requests_the_refresh_that_ended(definitions: dg.Definitions) -> None:
    request = tick(definitions, REFRESH, utc(2023, 4, 8, 0, 45))

    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2023-04-01"
    assert request.run_key == "2023-04-01"


def test_weekly_key_window_ends_before_the_tick(definitions: dg.Definitions) -> None:
    partitions_def = definitions.resolve_job_def(REFRESH_JOB).partitions_def
    request = tick(definitions, REFRESH, utc(2023, 4, 8, 0, 45))

    window = partitions_def.time_window_for_partition_key(request.partition_key)

    assert window.start == utc(2023, 4, 1)
    assert window.end == utc(2023, 4, 8)


def test_weekly_schedule_trains_then_releases(definitions: dg.Definitions) -> None:
    schedule = definitions.resolve_schedule_def(REFRESH)
    job = definitions.resolve_job_def(REFRESH_JOB)
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}

    assert schedule.cron_schedule == "45 0 * * 6"
    assert schedule.job_name == REFRESH_JOB
    assert selected == {"risk_ensemble", "release_candidate", "current_ensemble"}
    assert job.partitions_def == definitions.resolve_job_def("train_job").partitions_def


def test_weekly_tick_across_fall_back(definitions: dg.Definitions) -> None:
    # Chicago moved its clocks from 02:00 CDT back to 01:00 CST on 2023-11-05, inside this week.
    request = tick(definitions, REFRESH, utc(2023, 11, 11, 0, 45))

    assert request.partition_key == "2023-11-04"


def test_weekly_tick_before_first_refresh_is_skipped(definitions: dg.Definitions) -> None:
    # The first refresh partition's 12-week training window starts at data_start, 2023-01-01.
    result = tick(definitions, REFRESH, utc(2023, 3, 25, 0, 45))

    assert isinstance(result, dg.SkipReason)
    assert "the first one ends at 2023-04-01T00:00:00+00:00" in result.skip_message


def test_nightly_tick_requests_evaluation_and_release(definitions: dg.Definitions) -> None:
    schedule = definitions.resolve_schedule_def(NIGHTLY)
    selected = {key.to_user_string() for key in definitions.resolve_job_def(NIGHTLY_JOB).asset_layer.selected_asset_keys}

    request = tick(definitions, NIGHTLY, utc(2023, 4, 2, 6, 45))

    assert schedule.cron_schedule == "45 6 * * *"
    assert schedule.job_name == NIGHTLY_JOB
    assert request.run_key == "2023-04-02"
    assert request.partition_key is None
    assert {"evaluation_metrics", "bias_audit_report", "release_candidate", "current_ensemble"} <= selected


def test_schedules_default_to_stopped(definitions: dg.Definitions) -> None:
    for name in (HOURLY, REFRESH, NIGHTLY):
        assert definitions.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.STOPPED


def test_run_file_block_sets_the_schedules(tmp_path: Path) -> None:
    run_file = write_weekly_run(tmp_path, schedules={"hourly_minute": 5, "refresh_minute": 30, "nightly_hour_utc": 2,
                                                     "nightly_minute": 40, "enabled": True})

    definitions = build_definitions(run_file, tmp_path / "home")

    hourly = definitions.resolve_schedule_def(HOURLY)
    assert hourly.cron_schedule == "5 * * * *"
    assert hourly.default_status == dg.DefaultScheduleStatus.RUNNING
    assert definitions.resolve_schedule_def(REFRESH).cron_schedule == "30 0 * * 6"
    assert definitions.resolve_schedule_def(NIGHTLY).cron_schedule == "40 2 * * *"


def test_daily_refresh_ticks_every_day(tmp_path: Path) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    run_file = write_run_file(tmp_path, jurisdiction, write_extracts(tmp_path / "extracts", [], []),
                              ("2023-03-01T06:00", "2023-04-01T06:00"), ("2023-04-01T06:00", "2023-04-02"))
    definitions = build_definitions(run_file, tmp_path / "home")

    request = tick(definitions, REFRESH, utc(2023, 4, 3, 6, 45))

    assert definitions.resolve_schedule_def(REFRESH).cron_schedule == "45 6 * * *"
    assert request.partition_key == "2023-04-02-06:00"


def test_refresh_minute_must_follow_hourly_minute(tmp_path: Path) -> None:
    run_file = write_weekly_run(tmp_path, schedules={"hourly_minute": 30, "refresh_minute": 30})

    with pytest.raises(ConfigError, match="refresh_minute 30 must be later than hourly_minute 30"):
        load_run_config(run_file)


# The hourly job contains only what one hour's scores need, and the nightly job rebuilds the rest.

GEOGRAPHY_AND_REPORT = {"raw_boundaries", "raw_cells", "raw_demographics", "raw_offense_codes", "stg_cells",
                        "dim_cells", "dim_cell_neighbours", "int_cells__demographics", "dim_boundaries",
                        "audit_crime_cells", "data_input_audit_report"}


def selected_keys(definitions: dg.Definitions, job_name: str) -> set[str]:
    return {key.to_user_string() for key in definitions.resolve_job_def(job_name).asset_layer.selected_asset_keys}


def selected_check_names(definitions: dg.Definitions, job_name: str) -> set[str]:
    graph = definitions.resolve_job_def(job_name).asset_layer.asset_graph
    return {key.name for key in graph.asset_check_keys}


def test_hourly_job_leaves_out_geography_and_report(definitions: dg.Definitions) -> None:
    selected = selected_keys(definitions, HOURLY_JOB)

    assert selected & GEOGRAPHY_AND_REPORT == set()
    assert {"raw_crime_incidents", "raw_service_requests", "raw_weather_observations",
            "raw_weather_forecasts"} <= selected
    assert {"stg_crimes__incidents", "int_incidents__located", "fct_cell_hour_crime_groups",
            "fct_hourly_weather", "fct_cell_day_requests", "audit_crime_calendar"} <= selected


def test_hourly_job_runs_only_blocking_audits(definitions: dg.Definitions) -> None:
    audit_names = {rule.name for rule in ALL_RULES}
    checks = selected_check_names(definitions, HOURLY_JOB)

    assert set(BLOCKING_CHECKS) <= checks
    assert checks & (audit_names - set(BLOCKING_CHECKS)) == set()
    assert "unique_stg_crimes__incidents_incident_id" in checks


def test_nightly_job_rebuilds_geography_and_report(definitions: dg.Definitions) -> None:
    selected = selected_keys(definitions, NIGHTLY_JOB)

    assert GEOGRAPHY_AND_REPORT <= selected
    assert {"evaluation_metrics", "release_candidate"} <= selected
    assert "crime_time_heaping" in selected_check_names(definitions, NIGHTLY_JOB)
