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
    columns: dict[str, str] = Field(description="canonical field -> column name in the file")

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
    boundaries: BoundariesConfig = BoundariesConfig()
    demographics: DemographicsConfig | None = None
    audit: AuditConfig = AuditConfig()

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
