"""Incremental pulls from a Socrata SODA 2.x dataset, such as the Chicago crimes table.

Besides a dataset's own columns, Socrata keeps hidden system fields on every row. ``:id`` is the
portal's internal row identifier, unique within the dataset. ``:updated_at`` is a fixed timestamp
of the last change to the row. They come back only when requested, so every data request sends
``$select=:*,*`` (all system fields, then all dataset columns). That is how SODA 2.1 endpoints
select them. A SODA 2.0 endpoint that ignores it fails with a ``SocrataError`` naming the field.

A pull reads the rows changed since the last run's watermark in pages of ``$limit`` rows, moving
``$offset`` forward by one page each time. Offset paging is only correct when the server returns
rows in the same order on every request. Many rows can share one ``:updated_at`` value, for
example when a portal refresh writes a batch of rows at once. Ordering by ``:updated_at`` alone
leaves those ties in an arbitrary order that can change between requests, so a page boundary can
repeat some rows and skip others. Ordering by ``:updated_at,:id`` is a total order, because
``:id`` is unique.

The filter is ``:updated_at >= watermark`` rather than ``>``. The previous run may have stopped
with only some of the rows stamped with the watermark time, and ``>`` would never deliver the
rest. The rows that ``>=`` delivers twice are removed by de-duplicating on the dataset's ``id``.

A row that changes during a pull moves to the end of the order, which shifts the pages after it.
After paging, the pull compares the number of distinct ids with the server's ``count(*)`` for the
same filter and raises ``SocrataError`` when they differ, so such a gap is never stored silently.
A dataset whose ``id`` column is not unique fails the same check, so pull it with ``id_field=":id"``.

Socrata documents the paging rule and the system fields at https://dev.socrata.com/docs/paging.html
and https://dev.socrata.com/docs/system-fields.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Socrata returns 202 while it still prepares a result, and clients should repeat the request
# (https://dev.socrata.com/docs/response-codes).
RETRYABLE_STATUSES = frozenset({202, 429, 500, 502, 503, 504})
MAX_WAIT_SECONDS = 60.0
DATA_ORDER = ":updated_at,:id"
MAX_MESSAGE_CHARS = 500


class SocrataError(RuntimeError):
    """A Socrata request failed or returned data that cannot be trusted. The message names the fix."""


@dataclass(frozen=True)
class SocrataDataset:
    """One dataset on a Socrata portal and the HTTP settings used to pull it."""

    base_url: str
    dataset_id: str
    # SODA 2.0 endpoints return at most 50,000 rows per request, and 2.1 endpoints have no cap.
    page_size: int = 50_000
    # Applies to each socket operation (connect, each read), not to a whole request.
    timeout_seconds: float = 60.0
    max_retries: int = 5
    backoff_seconds: float = 1.0
    app_token_env: str | None = "SOCRATA_APP_TOKEN"

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {self.page_size}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.backoff_seconds < 0:
            raise ValueError(f"backoff_seconds must be 0 or more, got {self.backoff_seconds}")

    @property
    def resource_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/resource/{self.dataset_id}.json"

    @property
    def label(self) -> str:
        return f"dataset {self.dataset_id} at {self.base_url}"


@dataclass(frozen=True)
class PullResult:
    """Rows changed since a watermark, with the new watermark and the requests that fetched them."""

    rows: list[dict[str, str]]
    watermark: str | None
    requests: list[str]
    server_count: int


def pull_updated_since(dataset: SocrataDataset, watermark: str | None, *, id_field: str = "id",
                       sleep: Callable[[float], None] = time.sleep) -> PullResult:
    """Pull every row whose ``:updated_at`` is at or after ``watermark`` (all rows when None).

    The returned rows hold one row per ``id_field`` value, the latest by ``:updated_at``, and
    ``watermark`` is the largest ``:updated_at`` seen, or None when no row matched. The caller
    should keep its old watermark in that case. Raises ``SocrataError`` when a request fails
    after its retries, when a response is not a JSON list of objects, or when the number of
    distinct ids differs from the server's count for the same filter.
    """
    client = SodaClient(dataset, sleep)
    where = where_updated_since(watermark)
    pulled: list[dict[str, str]] = []
    seen_system_ids: set[str] = set()
    offset = 0
    while True:
        params = {"$select": ":*,*", "$order": DATA_ORDER,
                  "$limit": str(dataset.page_size), "$offset": str(offset)}
        if where:
            params["$where"] = where
        url, page = client.get_rows(params)
        logger.info("%s: page at offset %d returned %d rows", dataset.label, offset, len(page))
        check_page(page, url, dataset, id_field, seen_system_ids)
        pulled.extend(page)
        if len(page) < dataset.page_size:
            break
        offset += dataset.page_size

    rows = keep_latest(pulled, id_field)
    server_count = client.get_count(where)
    if len(rows) != server_count:
        raise SocrataError(
            f"{dataset.label}: pulled {len(rows)} distinct {id_field!r} values but the server "
            f"counts {server_count} rows for the same filter ({where or 'no filter'}). Rows may "
            f"have changed during the pull, so retry it. If the dataset repeats {id_field!r} "
            f"values, pass id_field=':id'"
        )
    new_watermark = max((row[":updated_at"] for row in rows), default=None)
    logger.info("%s: pulled %d rows in %d requests, watermark %s", dataset.label, len(rows),
                len(client.requests), new_watermark)
    return PullResult(rows=rows, watermark=new_watermark, requests=client.requests,
                      server_count=server_count)


def where_updated_since(watermark: str | None) -> str | None:
    if watermark is None:
        return None
    # A SoQL string literal escapes a single quote by doubling it.
    literal = watermark.replace("'", "''")
    return f":updated_at >= '{literal}'"


def check_page(page: list[dict[str, str]], url: str, dataset: SocrataDataset, id_field: str,
               seen_system_ids: set[str]) -> None:
    """Raise when a page lacks a needed field, is longer than ``$limit`` or repeats a full page."""
    for row in page:
        missing = [name for name in (":id", ":updated_at") if name not in row]
        if missing:
            raise SocrataError(
                f"{dataset.label}: a row from {url} has no {' or '.join(missing)} field. The "
                f"endpoint ignored $select=:*,*, so check that it is a SODA 2.1 resource URL"
            )
        if id_field not in row:
            raise SocrataError(f"{dataset.label}: row {row[':id']} from {url} has no "
                               f"{id_field!r} field. Set id_field to a column every row has")
    if len(page) > dataset.page_size:
        raise SocrataError(f"{dataset.label}: {url} returned {len(page)} rows, more than "
                           f"$limit={dataset.page_size}. Lower page_size to the portal's maximum")
    page_ids = {row[":id"] for row in page}
    # With a total order, a full page can only repeat known rows if the server ignores $offset,
    # and paging would then never end.
    if len(page) == dataset.page_size and page_ids <= seen_system_ids:
        raise SocrataError(f"{dataset.label}: {url} repeated rows of an earlier page. The "
                           f"server seems to ignore $offset, so the pull cannot page")
    seen_system_ids.update(page_ids)


def keep_latest(rows: list[dict[str, str]], id_field: str) -> list[dict[str, str]]:
    """Keep one row per ``id_field`` value: the one with the largest ``:updated_at``.

    Of rows with equal ``:updated_at``, the later one in ``rows`` wins. The result keeps the
    order in which each id first appeared. Every row must have ``id_field`` and ``:updated_at``.
    """
    latest: dict[str, dict[str, str]] = {}
    for row in rows:
        previous = latest.get(row[id_field])
        # ISO 8601 timestamps in one format and time zone sort correctly as text.
        if previous is None or row[":updated_at"] >= previous[":updated_at"]:
            latest[row[id_field]] = row
    return list(latest.values())


def as_text(value: object) -> str | None:
    """Convert one JSON value to the text Riskcast stores, or None for a JSON null."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    # Numbers and booleans keep their JSON spelling ("true", "1.5"), and an object such as a
    # location keeps its whole JSON text.
    return json.dumps(value, separators=(",", ":"))


