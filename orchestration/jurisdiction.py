"""Jurisdiction and run configuration, read from YAML.

A jurisdiction file (``orchestration/jurisdictions/<name>.yaml``) describes how one city's public
data is laid out: file patterns, the column names its portal uses, its time zone, its bounding box and
its spatial unit. A run file names a jurisdiction, a folder of extracts and the train, score and
evaluate windows. Adding a city means adding a YAML file, not code.
"""

from __future__ import annotations

import copy
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ml.target_weather import WeatherInputs
from ml.weather_forecast import WeatherStandIn
from orchestration.bias_config import BiasConfig, DeploymentSettings, ReleaseSettings, SimulationSettings
from orchestration.operations_config import (
    ExecutorSettings,
    FreshnessSettings,
    NotificationSettings,
    ScheduleSettings,
    reject_secret_values,
)

JURISDICTIONS_DIR = Path(__file__).parent / "jurisdictions"
RUNS_DIR = Path(__file__).parent / "runs"

# Canonical crime-incident fields: every source's columns are renamed to these (the Socrata API
# vocabulary of the Chicago portal). Names, addresses and narrative text are never kept.
# ``offense_code`` is the code that ``offense_codes`` maps to categories: the FBI code in Chicago,
# the UCR general code in Philadelphia. ``updated_on`` is optional because some portals publish
# no revision time; staging then keeps the version that appears last in the extracts.
# ``arrest`` is the portal's flag that the record led to an arrest: "true" or "false" in Chicago's
# export, a boolean in its API. It is a record attribute that the arrest audit reads, and it stays
# null for a portal without it (Philadelphia).
REQUIRED_CRIME_FIELDS = ("id", "date", "offense_code", "latitude", "longitude")
OPTIONAL_CRIME_FIELDS = ("updated_on", "case_number", "iucr", "primary_type", "location_description",
                         "beat", "district", "community_area", "arrest")
CATEGORY_NAME = r"^[a-z][a-z0-9_]*$"

# Column names of portal exports, API datasets and weather or census files. Chicago's export has
# names with spaces ("Primary Type"), so spaces are legal. Quotes, semicolons, backslashes and line
# breaks are rejected, because SQL and dbt models built from the configuration cannot quote them safely.
SOURCE_COLUMN_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]*")
# Characters that could end a SQL string literal or statement early. Timestamp formats and station
# ids reach dbt models as quoted text, so they must not contain any of them.
SQL_UNSAFE_CHARACTERS = re.compile(r"['\";\\\x00-\x1f\x7f]")


def check_source_column(name: str) -> str:
    """Return ``name`` when it is a legal column name, else raise naming the rule."""
    if not SOURCE_COLUMN_PATTERN.fullmatch(name):
        raise ValueError(f"invalid column name {name!r}: a column name must start with a letter or "
                         f"underscore and contain only letters, digits, underscores and spaces "
                         f"(pattern {SOURCE_COLUMN_PATTERN.pattern}). Fix the name in the jurisdiction file")
    return name


def check_sql_safe_text(value: str) -> str:
    """Return ``value`` when it contains no quote, semicolon, backslash or control character."""
    found = SQL_UNSAFE_CHARACTERS.search(value)
    if found:
        raise ValueError(f"invalid value {value!r}: it contains the character {found.group()!r}, and "
                         f"quotes, semicolons, backslashes and control characters such as line breaks are "
                         f"not allowed here. Remove it from the jurisdiction file")
    return value


SourceColumn = Annotated[str, AfterValidator(check_source_column)]
SqlSafeText = Annotated[str, AfterValidator(check_sql_safe_text)]


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid."""


class BoundingBox(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float

    @model_validator(mode="after")
    def check_order(self) -> "BoundingBox":
        if not (self.min_lat < self.max_lat and self.min_lon < self.max_lon):
            raise ValueError(f"bounding box minimums must be below maximums, got {self}")
        return self


def check_crime_columns(columns: dict[str, str], key: str) -> None:
    """Raise when a crime column mapping lacks a required field or maps an unknown one."""
    missing = [name for name in REQUIRED_CRIME_FIELDS if name not in columns]
    unknown = [name for name in columns if name not in REQUIRED_CRIME_FIELDS + OPTIONAL_CRIME_FIELDS]
    if missing:
        raise ValueError(f"{key} has no mapping for required fields {missing}")
    if unknown:
        raise ValueError(
            f"{key} maps unknown fields {unknown}; allowed fields are "
            f"{list(REQUIRED_CRIME_FIELDS + OPTIONAL_CRIME_FIELDS)} (free text is never kept)"
        )


class CrimeApiConfig(BaseModel):
    """A Socrata dataset that serves the same crime records as the extracts, for incremental pulls."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="portal root, such as https://data.cityofchicago.org")
    dataset_id: str = Field(description="Socrata dataset identifier, such as ijzp-q8t2")
    columns: dict[str, SourceColumn] = Field(description="canonical field -> field name in the API")
    timestamp_format: SqlSafeText = Field(
        default="%Y-%m-%dT%H:%M:%S%.f",
        description="polars (chrono) format of the API's floating timestamps, local wall-clock times")
    page_size: int = Field(default=50_000, ge=1, description="rows per request ($limit)")
    lookback_days: int = Field(
        default=30, ge=0,
        description="days before the stored watermark that every pull reads again, because "
                    "portals revise old records")

    @model_validator(mode="after")
    def check_columns(self) -> "CrimeApiConfig":
        check_crime_columns(self.columns, "crimes.api.columns")
        if "updated_on" not in self.columns:
            raise ValueError("crimes.api.columns has no mapping for updated_on; incremental pulls "
                             "need the dataset's update time (on Socrata usually updated_on)")
        return self


class CrimeSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: str = Field(description="glob of crime extracts, relative to the extracts folder")
    columns: dict[str, SourceColumn] = Field(description="canonical field -> column name in the extract")
    timestamp_format: SqlSafeText = Field(
        description="polars (chrono) strptime format of the `date` and `updated_on` values")
    time_basis: Literal["local", "utc"] = Field(
        default="local",
        description="`local`: the extract's times are wall-clock times in the jurisdiction's zone "
                    "(Chicago's Date); `utc`: they are UTC instants, such as Philadelphia's "
                    "dispatch_date_time, and carry no daylight-saving ambiguity")
    api: CrimeApiConfig | None = Field(default=None, description="Socrata dataset for `source: socrata` runs")

    @model_validator(mode="after")
    def check_columns(self) -> "CrimeSourceConfig":
        check_crime_columns(self.columns, "crimes.columns")
        return self


class OffenseCode(BaseModel):
    """Meaning of one offense code: its name, its category and the target groups it belongs to."""

    model_config = ConfigDict(extra="forbid")

    offense: str = Field(description="the code's name, such as 'Robbery'")
    category: str = Field(pattern=CATEGORY_NAME,
                          description="broad category, such as violent, property or other")
    groups: list[str] = Field(
        default_factory=list,
        description="narrower target groups, such as robbery or burglary; a code may be in several")
    arrest_driven: bool = Field(
        default=False,
        description="true for offenses recorded mostly when police stop someone (drugs, weapons, gambling, "
                    "prostitution, public order): their records follow patrols more than offending, so a "
                    "target that contains them needs bias.allow_arrest_driven_targets")

    @model_validator(mode="after")
    def check_groups(self) -> "OffenseCode":
        bad = [group for group in self.groups if not re.match(CATEGORY_NAME, group)]
        if bad:
            raise ValueError(f"group names must be lower-case identifiers such as 'robbery', got {bad}")
        return self


# Canonical weather fields. Each layout maps some of them to its columns; station, date and
# report_type are required, and an unmapped value field stays NULL. ``metar_remarks`` is read only
# to extract the METAR time group (``ddhhmmZ``); the remark text itself is never stored.
WEATHER_FIELDS = ("station", "date", "report_type", "temperature_f", "relative_humidity",
                  "wind_speed_mph", "wind_direction", "precipitation_in", "daily_precipitation_in",
                  "metar_remarks")
REQUIRED_WEATHER_FIELDS = ("station", "date", "report_type")
# Report classes, in staging's order of preference for an hour: routine reports (METAR, FM-15),
# then specials (SPECI, FM-16), then synoptic reports (FM-12). Summaries (SOD, SOM) give no hourly values.
WeatherReportClass = Literal["routine", "special", "synoptic", "summary"]


