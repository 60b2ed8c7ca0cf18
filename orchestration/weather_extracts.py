"""Reading NOAA weather CSV (local LCD and QCLCD files, or a live LCD response) into raw rows.

NOAA's Local Climatological Data (LCD) has one row per report: routine hourly METARs (FM-15),
specials (FM-16), synoptic reports (FM-12) and daily or monthly summaries (SOD, SOM). Its times
are the station's Local Standard Time all year. Its values are text with markers: "T" for a
trace, a trailing "s" for a suspect value, "M" for missing and "*" for an amount included in a
later report. NOAA NCEI documents them in "Local Climatological Data (LCD) Dataset Documentation"
(https://www.ncei.noaa.gov/data/local-climatological-data/doc/LCD_documentation.pdf). The QCLCD layout that
Plenario serves has the same reports under other column names.

This module maps one layout's columns to Riskcast's canonical weather fields and keeps every value
as text, so that markers are interpreted once, in dbt staging. It keeps only the stations the
jurisdiction configures, stored under their configured id, and counts the rows of other stations.
Every row keeps its source (file name or request URL) and row number.

LCD v2 CSV repeats ``REPORT_TYPE`` and ``SOURCE`` at the end of its header. The reader keeps the
first of repeated columns and raises when a later copy disagrees with it on any row, because that
means the columns are not what the layout assumes.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from orchestration.jurisdiction import WEATHER_FIELDS, WeatherLayoutConfig, WeatherSourceConfig

logger = logging.getLogger(__name__)

# Columns of raw.weather_observations, in order. Values are text as delivered except ``station``,
# which is the configured id, and ``metar_time_group``, the ``ddhhmm`` group of the METAR remark.
VALUE_FIELDS = ("temperature_f", "relative_humidity", "wind_speed_mph", "wind_direction",
                "precipitation_in", "daily_precipitation_in")
RAW_WEATHER_COLUMNS = ("station", "date", "report_type", *VALUE_FIELDS, "metar_time_group",
                       "layout", "source_file", "source_row")
METAR_TIME_PATTERN = r"(?:^|\s)(\d{6})Z(?:\s|$)"
GZIP_MAGIC = b"\x1f\x8b"


class WeatherExtractError(ValueError):
    """A weather file or response cannot be read as configured; the message names it and the fix."""


@dataclass
class WeatherRows:
    """Canonical raw weather rows with the counts of rows left out."""

    frame: pl.DataFrame
    sources: list[str] = field(default_factory=list)
    # Rows of stations the jurisdiction does not configure, by the id written in the file.
    other_station_rows: Counter[str] = field(default_factory=Counter)
    blank_rows: int = 0

    def extend(self, other: "WeatherRows") -> None:
        self.frame = pl.concat([self.frame, other.frame], how="vertical")
        self.sources.extend(other.sources)
        self.other_station_rows.update(other.other_station_rows)
        self.blank_rows += other.blank_rows


def empty_weather_frame() -> pl.DataFrame:
    schema = {name: pl.String for name in RAW_WEATHER_COLUMNS} | {"source_row": pl.Int64}
    return pl.DataFrame(schema=schema)


def empty_weather_rows() -> WeatherRows:
    return WeatherRows(empty_weather_frame())


def decompress(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == GZIP_MAGIC else data


def read_csv_text(data: bytes, label: str) -> pl.DataFrame:
    """Read CSV bytes (optionally gzip) with every column as text and unique column names.

    Header names are stripped of a byte-order mark and spaces. Of repeated names the first column
    is kept; a later copy must hold the same values (compared after trimming) on every row.
    """
    text = decompress(data)
    if not text.strip():
        return pl.DataFrame()
    header = next(csv.reader(io.StringIO(text.decode("utf-8", errors="replace").split("\n", 1)[0])))
    names = [name.lstrip("\ufeff").strip() for name in header]
    try:
        frame = pl.read_csv(io.BytesIO(text), infer_schema=False, encoding="utf8-lossy", raise_if_empty=False)
    except pl.exceptions.ComputeError as error:
        raise WeatherExtractError(f"cannot read {label} as CSV: {error}. Re-download the file or "
                                  f"remove it from the extracts folder") from error
    if frame.width != len(names):
        raise WeatherExtractError(f"{label}: polars read {frame.width} columns but the header has "
                                  f"{len(names)}; the file is damaged, so re-download it")
    # polars renames repeated names, so columns are addressed by position from here on.
    frame.columns = [f"column_{position}" for position in range(len(names))]

    first_position: dict[str, int] = {}
    for position, name in enumerate(names):
        if name not in first_position:
            first_position[name] = position
            continue
        check_repeated_column(frame, label, name, first_position[name], position)
    return frame.select([pl.col(f"column_{position}").alias(name) for name, position in first_position.items()])


def check_repeated_column(frame: pl.DataFrame, label: str, name: str, first: int, later: int) -> None:
    first_values = pl.col(f"column_{first}").str.strip_chars()
    later_values = pl.col(f"column_{later}").str.strip_chars()
    differing = frame.with_row_index("index").filter(first_values.ne_missing(later_values))
    if differing.height:
        row = differing.row(0, named=True)
        raise WeatherExtractError(
            f"{label}: column {name!r} appears twice and the copies differ on {differing.height} rows, "
            f"first at row {row['index'] + 2} ({row[f'column_{first}']!r} and {row[f'column_{later}']!r}). "
            f"Check that the file has the layout the jurisdiction file names"
        )


def canonical_weather_rows(frame: pl.DataFrame, label: str, layout_name: str, layout: WeatherLayoutConfig,
                           station_ids: dict[str, str]) -> WeatherRows:
    """Map one file's or response's columns to the raw weather columns.

    Raises ``WeatherExtractError`` when a mapped column is missing, when a row has no date, or
    when a date does not parse with the layout's ``timestamp_format``. ``source_row`` is the
    row number a spreadsheet shows, with the header as row 1.
    """
    if frame.width == 0:
        return empty_weather_rows()
    check_mapped_columns(frame, label, layout_name, layout)

    # A quoted empty field ("") and an unquoted one read differently, so both become NULL.
    selected = frame.select([
        pl.when(pl.col(column).str.strip_chars() != "").then(pl.col(column)).alias(field_name)
        for field_name, column in layout.columns.items()
    ])
    absent = [pl.lit(None, dtype=pl.String).alias(name) for name in WEATHER_FIELDS if name not in layout.columns]
    selected = selected.with_columns(absent).with_columns(
        pl.lit(layout_name).alias("layout"),
        pl.lit(label).alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias("source_row"),
    )

    selected, blank_rows = drop_blank_rows(selected)
    selected = selected.with_columns(
        pl.col("station").str.strip_chars(),
        pl.col("metar_remarks").str.extract(METAR_TIME_PATTERN, 1).alias("metar_time_group"),
    )
    check_dates(selected, label, layout_name, layout)

    configured = selected["station"].replace_strict(station_ids, default=None, return_dtype=pl.String)
    other = selected.filter(configured.is_null())
    other_counts = Counter({(station or "(blank)"): count for station, count in
                            other.group_by("station").len().iter_rows()})
    configured_rows = selected.with_columns(configured.alias("station")).filter(pl.col("station").is_not_null())
    if other.height:
        logger.warning("%s: left out %d rows of stations the jurisdiction does not configure: %s",
                       label, other.height, dict(other_counts.most_common(10)))
    logger.info("%s: read %d weather rows (%d blank rows skipped)", label, configured_rows.height, blank_rows)
    return WeatherRows(configured_rows.select(RAW_WEATHER_COLUMNS), [label], other_counts, blank_rows)


def check_mapped_columns(frame: pl.DataFrame, label: str, layout_name: str, layout: WeatherLayoutConfig) -> None:
    missing = [f"{field_name} (column {column!r})" for field_name, column in layout.columns.items()
               if column not in frame.columns]
    if missing:
        raise WeatherExtractError(
            f"{label}: column missing for {', '.join(missing)}. The columns are {frame.columns}; "
            f"fix the file, or the columns of weather layout {layout_name!r} in the jurisdiction file"
        )


def drop_blank_rows(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Remove rows whose every mapped field is empty, as blank lines in a CSV produce."""
    fields = [name for name in WEATHER_FIELDS if name in frame.columns]
    blank = pl.all_horizontal([pl.col(name).is_null() | (pl.col(name).str.strip_chars() == "") for name in fields])
    kept = frame.filter(~blank)
    return kept, frame.height - kept.height


