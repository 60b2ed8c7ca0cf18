"""The feature registry: every column of the hourly feature panel, its definition and its missing-value policy.

A panel row describes cell ``c`` at the START of UTC hour ``h``: every input uses only events and
observations before ``h``. The registry is the one place where a feature is defined. Its
``missing`` policy states what happens when the value cannot be known. Either it is never missing
(and the definition explains why), or the feature gets an indicator column ``<name>_missing``,
true where the value was imputed, and a stated imputation. No feature is silently zero.

The families follow the earlier tool's inputs and the near-repeat literature:
- calendar terms, with holidays from the ``holidays`` package;
- weather levels of the last complete hour, temperature changes over 1, 2 and 3 days and 1 and 2
  weeks, and precipitation history (weather and crime: Cohn 1990, "Weather and crime", British
  Journal of Criminology 30(1), 51-64);
- lagged counts per crime category and target group in the cell over 1, 2, 3 and 7 days and 4
  weeks, the same for the cell's neighbours, and the time since the last event in the cell
  (near-repeat victimisation: Johnson & Bowers 2004, "The burglary as clue to the future",
  European Journal of Criminology 1(2), 237-255);
- 311 requests per type on earlier local days only (disorder as a crime correlate: Wilson &
  Kelling 1982, "Broken Windows", The Atlantic Monthly);
- cell attributes: area, population, and the number of neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

KEY_COLUMNS = ("cell_id", "hour")
CALENDAR_COLUMNS = ("local_hour", "day_of_week", "month", "is_holiday")
LABEL_PREFIX = "label_"
MISSING_SUFFIX = "_missing"

CRIME_LAG_DAYS = (1, 2, 3, 7, 28)
TEMPERATURE_CHANGE_DAYS = (1, 2, 3, 7, 14)
PRECIPITATION_HISTORY_DAYS = (1, 3, 7)
REQUEST_LAG_DAYS = (1, 7)
HOURS_SINCE_CAP = 28 * 24
PRECIPITATION_SINCE_CAP = 14 * 24

# Imputed weather values: the rough annual means of a mid-latitude US city. The indicator column
# marks the value as imputed, so the constant only needs to be plausible.
WEATHER_IMPUTATION = {"temperature_f": 50.0, "precipitation_in": 0.0, "relative_humidity": 70.0,
                      "wind_speed_mph": 10.0}
WEATHER_LEVELS = tuple(WEATHER_IMPUTATION)


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: name, family, storage type, definition and missing-value policy.

    ``impute`` is None for a feature that is never missing. Otherwise the panel carries an
    indicator column ``<name>_missing`` and, where it is true, the value ``impute``: a number, or a
    rule in words (``"median"``: the median over cells with a known value).
    """

    name: str
    family: str
    dtype: pl.DataType
    definition: str
    impute: float | str | None = None

    @property
    def indicator(self) -> str | None:
        return f"{self.name}{MISSING_SUFFIX}" if self.impute is not None else None


@dataclass(frozen=True)
class FeatureLayout:
    """Contents of a jurisdiction's panel: its targets, tracked crime groups and 311 request types."""

    targets: tuple[str, ...]
    groups: tuple[str, ...]
    categories: tuple[str, ...]
    request_types: tuple[str, ...]
    data_start: date

    def __post_init__(self) -> None:
        untracked = [target for target in self.targets if target not in self.groups]
        if untracked:
            raise ValueError(f"targets {untracked} are not among the tracked crime groups {list(self.groups)}")
        if not self.targets:
            raise ValueError("a feature layout needs at least one target")


def label_column(target: str) -> str:
    """Name of the column that counts the target's incidents in the row's own hour."""
    return f"{LABEL_PREFIX}{target}"


def state_columns(columns: list[str]) -> list[str]:
    """Return the model inputs among a panel's columns: all but keys, calendar and labels, in order."""
    excluded = set(KEY_COLUMNS) | set(CALENDAR_COLUMNS)
    return [name for name in columns if name not in excluded and not name.startswith(LABEL_PREFIX)]


def crime_specs(layout: FeatureLayout) -> list[FeatureSpec]:
    specs = []
    for group in layout.groups:
        for days in CRIME_LAG_DAYS:
            specs.append(FeatureSpec(
                f"{group}_{days}d", "crime", pl.Int16,
                f"{group} incidents in the cell in the {days * 24} hours before the hour (distinct "
                f"case numbers; a count over complete data, never missing)"))
    specs.append(FeatureSpec(
        "all_crime_7d", "crime", pl.Int32,
        "incidents of every category, unmapped codes included, in the cell in the 168 hours before "
        "the hour"))
    for target in layout.targets:
        specs.append(FeatureSpec(
            f"hours_since_{target}", "near_repeat", pl.Float32,
            f"hours from the cell's last {target} incident before the hour to the hour's start, "
            f"capped at {HOURS_SINCE_CAP} (no incident in four weeks reads as the cap)"))
    specs.append(FeatureSpec(
        "history_incomplete", "crime", pl.Boolean,
        "true when the four-week lookback reaches before the jurisdiction's data_start, so lagged "
        "counts cover less than their window"))
    return specs