class WeatherStationConfig(BaseModel):
    """One weather station. The order of ``weather.stations`` is the fallback order."""

    model_config = ConfigDict(extra="forbid")

    id: SqlSafeText = Field(min_length=1, description="station id stored in the warehouse")
    name: str = Field(min_length=1)
    utc_offset_hours: float = Field(
        ge=-12, le=14,
        description="fixed UTC offset of the station's Local Standard Time; LCD times never use DST")
    aliases: list[SqlSafeText] = Field(
        default=[], description="other spellings of the id in the files, such as WBAN:94846 or 94846")
    noaa_id: SqlSafeText | None = Field(
        default=None, description="id in NOAA's Access Data Service (11 digits, USAF + WBAN); "
                                  "stations without one are not pulled live")

    def spellings(self) -> set[str]:
        """Return the ways files and the live service write this station's id."""
        return {self.id, *self.aliases} | ({self.noaa_id} if self.noaa_id else set())

    @model_validator(mode="after")
    def check_offset(self) -> "WeatherStationConfig":
        if (self.utc_offset_hours * 60) % 1:
            raise ValueError(f"station {self.id}: utc_offset_hours must be a whole number of minutes, "
                             f"got {self.utc_offset_hours}")
        return self


class WeatherLayoutConfig(BaseModel):
    """The columns and conventions of one kind of weather file (LCD, QCLCD, ...)."""

    model_config = ConfigDict(extra="forbid")

    timestamp_format: SqlSafeText = Field(description="polars (chrono) strptime format of the LST date column")
    columns: dict[str, SourceColumn] = Field(description="canonical field -> column name in the file")
    report_types: dict[str, WeatherReportClass] = Field(
        description="report type as written in the file (compared after trimming) -> class")
    trace_values: list[str] = Field(
        default=["T"], description="precipitation values that mean a trace; stored as 0.0 with a flag")
    blank_precipitation: Literal["missing", "zero"] = Field(
        default="missing",
        description="what a blank precipitation value of a routine report means: missing (NULL), "
                    "or zero for files that leave dry hours blank")

    @model_validator(mode="after")
    def check_layout(self) -> "WeatherLayoutConfig":
        missing = [name for name in REQUIRED_WEATHER_FIELDS if name not in self.columns]
        unknown = [name for name in self.columns if name not in WEATHER_FIELDS]
        if missing:
            raise ValueError(f"columns has no mapping for required fields {missing}")
        if unknown:
            raise ValueError(f"columns maps unknown fields {unknown}; allowed fields are {list(WEATHER_FIELDS)}")
        if "routine" not in self.report_types.values():
            raise ValueError(f"report_types {self.report_types} names no routine report type, so "
                             f"no hour would get a value; map the hourly METAR type (FM-15) to routine")
        return self


class WeatherFilesConfig(BaseModel):
    """A glob of local weather files, relative to the extracts folder, and their layout."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    layout: str


class WeatherApiConfig(BaseModel):
    """NOAA NCEI's Access Data Service, for runs that pull weather live."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(default="https://www.ncei.noaa.gov", description="service root")
    dataset: str = "local-climatological-data"
    layout: str = Field(description="layout of the service's CSV output")
    start_date: date = Field(description="first LST date pulled for a station without a watermark")
    end_date: date | None = Field(default=None, description="last LST date pulled; None means today (UTC)")
    lookback_days: int = Field(
        default=3, ge=0,
        description="days before a station's watermark that every pull reads again, because NOAA "
                    "revises recent reports")
    timeout_seconds: float = Field(default=60.0, gt=0, description="per socket operation")
    max_retries: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=2.0, ge=0, description="first wait; doubles per retry")
    user_agent: str = "Riskcast/0.1 (hourly weather ingest)"


class WeatherSourceConfig(BaseModel):
    """Weather stations in fallback order, the file layouts, local files and the live service."""

    model_config = ConfigDict(extra="forbid")

    stations: list[WeatherStationConfig] = Field(min_length=1)
    layouts: dict[str, WeatherLayoutConfig] = Field(min_length=1)
    files: list[WeatherFilesConfig] = []
    api: WeatherApiConfig | None = None

    @model_validator(mode="after")
    def check_references(self) -> "WeatherSourceConfig":
        spellings = [spelling for station in self.stations for spelling in station.spellings()]
        repeated = sorted({spelling for spelling in spellings if spellings.count(spelling) > 1})
        if repeated:
            raise ValueError(f"weather.stations: two stations share the ids or aliases {repeated}")
        if not self.files and self.api is None:
            raise ValueError("weather has neither files nor api, so no observation can be read; "
                             "add a files entry (pattern and layout) or an api block")
        used = [(f"files[{index}]", entry.layout) for index, entry in enumerate(self.files)]
        if self.api is not None:
            used.append(("api", self.api.layout))
        for place, layout in used:
            if layout not in self.layouts:
                raise ValueError(f"weather.{place}.layout {layout!r} is not defined; "
                                 f"defined layouts are {sorted(self.layouts)}")
        return self

    def station_ids(self) -> dict[str, str]:
        """Return every spelling of a station id (id, aliases, noaa_id) mapped to the station's id."""
        return {spelling: station.id for station in self.stations for spelling in station.spellings()}


class ForecastPointConfig(BaseModel):
    """The point whose hourly forecast is fetched, in decimal degrees (WGS 84)."""

    model_config = ConfigDict(extra="forbid")

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class ForecastApiConfig(BaseModel):
    """The US National Weather Service API, for runs that fetch forecasts live."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(default="https://api.weather.gov", description="API root")
    user_agent: str = Field(
        default="Riskcast/0.1 (weather forecast archive)", min_length=1,
        description="User-Agent header; NWS requires one that names the application")
    contact: str | None = Field(
        default=None, description="e-mail address or URL that NWS can reach, added to the User-Agent")
    timeout_seconds: float = Field(default=30.0, gt=0, description="per socket operation")
    max_retries: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=2.0, ge=0, description="first wait; doubles per retry")
    max_backoff_seconds: float = Field(default=60.0, ge=0,
                                       description="maximum wait between retries, Retry-After included")
    expected_hours: int = Field(
        default=156, ge=1,
        description="hours a full hourly forecast covers; fewer rows count as missing hours")

    @model_validator(mode="after")
    def check_backoff(self) -> "ForecastApiConfig":
        if self.max_backoff_seconds < self.backoff_seconds:
            raise ValueError(f"forecast.api.max_backoff_seconds ({self.max_backoff_seconds}) is below "
                             f"backoff_seconds ({self.backoff_seconds}). Raise max_backoff_seconds or "
                             f"lower backoff_seconds")
        return self

    def user_agent_header(self) -> str:
        if self.contact is None:
            return self.user_agent
        return f"{self.user_agent} ({self.contact})"


class ForecastConfig(BaseModel):
    """The point of the hourly weather forecast and the API that serves it."""

    model_config = ConfigDict(extra="forbid")

    point: ForecastPointConfig
    api: ForecastApiConfig = Field(default_factory=ForecastApiConfig)


# 311 service requests. Every dataset's columns are renamed to these canonical fields. The
# address, description and every other free-text column of a 311 export are never kept.
REQUIRED_REQUEST_FIELDS = ("id", "created_on", "latitude", "longitude")
OPTIONAL_REQUEST_FIELDS = ("status", "closed_on", "updated_on", "request_type", "duplicate")
REQUEST_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
# strftime directives that read a time of day. A format without any of them reads dates only.
TIME_OF_DAY_DIRECTIVES = ("%H", "%I", "%M", "%S", "%T", "%R", "%X", "%c", "%r", "%p")


def format_has_time_of_day(timestamp_format: str) -> bool:
    return any(directive in timestamp_format for directive in TIME_OF_DAY_DIRECTIVES)


def check_request_columns(columns: dict[str, str], key: str) -> None:
    """Raise when a 311 column mapping lacks a required field or maps an unknown one."""
    missing = [name for name in REQUIRED_REQUEST_FIELDS if name not in columns]
    allowed = REQUIRED_REQUEST_FIELDS + OPTIONAL_REQUEST_FIELDS
    unknown = [name for name in columns if name not in allowed]
    if missing:
        raise ValueError(f"{key} has no mapping for required fields {missing}")
    if unknown:
        raise ValueError(f"{key} maps unknown fields {unknown}. Allowed fields are {list(allowed)}, "
                         f"because addresses and free text are never kept")


def check_request_type_label(label: str, key: str) -> None:
    if not REQUEST_TYPE_PATTERN.match(label):
        raise ValueError(f"{key} {label!r} is not a valid request type label. Use lower-case "
                         f"letters, digits and underscores, such as street_lights_out")


class ServiceRequestApiConfig(BaseModel):
    """A Socrata dataset that serves the same 311 requests as the extracts, for incremental pulls."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="portal root, such as https://data.cityofchicago.org")
    dataset_id: str = Field(description="Socrata dataset identifier, such as me59-5fac")
    columns: dict[str, SourceColumn] = Field(description="canonical field -> field name in the API")
    timestamp_format: SqlSafeText = Field(
        default="%Y-%m-%dT%H:%M:%S%.f",
        description="polars (chrono) format of the API's floating timestamps, local wall-clock times")
    page_size: int = Field(default=50_000, ge=1, description="rows per request ($limit)")
    lookback_days: int = Field(
        default=30, ge=0,
        description="days before the stored watermark that every pull reads again, because "
                    "portals revise old records")

    @model_validator(mode="after")
    def check_columns(self) -> "ServiceRequestApiConfig":
        check_request_columns(self.columns, "api.columns")
        return self


