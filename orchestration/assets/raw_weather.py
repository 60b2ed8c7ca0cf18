"""Raw hourly weather (group ``raw``): NOAA reports of the configured stations, values as text.

Files replace ``raw.weather_observations`` as a whole, so reading the same files twice changes
nothing. Live pulls are merged into it by (station, date, trimmed report type): a pulled report
replaces the stored one with its key when any value differs. The same transaction stores the
latest report time pulled for each station in ``raw.ingest_state``, under ``noaa-lcd:<station id>``.
The table contains the rows of one source kind at a time: a file run drops the live watermarks,
and a live run drops rows that came from files.

The asset's metadata counts rows per station and report type and gives each station's time range.
It also counts the hours between a station's first and last report that have no usable report
(routine, special or synoptic), so a gap in a weather file shows before any model reads it.
"""

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from ml.atomic_files import temporary_path
from orchestration.assets.raw import INGEST_STATE_DDL, read_watermark, write_parquet_copy
from orchestration.jurisdiction import WeatherSourceConfig
from orchestration.resources import RiskcastResource
from orchestration.sources.weather import WeatherBatch, WeatherSource
from orchestration.warehouse import connect
from orchestration.weather_extracts import RAW_WEATHER_COLUMNS, empty_weather_frame

TABLE = "weather_observations"
WATERMARK_PREFIX = "noaa-lcd:"
LIVE_SOURCE_PREFIX = "noaa:"
USABLE_CLASSES = ("routine", "special", "synoptic")


def watermark_key(station_id: str) -> str:
    return f"{WATERMARK_PREFIX}{station_id}"


@dataclass(frozen=True)
class WeatherMergeCounts:
    """Outcome of merging one live pull: every pulled report is new, replaced or unchanged."""

    pulled: int
    duplicates_in_pull: int
    new: int
    replaced: int
    unchanged: int
    removed_file_rows: int
    stored: int


@dg.asset(group_name="raw", kinds={"duckdb", "parquet"})
def raw_weather_observations(context: dg.AssetExecutionContext, riskcast: RiskcastResource,
                             weather_source: WeatherSource) -> dg.MaterializeResult:
    """NOAA weather reports of every report type from the configured stations, in each station's
    Local Standard Time, with values as text."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    config = jurisdiction.weather
    if config is None:
        replace_weather_table(settings.warehouse_path, settings.raw_dir, empty_weather_frame())
        context.log.warning(f"{jurisdiction.name}: no weather source configured; every hour's "
                            f"weather will be marked missing")
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(0)})

    watermarks = {station.id: read_watermark(settings.warehouse_path, watermark_key(station.id))
                  for station in config.stations}
    batch = weather_source.read_observations(config, watermarks)

    merge_counts = None
    if batch.mode == "replace":
        replace_weather_table(settings.warehouse_path, settings.raw_dir, batch.rows.frame)
    else:
        merge_counts = merge_weather_pull(settings.warehouse_path, batch.rows.frame, watermarks, batch.watermarks)
        write_parquet_copy(settings.warehouse_path, settings.raw_dir, TABLE)

    stored = read_weather_table(settings.warehouse_path)
    coverage = station_coverage(stored, config)
    log_summary(context, jurisdiction.name, batch, merge_counts, stored, coverage)
    return dg.MaterializeResult(metadata=weather_metadata(batch, merge_counts, stored, coverage, watermarks))


def log_summary(context: dg.AssetExecutionContext, name: str, batch: WeatherBatch,
                merge_counts: WeatherMergeCounts | None, stored: pl.DataFrame, coverage: pl.DataFrame) -> None:
    other_rows = sum(batch.rows.other_station_rows.values())
    context.log.info(f"{name}: read {batch.rows.frame.height} weather reports from {len(batch.rows.sources)} "
                     f"sources ({other_rows} rows of unconfigured stations and {batch.rows.blank_rows} blank "
                     f"rows left out); {stored.height} reports stored")
    if merge_counts is not None:
        context.log.info(f"{name}: merged {merge_counts.pulled} pulled reports in {len(batch.requests)} requests: "
                         f"{merge_counts.new} new, {merge_counts.replaced} replaced, {merge_counts.unchanged} "
                         f"unchanged, {merge_counts.removed_file_rows} rows from files removed")
    for row in coverage.iter_rows(named=True):
        context.log.info(f"{name}: station {row['station']}: {row['reports']} reports from "
                         f"{row['first_report_lst']} to {row['last_report_lst']} LST, "
                         f"{row['hours_without_report']} of {row['hours_in_range']} hours without a usable report")


def replace_weather_table(warehouse: Path, raw_dir: Path, frame: pl.DataFrame) -> None:
    """Replace ``raw.weather_observations`` and its Parquet copy, and drop the live watermarks."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    path = raw_dir / f"{TABLE}.parquet"
    temporary = temporary_path(path)
    frame.write_parquet(temporary, compression="zstd")
    arrow_table = frame.to_arrow()
    with connect(warehouse) as connection:
        connection.execute("BEGIN TRANSACTION")
        try:
            connection.execute("CREATE SCHEMA IF NOT EXISTS raw")
            connection.execute(INGEST_STATE_DDL)
            connection.register("incoming", arrow_table)
            connection.execute(f"CREATE OR REPLACE TABLE raw.{TABLE} AS SELECT * FROM incoming")
            connection.execute("DELETE FROM raw.ingest_state WHERE starts_with(source, ?)", [WATERMARK_PREFIX])
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.unregister("incoming")
    os.replace(temporary, path)


