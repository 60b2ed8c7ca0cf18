"""A GET with bounded retries, shared by the NOAA and NWS clients.

HTTP 429 and 5xx answers, dropped or refused connections, timeouts and the client's own
transient failures (a truncated body, a body that does not parse) are retried after a doubling
wait capped at ``max_wait_seconds``, or after the server's ``Retry-After`` under the same cap.
Any other HTTP status fails at once with the server's message and the client's advice.
"""

from __future__ import annotations

import http.client
import logging
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_MESSAGE_CHARS = 300

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits of one client and the words its messages use."""

    label: str  # "NOAA": starts every message and log line
    service_noun: str  # "service" or "API", as in "NOAA service rejected ..."
    settings: str  # the configuration block to raise max_retries in, such as "weather.api"
    max_retries: int
    backoff_seconds: float
    max_wait_seconds: float

    def wait_before_retry(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait_seconds)
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.max_wait_seconds)


def get_with_retries(url: str, fetch: Callable[[str], T], policy: RetryPolicy, error_type: type[Exception],
                     advice: Callable[[int], str], transient: tuple[type[Exception], ...],
                     describe: Callable[[Exception], str], sleep: Callable[[float], None],
                     requests: list[str]) -> T:
    """Return ``fetch(url)``, retrying transient failures; append every attempted URL to ``requests``.

    ``transient`` lists the client's own exceptions that are worth a retry, and ``describe`` words
    one of them for the log and the final error. The final error is an ``error_type``.
    """
    attempts = policy.max_retries + 1
    for attempt in range(1, attempts + 1):
        requests.append(url)
        retry_after = None
        try:
            return fetch(url)
        except urllib.error.HTTPError as error:
            body = read_error_body(error)
            if error.code not in RETRYABLE_STATUSES:
                raise error_type(f"{policy.label} {policy.service_noun} rejected {url} with HTTP {error.code}: "
                                 f"{error_text(body)}. {advice(error.code)}") from error
            failure = f"HTTP {error.code}"
            retry_after = parse_retry_after(error.headers.get("Retry-After"))
        except transient as error:
            failure = describe(error)
        except (OSError, http.client.HTTPException) as error:
            # Timeouts, refused and dropped connections are OSError subclasses, and a body
            # shorter than its Content-Length raises http.client.IncompleteRead.
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            failure = f"{type(reason).__name__}: {reason}"

        if attempt == attempts:
            raise error_type(f"{policy.label} request {url} failed after {attempts} attempts, last with {failure}. "
                             f"Check that the {policy.service_noun} is up, raise {policy.settings}.max_retries, "
                             f"or retry later")
        wait = policy.wait_before_retry(attempt, retry_after)
        logger.warning("%s GET %s failed with %s, retry %d of %d in %.1f s", policy.label, url, failure, attempt,
                       policy.max_retries, wait)
        sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


def read_error_body(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read()
    except (OSError, http.client.HTTPException):
        return b""


def error_text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace").strip()[:MAX_MESSAGE_CHARS] or "(empty body)"


def parse_retry_after(value: str | None) -> float | None:
    """Return a ``Retry-After`` header in seconds, or None when absent, invalid or an HTTP date."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(seconds, 0.0)
