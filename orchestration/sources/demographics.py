"""Demographics sources: population, race and ethnicity counts, income and poverty per area.

``LocalDemographicsSource`` reads CSV (or Parquet) tables from the extracts folder, such as
American Community Survey (ACS) exports of block groups or a city's community-area profiles. Each
row keeps the area id, the mapped canonical fields as text and its file and row number. A table
with ``id_length`` carries finer areas than its layer, such as 12-digit block-group GEOIDs for a
tract layer. Its ``area_id`` is the id's prefix, and the warehouse sums counts over the rows that
share one.

There is no live implementation. ACS tables come from the Census Bureau's API, not from a
Socrata portal, and change once a year, so a downloaded table is the practical source.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.geography import check_extracts_folder, normalize_id, parse_number_text
from orchestration.ingest import ExtractError, drop_blank_rows, read_text_table, select_mapped_columns, with_provenance
from orchestration.jurisdiction import DEMOGRAPHIC_COUNT_FIELDS, DEMOGRAPHIC_FIELDS, DemographicTableConfig
from orchestration.resources import ensure_extracts_folder

logger = logging.getLogger(__name__)

DEMOGRAPHIC_SCHEMA = {
    "table_name": pl.String,
    "layer": pl.String,
    "area_id": pl.String,
    "source_id": pl.String,
    **{name: pl.String for name in DEMOGRAPHIC_FIELDS},
    "source_file": pl.String,
    "source_row": pl.Int64,
}


@dataclass(frozen=True)
class DemographicTable:
    """The raw rows of one table, with the rows left out for lack of an id."""

    name: str
    frame: pl.DataFrame
    path: Path
    blank_rows_skipped: int
    rows_without_id: int


class DemographicsSource(dg.ConfigurableResource, ABC):
    """A source of demographic tables keyed by the feature ids of a boundary layer."""

    @abstractmethod
    def read_table(self, table: DemographicTableConfig) -> DemographicTable:
        """Return the raw rows of one table. Raises ``ExtractError`` on an unusable table."""


class LocalDemographicsSource(DemographicsSource):
    """CSV or Parquet tables in a folder of exports, at the paths the jurisdiction file gives."""

    folder: str
    generate_demo: bool = False

    def read_table(self, table: DemographicTableConfig) -> DemographicTable:
        folder = ensure_extracts_folder(Path(self.folder), self.generate_demo)
        if self.generate_demo and not (folder / table.file).is_file():
            raise ExtractError(f"the demo extracts folder {folder} has no {table.file}, so it was "
                               f"written by an older Riskcast. Delete the folder and run again to "
                               f"write it anew")
        return read_demographic_table(folder, table)


def empty_demographic_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=DEMOGRAPHIC_SCHEMA)


def read_demographic_table(folder: Path, table: DemographicTableConfig) -> DemographicTable:
    """Read one table: ids normalized and cut to ``id_length``, values checked to be numbers."""
    check_extracts_folder(folder)
    path = folder / table.file
    if not path.is_file():
        raise ExtractError(f"demographics table {table.name!r} not found: {path}; set its file in "
                           f"the jurisdiction file or add it to the extracts folder")

    # Provenance first, so that source_row still counts the label rows skipped below.
    frame = with_provenance(read_text_table(path), path).slice(table.label_rows)
    mapped = {"source_id": table.id_column, **table.columns}
    frame = select_mapped_columns(frame, path, mapped | {"source_file": "source_file", "source_row": "source_row"},
                                  tuple(mapped))
    frame, blank_rows = drop_blank_rows(frame)

    rows = []
    without_id = 0
    for row in frame.iter_rows(named=True):
        where = f"{path}, row {row['source_row']}, column {table.id_column!r}"
        source_id = normalize_id(row["source_id"], table.id_type, where)
        if source_id is None:
            without_id += 1
            continue
        rows.append(canonical_row(row, source_id, table, path))

    result = pl.DataFrame(rows, schema=DEMOGRAPHIC_SCHEMA)
    if result.height == 0:
        raise ExtractError(f"{path} has no rows with an id in column {table.id_column!r}; check "
                           f"the file and label_rows in the jurisdiction file")
    if table.id_length is None:
        repeated = result.filter(pl.col("area_id").is_duplicated())["area_id"].unique().sort().to_list()
        if repeated:
            raise ExtractError(f"{path}: ids in column {table.id_column!r} repeat: {repeated[:10]}. "
                               f"Set id_length to aggregate finer areas, or remove the duplicates")
    logger.info("read %d rows of demographics table %s from %s (%d without an id, %d blank)",
                result.height, table.name, path, without_id, blank_rows)
    return DemographicTable(table.name, result, path, blank_rows, without_id)


def canonical_row(row: dict, source_id: str, table: DemographicTableConfig, path: Path) -> dict:
    """Build one raw row: the area id and every canonical field, numbers as text."""
    area_id = source_id
    if table.id_length is not None:
        if len(source_id) < table.id_length:
            raise ExtractError(f"{path}, row {row['source_row']}: id {source_id!r} is shorter than "
                               f"id_length {table.id_length}; check id_column and id_length")
        area_id = source_id[:table.id_length]

    values = {}
    for field in DEMOGRAPHIC_FIELDS:
        if field in table.columns:
            where = f"{path}, row {row['source_row']}, column {table.columns[field]!r}"
            values[field] = parse_number_text(row[field], where)
        else:
            values[field] = None
    check_group_counts(values, row["source_row"], table, path)
    return {"table_name": table.name, "layer": table.layer, "area_id": area_id, "source_id": source_id,
            **values, "source_file": path.name, "source_row": row["source_row"]}


def check_group_counts(values: dict[str, str | None], source_row: int, table: DemographicTableConfig,
                       path: Path) -> None:
    """Raise when a row's group counts add up to more than its population.

    The race and ethnicity groups are disjoint parts of the population (as in ACS table B03002),
    so a larger sum gives shares over 1 and a negative ``other``. The warehouse's range tests
    would then fail the whole dbt build without naming the file or row, so the row is named here.
    """
    population = values["population"]
    groups = [field for field in DEMOGRAPHIC_COUNT_FIELDS if field != "population" and values[field] is not None]
    if population is None or not groups:
        return

    total = sum(float(values[field]) for field in groups)
    if total > float(population):
        columns = ", ".join(repr(table.columns[field]) for field in groups)
        raise ExtractError(
            f"{path}, row {source_row}: the group counts in columns {columns} add up to {total:g}, "
            f"more than the population {population} in column {table.columns['population']!r}, so "
            f"their shares would exceed 1. Check that these columns map counts of people, not "
            f"percentages, and that they and the population come from the same table"
        )
