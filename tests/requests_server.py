"""A local HTTP server that serves a small subset of SODA 2.1 for several datasets, with faults.

Each dataset is a list of rows with the system fields ``:id`` and ``:updated_at``. The server
serves ``/resource/<dataset id>.json`` with the ``:updated_at >= '...'`` filter, ``$order``,
``$limit``, ``$offset``, ``$select=:*,*`` and ``$select=count(*)``. Before sorting it shuffles the
rows with a seed taken from the request number, so rows that tie on every ``$order`` key come back
in a different order on each request, as on a real portal.

A test queues faults, one per request in order, before normal answers resume: an HTTP status with
a body, a delay before the answer, or a normal answer cut short while its ``Content-Length``
promises the whole body. The server binds to 127.0.0.1 only.
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WHERE_PATTERN = re.compile(r"^\s*:updated_at\s*>=\s*'([^']*)'\s*$")


@dataclass
class Fault:
    """A response that the server sends to one request in place of its normal response.

    With ``status`` set, the server sends that status and ``body``. Otherwise it sends the normal
    response, after ``delay_seconds`` and, with ``truncate`` set, with only half of its body.
    """

    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    truncate: bool = False


@dataclass
class PortalState:
    """Datasets of the local portal, queued faults, and the query strings it received."""

    datasets: dict[str, list[dict[str, str]]]
    faults: list[Fault] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data_queries(self) -> list[dict[str, str]]:
        return [query for query in self.queries if query.get("$select") != "count(*)"]


class PortalServer(ThreadingHTTPServer):
    daemon_threads = True
    state: PortalState

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class PortalHandler(BaseHTTPRequestHandler):
    server: PortalServer

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = {name: values[-1] for name, values in urllib.parse.parse_qs(parts.query).items()}
        state = self.server.state
        with state.lock:
            number = len(state.queries)
            state.queries.append(query)
            state.paths.append(self.path)
            fault = state.faults.pop(0) if state.faults else Fault()

        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        if fault.status is not None:
            self.send(fault.status, fault.body, fault.headers)
            return
        status, payload = self.answer(state, parts.path, query, number)
        body = json.dumps(payload).encode("utf-8")
        self.send(status, body, {"Content-Type": "application/json"}, truncate=fault.truncate)

    def answer(self, state: PortalState, path: str, query: dict[str, str], number: int) -> tuple[int, object]:
        match = re.fullmatch(r"/resource/([a-z0-9]{4}-[a-z0-9]{4})\.json", path)
        with state.lock:
            rows = copy.deepcopy(state.datasets.get(match.group(1))) if match else None
        if rows is None:
            return 404, {"error": True, "message": "dataset not found"}

        where = query.get("$where")
        if where is not None:
            bound = WHERE_PATTERN.match(where)
            if not bound:
                return 400, {"error": True, "message": f"cannot parse $where {where!r}"}
            rows = [row for row in rows if row[":updated_at"] >= bound.group(1)]

        select = query.get("$select")
        if select == "count(*)":
            return 200, [{"count": str(len(rows))}]
        if select != ":*,*":
            return 400, {"error": True, "message": f"unsupported $select {select!r}"}

        random.Random(number).shuffle(rows)
        keys = [key.strip() for key in query.get("$order", "").split(",") if key.strip()]
        rows.sort(key=lambda row: tuple(str(row.get(key, "")) for key in keys))
        offset = int(query.get("$offset", "0"))
        return 200, rows[offset:offset + int(query.get("$limit", "1000"))]

    def send(self, status: int, body: bytes, headers: dict[str, str], truncate: bool = False) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2] if truncate else body)
            if truncate:
                # Close the connection mid-body, as a dropped transfer does.
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first, as after a timeout.
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def running_portal(datasets: dict[str, list[dict[str, str]]]) -> Iterator[PortalServer]:
    """Start a portal on a free port of 127.0.0.1 and stop it on exit."""
    server = PortalServer(("127.0.0.1", 0), PortalHandler)
    server.state = PortalState(datasets=copy.deepcopy(datasets))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
