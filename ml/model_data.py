"""Model matrices built from hourly feature rows, for training and for 72-hour scoring.

A forecast issued at the start of hour ``c`` (using only data before ``c``) covers target hours
``c, c + 1, ..., c + H - 1``; horizon ``k`` (1..H) is the target ``c + k - 1``. One model serves
every horizon: its inputs are the state at the cut-off (lagged counts, last observed weather),
the calendar of the target hour, and the horizon itself.

For training, every (cell, cut-off hour) row of the training window gets one horizon drawn
uniformly from 1..H with a seeded generator. Its label is whether the cell had an incident of the
target in the target hour. Targets past the window's end are left out, so no label comes from after the
training cut-off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from ml.block_rows import BlockRows
from ml.feature_registry import CALENDAR_COLUMNS, label_column, state_columns
from ml.features import calendar_features
from ml.target_weather import TARGET_WEATHER_COLUMNS, TargetWeather, WeatherInputs, epoch_hours

logger = logging.getLogger(__name__)

TARGET_COLUMNS = (
    "target_local_hour", "target_hour_sin", "target_hour_cos", "target_day_of_week",
    "target_weekday_sin", "target_weekday_cos", "target_month", "target_is_holiday",
)


def model_inputs(state: list[str], weather: WeatherInputs | None = None) -> list[str]:
    """Column order of the model matrix: cut-off state, target-hour calendar and weather, then the horizon.

    Without ``weather`` (models trained before the weather modes), the cut-off state is complete
    and no target-hour weather follows the calendar.
    """
    if weather is None:
        return [*state, *TARGET_COLUMNS, "horizon_hours"]
    target_weather = list(TARGET_WEATHER_COLUMNS) if weather.reads_target_weather else []
    return [*weather.state_columns(state), *TARGET_COLUMNS, *target_weather, "horizon_hours"]


def target_weather_columns(weather_inputs: WeatherInputs | None, weather: TargetWeather | None,
                           cutoff_hours: np.ndarray, horizons: np.ndarray) -> list[np.ndarray]:
    """Target-hour weather inputs of each row, one array per column (none when the mode reads none)."""
    if weather_inputs is None or not weather_inputs.reads_target_weather:
        return []
    if weather is None:
        raise ValueError(f"weather mode {weather_inputs.mode!r} reads target-hour weather; pass a TargetWeather "
                         f"built from the observed weather (and the forecast archive)")
    columns = weather.columns(cutoff_hours, horizons)
    return [columns[name] for name in TARGET_WEATHER_COLUMNS]


def target_weather_matrix(weather_inputs: WeatherInputs | None, weather: TargetWeather | None,
                          cutoff_hours: np.ndarray, horizons: np.ndarray) -> np.ndarray:
    """Target-hour weather inputs of each row as a float32 matrix (no columns when the mode reads none)."""
    columns = target_weather_columns(weather_inputs, weather, cutoff_hours, horizons)
    if not columns:
        return np.empty((len(horizons), 0), dtype=np.float32)
    return np.column_stack(columns).astype(np.float32, copy=False)


@dataclass(frozen=True)
class TrainingSet:
    features: np.ndarray        # float32, rows x len(feature_names)
    labels: np.ndarray          # int8, 1 when the target hour had an incident of the target
    target_hours: np.ndarray    # int64 hours since 1970-01-01 UTC, for time-based splits
    feature_names: list[str]

    @property
    def base_rate(self) -> float:
        return float(self.labels.mean()) if self.labels.size else float("nan")


def target_calendar_matrix(local_hour: np.ndarray, day_of_week: np.ndarray, month: np.ndarray,
                           is_holiday: np.ndarray) -> np.ndarray:
    """Calendar inputs of target hours, with sine and cosine terms for the daily and weekly cycles."""
    hour_angle = 2 * np.pi * local_hour / 24
    week_angle = 2 * np.pi * (day_of_week * 24 + local_hour) / 168
    return np.column_stack([
        local_hour, np.sin(hour_angle), np.cos(hour_angle), day_of_week,
        np.sin(week_angle), np.cos(week_angle), month, is_holiday,
    ]).astype(np.float32)


def build_training_set(panel: pl.DataFrame, n_cells: int, horizon_hours: int,
                       rng: np.random.Generator, target: str, weather_inputs: WeatherInputs | None = None,
                       weather: TargetWeather | None = None) -> TrainingSet:
    """Draw one horizon per (cut-off hour, cell) row and pair its state with the target's label.

    ``target`` names a label column ``label_<target>`` of the panel (a category or group such as
    violent, robbery or property). The same seed gives the same horizons for every target.
    ``weather_inputs`` chooses the weather the model reads (``ml.target_weather``); ``weather``
    computes the target-hour weather of each row as known at its cut-off.
    """
    check_label(panel, target)
    design = build_training_design(panel, n_cells, horizon_hours, rng, weather_inputs, weather)
    return design.for_target(panel, target)


def check_label(panel: pl.DataFrame | PanelColumns, target: str) -> None:
    label = label_column(target)
    if label not in panel.columns:
        labels_present = [name for name in panel.columns if name.startswith("label_")]
        raise ValueError(f"the feature panel has no label for target {target!r} (column {label}); it "
                         f"has {labels_present}. Add the target to the jurisdiction's targets and "
                         f"rebuild the features")


# State columns are copied into the design this many at a time, so a reader keeps one group in memory.
STATE_COLUMN_GROUP = 16


class PanelColumns(Protocol):
    """A feature panel read a few columns at a time (``ml.feature_store.WindowReader``, or ``FramePanel``).

    Every read returns the rows in the same order, by hour and then cell.
    """

    @property
    def columns(self) -> list[str]: ...

    @property
    def height(self) -> int: ...

    def read(self, names: list[str]) -> pl.DataFrame: ...


@dataclass(frozen=True)
class FramePanel:
    """``PanelColumns`` of a panel already in memory."""

    frame: pl.DataFrame

    @property
    def columns(self) -> list[str]:
        return self.frame.columns

    @property
    def height(self) -> int:
        return self.frame.height

    def read(self, names: list[str]) -> pl.DataFrame:
        return self.frame.select(names)


Allocate = Callable[[tuple[int, ...], type], np.ndarray]


def allocate_in_process(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.empty(shape, dtype=dtype)


@dataclass(frozen=True)
class TrainingDesign:
    """The input matrix of a training window, which every target shares: the seed fixes the horizons.

    ``for_target`` adds one target's labels. Building the design once for all of a window's targets
    saves the matrix's construction (and its weather) for every target after the first.
    """

    features: np.ndarray        # float32, rows x len(feature_names)
    target_rows: np.ndarray     # panel row of each row's target hour and cell
    target_hours: np.ndarray    # int64 hours since 1970-01-01 UTC
    feature_names: list[str]

    def for_target(self, panel: pl.DataFrame, target: str) -> TrainingSet:
        check_label(panel, target)
        counts = panel[label_column(target)].to_numpy()
        labels = (counts[self.target_rows] > 0).astype(np.int8)
        logger.info("training set for %s: %d rows, %d positives (base rate %.5f)",
                    target, labels.size, int(labels.sum()), labels.mean() if labels.size else 0.0)
        return TrainingSet(self.features, labels, self.target_hours, self.feature_names)


def build_training_design(panel: pl.DataFrame | PanelColumns, n_cells: int, horizon_hours: int,
                          rng: np.random.Generator, weather_inputs: WeatherInputs | None = None,
                          weather: TargetWeather | None = None,
                          allocate: Allocate = allocate_in_process) -> TrainingDesign:
    """Draw one horizon per (cut-off hour, cell) row and build the rows' inputs, without labels.

    ``panel`` is a frame, or a ``PanelColumns`` reader from which the state columns are read
    ``STATE_COLUMN_GROUP`` at a time, so that the whole panel is never in memory next to the
    design. ``allocate(shape, dtype)`` returns the design's matrix, for example in shared memory
    (``ml.shared_arrays.SharedArrays.empty``) so that the training workers read it without a copy.
    """
    source = FramePanel(panel) if isinstance(panel, pl.DataFrame) else panel
    if source.height == 0 or source.height % n_cells:
        raise ValueError(f"feature panel has {source.height} rows, not a whole number of hours "
                         f"for {n_cells} cells; rebuild the features for the training window")
    n_hours = source.height // n_cells
    state_names = state_columns(source.columns)
    if weather_inputs is not None:
        state_names = weather_inputs.state_columns(state_names)
    hours = source.read(["hour"])["hour"].dt.epoch("s").to_numpy().reshape(n_hours, n_cells)[:, 0] // 3600

    horizons = rng.integers(1, horizon_hours + 1, size=(n_hours, n_cells))
    cutoff_index = np.repeat(np.arange(n_hours)[:, None], n_cells, axis=1)
    target_index = cutoff_index + horizons - 1
    keep = target_index < n_hours
    cell_index = np.broadcast_to(np.arange(n_cells), (n_hours, n_cells))
    cells, targets = cell_index[keep], target_index[keep]
    cutoff_rows = cutoff_index[keep] * n_cells + cells
    target_rows = targets * n_cells + cells

    # The matrix is filled column by column so that no float32 copy of the whole panel is made.
    names = model_inputs(state_names, weather_inputs)
    features = allocate((cutoff_rows.size, len(names)), np.float32)
    for first in range(0, len(state_names), STATE_COLUMN_GROUP):
        group = state_names[first:first + STATE_COLUMN_GROUP]
        frame = source.read(group)
        for position, name in enumerate(group, start=first):
            features[:, position] = frame[name].to_numpy()[cutoff_rows]
        del frame

    calendar_frame = source.read(list(CALENDAR_COLUMNS))
    calendar = [calendar_frame[name].cast(pl.Float32).to_numpy()[target_rows] for name in CALENDAR_COLUMNS]
    del calendar_frame
    calendar_end = len(state_names) + len(TARGET_COLUMNS)
    features[:, len(state_names):calendar_end] = target_calendar_matrix(*calendar)
    del calendar
    # The weather columns are copied one by one: stacking them first would add two matrices of their size.
    for position, values in enumerate(target_weather_columns(weather_inputs, weather, hours[cutoff_index[keep]],
                                                             horizons[keep]), start=calendar_end):
        features[:, position] = values
    features[:, -1] = horizons[keep]

    logger.info("training inputs: %d rows from %d hours x %d cells, %d columns",
                cutoff_rows.size, n_hours, n_cells, len(names))
    return TrainingDesign(features, target_rows, hours[targets].astype(np.int64), names)


def build_scoring_frame(cutoff_rows: pl.DataFrame, horizon_hours: int, time_zone: str,
                        holiday_country: str, holiday_subdivision: str | None,
                        feature_names: list[str] | None = None, weather_inputs: WeatherInputs | None = None,
                        weather: TargetWeather | None = None) -> tuple[pl.DataFrame, np.ndarray]:
    """Expand feature rows at cut-off hours into one row per (issued_at, cell, horizon).

    Returns the key frame (issued_at, cell_id, hour, horizon_hours) and the float32 input matrix.
    ``feature_names`` is the column order a trained model expects (its training set's
    ``feature_names``); without it, the order is ``model_inputs`` of the rows' state columns.
    ``weather_inputs`` and ``weather`` are the model's weather mode and the target-hour weather,
    as in ``build_training_set``.
    """
    keys, blocks = build_scoring_blocks(cutoff_rows, horizon_hours, time_zone, holiday_country,
                                        holiday_subdivision, feature_names, weather_inputs, weather)
    return keys, blocks.dense()


def build_scoring_blocks(cutoff_rows: pl.DataFrame, horizon_hours: int, time_zone: str,
                         holiday_country: str, holiday_subdivision: str | None,
                         feature_names: list[str] | None = None, weather_inputs: WeatherInputs | None = None,
                         weather: TargetWeather | None = None) -> tuple[pl.DataFrame, BlockRows]:
    """``build_scoring_frame`` with the input matrix kept in two blocks (``ml.block_rows.BlockRows``).

    The state block has one row per cut-off row. The target block (target-hour calendar and
    weather, then the horizon) has one row per (distinct issue hour, horizon), which all cells share.
    """
    state_names = state_columns(cutoff_rows.columns)
    if weather_inputs is not None:
        state_names = weather_inputs.state_columns(state_names)
    expected = model_inputs(state_names, weather_inputs)
    if feature_names is not None and feature_names != expected:
        missing = [name for name in feature_names if name not in expected]
        extra = [name for name in expected if name not in feature_names]
        raise ValueError(f"the model was trained on other features than the feature rows hold "
                         f"(model only: {missing}; rows only: {extra}); retrain the ensemble on "
                         f"features built by this version, or rebuild the features")
    n_rows = cutoff_rows.height
    horizons = np.tile(np.arange(1, horizon_hours + 1), n_rows)
    row_index = np.repeat(np.arange(n_rows), horizon_hours)

    issued_at = cutoff_rows["hour"].gather(row_index)
    keys = pl.DataFrame({
        "issued_at": issued_at,
        "cell_id": cutoff_rows["cell_id"].gather(row_index),
        "horizon_hours": horizons.astype(np.int16),
    }).with_columns((pl.col("issued_at") + pl.duration(hours=pl.col("horizon_hours") - 1)).alias("hour"))

    issue_hours = cutoff_rows["hour"].unique().sort()
    issue_index = np.searchsorted(epoch_hours(issue_hours), epoch_hours(cutoff_rows["hour"]))
    target = target_block(issue_hours, horizon_hours, time_zone, holiday_country, holiday_subdivision,
                          weather_inputs, weather)

    state = np.column_stack([cutoff_rows[name].cast(pl.Float32).to_numpy() for name in state_names]
                            ).astype(np.float32, copy=False)
    blocks = BlockRows(state=state, issue_index=issue_index, target=target, horizons=horizon_hours)
    return keys.select("issued_at", "cell_id", "hour", "horizon_hours"), blocks


def target_block(issue_hours: pl.Series, horizon_hours: int, time_zone: str, holiday_country: str,
                 holiday_subdivision: str | None, weather_inputs: WeatherInputs | None,
                 weather: TargetWeather | None) -> np.ndarray:
    """Build the target-hour inputs of every (issue hour, horizon): calendar, weather as known at the issue hour, horizon.

    Row ``i * horizon_hours + k - 1`` is issue hour ``issue_hours[i]`` at horizon ``k``.
    """
    horizons = np.tile(np.arange(1, horizon_hours + 1), issue_hours.len())
    issued_at = issue_hours.gather(np.repeat(np.arange(issue_hours.len()), horizon_hours))
    pairs = pl.DataFrame({"issued_at": issued_at, "horizon_hours": horizons}).with_columns(
        (pl.col("issued_at") + pl.duration(hours=pl.col("horizon_hours") - 1)).alias("hour"))

    distinct_targets = pairs["hour"].unique().sort()
    calendar = calendar_features(distinct_targets, time_zone, holiday_country, holiday_subdivision)
    target_calendar = pairs.select("hour").join(calendar, on="hour", how="left", maintain_order="left")
    calendar_matrix = target_calendar_matrix(
        *(target_calendar[name].cast(pl.Float32).to_numpy() for name in
          ("local_hour", "day_of_week", "month", "is_holiday")))
    weather_matrix = target_weather_matrix(weather_inputs, weather, epoch_hours(issued_at), horizons)
    return np.column_stack([calendar_matrix, weather_matrix, horizons.astype(np.float32)]).astype(np.float32)
