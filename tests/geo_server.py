"""A local HTTP server that serves Socrata-style GeoJSON datasets, for the live boundary source.

It serves ``/resource/<dataset>.geojson`` with ``$order``, ``$limit`` and ``$offset``, as the
SODA 2 API does. Rows that are not ordered by ``:id`` come back in a different order on each
request, so only ``:id`` order pages correctly. A test can script responses (status and body)
and truncated transfers, where the server declares a longer body than it sends and closes.
The server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ScriptedResponse:
    """One response served before the normal responses: a status and body, or a cut-off body."""

    status: int = 200
    body: bytes = b""
    truncate: bool = False


@dataclass
class GeoJsonState:
    """Datasets (id -> features) of the server, its scripted responses and the requests it got."""

    datasets: dict[str, list[dict]]
    scripted: list[ScriptedResponse] = field(default_factory=list)
    ignore_offset: bool = False
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def queries(self) -> list[dict[str, str]]:
        return [{name: values[-1] for name, values in urllib.parse.parse_qs(urllib.parse.urlsplit(path).query).items()}
                for path in self.paths]


class GeoJsonServer(ThreadingHTTPServer):
    daemon_threads = True
    state: GeoJsonState


class GeoJsonHandler(BaseHTTPRequestHandler):
    server: GeoJsonServer

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            number = len(state.paths)
            state.paths.append(self.path)
            scripted = state.scripted.pop(0) if state.scripted else None
        if scripted is not None:
            self.send(scripted.status, scripted.body, truncate=scripted.truncate)
            return

        parts = urllib.parse.urlsplit(self.path)
        dataset = parts.path.removeprefix("/resource/").removesuffix(".geojson")
        if not parts.path.endswith(".geojson") or dataset not in state.datasets:
            self.send(404, json.dumps({"error": True, "message": "dataset not found"}).encode())
            return
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.send(200, json.dumps(self.page(state, dataset, query, number)).encode())

    def page(self, state: GeoJsonState, dataset: str, query: dict[str, str], number: int) -> dict:
        with state.lock:
            features = copy.deepcopy(state.datasets[dataset])
        # The position in the dataset stands for Socrata's hidden :id.
        indexed = list(enumerate(features))
        random.Random(number).shuffle(indexed)
        if query.get("$order") == ":id":
            indexed.sort(key=lambda pair: pair[0])
        offset = 0 if state.ignore_offset else int(query.get("$offset", "0"))
        limit = int(query.get("$limit", "1000"))
        return {"type": "FeatureCollection", "features": [item for _, item in indexed[offset:offset + limit]]}

    def send(self, status: int, body: bytes, truncate: bool = False) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.geo+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2] if truncate else body)
            if truncate:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def geojson_server(datasets: dict[str, list[dict]]) -> Iterator[tuple[str, GeoJsonState]]:
    """Run a server on a free 127.0.0.1 port; yield its base URL and state."""
    server = GeoJsonServer(("127.0.0.1", 0), GeoJsonHandler)
    server.state = GeoJsonState(datasets=datasets)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