class ServiceRequestSourceConfig(BaseModel):
    """One 311 dataset: a request type (or several, distinguished by a type column) and its layout."""

    model_config = ConfigDict(extra="forbid")

    request_type: str = Field(
        description="label of the dataset's requests, such as sanitation_code. In a dataset that "
                    "maps a request_type column, it labels the rows whose type is not in type_labels")
    files: str = Field(description="glob of extracts (CSV, CSV.gz, JSON or Parquet), relative to "
                                   "the extracts folder")
    columns: dict[str, SourceColumn] = Field(description="canonical field -> column name in the extract")
    timestamp_format: SqlSafeText = Field(description="strptime format of the local created, closed and "
                                              "updated times, such as %Y-%m-%d")
    date_only: bool | None = Field(
        default=None,
        description="true when created times carry no time of day; by default true exactly when "
                    "timestamp_format reads no time of day")
    type_labels: dict[str, str] = Field(
        default_factory=dict,
        description="value of the request_type column -> request type label, for datasets that mix types")
    duplicate_statuses: list[str] = Field(
        default_factory=lambda: ["Completed - Dup", "Open - Dup"],
        description="status values that mark a request as a duplicate of an earlier one")
    api: ServiceRequestApiConfig | None = Field(default=None,
                                                description="Socrata dataset for `source: socrata` runs")

    @property
    def creation_is_date_only(self) -> bool:
        if self.date_only is None:
            return not format_has_time_of_day(self.timestamp_format)
        return self.date_only

    @model_validator(mode="after")
    def check_dataset(self) -> "ServiceRequestSourceConfig":
        key = f"service_requests[{self.request_type}]"
        check_request_type_label(self.request_type, f"{key}.request_type")
        check_request_columns(self.columns, f"{key}.columns")
        if self.date_only is False and not format_has_time_of_day(self.timestamp_format):
            raise ValueError(f"{key} sets date_only: false, but timestamp_format "
                             f"{self.timestamp_format!r} reads no time of day. Set date_only: true "
                             f"or add the time to the format")
        if bool(self.type_labels) != ("request_type" in self.columns):
            raise ValueError(f"{key} must map a request_type column and list type_labels together: "
                             f"a dataset that mixes types needs both, a dataset of one type neither")
        for value, label in self.type_labels.items():
            check_request_type_label(label, f"{key}.type_labels[{value!r}]")
        if self.api is not None and ("request_type" in self.columns) != ("request_type" in self.api.columns):
            raise ValueError(f"{key}: columns and api.columns must both map request_type or both "
                             f"leave it out, so that extract and API rows get the same labels")
        return self


def check_service_requests(datasets: list[ServiceRequestSourceConfig]) -> None:
    """Raise when two 311 datasets share a request type label or a Socrata dataset."""
    labels = [dataset.request_type for dataset in datasets]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"service_requests repeats request_type {repeated}. Give each dataset its "
                         f"own label")
    dataset_ids = [dataset.api.dataset_id for dataset in datasets if dataset.api is not None]
    repeated = sorted({dataset_id for dataset_id in dataset_ids if dataset_ids.count(dataset_id) > 1})
    if repeated:
        raise ValueError(f"service_requests pulls Socrata dataset {repeated} more than once. "
                         f"Configure each dataset once and map its request_type column instead")


# Geography: boundary layers, the forecasting cells and demographics.

# The kind of area a boundary layer describes. Each kind except "other" may appear once per jurisdiction,
# because dim_cells has one column per kind for the feature that contains a cell's centroid.
BoundaryKind = Literal["census_tract", "community_area", "police_beat", "police_district",
                       "grid_cell", "other"]
# Counts of people, summed when block groups are aggregated to tracts. nh_ means non-Hispanic
# and "alone" (one race), as in ACS table B03002. "other" is everyone else who is not Hispanic
# (other races and two or more races). When it is not mapped, staging computes it as population
# minus the four groups.
DEMOGRAPHIC_COUNT_FIELDS = ("population", "nh_white", "nh_black", "hispanic", "nh_asian", "other")
# Values per person or per household, averaged with population weights when aggregated.
DEMOGRAPHIC_RATE_FIELDS = ("per_capita_income", "poverty_percent")
DEMOGRAPHIC_FIELDS = DEMOGRAPHIC_COUNT_FIELDS + DEMOGRAPHIC_RATE_FIELDS
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class BoundaryApiConfig(BaseModel):
    """A Socrata dataset that serves a boundary layer as GeoJSON (``/resource/<id>.geojson``).

    A portal dataset may spell properties differently from a downloaded file (Chicago's community
    areas use the shapefile name area_numbe, cut to 10 characters), so each property can be
    overridden here.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="portal root, such as https://data.cityofchicago.org")
    dataset_id: str = Field(description="Socrata dataset identifier, such as 74p9-q2aq")
    page_size: int = Field(default=1000, ge=1, description="features per request ($limit)")
    id_property: str | None = Field(default=None, description="overrides the layer's id_property")
    name_property: str | None = Field(default=None, description="overrides the layer's name_property")
    population_property: str | None = Field(
        default=None, description="overrides the layer's population_property")


class BoundaryLayerConfig(BaseModel):
    """One named layer of polygons, such as census tracts or police beats."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="layer name used in the warehouse, such as tracts")
    kind: BoundaryKind
    file: str | None = Field(default=None, description="GeoJSON FeatureCollection, relative to the extracts folder")
    id_property: str = Field(description="feature property that identifies each feature")
    id_type: Literal["text", "integer"] = Field(
        default="text", description="integer stores 35, 35.0 and '35' alike as '35', while text keeps the value as written")
    name_property: str | None = None
    population_property: str | None = None
    expected_features: int | None = Field(
        default=None, ge=1,
        description="features the layer should have after dissolving (77 community areas, for "
                    "example); the audit warns when the count differs. None skips the comparison")
    dissolve: bool = Field(
        default=False,
        description="merge the features that share an id into one, for example beats into police "
                    "districts; without it a repeated id is an error")
    api: BoundaryApiConfig | None = Field(default=None, description="live source for Socrata runs")

    @model_validator(mode="after")
    def check_source(self) -> "BoundaryLayerConfig":
        if self.file is None and self.api is None:
            raise ValueError(f"boundary layer {self.name!r} needs a file, an api block or both")
        return self


class BoundariesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layers: list[BoundaryLayerConfig] = []
    max_overlap_m2: float = Field(
        default=1000.0, ge=0,
        description="total area, in square meters, that the features of one layer may share "
                    "before the warehouse test fails (digitizing slivers between neighbors)")

    @model_validator(mode="after")
    def check_layers(self) -> "BoundariesConfig":
        names = [layer.name for layer in self.layers]
        repeated_names = sorted({name for name in names if names.count(name) > 1})
        if repeated_names:
            raise ValueError(f"boundary layer names must be unique, repeated: {repeated_names}")
        kinds = [layer.kind for layer in self.layers if layer.kind != "other"]
        repeated_kinds = sorted({kind for kind in kinds if kinds.count(kind) > 1})
        if repeated_kinds:
            raise ValueError(f"at most one boundary layer per kind, repeated: {repeated_kinds}; "
                             f"give the extra layers kind: other")
        return self

    def layer(self, name: str) -> BoundaryLayerConfig:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


