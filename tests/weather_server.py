"""A local stand-in for NOAA NCEI's Access Data Service, serving LCD reports as CSV on 127.0.0.1.

``GET /access/services/data/v1`` returns the reports of the requested station whose ``DATE`` lies
between ``startDate`` and ``endDate``, compared as ISO text. The CSV has the LCD v2 columns, every
field quoted, and ``REPORT_TYPE`` and ``SOURCE`` repeated at the end, as the service writes them.
A test can script responses (a status, a changed header, a body cut short) and delays, one per
request, and reads back every request with its headers.
"""

from __future__ import annotations

import csv
import io
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

SERVICE_PATH = "/access/services/data/v1"
LCD_V2_HEADER = ["STATION", "DATE", "REPORT_TYPE", "SOURCE", "HourlyDryBulbTemperature", "HourlyPrecipitation",
                 "HourlyRelativeHumidity", "HourlyWindDirection", "HourlyWindSpeed", "DailyPrecipitation", "REM",
                 "REPORT_TYPE", "SOURCE"]


def lcd_report(station: str, date: str, report_type: str, temperature: str = "", precipitation: str = "",
               humidity: str = "", direction: str = "", speed: str = "", daily: str = "",
               remark: str = "") -> list[str]:
    """Return one LCD v2 row in ``LCD_V2_HEADER`` order; ``date`` is LST, as in ``2023-06-10T13:51:00``."""
    source = "6" if report_type.strip() == "SOD" else "7"
    return [station, date, report_type, source, temperature, precipitation, humidity, direction, speed, daily,
            remark, report_type, source]


def lcd_csv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


@dataclass
class ScriptedResponse:
    """One scripted response. With ``body`` None the server runs the query, then applies ``damage``."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # "short_body": declare the full Content-Length but send only half the body and close.
    # "cut_row": send the body up to the middle of its last record, with a matching Content-Length.
    damage: Literal["short_body", "cut_row"] | None = None


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]

    @property
    def query(self) -> dict[str, str]:
        return {name: values[-1] for name, values in
                urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}


@dataclass
class NoaaState:
    """Reports per station id, the header served, scripted responses and the requests received."""

    reports: dict[str, list[list[str]]] = field(default_factory=dict)
    header: list[str] = field(default_factory=lambda: list(LCD_V2_HEADER))
    scripted: list[ScriptedResponse] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def queries(self) -> list[dict[str, str]]:
        return [request.query for request in self.requests]


class NoaaServer(ThreadingHTTPServer):
    daemon_threads = True
    state: NoaaState

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class NoaaHandler(BaseHTTPRequestHandler):
    server: NoaaServer

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = RecordedRequest(self.path, headers)
            state.requests.append(request)
            delay = state.delays.pop(0) if state.delays else 0.0
            scripted = state.scripted.pop(0) if state.scripted else None
        if delay:
            time.sleep(delay)

        if urllib.parse.urlsplit(self.path).path != SERVICE_PATH:
            self.send(404, b"not found", {})
            return
        if scripted is not None and scripted.body is not None:
            self.send(scripted.status, scripted.body, scripted.headers)
            return

        body = self.answer(state, request.query)
        if scripted is None:
            self.send(200, body, {"Content-Type": "text/csv"})
        elif scripted.damage == "short_body":
            self.send(200, body, {"Content-Type": "text/csv"}, send_bytes=len(body) // 2)
        elif scripted.damage == "cut_row":
            cut = body[:body.rstrip(b"\n").rfind(b",") + 3]
            self.send(200, cut, {"Content-Type": "text/csv"})
        else:
            self.send(scripted.status, body, scripted.headers)

    def answer(self, state: NoaaState, query: dict[str, str]) -> bytes:
        start, end = query.get("startDate", ""), query.get("endDate", "~")
        with state.lock:
            reports = [row for row in state.reports.get(query.get("stations", ""), [])
                       if start <= row[1] <= end]
            header = list(state.header)
        return lcd_csv(header, reports)

    def send(self, status: int, body: bytes, headers: dict[str, str], send_bytes: int | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body if send_bytes is None else body[:send_bytes])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first, as in the timeout test.
            pass
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def running_noaa_server() -> Iterator[NoaaServer]:
    server = NoaaServer(("127.0.0.1", 0), NoaaHandler)
    server.state = NoaaState()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
