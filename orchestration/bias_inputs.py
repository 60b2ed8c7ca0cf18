"""Warehouse inputs of the bias audit in ``ml.bias``.

``read_incidents_for_arrest_audit`` returns the located incidents of a UTC window with their cell,
the portal's crime type and its arrest flag, the input of ``ml.bias.arrest_share_by_category``.
Cells come from ``intermediate.int_incidents__located``, which places each incident in the cell
that contains it (null when its coordinates are missing or lie in no cell), and the arrest flag
from the portal's Arrest column as ``stg_crimes__incidents`` stages it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from orchestration.warehouse import connect

logger = logging.getLogger(__name__)

LOCATED_TABLE = "intermediate.int_incidents__located"
AUDIT_COLUMNS = ("incident_id", "occurred_at_utc", "cell_id", "primary_type", "arrest", "invalid_arrest_value")
ARREST_AUDIT_INPUT_SCHEMA: dict[str, pl.DataType] = {
    "incident_id": pl.String,
    "occurred_at_utc": pl.Datetime("us"),
    "cell_id": pl.String,
    "primary_type": pl.String,
    "arrest": pl.Boolean,
}


def naive_utc(moment: datetime) -> datetime:
    """Return ``moment`` as a naive UTC datetime. A naive input is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def read_incidents_for_arrest_audit(warehouse: Path, start: datetime, end: datetime) -> pl.DataFrame:
    """Read the incidents that occurred in ``[start, end)`` with their cell, crime type and arrest flag.

    ``start`` and ``end`` are UTC (naive values are read as UTC). Returns one row per incident,
    sorted by time and id, with the columns of ``ARREST_AUDIT_INPUT_SCHEMA``. ``cell_id`` is null for
    an incident that could not be placed, and ``arrest`` is null where the portal gave no valid
    flag or has none. Raises ``ValueError`` when the window is empty or the warehouse lacks the
    located incidents or their arrest column.
    """
    start_utc, end_utc = naive_utc(start), naive_utc(end)
    if start_utc >= end_utc:
        raise ValueError(f"the arrest audit window must end after it starts, got {start_utc.isoformat()} "
                         f"to {end_utc.isoformat()} (UTC)")
    if not warehouse.is_file():
        raise ValueError(f"warehouse not found: {warehouse}. Build it first with the warehouse job")

    with connect(warehouse, read_only=True) as connection:
        check_located_columns(connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'intermediate' AND table_name = 'int_incidents__located'").fetchall(), warehouse)
        frame = connection.execute(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {LOCATED_TABLE} "
            "WHERE occurred_at_utc >= ? AND occurred_at_utc < ? ORDER BY occurred_at_utc, incident_id",
            [start_utc, end_utc]).pl()

    log_read_counts(frame, start_utc, end_utc)
    return frame.select([pl.col(name).cast(dtype) for name, dtype in ARREST_AUDIT_INPUT_SCHEMA.items()])


def check_located_columns(rows: list[tuple], warehouse: Path) -> None:
    """Raise when the located incidents are missing or were built before staging carried arrest."""
    present = {row[0] for row in rows}
    if not present:
        raise ValueError(f"{warehouse} has no {LOCATED_TABLE} table. Build the warehouse models "
                         f"(the warehouse job) before the arrest audit")
    missing = [name for name in AUDIT_COLUMNS if name not in present]
    if missing:
        raise ValueError(f"{LOCATED_TABLE} in {warehouse} has no columns {missing}, so it was built before "
                         f"staging carried the arrest flag. Rebuild raw_crime_incidents and the warehouse models")


def log_read_counts(frame: pl.DataFrame, start: datetime, end: datetime) -> None:
    """Log the incidents read, and those without a cell, a crime type or a valid arrest flag."""
    invalid = frame["invalid_arrest_value"].drop_nulls()
    logger.info("arrest audit input %s to %s (UTC): %d incidents, %d without a cell, %d without a primary "
                "type, %d without an arrest flag", start.isoformat(), end.isoformat(), frame.height,
                frame["cell_id"].null_count(), frame["primary_type"].null_count(), frame["arrest"].null_count())
    if invalid.len():
        logger.warning("%d incidents have an arrest value other than true or false (such as %r) and count "
                       "as unknown; staging lists them in invalid_arrest_value", invalid.len(), invalid[0])
    if frame.height and frame["arrest"].null_count() == frame.height:
        logger.warning("no incident from %s to %s has an arrest flag. The jurisdiction's crime mapping may "
                       "lack arrest, or the raw crimes were stored before it was mapped", start.isoformat(),
                       end.isoformat())