class H3GridConfig(BaseModel):
    """An H3 grid (Uber's hexagonal hierarchical index) covering the city."""

    model_config = ConfigDict(extra="forbid")

    resolution: int = Field(
        default=8, ge=0, le=15,
        description="H3 resolution. Resolution 8 has cells of about 0.74 km2 with 0.53 km edges, "
                    "a radius of about three city blocks")
    cover_layer: str | None = Field(
        default=None, description="boundary layer whose union the grid covers; none means the bounding box")
    containment: Literal["overlap", "center"] = Field(
        default="overlap",
        description="overlap keeps every cell that touches the cover, so every point inside it has "
                    "a cell; center keeps the cells whose center lies inside it")


class CellSourceConfig(BaseModel):
    """The forecasting unit: the features of one boundary layer, or an H3 grid."""

    model_config = ConfigDict(extra="forbid")

    spatial_unit: Literal["census_tract", "grid_cell", "h3_cell"]
    layer: str | None = Field(default=None, description="boundary layer whose features are the cells")
    h3: H3GridConfig | None = None

    @model_validator(mode="after")
    def check_unit(self) -> "CellSourceConfig":
        if self.spatial_unit == "h3_cell":
            if self.layer is not None:
                raise ValueError("cells.layer is for boundary-layer cells; an h3_cell grid takes "
                                 "its extent from cells.h3.cover_layer")
            if self.h3 is None:
                self.h3 = H3GridConfig()
        elif self.layer is None or self.h3 is not None:
            raise ValueError(f"spatial_unit {self.spatial_unit} needs cells.layer (the boundary "
                             f"layer of the cells) and no cells.h3 block")
        return self


class DemographicTableConfig(BaseModel):
    """A CSV table of demographic counts or rates, one row per feature of a boundary layer."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    file: str = Field(description="CSV file, relative to the extracts folder")
    layer: str = Field(description="boundary layer whose feature ids the rows carry after id_length")
    id_column: str
    id_type: Literal["text", "integer"] = "text"
    id_length: int | None = Field(
        default=None, ge=1,
        description="keep the first N characters of each id and aggregate the rows that share "
                    "them, such as 11 to sum 12-digit block-group GEOIDs into tracts")
    label_rows: int = Field(default=0, ge=0, description="rows after the header to skip, such as "
                                                         "the label row of American FactFinder exports")
    columns: dict[str, SourceColumn] = Field(description="canonical field -> column name in the file")

    @model_validator(mode="after")
    def check_columns(self) -> "DemographicTableConfig":
        unknown = [name for name in self.columns if name not in DEMOGRAPHIC_FIELDS]
        if unknown:
            raise ValueError(f"demographics table {self.name!r} maps unknown fields {unknown}; "
                             f"allowed fields are {list(DEMOGRAPHIC_FIELDS)}")
        if not self.columns:
            raise ValueError(f"demographics table {self.name!r} maps no columns")
        rates = [name for name in DEMOGRAPHIC_RATE_FIELDS if name in self.columns]
        if self.id_length is not None and rates and "population" not in self.columns:
            raise ValueError(f"demographics table {self.name!r} aggregates rows (id_length) but "
                             f"has no population column to weight {rates}; map population too")
        return self


class DemographicsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tables: list[DemographicTableConfig] = []
    counts_layer: str | None = Field(
        default=None,
        description="boundary layer whose population and group counts are spread onto the cells "
                    "in proportion to overlapping area")
    income_layer: str | None = Field(
        default=None,
        description="boundary layer whose per-capita income and poverty a cell takes from the "
                    "feature that contains the cell's centroid, or else overlaps the cell most")

    @model_validator(mode="after")
    def check_tables(self) -> "DemographicsConfig":
        names = [table.name for table in self.tables]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"demographics table names must be unique, repeated: {repeated}")
        # Each field of a layer comes from one table, so the warehouse never has to choose.
        sources: dict[tuple[str, str], str] = {}
        for table in self.tables:
            for field in table.columns:
                earlier = sources.setdefault((table.layer, field), table.name)
                if earlier != table.name:
                    raise ValueError(f"field {field!r} of layer {table.layer!r} is mapped by both "
                                     f"{earlier!r} and {table.name!r}; keep one")
        return self


def check_geography(boundaries: BoundariesConfig, cells: CellSourceConfig,
                    demographics: DemographicsConfig | None) -> None:
    """Raise when a cells or demographics setting names a boundary layer that is not configured."""
    names = [layer.name for layer in boundaries.layers]
    references = {"cells.layer": cells.layer,
                  "cells.h3.cover_layer": cells.h3.cover_layer if cells.h3 else None}
    if demographics is not None:
        references["demographics.counts_layer"] = demographics.counts_layer
        references["demographics.income_layer"] = demographics.income_layer
        for table in demographics.tables:
            references[f"demographics table {table.name!r}"] = table.layer
    for key, name in references.items():
        if name is not None and name not in names:
            raise ValueError(f"{key} names boundary layer {name!r}, but boundaries.layers has only {names}")

    if cells.layer is not None:
        layer = boundaries.layer(cells.layer)
        if layer.kind != cells.spatial_unit:
            raise ValueError(f"cells.spatial_unit is {cells.spatial_unit} but layer {layer.name!r} "
                             f"has kind {layer.kind}; make them match")
        if layer.dissolve:
            raise ValueError(f"the cells layer {layer.name!r} cannot use dissolve: each cell must "
                             f"be one feature with a unique id")


class BeatDistrictRule(BaseModel):
    """How a beat number names its district, for the beat/district consistency check.

    ``leading_digits`` drops the beat's last ``beat_digits`` digits and reads the rest as the
    district number, as in Chicago, where beat 1234 lies in district 12.
    """

    model_config = ConfigDict(extra="forbid")

    rule: Literal["leading_digits"] = "leading_digits"
    beat_digits: int = Field(default=2, ge=1, le=4,
                             description="trailing digits that number the beat inside its district")


# The field ``SourceChange.date`` would shadow the type ``date`` inside its class body.
CalendarDate = date


class SourceChange(BaseModel):
    """A known change of the system that produces a source's records, such as a records-system migration."""

    model_config = ConfigDict(extra="forbid")

    date: CalendarDate = Field(description="first day on which records come from the new system")
    note: str = Field(min_length=1, description="what changed and where this is documented")


