"""Raw hourly weather forecasts (group ``raw``): every forecast issue read, one row per valid hour.

``raw.weather_forecasts`` is keyed by (``issued_at``, ``valid_hour``), both naive UTC. Storing an
issue replaces every stored row of that issue time, so reading the same archive twice or
fetching the same NWS issue twice changes nothing. Issues that a run does not read stay stored,
because a past forecast cannot be fetched again. Live fetches are also written to the archive
folder ``RISKCAST_HOME/<jurisdiction>/raw/forecasts``, in the layout that ``LocalForecastSource``
reads. With ``forecast_source: none`` the asset only creates the empty table.
"""

from datetime import datetime
from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.nws import FORECAST_SCHEMA, missing_hours
from orchestration.resources import RiskcastResource
from orchestration.sources.forecasts import ForecastBatch, ForecastSource, write_forecast_archive
from orchestration.warehouse import connect

TABLE = "weather_forecasts"
ARCHIVE_FOLDER = "forecasts"
DUCKDB_TYPES = {"issued_at": "TIMESTAMP", "valid_hour": "TIMESTAMP", "temperature_f": "DOUBLE",
                "precipitation_probability": "DOUBLE", "precipitation_in": "DOUBLE",
                "relative_humidity": "DOUBLE", "wind_speed_mph": "DOUBLE", "fetched_at": "TIMESTAMP",
                "source": "VARCHAR"}
TABLE_DDL = (f"CREATE TABLE IF NOT EXISTS raw.{TABLE} ("
             + ", ".join(f"{name} {DUCKDB_TYPES[name]}" for name in FORECAST_SCHEMA) + ")")


@dg.asset(group_name="raw", kinds={"duckdb", "parquet"})
def raw_weather_forecasts(context: dg.AssetExecutionContext, riskcast: RiskcastResource,
                          forecast_source: ForecastSource) -> dg.MaterializeResult:
    """Hourly weather forecasts for the jurisdiction's forecast point, one row per issue time and
    valid hour (UTC): temperature, precipitation probability and amount, humidity and wind speed."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    run = riskcast.run_config()

    if run.forecast_source == "none":
        total, newest = store_forecasts(settings.warehouse_path, empty_frame())
        reason = "the run file sets forecast_source: none"
        context.log.info(f"{jurisdiction.name}: no forecasts read, because {reason}; {total} rows stay stored")
        return dg.MaterializeResult(metadata=none_metadata(reason, total, newest))

    batch = forecast_source.read_forecasts(jurisdiction.forecast)
    incoming = batch.frame.unique(subset=["issued_at", "valid_hour"], keep="last", maintain_order=True)
    archive_files: list[Path] = []
    if batch.archive:
        archive_files = write_forecast_archive(incoming, settings.raw_dir / ARCHIVE_FOLDER)
    total, newest = store_forecasts(settings.warehouse_path, incoming)

    gaps = missing_hours(incoming, batch.expected_hours)
    log_summary(context, jurisdiction.name, batch, incoming, gaps, total, archive_files)
    return dg.MaterializeResult(metadata=forecast_metadata(batch, incoming, gaps, total, newest, archive_files))


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=FORECAST_SCHEMA)


def store_forecasts(warehouse: Path, frame: pl.DataFrame) -> tuple[int, str]:
    """Replace the stored rows of every issue time in ``frame`` with its rows, in one transaction.

    Returns the table's row count and its newest issue time (ISO, UTC), or "none" when it is empty.
    """
    arrow_table = frame.select(list(FORECAST_SCHEMA)).to_arrow()
    with connect(warehouse) as connection:
        connection.execute("BEGIN TRANSACTION")
        try:
            connection.execute("CREATE SCHEMA IF NOT EXISTS raw")
            connection.execute(TABLE_DDL)
            connection.register("incoming", arrow_table)
            connection.execute(f"DELETE FROM raw.{TABLE} WHERE issued_at IN (SELECT DISTINCT issued_at FROM incoming)")
            connection.execute(f"INSERT INTO raw.{TABLE} BY NAME SELECT * FROM incoming")
            total, newest = connection.execute(f"SELECT count(*), max(issued_at) FROM raw.{TABLE}").fetchone()
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.unregister("incoming")
    return total, newest.isoformat() if newest is not None else "none"


def log_summary(context: dg.AssetExecutionContext, name: str, batch: ForecastBatch, incoming: pl.DataFrame,
                gaps: dict[datetime, int], total: int, archive_files: list[Path]) -> None:
    issues = incoming["issued_at"].n_unique()
    where = f"{len(batch.requests)} NWS requests" if batch.archive else f"{len(batch.files)} archive files"
    context.log.info(f"{name}: stored {incoming.height} forecast rows of {issues} issues from {where}; "
                     f"{total} rows in raw.{TABLE}")
    for issued_at, count in sorted(gaps.items()):
        if count:
            context.log.warning(f"{name}: forecast issued {issued_at.isoformat()} lacks {count} of "
                                f"{batch.expected_hours} hours")
    for reason in batch.rejected_periods:
        context.log.warning(f"{name}: forecast period rejected: {reason}")
    for reason in batch.rejected_precipitation:
        context.log.warning(f"{name}: precipitation value rejected: {reason}")
    if archive_files:
        context.log.info(f"{name}: archived {len(archive_files)} issues in {archive_files[0].parent}")


def forecast_metadata(batch: ForecastBatch, incoming: pl.DataFrame, gaps: dict[datetime, int], total: int, newest: str,
                      archive_files: list[Path]) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(total),
        "issues_stored": dg.MetadataValue.int(incoming["issued_at"].n_unique()),
        "rows_stored": dg.MetadataValue.int(incoming.height),
        "newest_issue": dg.MetadataValue.text(newest),
        "missing_hours": dg.MetadataValue.int(sum(gaps.values())),
        "missing_hours_per_issue": dg.MetadataValue.json(
            {issued_at.isoformat(): count for issued_at, count in sorted(gaps.items())}),
        "expected_hours": dg.MetadataValue.int(batch.expected_hours),
        "rejected_periods": dg.MetadataValue.int(len(batch.rejected_periods)),
        "rejected_precipitation_values": dg.MetadataValue.int(len(batch.rejected_precipitation)),
        "rejection_reasons": dg.MetadataValue.json(batch.rejected_periods + batch.rejected_precipitation),
    }
    if batch.archive:
        return metadata | {"requests": dg.MetadataValue.int(len(batch.requests)),
                           "archive_files": dg.MetadataValue.json([path.name for path in archive_files])}
    return metadata | {"files": dg.MetadataValue.int(len(batch.files))}


def none_metadata(reason: str, total: int, newest: str) -> dict[str, dg.MetadataValue]:
    return {
        "dagster/row_count": dg.MetadataValue.int(total),
        "issues_stored": dg.MetadataValue.int(0),
        "rows_stored": dg.MetadataValue.int(0),
        "newest_issue": dg.MetadataValue.text(newest),
        "reason": dg.MetadataValue.text(reason),
    }