def merge_weather_pull(warehouse: Path, frame: pl.DataFrame, watermarks_before: dict[str, str | None],
                       watermarks_after: dict[str, str]) -> WeatherMergeCounts:
    """Merge pulled reports into ``raw.weather_observations`` and store the watermarks, in one transaction.

    Of reports that repeat a key within the pull, the last one is kept. ``source_file`` and
    ``source_row`` are left out of the comparison, because they name the request, which changes
    when the lookback window moves. Raises ``RuntimeError`` when another run changed a stored
    watermark since ``watermarks_before`` was read.
    """
    incoming = frame.with_columns(pl.col("report_type").str.strip_chars().alias("report_type_key"))
    deduplicated = incoming.unique(subset=["station", "date", "report_type_key"], keep="last", maintain_order=True)
    arrow_table = deduplicated.drop("report_type_key").to_arrow()
    compared = [name for name in RAW_WEATHER_COLUMNS if name not in ("source_file", "source_row")]
    same_key = ("stored.station = incoming.station AND stored.date = incoming.date "
                "AND trim(stored.report_type) = trim(incoming.report_type)")
    same_values = " AND ".join(f'stored."{name}" IS NOT DISTINCT FROM incoming."{name}"' for name in compared)

    with connect(warehouse) as connection:
        connection.execute("BEGIN TRANSACTION")
        try:
            connection.execute("CREATE SCHEMA IF NOT EXISTS raw")
            connection.execute(INGEST_STATE_DDL)
            connection.register("incoming", arrow_table)
            check_watermarks_unchanged(connection, watermarks_before)
            removed = drop_rows_from_files(connection)
            connection.execute(f"CREATE TABLE IF NOT EXISTS raw.{TABLE} AS SELECT * FROM incoming LIMIT 0")

            connection.execute(f"""
                CREATE OR REPLACE TEMP TABLE weather_changes AS
                SELECT incoming.*,
                       EXISTS (SELECT 1 FROM raw.{TABLE} stored WHERE {same_key}) AS is_stored
                FROM incoming
                WHERE NOT EXISTS (SELECT 1 FROM raw.{TABLE} stored WHERE {same_key} AND {same_values})
            """)
            new, replaced = connection.execute(
                "SELECT count(*) FILTER (WHERE NOT is_stored), count(*) FILTER (WHERE is_stored) "
                "FROM weather_changes").fetchone()
            connection.execute(f"DELETE FROM raw.{TABLE} stored USING weather_changes incoming WHERE {same_key}")
            connection.execute(f"INSERT INTO raw.{TABLE} BY NAME SELECT * EXCLUDE (is_stored) FROM weather_changes")
            connection.execute("DROP TABLE weather_changes")

            now = datetime.now(timezone.utc).replace(tzinfo=None)
            for station, watermark in watermarks_after.items():
                pulled = deduplicated.filter(pl.col("station") == station).height
                connection.execute("INSERT OR REPLACE INTO raw.ingest_state VALUES (?, ?, ?, ?)",
                                   [watermark_key(station), watermark, pulled, now])
            stored = connection.execute(f"SELECT count(*) FROM raw.{TABLE}").fetchone()[0]
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.unregister("incoming")

    unchanged = deduplicated.height - new - replaced
    return WeatherMergeCounts(pulled=frame.height, duplicates_in_pull=frame.height - deduplicated.height,
                              new=new, replaced=replaced, unchanged=unchanged, removed_file_rows=removed,
                              stored=stored)


