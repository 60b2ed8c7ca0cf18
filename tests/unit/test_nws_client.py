"""NWS forecast client, parser, archive and raw asset, against a local NWS server on 127.0.0.1.

The server (tests/nws_server.py) serves NWS-style JSON, so no test contacts api.weather.gov.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from orchestration.assets.raw_forecasts import raw_weather_forecasts
from orchestration.jurisdiction import (
    JURISDICTIONS_DIR,
    ConfigError,
    check_forecast_source,
    load_jurisdiction,
    load_run_config,
)
from orchestration.nws import (
    NwsClient,
    NwsError,
    NwsService,
    format_coordinate,
    hourly_precipitation,
    missing_hours,
    parse_forecast,
    parse_period,
    wind_speed_mph,
)
from orchestration.resources import RiskcastResource
from orchestration.sources.forecasts import LocalForecastSource, NwsForecastSource, read_forecast_archive, write_forecast_archive
from orchestration.warehouse import connect
from tests.nws_server import (
    NwsServer,
    NwsState,
    ScriptedResponse,
    grid_document,
    hourly_document,
    hourly_period,
    hourly_periods,
    running_nws_server,
)

SOURCE = "nws:LOT/76,73"
FETCHED = datetime(2024, 7, 1, 10, 5, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def server() -> Iterator[NwsServer]:
    with running_nws_server() as nws_server:
        yield nws_server


@pytest.fixture
def nws(server: NwsServer, monkeypatch: pytest.MonkeyPatch) -> NwsState:
    """Reset the server to a six-hour forecast, and keep traffic off proxies."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server.state = NwsState(hourly=hourly_document(hourly_periods("2024-07-01T05:00:00-05:00", 6)),
                            grid=grid_document([("2024-07-01T10:00:00+00:00/PT6H", 6.0)]))
    return server.state


def client(server: NwsServer, sleeps: list[float], **settings: object) -> NwsClient:
    options = {"latitude": 41.9786, "longitude": -87.9048, "max_retries": 3, "backoff_seconds": 1.0,
               "max_backoff_seconds": 30.0, "timeout_seconds": 5.0, "user_agent": "Riskcast-test (ops@example.org)"}
    service = NwsService(base_url=server.base_url, **(options | settings))
    return NwsClient(service, sleep=sleeps.append)


# Client: requests, retries and errors.

def test_client_retries_then_succeeds(server: NwsServer, nws: NwsState) -> None:
    nws.scripted = [ScriptedResponse(503), ScriptedResponse(503, headers={"Retry-After": "7"}),
                    ScriptedResponse(500)]
    sleeps: list[float] = []

    grid = client(server, sleeps).point()

    assert grid.source == SOURCE
    assert sleeps == [1.0, 7.0, 4.0]
    assert len(nws.requests) == 4


def test_retry_after_capped_by_max_backoff(server: NwsServer, nws: NwsState) -> None:
    nws.scripted = [ScriptedResponse(429, headers={"Retry-After": "600"})]
    sleeps: list[float] = []

    client(server, sleeps, max_backoff_seconds=12.0).point()

    assert sleeps == [12.0]


def test_backoff_doubles_up_to_cap(server: NwsServer, nws: NwsState) -> None:
    nws.scripted = [ScriptedResponse(503) for _ in range(4)]
    sleeps: list[float] = []

    client(server, sleeps, max_retries=4, max_backoff_seconds=5.0).point()

    assert sleeps == [1.0, 2.0, 4.0, 5.0]


def test_client_gives_up_after_retries(server: NwsServer, nws: NwsState) -> None:
    nws.scripted = [ScriptedResponse(503) for _ in range(5)]
    sleeps: list[float] = []

    with pytest.raises(NwsError) as raised:
        client(server, sleeps, max_retries=3).point()

    message = str(raised.value)
    assert "failed after 4 attempts, last with HTTP 503" in message
    assert f"{server.base_url}/points/41.9786,-87.9048" in message
    assert "raise forecast.api.max_retries" in message
    assert len(nws.requests) == 4
    assert len(sleeps) == 3


