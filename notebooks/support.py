"""Helpers shared by the four analyst notebooks: open a warehouse, select hours, show and record results.

The notebooks compute every number through ``ml/`` and ``orchestration/``. This module holds only
what a notebook needs around those calls: where the warehouse is and what it contains (jurisdiction,
time zone, whether the data is synthetic), the reader's selection of dates, hours of the day and
days of the week, tables formatted for reading, and ``record``, which stores a result in the
executed notebook under a name so that tests can read it back (the "glue" idea of papermill's
scrapbook, with a private MIME type that HTML renderers skip).

The deployment selection keeps whole shifts: ``ml.deployment.plan_shifts`` needs consecutive hours,
so the plan is made over every hour of the window and the shifts are selected afterwards by their
local start date, start hour and weekday, then summarised with ``ml.deployment.summarise_plan``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from ml.bias import DEFAULT_GROUPS, GroupDefinition
from ml.deployment import (
    COMPARISON_SCHEMA,
    DEFAULT_RISK_KINDS,
    DeploymentAssumptions,
    expected_prevented,
    plan_shifts,
    summarise_plan,
)
from orchestration.jurisdiction import ConfigError, JurisdictionConfig, load_jurisdiction
from orchestration.notebooks import RECORD_MIME_TYPE
from orchestration.warehouse import connect

logger = logging.getLogger(__name__)

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DEMO_JURISDICTION = "demo"


@dataclass(frozen=True)
class WarehouseInfo:
    """Facts about the warehouse a notebook reads: its jurisdiction, time zone and synthetic flag."""

    path: Path
    jurisdiction: str
    display_name: str
    time_zone: str
    synthetic: bool
    config: JurisdictionConfig | None = None


@dataclass(frozen=True)
class Selection:
    """The reader's choice of forecast hours: local dates (end excluded), hours of the day, weekdays.

    Weekdays are numbered 0 (Monday) to 6 (Sunday). ``None`` dates leave that end open.
    """

    start_date: date | None
    end_date: date | None
    hours: tuple[int, ...]
    weekdays: tuple[int, ...]

    def describe(self) -> str:
        dates = f"{self.start_date or 'the first day'} to {self.end_date or 'the last day'} (end excluded)"
        hours = "all hours" if len(self.hours) == 24 else f"hours {list(self.hours)}"
        days = ("every day of the week" if len(self.weekdays) == 7
                else "on " + ", ".join(WEEKDAY_NAMES[day] for day in self.weekdays))
        return f"local dates {dates}, {hours}, {days}"


def default_warehouse() -> Path:
    """Return the warehouse ``riskcast demo`` writes: ``$RISKCAST_HOME/demo/warehouse.duckdb``, else ``./data/demo/...``."""
    home = os.environ.get("RISKCAST_HOME")
    if home:
        return Path(home).expanduser() / DEMO_JURISDICTION / "warehouse.duckdb"
    return Path("data") / DEMO_JURISDICTION / "warehouse.duckdb"


def resolve_warehouse(warehouse: str | Path | None) -> Path:
    """Return the warehouse path, raising FileNotFoundError with the fix when there is no file."""
    path = Path(warehouse).expanduser() if warehouse else default_warehouse()
    if not path.is_file():
        raise FileNotFoundError(
            f"no Riskcast warehouse at {path.resolve()}: run `riskcast demo` (or `riskcast run --config FILE`) "
            f"first, or set the notebook's `warehouse` parameter to a warehouse.duckdb file")
    return path.resolve()


def describe_warehouse(warehouse: str | Path | None, jurisdiction: str | None = None,
                       time_zone: str | None = None) -> WarehouseInfo:
    """Open the warehouse's facts: its jurisdiction (the parent folder's name unless given), time zone, synthetic flag.

    ``jurisdiction`` is a jurisdiction name or the path of its YAML file. The synthetic flag is
    true when the jurisdiction file sets ``synthetic`` or when the latest model's manifest records
    ``synthetic_data``. ``time_zone`` overrides the jurisdiction's.
    """
    path = resolve_warehouse(warehouse)
    name = jurisdiction or path.parent.name
    config = jurisdiction_config(name)
    manifest = latest_manifest(path)

    synthetic = bool((config is not None and config.synthetic) or manifest.get("synthetic_data", False))
    zone = time_zone or (config.time_zone if config is not None else None)
    if zone is None:
        raise ConfigError(
            f"cannot tell the time zone of {path}: no jurisdiction file for {name!r}. Set the notebook's "
            f"`jurisdiction` parameter to the jurisdiction's YAML file, or set `time_zone`")
    display_name = (config.display_name if config is not None
                    else manifest.get("jurisdiction_display_name", name))
    info = WarehouseInfo(path=path, jurisdiction=config.name if config is not None else name,
                         display_name=display_name, time_zone=zone, synthetic=synthetic, config=config)
    logger.info("warehouse %s: jurisdiction %s, time zone %s, synthetic %s", path, info.jurisdiction, zone, synthetic)
    return info


def jurisdiction_config(name_or_path: str) -> JurisdictionConfig | None:
    """Load the jurisdiction file for a name or path, or return None when there is none."""
    try:
        return load_jurisdiction(name_or_path)
    except ConfigError as error:
        logger.info("no jurisdiction file for %r: %s", name_or_path, str(error).splitlines()[0])
        return None


def latest_manifest(warehouse: Path) -> dict[str, Any]:
    """Read the manifest of the most recently registered ensemble, or return {} when the registry or file is missing."""
    with connect(warehouse, read_only=True) as connection:
        if not table_exists(connection, "main", "model_registry"):
            return {}
        row = connection.sql("SELECT path FROM main.model_registry ORDER BY registered_at DESC LIMIT 1").fetchone()
    if row is None or row[0] is None:
        return {}
    manifest = Path(row[0]) / "manifest.json"
    if not manifest.is_file():
        return {}
    return json.loads(manifest.read_text(encoding="utf-8"))


def table_exists(connection, schema: str, table: str) -> bool:
    query = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
    return connection.execute(query, [schema, table]).fetchone()[0] > 0


def measured_groups(info: WarehouseInfo, groups: pl.DataFrame) -> tuple[GroupDefinition, ...]:
    """Select the bias groups the pipeline measures: the jurisdiction's (or the default) groups with member cells.

    A group with no member cell, or whose reference group has none, is left out, as the
    ``bias_group_metrics`` asset leaves it out.
    """
    columns = {name for name in groups.columns} | {name.removesuffix("_quintile") for name in groups.columns}
    configured = info.config.bias.definitions(columns) if info.config is not None else DEFAULT_GROUPS
    present = [definition for definition in configured if definition.name in groups.columns]
    empty = {definition.name for definition in present if not groups[definition.name].any()}
    kept = tuple(definition for definition in present
                 if definition.name not in empty and definition.reference not in empty)
    if not kept:
        raise ValueError(f"none of the groups {[d.name for d in configured]} holds a cell in main.bias_cell_groups; "
                         f"check the jurisdiction's bias.groups and demographics")
    return kept


def synthetic_notice(info: WarehouseInfo) -> str:
    """A Markdown banner that says whether the numbers come from synthetic or recorded data."""
    if info.synthetic:
        return (f"**SYNTHETIC DATA.** The jurisdiction *{info.display_name}* is generated by Riskcast's demo "
                "generator: no record in it is real, and no number below describes a real city.")
    return (f"The data is the recorded public data of *{info.display_name}*: incidents as the police recorded "
            "them, with the known quality problems the data input audit lists.")


def make_selection(start_date: str | None, end_date: str | None, hours: Sequence[int],
                   weekdays: Sequence[int]) -> Selection:
    """Check the reader's parameters and return a Selection; ValueError names the bad value and the fix."""
    start = date.fromisoformat(start_date) if start_date else None
    end = date.fromisoformat(end_date) if end_date else None
    if start and end and end <= start:
        raise ValueError(f"end_date {end} is not after start_date {start}; the end is excluded, so give a later end.")
    bad_hours = [hour for hour in hours if not isinstance(hour, int) or not 0 <= hour <= 23]
    if not hours or bad_hours:
        raise ValueError(f"hours must be local hours 0 to 23, got {list(hours)!r}; use list(range(24)) for all.")
    bad_days = [day for day in weekdays if not isinstance(day, int) or not 0 <= day <= 6]
    if not weekdays or bad_days:
        raise ValueError(f"weekdays must be 0 (Monday) to 6 (Sunday), got {list(weekdays)!r}; use list(range(7)) for all.")
    return Selection(start, end, tuple(sorted(set(hours))), tuple(sorted(set(weekdays))))


