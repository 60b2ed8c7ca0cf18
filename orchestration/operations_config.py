"""Run-file blocks for unattended operation: schedules, portal freshness and notifications.

A run file may carry these blocks beside its windows::

    schedules: {hourly_minute: 15, nightly_hour_utc: 6, enabled: false}
    freshness: {max_age_hours: 6}
    notifications: {kind: slack, webhook_env: RISKCAST_SLACK_WEBHOOK}

Every schedule and the freshness sensor start STOPPED unless their block sets ``enabled: true``,
so ``dagster dev`` starts no work by surprise. ``docs/operations.md`` describes what each one requests.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ScheduleSettings(BaseModel):
    """Minutes and hours (UTC) at which the hourly, weekly refresh and nightly schedules tick."""

    model_config = ConfigDict(extra="forbid")

    hourly_minute: int = Field(
        default=15, ge=0, le=59,
        description="minute of every hour at which the newest completed hour is ingested, featurized and scored")
    refresh_minute: int = Field(
        default=45, ge=0, le=59,
        description="minute, in the hour at which a refresh partition ends, at which that partition is "
                    "trained and released; later than hourly_minute, so the partition's last hour is "
                    "requested first")
    nightly_hour_utc: int = Field(default=6, ge=0, le=23,
                                  description="UTC hour of the nightly evaluation, bias report and release")
    nightly_minute: int = Field(
        default=45, ge=0, le=59,
        description="minute of nightly_hour_utc at which the nightly run starts; away from hourly_minute, "
                    "so it does not start together with that hour's increment")
    enabled: bool = Field(default=False,
                          description="true starts the schedules as RUNNING; false leaves them STOPPED "
                                      "until someone starts them in the UI or with `dagster schedule start`")

    @model_validator(mode="after")
    def check_order(self) -> "ScheduleSettings":
        if self.refresh_minute <= self.hourly_minute:
            raise ValueError(
                f"schedules.refresh_minute {self.refresh_minute} must be later than hourly_minute "
                f"{self.hourly_minute}, so the hourly increment of a refresh partition's last hour is "
                f"requested before the partition is trained; raise refresh_minute or lower hourly_minute")
        return self


# Ingest-state keys of portal sources: extract files and Socrata datasets. NOAA weather keys
# (``noaa-lcd:<station>``) hold station Local Standard Time and are left out by default.
PORTAL_SOURCE_PREFIXES = ("extracts:", "socrata:")


class FreshnessSettings(BaseModel):
    """Maximum age of the newest portal record before the freshness sensor reports its source."""

    model_config = ConfigDict(extra="forbid")

    max_age_hours: float = Field(default=6, gt=0,
                                 description="hours since the newest record of a source before it counts as stale")
    source_prefixes: list[str] = Field(
        default=list(PORTAL_SOURCE_PREFIXES), min_length=1,
        description="prefixes of the raw.ingest_state source keys to check, such as 'extracts:' or "
                    "'socrata:ijzp-q8t2'")
    interval_minutes: int = Field(default=15, ge=1, description="minutes between two checks")
    enabled: bool = Field(default=False, description="true starts the freshness sensor as RUNNING")


class NotificationSettings(BaseModel):
    """Destination of run-failure and stale-source reports: the Python log, or a Slack incoming webhook."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["log", "slack"] = "log"
    webhook_env: str = Field(
        default="RISKCAST_SLACK_WEBHOOK", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of the environment variable that contains the Slack webhook URL; the URL "
                    "itself never goes in a file")
    timeout_seconds: float = Field(default=10.0, gt=0, description="timeout of one webhook request")