class SodaClient:
    """HTTP client for one dataset that retries failed GET requests and records every URL."""

    def __init__(self, dataset: SocrataDataset, sleep: Callable[[float], None]) -> None:
        self.dataset = dataset
        self.sleep = sleep
        self.requests: list[str] = []
        token = os.environ.get(dataset.app_token_env) if dataset.app_token_env else None
        self.token = token or None
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["X-App-Token"] = token

    def redact(self, text: str) -> str:
        """Replace the app token in ``text``, such as a server message that echoes it, with a mark."""
        if self.token is None:
            return text
        return text.replace(self.token, "[app token]")

    def get_rows(self, params: dict[str, str]) -> tuple[str, list[dict[str, str]]]:
        """Return the URL and the rows of one request, with values as text and nulls dropped."""
        url = self.url_for(params)
        payload = self.get_json(url)
        if not isinstance(payload, list) or not all(isinstance(row, dict) for row in payload):
            found = type(payload).__name__
            if isinstance(payload, list):
                found = "a list with non-object items"
            raise SocrataError(f"{self.dataset.label}: {url} returned JSON {found}, expected a list "
                               f"of row objects. Check base_url and dataset_id")
        rows = []
        for row in payload:
            texts = {str(name): as_text(value) for name, value in row.items()}
            rows.append({name: text for name, text in texts.items() if text is not None})
        return url, rows

    def get_count(self, where: str | None) -> int:
        params = {"$select": "count(*)"}
        if where:
            params["$where"] = where
        url, rows = self.get_rows(params)
        # Read the single value without relying on the column's name ("count" in the tests).
        values = list(rows[0].values()) if len(rows) == 1 else []
        if len(values) != 1 or not values[0].isdigit():
            raise SocrataError(f"{self.dataset.label}: {url} returned {rows!r}, expected one row "
                               f"with one count. Check that the endpoint supports count(*)")
        return int(values[0])

    def url_for(self, params: dict[str, str]) -> str:
        query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe=":,*$()")
        return f"{self.dataset.resource_url}?{query}"

    def get_json(self, url: str) -> object:
        body = self.get_with_retries(url)
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SocrataError(f"{self.dataset.label}: {url} returned invalid JSON ({error}). "
                               f"Check base_url, dataset_id and that the URL ends in .json") from error

    def get_with_retries(self, url: str) -> bytes:
        """Return the body of a successful response, retrying throttling, server errors and timeouts."""
        attempts = self.dataset.max_retries + 1
        for attempt in range(1, attempts + 1):
            self.requests.append(url)
            retry_after = None
            try:
                request = urllib.request.Request(url, headers=self.headers)
                with urllib.request.urlopen(request, timeout=self.dataset.timeout_seconds) as response:
                    status = response.status
                    body = response.read()
                if status not in RETRYABLE_STATUSES:
                    return body
                failure = f"HTTP {status}"
            except urllib.error.HTTPError as error:
                body = read_error_body(error)
                if error.code not in RETRYABLE_STATUSES:
                    raise SocrataError(
                        f"{self.dataset.label}: {url} was rejected with HTTP {error.code}: "
                        f"{self.redact(error_message(body))}. {advice_for_status(error.code)}"
                    ) from error
                failure = f"HTTP {error.code}"
                retry_after = parse_retry_after(error.headers.get("Retry-After"))
            except (OSError, http.client.HTTPException) as error:
                # URLError, timeouts and dropped connections are all OSError subclasses here.
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                failure = f"{type(reason).__name__}: {reason}"

            if attempt == attempts:
                raise SocrataError(
                    f"{self.dataset.label}: {url} failed after {attempts} attempts, last with "
                    f"{failure}. Check that the portal is up, raise max_retries, or retry later"
                )
            wait = self.wait_before_retry(attempt, retry_after)
            logger.warning("%s: GET %s failed with %s, retry %d of %d in %.1f s", self.dataset.label,
                           url, failure, attempt, self.dataset.max_retries, wait)
            self.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def wait_before_retry(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_WAIT_SECONDS)
        return min(self.dataset.backoff_seconds * 2 ** (attempt - 1), MAX_WAIT_SECONDS)


def read_error_body(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read()
    except (OSError, http.client.HTTPException):
        return b""


def error_message(body: bytes) -> str:
    """Return the ``message`` of a SODA JSON error body, or the start of the raw body."""
    text = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return payload["message"]
    return text.strip()[:MAX_MESSAGE_CHARS] or "(empty body)"


def advice_for_status(status: int) -> str:
    if status in (401, 403):
        return "Check the app token and that the dataset is public"
    if status == 404:
        return "Check base_url and dataset_id"
    return "Check the query and the dataset's column names"


def parse_retry_after(value: str | None) -> float | None:
    """Return a ``Retry-After`` header given in seconds, or None when absent, invalid or an HTTP date."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
