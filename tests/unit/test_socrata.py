"""Socrata client against a local HTTP server that implements a small subset of SODA 2.1.

The server filters on ``:updated_at``, sorts by the ``$order`` keys and pages with
``$limit``/``$offset``. Before sorting it shuffles the rows with a seed taken from the request
number, so rows that tie on every ``$order`` key come back in a different order on each request,
as on a real portal. Only an order that ends with the unique ``:id`` makes paging stable.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestration.socrata import (
    PullResult,
    SocrataDataset,
    SocrataError,
    keep_latest,
    pull_updated_since,
)

DATASET_ID = "ijzp-q8t2"
TOKEN_ENV = "SOCRATA_APP_TOKEN"
TIE_TIME = "2024-06-01T10:00:00.000Z"
FIXTURE_ROWS = [
    {":id": "row-a", ":updated_at": TIE_TIME, "id": "900001", "fbi_code": "06"},
    {":id": "row-b", ":updated_at": TIE_TIME, "id": "900002", "fbi_code": "08B", "district": None},
    {":id": "row-c", ":updated_at": TIE_TIME, "id": "900003", "fbi_code": "03", "beat": 1234},
    {":id": "row-d", ":updated_at": "2024-06-01T11:00:00.000Z", "id": "900004", "fbi_code": "06",
     "arrest": True},
    {":id": "row-e", ":updated_at": "2024-06-02T09:00:00.000Z", "id": "900005", "fbi_code": "14",
     "location": {"latitude": "41.88", "longitude": "-87.63"}},
]
ALL_IDS = ["900001", "900002", "900003", "900004", "900005"]
WHERE_PATTERN = re.compile(r"^\s*:updated_at\s*(>=|>)\s*'([^']*)'\s*$")


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]

    @property
    def query(self) -> dict[str, str]:
        return {name: values[-1] for name, values in
                urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}


@dataclass
class ScriptedResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # When set, the server declares the whole body's length but sends only this many bytes, then
    # closes the connection, as a dropped transfer does.
    truncate_to: int | None = None


@dataclass
class SodaState:
    """Rows and behaviour of the local server for one test, and the requests it received."""

    rows: list[dict]
    requests: list[RecordedRequest] = field(default_factory=list)
    # Served in order, one per request, before the server serves normal query results.
    scripted: list[ScriptedResponse] = field(default_factory=list)
    # Seconds to wait before responding, one per request.
    delays: list[float] = field(default_factory=list)
    count_override: int | None = None
    ignore_offset: bool = False
    update_row_a_after_first_page: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def queries(self) -> list[dict[str, str]]:
        return [request.query for request in self.requests]

    @property
    def data_queries(self) -> list[dict[str, str]]:
        return [query for query in self.queries if query.get("$select") == ":*,*"]


class SodaServer(ThreadingHTTPServer):
    daemon_threads = True
    state: SodaState


class SodaHandler(BaseHTTPRequestHandler):
    server: SodaServer

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            number = len(state.requests)
            headers = {name.lower(): value for name, value in self.headers.items()}
            recorded = RecordedRequest(self.path, headers)
            state.requests.append(recorded)
            delay = state.delays.pop(0) if state.delays else 0.0
            scripted = state.scripted.pop(0) if state.scripted else None
        if delay:
            time.sleep(delay)
        if scripted:
            self.send(scripted.status, scripted.body, scripted.headers, scripted.truncate_to)
            return
        if urllib.parse.urlsplit(self.path).path != f"/resource/{DATASET_ID}.json":
            self.send_error_json(404, "dataset not found")
            return
        self.answer_query(state, recorded.query, number)

    def answer_query(self, state: SodaState, query: dict[str, str], number: int) -> None:
        with state.lock:
            rows = copy.deepcopy(state.rows)

        where = query.get("$where")
        if where is not None:
            match = WHERE_PATTERN.match(where)
            if not match:
                self.send_error_json(400, f"cannot parse $where {where!r}")
                return
            operator, bound = match.groups()
            rows = [row for row in rows
                    if row[":updated_at"] >= bound and (operator == ">=" or row[":updated_at"] > bound)]

        select = query.get("$select")
        if select == "count(*)":
            count = len(rows) if state.count_override is None else state.count_override
            self.send_json([{"count": str(count)}])
            return
        if select not in (None, ":*,*"):
            self.send_error_json(400, f"unsupported $select {select!r}")
            return

        random.Random(number).shuffle(rows)
        keys = [key.strip() for key in query.get("$order", "").split(",") if key.strip()]
        rows.sort(key=lambda row: tuple(str(row.get(key, "")) for key in keys))
        offset = 0 if state.ignore_offset else int(query.get("$offset", "0"))
        page = rows[offset:offset + int(query.get("$limit", "1000"))]
        if select is None:
            page = [{name: value for name, value in row.items() if not name.startswith(":")} for row in page]

        with state.lock:
            if state.update_row_a_after_first_page:
                state.update_row_a_after_first_page = False
                state.rows[0][":updated_at"] = "2024-06-03T00:00:00.000Z"
        self.send_json(page)

    def send_json(self, payload: object) -> None:
        self.send(200, json.dumps(payload).encode("utf-8"), {"Content-Type": "application/json"})

    def send_error_json(self, status: int, message: str) -> None:
        body = {"code": "query.compiler.malformed", "error": True, "message": message}
        self.send(status, json.dumps(body).encode("utf-8"), {"Content-Type": "application/json"})

    def send(self, status: int, body: bytes, headers: dict[str, str], truncate_to: int | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if truncate_to is None else body[:truncate_to])
            if truncate_to is not None:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first, as in the timeout test.
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[SodaServer]:
    soda_server = SodaServer(("127.0.0.1", 0), SodaHandler)
    soda_server.state = SodaState(rows=[])
    thread = threading.Thread(target=soda_server.serve_forever, daemon=True)
    thread.start()
    yield soda_server
    soda_server.shutdown()
    soda_server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def soda(server: SodaServer, monkeypatch: pytest.MonkeyPatch) -> SodaState:
    """Reset the server to the five fixture rows, and keep traffic off proxies and real tokens."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                 TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server.state = SodaState(rows=copy.deepcopy(FIXTURE_ROWS))
    return server.state


