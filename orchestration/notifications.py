"""Notification resources: where the run-failure and freshness sensors send what they report.

``NotificationResource`` is the abstract resource the sensors depend on. ``LogNotificationResource``
writes each notification to Python logging at WARNING. ``SlackNotificationResource`` posts it to a
Slack incoming webhook as the JSON body ``{"text": ...}``. The webhook URL is a secret, so the
resource keeps only the name of the environment variable that contains it and reads the variable
when it sends.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod

import dagster as dg

from orchestration.operations_config import NotificationSettings

logger = logging.getLogger("riskcast.notifications")

# Longest message text sent, so that a report with many failed steps stays readable in a chat channel.
MAX_TEXT_CHARS = 3000


class NotificationError(RuntimeError):
    """A notification could not be sent. The message names the setting or response to fix."""


class NotificationResource(dg.ConfigurableResource, ABC):
    """A channel that receives short operational messages: a subject line and detail lines."""

    @abstractmethod
    def notify(self, subject: str, lines: list[str]) -> None: ...


def message_text(subject: str, lines: list[str]) -> str:
    """Join a subject and its detail lines into one plain-text message, cut to ``MAX_TEXT_CHARS``."""
    text = "\n".join([subject, *lines])
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS - 20] + "\n... (message cut)"


class LogNotificationResource(NotificationResource):
    """Notifications written to the ``riskcast.notifications`` logger at WARNING."""

    def notify(self, subject: str, lines: list[str]) -> None:
        logger.warning("%s", message_text(subject, lines))


class SlackNotificationResource(NotificationResource):
    """Notifications posted to the Slack incoming webhook whose URL is in ``webhook_env``."""

    webhook_env: str = "RISKCAST_SLACK_WEBHOOK"
    timeout_seconds: float = 10.0

    def webhook_url(self) -> str:
        url = os.environ.get(self.webhook_env, "").strip()
        if not url:
            raise NotificationError(
                f"environment variable {self.webhook_env} is not set, so the Slack notification cannot be sent; "
                f"set it to the incoming-webhook URL, or set notifications.kind to log in the run file")
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("https", "http"):
            raise NotificationError(f"environment variable {self.webhook_env} contains a URL with scheme "
                                    f"{scheme!r}; a Slack webhook URL starts with https://")
        return url

    def notify(self, subject: str, lines: list[str]) -> None:
        url = self.webhook_url()
        body = json.dumps({"text": message_text(subject, lines)}).encode("utf-8")
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})

        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            detail = error.read(300).decode("utf-8", errors="replace")
            raise NotificationError(f"the Slack webhook in {self.webhook_env} rejected the notification with "
                                    f"HTTP {error.code}: {detail}") from error
        except (urllib.error.URLError, TimeoutError) as error:
            raise NotificationError(f"the Slack webhook in {self.webhook_env} could not be reached: "
                                    f"{error}") from error

        # The URL is a secret, so the log names only the variable that contains it.
        logger.info("sent notification %r to the Slack webhook in %s (HTTP %d)", subject, self.webhook_env, status)


def notification_resource(settings: NotificationSettings) -> NotificationResource:
    """Return the resource that the run file's ``notifications`` block selects."""
    if settings.kind == "slack":
        return SlackNotificationResource(webhook_env=settings.webhook_env, timeout_seconds=settings.timeout_seconds)
    return LogNotificationResource()