def neighbour_specs(layout: FeatureLayout) -> list[FeatureSpec]:
    return [
        FeatureSpec(f"nbr_{target}_{days}d", "neighbours", pl.Float32,
                    f"mean over the cell's adjacent cells (marts.dim_cell_neighbours) of their "
                    f"{target} incidents in the {days * 24} hours before the hour; imputed 0 for a "
                    f"cell with no neighbours", impute=0.0)
        for target in layout.targets for days in CRIME_LAG_DAYS
    ]


def weather_specs() -> list[FeatureSpec]:
    specs = [
        FeatureSpec(name, "weather", pl.Float32,
                    f"{name} of the hour before (the last complete hour, marts.fct_hourly_weather); "
                    f"imputed {value} where that hour has no observation", impute=value)
        for name, value in WEATHER_IMPUTATION.items()
    ]
    for days in TEMPERATURE_CHANGE_DAYS:
        specs.append(FeatureSpec(
            f"temperature_change_{days}d", "weather_change", pl.Float32,
            f"temperature of the hour before minus the temperature {days * 24} hours earlier (°F); "
            f"imputed 0 where either is unobserved", impute=0.0))
    for days in PRECIPITATION_HISTORY_DAYS:
        specs.append(FeatureSpec(
            f"precipitation_hours_{days}d", "precipitation_history", pl.Float32,
            f"hours with precipitation (a trace counts) among the {days * 24} hours before the hour, "
            f"scaled up from the observed hours to the whole window; missing when fewer than half "
            f"of the hours are observed, then imputed 0", impute=0.0))
    specs.append(FeatureSpec(
        "hours_since_precipitation", "precipitation_history", pl.Float32,
        f"hours from the last observed hour with precipitation (a trace counts) to the hour's start, "
        f"capped at {PRECIPITATION_SINCE_CAP}; missing when no hour in that span is observed, then "
        f"imputed {PRECIPITATION_SINCE_CAP}", impute=float(PRECIPITATION_SINCE_CAP)))
    return specs


def request_specs(layout: FeatureLayout) -> list[FeatureSpec]:
    specs = []
    for request_type in layout.request_types:
        for days in REQUEST_LAG_DAYS:
            specs.append(FeatureSpec(
                f"requests_{request_type}_{days}d", "requests", pl.Int16,
                f"{request_type} 311 requests created in the cell on the {days} local days before "
                f"the hour's local date (never the same day, whose count is not known until it "
                f"ends); missing where one of those days has no 311 request anywhere in the city "
                f"(no data, not a quiet day); the value is then the sum over the other days",
                impute="sum over observed days"))
    return specs


def cell_specs() -> list[FeatureSpec]:
    return [
        FeatureSpec("area_km2", "cell", pl.Float32, "the cell's area in km² (equal-area projection)"),
        FeatureSpec("population", "cell", pl.Float32,
                    "residents of the cell from the jurisdiction's demographics; imputed with the "
                    "median over cells where it is known", impute="median"),
        FeatureSpec("neighbour_count", "cell", pl.Int16, "number of cells adjacent to the cell (queen contiguity, marts.dim_cell_neighbours)"),
    ]


def feature_specs(layout: FeatureLayout) -> list[FeatureSpec]:
    """List every model input of a jurisdiction's panel in column order (indicators follow their feature)."""
    return [*crime_specs(layout), *neighbour_specs(layout), *weather_specs(), *request_specs(layout),
            *cell_specs()]


def panel_schema(layout: FeatureLayout) -> dict[str, pl.DataType]:
    """Column names and types of the stored panel: keys, calendar, inputs with indicators, labels."""
    schema: dict[str, pl.DataType] = {
        "cell_id": pl.String, "hour": pl.Datetime("us", "UTC"), "local_hour": pl.Int8,
        "day_of_week": pl.Int8, "month": pl.Int8, "is_holiday": pl.Boolean,
    }
    for spec in feature_specs(layout):
        schema[spec.name] = spec.dtype
        if spec.indicator:
            schema[spec.indicator] = pl.Boolean
    for target in layout.targets:
        schema[label_column(target)] = pl.Int16
    return schema


def registry_markdown(layout: FeatureLayout) -> str:
    """Render the registry as a Markdown table, for docs and model cards."""
    lines = ["| feature | family | type | definition | when missing |", "|---|---|---|---|---|"]
    for spec in feature_specs(layout):
        policy = "never missing" if spec.impute is None else f"`{spec.indicator}` + impute {spec.impute}"
        lines.append(f"| `{spec.name}` | {spec.family} | {spec.dtype} | {spec.definition} | {policy} |")
    return "\n".join(lines)
