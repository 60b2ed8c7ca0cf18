"""Jurisdiction and run configuration, read from YAML.

A jurisdiction file (``orchestration/jurisdictions/<name>.yaml``) describes how one city's public
data is laid out: file patterns, the column names its portal uses, its time zone, its bounding box and
its spatial unit. A run file names a jurisdiction, a folder of extracts and the train, score and
evaluate windows. Adding a city means adding a YAML file, not code.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

JURISDICTIONS_DIR = Path(__file__).parent / "jurisdictions"
RUNS_DIR = Path(__file__).parent / "runs"

# Canonical crime-incident fields: every source's columns are renamed to these (the Socrata API
# vocabulary of the Chicago portal). Names, addresses and narrative text are never kept.
# ``offense_code`` is the code that ``offense_codes`` maps to categories: the FBI code in Chicago,
# the UCR general code in Philadelphia. ``updated_on`` is optional because some portals publish
# no revision time; staging then keeps the version that appears last in the extracts.
REQUIRED_CRIME_FIELDS = ("id", "date", "offense_code", "latitude", "longitude")
OPTIONAL_CRIME_FIELDS = ("updated_on", "case_number", "iucr", "primary_type", "location_description",
                         "beat", "district", "community_area")
CATEGORY_NAME = r"^[a-z][a-z0-9_]*$"
REQUIRED_WEATHER_FIELDS = ("station", "date", "report_type", "temperature_f",
                           "relative_humidity", "wind_speed_mph", "precipitation_in")


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
        if "updated_on" not in self.columns:
            raise ValueError("crimes.api.columns has no mapping for updated_on; incremental pulls "
                             "need the dataset's update time (on Socrata usually updated_on)")
        return self


class CrimeSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: str = Field(description="glob of crime extracts, relative to the extracts folder")
    columns: dict[str, str] = Field(description="canonical field -> column name in the extract")
    timestamp_format: str = Field(
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
    """What one offense code means: its name, its category and any target groups it belongs to."""

    model_config = ConfigDict(extra="forbid")

    offense: str = Field(description="the code's name, such as 'Robbery'")
    category: str = Field(pattern=CATEGORY_NAME,
                          description="broad category, such as violent, property or other")
    groups: list[str] = Field(
        default_factory=list,
        description="narrower target groups, such as robbery or burglary; a code may be in several")

    @model_validator(mode="after")
    def check_groups(self) -> "OffenseCode":
        bad = [group for group in self.groups if not re.match(CATEGORY_NAME, group)]
        if bad:
            raise ValueError(f"group names must be lower-case identifiers such as 'robbery', got {bad}")
        return self


class WeatherSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: str
    columns: dict[str, str]
    timestamp_format: str
    routine_report_type: str = "FM-15"
    utc_offset_hours: float = Field(
        description="fixed offset of the station's Local Standard Time (LCD never uses DST)")

    @model_validator(mode="after")
    def check_columns(self) -> "WeatherSourceConfig":
        missing = [name for name in REQUIRED_WEATHER_FIELDS if name not in self.columns]
        if missing:
            raise ValueError(f"weather.columns has no mapping for required fields {missing}")
        return self


class CellSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    id_property: str
    spatial_unit: Literal["census_tract", "grid_cell"]


class BeatDistrictRule(BaseModel):
    """How a beat number names its district, for the beat/district consistency check.

    ``leading_digits`` drops the beat's last ``beat_digits`` digits and reads the rest as the
    district number, as in Chicago, where beat 1234 lies in district 12.
    """

    model_config = ConfigDict(extra="forbid")

    rule: Literal["leading_digits"] = "leading_digits"
    beat_digits: int = Field(default=2, ge=1, le=4,
                             description="trailing digits that number the beat inside its district")


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

    @model_validator(mode="after")
    def check_levels(self) -> "AuditConfig":
        pairs = [("max_missing_coordinates_share", "error_missing_coordinates_share"),
                 ("max_unlocated_share", "error_unlocated_share")]
        for warn, error in pairs:
            if getattr(self, warn) > getattr(self, error):
                raise ValueError(f"audit.{warn} ({getattr(self, warn)}) must not exceed audit.{error} "
                                 f"({getattr(self, error)}): the WARN level comes before the ERROR level")
        return self


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
    cells: CellSourceConfig
    audit: AuditConfig = AuditConfig()

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


def default_run_config_path() -> Path:
    return RUNS_DIR / "demo.yaml"