def test_client_does_not_retry_404(server: NwsServer, nws: NwsState) -> None:
    nws.scripted = [ScriptedResponse(404, b'{"title": "Not Found"}')]

    with pytest.raises(NwsError, match="rejected .* with HTTP 404.*Check forecast.api.base_url"):
        client(server, []).point()

    assert len(nws.requests) == 1


def test_client_retries_invalid_json(server: NwsServer, nws: NwsState) -> None:
    nws.scripted = [ScriptedResponse(200, b'{"properties": {"gridId": "LO'),
                    ScriptedResponse(200, b'{"properties": {"gridId": "\xc3"}}')]
    sleeps: list[float] = []

    grid = client(server, sleeps).point()

    assert grid.office == "LOT"
    assert sleeps == [1.0, 2.0]
    assert len(nws.requests) == 3


def test_user_agent_sent_on_every_request(server: NwsServer, nws: NwsState) -> None:
    nws_client = client(server, [])
    grid = nws_client.point()
    nws_client.hourly_forecast(grid)
    nws_client.grid_data(grid)

    assert nws.paths == ["/points/41.9786,-87.9048", "/gridpoints/LOT/76,73/forecast/hourly", "/gridpoints/LOT/76,73"]
    assert [request.headers["user-agent"] for request in nws.requests] == ["Riskcast-test (ops@example.org)"] * 3
    assert nws.requests[0].headers["accept"] == "application/geo+json"


def test_points_url_has_four_decimals(server: NwsServer, nws: NwsState) -> None:
    client(server, [], latitude=41.978649, longitude=-87.90480001).point()

    assert nws.paths == ["/points/41.9786,-87.9048"]
    assert format_coordinate(40.0) == "40"
    assert format_coordinate(-0.00001) == "0"


def test_service_rejects_invalid_point() -> None:
    with pytest.raises(ValueError, match=r"forecast point \(95.0, -87.9\) is not a valid latitude"):
        NwsService(base_url="http://127.0.0.1:9", latitude=95.0, longitude=-87.9)


# Parser: units, intervals and rejected periods.

def test_temperature_celsius_to_fahrenheit() -> None:
    assert parse_period(hourly_period("2024-07-01T10:00:00+00:00", 20, "C"))["temperature_f"] == 68.0
    assert parse_period(hourly_period("2024-07-01T10:00:00+00:00", -40, "C"))["temperature_f"] == -40.0
    assert parse_period(hourly_period("2024-07-01T10:00:00+00:00", 37, "C"))["temperature_f"] == pytest.approx(98.6)
    assert parse_period(hourly_period("2024-07-01T10:00:00+00:00", 71, "F"))["temperature_f"] == 71.0


def test_temperature_quantity_object() -> None:
    period = hourly_period("2024-07-01T10:00:00+00:00", {"unitCode": "wmoUnit:degC", "value": 10})

    assert parse_period(period)["temperature_f"] == 50.0


def test_wind_speed_units_and_ranges() -> None:
    assert wind_speed_mph("5 to 10 mph") == 10.0
    assert wind_speed_mph("10 mph") == 10.0
    assert wind_speed_mph("16.09344 km/h") == pytest.approx(10.0)
    assert wind_speed_mph("8 to 16.09344 km/h") == pytest.approx(10.0)
    assert wind_speed_mph("10 kt") == pytest.approx(11.50779448)
    assert wind_speed_mph(None) is None


def test_wind_speed_invalid_text() -> None:
    with pytest.raises(ValueError, match="windSpeed 'breezy' is not a speed"):
        wind_speed_mph("breezy")


def test_percent_values_and_nulls() -> None:
    row = parse_period(hourly_period("2024-07-01T10:00:00+00:00", precipitation=35, humidity=82))
    empty = parse_period(hourly_period("2024-07-01T10:00:00+00:00", precipitation=None, humidity=None))

    assert row["precipitation_probability"] == 0.35
    assert row["relative_humidity"] == 82.0
    assert empty["precipitation_probability"] is None
    assert empty["relative_humidity"] is None


