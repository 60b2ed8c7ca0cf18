"""Crime records an ingest changed, and the hourly partitions that must be rebuilt for them.

Portals revise published records: a corrected category, moved coordinates, a changed time. Raw
storage keeps one table per source, so an ingest compares the incoming rows with the stored ones
by ``id`` on the canonical fields. Provenance columns (file name and row number) are left out, so
the same record read from a renamed file is unchanged. A changed record touches the partition of
its old time and the partition of its new time: the counts of both hours are stale, and so are
the features and scores that read them.

Times are turned into UTC hours with the rules staging applies. ``time_basis: utc`` values are
instants. Local wall-clock values take the first occurrence of an ambiguous fall-back time, and a
nonexistent spring-forward time moves forward by the gap (see macros/local_to_utc.sql).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from orchestration.jurisdiction import OPTIONAL_CRIME_FIELDS, REQUIRED_CRIME_FIELDS, JurisdictionConfig

COMPARED_FIELDS = REQUIRED_CRIME_FIELDS + OPTIONAL_CRIME_FIELDS
PARTITION_FORMAT = "%Y-%m-%d-%H:%M"


@dataclass(frozen=True)
class CrimeChanges:
    """Records an ingest added, revised or removed, and the UTC hourly partitions they touch."""

    new_ids: list[str] = field(default_factory=list)
    revised_ids: list[str] = field(default_factory=list)
    removed_ids: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return len(self.new_ids) + len(self.revised_ids) + len(self.removed_ids)


def latest_versions(frame: pl.DataFrame, jurisdiction: JurisdictionConfig) -> pl.DataFrame:
    """Keep the row per id that staging keeps: the latest ``updated_on``, then the last row read."""
    updated = parse_times(pl.col("updated_on"), jurisdiction) if "updated_on" in frame.columns else pl.lit(None)
    ordered = frame.with_columns(updated.alias("_updated"), pl.int_range(pl.len()).alias("_position"))
    ordered = ordered.sort(["id", "_updated", "_position"], nulls_last=False)
    return ordered.unique(subset="id", keep="last", maintain_order=True).drop("_updated", "_position")


def compare_versions(stored: pl.DataFrame, incoming: pl.DataFrame,
                     jurisdiction: JurisdictionConfig) -> CrimeChanges:
    """Compare two versions of a crime table by id, and list the changed ids and their partitions.

    Both frames contain the canonical text fields. A record is revised when any canonical field
    differs, and then its old and its new occurrence hour are both affected.
    """
    fields = [name for name in COMPARED_FIELDS if name in stored.columns and name in incoming.columns]
    before = latest_versions(stored.select(fields).filter(pl.col("id").is_not_null()), jurisdiction)
    after = latest_versions(incoming.select(fields).filter(pl.col("id").is_not_null()), jurisdiction)

    joined = before.with_columns(pl.lit(True).alias("in_before")).join(
        after.with_columns(pl.lit(True).alias("in_after")), on="id", how="full", suffix="_new", coalesce=True)
    in_before = pl.col("in_before").fill_null(False)
    in_after = pl.col("in_after").fill_null(False)
    differs = pl.any_horizontal([pl.col(name).ne_missing(pl.col(f"{name}_new")) for name in fields if name != "id"])

    new = joined.filter(~in_before & in_after)
    removed = joined.filter(in_before & ~in_after)
    revised = joined.filter(in_before & in_after & differs)

    touched = pl.concat([revised["date"], revised["date_new"], new["date_new"], removed["date"]])
    partitions = utc_partitions(touched, jurisdiction)
    return CrimeChanges(new_ids=sorted(new["id"].to_list()), revised_ids=sorted(revised["id"].to_list()),
                        removed_ids=sorted(removed["id"].to_list()), partitions=partitions)


def parse_times(column: pl.Expr, jurisdiction: JurisdictionConfig) -> pl.Expr:
    """Parse crime time strings with the extract format, then the API format, as naive timestamps.

    The result is local or UTC, following ``crimes.time_basis``. Values matching neither format are null.
    """
    crimes = jurisdiction.crimes
    formats = [crimes.timestamp_format] + ([crimes.api.timestamp_format] if crimes.api else [])
    if crimes.time_basis == "utc":
        return pl.coalesce([column.str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False)
                            for fmt in formats]).dt.replace_time_zone(None)
    return pl.coalesce([column.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in formats])


def utc_hours(values: pl.Series, jurisdiction: JurisdictionConfig) -> pl.Series:
    """Parse crime time strings into naive UTC hours with staging's rules; invalid values become null."""
    frame = pl.DataFrame({"value": values.cast(pl.String)})
    parsed = parse_times(pl.col("value"), jurisdiction)
    if jurisdiction.crimes.time_basis == "utc":
        return frame.select(parsed.dt.truncate("1h"))["value"]

    # Nonexistent spring-forward times move forward by the gap, so 02:30 is read as 03:30.
    zoned = parsed.dt.replace_time_zone(jurisdiction.time_zone, ambiguous="earliest", non_existent="null")
    shifted = (parsed + pl.duration(hours=1)).dt.replace_time_zone(
        jurisdiction.time_zone, ambiguous="earliest", non_existent="null")
    utc = pl.coalesce([zoned, shifted]).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return frame.select(utc.dt.truncate("1h").alias("value"))["value"]


def utc_partitions(values: pl.Series, jurisdiction: JurisdictionConfig) -> list[str]:
    """Return the sorted, distinct hourly partition keys of the given crime time strings."""
    hours = utc_hours(values.drop_nulls(), jurisdiction).drop_nulls().unique().sort()
    return [moment.strftime(PARTITION_FORMAT) for moment in hours.to_list()]
