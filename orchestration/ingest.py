"""Reading local portal extracts into the warehouse's ``raw`` schema.

Each reader checks the file's header against the jurisdiction's column mapping and keeps only the
mapped place, time and category fields, so names, addresses and narrative text are never stored.
It renames the fields to Riskcast's canonical names and keeps every value as text, so that typing
happens once, in dbt staging. Every row keeps its source file and row number, so a problem
found later can be traced back to the line of the export.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from orchestration.jurisdiction import (
    OPTIONAL_CRIME_FIELDS,
    REQUIRED_CRIME_FIELDS,
    CrimeSourceConfig,
)
from orchestration.memory_limits import check_extracts_fit

logger = logging.getLogger(__name__)


class ExtractError(ValueError):
    """An extract file cannot be read as configured; the message names the file and the fix."""


@dataclass(frozen=True)
class ExtractTable:
    frame: pl.DataFrame
    files: list[Path]
    blank_rows_skipped: int = 0


def find_files(folder: Path, pattern: str, what: str) -> list[Path]:
    if not folder.is_dir():
        raise ExtractError(f"extracts folder not found: {folder}; set extracts_folder in the run "
                           f"file to the folder that holds the portal exports")
    files = sorted(path for path in folder.glob(pattern) if path.is_file())
    if not files:
        raise ExtractError(f"no {what} files match {pattern!r} in {folder}; check the folder and "
                           f"the `files` pattern in the jurisdiction file")
    return files


def read_text_table(path: Path, keep: list[str] | None = None) -> pl.DataFrame:
    """Read a CSV (optionally gzip-compressed), JSON or Parquet file with every column as text.

    With ``keep``, a CSV that has every one of those columns is read with only them, so unmapped
    columns such as a portal's Block, Description and Location never reach memory. Header names
    are compared with any byte order mark and surrounding spaces removed. A CSV that lacks one of them is read whole,
    so the header check reports every column the file has.
    """
    try:
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            return frame.with_columns(pl.all().cast(pl.String))
        if path.name.endswith((".json", ".json.gz")):
            return read_json_records(path)
        columns = csv_columns_to_read(path, keep) if keep is not None else None
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy", raise_if_empty=False,
                            columns=columns)
    except (pl.exceptions.ComputeError, OSError, EOFError) as error:
        raise ExtractError(f"cannot read {path}: {describe_read_error(path, error)}; re-download the "
                           f"file or remove it from the extracts folder") from error

    # An empty file reads as a frame without columns, which the header check would report as
    # every mapped column missing.
    if frame.width == 0:
        raise ExtractError(f"{path} is empty: it has no header line and no rows. Re-download the file "
                           f"or remove it from the extracts folder")
    return frame


def describe_read_error(path: Path, error: Exception) -> str:
    """Describe a read error, naming a gzip stream that ends early as truncated.

    polars reports such a stream only as "unexpected end of file", which does not say why.
    """
    if path.name.endswith(".gz") and (isinstance(error, EOFError) or "end of file" in str(error)):
        return f"the gzip stream is truncated, so the download was cut short ({error})"
    return str(error)


def csv_columns_to_read(path: Path, keep: list[str]) -> list[str] | None:
    """Return the header names of ``path`` that match ``keep``, or None (read all) when some are absent."""
    header = pl.read_csv(path, n_rows=0, infer_schema=False, encoding="utf8-lossy", raise_if_empty=False).columns
    expected = set(keep)
    matching = [name for name in header if name.lstrip("\ufeff").strip() in expected]
    found = {name.lstrip("\ufeff").strip() for name in matching}
    return matching if found == expected else None


def read_json_records(path: Path) -> pl.DataFrame:
    """Read a portal JSON export, an array of flat objects as Socrata writes it, with values as text.

    A field missing from an object is null; nested values (such as Socrata's ``location`` point)
    are kept as their JSON text, so a mapping that needs them fails on the header check instead.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        try:
            records = json.load(handle)
        except json.JSONDecodeError as error:
            raise ExtractError(f"{path} is not valid JSON ({error}); re-download the file") from error
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise ExtractError(f"{path} must contain a JSON array of objects, one per record, as the "
                           f"portal's JSON export does")

    fields = list(dict.fromkeys(name for record in records for name in record))
    text = [{name: as_text(record.get(name)) for name in fields} for record in records]
    return pl.DataFrame(text, schema={name: pl.String for name in fields})


def as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return json.dumps(value)


def select_mapped_columns(frame: pl.DataFrame, path: Path, columns: dict[str, str],
                          required: tuple[str, ...]) -> pl.DataFrame:
    """Rename mapped columns to canonical names, failing on a missing required column."""
    header = [name.lstrip("\ufeff").strip() for name in frame.columns]
    frame = frame.rename(dict(zip(frame.columns, header)))
    missing = [f"{canonical} (column {source!r})" for canonical, source in columns.items()
               if canonical in required and source not in header]
    if missing:
        raise ExtractError(
            f"{path}: required column missing: {', '.join(missing)}. The file's columns are "
            f"{header}; fix the export or the `columns` mapping in the jurisdiction file"
        )
    present = {canonical: source for canonical, source in columns.items() if source in header}
    selected = frame.select([pl.col(source).alias(canonical) for canonical, source in present.items()])
    absent = [pl.lit(None, dtype=pl.String).alias(name) for name in columns if name not in present]
    return selected.with_columns(absent) if absent else selected


def check_timestamps(frame: pl.DataFrame, path: Path, column: str, source_column: str,
                     timestamp_format: str) -> None:
    """Raise on the first non-empty value that does not parse with the configured format."""
    parsed = frame.select(
        pl.col(column),
        pl.col(column).str.strptime(pl.Datetime, timestamp_format, strict=False).alias("parsed"),
        pl.col("source_row"),
    )
    bad = parsed.filter(pl.col(column).is_not_null() & (pl.col(column) != "") & pl.col("parsed").is_null())
    if bad.height:
        first = bad.row(0, named=True)
        raise ExtractError(
            f"{path}, row {first['source_row']}, column {source_column!r}: cannot parse "
            f"{first[column]!r} with format {timestamp_format!r} ({bad.height} such rows). Fix the "
            f"export or set `timestamp_format` in the jurisdiction file"
        )


def with_provenance(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    # source_row is the row number a spreadsheet shows, with the header as row 1. A quoted field
    # that spans several lines stays in one row, so it can differ from the file's line number.
    return frame.with_columns(
        pl.lit(path.name).alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias("source_row"),
    )


def drop_blank_rows(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Remove rows whose every mapped field is empty, as blank lines in a CSV produce."""
    fields = [name for name in frame.columns if name not in ("source_file", "source_row")]
    blank = pl.all_horizontal([pl.col(name).is_null() | (pl.col(name).str.strip_chars() == "") for name in fields])
    kept = frame.filter(~blank)
    return kept, frame.height - kept.height


def with_all_crime_fields(frame: pl.DataFrame) -> pl.DataFrame:
    """Add every canonical crime field the mapping leaves out as a null text column.

    The raw table then has the same columns for every jurisdiction, so one staging model serves
    them all. The canonical fields come first, in a fixed order, then the provenance columns.
    """
    fields = REQUIRED_CRIME_FIELDS + OPTIONAL_CRIME_FIELDS
    absent = [pl.lit(None, dtype=pl.String).alias(name) for name in fields if name not in frame.columns]
    frame = frame.with_columns(absent) if absent else frame
    return frame.select([*fields, *(name for name in frame.columns if name not in fields)])


def check_crime_timestamps(frame: pl.DataFrame, path: Path, columns: dict[str, str],
                           timestamp_format: str) -> None:
    """Check the mapped time fields (``date``, and ``updated_on`` when mapped) against the format."""
    for field in ("date", "updated_on"):
        if field in columns:
            check_timestamps(frame, path, field, columns[field], timestamp_format)


def read_crime_extracts(folder: Path, config: CrimeSourceConfig, memory_limit: int | None = None) -> ExtractTable:
    """Read every crime extract in ``folder`` into one text frame of canonical fields.

    With ``memory_limit`` (bytes), first raise ``ExtractTooLargeError`` when the ingest's
    estimated peak memory exceeds it, before any file is read.
    """
    files = find_files(folder, config.files, "crime")
    if memory_limit is not None:
        check_extracts_fit(files, memory_limit)

    mapped = list(dict.fromkeys(config.columns.values()))
    frames = []
    blank_rows = 0
    for path in files:
        frame = select_mapped_columns(read_text_table(path, mapped), path, config.columns, REQUIRED_CRIME_FIELDS)
        frame, blank = drop_blank_rows(with_provenance(frame, path))
        blank_rows += blank
        check_crime_timestamps(frame, path, config.columns, config.timestamp_format)
        logger.info("read %d crime rows from %s (%d blank rows skipped)", frame.height, path, blank)
        frames.append(with_all_crime_fields(frame))
    return ExtractTable(pl.concat(frames, how="diagonal"), files, blank_rows)
