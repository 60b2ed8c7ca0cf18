"""The sensors, evaluated with Dagster's test contexts on real folders, DuckDB files and failed runs."""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest

from orchestration.assets.raw import record_ingest
from orchestration.definitions import FEATURES_JOB, WAREHOUSE_JOB, build_definitions
from orchestration.jurisdiction import load_jurisdiction
from orchestration.notifications import (
    LogNotificationResource,
    NotificationError,
    NotificationResource,
    SlackNotificationResource,
)
from orchestration.operations_config import FreshnessSettings
from orchestration.sensors import build_extracts_sensor, build_freshness_sensor, build_run_failure_sensor, changed_files
from orchestration.warehouse import connect
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

CHICAGO = load_jurisdiction("chicago")
ROWS = [crime_row("1", "A1", "07/04/2023 12:15:00 AM", "06", "07/11/2023 03:41:00 PM", "41.879", "-87.658")]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    extracts = tmp_path / "extracts"
    write_extracts(extracts, ROWS, [])
    (extracts / "crimes" / "chicago_crimes_2023.csv").rename(extracts / "crimes" / "chicago_crimes_2023.csv.gz")
    return extracts


def tick(folder: Path, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    sensor = build_extracts_sensor(folder, CHICAGO, WAREHOUSE_JOB)
    with dg.instance_for_test() as instance:
        return sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_first_tick_requests_a_run(folder: Path) -> None:
    result = tick(folder, None)

    assert isinstance(result, dg.SensorResult)
    assert len(result.run_requests) == 1
    changed = result.run_requests[0].tags["riskcast/changed_files"]
    assert changed == ("boundaries/census_tracts_2010.geojson, crimes/chicago_crimes_2023.csv.gz, "
                       "weather/ohare_lcd_hourly_2023.csv")


def test_unchanged_folder_is_skipped(folder: Path) -> None:
    first = tick(folder, None)

    second = tick(folder, first.cursor)

    assert isinstance(second, dg.SkipReason)
    assert "no change in the 3 extract files" in second.skip_message


def test_new_file_requests_another_run(folder: Path) -> None:
    first = tick(folder, None)
    (folder / "crimes" / "chicago_crimes_2024.csv.gz").write_bytes(b"ID\n")

    second = tick(folder, first.cursor)

    assert isinstance(second, dg.SensorResult)
    assert second.run_requests[0].tags["riskcast/changed_files"] == "crimes/chicago_crimes_2024.csv.gz"
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_rewritten_file_requests_a_run(folder: Path) -> None:
    first = tick(folder, None)
    path = folder / "crimes" / "chicago_crimes_2023.csv.gz"
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))

    second = tick(folder, first.cursor)

    assert isinstance(second, dg.SensorResult)
    assert second.run_requests[0].tags["riskcast/changed_files"] == "crimes/chicago_crimes_2023.csv.gz"


def test_files_outside_the_patterns_are_ignored(folder: Path) -> None:
    first = tick(folder, None)
    (folder / "crimes" / "notes.txt").write_text("not an extract", encoding="utf-8")

    assert isinstance(tick(folder, first.cursor), dg.SkipReason)


def test_missing_folder_is_skipped_with_the_fix(tmp_path: Path) -> None:
    result = tick(tmp_path / "absent", None)

    assert isinstance(result, dg.SkipReason)
    assert "fix extracts_folder in the run file" in result.skip_message


def test_removed_file_counts_as_changed() -> None:
    assert changed_files({"a.csv": [1, 2], "b.csv": [3, 4]}, {"a.csv": [1, 2]}) == ["b.csv"]


