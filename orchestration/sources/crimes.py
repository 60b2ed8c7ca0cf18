"""Crime incidents: a folder of portal exports, or the portal's Socrata API.

``CrimeSource`` is the abstract source that the raw crime asset depends on. ``LocalCrimeSource``
reads a folder of exports (CSV, CSV.gz, JSON or Parquet), and for the synthetic demo jurisdiction
writes that folder first when it is missing. ``SocrataCrimeSource`` pulls the rows updated since
a watermark from the jurisdiction's ``crimes.api`` dataset, for incremental ingest.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.ingest import (
    ExtractTable,
    check_crime_timestamps,
    read_crime_extracts,
    select_mapped_columns,
    with_all_crime_fields,
)
from orchestration.jurisdiction import ConfigError, CrimeApiConfig, JurisdictionConfig
from orchestration.memory_limits import memory_limit_bytes
from orchestration.resources import ensure_extracts_folder
from orchestration.socrata import SocrataDataset, pull_updated_since

logger = logging.getLogger(__name__)


class CrimeSource(dg.ConfigurableResource, ABC):
    """A source of one city's crime incident records."""

    memory_limit_gb: float | None = None

    @abstractmethod
    def crime_incidents(self, jurisdiction: JurisdictionConfig) -> ExtractTable: ...

    def memory_limit(self) -> int:
        """Return the ingest's memory budget in bytes: the run file's ``memory_limit_gb``, else 55% of RAM."""
        return memory_limit_bytes(self.memory_limit_gb)


class LocalCrimeSource(CrimeSource):
    """A folder of portal exports laid out as the jurisdiction file's crime pattern describes."""

    folder: str
    generate_demo: bool = False

    def extracts_folder(self) -> Path:
        return ensure_extracts_folder(Path(self.folder), self.generate_demo)

    def crime_incidents(self, jurisdiction: JurisdictionConfig) -> ExtractTable:
        return read_crime_extracts(self.extracts_folder(), jurisdiction.crimes, self.memory_limit())


# Every crime record has these fields, so a pull whose rows lack one of them has a wrong mapping.
# Other fields, coordinates included, are null on some records and Socrata leaves null fields out
# of the JSON, so a small pull can lack them on every row.
API_REQUIRED_CRIME_FIELDS = ("id", "date", "updated_on")


@dataclass(frozen=True)
class CrimePull:
    """Crime rows changed since a watermark, renamed to canonical fields, with the pull's bookkeeping."""

    frame: pl.DataFrame
    source: str
    watermark: str | None
    requests: list[str]


class SocrataCrimeSource(CrimeSource):
    """Crimes pulled incrementally from the jurisdiction's Socrata dataset."""

    base_url_override: str | None = None

    def api_config(self, jurisdiction: JurisdictionConfig) -> CrimeApiConfig:
        api = jurisdiction.crimes.api
        if api is None:
            raise ConfigError(f"jurisdiction {jurisdiction.name!r} has no crimes.api block, so crimes "
                              f"cannot be pulled from Socrata. Add the block or set source: extracts")
        return api

    def source_name(self, jurisdiction: JurisdictionConfig) -> str:
        """Return the ``source_file`` value of pulled rows, which is also their ingest-state key."""
        return f"socrata:{self.api_config(jurisdiction).dataset_id}"

    def dataset(self, jurisdiction: JurisdictionConfig) -> SocrataDataset:
        api = self.api_config(jurisdiction)
        return SocrataDataset(base_url=self.base_url_override or api.base_url,
                              dataset_id=api.dataset_id, page_size=api.page_size)

    def pull_crimes(self, jurisdiction: JurisdictionConfig, since: str | None) -> CrimePull:
        """Pull every crime row updated at or after ``since`` (all rows when None).

        The returned watermark is the largest ``:updated_at`` pulled, or None when no row matched.
        Raises ``SocrataError`` when the pull fails and ``ExtractError`` when a row lacks a
        required field or has a date that does not parse with ``crimes.api.timestamp_format``.
        """
        api = self.api_config(jurisdiction)
        source = self.source_name(jurisdiction)
        result = pull_updated_since(self.dataset(jurisdiction), since)

        frame = canonical_crime_frame(result.rows, api, source)
        label = Path(source)
        check_crime_timestamps(frame, label, api.columns, api.timestamp_format)
        logger.info("pulled %d crime rows from %s in %d requests", frame.height, source, len(result.requests))
        return CrimePull(frame=frame, source=source, watermark=result.watermark, requests=result.requests)

    def crime_incidents(self, jurisdiction: JurisdictionConfig) -> ExtractTable:
        """Pull the whole dataset. The raw asset pulls incrementally with ``pull_crimes`` instead."""
        return ExtractTable(self.pull_crimes(jurisdiction, None).frame, [])


def canonical_crime_frame(rows: list[dict[str, str]], api: CrimeApiConfig, source: str) -> pl.DataFrame:
    """Build a text frame of the mapped API fields, renamed to canonical names, with provenance.

    An API field that no row carries is treated as absent, so an optional field becomes null and
    a missing required field raises ``ExtractError``. ``source_row`` is the 1-based position in
    the pull.
    """
    carried = {name for row in rows for name in row}
    fields = [field for field in dict.fromkeys(api.columns.values()) if field in carried or not rows]
    records = [{field: row.get(field) for field in fields} for row in rows]
    raw = pl.DataFrame(records, schema={field: pl.String for field in fields})

    frame = select_mapped_columns(raw, Path(source), api.columns, API_REQUIRED_CRIME_FIELDS)
    return with_all_crime_fields(frame.select(list(api.columns))).with_columns(
        pl.lit(source).alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("source_row"),
    )