class AuditConfig(BaseModel):
    """Thresholds of the data input audit, one per check, with defaults for a large US city.

    Shares are fractions of records (0.05 is 5%). A threshold named ``error_*`` fails its check
    with ERROR severity, which blocks downstream assets; every other threshold fails with WARN.
    Groups (categories, months, areas) with fewer records than the matching ``min_*_records`` are
    measured and reported but not judged, because their shares are too noisy.
    """

    model_config = ConfigDict(extra="forbid")

    # Coordinates as delivered (the blocking row-level suite on staged incidents).
    min_inside_box_share: float = Field(
        default=0.999, gt=0, le=1,
        description="share of staged coordinates, as delivered, that must fall inside the bounding "
                    "box (ERROR). A larger share outside means the source changed, even when the "
                    "located model can repair swapped pairs")
    max_quarantined_share: float = Field(
        default=0.05, ge=0, le=1, description="share of incidents quarantined above which a WARN check fails")

    # Completeness, overall and per category.
    max_missing_coordinates_share: float = Field(
        default=0.05, ge=0, le=1, description="share of records without coordinates (WARN)")
    error_missing_coordinates_share: float = Field(
        default=0.5, ge=0, le=1, description="share of records without coordinates overall (ERROR)")
    max_missing_category_share: float = Field(
        default=0.01, ge=0, le=1, description="share of records without an offense code (WARN)")
    min_category_records: int = Field(
        default=200, ge=1, description="records a category needs before its shares are judged")

    # Time heaping, overall and per category, on the local clock.
    max_midnight_share: float = Field(
        default=0.05, ge=0, le=1,
        description="share of records at exactly 00:00:00 (WARN); a uniform clock puts 1/1440 there")
    max_on_hour_share: float = Field(
        default=0.5, ge=0, le=1,
        description="share of records at minute 0 and second 0 (WARN); a uniform clock puts 1/60 there")
    max_first_of_month_share: float = Field(
        default=0.08, ge=0, le=1,
        description="share of records on the first day of a month (WARN); a uniform calendar puts "
                    "about 1/30 there")

    # Location: outside the cells, swapped pairs, unlocated share per month and per area.
    max_outside_cells_share: float = Field(
        default=0.01, ge=0, le=1,
        description="share of records with coordinates that lie outside every cell after the swap "
                    "repair (WARN)")
    max_swapped_share: float = Field(
        default=0.001, ge=0, le=1,
        description="share of records with latitude and longitude swapped, repaired or not (WARN)")
    max_unlocated_share: float = Field(
        default=0.10, ge=0, le=1,
        description="share of a month's or an area's records that cannot be placed in a cell (WARN)")
    error_unlocated_share: float = Field(
        default=0.5, ge=0, le=1, description="share of a month's records that cannot be placed (ERROR)")
    max_unlocated_share_rise: float = Field(
        default=0.10, ge=0, le=1,
        description="rise of the unlocated share from one month to the next, in share points (WARN)")
    min_month_records: int = Field(default=100, ge=1,
                                   description="records a month needs before it is judged")
    area_field: Literal["district", "beat", "community_area"] | None = Field(
        default="district",
        description="crime field that names the area for the unlocated share by area; None skips it")
    min_area_records: int = Field(default=100, ge=1,
                                  description="records an area needs before it is judged")

    # Duplicates and codes.
    max_duplicate_id_share: float = Field(
        default=0.01, ge=0, le=1,
        description="share of raw rows whose id appears on another raw row (WARN); revisions of a "
                    "record are legitimate, so this is a share and not zero")
    max_exact_duplicate_rows: int = Field(
        default=0, ge=0, description="raw rows identical in every stored field to another row (WARN)")
    max_copied_record_share: float = Field(
        default=0.001, ge=0, le=1,
        description="share of staged records identical to another in every field except the id (WARN)")
    max_shared_case_share: float = Field(
        default=0.01, ge=0, le=1,
        description="share of records whose case number another record also carries (WARN); "
                    "multi-victim cases do this legitimately, so they are counted, never dropped")
    max_unknown_code_share: float = Field(
        default=0.001, ge=0, le=1,
        description="share of records whose offense code offense_codes does not list (WARN)")
    beat_district: BeatDistrictRule | None = Field(
        default=None, description="how a beat names its district; None skips the consistency check")
    max_beat_district_mismatch_share: float = Field(
        default=0.001, ge=0, le=1,
        description="share of records whose beat lies in another district than the record names (WARN)")

    # Daylight-saving edges of local wall-clock times.
    max_nonexistent_time_share: float = Field(
        default=0.0005, ge=0, le=1,
        description="share of records in the skipped spring-forward hour (WARN)")
    max_ambiguous_time_share: float = Field(
        default=0.002, ge=0, le=1,
        description="share of records in the doubled fall-back hour (WARN)")

    # Distribution drift against a trailing baseline.
    drift_baseline_months: int = Field(
        default=12, ge=1, description="months before a period that form its trailing baseline")
    drift_min_records: int = Field(
        default=500, ge=1, description="records a period and its baseline each need before drift is judged")
    max_drift_distance: float = Field(
        default=0.1, gt=0, le=1,
        description="Jensen-Shannon distance (base 2) between a period and its baseline above "
                    "which drift is flagged, when the chi-square test also rejects (WARN)")
    drift_alpha: float = Field(
        default=0.001, gt=0, lt=1, description="significance level of the chi-square goodness-of-fit test")
    max_year_volume_change: float = Field(
        default=0.25, gt=0,
        description="relative change of a year's records against the mean of the years before it (WARN)")
    min_category_volume_records: int = Field(
        default=50, ge=1,
        description="records a category needs in a baseline before it vanishing is flagged, and in a "
                    "month before it appearing is flagged")

    # Category breaks across known source-system changes.
    source_changes: list[SourceChange] = Field(
        default=[],
        description="known changes of the crime source's records system. A category whose monthly "
                    "count jumps at one of these dates is reported as a possible definition change; "
                    "an empty list skips the check")
    source_change_months: int = Field(
        default=24, ge=1, le=60,
        description="months on each side of a source change that are compared. A multiple of 12 puts "
                    "every calendar month equally often on each side, so seasonality cancels out of the "
                    "means. More than 12 lets the trend come from months a year apart, which a seasonal "
                    "cycle does not bend")
    max_source_change_factor: float = Field(
        default=1.5, gt=1,
        description="factor by which a category's monthly count may rise or fall across a source change "
                    "before it is flagged as a possible definition change (WARN)")
    min_source_change_records: int = Field(
        default=200, ge=1,
        description="records a category needs in the months compared, both sides together, before a "
                    "break is judged")

    # Late updates.
    late_update_days: int = Field(
        default=365, ge=0, description="days between event and update after which an update is late")
    max_late_update_share: float = Field(
        default=0.5, ge=0, le=1, description="share of records updated late (WARN)")

    # Hourly weather.
    max_weather_missing_share: float = Field(
        default=0.10, ge=0, le=1, description="share of spine hours without a routine weather report (WARN)")
    max_weather_suspect_share: float = Field(
        default=0.01, ge=0, le=1, description="share of weather hours with a suspect value (WARN)")
    max_station_missing_share: float = Field(
        default=0.5, ge=0, le=1,
        description="share of the weather range's hours that one station did not report (WARN); "
                    "fallback stations often report part of the range only, so this is loose")
    max_weather_gap_hours: int = Field(
        default=24, ge=0,
        description="longest run of consecutive hours without weather from any station (WARN)")
    max_weather_trace_share: float = Field(
        default=0.10, ge=0, le=1,
        description="share of hours with a precipitation value that report only a trace (WARN)")
    max_precipitation_disagreement_share: float = Field(
        default=0.05, ge=0, le=1,
        description="share of a station's complete days (24 hourly precipitation values) whose hourly "
                    "sum differs from the summary-of-day total by more than 0.02 inches (WARN)")

    # 311 service requests, per request type.
    max_request_midnight_share: float = Field(
        default=0.05, ge=0, le=1,
        description="share of a timed request type's records created at exactly 00:00:00 local time "
                    "(WARN): such records are date-only in disguise")
    max_repeated_request_number_share: float = Field(
        default=0.05, ge=0, le=1,
        description="share of raw 311 rows whose request number appears on another raw row of the "
                    "same type (WARN); staging keeps the latest version")
    max_duplicate_status_share: float = Field(
        default=0.25, ge=0, le=1,
        description="share of a request type's records marked as duplicates of an earlier request (WARN)")
    max_unlocated_request_share: float = Field(
        default=0.05, ge=0, le=1,
        description="share of a request type's records quarantined (no date, no usable location) (WARN)")
    min_request_volume_records: int = Field(
        default=30, ge=1,
        description="requests a type needs in the trailing baseline before it vanishing is flagged, "
                    "and in a month before it appearing is flagged")

    # Boundary layers, per layer.
    max_boundary_repaired_share: float = Field(
        default=0.05, ge=0, le=1,
        description="share of a layer's delivered features whose invalid polygon was repaired (WARN)")
    max_boundary_quarantined_features: int = Field(
        default=0, ge=0, description="features of a layer left out as unusable geometry (WARN)")
    max_boundary_overlap_share: float = Field(
        default=0.001, ge=0, le=1,
        description="area shared by features of one layer, as a share of the layer's area (WARN)")

    # Demographics.
    max_income_to_median_ratio: float = Field(
        default=20.0, gt=1,
        description="per-capita income above this multiple of its table's median looks like a sum "
                    "over the area rather than a per-person figure (WARN)")

    @model_validator(mode="after")
    def check_levels(self) -> "AuditConfig":
        pairs = [("max_missing_coordinates_share", "error_missing_coordinates_share"),
                 ("max_unlocated_share", "error_unlocated_share")]
        for warn, error in pairs:
            if getattr(self, warn) > getattr(self, error):
                raise ValueError(f"audit.{warn} ({getattr(self, warn)}) must not exceed audit.{error} "
                                 f"({getattr(self, error)}): the WARN level comes before the ERROR level")
        return self

    @model_validator(mode="after")
    def check_source_changes(self) -> "AuditConfig":
        dates = [change.date for change in self.source_changes]
        repeated = sorted({day.isoformat() for day in dates if dates.count(day) > 1})
        if repeated:
            raise ValueError(f"audit.source_changes lists the dates {repeated} more than once: give each "
                             f"source-system change one entry")
        blank = [change.date.isoformat() for change in self.source_changes if not change.note.strip()]
        if blank:
            raise ValueError(f"audit.source_changes entries {blank} have a blank note: say what changed "
                             f"and where it is documented")
        return self


