"""Raw extracts (group ``raw``): portal data as delivered, every value as text.

Each asset replaces its DuckDB table in the ``raw`` schema and its Parquet copy under
``RISKCAST_HOME/<jurisdiction>/raw``, so re-ingesting the same extracts changes nothing.
"""


from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.ingest import ExtractTable
from orchestration.resources import CityDataSource, RiskcastResource
from orchestration.warehouse import connect

WEATHER_TEXT_COLUMNS = ("station", "date", "report_type", "temperature_f", "relative_humidity",
                        "wind_speed_mph", "precipitation_in", "source_file")


def store_raw_table(warehouse: Path, raw_dir: Path, table: str, frame: pl.DataFrame) -> None:
    """Replace ``raw.<table>`` and its Parquet copy with ``frame``."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(raw_dir / f"{table}.parquet", compression="zstd")
    arrow_table = frame.to_arrow()
    with connect(warehouse) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS raw")
        connection.register("incoming", arrow_table)
        connection.execute(f"CREATE OR REPLACE TABLE raw.{table} AS SELECT * FROM incoming")
        connection.unregister("incoming")


def extract_metadata(extract: ExtractTable) -> dict[str, dg.MetadataValue]:
    return {
        "dagster/row_count": dg.MetadataValue.int(extract.frame.height),
        "files": dg.MetadataValue.text(", ".join(path.name for path in extract.files)),
        "folder": dg.MetadataValue.path(str(extract.files[0].parent)),
        "blank_rows_skipped": dg.MetadataValue.int(extract.blank_rows_skipped),
    }


@dg.asset(group_name="raw", kinds={"duckdb", "parquet"})
def raw_crime_incidents(context: dg.AssetExecutionContext, riskcast: RiskcastResource,
                        city_source: CityDataSource) -> dg.MaterializeResult:
    """Crime incident rows from the portal extracts: place, time and category fields only."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    extract = city_source.crime_incidents(jurisdiction)
    store_raw_table(settings.warehouse_path, settings.raw_dir, "crime_incidents", extract.frame)

    distinct_ids = extract.frame["id"].drop_nulls().n_unique()
    without_id = extract.frame.filter(pl.col("id").is_null() | (pl.col("id").str.strip_chars() == "")).height
    context.log.info(f"{jurisdiction.name}: stored {extract.frame.height} crime rows "
                     f"({distinct_ids} distinct ids, {without_id} without an id, which staging "
                     f"leaves out) from {len(extract.files)} files")
    return dg.MaterializeResult(metadata={
        **extract_metadata(extract),
        "distinct_ids": dg.MetadataValue.int(distinct_ids),
        "rows_without_id": dg.MetadataValue.int(without_id),
        "synthetic": dg.MetadataValue.bool(jurisdiction.synthetic),
    })


@dg.asset(group_name="raw", kinds={"duckdb", "parquet"})
def raw_weather_observations(context: dg.AssetExecutionContext, riskcast: RiskcastResource,
                             city_source: CityDataSource) -> dg.MaterializeResult:
    """Hourly weather reports of every report type, with times in the station's Local Standard Time."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    extract = city_source.weather_observations(jurisdiction)
    if extract is None:
        frame = pl.DataFrame(schema={name: pl.String for name in WEATHER_TEXT_COLUMNS}
                             | {"source_row": pl.Int64})
        store_raw_table(settings.warehouse_path, settings.raw_dir, "weather_observations", frame)
        context.log.warning(f"{jurisdiction.name}: no weather source configured; weather features "
                            f"will be marked missing")
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(0)})

    store_raw_table(settings.warehouse_path, settings.raw_dir, "weather_observations", extract.frame)
    context.log.info(f"{jurisdiction.name}: stored {extract.frame.height} weather reports "
                     f"from {len(extract.files)} files")
    return dg.MaterializeResult(metadata=extract_metadata(extract))


@dg.asset(group_name="raw", kinds={"duckdb", "parquet"})
def raw_cells(context: dg.AssetExecutionContext, riskcast: RiskcastResource,
              city_source: CityDataSource) -> dg.MaterializeResult:
    """Boundaries of the forecasting cells (census tracts or grid cells) as GeoJSON geometries."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    extract = city_source.cells(jurisdiction)
    store_raw_table(settings.warehouse_path, settings.raw_dir, "cells", extract.frame)
    context.log.info(f"{jurisdiction.name}: stored {extract.frame.height} cells "
                     f"({jurisdiction.cells.spatial_unit})")
    return dg.MaterializeResult(metadata={
        **extract_metadata(extract),
        "spatial_unit": dg.MetadataValue.text(jurisdiction.cells.spatial_unit),
    })