def test_sensor_is_in_the_definitions(tmp_path: Path, folder: Path) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    run_file = write_run_file(tmp_path, jurisdiction, folder, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"))

    definitions = build_definitions(run_file, tmp_path / "home")

    sensor = definitions.resolve_sensor_def("testcity_extract_files")
    assert sensor.job_name == WAREHOUSE_JOB


# Portal freshness, run failures and notifications.

CLOCK = datetime(2023, 4, 1, 10, 15, tzinfo=timezone.utc)


# Dagster copies a resource's configuration when it binds the resource to a context, so the
# recording resource appends to this module-level list rather than to one of its own fields.
SENT: list[tuple[str, list[str]]] = []


class RecordingNotifications(NotificationResource):
    """A notification resource that keeps what it was sent, for assertions."""

    def notify(self, subject: str, lines: list[str]) -> None:
        SENT.append((subject, lines))


def recording_notifications() -> RecordingNotifications:
    SENT.clear()
    return RecordingNotifications()


def write_ingest_state(warehouse: Path, rows: list[tuple[str, str | None]]) -> Path:
    with connect(warehouse) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for source, watermark in rows:
        record_ingest(warehouse, source, watermark, 10, None)
    return warehouse


def check_freshness(warehouse: Path, cursor: str | None = None,
                    settings: FreshnessSettings | None = None) -> tuple[dg.SensorResult | dg.SkipReason, list]:
    sensor = build_freshness_sensor(warehouse, CHICAGO, settings or FreshnessSettings(max_age_hours=6),
                                    clock=lambda: CLOCK)
    context = dg.build_sensor_context(cursor=cursor, resources={"notifications": recording_notifications()})
    return sensor(context), list(SENT)


def test_old_watermark_is_reported(tmp_path: Path) -> None:
    warehouse = write_ingest_state(tmp_path / "riskcast.duckdb", [("extracts:crime_incidents", "2023-04-01T02:00:00")])

    result, sent = check_freshness(warehouse)

    assert isinstance(result, dg.SensorResult)
    assert not result.run_requests
    assert "1 of 1 portal sources have no record newer than 6 hours" in result.skip_reason.skip_message
    assert ("extracts:crime_incidents: newest record at 2023-04-01T02:00:00 is 8.25 hours old"
            in result.skip_reason.skip_message)
    assert sent == [("Riskcast chicago: no new portal record for more than 6 hours",
                     ["extracts:crime_incidents: newest record at 2023-04-01T02:00:00 is 8.25 hours old"])]
    assert result.cursor == '["extracts:crime_incidents"]'


def test_stale_source_observes_its_raw_asset(tmp_path: Path) -> None:
    warehouse = write_ingest_state(tmp_path / "riskcast.duckdb", [("extracts:crime_incidents", "2023-04-01T02:00:00")])

    result, _ = check_freshness(warehouse)

    observation = result.asset_events[0]
    assert len(result.asset_events) == 1
    assert observation.asset_key == dg.AssetKey("raw_crime_incidents")
    assert observation.metadata["age_hours"].value == 8.25
    assert observation.metadata["stale"].value is True
    assert observation.metadata["watermark"].value == "2023-04-01T02:00:00"


def test_fresh_watermark_is_not_reported(tmp_path: Path) -> None:
    warehouse = write_ingest_state(tmp_path / "riskcast.duckdb",
                                   [("extracts:crime_incidents", "2023-04-01T09:00:00+00:00")])

    result, sent = check_freshness(warehouse)

    assert sent == []
    assert result.asset_events == []
    assert result.cursor == "[]"
    assert "0 of 1 portal sources" in result.skip_reason.skip_message
    assert "is 1.25 hours old" in result.skip_reason.skip_message


def test_stale_source_is_reported_once(tmp_path: Path) -> None:
    warehouse = write_ingest_state(tmp_path / "riskcast.duckdb", [("extracts:crime_incidents", "2023-04-01T02:00:00")])
    first, _ = check_freshness(warehouse)

    second, sent = check_freshness(warehouse, first.cursor)

    assert sent == []
    assert second.asset_events == []
    assert second.cursor == first.cursor


def test_fresh_again_is_reported(tmp_path: Path) -> None:
    warehouse = write_ingest_state(tmp_path / "riskcast.duckdb", [("extracts:crime_incidents", "2023-04-01T10:00:00")])

    result, sent = check_freshness(warehouse, '["extracts:crime_incidents"]')

    assert sent == [("Riskcast chicago: portal sources are fresh again",
                     ["extracts:crime_incidents: newest record at 2023-04-01T10:00:00 is 0.25 hours old"])]
    assert result.asset_events[0].metadata["stale"].value is False
    assert result.cursor == "[]"


def test_weather_stations_are_not_portal_sources(tmp_path: Path) -> None:
    warehouse = write_ingest_state(tmp_path / "riskcast.duckdb", [
        ("extracts:crime_incidents", "2023-04-01T09:30:00"), ("noaa-lcd:72530094846", "2023-03-01T00:00:00")])

    result, sent = check_freshness(warehouse)

    assert sent == []
    assert "0 of 1 portal sources" in result.skip_reason.skip_message
    assert "noaa-lcd" not in result.skip_reason.skip_message


def test_bad_watermark_is_reported_with_the_fix(tmp_path: Path) -> None:
    warehouse = write_ingest_state(tmp_path / "riskcast.duckdb", [("socrata:ijzp-q8t2", "last tuesday")])

    result, sent = check_freshness(warehouse)

    assert sent[0][1] == ["socrata:ijzp-q8t2: watermark 'last tuesday' is not an ISO 8601 timestamp; delete its "
                          "row from raw.ingest_state so that the next ingest writes it again"]
    assert result.asset_events[0].asset_key == dg.AssetKey("raw_crime_incidents")


def test_freshness_without_ingest_state_is_skipped(tmp_path: Path) -> None:
    result, sent = check_freshness(tmp_path / "absent.duckdb")

    assert isinstance(result, dg.SkipReason)
    assert "has no raw.ingest_state table yet" in result.skip_message
    assert sent == []


def failing_run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    @dg.op
    def read_partition() -> int:
        return 1

    @dg.op
    def build_features(rows: int) -> None:
        raise ValueError(f"fct_cell_hour_crimes has {rows} row for partition 2023-04-01-09:00; rebuild the warehouse")

    @dg.job(name="hourly_increment_job")
    def broken_job() -> None:
        build_features(read_partition())

    return broken_job.execute_in_process(instance=instance, raise_on_error=False,
                                         tags={"dagster/partition": "2023-04-01-09:00"})


def test_run_failure_is_reported_with_its_step() -> None:
    sensor = build_run_failure_sensor(CHICAGO)
    notifications = recording_notifications()
    with dg.instance_for_test() as instance:
        result = failing_run(instance)
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(), resources={"notifications": notifications},
        ).for_run_failure()

        sensor(context)

    assert SENT == [(
        f"Riskcast run {result.run_id} of hourly_increment_job failed",
        ["partition: 2023-04-01-09:00",
         "step build_features failed: ValueError: fct_cell_hour_crimes has 1 row for partition 2023-04-01-09:00; "
         "rebuild the warehouse"])]


