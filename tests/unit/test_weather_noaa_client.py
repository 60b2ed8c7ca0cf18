"""NOAA Access Data Service client against a local server on 127.0.0.1: chunking, retries, truncation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from orchestration.noaa import NoaaClient, NoaaError, NoaaService, month_chunks, truncation_reason
from tests.weather_server import LCD_V2_HEADER, NoaaServer, NoaaState, ScriptedResponse, lcd_csv, lcd_report, running_noaa_server

STATION = "72530094846"
JUNE = [
    lcd_report(STATION, "2023-06-10T13:51:00", "FM-15", "67", "0.24", "60", "230", "8"),
    lcd_report(STATION, "2023-06-10T14:51:00", "FM-15", "66s", "T", "62", "240", "7"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[NoaaServer]:
    with running_noaa_server() as noaa_server:
        yield noaa_server


@pytest.fixture
def noaa(server: NoaaServer, monkeypatch: pytest.MonkeyPatch) -> NoaaState:
    """Reset the server to the June reports, and keep traffic off proxies."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server.state = NoaaState(reports={STATION: [list(row) for row in JUNE]})
    return server.state


def client(server: NoaaServer, sleeps: list[float], **settings: object) -> NoaaClient:
    options = {"max_retries": 3, "backoff_seconds": 1.0, "timeout_seconds": 5.0} | settings
    service = NoaaService(base_url=server.base_url, **options)
    return NoaaClient(service, sleep=sleeps.append)


def test_month_chunks_split_at_months() -> None:
    chunks = month_chunks(date(2023, 11, 20), date(2024, 2, 3))

    assert chunks == [
        (date(2023, 11, 20), date(2023, 11, 30)),
        (date(2023, 12, 1), date(2023, 12, 31)),
        (date(2024, 1, 1), date(2024, 1, 31)),
        (date(2024, 2, 1), date(2024, 2, 3)),
    ]


def test_month_chunks_leap_february() -> None:
    assert month_chunks(date(2024, 2, 1), date(2024, 3, 1)) == [
        (date(2024, 2, 1), date(2024, 2, 29)), (date(2024, 3, 1), date(2024, 3, 1))]


def test_month_chunks_empty_when_start_after_end() -> None:
    assert month_chunks(date(2024, 3, 2), date(2024, 3, 1)) == []


def test_request_parameters(server: NoaaServer, noaa: NoaaState) -> None:
    client(server, []).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert noaa.queries == [{
        "dataset": "local-climatological-data",
        "stations": STATION,
        "startDate": "2023-06-01T00:00:00",
        "endDate": "2023-06-30T23:59:59",
        "format": "csv",
        "units": "standard",
    }]


def test_user_agent_sent(server: NoaaServer, noaa: NoaaState) -> None:
    client(server, [], user_agent="Riskcast-test/1.0").get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert noaa.requests[0].headers["user-agent"] == "Riskcast-test/1.0"


def test_chunk_body_is_served_csv(server: NoaaServer, noaa: NoaaState) -> None:
    chunk = client(server, []).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert chunk.body == lcd_csv(LCD_V2_HEADER, JUNE)
    assert chunk.url.startswith(f"{server.base_url}/access/services/data/v1?dataset=local-climatological-data")


def test_429_then_success_honours_retry_after(server: NoaaServer, noaa: NoaaState) -> None:
    noaa.scripted = [ScriptedResponse(429, b"slow down", {"Retry-After": "7"})]
    sleeps: list[float] = []

    chunk = client(server, sleeps).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert chunk.body == lcd_csv(LCD_V2_HEADER, JUNE)
    assert len(noaa.requests) == 2
    assert sleeps == [7.0]


def test_503_retried_with_doubling_backoff(server: NoaaServer, noaa: NoaaState) -> None:
    noaa.scripted = [ScriptedResponse(503, b"busy"), ScriptedResponse(502, b"gateway")]
    sleeps: list[float] = []

    client(server, sleeps, backoff_seconds=1.5).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert sleeps == [1.5, 3.0]
    assert len(noaa.requests) == 3


def test_500_until_retry_limit_raises(server: NoaaServer, noaa: NoaaState) -> None:
    noaa.scripted = [ScriptedResponse(500, b"internal error")] * 4
    sleeps: list[float] = []

    with pytest.raises(NoaaError) as caught:
        client(server, sleeps, max_retries=3).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    message = str(caught.value)
    assert "failed after 4 attempts" in message
    assert "last with HTTP 500" in message
    assert "raise weather.api.max_retries" in message
    assert len(noaa.requests) == 4
    assert sleeps == [1.0, 2.0, 4.0]


def test_400_fails_without_retry(server: NoaaServer, noaa: NoaaState) -> None:
    noaa.scripted = [ScriptedResponse(400, b"unknown dataset")]

    with pytest.raises(NoaaError, match="HTTP 400: unknown dataset"):
        client(server, []).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert len(noaa.requests) == 1


def test_slow_response_times_out_then_retried(server: NoaaServer, noaa: NoaaState) -> None:
    noaa.delays = [0.6]
    sleeps: list[float] = []

    chunk = client(server, sleeps, timeout_seconds=0.2).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert chunk.body == lcd_csv(LCD_V2_HEADER, JUNE)
    assert len(noaa.requests) == 2
    assert sleeps == [1.0]


def test_short_body_retried(server: NoaaServer, noaa: NoaaState) -> None:
    noaa.scripted = [ScriptedResponse(damage="short_body")]
    sleeps: list[float] = []

    chunk = client(server, sleeps).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert chunk.body == lcd_csv(LCD_V2_HEADER, JUNE)
    assert len(noaa.requests) == 2


def test_row_cut_mid_record_retried(server: NoaaServer, noaa: NoaaState) -> None:
    noaa.scripted = [ScriptedResponse(damage="cut_row")]

    chunk = client(server, []).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert chunk.body == lcd_csv(LCD_V2_HEADER, JUNE)
    assert len(noaa.requests) == 2


def test_truncated_every_time_raises(server: NoaaServer, noaa: NoaaState) -> None:
    noaa.scripted = [ScriptedResponse(damage="cut_row")] * 3

    with pytest.raises(NoaaError, match="last with a truncated body"):
        client(server, [], max_retries=2).get_chunk(STATION, date(2023, 6, 1), date(2023, 6, 30))

    assert len(noaa.requests) == 3


def test_truncation_reasons() -> None:
    complete = lcd_csv(LCD_V2_HEADER, JUNE)

    assert truncation_reason(complete) is None
    assert truncation_reason(b"") is None
    assert truncation_reason(complete[:-1]) == "the body does not end with a line break"
    assert truncation_reason(complete[:-1], length_declared=True) is None
    assert truncation_reason(complete[:-3], length_declared=True) == "the body does not end with a line break"
    assert truncation_reason(b'"A","B","C"\n"1","2"\n') == "line 2 has 2 fields and the header 3"


def test_quoted_line_break_is_not_truncation() -> None:
    body = b'"A","B"\n"1","two\nlines"\n'

    assert truncation_reason(body) is None