def test_millimetres_to_inches() -> None:
    hourly, rejected = hourly_precipitation(grid_document([("2024-07-01T10:00:00+00:00/PT1H", 25.4)]))

    assert hourly == {datetime(2024, 7, 1, 10): 1.0}
    assert rejected == []


def test_six_hour_interval_spread() -> None:
    hourly, rejected = hourly_precipitation(grid_document([("2024-07-01T05:00:00-05:00/PT6H", 15.24)]))

    assert sorted(hourly) == [datetime(2024, 7, 1, hour) for hour in range(10, 16)]
    for amount in hourly.values():
        assert amount == pytest.approx(0.1)
    assert sum(hourly.values()) == pytest.approx(0.6)
    assert rejected == []


def test_day_interval_and_bad_values() -> None:
    hourly, rejected = hourly_precipitation(grid_document([
        ("2024-07-02T00:00:00+00:00/P1DT12H", 36.0 * 25.4),
        ("2024-07-02T06:00:00+00:00/PT1H", 1.0),
        ("2024-07-04T00:00:00+00:00/PT30M", 1.0),
        ("2024-07-05T00:00:00+00:00/PT1H", -2.0),
    ]))

    assert len(hourly) == 36
    assert hourly[datetime(2024, 7, 3, 11)] == pytest.approx(1.0)
    assert len(rejected) == 3
    assert rejected[0].endswith("overlaps an earlier interval")
    assert "whole hours" in rejected[1]
    assert "not an amount of 0 or more" in rejected[2]


def test_grid_unit_unknown_rejected() -> None:
    hourly, rejected = hourly_precipitation(grid_document([("2024-07-01T10:00:00+00:00/PT1H", 1.0)], uom="wmoUnit:cm"))

    assert hourly == {}
    assert rejected == ["quantitativePrecipitation: unit 'wmoUnit:cm' is neither wmoUnit:mm nor wmoUnit:in"]


def test_parse_forecast_rows_in_utc() -> None:
    periods = hourly_periods("2024-07-01T05:00:00-05:00", 3, temperature=20, unit="C", wind="5 to 10 mph")
    grid = grid_document([("2024-07-01T10:00:00+00:00/PT6H", 6.0)])

    parsed = parse_forecast(hourly_document(periods), grid, SOURCE, FETCHED)

    frame = parsed.frame
    assert parsed.issued_at == datetime(2024, 7, 1, 9, 12)
    assert frame["valid_hour"].to_list() == [datetime(2024, 7, 1, hour) for hour in (10, 11, 12)]
    assert frame["issued_at"].unique().to_list() == [datetime(2024, 7, 1, 9, 12)]
    assert frame["temperature_f"].to_list() == [68.0, 68.0, 68.0]
    assert frame["wind_speed_mph"].to_list() == [10.0, 10.0, 10.0]
    assert frame["precipitation_in"].to_list() == pytest.approx([1.0 / 25.4] * 3)
    assert frame["precipitation_probability"].to_list() == [0.2, 0.2, 0.2]
    assert frame["fetched_at"].unique().to_list() == [datetime(2024, 7, 1, 10, 5)]
    assert frame["source"].unique().to_list() == [SOURCE]


def test_issue_time_falls_back_to_generated_at() -> None:
    document = hourly_document(hourly_periods("2024-07-01T10:00:00+00:00", 1), update_time=None,
                               generated_at="2024-07-01T05:30:59-05:00")

    parsed = parse_forecast(document, None, SOURCE, FETCHED)

    assert parsed.issued_at == datetime(2024, 7, 1, 10, 30)
    assert parsed.frame["precipitation_in"].to_list() == [None]


def test_forecast_without_issue_time_raises() -> None:
    document = hourly_document([], update_time=None, generated_at="")

    with pytest.raises(NwsError, match="neither updateTime nor generatedAt"):
        parse_forecast(document, None, SOURCE, FETCHED)


