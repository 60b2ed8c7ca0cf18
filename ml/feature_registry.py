"""Column roles in the hourly feature panel: keys, calendar, labels and model inputs.

(Interim module: the full registry with each feature's definition and missing-value policy
replaces this.)
"""

from __future__ import annotations

KEY_COLUMNS = ("cell_id", "hour")
CALENDAR_COLUMNS = ("local_hour", "day_of_week", "month", "is_holiday")
LABEL_PREFIX = "label_"


def label_column(target: str) -> str:
    """Name of the column that counts the target's incidents in the row's own hour."""
    return f"{LABEL_PREFIX}{target}"


def state_columns(columns: list[str]) -> list[str]:
    """The model inputs among a panel's columns: all but keys, calendar and labels, in order."""
    excluded = set(KEY_COLUMNS) | set(CALENDAR_COLUMNS)
    return [name for name in columns if name not in excluded and not name.startswith(LABEL_PREFIX)]