def check_dates(frame: pl.DataFrame, label: str, layout_name: str, layout: WeatherLayoutConfig) -> None:
    """Raise on the first row without a date or with a date that does not parse."""
    column = layout.columns["date"]
    parsed = pl.col("date").str.strip_chars().str.strptime(pl.Datetime, layout.timestamp_format, strict=False)
    bad = frame.filter(parsed.is_null()).select("date", "source_row")
    if not bad.height:
        return
    first = bad.row(0, named=True)
    if not (first["date"] or "").strip():
        raise WeatherExtractError(
            f"{label}, row {first['source_row']}, column {column!r}: the date is empty ({bad.height} rows "
            f"have an empty or invalid date). Every report needs its time; fix or remove the row"
        )
    raise WeatherExtractError(
        f"{label}, row {first['source_row']}, column {column!r}: cannot parse {first['date']!r} with "
        f"format {layout.timestamp_format!r} ({bad.height} such rows). Fix the file, or set "
        f"timestamp_format of weather layout {layout_name!r} in the jurisdiction file"
    )


def find_weather_files(folder: Path, pattern: str) -> list[Path]:
    if not folder.is_dir():
        raise WeatherExtractError(f"extracts folder not found: {folder}; set extracts_folder in the "
                                  f"run file to the folder that holds the weather files")
    files = sorted(path for path in folder.glob(pattern) if path.is_file())
    if not files:
        raise WeatherExtractError(f"no weather files match {pattern!r} in {folder}; check the folder "
                                  f"and the weather.files patterns in the jurisdiction file")
    return files


def read_weather_files(folder: Path, config: WeatherSourceConfig) -> WeatherRows:
    """Read every file of every ``weather.files`` entry into one set of raw rows."""
    rows = empty_weather_rows()
    station_ids = config.station_ids()
    for entry in config.files:
        layout = config.layouts[entry.layout]
        for path in find_weather_files(folder, entry.pattern):
            try:
                data = path.read_bytes()
            except OSError as error:
                raise WeatherExtractError(f"cannot read {path}: {error}") from error
            frame = read_csv_text(data, str(path))
            file_rows = canonical_weather_rows(frame, str(path), entry.layout, layout, station_ids)
            # Local rows name their file, not the whole path, as the other raw tables do.
            file_rows.frame = file_rows.frame.with_columns(pl.lit(path.name).alias("source_file"))
            rows.extend(file_rows)
    return rows
