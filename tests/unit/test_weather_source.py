"""raw_weather_observations materialized by Dagster, from local files and from a local NOAA service.

The live runs pull from a ``NoaaServer`` on 127.0.0.1 (tests/weather_server.py), so no test
contacts NOAA. Each test starts from an empty Riskcast home.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.assets.raw_weather import raw_weather_observations
from orchestration.jurisdiction import JURISDICTIONS_DIR, ConfigError
from orchestration.resources import RiskcastResource
from orchestration.sources.weather import LocalWeatherSource, NoaaLcdWeatherSource
from orchestration.warehouse import connect
from orchestration.weather_extracts import RAW_WEATHER_COLUMNS
from tests.weather_server import NoaaServer, NoaaState, ScriptedResponse, lcd_report, running_noaa_server

ORD = "72530094846"
MDW = "72534014819"
METAR = "MET12305/31/23 23:51:02 METAR KORD 010551Z 23008KT"


def ord_reports() -> list[list[str]]:
    return [
        lcd_report(ORD, "2023-05-31T22:51:00", "FM-15", "60", "0.00", "70", "230", "8"),
        lcd_report(ORD, "2023-05-31T23:51:00", "FM-15", "59", "T", "72", "240", "7", remark=METAR),
        lcd_report(ORD, "2023-05-31T23:59:00", "SOD  ", daily="T"),
        lcd_report(ORD, "2023-06-10T13:07:00", "FM-16", "70", "0.12", "75", "210", "14"),
        lcd_report(ORD, "2023-06-10T13:51:00", "FM-15", "67", "0.24", "80", "VRB", "5"),
        lcd_report(ORD, "2023-06-10T14:51:00", "FM-15", "66s", "T", "81", "240", "7"),
    ]


def mdw_reports() -> list[list[str]]:
    return [
        lcd_report(MDW, "2023-06-09T10:51:00", "FM-15", "71", "0.00", "55", "180", "9"),
        lcd_report(MDW, "2023-06-10T13:51:00", "FM-15", "69", "0.30", "60", "190", "4"),
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[NoaaServer]:
    with running_noaa_server() as noaa_server:
        yield noaa_server


@pytest.fixture
def noaa(server: NoaaServer, monkeypatch: pytest.MonkeyPatch) -> NoaaState:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server.state = NoaaState(reports={ORD: ord_reports(), MDW: mdw_reports()})
    return server.state


def write_jurisdiction(folder: Path, end_date: str = "2023-06-30") -> Path:
    content = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    content["name"] = "testcity"
    content["weather"]["api"] = {"base_url": "http://127.0.0.1:9", "layout": "lcd_v2", "start_date": "2023-05-01",
                                 "end_date": end_date, "lookback_days": 3, "max_retries": 2,
                                 "backoff_seconds": 0.0, "timeout_seconds": 5.0}
    content["weather"]["files"] = [{"pattern": "weather/ohare_lcd_hourly_*.csv", "layout": "lcd_v1"}]
    path = folder / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    jurisdiction = write_jurisdiction(tmp_path)
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({
        "jurisdiction": str(jurisdiction), "extracts_folder": str(tmp_path / "extracts"), "weather_source": "noaa",
        "train": {"start": "2023-05-01", "end": "2023-06-01"}, "score": {"start": "2023-06-01", "end": "2023-06-02"},
        "refresh": {"period": "daily"},
    }), encoding="utf-8")
    return tmp_path


def riskcast(home: Path) -> RiskcastResource:
    return RiskcastResource(run_config_path=str(home / "run.yaml"), home=str(home / "home"))


def pull(home: Path, server: NoaaServer) -> dg.MaterializeResult:
    result = dg.materialize([raw_weather_observations], instance=dg.DagsterInstance.ephemeral(), resources={
        "riskcast": riskcast(home), "weather_source": NoaaLcdWeatherSource(base_url_override=server.base_url)})
    assert result.success
    return metadata_of(result)


def read_local(home: Path) -> dict[str, object]:
    result = dg.materialize([raw_weather_observations], instance=dg.DagsterInstance.ephemeral(), resources={
        "riskcast": riskcast(home), "weather_source": LocalWeatherSource(folder=str(home / "extracts"))})
    assert result.success
    return metadata_of(result)


def metadata_of(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    event = result.get_asset_materialization_events()[0]
    return {name: value.value for name, value in event.materialization.metadata.items()}


def warehouse(home: Path) -> Path:
    return home / "home" / "testcity" / "warehouse.duckdb"


def query(home: Path, sql: str) -> list[tuple]:
    with connect(warehouse(home), read_only=True) as connection:
        return connection.sql(sql).fetchall()


def chunk_requests(noaa: NoaaState) -> list[tuple[str, str, str]]:
    return [(query["stations"], query["startDate"], query["endDate"]) for query in noaa.queries]


def test_first_pull_requests_each_month(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    pull(home, server)

    assert chunk_requests(noaa) == [
        (ORD, "2023-05-01T00:00:00", "2023-05-31T23:59:59"),
        (ORD, "2023-06-01T00:00:00", "2023-06-30T23:59:59"),
        (MDW, "2023-05-01T00:00:00", "2023-05-31T23:59:59"),
        (MDW, "2023-06-01T00:00:00", "2023-06-30T23:59:59"),
    ]


def test_first_pull_stores_every_report(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    metadata = pull(home, server)

    assert metadata["dagster/row_count"] == 8
    assert metadata["rows_new"] == 8
    assert metadata["rows_replaced"] == 0
    assert metadata["requests"] == 4
    assert metadata["stations_not_pulled"] == ["WBAN:04807", "WBAN:04831"]
    assert query(home, "SELECT station, count(*) FROM raw.weather_observations GROUP BY 1 ORDER BY 1") == [
        (ORD, 6), (MDW, 2)]


def test_watermark_is_latest_report(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    metadata = pull(home, server)

    assert metadata["watermarks_after"] == {ORD: "2023-06-10T14:51:00", MDW: "2023-06-10T13:51:00"}
    assert query(home, "SELECT source, watermark, pulled_rows FROM raw.ingest_state ORDER BY source") == [
        (f"noaa-lcd:{ORD}", "2023-06-10T14:51:00", 6),
        (f"noaa-lcd:{MDW}", "2023-06-10T13:51:00", 2),
    ]


def test_second_pull_starts_at_watermark_less_lookback(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    pull(home, server)
    noaa.requests.clear()

    pull(home, server)

    assert chunk_requests(noaa) == [
        (ORD, "2023-06-07T00:00:00", "2023-06-30T23:59:59"),
        (MDW, "2023-06-07T00:00:00", "2023-06-30T23:59:59"),
    ]


def test_repeated_pull_changes_nothing(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    pull(home, server)
    before = query(home, "SELECT * FROM raw.weather_observations ORDER BY station, date, report_type")

    metadata = pull(home, server)

    assert metadata["rows_new"] == 0
    assert metadata["rows_replaced"] == 0
    # The second pull reads from 2023-06-07: three O'Hare and two Midway reports.
    assert metadata["rows_unchanged"] == 5
    assert metadata["dagster/row_count"] == 8
    assert query(home, "SELECT * FROM raw.weather_observations ORDER BY station, date, report_type") == before


def test_corrected_report_replaces_stored(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    pull(home, server)
    noaa.reports[ORD][4] = lcd_report(ORD, "2023-06-10T13:51:00", "FM-15", "68", "0.25", "80", "VRB", "5")

    metadata = pull(home, server)

    assert metadata["rows_replaced"] == 1
    assert metadata["rows_new"] == 0
    assert metadata["dagster/row_count"] == 8
    assert query(home, "SELECT temperature_f, precipitation_in FROM raw.weather_observations "
                       "WHERE date = '2023-06-10T13:51:00' AND station = '72530094846'") == [("68", "0.25")]


def test_later_end_date_pulls_new_month(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    pull(home, server)
    write_jurisdiction(home, end_date="2023-07-31")
    noaa.reports[ORD].append(lcd_report(ORD, "2023-07-02T00:51:00", "FM-15", "75", "0.00"))
    noaa.requests.clear()

    metadata = pull(home, server)

    assert chunk_requests(noaa)[:2] == [
        (ORD, "2023-06-07T00:00:00", "2023-06-30T23:59:59"),
        (ORD, "2023-07-01T00:00:00", "2023-07-31T23:59:59"),
    ]
    assert metadata["rows_new"] == 1
    assert metadata["watermarks_after"][ORD] == "2023-07-02T00:51:00"


def test_truncated_pull_stores_nothing(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    pull(home, server)
    noaa.reports[ORD].append(lcd_report(ORD, "2023-06-11T00:51:00", "FM-15", "64", "0.00"))
    noaa.scripted = [ScriptedResponse(damage="cut_row")] * 3

    result = dg.materialize([raw_weather_observations], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                            resources={"riskcast": riskcast(home),
                                       "weather_source": NoaaLcdWeatherSource(base_url_override=server.base_url)})

    assert not result.success
    assert "truncated body" in str(result.get_step_failure_events()[0].step_failure_data.error)
    assert query(home, "SELECT count(*) FROM raw.weather_observations") == [(8,)]
    assert query(home, f"SELECT watermark FROM raw.ingest_state WHERE source = 'noaa-lcd:{ORD}'") == [
        ("2023-06-10T14:51:00",)]


def test_truncated_once_then_stored_whole(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    noaa.scripted = [ScriptedResponse(damage="short_body")]

    metadata = pull(home, server)

    assert metadata["requests"] == 5
    assert metadata["dagster/row_count"] == 8


def test_changed_header_raises(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    noaa.header[4] = "HourlyDryBulbTemperatureF"

    result = dg.materialize([raw_weather_observations], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                            resources={"riskcast": riskcast(home),
                                       "weather_source": NoaaLcdWeatherSource(base_url_override=server.base_url)})

    message = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert not result.success
    assert "column missing for temperature_f (column 'HourlyDryBulbTemperature')" in message
    assert "stations=72530094846" in message
    assert "weather layout 'lcd_v2'" in message


def test_local_run_replaces_live_rows(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    pull(home, server)
    write_lcd_v1(home / "extracts")

    metadata = read_local(home)

    assert metadata["mode"] == "replace"
    assert metadata["dagster/row_count"] == 2
    assert query(home, "SELECT count(*) FROM raw.ingest_state WHERE source LIKE 'noaa-lcd:%'") == [(0,)]


def test_local_read_twice_changes_nothing(home: Path) -> None:
    write_lcd_v1(home / "extracts")

    first = read_local(home)
    stored = query(home, "SELECT * FROM raw.weather_observations ORDER BY source_row")
    second = read_local(home)

    assert first["dagster/row_count"] == second["dagster/row_count"] == 2
    assert query(home, "SELECT * FROM raw.weather_observations ORDER BY source_row") == stored


def test_live_run_removes_file_rows(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    write_lcd_v1(home / "extracts")
    read_local(home)

    metadata = pull(home, server)

    assert metadata["rows_from_files_removed"] == 2
    assert metadata["dagster/row_count"] == 8


def test_noaa_run_without_api_block_rejected(home: Path, server: NoaaServer) -> None:
    content = yaml.safe_load((home / "testcity.yaml").read_text(encoding="utf-8"))
    del content["weather"]["api"]
    (home / "testcity.yaml").write_text(yaml.safe_dump(content), encoding="utf-8")

    from orchestration.definitions import build_definitions

    with pytest.raises(ConfigError, match="sets weather_source: noaa, but jurisdiction 'testcity' has no weather.api"):
        build_definitions(home / "run.yaml", home / "home")


def test_station_coverage_counts_gap_hours(home: Path, server: NoaaServer, noaa: NoaaState) -> None:
    metadata = pull(home, server)

    # O'Hare has usable reports in the UTC hours 2023-06-01 04:00 and 05:00, then 2023-06-10 19:00
    # and 20:00: 233 hours from first to last, 4 with a report, one gap of 229 hours. The SOD row
    # counts as a report but not as an hour with a usable report.
    coverage = metadata["station_coverage"]
    assert f"| {ORD} | 6 | 2023-05-31 22:51:00 | 2023-06-10 14:51:00 | 233 | 4 | 229 | 229 |" in coverage
    assert f"| {MDW} | 2 | 2023-06-09 10:51:00 | 2023-06-10 13:51:00 | 28 | 2 | 26 | 26 |" in coverage
    assert metadata["hours_without_report"] == 229 + 26


def write_lcd_v1(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "weather").mkdir(parents=True)
    (folder / "weather" / "ohare_lcd_hourly_2023.csv").write_text(
        "STATION,DATE,REPORTTPYE,HOURLYDRYBULBTEMPF,HOURLYRelativeHumidity,HOURLYWindSpeed,HOURLYWindDirection,"
        "HOURLYPrecip,DAILYPrecip\n"
        "WBAN:94846,2023-06-10 13:51,FM-15,67,80,5,230,0.24,\n"
        "WBAN:94846,2023-06-10 14:51,FM-15,66,81,7,240,T,\n", encoding="utf-8")


def test_no_weather_block_stores_empty_table(home: Path) -> None:
    content = yaml.safe_load((home / "testcity.yaml").read_text(encoding="utf-8"))
    del content["weather"]
    (home / "testcity.yaml").write_text(yaml.safe_dump(content), encoding="utf-8")

    metadata = read_local(home)

    assert metadata["dagster/row_count"] == 0
    assert [row[0] for row in query(home, "DESCRIBE raw.weather_observations")] == list(RAW_WEATHER_COLUMNS)
