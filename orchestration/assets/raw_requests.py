"""Raw 311 service requests (group ``raw``): every configured dataset in one table, values as text.

Local extracts replace ``raw.service_requests`` and its Parquet copy under
``RISKCAST_HOME/<jurisdiction>/raw``, so ingesting the same files twice changes nothing.

A Socrata run pulls each dataset incrementally instead: the rows updated since the dataset's
watermark in ``raw.ingest_state``, less ``api.lookback_days``, merged by (request_type, id). A
pulled row replaces the stored rows of its request unless one of them already has the same
values, and the dataset's new watermark is stored in the same transaction. A rerun with no
changes on the portal leaves the table as it was.

A jurisdiction without 311 datasets gets the table with its columns and no rows, so the dbt
models build for every jurisdiction.
"""

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.assets.raw import (
    INGEST_STATE_DDL,
    extract_metadata,
    lookback_start,
    read_watermark,
    store_raw_table,
    write_parquet_copy,
)
from orchestration.jurisdiction import JurisdictionConfig, ServiceRequestSourceConfig
from orchestration.resources import RiskcastResource
from orchestration.settings import RiskcastSettings
from orchestration.sources.service_requests import (
    RAW_REQUEST_COLUMNS,
    RequestPull,
    ServiceRequestSource,
    SocrataServiceRequestSource,
    source_name,
)
from orchestration.warehouse import connect

TABLE = "service_requests"
# Values of a mapped ``duplicate`` column that mark a duplicate request. Staging uses the same list.
DUPLICATE_FLAG_VALUES = ("true", "t", "y", "yes", "1")


@dg.asset(group_name="raw", kinds={"duckdb", "parquet"})
def raw_service_requests(context: dg.AssetExecutionContext, riskcast: RiskcastResource,
                         requests_source: ServiceRequestSource) -> dg.MaterializeResult:
    """311 service requests of every configured dataset: request type, created and closed times,
    status and location, with the source file and row of each."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    if isinstance(requests_source, SocrataServiceRequestSource):
        return ingest_socrata_requests(context, jurisdiction, settings, requests_source)

    extract = requests_source.service_requests(jurisdiction)
    store_raw_table(settings.warehouse_path, settings.raw_dir, TABLE, extract.frame)
    summary = summarize_requests(extract.frame, jurisdiction.service_requests)

    if not jurisdiction.service_requests:
        context.log.warning(f"{jurisdiction.name}: no 311 dataset configured, so raw.{TABLE} is "
                            f"empty and 311 features will be missing")
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(0)})

    context.log.info(f"{jurisdiction.name}: stored {extract.frame.height} 311 rows from "
                     f"{len(extract.files)} files ({summary.log_line()})")
    return dg.MaterializeResult(metadata={
        **extract_metadata(extract),
        **summary.metadata(),
        "synthetic": dg.MetadataValue.bool(jurisdiction.synthetic),
    })


# Summary of the stored rows.

@dataclass(frozen=True)
class RequestSummary:
    """Counts of a raw 311 table, overall and per request type (a frame with one row per type)."""

    rows: int
    rows_without_id: int
    repeated_id_rows: int
    duplicate_status_rows: int
    per_type: pl.DataFrame

    def log_line(self) -> str:
        per_type = ", ".join(f"{row['request_type']} {row['rows']}" for row in self.per_type.iter_rows(named=True))
        return (f"{per_type or 'no rows'}; {self.rows_without_id} without an id, "
                f"{self.repeated_id_rows} rows that repeat a request id, "
                f"{self.duplicate_status_rows} marked as duplicates")

    def metadata(self) -> dict[str, dg.MetadataValue]:
        first = self.per_type["first_created"].drop_nulls().min() if self.per_type.height else None
        last = self.per_type["last_created"].drop_nulls().max() if self.per_type.height else None
        return {
            "dagster/row_count": dg.MetadataValue.int(self.rows),
            "rows_per_request_type": dg.MetadataValue.md(markdown_table(self.per_type)),
            "first_created": dg.MetadataValue.text(str(first) if first else "none"),
            "last_created": dg.MetadataValue.text(str(last) if last else "none"),
            "rows_without_id": dg.MetadataValue.int(self.rows_without_id),
            "repeated_id_rows": dg.MetadataValue.int(self.repeated_id_rows),
            "duplicate_status_rows": dg.MetadataValue.int(self.duplicate_status_rows),
        }


def created_date_expression(datasets: list[ServiceRequestSourceConfig]) -> pl.Expr:
    """Parse ``created_on`` to a date with the format of each row's dataset and source."""
    expression = pl.lit(None, dtype=pl.Date)
    for dataset in datasets:
        parsed = pl.col("created_on").str.strptime(pl.Datetime, dataset.timestamp_format, strict=False)
        if dataset.api is not None:
            from_api = pl.col("created_on").str.strptime(pl.Datetime, dataset.api.timestamp_format, strict=False)
            parsed = pl.when(pl.col("source_file").str.starts_with("socrata:")).then(from_api).otherwise(parsed)
        expression = pl.when(pl.col("dataset") == dataset.request_type).then(parsed.dt.date()).otherwise(expression)
    return expression