def as_utc(frame: pl.DataFrame, column: str = "hour") -> pl.DataFrame:
    """Mark a naive UTC time column as UTC (the warehouse stores UTC instants without a zone)."""
    if frame.schema[column] == pl.Datetime("us", "UTC") or getattr(frame.schema[column], "time_zone", None):
        return frame
    return frame.with_columns(pl.col(column).dt.replace_time_zone("UTC"))


def select_hours(frame: pl.DataFrame, info: WarehouseInfo, selection: Selection, column: str = "hour") -> pl.DataFrame:
    """Keep the rows whose local time is in the selection; raises ValueError when none is left."""
    utc = as_utc(frame, column)
    local = pl.col(column).dt.convert_time_zone(info.time_zone)
    condition = (local.dt.weekday() - 1).is_in(list(selection.weekdays)) & local.dt.hour().is_in(list(selection.hours))
    if selection.start_date is not None:
        condition = condition & (local.dt.date() >= selection.start_date)
    if selection.end_date is not None:
        condition = condition & (local.dt.date() < selection.end_date)
    kept = utc.filter(condition)
    logger.info("selection (%s) keeps %d of %d rows", selection.describe(), kept.height, frame.height)
    if kept.height == 0:
        raise ValueError(f"the selection ({selection.describe()}) keeps none of the {frame.height} rows; "
                         f"widen the dates, hours or weekdays")
    return kept