def test_bad_periods_rejected_with_reasons() -> None:
    periods = hourly_periods("2024-07-01T10:00:00+00:00", 5)
    periods[1]["temperature"] = "warm"
    periods[2]["windSpeed"] = "breezy"
    periods[3]["endTime"] = "2024-07-01T15:00:00+00:00"
    periods.append(dict(periods[0]))

    parsed = parse_forecast(hourly_document(periods), None, SOURCE, FETCHED)

    assert parsed.frame["valid_hour"].to_list() == [datetime(2024, 7, 1, 10), datetime(2024, 7, 1, 14)]
    assert parsed.periods_received == 6
    assert len(parsed.rejected_periods) == 4
    assert "temperature 'warm' is not a number" in parsed.rejected_periods[0]
    assert "windSpeed 'breezy'" in parsed.rejected_periods[1]
    assert "lasts 2:00:00, not one hour" in parsed.rejected_periods[2]
    assert "repeats an earlier period's hour" in parsed.rejected_periods[3]


def test_partial_forecast_missing_hours() -> None:
    periods = hourly_periods("2024-07-01T10:00:00+00:00", 6)
    del periods[2]

    parsed = parse_forecast(hourly_document(periods), None, SOURCE, FETCHED)

    assert parsed.frame.height == 5
    assert missing_hours(parsed.frame, 8) == {datetime(2024, 7, 1, 9, 12): 3}
    assert missing_hours(parsed.frame, 6) == {datetime(2024, 7, 1, 9, 12): 1}


# Archive layout.

def two_issues() -> pl.DataFrame:
    first = parse_forecast(hourly_document(hourly_periods("2024-07-01T10:00:00+00:00", 4)),
                           grid_document([("2024-07-01T10:00:00+00:00/PT2H", 3.0)]), SOURCE, FETCHED).frame
    second = parse_forecast(hourly_document(hourly_periods("2024-07-01T11:00:00+00:00", 4, temperature=64),
                                            update_time="2024-07-01T10:40:00+00:00"), None, SOURCE, FETCHED).frame
    return pl.concat([first, second])


def test_archive_round_trip(tmp_path: Path) -> None:
    frame = two_issues()

    paths = write_forecast_archive(frame, tmp_path / "forecasts")
    read, files = read_forecast_archive(tmp_path / "forecasts")

    assert [path.name for path in paths] == ["issued=2024-07-01T0912Z.parquet", "issued=2024-07-01T1040Z.parquet"]
    assert files == ["issued=2024-07-01T0912Z.parquet", "issued=2024-07-01T1040Z.parquet"]
    assert read.schema == frame.schema
    assert read.sort("issued_at", "valid_hour").equals(frame.sort("issued_at", "valid_hour"))


def test_archive_rewrite_replaces_file(tmp_path: Path) -> None:
    folder = tmp_path / "forecasts"
    frame = two_issues()
    write_forecast_archive(frame, folder)

    changed = frame.with_columns(pl.lit(50.0).alias("temperature_f"))
    write_forecast_archive(changed.filter(pl.col("issued_at") == datetime(2024, 7, 1, 9, 12)), folder)
    read, files = read_forecast_archive(folder)

    assert sorted(path.name for path in folder.iterdir()) == files
    assert len(files) == 2
    first_issue = read.filter(pl.col("issued_at") == datetime(2024, 7, 1, 9, 12))
    assert first_issue["temperature_f"].to_list() == [50.0] * 4
    assert read.filter(pl.col("issued_at") == datetime(2024, 7, 1, 10, 40))["temperature_f"].to_list() == [64.0] * 4


def test_archive_file_with_other_issue_rejected(tmp_path: Path) -> None:
    frame = two_issues()
    tmp_path.joinpath("forecasts").mkdir()
    frame.write_parquet(tmp_path / "forecasts" / "issued=2024-07-01T0912Z.parquet")

    with pytest.raises(ConfigError, match="contains issue times .* other than the one its name gives"):
        read_forecast_archive(tmp_path / "forecasts")


def test_archive_file_missing_columns_rejected(tmp_path: Path) -> None:
    tmp_path.joinpath("forecasts").mkdir()
    two_issues().drop("wind_speed_mph").write_parquet(tmp_path / "forecasts" / "issued=2024-07-01T0912Z.parquet")

    with pytest.raises(ConfigError, match=r"has no columns \['wind_speed_mph'\]"):
        read_forecast_archive(tmp_path / "forecasts")