def duplicate_expression(datasets: list[ServiceRequestSourceConfig]) -> pl.Expr:
    """Mark rows whose status is one of their dataset's duplicate statuses, or whose flag is set."""
    flagged = pl.col("duplicate").str.strip_chars().str.to_lowercase().is_in(DUPLICATE_FLAG_VALUES)
    expression = flagged.fill_null(False)
    for dataset in datasets:
        by_status = (pl.col("dataset") == dataset.request_type) & pl.col("status").str.strip_chars().is_in(
            dataset.duplicate_statuses).fill_null(False)
        expression = expression | by_status
    return expression


def summarize_requests(frame: pl.DataFrame, datasets: list[ServiceRequestSourceConfig]) -> RequestSummary:
    has_id = pl.col("id").is_not_null() & (pl.col("id").str.strip_chars() != "")
    marked = frame.with_columns(
        created_date_expression(datasets).alias("created_date"),
        duplicate_expression(datasets).alias("is_duplicate"),
        (has_id & pl.struct("request_type", "id").is_duplicated()).alias("repeats_id"),
    )
    per_type = (
        marked.group_by("request_type")
        .agg(
            pl.len().alias("rows"),
            pl.col("id").filter(has_id).n_unique().alias("distinct_ids"),
            pl.col("repeats_id").sum().alias("repeated_id_rows"),
            pl.col("is_duplicate").sum().alias("duplicate_status_rows"),
            pl.col("created_date").min().alias("first_created"),
            pl.col("created_date").max().alias("last_created"),
        )
        .sort("request_type")
    )
    return RequestSummary(
        rows=frame.height,
        rows_without_id=frame.filter(~has_id.fill_null(False)).height,
        repeated_id_rows=int(marked["repeats_id"].sum()),
        duplicate_status_rows=int(marked["is_duplicate"].sum()),
        per_type=per_type,
    )