def read_backtest_predictions(info: WarehouseInfo) -> tuple[pl.DataFrame, dict[str, str]]:
    """The backtest's forecast cell-hours (hours marked UTC) and each model's risk kind from main.backtest_models."""
    with connect(info.path, read_only=True) as connection:
        for table in ("backtest_predictions", "backtest_models"):
            if not table_exists(connection, "main", table):
                raise ValueError(f"{info.path} has no main.{table}; run the evaluate job (`riskcast demo` or "
                                 f"`riskcast run`) so the backtest is written")
        predictions = connection.sql("SELECT * FROM main.backtest_predictions ORDER BY hour, cell_id").pl()
        kinds = dict(connection.sql("SELECT model, risk_kind FROM main.backtest_models ORDER BY model").fetchall())
    present = {model: kind for model, kind in kinds.items() if model in predictions.columns}
    return as_utc(predictions), present


def read_table(info: WarehouseInfo, name: str) -> pl.DataFrame:
    """Read ``schema.table`` from the warehouse; ValueError names the table and the job that writes it."""
    schema, table = name.split(".")
    with connect(info.path, read_only=True) as connection:
        if not table_exists(connection, schema, table):
            raise ValueError(f"{info.path} has no {name}; run the main job (`riskcast demo` or `riskcast run`) first")
        return connection.sql(f"SELECT * FROM {schema}.{table}").pl()


def select_whole_days(frame: pl.DataFrame, info: WarehouseInfo, selection: Selection) -> pl.DataFrame:
    """Keep every hour of the selection's local dates (weekdays and hours are applied to shifts later)."""
    whole = Selection(selection.start_date, selection.end_date, tuple(range(24)), tuple(range(7)))
    return select_hours(frame, info, whole)