def test_local_source_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="folder .*nowhere does not exist"):
        LocalForecastSource(folder=str(tmp_path / "nowhere")).read_forecasts(None)


# Configuration.

def test_airport_points_configured() -> None:
    chicago = load_jurisdiction("chicago").forecast
    philadelphia = load_jurisdiction("philadelphia").forecast

    assert chicago is not None and philadelphia is not None
    assert (chicago.point.latitude, chicago.point.longitude) == (41.9786, -87.9048)
    assert (philadelphia.point.latitude, philadelphia.point.longitude) == (39.8721, -75.2411)
    assert chicago.api.base_url == "https://api.weather.gov"
    assert load_jurisdiction("demo").forecast is None


def write_jurisdiction(folder: Path, forecast: bool = True) -> Path:
    content = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    content["name"] = "testcity"
    content["forecast"] = {"point": {"latitude": 41.9786, "longitude": -87.9048},
                           "api": {"base_url": "http://127.0.0.1:9", "max_retries": 2, "backoff_seconds": 0.0,
                                   "max_backoff_seconds": 0.0, "timeout_seconds": 5.0, "expected_hours": 8,
                                   "contact": "ops@example.org"}}
    if not forecast:
        del content["forecast"]
    path = folder / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def write_run(folder: Path, forecast_source: str, forecast: bool = True) -> Path:
    jurisdiction = write_jurisdiction(folder, forecast)
    run_file = folder / "run.yaml"
    run_file.write_text(yaml.safe_dump({
        "jurisdiction": str(jurisdiction), "extracts_folder": str(folder / "extracts"),
        "forecast_source": forecast_source,
        "train": {"start": "2024-05-01", "end": "2024-06-01"}, "score": {"start": "2024-06-01", "end": "2024-06-02"},
        "refresh": {"period": "daily"},
    }), encoding="utf-8")
    return run_file


def test_nws_source_needs_forecast_block(tmp_path: Path) -> None:
    run = load_run_config(write_run(tmp_path, "nws", forecast=False))

    with pytest.raises(ConfigError, match="sets forecast_source: nws, but jurisdiction 'testcity' has no forecast block"):
        check_forecast_source(run, load_jurisdiction(run.jurisdiction))


def test_forecast_source_value_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="forecast_source") as raised:
        load_run_config(write_run(tmp_path, "noaa"))

    assert "'none', 'archive' or 'nws'" in str(raised.value)


def test_max_backoff_below_backoff_rejected(tmp_path: Path) -> None:
    path = write_jurisdiction(tmp_path)
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    content["forecast"]["api"] |= {"backoff_seconds": 10.0, "max_backoff_seconds": 5.0}
    path.write_text(yaml.safe_dump(content), encoding="utf-8")

    with pytest.raises(ConfigError, match=r"max_backoff_seconds \(5.0\) is below backoff_seconds \(10.0\)"):
        load_jurisdiction(str(path))


# The raw asset on a tiny run.

def riskcast(folder: Path) -> RiskcastResource:
    return RiskcastResource(run_config_path=str(folder / "run.yaml"), home=str(folder / "home"))


def materialize(folder: Path, source: object) -> dict[str, object]:
    result = dg.materialize([raw_weather_forecasts], instance=dg.DagsterInstance.ephemeral(),
                            resources={"riskcast": riskcast(folder), "forecast_source": source})
    assert result.success
    event = result.get_asset_materialization_events()[0]
    return {name: value.value for name, value in event.materialization.metadata.items()}


def stored(folder: Path) -> pl.DataFrame:
    with connect(folder / "home" / "testcity" / "warehouse.duckdb", read_only=True) as connection:
        return connection.sql("SELECT * FROM raw.weather_forecasts ORDER BY issued_at, valid_hour").pl()


