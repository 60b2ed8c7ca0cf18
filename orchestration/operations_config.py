"""Run-file blocks for unattended operation: schedules, freshness, notifications and the executor.

A run file may carry these blocks beside its windows::

    schedules: {hourly_minute: 15, nightly_hour_utc: 6, enabled: false}
    freshness: {max_age_hours: 6}
    notifications: {kind: slack, webhook_env: RISKCAST_SLACK_WEBHOOK}
    executor: {kind: multiprocess, max_concurrent: 1}

Every schedule and the freshness sensors start STOPPED unless their block sets ``enabled: true``,
so ``dagster dev`` starts no work by surprise. ``docs/operations.md`` describes what each one requests.
"""

from __future__ import annotations

import re
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


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Run-file keys that would carry a secret value. A key ending in ``_env`` names an environment
# variable instead, which is how a run file refers to a secret.
SECRET_KEY = re.compile(r"token|secret|password|passwd|api_?key|credential|webhook(_url)?$|dsn$", re.IGNORECASE)


def reject_secret_values(content: object, where: str = "") -> None:
    """Raise ValueError when a mapping, at any depth, has a key that would carry a secret value.

    Secrets (the Socrata app token, the Slack webhook URL, database passwords) come only from
    environment variables, so a run file names the variable in a ``*_env`` key, such as
    ``notifications.webhook_env``.
    """
    if isinstance(content, list):
        for index, item in enumerate(content):
            reject_secret_values(item, f"{where}[{index}]")
        return
    if not isinstance(content, dict):
        return
    for key, value in content.items():
        path = f"{where}.{key}" if where else str(key)
        name = str(key)
        if SECRET_KEY.search(name) and not name.lower().endswith("_env"):
            raise ValueError(
                f"run-file key {path!r} looks like a secret, and secrets are read only from environment "
                f"variables. Remove it, export the value in the environment (for example SOCRATA_APP_TOKEN "
                f"or RISKCAST_SLACK_WEBHOOK) and, where the block has one, name the variable in its *_env key")
        reject_secret_values(value, path)

# Ingest-state keys of portal sources: extract files and Socrata datasets. NOAA weather keys
# (``noaa-lcd:<station>``) hold station Local Standard Time and are left out by default.
PORTAL_SOURCE_PREFIXES = ("extracts:", "socrata:")


class FreshnessSettings(BaseModel):
    """Freshness thresholds: the age of the newest portal record, of each raw and warehouse
    materialization, and of the newest published forecast."""

    model_config = ConfigDict(extra="forbid")

    max_age_hours: float = Field(default=6, gt=0,
                                 description="hours since the newest record of a source before it counts as stale")
    source_prefixes: list[str] = Field(
        default=list(PORTAL_SOURCE_PREFIXES), min_length=1,
        description="prefixes of the raw.ingest_state source keys to check, such as 'extracts:' or "
                    "'socrata:ijzp-q8t2'")
    interval_minutes: int = Field(default=15, ge=1, description="minutes between two checks")
    raw_max_age_hours: float = Field(
        default=3, gt=0,
        description="hours since a raw asset of crimes, 311 requests or weather observations was last "
                    "materialized before its freshness check fails")
    reference_max_age_hours: float = Field(
        default=26, gt=0,
        description="hours since the offense codes, boundaries, cells or demographics were last materialized "
                    "before their freshness checks fail; the nightly job rebuilds them once a day")
    warehouse_max_age_hours: float = Field(
        default=3, gt=0,
        description="hours since fct_cell_hour_crimes and the incident mart were last rebuilt before "
                    "their freshness checks fail")
    scores_max_lag_hours: float = Field(
        default=3,
        description="hours between the newest issued_at in main.risk_scores and now before the "
                    "scores count as late; above 1, because the forecast of hour H is issued once "
                    "hour H has ended")
    enabled: bool = Field(default=False,
                          description="true starts the portal-freshness and freshness-check sensors as RUNNING")

    @model_validator(mode="after")
    def check_scores_lag(self) -> "FreshnessSettings":
        if self.scores_max_lag_hours <= 1:
            raise ValueError(
                f"freshness.scores_max_lag_hours {self.scores_max_lag_hours:g} must be above 1, because the "
                f"forecast issued at hour H is made only once hour H has ended, so the newest issue hour "
                f"is always more than 1 hour old; set it to 2 or more (default 3)")
        return self


class NotificationSettings(BaseModel):
    """Destination of run-failure and stale-source reports: the Python log, or a Slack incoming webhook."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["log", "slack"] = "log"
    webhook_env: str = Field(
        default="RISKCAST_SLACK_WEBHOOK", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of the environment variable that contains the Slack webhook URL; the URL "
                    "itself never goes in a file")
    timeout_seconds: float = Field(default=10.0, gt=0, description="timeout of one webhook request")


class ExecutorSettings(BaseModel):
    """Executor settings for runs launched from the Dagster UI or daemon: one process, several, or pods.

    ``riskcast run`` and the other CLI commands execute jobs in process, whatever this block sets.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["in_process", "multiprocess", "k8s"] = Field(
        default="in_process",
        description="in_process runs every step in the run's process; multiprocess starts one process "
                    "per step; k8s starts one Kubernetes job per step (needs the prod extra)")
    max_concurrent: int = Field(
        default=1, ge=1,
        description="steps that run at the same time under the multiprocess or k8s executor. Every "
                    "step opens the same DuckDB file, which one writing process holds at a time, "
                    "and a waiting step fails after 60 seconds, so more than 1 suits only jobs "
                    "whose parallel steps are short")
    job_namespace: str | None = Field(
        default=None, description="Kubernetes namespace of the step jobs (k8s only; default: the run's)")
    env_vars: list[str] = Field(
        default_factory=list,
        description="names of environment variables passed to each k8s step pod, such as "
                    "RISKCAST_HOME; only the names, never values")

    @model_validator(mode="after")
    def check_kind_fields(self) -> "ExecutorSettings":
        if self.kind != "k8s" and (self.job_namespace is not None or self.env_vars):
            raise ValueError(
                f"executor.job_namespace and executor.env_vars apply to kind k8s only, but kind is "
                f"{self.kind!r}; remove them or set kind: k8s")
        bad = [name for name in self.env_vars if not ENV_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"executor.env_vars must list variable names such as RISKCAST_HOME, got {bad}; "
                             f"put the values in the pod's environment, not in the run file")
        return self