def compare_selected_shifts(
    forecasts: pl.DataFrame,
    models: Sequence[str],
    assumptions: DeploymentAssumptions,
    info: WarehouseInfo,
    selection: Selection,
    *,
    risk_kinds: Mapping[str, str],
    coverage: float,
    shift_starts: Sequence[int],
) -> tuple[pl.DataFrame, dict[str, Any], dict[str, Any]]:
    """Plan each model's shifts over ``forecasts`` and summarise the shifts the selection keeps.

    A shift is kept when its local start hour is in ``selection.hours`` and its local date's
    weekday in ``selection.weekdays``. With every hour and weekday selected, the result equals
    ``ml.deployment.compare_models`` over the same forecasts. Returns the comparison (columns of
    ``COMPARISON_SCHEMA``), each model's plan and each model's prevention estimate, keyed by model.
    """
    rows, plans, estimates = [], {}, {}
    for model in models:
        plan = plan_shifts(forecasts, model, assumptions, time_zone=info.time_zone,
                           risk_kind=risk_kinds.get(model, DEFAULT_RISK_KINDS.get(model)),
                           coverage=coverage, shift_starts=shift_starts)
        estimate = expected_prevented(plan, forecasts.select("cell_id", "hour", "crime_count"))
        plan, estimate = keep_shifts(plan, estimate, info, selection)
        rows.append(summarise_plan(plan, estimate))
        plans[model] = plan
        estimates[model] = estimate
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA, orient="row"), plans, estimates


def keep_shifts(plan, estimate, info: WarehouseInfo, selection: Selection):
    """The plan and estimate restricted to the shifts whose local start hour and weekday are selected."""
    local = pl.col("period_start").dt.convert_time_zone(info.time_zone)
    keep = local.dt.hour().is_in(list(selection.hours)) & (local.dt.weekday() - 1).is_in(list(selection.weekdays))
    shifts = plan.shifts.filter(keep)
    if shifts.height == 0:
        raise ValueError(f"no shift starts at the selected hours {list(selection.hours)} on the selected weekdays; "
                         f"select the shifts' start hours ({list(plan.shift_starts)})")
    starts = shifts.select("period_start")
    kept_plan = replace(plan, shifts=shifts, cells=plan.cells.join(starts, on="period_start", how="semi"))
    kept_estimate = replace(estimate, shifts=estimate.shifts.join(starts, on="period_start", how="semi"),
                            cells=estimate.cells.join(starts, on="period_start", how="semi"))
    logger.info("deployment %s: %d of %d shifts selected", plan.model, shifts.height, plan.shifts.height)
    return kept_plan, kept_estimate


def readable(frame: pl.DataFrame, digits: int = 3, percent: Sequence[str] = ()) -> Any:
    """A pandas Styler of ``frame`` for display: numbers to ``digits`` decimals, shares as percentages, no index."""
    table = frame.to_pandas()
    formats: dict[str, Any] = {}
    for column in table.columns:
        if column in percent:
            formats[column] = lambda value: "n/a" if pd.isna(value) else f"{value:.1%}"
        elif pd.api.types.is_float_dtype(table[column]):
            formats[column] = lambda value, d=digits: "n/a" if pd.isna(value) else f"{value:,.{d}f}"
        elif pd.api.types.is_integer_dtype(table[column]):
            formats[column] = lambda value: "n/a" if pd.isna(value) else f"{value:,}"
    return table.style.format(formats).hide(axis="index")


def record(name: str, value: pl.DataFrame | Mapping[str, Any] | Sequence[Any] | float | int | str | None) -> None:
    """Store ``value`` in the notebook's outputs under ``name``, for tests and other tools to read back.

    Frames are stored as lists of row dicts. The output has a private MIME type only, so HTML
    renderings of the notebook do not show it.
    """
    from IPython.display import display

    payload = value.to_dicts() if isinstance(value, pl.DataFrame) else value
    text = json.dumps({"name": name, "value": payload}, default=str)
    display({RECORD_MIME_TYPE: json.loads(text)}, raw=True)
