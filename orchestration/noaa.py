"""Pulls of Local Climatological Data (LCD) from NOAA NCEI's Access Data Service, as CSV.

The service serves ``GET {base_url}/access/services/data/v1`` with the parameters ``dataset``
(here ``local-climatological-data``), ``stations`` (comma-separated station ids), ``startDate`` and
``endDate`` (ISO 8601 dates or date-times), ``format`` (``csv``) and ``units`` (``standard``: degrees
Fahrenheit, inches, miles per hour). NCEI documents them at
https://www.ncei.noaa.gov/support/access-data-service-api-user-documentation.

A pull asks for one station and one calendar month per request, so a response stays small and a
failed request repeats one month only. Every request sends a User-Agent. Throttling (429), server
errors (5xx), timeouts, dropped connections and truncated bodies are retried with a doubling wait
(or the server's ``Retry-After``) by ``orchestration.http_retry``, and the last failure raises ``NoaaError``. A body is truncated
when it is shorter than its Content-Length, when a CSV record has a different number of fields
than the header, or when it does not end with a line break. The one exception is a body that
matches its Content-Length and ends with a closing quote: NCEI quotes every field, so such a body
ends on a whole field and only lacks the final line break. Such a body is never returned.

NOTE: ``startDate`` and ``endDate`` are sent without a time zone. This module assumes the service
compares them with the LCD ``DATE`` column, which is Local Standard Time; the watermark lookback
of whole days covers an offset of a few hours if it compares in UTC instead.
"""

from __future__ import annotations

import csv
import io
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from orchestration.http_retry import RetryPolicy, get_with_retries

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 120.0
SERVICE_PATH = "/access/services/data/v1"


class NoaaError(RuntimeError):
    """A request to the NOAA service failed or returned unusable data. The message names the fix."""


class TruncatedBody(Exception):
    """A response body ended early. Raised and retried inside the client only."""


@dataclass(frozen=True)
class NoaaService:
    """The Access Data Service endpoint, one dataset, and the HTTP settings of the pulls."""

    base_url: str
    dataset: str = "local-climatological-data"
    # Applies to each socket operation (connect, each read), not to a whole request.
    timeout_seconds: float = 60.0
    max_retries: int = 5
    backoff_seconds: float = 2.0
    user_agent: str = "Riskcast/0.1 (hourly weather ingest)"

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.backoff_seconds < 0:
            raise ValueError(f"backoff_seconds must be 0 or more, got {self.backoff_seconds}")

    @property
    def endpoint(self) -> str:
        return f"{self.base_url.rstrip('/')}{SERVICE_PATH}"


@dataclass(frozen=True)
class ChunkResponse:
    """The CSV body of one station-month request."""

    url: str
    station: str
    start: date
    end: date
    body: bytes


def month_chunks(start: date, end: date) -> list[tuple[date, date]]:
    """Split ``[start, end]`` (both inclusive) into pieces that never cross a calendar month."""
    chunks = []
    current = start
    while current <= end:
        next_month = date(current.year + current.month // 12, current.month % 12 + 1, 1)
        last = min(end, next_month - timedelta(days=1))
        chunks.append((current, last))
        current = next_month
    return chunks


def chunk_params(service: NoaaService, station: str, start: date, end: date) -> dict[str, str]:
    return {
        "dataset": service.dataset,
        "stations": station,
        "startDate": f"{start.isoformat()}T00:00:00",
        "endDate": f"{end.isoformat()}T23:59:59",
        "format": "csv",
        "units": "standard",
    }


def truncation_reason(body: bytes, length_declared: bool = False) -> str | None:
    """Return why a CSV body looks cut off, or None when every record is complete.

    ``length_declared`` says that the response had a Content-Length that the body matched. Then a
    body ending with a closing quote ends on a whole quoted field, and a missing final line break is
    only the server's style; a body cut inside a field still fails.
    """
    if not body:
        return None
    # An even number of quote characters means the final quote closes a field (an escaped quote
    # inside a field is written twice, so it keeps the count even).
    whole_last_field = length_declared and body.endswith(b'"') and body.count(b'"') % 2 == 0
    if not body.endswith(b"\n") and not whole_last_field:
        return "the body does not end with a line break"
    records = csv.reader(io.StringIO(body.decode("utf-8", errors="replace"), newline=""))
    width = None
    for number, record in enumerate(records, start=1):
        if not record:
            continue
        if width is None:
            width = len(record)
        elif len(record) != width:
            return f"line {number} has {len(record)} fields and the header {width}"
    return None


class NoaaClient:
    """HTTP client for the Access Data Service that retries failures and records every URL."""

    def __init__(self, service: NoaaService, sleep: Callable[[float], None] = time.sleep) -> None:
        self.service = service
        self.sleep = sleep
        self.requests: list[str] = []
        self.headers = {"User-Agent": service.user_agent, "Accept": "text/csv"}
        self.policy = RetryPolicy(label="NOAA", service_noun="service", settings="weather.api",
                                  max_retries=service.max_retries, backoff_seconds=service.backoff_seconds,
                                  max_wait_seconds=MAX_WAIT_SECONDS)

    def get_chunk(self, station: str, start: date, end: date) -> ChunkResponse:
        query = urllib.parse.urlencode(chunk_params(self.service, station, start, end), safe=":,")
        url = f"{self.service.endpoint}?{query}"
        body = self.get_with_retries(url)
        logger.info("NOAA %s %s to %s: %d bytes", station, start, end, len(body))
        return ChunkResponse(url=url, station=station, start=start, end=end, body=body)

    def get_with_retries(self, url: str) -> bytes:
        """Return the complete body of a successful response, retrying transient failures."""
        return get_with_retries(url, self.get_once, self.policy, NoaaError, advice_for_status, (TruncatedBody,),
                                lambda error: f"a truncated body ({error})", self.sleep, self.requests)

    def get_once(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers=self.headers)
        with urllib.request.urlopen(request, timeout=self.service.timeout_seconds) as response:
            body = response.read()
            declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) != len(body):
            raise TruncatedBody(f"{len(body)} of {declared} bytes")
        reason = truncation_reason(body, length_declared=declared is not None and declared.isdigit())
        if reason:
            raise TruncatedBody(reason)
        return body


def advice_for_status(status: int) -> str:
    if status == 404:
        return "Check weather.api.base_url"
    return "Check weather.api (dataset) and the stations' noaa_id"