def check_watermarks_unchanged(connection: duckdb.DuckDBPyConnection,
                               watermarks_before: dict[str, str | None]) -> None:
    for station, before in watermarks_before.items():
        row = connection.execute("SELECT watermark FROM raw.ingest_state WHERE source = ?",
                                 [watermark_key(station)]).fetchone()
        now = row[0] if row else None
        if now != before:
            raise RuntimeError(f"the weather watermark of station {station} changed from {before} to {now} "
                               f"during this pull, so another run is ingesting weather. Run the job again "
                               f"when it ends")


def drop_rows_from_files(connection: duckdb.DuckDBPyConnection) -> int:
    """Delete stored rows that did not come from the live service, and return their number.

    A table written by an older Riskcast version without the ``layout`` column is dropped whole.
    """
    columns = [row[0] for row in connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = ? "
        "ORDER BY ordinal_position", [TABLE]).fetchall()]
    if not columns:
        return 0
    if columns != list(RAW_WEATHER_COLUMNS):
        count = connection.execute(f"SELECT count(*) FROM raw.{TABLE}").fetchone()[0]
        connection.execute(f"DROP TABLE raw.{TABLE}")
        return count
    count = connection.execute(f"SELECT count(*) FROM raw.{TABLE} WHERE NOT starts_with(source_file, ?)",
                               [LIVE_SOURCE_PREFIX]).fetchone()[0]
    connection.execute(f"DELETE FROM raw.{TABLE} WHERE NOT starts_with(source_file, ?)", [LIVE_SOURCE_PREFIX])
    return count


def read_weather_table(warehouse: Path) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(f"SELECT * FROM raw.{TABLE}").pl()