def markdown_table(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "no rows"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    lines = ["| " + " | ".join("" if value is None else str(value) for value in row) + " |"
             for row in frame.iter_rows()]
    return "\n".join([header, rule, *lines])


# Incremental pulls from Socrata.

@dataclass(frozen=True)
class RequestMergeCounts:
    """Outcome of merging one dataset's pull: every kept row is new, replaced or unchanged."""

    dataset: str
    pulled_since: str | None
    rows_received: int
    rows_kept: int
    new: int
    replaced: int
    unchanged: int
    watermark_before: str | None
    watermark_after: str | None
    requests: int


def raw_table_ddl() -> str:
    columns = ", ".join(f"{name} BIGINT" if name == "source_row" else f"{name} VARCHAR"
                        for name in RAW_REQUEST_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS raw.{TABLE} ({columns})"


def ingest_socrata_requests(context: dg.AssetExecutionContext, jurisdiction: JurisdictionConfig,
                            settings: RiskcastSettings, source: SocrataServiceRequestSource) -> dg.MaterializeResult:
    """Pull each dataset's rows changed since its watermark and merge them into ``raw.service_requests``."""
    warehouse = settings.warehouse_path
    with connect(warehouse) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS raw")
        connection.execute(raw_table_ddl())

    outcomes = []
    for dataset in jurisdiction.service_requests:
        outcome = pull_and_merge(context, jurisdiction, warehouse, source, dataset)
        outcomes.append(outcome)
    write_parquet_copy(warehouse, settings.raw_dir, TABLE)

    with connect(warehouse, read_only=True) as connection:
        stored = connection.sql(f"SELECT * FROM raw.{TABLE}").pl()
    summary = summarize_requests(stored, jurisdiction.service_requests)
    context.log.info(f"{jurisdiction.name}: {stored.height} 311 rows stored after pulling "
                     f"{len(outcomes)} datasets ({summary.log_line()})")
    return dg.MaterializeResult(metadata={
        **summary.metadata(),
        "pulls": dg.MetadataValue.md(pulls_table(outcomes)),
        "watermarks": dg.MetadataValue.json({outcome.dataset: outcome.watermark_after for outcome in outcomes}),
        # The newest watermark among the datasets; each dataset's own is in "watermarks".
        "last_watermark": dg.MetadataValue.text(
            max((outcome.watermark_after for outcome in outcomes if outcome.watermark_after), default="none")),
        "rows_pulled": dg.MetadataValue.int(sum(outcome.rows_received for outcome in outcomes)),
        "rows_new": dg.MetadataValue.int(sum(outcome.new for outcome in outcomes)),
        "rows_replaced": dg.MetadataValue.int(sum(outcome.replaced for outcome in outcomes)),
        "rows_unchanged": dg.MetadataValue.int(sum(outcome.unchanged for outcome in outcomes)),
        "requests": dg.MetadataValue.int(sum(outcome.requests for outcome in outcomes)),
        "synthetic": dg.MetadataValue.bool(jurisdiction.synthetic),
    })


def pulls_table(outcomes: list[RequestMergeCounts]) -> str:
    rows = [asdict(outcome) for outcome in outcomes]
    text_fields = ("dataset", "pulled_since", "watermark_before", "watermark_after")
    schema = {name: pl.String if name in text_fields else pl.Int64 for name in RequestMergeCounts.__dataclass_fields__}
    return markdown_table(pl.DataFrame(rows, schema=schema))


def pull_and_merge(context: dg.AssetExecutionContext, jurisdiction: JurisdictionConfig, warehouse: Path,
                   source: SocrataServiceRequestSource, dataset: ServiceRequestSourceConfig) -> RequestMergeCounts:
    api = source.api_config(dataset)
    key = source_name(api)
    watermark_before = read_watermark(warehouse, key)
    since = lookback_start(watermark_before, api.lookback_days)
    context.log.info(f"{jurisdiction.name}: pulling 311 {dataset.request_type} rows of {key} updated since "
                     f"{since or 'the start'} (stored watermark {watermark_before}, lookback "
                     f"{api.lookback_days} days)")

    pull = source.pull_dataset(dataset, since)
    watermark_after = max(filter(None, (watermark_before, pull.watermark)), default=None)
    new, replaced = merge_request_pull(warehouse, pull, watermark_before, watermark_after)
    outcome = RequestMergeCounts(
        dataset=dataset.request_type, pulled_since=since, rows_received=pull.rows_received,
        rows_kept=pull.frame.height, new=new, replaced=replaced,
        unchanged=pull.frame.height - new - replaced, watermark_before=watermark_before,
        watermark_after=watermark_after, requests=len(pull.requests),
    )
    context.log.info(f"{jurisdiction.name}: 311 {dataset.request_type}: received {outcome.rows_received} rows "
                     f"in {outcome.requests} requests, kept {outcome.rows_kept} after keeping the latest row "
                     f"per request id: {new} new, {replaced} replaced, {outcome.unchanged} unchanged. "
                     f"Watermark {watermark_before} -> {watermark_after}")
    return outcome


def merge_request_pull(warehouse: Path, pull: RequestPull, watermark_before: str | None,
                       watermark_after: str | None) -> tuple[int, int]:
    """Merge one pull into ``raw.service_requests`` and store its watermark, in one transaction.

    Returns the numbers of new and replaced requests. A pulled row replaces the stored rows with
    its (request_type, id), and those of its dataset with its id, which covers a request whose
    type changed. It leaves them alone when one of them already has the same values;
    ``source_row`` is not compared, because it is a position in the pull. Raises
    ``RuntimeError`` when another run changed the stored watermark since ``watermark_before``.
    """
    compared = [name for name in RAW_REQUEST_COLUMNS if name != "source_row"]
    differs = " OR ".join(f'stored."{name}" IS DISTINCT FROM incoming."{name}"' for name in compared)
    same_request = ("stored.id = {row}.id AND (stored.request_type = {row}.request_type "
                    "OR stored.source_file = {row}.source_file)")
    arrow_table = pull.frame.to_arrow()

    with connect(warehouse) as connection:
        connection.execute("BEGIN TRANSACTION")
        try:
            connection.execute(INGEST_STATE_DDL)
            connection.register("incoming", arrow_table)
            stored_watermark = connection.execute(
                "SELECT watermark FROM raw.ingest_state WHERE source = ?", [pull.source]).fetchone()
            if (stored_watermark[0] if stored_watermark else None) != watermark_before:
                raise RuntimeError(f"the watermark of {pull.source} changed from {watermark_before} to "
                                   f"{stored_watermark[0] if stored_watermark else None} during this "
                                   f"pull, so another run is ingesting it. Run the job again when it ends")

            connection.execute(f"""
                CREATE OR REPLACE TEMP TABLE request_changes AS
                SELECT incoming.*,
                       EXISTS (SELECT 1 FROM raw.{TABLE} stored
                               WHERE {same_request.format(row='incoming')}) AS is_stored
                FROM incoming
                WHERE NOT EXISTS (
                    SELECT 1 FROM raw.{TABLE} stored
                    WHERE stored.request_type = incoming.request_type AND stored.id = incoming.id
                      AND NOT ({differs})
                )
            """)
            new, replaced = connection.execute(
                "SELECT count(*) FILTER (WHERE NOT is_stored), count(*) FILTER (WHERE is_stored) "
                "FROM request_changes").fetchone()

            connection.execute(f"DELETE FROM raw.{TABLE} stored WHERE EXISTS ("
                               f"SELECT 1 FROM request_changes changed "
                               f"WHERE {same_request.format(row='changed')})")
            connection.execute(f"INSERT INTO raw.{TABLE} BY NAME SELECT * EXCLUDE (is_stored) FROM request_changes")
            connection.execute("INSERT OR REPLACE INTO raw.ingest_state VALUES (?, ?, ?, ?)",
                               [pull.source, watermark_after, pull.rows_received,
                                datetime.now(timezone.utc).replace(tzinfo=None)])
            connection.execute("DROP TABLE request_changes")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.unregister("incoming")
    return new, replaced