@pytest.fixture
def base_url(server: SodaServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def make_dataset(base_url: str, **overrides: object) -> SocrataDataset:
    settings = {"page_size": 2, "timeout_seconds": 5.0, "max_retries": 3, "backoff_seconds": 1.0}
    settings.update(overrides)
    return SocrataDataset(base_url=base_url, dataset_id=DATASET_ID, **settings)


def pull(base_url: str, watermark: str | None = None, sleeps: list[float] | None = None,
         **overrides: object) -> PullResult:
    sleep = sleeps.append if sleeps is not None else fail_on_sleep
    return pull_updated_since(make_dataset(base_url, **overrides), watermark, sleep=sleep)


def fail_on_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected retry wait of {seconds} s")


def ids_of(result: PullResult) -> list[str]:
    return [row["id"] for row in result.rows]


def error_body(message: str) -> bytes:
    return json.dumps({"code": "query.soql.no-such-column", "error": True, "message": message}).encode()


def test_naive_order_loses_rows(soda: SodaState, base_url: str) -> None:
    seen = []
    for offset in (0, 2, 4):
        query = urllib.parse.urlencode({"$select": ":*,*", "$order": ":updated_at",
                                        "$limit": "2", "$offset": str(offset)})
        with urllib.request.urlopen(f"{base_url}/resource/{DATASET_ID}.json?{query}", timeout=5) as response:
            seen.extend(row["id"] for row in json.load(response))

    assert len(seen) == 5
    assert len(set(seen)) < 5


def test_full_pull_returns_each_row_once(soda: SodaState, base_url: str) -> None:
    result = pull(base_url)

    assert len(result.rows) == 5
    assert sorted(ids_of(result)) == ALL_IDS
    assert result.server_count == 5


def test_data_requests_order_by_system_id(soda: SodaState, base_url: str) -> None:
    pull(base_url)

    orders = [query["$order"] for query in soda.data_queries]
    assert len(orders) == 3
    assert all(order.replace(" ", "").split(",")[-1] == ":id" for order in orders)


def test_data_request_parameters(soda: SodaState, base_url: str) -> None:
    pull(base_url)

    assert [query["$offset"] for query in soda.data_queries] == ["0", "2", "4"]
    assert {query["$limit"] for query in soda.data_queries} == {"2"}
    assert all("$where" not in query for query in soda.queries)
    assert soda.queries[-1] == {"$select": "count(*)"}


def test_requests_lists_every_url(soda: SodaState, base_url: str) -> None:
    result = pull(base_url)

    assert [url.removeprefix(base_url) for url in result.requests] == [r.path for r in soda.requests]


def test_incremental_pull_uses_at_or_after(soda: SodaState, base_url: str) -> None:
    stored = {row["id"]: row for row in FIXTURE_ROWS if row["id"] in ("900001", "900002")}

    result = pull(base_url, watermark=TIE_TIME)
    merged = stored | {row["id"]: row for row in result.rows}

    assert "900003" in ids_of(result)
    assert sorted(merged) == ALL_IDS
    assert len(ids_of(result)) == len(set(ids_of(result)))
    assert {query["$where"] for query in soda.queries} == {f":updated_at >= '{TIE_TIME}'"}


def test_watermark_is_max_updated_at(soda: SodaState, base_url: str) -> None:
    result = pull(base_url)

    assert result.watermark == "2024-06-02T09:00:00.000Z"


def test_no_new_rows(soda: SodaState, base_url: str) -> None:
    result = pull(base_url, watermark="2024-06-03T00:00:00.000Z")

    assert result.rows == []
    assert result.watermark is None
    assert result.server_count == 0


def test_full_last_page_then_empty(soda: SodaState, base_url: str) -> None:
    result = pull(base_url, page_size=5)

    assert sorted(ids_of(result)) == ALL_IDS
    assert [query["$offset"] for query in soda.data_queries] == ["0", "5"]


def test_count_mismatch_raises(soda: SodaState, base_url: str) -> None:
    soda.count_override = 6

    with pytest.raises(SocrataError) as raised:
        pull(base_url)

    assert "pulled 5 distinct" in str(raised.value)
    assert "counts 6 rows" in str(raised.value)
    assert DATASET_ID in str(raised.value)


def test_update_during_pull_raises(soda: SodaState, base_url: str) -> None:
    # Row a moves to the end of the order after the first page, so offset 2 skips row c.
    soda.update_row_a_after_first_page = True

    with pytest.raises(SocrataError) as raised:
        pull(base_url)

    assert "pulled 4 distinct" in str(raised.value)


def test_ignored_offset_raises(soda: SodaState, base_url: str) -> None:
    soda.ignore_offset = True

    with pytest.raises(SocrataError) as raised:
        pull(base_url)

    assert "ignore $offset" in str(raised.value)


def test_503_retried_with_doubling_backoff(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(503, b"busy"), ScriptedResponse(503, b"busy")]
    sleeps: list[float] = []

    result = pull(base_url, sleeps=sleeps)

    assert sorted(ids_of(result)) == ALL_IDS
    assert sleeps == [1.0, 2.0]


def test_backoff_capped_at_60_seconds(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(502, b""), ScriptedResponse(504, b"")]
    sleeps: list[float] = []

    pull(base_url, sleeps=sleeps, backoff_seconds=40.0)

    assert sleeps == [40.0, 60.0]


def test_retry_after_honoured(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(429, b"slow down", {"Retry-After": "3"})]
    sleeps: list[float] = []

    pull(base_url, sleeps=sleeps)

    assert sleeps == [3.0]


def test_retry_after_capped(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(429, b"slow down", {"Retry-After": "120"})]
    sleeps: list[float] = []

    pull(base_url, sleeps=sleeps)

    assert sleeps == [60.0]


def test_202_retried(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(202, b"")]
    sleeps: list[float] = []

    result = pull(base_url, sleeps=sleeps)

    assert sorted(ids_of(result)) == ALL_IDS
    assert sleeps == [1.0]


def test_always_500_raises(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(500, b"oops") for _ in range(10)]
    sleeps: list[float] = []

    with pytest.raises(SocrataError) as raised:
        pull(base_url, sleeps=sleeps, max_retries=2, backoff_seconds=0.5)

    assert len(soda.requests) == 3
    assert sleeps == [0.5, 1.0]
    assert f"{base_url}/resource/{DATASET_ID}.json?" in str(raised.value)
    assert "3 attempts" in str(raised.value)
    assert "HTTP 500" in str(raised.value)
    assert "max_retries" in str(raised.value)


def test_400_fails_at_once(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(400, error_body("No such column: fbi_cod"))]

    with pytest.raises(SocrataError) as raised:
        pull(base_url)

    assert "No such column: fbi_cod" in str(raised.value)
    assert "HTTP 400" in str(raised.value)
    assert len(soda.requests) == 1


def test_404_fails_at_once(soda: SodaState, base_url: str) -> None:
    with pytest.raises(SocrataError) as raised:
        pull_updated_since(SocrataDataset(base_url, "nope-0000"), None, sleep=fail_on_sleep)

    assert "dataset not found" in str(raised.value)
    assert "dataset_id" in str(raised.value)


def test_invalid_json_raises(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(200, b"<html>maintenance</html>")]

    with pytest.raises(SocrataError) as raised:
        pull(base_url)

    assert "invalid JSON" in str(raised.value)
    assert f"{base_url}/resource/{DATASET_ID}.json?" in str(raised.value)


def test_json_object_raises(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(200, b'{"rows": []}')]

    with pytest.raises(SocrataError) as raised:
        pull(base_url)

    assert "expected a list" in str(raised.value)
    assert f"{base_url}/resource/{DATASET_ID}.json?" in str(raised.value)


def test_list_of_non_objects_raises(soda: SodaState, base_url: str) -> None:
    soda.scripted = [ScriptedResponse(200, b'["900001", "900002"]')]

    with pytest.raises(SocrataError) as raised:
        pull(base_url)

    assert "non-object" in str(raised.value)


def test_app_token_sent_only_in_header(soda: SodaState, base_url: str, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    token = "test-token-5f2c9a"
    monkeypatch.setenv(TOKEN_ENV, token)
    soda.scripted = [ScriptedResponse(503, b"busy")]
    caplog.set_level(logging.DEBUG, logger="orchestration.socrata")

    result = pull(base_url, sleeps=[])

    assert [request.headers.get("x-app-token") for request in soda.requests] == [token] * 5
    assert not any(token in request.path for request in soda.requests)
    assert not any(token in url for url in result.requests)
    assert "retry 1 of 3" in caplog.text
    assert token not in caplog.text


def test_no_token_header_without_env(soda: SodaState, base_url: str) -> None:
    pull(base_url)

    assert all("x-app-token" not in request.headers for request in soda.requests)


def test_truncated_body_retried(soda: SodaState, base_url: str) -> None:
    page = json.dumps([{"id": "900001"}]).encode()
    soda.scripted = [ScriptedResponse(200, page, {"Content-Type": "application/json"}, truncate_to=len(page) // 2)]
    sleeps: list[float] = []

    result = pull(base_url, sleeps=sleeps, page_size=10)

    assert sleeps == [1.0]
    assert sorted(ids_of(result)) == ["900001", "900002", "900003", "900004", "900005"]


def test_truncated_body_every_time_raises(soda: SodaState, base_url: str) -> None:
    page = json.dumps([{"id": "900001"}]).encode()
    soda.scripted = [ScriptedResponse(200, page, truncate_to=5) for _ in range(4)]

    with pytest.raises(SocrataError) as raised:
        pull(base_url, sleeps=[], page_size=10)

    assert "IncompleteRead" in str(raised.value)
    assert "raise max_retries, or retry later" in str(raised.value)


def test_timeout_retried(soda: SodaState, base_url: str) -> None:
    soda.delays = [0.6]
    sleeps: list[float] = []

    result = pull(base_url, sleeps=sleeps, timeout_seconds=0.2)

    assert sorted(ids_of(result)) == ALL_IDS
    assert sleeps == [1.0]


def test_values_kept_as_text(soda: SodaState, base_url: str) -> None:
    rows = {row["id"]: row for row in pull(base_url).rows}

    assert all(isinstance(value, str) for row in rows.values() for value in row.values())
    assert rows["900003"]["beat"] == "1234"
    assert rows["900004"]["arrest"] == "true"
    assert json.loads(rows["900005"]["location"]) == {"latitude": "41.88", "longitude": "-87.63"}
    assert "district" not in rows["900002"]
    assert rows["900001"][":id"] == "row-a"


def test_keep_latest_by_updated_at() -> None:
    rows = [
        {"id": "1", ":updated_at": "2024-06-02T00:00:00.000Z", "fbi_code": "06"},
        {"id": "2", ":updated_at": "2024-06-01T00:00:00.000Z", "fbi_code": "03"},
        {"id": "1", ":updated_at": "2024-06-01T00:00:00.000Z", "fbi_code": "08B"},
        {"id": "2", ":updated_at": "2024-06-01T00:00:00.000Z", "fbi_code": "14"},
    ]

    kept = {row["id"]: row["fbi_code"] for row in keep_latest(rows, "id")}

    assert kept == {"1": "06", "2": "14"}


def test_dataset_rejects_zero_page_size() -> None:
    with pytest.raises(ValueError, match="page_size"):
        SocrataDataset("http://127.0.0.1:9", DATASET_ID, page_size=0)