def station_coverage(frame: pl.DataFrame, config: WeatherSourceConfig) -> pl.DataFrame:
    """Summarize each configured station's reports: count, LST range and hours without a usable report.

    Hours are UTC hours (each report floored), counted from the station's first to its last usable
    report, so the count shows gaps inside a file, not the time before or after it.
    """
    timed = report_times(frame, config)
    rows = []
    for station in config.stations:
        reports = timed.filter(pl.col("station") == station.id)
        usable_hours = reports.filter(pl.col("usable")).select(pl.col("hour_utc").unique().sort())["hour_utc"]
        hours_in_range = 0
        longest_gap = 0
        if usable_hours.len():
            hours_in_range = int((usable_hours[-1] - usable_hours[0]).total_seconds() // 3600) + 1
            steps = usable_hours.diff().drop_nulls().dt.total_hours()
            longest_gap = int(steps.max() - 1) if steps.len() else 0
        rows.append({
            "station": station.id,
            "reports": reports.height,
            "first_report_lst": str(reports["observed_at_lst"].min()) if reports.height else None,
            "last_report_lst": str(reports["observed_at_lst"].max()) if reports.height else None,
            "hours_in_range": hours_in_range,
            "hours_with_report": usable_hours.len(),
            "hours_without_report": hours_in_range - usable_hours.len(),
            "longest_gap_hours": longest_gap,
        })
    return pl.DataFrame(rows, schema={"station": pl.String, "reports": pl.Int64, "first_report_lst": pl.String,
                                      "last_report_lst": pl.String, "hours_in_range": pl.Int64,
                                      "hours_with_report": pl.Int64, "hours_without_report": pl.Int64,
                                      "longest_gap_hours": pl.Int64})


def report_times(frame: pl.DataFrame, config: WeatherSourceConfig) -> pl.DataFrame:
    """Add each report's LST time, UTC hour and whether its report type gives hourly values."""
    pieces = []
    offsets = {station.id: station.utc_offset_hours for station in config.stations}
    for layout_name, layout in config.layouts.items():
        usable = [name for name, kind in layout.report_types.items() if kind in USABLE_CLASSES]
        piece = frame.filter(pl.col("layout") == layout_name).with_columns(
            pl.col("date").str.strip_chars().str.strptime(pl.Datetime("us"), layout.timestamp_format)
            .alias("observed_at_lst"),
            pl.col("report_type").str.strip_chars().is_in(usable).alias("usable"),
        )
        pieces.append(piece)
    timed = pl.concat(pieces, how="vertical") if pieces else frame
    minutes = (pl.col("station").replace_strict(offsets, default=0.0, return_dtype=pl.Float64) * 60).round(0)
    return timed.with_columns(
        (pl.col("observed_at_lst") - pl.duration(minutes=minutes.cast(pl.Int64))).dt.truncate("1h").alias("hour_utc"))


def weather_metadata(batch: WeatherBatch, merge_counts: WeatherMergeCounts | None, stored: pl.DataFrame,
                     coverage: pl.DataFrame, watermarks_before: dict[str, str | None]) -> dict[str, dg.MetadataValue]:
    by_type = (stored.with_columns(pl.col("report_type").str.strip_chars())
               .group_by("station", "report_type").len("rows").sort("station", "report_type"))
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(stored.height),
        "mode": dg.MetadataValue.text(batch.mode),
        "rows_read": dg.MetadataValue.int(batch.rows.frame.height),
        "rows_of_unconfigured_stations": dg.MetadataValue.int(sum(batch.rows.other_station_rows.values())),
        "unconfigured_stations": dg.MetadataValue.json(dict(batch.rows.other_station_rows)),
        "blank_rows_skipped": dg.MetadataValue.int(batch.rows.blank_rows),
        "rows_per_station_and_report_type": dg.MetadataValue.md(markdown_table(by_type)),
        "station_coverage": dg.MetadataValue.md(markdown_table(coverage)),
        "hours_without_report": dg.MetadataValue.int(int(coverage["hours_without_report"].sum())),
    }
    if merge_counts is None:
        return metadata | {"files": dg.MetadataValue.text(", ".join(Path(source).name for source in batch.rows.sources))}
    return metadata | {
        "requests": dg.MetadataValue.int(len(batch.requests)),
        "rows_new": dg.MetadataValue.int(merge_counts.new),
        "rows_replaced": dg.MetadataValue.int(merge_counts.replaced),
        "rows_unchanged": dg.MetadataValue.int(merge_counts.unchanged),
        "duplicates_in_pull": dg.MetadataValue.int(merge_counts.duplicates_in_pull),
        "rows_from_files_removed": dg.MetadataValue.int(merge_counts.removed_file_rows),
        "watermarks_before": dg.MetadataValue.json({station: mark for station, mark in watermarks_before.items()}),
        "watermarks_after": dg.MetadataValue.json(batch.watermarks),
        # Station Local Standard Time, like the watermarks it is the newest of.
        "last_watermark": dg.MetadataValue.text(max(batch.watermarks.values(), default="none")),
        "stations_not_pulled": dg.MetadataValue.json(batch.stations_not_pulled),
    }


def markdown_table(frame: pl.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
    lines += ["| " + " | ".join("" if value is None else str(value) for value in row) + " |"
              for row in frame.iter_rows()]
    return "\n".join(lines)
