"""311 service requests: the ``requests_source`` resource, with a local and a live implementation.

A jurisdiction lists its 311 datasets under ``service_requests``. Each dataset is one request type
(street lights out, sanitation code complaints, ...) or, when it maps a ``request_type`` column,
several types distinguished by that column and labelled through ``type_labels``. Both resources
return rows renamed to the canonical fields of ``CANONICAL_REQUEST_FIELDS``, every value as
text, with the dataset, the request type label, the source file and the row number. Addresses,
descriptions and every other column are never read into the table, so free text is never stored.

``LocalServiceRequestSource`` reads a folder of portal exports (CSV, CSV.gz, JSON, JSON.gz or
Parquet). ``SocrataServiceRequestSource`` pulls each dataset's ``api`` block from a Socrata portal
with the paging, retries and ``:updated_at`` watermark of ``orchestration.socrata``.
"""

from __future__ import annotations

import gzip
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.ingest import (
    ExtractError,
    ExtractTable,
    check_timestamps,
    drop_blank_rows,
    find_files,
    read_text_table,
    select_mapped_columns,
)
from orchestration.jurisdiction import (
    ConfigError,
    JurisdictionConfig,
    RunConfig,
    ServiceRequestApiConfig,
    ServiceRequestSourceConfig,
)
from orchestration.resources import ensure_extracts_folder
from orchestration.socrata import SocrataDataset, as_text, keep_latest, pull_updated_since

logger = logging.getLogger(__name__)

CANONICAL_REQUEST_FIELDS = ("id", "created_on", "closed_on", "updated_on", "status", "duplicate",
                            "latitude", "longitude")
# Columns of raw.service_requests, in order. ``dataset`` is the configured dataset's request_type,
# which picks the dataset's timestamp format in staging. ``request_type`` is the row's label.
RAW_REQUEST_COLUMNS = ("dataset", "request_type", *CANONICAL_REQUEST_FIELDS, "source_file", "source_row")
TIMESTAMP_FIELDS = ("created_on", "closed_on", "updated_on")
# Every 311 record has an id and a creation time, so an API row without either field means that
# the dataset's schema changed. Socrata leaves null fields out of the JSON, so other fields,
# coordinates included, can be missing from a row.
API_REQUIRED_REQUEST_FIELDS = ("id", "created_on")
# Folder of the synthetic demo's 311 extracts, below the demo extracts folder.
DEMO_REQUESTS_FOLDER = "311"


def raw_request_schema() -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {name: pl.String() for name in RAW_REQUEST_COLUMNS}
    schema["source_row"] = pl.Int64()
    return schema


def empty_request_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=raw_request_schema())


# Reading local extracts.

def is_json(path: Path) -> bool:
    return path.name.endswith((".json", ".json.gz"))


def read_json_rows(path: Path) -> pl.DataFrame:
    """Read a JSON export, a list of row objects as the Socrata ``.json`` endpoint returns it."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        payload = json.loads(raw)
    except (OSError, EOFError, gzip.BadGzipFile, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExtractError(f"cannot read {path}: {error}. Re-download the file or remove it from "
                           f"the extracts folder") from error
    if not isinstance(payload, list) or not all(isinstance(row, dict) for row in payload):
        raise ExtractError(f"{path} must contain a JSON list of row objects, as the portal's .json "
                           f"export does, but found {type(payload).__name__}. Export the rows as JSON")

    rows = [{str(name): as_text(value) for name, value in row.items()} for row in payload]
    names = list(dict.fromkeys(name for row in rows for name in row))
    records = [{name: row.get(name) for name in names} for row in rows]
    return pl.DataFrame(records, schema={name: pl.String for name in names})


def read_request_file(path: Path) -> pl.DataFrame:
    """Read one extract with every column as text: JSON here, CSV and Parquet by ``read_text_table``."""
    if is_json(path):
        return read_json_rows(path)
    return read_text_table(path)


def first_row_number(path: Path) -> int:
    """Return the ``source_row`` of a file's first row: CSV counts its header as row 1."""
    if is_json(path) or path.suffix == ".parquet":
        return 1
    return 2


def label_requests(frame: pl.DataFrame, dataset: ServiceRequestSourceConfig) -> pl.DataFrame:
    """Add the dataset and each row's request type label, and put the columns in raw order.

    A dataset without a request_type column labels every row with its own ``request_type``. A
    dataset that maps one labels each row through ``type_labels``, and a type value that is not
    listed there, or an empty one, gets the dataset's ``request_type``.
    """
    if "request_type" in dataset.columns and dataset.type_labels:
        labels = pl.col("request_type").str.strip_chars().replace_strict(
            dataset.type_labels, default=pl.lit(dataset.request_type), return_dtype=pl.String)
    else:
        labels = pl.lit(dataset.request_type, dtype=pl.String)

    absent = [pl.lit(None, dtype=pl.String).alias(name) for name in CANONICAL_REQUEST_FIELDS
              if name not in frame.columns]
    labelled = frame.with_columns(
        *absent,
        labels.alias("request_type"),
        pl.lit(dataset.request_type, dtype=pl.String).alias("dataset"),
    )
    return labelled.select(RAW_REQUEST_COLUMNS).cast(raw_request_schema())


