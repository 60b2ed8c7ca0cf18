"""Jurisdiction and run configuration, read from YAML.

A jurisdiction file (``orchestration/jurisdictions/<name>.yaml``) describes how one city's public
data is laid out: file patterns, the column names its portal uses, its time zone, its bounding box and
its spatial unit. A run file names a jurisdiction, a folder of extracts and the train, score and
evaluate windows. Adding a city means adding a YAML file, not code.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

JURISDICTIONS_DIR = Path(__file__).parent / "jurisdictions"
RUNS_DIR = Path(__file__).parent / "runs"

# Canonical crime-incident fields: every source's columns are renamed to these (the Socrata API
# vocabulary of the Chicago portal). Names, addresses and narrative text are never kept.
REQUIRED_CRIME_FIELDS = ("id", "date", "fbi_code", "updated_on", "latitude", "longitude")
OPTIONAL_CRIME_FIELDS = ("case_number", "iucr", "primary_type", "location_description",
                         "beat", "district", "community_area")


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
    columns: dict[str, str] = Field(description="canonical field -> field name in the API")
    timestamp_format: str = Field(
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
        return self


class CrimeSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: str = Field(description="glob of crime extracts, relative to the extracts folder")
    columns: dict[str, str] = Field(description="canonical field -> column name in the extract")
    timestamp_format: str = Field(description="strptime format of local wall-clock times")
    api: CrimeApiConfig | None = Field(default=None, description="Socrata dataset for `source: socrata` runs")

    @model_validator(mode="after")
    def check_columns(self) -> "CrimeSourceConfig":
        check_crime_columns(self.columns, "crimes.columns")
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

    id: str = Field(min_length=1, description="station id stored in the warehouse")
    name: str = Field(min_length=1)
    utc_offset_hours: float = Field(
        ge=-12, le=14,
        description="fixed UTC offset of the station's Local Standard Time; LCD times never use DST")
    aliases: list[str] = Field(
        default=[], description="other spellings of the id in the files, such as WBAN:94846 or 94846")
    noaa_id: str | None = Field(
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

    timestamp_format: str = Field(description="polars (chrono) strptime format of the LST date column")
    columns: dict[str, str] = Field(description="canonical field -> column name in the file")
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


class CellSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    id_property: str
    spatial_unit: Literal["census_tract", "grid_cell"]


class AuditConfig(BaseModel):
    """Thresholds of the data input audit."""

    model_config = ConfigDict(extra="forbid")

    min_inside_box_share: float = Field(
        default=0.999, gt=0, le=1,
        description="share of located incidents that must fall inside the bounding box")
    max_quarantined_share: float = Field(
        default=0.05, ge=0, le=1, description="share of incidents quarantined above which a WARN check fails")


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
    weather: WeatherSourceConfig | None = None
    cells: CellSourceConfig
    audit: AuditConfig = AuditConfig()

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
    model_config = ConfigDict(extra="forbid")

    n_nets: int = 10
    epochs: int = 8
    hidden_sizes: list[int] = [32, 16]
    lgbm_n_estimators: int = 200
    validation_fraction: float = 0.15


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
    train: Window
    score: Window
    evaluate: Window | None = None
    horizon_hours: int = 72
    coverage: float = 0.05
    compstat_years: int = 3
    seed: int = 7
    ensemble: EnsembleSettings = EnsembleSettings()

    @property
    def evaluate_window(self) -> Window:
        return self.evaluate or self.score

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


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise ConfigError(f"{path} must contain a YAML mapping at the top level")
    return content


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
    """Load a run file; a relative ``extracts_folder`` is resolved against the file's folder."""
    content = read_yaml(path)
    try:
        config = RunConfig(**content)
    except ValidationError as error:
        raise ConfigError(f"invalid run file {path}:\n{error}") from error
    if config.extracts_folder is not None and not config.extracts_folder.is_absolute():
        config.extracts_folder = (path.parent / config.extracts_folder).resolve()
    return config


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


def default_run_config_path() -> Path:
    return RUNS_DIR / "demo.yaml"
