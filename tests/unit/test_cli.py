"""Unit tests of the ``riskcast`` command line: time parsing, range checks, progress and input errors.

They call the click group in process (click's CliRunner) or ``main``, and stop before any job
runs, so none needs a warehouse.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from orchestration.cli import CliError, check_hours, cli, main, one_line, parse_hour, report_asset_keys
from orchestration.definitions import EVALUATE_JOB, FEATURES_JOB, SCORE_JOB, build_definitions
from orchestration.jurisdiction import default_run_config_path, load_jurisdiction
from orchestration.runner import JobFailedError, backfill_steps, run_steps, step_label

UTC = timezone.utc
NOW = datetime(2026, 1, 10, 12, 34, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected", "moved"), [
    ("2017-07-01", datetime(2017, 7, 1, tzinfo=UTC), False),
    ("2017-07-01T05:00", datetime(2017, 7, 1, 5, tzinfo=UTC), False),
    ("2017-07-01T05:00+00:00", datetime(2017, 7, 1, 5, tzinfo=UTC), False),
    ("2017-07-01T05:00Z", datetime(2017, 7, 1, 5, tzinfo=UTC), False),
    ("2017-07-01T00:00-05:00", datetime(2017, 7, 1, 5, tzinfo=UTC), False),
    ("2017-07-01-05:00", datetime(2017, 7, 1, 5, tzinfo=UTC), False),
    ("2017-07-01T05:59:59", datetime(2017, 7, 1, 5, tzinfo=UTC), True),
    ("2017-07-01T05:30+05:30", datetime(2017, 7, 1, 0, tzinfo=UTC), False),
])
def test_parse_hour_accepts_iso_forms(text: str, expected: datetime, moved: bool) -> None:
    assert parse_hour(text, "--from") == (expected, moved)


def test_parse_hour_names_bad_value() -> None:
    with pytest.raises(CliError) as raised:
        parse_hour("07/01/2017", "--from")

    message = raised.value.format_message()
    assert "--from '07/01/2017' is not an ISO date or time" in message
    assert "2017-07-01T05:00" in message


def test_check_hours_rejects_bad_ranges() -> None:
    demo = load_jurisdiction("demo")
    first = demo.partitions_start

    with pytest.raises(CliError, match=r"--to 2023-01-01T05:00 UTC is not after --from 2023-01-01T05:00 UTC"):
        check_hours(datetime(2023, 1, 1, 5, tzinfo=UTC), datetime(2023, 1, 1, 5, tzinfo=UTC), demo,
                    "--from", "--to", now=NOW)
    with pytest.raises(CliError, match=r"before demo's first hourly partition 2021-01-01T00:00 UTC"):
        check_hours(datetime(2020, 12, 31, 23, tzinfo=UTC), datetime(2021, 1, 2, tzinfo=UTC), demo,
                    "--from", "--to", now=NOW)
    with pytest.raises(CliError, match=r"--to 2026-01-10T13:00 UTC is after the newest hourly partition, which "
                                       r"ends at 2026-01-10T12:00 UTC"):
        check_hours(datetime(2026, 1, 10, 11, tzinfo=UTC), datetime(2026, 1, 10, 13, tzinfo=UTC), demo,
                    "--from", "--to", now=NOW)

    check_hours(first, datetime(2026, 1, 10, 12, tzinfo=UTC), demo, "--from", "--to", now=NOW)


def test_one_line_joins_failed_steps() -> None:
    message = "score_job failed (run abc):\nrisk_scores: no violent ensemble\nother: boom\n"

    assert one_line(message) == "score_job failed (run abc): risk_scores: no violent ensemble; other: boom"
    assert one_line("single cause") == "single cause"


def test_backfill_steps_cover_range() -> None:
    start = datetime(2017, 7, 1, tzinfo=UTC)
    end = datetime(2017, 7, 1, 6, tzinfo=UTC)

    steps = backfill_steps(start, end)
    features_only = backfill_steps(start, end, score=False)

    assert [name for name, _ in steps] == [FEATURES_JOB, SCORE_JOB]
    assert steps[0][1] == {"dagster/asset_partition_range_start": "2017-07-01-00:00",
                           "dagster/asset_partition_range_end": "2017-07-01-05:00"}
    assert steps[1][1] == steps[0][1]
    assert [name for name, _ in features_only] == [FEATURES_JOB]


def test_step_label_names_partitions() -> None:
    ranged = {"dagster/asset_partition_range_start": "2017-01-01-00:00",
              "dagster/asset_partition_range_end": "2017-06-30-23:00"}

    assert step_label("features_job", ranged) == "features_job (2017-01-01-00:00 .. 2017-06-30-23:00)"
    assert step_label("train_job", {"dagster/partition": "2017-06-25"}) == "train_job (2017-06-25)"
    assert step_label("evaluate_job", None) == "evaluate_job"


def test_run_steps_stops_at_unknown_job(tmp_path: Path) -> None:
    definitions = build_definitions(default_run_config_path(), tmp_path)
    lines: list[str] = []

    with pytest.raises(dg.DagsterInvariantViolationError, match="no_such_job"):
        run_steps(definitions, None, [("no_such_job", None), ("evaluate_job", None)], progress=lines.append)

    # The first step announced itself and failed, so the second never started.
    assert lines == ["[1/2] no_such_job ..."]


def test_run_steps_reports_failed_job(tmp_path: Path) -> None:
    definitions = build_definitions(default_run_config_path(), tmp_path)
    lines: list[str] = []
    steps = [(SCORE_JOB, {"dagster/partition": "2023-09-01-05:00"}), (EVALUATE_JOB, None)]

    # With no warehouse under tmp_path, scoring finds no model and its run fails.
    with dg.DagsterInstance.ephemeral() as instance, pytest.raises(JobFailedError, match="score_job failed"):
        run_steps(definitions, instance, steps, progress=lines.append)

    assert len(lines) == 2
    assert lines[0] == "[1/2] score_job (2023-09-01-05:00) ..."
    assert lines[1].startswith("[1/2] score_job failed after ")


def test_report_assets_are_every_html_asset(tmp_path: Path) -> None:
    definitions = build_definitions(default_run_config_path(), tmp_path)

    names = {key.to_user_string() for key in report_asset_keys(definitions)}

    assert names == {"data_input_audit_report", "evaluation_metrics", "model_metrics_report", "bias_audit_report",
                     "police_deployment_report"}


def invoke(tmp_path: Path, *arguments: str):
    return CliRunner().invoke(cli, ["--home", str(tmp_path), *arguments])


def test_backfill_bad_from_exits_1(tmp_path: Path) -> None:
    result = invoke(tmp_path, "backfill", "--from", "yesterday", "--to", "2023-09-02")

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "riskcast: --from 'yesterday' is not an ISO date or time; give a date such as 2017-07-01 or an hour "
        "such as 2017-07-01T05:00 (UTC unless it has an offset such as -05:00)"]
    # The input is checked before anything is written under the home folder.
    assert list(tmp_path.iterdir()) == []


def test_backfill_inverted_range_exits_1(tmp_path: Path) -> None:
    result = invoke(tmp_path, "backfill", "--from", "2023-09-02", "--to", "2023-09-01T12:00")

    assert result.exit_code == 1
    assert "riskcast: --to 2023-09-01T12:00 UTC is not after --from 2023-09-02T00:00 UTC" in result.output


def test_backfill_before_data_start_exits_1(tmp_path: Path) -> None:
    result = invoke(tmp_path, "backfill", "--from", "2020-06-01", "--to", "2021-01-02")

    assert result.exit_code == 1
    assert "--from 2020-06-01T00:00 UTC is before demo's first hourly partition" in result.output
    assert "use 2021-01-01 or later" in result.output


def test_score_missing_run_file_exits_1(tmp_path: Path) -> None:
    result = invoke(tmp_path, "score", "--at", "2023-09-01T05:00", "--config", str(tmp_path / "absent.yaml"))

    assert result.exit_code == 1
    assert result.output.strip() == f"riskcast: configuration file not found: {tmp_path / 'absent.yaml'}"


def test_score_horizon_past_run_exits_1(tmp_path: Path) -> None:
    result = invoke(tmp_path, "score", "--at", "2023-09-01T05:00", "--horizon", "73")

    assert result.exit_code == 1
    assert "--horizon 73 is past the run file's horizon_hours 72; use 1 to 72" in result.output


def test_status_without_warehouse_exits_1(tmp_path: Path) -> None:
    result = invoke(tmp_path, "status")

    assert result.exit_code == 1
    assert result.output.strip() == (f"riskcast: no warehouse at {tmp_path / 'demo' / 'warehouse.duckdb'}: run "
                                     f"`riskcast demo` or `riskcast run --config FILE` with --home {tmp_path} first")


def test_score_without_warehouse_exits_1(tmp_path: Path) -> None:
    result = invoke(tmp_path, "score", "--at", "2023-09-01T05:00")

    assert result.exit_code == 1
    assert result.output.strip() == (f"riskcast: no warehouse at {tmp_path / 'demo' / 'warehouse.duckdb'}: run "
                                     f"`riskcast demo` or `riskcast run --config FILE` with --home {tmp_path} first")
    assert list(tmp_path.iterdir()) == []


def test_ui_rejects_remote_host(tmp_path: Path) -> None:
    result = invoke(tmp_path, "ui", "--host", "0.0.0.0")

    assert result.exit_code == 1
    assert "riskcast: --host 0.0.0.0 is not a loopback address" in result.output
    assert "--allow-remote" in result.output


def test_report_build_conflicting_jurisdiction_exits_1(tmp_path: Path) -> None:
    result = invoke(tmp_path, "report", "--build", "--jurisdiction", "chicago")

    assert result.exit_code == 1
    assert "--jurisdiction chicago differs from the run file's jurisdiction demo" in result.output


def test_main_usage_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--home", str(tmp_path), "backfill", "--to", "2023-09-02"])

    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error == "riskcast: Missing option '--from'. (see `riskcast backfill --help`)"


def test_main_returns_report_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--home", str(tmp_path), "report"])

    assert code == 1
    assert capsys.readouterr().err.strip().startswith(f"riskcast: no warehouse at {tmp_path / 'demo'}")


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])

    assert result.exit_code == 0
    for command in ("demo", "run", "backtest", "backfill", "score", "evaluate", "report", "ui", "status"):
        assert f"  {command} " in result.output