DEFAULT_TARGETS = ("violent", "robbery", "property")


class JurisdictionConfig(BaseModel):
    """One city's data layout and conventions."""

    model_config = ConfigDict(extra="forbid")

    name: str
    display_name: str
    synthetic: bool = False
    time_zone: str
    holiday_country: str = "US"
    holiday_subdivision: str | None = None
    data_start: date
    bounding_box: BoundingBox
    crimes: CrimeSourceConfig
    offense_codes: dict[str, OffenseCode] = Field(
        min_length=1,
        description="offense code -> meaning. Codes are matched after trimming and upper-casing; a "
                    "code not listed stages as category 'unknown' and the audit counts it")
    weather: WeatherSourceConfig | None = None
    forecast: ForecastConfig | None = Field(
        default=None, description="hourly weather forecast point and API; optional")
    service_requests: list[ServiceRequestSourceConfig] = []
    cells: CellSourceConfig
    boundaries: BoundariesConfig = BoundariesConfig()
    demographics: DemographicsConfig | None = None
    audit: AuditConfig = AuditConfig()
    bias: BiasConfig = Field(default_factory=BiasConfig,
                             description="demographic groups of cells and arrest-driven categories of the bias audit")
    targets: list[str] | None = Field(
        default=None, min_length=1,
        description="what Riskcast forecasts: categories or groups of offense_codes. Each target "
                    "gets its own ensemble and scores; the first is the primary target that the "
                    "reports lead with. Left out, it is those of violent, robbery and property "
                    "that offense_codes names")

    @model_validator(mode="after")
    def check_time_zone(self) -> "JurisdictionConfig":
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"time_zone {self.time_zone!r} is not an IANA time zone name; use a name "
                             f"such as 'America/Chicago' or 'America/New_York', not an abbreviation "
                             f"or an offset") from error
        return self

    @model_validator(mode="after")
    def normalise_codes(self) -> "JurisdictionConfig":
        normalised = {str(code).strip().upper(): meaning for code, meaning in self.offense_codes.items()}
        if len(normalised) != len(self.offense_codes):
            raise ValueError("offense_codes lists the same code twice after trimming and upper-casing")
        self.offense_codes = normalised
        return self

    @model_validator(mode="after")
    def check_targets(self) -> "JurisdictionConfig":
        known = self.crime_groups
        if self.targets is None:
            self.targets = [target for target in DEFAULT_TARGETS if target in known]
            if not self.targets:
                raise ValueError(f"offense_codes names none of the default targets {list(DEFAULT_TARGETS)}; "
                                 f"set targets to categories or groups it names: {known}")
            return self
        unknown = [target for target in self.targets if target not in known]
        if unknown:
            raise ValueError(f"targets {unknown} are neither a category nor a group in offense_codes "
                             f"(known: {known}); add them to offense_codes or remove them from targets")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets lists a name twice: {self.targets}")
        self.check_arrest_driven_targets()
        return self

    def check_arrest_driven_targets(self) -> None:
        """Refuse targets that contain arrest-driven codes unless the bias block allows them."""
        if self.bias.allow_arrest_driven_targets:
            return
        for target in self.targets or []:
            codes = sorted(code for code, meaning in self.offense_codes.items()
                           if meaning.arrest_driven and (meaning.category == target or target in meaning.groups))
            if codes:
                raise ValueError(
                    f"target {target!r} contains the arrest-driven offense codes {codes}. Their records follow "
                    f"where police look more than where crime happens (see the Bias Audit report's input-bias "
                    f"section), so a forecast of them sends patrols back to where patrols already are. Choose "
                    f"targets without them, or set bias.allow_arrest_driven_targets: true to accept that")

    @property
    def crime_groups(self) -> list[str]:
        """Every category and group named in offense_codes, sorted: the crime counts features track."""
        names = {code.category for code in self.offense_codes.values()}
        names.update(group for code in self.offense_codes.values() for group in code.groups)
        return sorted(names)

    @model_validator(mode="after")
    def check_service_request_datasets(self) -> "JurisdictionConfig":
        check_service_requests(self.service_requests)
        return self

    @model_validator(mode="after")
    def check_geography_references(self) -> "JurisdictionConfig":
        check_geography(self.boundaries, self.cells, self.demographics)
        return self

    @property
    def partitions_start(self) -> datetime:
        return datetime(self.data_start.year, self.data_start.month, self.data_start.day,
                        tzinfo=timezone.utc)


class Window(BaseModel):
    """A half-open UTC window ``[start, end)``; dates mean midnight UTC."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def check_window(self) -> "Window":
        self.start = as_utc(self.start)
        self.end = as_utc(self.end)
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} must be after its start "
                             f"{self.start.isoformat()}")
        bounds = (self.start, self.end)
        if any(bound.minute or bound.second or bound.microsecond for bound in bounds):
            raise ValueError(f"window bounds must be whole hours, got {self.start} to {self.end}")
        return self

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / timedelta(hours=1))


class EnsembleSettings(BaseModel):
    """Settings of the forecasting ensemble (``ml.ensemble.EnsembleConfig``); the run's seed seeds it.

    The defaults equal EnsembleConfig's, whose docstring gives their training cost. Test runs can
    set a smaller n_nets to finish sooner.
    """

    model_config = ConfigDict(extra="forbid")

    n_nets: int = Field(default=100, ge=1, description="number of bagged feed-forward nets")
    hidden_sizes: list[int] = Field(default=[16], min_length=1,
                                    description="widths of the nets' hidden ReLU layers, input side first")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="dropout rate after each hidden layer")
    weight_decay: float = Field(default=1e-4, ge=0, description="AdamW weight decay of the nets")
    epochs: int = Field(default=6, ge=1, description="maximum training epochs per net")
    patience: int = Field(default=2, ge=1,
                          description="epochs without a lower out-of-bag loss before a net stops early")
    batch_size: int = Field(default=1024, ge=1, description="mini-batch rows of the nets")
    learning_rate: float = Field(default=5e-3, gt=0, description="AdamW learning rate of the nets")
    net_bootstrap_rows: int | None = Field(
        default=12_000, ge=100,
        description="rows in each net's bootstrap of its downsample; null means the downsample's size")
    lgbm_members: int = Field(default=1, ge=1, description="number of LightGBM members, each on its own downsample")
    lgbm_num_leaves: int = Field(default=31, ge=2, description="LightGBM num_leaves")
    lgbm_n_estimators: int = Field(default=100, ge=1, description="LightGBM boosting rounds (trees)")
    lgbm_learning_rate: float = Field(default=0.1, gt=0, description="LightGBM learning rate")
    lgbm_min_child_samples: int = Field(default=50, ge=1, description="LightGBM min_child_samples (rows per leaf)")
    lgbm_feature_fraction: float = Field(default=0.5, gt=0, le=1,
                                         description="LightGBM feature_fraction (share of features per tree)")
    lgbm_max_bin: int = Field(default=63, ge=2, description="LightGBM max_bin (histogram bins per feature)")
    negative_ratio: float = Field(
        default=1.0, gt=0, allow_inf_nan=False,
        description="no-crime rows sampled per crime row when training each member: 1 for 1:1, 3 for 1:3")
    validation_weeks: int = Field(
        default=4, ge=1, description="latest weeks of the training window that score the members for their weights")
    weight_half_life_weeks: float = Field(
        default=2.0, gt=0, description="half-life in weeks of the discount on older validation weeks")
    weight_floor: float = Field(
        default=0.001, gt=0, description="smallest log-loss skill a member counts with when weighting")
    validation_fraction: float = Field(
        default=0.25, gt=0, lt=1,
        description="largest share of the training window that validation may take (short windows)")
    refit_full: bool = Field(default=True, description="refit every member on the whole window after weighting")
    num_threads: int = Field(default=2, ge=1,
                             description="training worker processes, and prediction threads")


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
REFRESH_PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(weeks=1)}


class RefreshSettings(BaseModel):
    """When retrained models take over: the refresh period and the UTC moment its partitions end.

    Left out, ``weekday`` and ``hour`` are those of the run's ``train.end``, so the refresh
    partition that ends at ``train.end`` exists. Set them to keep the partitions fixed across run
    files; a ``train.end`` that is not on a boundary is then an error.
    """

    model_config = ConfigDict(extra="forbid")

    period: Literal["daily", "weekly"] = Field(
        default="weekly", description="length of one refresh partition: one model per period and target")
    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] | None = Field(
        default=None, description="UTC weekday on which weekly partitions start and end; "
                                  "default: the weekday of train.end")
    hour: int | None = Field(default=None, ge=0, le=23,
                             description="UTC hour at which partitions start and end; default: the hour of train.end")

    @property
    def length(self) -> timedelta:
        return REFRESH_PERIODS[self.period]


class StandInSettings(BaseModel):
    """The stand-in weather forecast used where no archived forecast covers an hour (``ml.weather_forecast``)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["persistence", "climatology", "blend"] = Field(
        default="blend", description="persistence, climatology, or their blend")
    blend_weight: float | None = Field(
        default=None, ge=0, le=1, description="fixed weight of persistence in the blend; null means exp(-h / tau)")
    blend_tau_hours: float = Field(default=24.0, gt=0, description="tau of the blend weight exp(-h / tau), in hours")
    climatology_years: int = Field(default=3, ge=1, description="years before the cut-off that the climatology reads")
    smoothing_days: int = Field(default=7, ge=0, le=182,
                                description="days on each side of the day of the year pooled into a climatology value")
    persistence_max_gap_hours: int = Field(
        default=24, ge=0, description="how far back persistence looks for an observed value")


