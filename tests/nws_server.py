"""A local stand-in for the US National Weather Service API, serving NWS-style JSON on 127.0.0.1.

It serves ``/points/{lat},{lon}``, ``/gridpoints/{office}/{x},{y}/forecast/hourly`` and
``/gridpoints/{office}/{x},{y}`` from the documents in ``NwsState``. A test can script responses
(a status, headers, a body), one per request in arrival order, and reads back every request
with its headers.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OFFICE = "LOT"
GRID_X = 76
GRID_Y = 73


def hourly_period(start: str, temperature: object = 70, unit: str = "F", precipitation: object = 20,
                  humidity: object = 60, wind: object = "10 mph") -> dict[str, Any]:
    """Return one period of an hourly forecast; ``start`` is ISO 8601 with an offset."""
    begin = datetime.fromisoformat(start)
    return {
        "number": 1,
        "startTime": begin.isoformat(),
        "endTime": (begin + timedelta(hours=1)).isoformat(),
        "isDaytime": True,
        "temperature": temperature,
        "temperatureUnit": unit,
        "probabilityOfPrecipitation": {"unitCode": "wmoUnit:percent", "value": precipitation},
        "relativeHumidity": {"unitCode": "wmoUnit:percent", "value": humidity},
        "windSpeed": wind,
        "windDirection": "SW",
        "shortForecast": "Partly Cloudy",
    }


def hourly_periods(first: str, count: int, **values: object) -> list[dict[str, Any]]:
    begin = datetime.fromisoformat(first)
    return [hourly_period((begin + timedelta(hours=index)).isoformat(), **values) for index in range(count)]


def hourly_document(periods: list[dict[str, Any]], update_time: str | None = "2024-07-01T09:12:45+00:00",
                    generated_at: str = "2024-07-01T10:02:11+00:00") -> dict[str, Any]:
    properties: dict[str, Any] = {"units": "us", "generatedAt": generated_at, "periods": periods}
    if update_time is not None:
        properties["updateTime"] = update_time
    return {"type": "Feature", "geometry": None, "properties": properties}


def grid_document(precipitation: list[tuple[str, float]], uom: str = "wmoUnit:mm") -> dict[str, Any]:
    """Return raw grid data whose quantitativePrecipitation has ``(validTime, value)`` entries."""
    return {"type": "Feature", "properties": {
        "updateTime": "2024-07-01T09:12:45+00:00",
        "temperature": {"uom": "wmoUnit:degC", "values": []},
        "quantitativePrecipitation": {"uom": uom, "values": [
            {"validTime": valid_time, "value": value} for valid_time, value in precipitation]},
    }}


@dataclass
class ScriptedResponse:
    """One scripted response, sent in place of the served document."""

    status: int = 503
    body: bytes = b'{"title": "Service Unavailable", "status": 503}'
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]


@dataclass
class NwsState:
    """The served documents, the scripted responses and the requests received."""

    hourly: dict[str, Any] = field(default_factory=lambda: hourly_document([]))
    grid: dict[str, Any] = field(default_factory=lambda: grid_document([]))
    scripted: list[ScriptedResponse] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


class NwsServer(ThreadingHTTPServer):
    daemon_threads = True
    state: NwsState

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class NwsHandler(BaseHTTPRequestHandler):
    server: NwsServer

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append(RecordedRequest(self.path, {name.lower(): value
                                                              for name, value in self.headers.items()}))
            scripted = state.scripted.pop(0) if state.scripted else None
        if scripted is not None:
            self.send(scripted.status, scripted.body, scripted.headers)
            return

        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        grid_path = f"/gridpoints/{OFFICE}/{GRID_X},{GRID_Y}"
        if path.startswith("/points/"):
            document = self.points_document(grid_path)
        elif path == f"{grid_path}/forecast/hourly":
            document = state.hourly
        elif path == grid_path:
            document = state.grid
        else:
            self.send(404, b'{"title": "Not Found", "status": 404}', {})
            return
        self.send(200, json.dumps(document).encode("utf-8"), {"Content-Type": "application/geo+json"})

    def points_document(self, grid_path: str) -> dict[str, Any]:
        base = self.server.base_url
        return {"type": "Feature", "properties": {
            "gridId": OFFICE, "gridX": GRID_X, "gridY": GRID_Y,
            "forecast": f"{base}{grid_path}/forecast",
            "forecastHourly": f"{base}{grid_path}/forecast/hourly",
            "forecastGridData": f"{base}{grid_path}",
        }}

    def send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def running_nws_server() -> Iterator[NwsServer]:
    server = NwsServer(("127.0.0.1", 0), NwsHandler)
    server.state = NwsState()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