def check_request_timestamps(frame: pl.DataFrame, label: Path, columns: dict[str, str],
                             timestamp_format: str) -> None:
    for field in TIMESTAMP_FIELDS:
        if field in columns:
            check_timestamps(frame, label, field, columns[field], timestamp_format)


def read_request_file_rows(path: Path, dataset: ServiceRequestSourceConfig) -> tuple[pl.DataFrame, int]:
    """Return one file's rows in raw layout and the number of blank rows skipped.

    A CSV or Parquet file must have every mapped column, because a mapping that names a missing
    column is wrong. A JSON export leaves out null fields, so there only the id and creation
    fields must appear, and a mapped field that no row carries is null.
    """
    required = API_REQUIRED_REQUEST_FIELDS if is_json(path) else tuple(dataset.columns)
    frame = select_mapped_columns(read_request_file(path), path, dataset.columns, required)
    frame = frame.with_columns(
        pl.lit(path.name).alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_row_number(path)).alias("source_row"),
    )
    frame, blank = drop_blank_rows(frame)
    check_request_timestamps(frame, path, dataset.columns, dataset.timestamp_format)
    return label_requests(frame, dataset), blank


def read_request_extracts(folder: Path, dataset: ServiceRequestSourceConfig) -> ExtractTable:
    """Read every file of one 311 dataset, or raise ``ExtractError`` naming the file, row and fix."""
    files = find_files(folder, dataset.files, f"311 {dataset.request_type}")
    frames = []
    blank_rows = 0
    for path in files:
        frame, blank = read_request_file_rows(path, dataset)
        blank_rows += blank
        logger.info("read %d %s requests from %s (%d blank rows skipped)", frame.height,
                    dataset.request_type, path, blank)
        frames.append(frame)
    return ExtractTable(pl.concat(frames), files, blank_rows)


def read_all_request_extracts(folder: Path, datasets: list[ServiceRequestSourceConfig]) -> ExtractTable:
    """Read every configured dataset into one table, which is empty when no dataset is configured."""
    tables = [read_request_extracts(folder, dataset) for dataset in datasets]
    if not tables:
        return ExtractTable(empty_request_frame(), [])
    return ExtractTable(
        frame=pl.concat([table.frame for table in tables]),
        files=[path for table in tables for path in table.files],
        blank_rows_skipped=sum(table.blank_rows_skipped for table in tables),
    )


# Pulling from Socrata.

@dataclass(frozen=True)
class RequestPull:
    """One dataset's rows changed since a watermark, in raw layout, with the pull's bookkeeping.

    ``rows_received`` counts the portal rows of the pull. ``frame`` keeps the latest of the rows
    that share a request id, so it can be shorter by ``rows_superseded`` rows.
    """

    dataset: ServiceRequestSourceConfig
    frame: pl.DataFrame
    source: str
    watermark: str | None
    requests: list[str]
    rows_received: int

    @property
    def rows_superseded(self) -> int:
        return self.rows_received - self.frame.height


def source_name(api: ServiceRequestApiConfig) -> str:
    """Return the ``source_file`` of pulled rows, which is also the dataset's ingest-state key."""
    return f"socrata:{api.dataset_id}"


def check_api_rows(rows: list[dict[str, str]], api: ServiceRequestApiConfig, label: str) -> None:
    """Raise ``ExtractError`` on the first row that lacks a field every 311 record has."""
    for row in rows:
        missing = [f"{field} ({api.columns[field]!r})" for field in API_REQUIRED_REQUEST_FIELDS
                   if api.columns[field] not in row]
        if missing:
            fields = sorted(name for name in row if not name.startswith(":"))
            raise ExtractError(
                f"{label}: row {row.get(':id', '?')} has no field for {', '.join(missing)}. The "
                f"row's fields are {fields}, so the dataset's schema may have changed; fix "
                f"api.columns in the jurisdiction file"
            )


def canonical_request_frame(rows: list[dict[str, str]], dataset: ServiceRequestSourceConfig,
                            source: str) -> pl.DataFrame:
    """Build the raw-layout frame of pulled rows. ``source_row`` is the 1-based position in the pull."""
    api = dataset.api
    assert api is not None
    records = [{canonical: row.get(field) for canonical, field in api.columns.items()} for row in rows]
    frame = pl.DataFrame(records, schema={canonical: pl.String for canonical in api.columns})
    frame = frame.with_columns(
        pl.lit(source, dtype=pl.String).alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("source_row"),
    )
    return label_requests(frame, dataset)


# The resources.