def test_failure_sensors_are_in_the_definitions(tmp_path: Path, folder: Path) -> None:
    jurisdiction = write_test_jurisdiction(tmp_path, "2023-01-01")
    run_file = write_run_file(tmp_path, jurisdiction, folder, ("2023-01-01", "2023-06-01"), ("2023-06-01", "2023-06-02"),
                              freshness={"max_age_hours": 12, "enabled": True},
                              notifications={"kind": "slack", "webhook_env": "TEST_WEBHOOK"})

    definitions = build_definitions(run_file, tmp_path / "home")

    freshness = definitions.resolve_sensor_def("testcity_portal_freshness")
    failures = definitions.resolve_sensor_def("testcity_run_failures")
    assert freshness.default_status == dg.DefaultSensorStatus.RUNNING
    assert "more than 12 hours old" in freshness.description
    assert failures.default_status == dg.DefaultSensorStatus.RUNNING
    assert definitions.resources["notifications"] == SlackNotificationResource(webhook_env="TEST_WEBHOOK")
    assert definitions.resolve_sensor_def("testcity_stale_features").job_name == FEATURES_JOB


class WebhookServer:
    """A Slack-like webhook on 127.0.0.1 that records each posted body and responds with ``status``."""

    def __init__(self, status: int) -> None:
        self.posts: list[tuple[dict, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                server.posts.append((json.loads(self.rfile.read(length)), self.headers["Content-Type"]))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"invalid_payload")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/services/T000/B000/XXXX"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookServer":
        self.thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_slack_notification_posts_json(monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookServer(200) as server:
        monkeypatch.setenv("TEST_WEBHOOK", server.url)

        SlackNotificationResource(webhook_env="TEST_WEBHOOK").notify("Riskcast run 1 failed", ["step a failed: boom"])

    assert server.posts == [({"text": "Riskcast run 1 failed\nstep a failed: boom"}, "application/json")]


def test_slack_rejection_names_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookServer(400) as server:
        monkeypatch.setenv("TEST_WEBHOOK", server.url)

        with pytest.raises(NotificationError, match="rejected the notification with HTTP 400: invalid_payload"):
            SlackNotificationResource(webhook_env="TEST_WEBHOOK").notify("subject", [])


def test_slack_without_webhook_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_WEBHOOK", raising=False)

    with pytest.raises(NotificationError, match="environment variable TEST_WEBHOOK is not set"):
        SlackNotificationResource(webhook_env="TEST_WEBHOOK").notify("subject", [])


def test_run_failure_reaches_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = build_run_failure_sensor(CHICAGO)
    with WebhookServer(200) as server, dg.instance_for_test() as instance:
        monkeypatch.setenv("TEST_WEBHOOK", server.url)
        result = failing_run(instance)
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
            resources={"notifications": SlackNotificationResource(webhook_env="TEST_WEBHOOK")},
        ).for_run_failure()

        sensor(context)

    text = server.posts[0][0]["text"]
    assert text.startswith(f"Riskcast run {result.run_id} of hourly_increment_job failed\n")
    assert "step build_features failed: ValueError: fct_cell_hour_crimes has 1 row" in text


def test_log_notification_writes_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="riskcast.notifications"):
        LogNotificationResource().notify("Riskcast run 1 failed", ["step a failed: boom"])

    assert caplog.messages == ["Riskcast run 1 failed\nstep a failed: boom"]