def test_asset_stores_nws_fetch_idempotently(tmp_path: Path, server: NwsServer, nws: NwsState) -> None:
    write_run(tmp_path, "nws")
    nws.hourly["properties"]["periods"][2]["temperature"] = "warm"
    nws.scripted = [ScriptedResponse(503)]
    source = NwsForecastSource(base_url_override=server.base_url)

    first = materialize(tmp_path, source)
    rows_after_first = stored(tmp_path)
    second = materialize(tmp_path, source)

    assert first["rows_stored"] == 5
    assert first["issues_stored"] == 1
    assert first["dagster/row_count"] == 5
    assert first["newest_issue"] == "2024-07-01T09:12:00"
    assert first["missing_hours"] == 3
    assert first["rejected_periods"] == 1
    assert first["requests"] == 4
    assert first["archive_files"] == ["issued=2024-07-01T0912Z.parquet"]
    assert second["dagster/row_count"] == 5
    assert stored(tmp_path).drop("fetched_at").equals(rows_after_first.drop("fetched_at"))
    assert rows_after_first["valid_hour"].to_list() == [datetime(2024, 7, 1, hour) for hour in (10, 11, 13, 14, 15)]
    assert rows_after_first["precipitation_in"].to_list() == pytest.approx([1.0 / 25.4] * 5)
    assert {request.headers["user-agent"] for request in nws.requests} == {
        "Riskcast/0.1 (weather forecast archive) (ops@example.org)"}

    archive = tmp_path / "home" / "testcity" / "raw" / "forecasts"
    assert sorted(path.name for path in archive.iterdir()) == ["issued=2024-07-01T0912Z.parquet"]
    archived, _ = read_forecast_archive(archive)
    assert archived.sort("valid_hour").equals(stored(tmp_path).with_columns(
        pl.col(name).cast(dtype) for name, dtype in archived.schema.items()))


def test_asset_appends_new_issue(tmp_path: Path, server: NwsServer, nws: NwsState) -> None:
    write_run(tmp_path, "nws")
    source = NwsForecastSource(base_url_override=server.base_url)
    materialize(tmp_path, source)

    nws.hourly = hourly_document(hourly_periods("2024-07-01T11:00:00+00:00", 8, temperature=60),
                                 update_time="2024-07-01T10:15:00+00:00")
    metadata = materialize(tmp_path, source)

    rows = stored(tmp_path)
    assert metadata["dagster/row_count"] == 14
    assert metadata["missing_hours"] == 0
    assert metadata["newest_issue"] == "2024-07-01T10:15:00"
    assert rows.group_by("issued_at").len().sort("issued_at")["len"].to_list() == [6, 8]
    assert rows.select(pl.struct("issued_at", "valid_hour").is_unique().all()).item()


def test_asset_reads_archive_folder(tmp_path: Path) -> None:
    write_run(tmp_path, "archive")
    write_forecast_archive(two_issues(), tmp_path / "extracts" / "forecasts")
    source = LocalForecastSource(folder=str(tmp_path / "extracts" / "forecasts"))

    first = materialize(tmp_path, source)
    second = materialize(tmp_path, source)

    assert first["files"] == 2
    assert first["issues_stored"] == 2
    assert first["missing_hours"] == 8
    assert second["dagster/row_count"] == 8
    assert stored(tmp_path).drop("fetched_at").equals(two_issues().sort("issued_at", "valid_hour").drop("fetched_at"))
    assert not (tmp_path / "home" / "testcity" / "raw" / "forecasts").exists()


def test_asset_with_source_none(tmp_path: Path) -> None:
    write_run(tmp_path, "none")

    metadata = materialize(tmp_path, LocalForecastSource(folder=str(tmp_path / "missing")))

    assert metadata["rows_stored"] == 0
    assert metadata["dagster/row_count"] == 0
    assert metadata["reason"] == "the run file sets forecast_source: none"
    assert stored(tmp_path).height == 0
    assert stored(tmp_path).columns == ["issued_at", "valid_hour", "temperature_f", "precipitation_probability",
                                        "precipitation_in", "relative_humidity", "wind_speed_mph", "fetched_at",
                                        "source"]