class ServiceRequestSource(dg.ConfigurableResource, ABC):
    """A source of the 311 service requests that a jurisdiction configures."""

    @abstractmethod
    def service_requests(self, jurisdiction: JurisdictionConfig) -> ExtractTable:
        """Return every row of every configured dataset, or an empty table when none is configured."""


class LocalServiceRequestSource(ServiceRequestSource):
    """A folder of 311 portal exports laid out as each dataset's ``files`` pattern describes."""

    folder: str
    generate_demo: bool = False

    def service_requests(self, jurisdiction: JurisdictionConfig) -> ExtractTable:
        if not jurisdiction.service_requests:
            return ExtractTable(empty_request_frame(), [])
        folder = ensure_extracts_folder(Path(self.folder), self.generate_demo)
        if self.generate_demo and not (folder / DEMO_REQUESTS_FOLDER).is_dir():
            # A demo folder written before the demo had 311 files. The generator is deterministic,
            # so writing it again adds the 311 files and rewrites the others with the same bytes.
            from ml.demo import write_demo_extracts

            logger.info("adding the synthetic 311 extracts to the demo folder %s", folder)
            write_demo_extracts(folder)
        return read_all_request_extracts(folder, jurisdiction.service_requests)


class SocrataServiceRequestSource(ServiceRequestSource):
    """311 requests pulled from each dataset's Socrata ``api`` block, incrementally by ``:updated_at``."""

    base_url_override: str | None = None
    timeout_seconds: float = 60.0
    max_retries: int = 5
    backoff_seconds: float = 1.0

    def api_config(self, dataset: ServiceRequestSourceConfig) -> ServiceRequestApiConfig:
        if dataset.api is None:
            raise ConfigError(f"311 dataset {dataset.request_type!r} has no api block, so it cannot be "
                              f"pulled from Socrata. Add the block or set source: extracts")
        return dataset.api

    def socrata_dataset(self, dataset: ServiceRequestSourceConfig) -> SocrataDataset:
        api = self.api_config(dataset)
        return SocrataDataset(base_url=self.base_url_override or api.base_url, dataset_id=api.dataset_id,
                              page_size=api.page_size, timeout_seconds=self.timeout_seconds,
                              max_retries=self.max_retries, backoff_seconds=self.backoff_seconds)

    def pull_dataset(self, dataset: ServiceRequestSourceConfig, since: str | None) -> RequestPull:
        """Pull the dataset's rows updated at or after ``since`` (all rows when None).

        Paging uses the portal's row id ``:id``, because a request id can repeat in a 311 dataset.
        Of the rows that share a request id, the one with the latest ``:updated_at`` is kept.
        Raises ``SocrataError`` when the pull fails, and ``ExtractError`` when a row lacks the id
        or creation field or has a time that does not parse with ``api.timestamp_format``.
        """
        api = self.api_config(dataset)
        source = source_name(api)
        socrata = self.socrata_dataset(dataset)
        result = pull_updated_since(socrata, since, id_field=":id")

        check_api_rows(result.rows, api, f"{source} ({dataset.request_type})")
        latest = keep_latest(result.rows, api.columns["id"])
        frame = canonical_request_frame(latest, dataset, source)
        check_request_timestamps(frame, Path(source), api.columns, api.timestamp_format)
        logger.info("pulled %d %s rows from %s in %d requests, %d kept after keeping the latest "
                    "row per request id", len(result.rows), dataset.request_type, source,
                    len(result.requests), frame.height)
        return RequestPull(dataset=dataset, frame=frame, source=source, watermark=result.watermark,
                           requests=result.requests, rows_received=len(result.rows))

    def service_requests(self, jurisdiction: JurisdictionConfig) -> ExtractTable:
        """Pull every dataset whole. The raw asset pulls incrementally with ``pull_dataset`` instead."""
        frames = [self.pull_dataset(dataset, None).frame for dataset in jurisdiction.service_requests]
        return ExtractTable(pl.concat(frames) if frames else empty_request_frame(), [])


def requests_source(source: str, extracts: Path, generate_demo: bool) -> ServiceRequestSource:
    """Return the resource that reads the run's 311 requests: a folder, or the Socrata portal."""
    if source == "socrata":
        return SocrataServiceRequestSource()
    return LocalServiceRequestSource(folder=str(extracts), generate_demo=generate_demo)


def check_requests_source(run: RunConfig, jurisdiction: JurisdictionConfig) -> None:
    """Raise ``ConfigError`` when a Socrata run meets a 311 dataset without an api block."""
    if run.source != "socrata":
        return
    missing = [dataset.request_type for dataset in jurisdiction.service_requests if dataset.api is None]
    if missing:
        raise ConfigError(
            f"the run file sets source: socrata, but the 311 datasets {missing} of jurisdiction "
            f"{jurisdiction.name!r} have no api block. Add api (base_url, dataset_id, columns) to "
            f"each, or set source: extracts"
        )