class WeatherInputSettings(BaseModel):
    """Weather inputs of the ensemble for the hours it forecasts (``ml.target_weather``).

    ``stand_in`` (the default) gives every target hour the weather known at the cut-off: the
    latest archived forecast issued by then, or else the stand-in forecast. ``none`` trains and
    scores without any weather input. Observed weather of the target hours ("oracle weather") is
    not a choice here: no forecaster has it, so it exists only in the weather-mode backtest.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["none", "stand_in"] = Field(
        default="stand_in", description="none (no weather inputs) or stand_in (forecast-time weather)")
    stand_in: StandInSettings = Field(default_factory=StandInSettings)

    def inputs(self) -> WeatherInputs:
        return WeatherInputs(mode=self.mode, stand_in=WeatherStandIn(**self.stand_in.model_dump()))


class WeatherModeSettings(BaseModel):
    """The weather-mode backtest: the ensemble retrained without weather, with stand-in and with observed weather.

    Each mode trains one ensemble per origin, every ``refresh_days`` days across the backtest
    window, on the ``train_days`` days before the origin, with the run's ensemble settings. So the
    three modes differ in their weather inputs only.
    """

    model_config = ConfigDict(extra="forbid")

    refresh_days: int = Field(default=28, ge=1, description="days between the origins of the weather-mode backtest")
    train_days: int = Field(default=182, ge=7, description="days of training data before each origin")


BASELINE_CHOICES = ("compstat", "compstat_day", "naive", "retrospective_hotspot", "prospective_hotspot",
                    "sepp", "random", "oracle")


class BacktestSettings(BaseModel):
    """A rolling-origin backtest: which forecasts are issued, which baselines compete, how it is scored.

    Each day of the backtest window, a forecast is issued at ``issue_hour`` local time for every
    cell and for each hour up to the next issue. The ensemble that scores it is the latest one
    trained before the issue time, so each refresh partition's end is an origin: train up to
    ``t``, forecast the days after ``t``, roll forward. Baselines are fitted at every issue time
    on the incidents before it. Left out, ``window`` is the run's evaluation window.
    """

    model_config = ConfigDict(extra="forbid")

    window: Window | None = Field(default=None, description="UTC window whose issue times are backtested; "
                                                            "default: the run's evaluate (or score) window")
    issue_hour: int = Field(default=0, ge=0, le=23,
                            description="local hour at which the daily forecast is issued (0 = midnight)")
    baselines: list[Literal[BASELINE_CHOICES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(BASELINE_CHOICES),
        description="baselines evaluated beside the ensemble, by name")
    baseline_params: dict[str, dict[str, float | int | str]] = Field(
        default_factory=dict, description="keyword arguments per baseline, e.g. {sepp: {history_days: 365}}")
    aggregations: list[Literal["hour", "shift", "day"]] = Field(
        default_factory=lambda: ["hour", "shift", "day"],
        description="time scales scored: each cell-hour, local shifts, local days")
    shift_starts: list[int] = Field(default_factory=lambda: [0, 8, 16],
                                    description="local hours at which shifts start")
    threshold_rule: Literal["coverage", "youden", "value"] = Field(
        default="coverage", description="how the operating threshold is chosen: the run's coverage share "
                                        "of cells in each map, Youden's J, or threshold_value")
    threshold_value: float | None = Field(default=None, description="the threshold for rule 'value'")
    n_boot: int = Field(default=1000, ge=50, description="bootstrap resamples of days")
    seed: int = 11

    @model_validator(mode="after")
    def check_rule(self) -> "BacktestSettings":
        if self.threshold_rule == "value" and self.threshold_value is None:
            raise ValueError("backtest.threshold_rule 'value' needs backtest.threshold_value, the risk at or "
                             "above which a cell-hour is flagged")
        bad_shifts = [hour for hour in self.shift_starts if not 0 <= hour <= 23]
        if bad_shifts or not self.shift_starts:
            raise ValueError(f"backtest.shift_starts must list local hours 0-23, got {self.shift_starts}")
        unknown = sorted(set(self.baseline_params) - set(self.baselines))
        if unknown:
            raise ValueError(f"backtest.baseline_params names {unknown}, which are not in backtest.baselines "
                             f"{self.baselines}; add them to baselines or drop their parameters")
        return self


class RunConfig(BaseModel):
    """Settings of one run of the main job: jurisdiction, extracts and windows."""

    model_config = ConfigDict(extra="forbid")

    jurisdiction: str
    source: Literal["extracts", "socrata"] = Field(
        default="extracts",
        description="where crimes come from: the extracts folder, or the jurisdiction's crimes.api "
                    "dataset (weather and cells then still come from the extracts folder)")
    extracts_folder: Path | None = Field(
        default=None, description="folder of portal exports; None means the generated demo")
    weather_source: Literal["extracts", "noaa"] = Field(
        default="extracts",
        description="where weather comes from: the files under extracts_folder, or the "
                    "jurisdiction's weather.api service (pulled incrementally)")
    forecast_source: Literal["none", "archive", "nws"] = Field(
        default="none",
        description="where weather forecasts come from: nowhere, the archived forecasts under "
                    "extracts_folder/forecasts, or the jurisdiction's forecast block (the NWS API)")
    boundaries_source: Literal["extracts", "socrata"] = Field(
        default="extracts",
        description="where boundary layers come from: the GeoJSON files under extracts_folder, or "
                    "the portal for layers with an api block. Boundaries change rarely, so a "
                    "Socrata run of crimes still reads them from files unless this says socrata")
    train: Window
    score: Window
    evaluate: Window | None = None
    memory_limit_gb: float | None = Field(
        default=None, gt=0,
        description="memory budget of the crime ingest in GiB: extracts estimated to need more are "
                    "rejected before reading, and DuckDB spills above it; default: 55% of physical memory")
    horizon_hours: int = 72
    coverage: float = 0.05
    compstat_years: int = 3
    seed: int = 7
    ensemble: EnsembleSettings = EnsembleSettings()
    targets: list[str] | None = Field(
        default=None, description="targets to train, score and evaluate (a subset of the jurisdiction's "
                                  "targets, the first being the evaluated one); default: all of them")
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    weather: WeatherInputSettings = Field(
        default_factory=WeatherInputSettings,
        description="the weather inputs of the ensemble: stand_in (forecast-time weather) or none")
    weather_modes: WeatherModeSettings = Field(
        default_factory=WeatherModeSettings,
        description="origins and training windows of the weather-mode backtest")
    release: ReleaseSettings = Field(default_factory=ReleaseSettings,
                                     description="the bias release gate that a trained ensemble passes to become current")
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings,
                                           description="staffing assumptions of the police deployment simulation")
    simulation: SimulationSettings = Field(default_factory=SimulationSettings,
                                           description="the synthetic city of the feedback-loop simulation")
    refresh: RefreshSettings = Field(
        default_factory=RefreshSettings,
        description="refresh partitions of the training asset; the run trains the one that ends at "
                    "train.end on the trailing window train.start to train.end")
    schedules: ScheduleSettings = Field(default_factory=ScheduleSettings,
                                        description="ticks of the hourly, weekly refresh and nightly schedules")
    freshness: FreshnessSettings = Field(default_factory=FreshnessSettings,
                                         description="maximum age of the newest portal record before it is reported")
    notifications: NotificationSettings = Field(
        default_factory=NotificationSettings,
        description="where run failures and stale sources are sent: the log or a Slack webhook")
    executor: ExecutorSettings = Field(
        default_factory=ExecutorSettings,
        description="how the steps of a run launched from the UI or daemon execute: in_process, "
                    "multiprocess or k8s")

    @property
    def evaluate_window(self) -> Window:
        return self.evaluate or self.score

    @property
    def backtest_window(self) -> Window:
        return self.backtest.window or self.evaluate_window

    @model_validator(mode="after")
    def check_refresh(self) -> "RunConfig":
        """Fill the refresh anchor from ``train.end`` and check that the training window lines up."""
        end = self.train.end
        if self.refresh.weekday is None:
            self.refresh.weekday = WEEKDAYS[end.weekday()]
        if self.refresh.hour is None:
            self.refresh.hour = end.hour

        weekday = WEEKDAYS[end.weekday()]
        on_boundary = end.hour == self.refresh.hour
        if self.refresh.period == "weekly":
            on_boundary = on_boundary and weekday == self.refresh.weekday
        if not on_boundary:
            anchor = (f"{self.refresh.weekday} at {self.refresh.hour:02d}:00 UTC" if self.refresh.period == "weekly"
                      else f"{self.refresh.hour:02d}:00 UTC")
            raise ValueError(
                f"train.end {end.isoformat()} ({weekday}, {end.hour:02d}:00 UTC) is not the end of a "
                f"{self.refresh.period} refresh partition, because those end on {anchor}. Move train.end "
                f"to a boundary, such as {previous_boundary(end, self.refresh).isoformat()}, or set "
                f"refresh.weekday and refresh.hour to match it")

        length = self.train.end - self.train.start
        periods = length / self.refresh.length
        if periods != int(periods):
            whole = max(int(periods), 1)
            raise ValueError(
                f"the training window {self.train.start.isoformat()} to {end.isoformat()} lasts "
                f"{length.total_seconds() / 86400:g} days, not a whole number of {self.refresh.period} "
                f"refresh periods ({self.refresh.length.days} days each). Set train.start to "
                f"{(end - whole * self.refresh.length).isoformat()} ({whole} periods) or another whole "
                f"number of periods before train.end")
        return self

    @model_validator(mode="after")
    def check_windows(self) -> "RunConfig":
        if self.score.start < self.train.end:
            raise ValueError(
                f"score window starts {self.score.start.isoformat()}, before the training window "
                f"ends ({self.train.end.isoformat()}); scores must be out of sample"
            )
        if not 0 < self.coverage <= 1:
            raise ValueError(f"coverage must be in (0, 1], got {self.coverage}")
        if self.source == "socrata" and self.extracts_folder is None:
            raise ValueError("source 'socrata' pulls only crimes, so set extracts_folder to the folder "
                             "that holds the weather and boundary files")
        return self


def previous_boundary(moment: datetime, refresh: RefreshSettings) -> datetime:
    """Return the last refresh-partition boundary at or before ``moment`` (UTC)."""
    boundary = moment.replace(hour=refresh.hour or 0, minute=0, second=0, microsecond=0)
    if boundary > moment:
        boundary -= timedelta(days=1)
    if refresh.period == "weekly":
        target = WEEKDAYS.index(refresh.weekday or WEEKDAYS[moment.weekday()])
        boundary -= timedelta(days=(boundary.weekday() - target) % 7)
    return boundary


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


# libyaml's loader when PyYAML was built with it: the same safe constructors, about ten times faster.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Parsed mappings by the file's text. Every asset and check of a run loads the jurisdiction again.
# Parsing its YAML took about 40 ms each time, while reading the text is cheap.
PARSED_YAML: dict[str, dict] = {}


def read_yaml(path: Path) -> dict:
    """Return the mapping in a YAML file, as a fresh copy the caller may change."""
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if text not in PARSED_YAML:
        try:
            content = yaml.load(text, Loader=YAML_LOADER)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from error
        if not isinstance(content, dict):
            raise ConfigError(f"{path} must contain a YAML mapping at the top level")
        PARSED_YAML[text] = content
    return copy.deepcopy(PARSED_YAML[text])


def load_jurisdiction(name_or_path: str) -> JurisdictionConfig:
    """Load a jurisdiction by name (a file in ``orchestration/jurisdictions``) or by path."""
    candidate = Path(name_or_path)
    path = candidate if candidate.suffix in (".yaml", ".yml") else JURISDICTIONS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in JURISDICTIONS_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown jurisdiction {name_or_path!r}: no file {path}; "
                          f"known jurisdictions are {known}")
    try:
        return JurisdictionConfig(**read_yaml(path))
    except ValidationError as error:
        raise ConfigError(f"invalid jurisdiction file {path}:\n{error}") from error


def load_run_config(path: Path) -> RunConfig:
    """Load a run file; a relative ``extracts_folder`` is resolved against the file's folder.

    Raises ``ConfigError`` when the file contains a key that would carry a secret value, such as
    ``app_token`` or ``webhook_url``: secrets come only from environment variables.
    """
    content = read_yaml(path)
    # Before validation, because pydantic's errors repeat the offending value, which would be the secret.
    try:
        reject_secret_values(content)
    except ValueError as error:
        raise ConfigError(f"invalid run file {path}: {error}") from None
    try:
        config = RunConfig(**content)
    except ValidationError as error:
        raise ConfigError(f"invalid run file {path}:\n{error}") from error
    if config.extracts_folder is not None and not config.extracts_folder.is_absolute():
        config.extracts_folder = (path.parent / config.extracts_folder).resolve()
    return config


def run_targets(run: RunConfig, jurisdiction: JurisdictionConfig) -> list[str]:
    """Return the targets the run trains, scores and evaluates: the run's list, else the jurisdiction's."""
    known = list(jurisdiction.targets or [])
    if run.targets is None:
        return known
    unknown = [target for target in run.targets if target not in known]
    if unknown or not run.targets:
        raise ConfigError(f"the run file's targets {run.targets} must be a non-empty subset of jurisdiction "
                          f"{jurisdiction.name!r}'s targets {known}; drop {unknown or 'nothing'} or add "
                          f"them to the jurisdiction's targets")
    return list(run.targets)


def check_crime_source(run: RunConfig, jurisdiction: JurisdictionConfig) -> None:
    """Raise ``ConfigError`` when the run's crime source needs a block the jurisdiction lacks."""
    if run.source == "socrata" and jurisdiction.crimes.api is None:
        raise ConfigError(
            f"the run file sets source: socrata, but jurisdiction {jurisdiction.name!r} has no "
            f"crimes.api block. Add crimes.api (base_url, dataset_id, columns) to the jurisdiction "
            f"file, or set source: extracts"
        )


def check_weather_source(run: RunConfig, jurisdiction: JurisdictionConfig) -> None:
    """Raise ``ConfigError`` when the run pulls weather live but the jurisdiction has no service."""
    if run.weather_source == "noaa" and (jurisdiction.weather is None or jurisdiction.weather.api is None):
        raise ConfigError(
            f"the run file sets weather_source: noaa, but jurisdiction {jurisdiction.name!r} has no "
            f"weather.api block. Add weather.api (layout, start_date) to the jurisdiction file, or "
            f"set weather_source: extracts"
        )


def check_forecast_source(run: RunConfig, jurisdiction: JurisdictionConfig) -> None:
    """Raise ``ConfigError`` when the run fetches forecasts live but the jurisdiction has no point."""
    if run.forecast_source == "nws" and jurisdiction.forecast is None:
        raise ConfigError(
            f"the run file sets forecast_source: nws, but jurisdiction {jurisdiction.name!r} has no "
            f"forecast block. Add forecast.point (latitude, longitude) to the jurisdiction file, or "
            f"set forecast_source: archive or none"
        )


def default_run_config_path() -> Path:
    return RUNS_DIR / "demo.yaml"
