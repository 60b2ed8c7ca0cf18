"""Time constants, run windows and the America/Chicago UTC offsets of the demo generator.

Events are simulated in Unix seconds (UTC). The crime files use America/Chicago wall-clock
time, with daylight saving time, and the LCD weather files use Local Standard Time (UTC-6
all year). This module defines the time windows of a run, the fixed LST offset and the
table of Chicago offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

CHICAGO = ZoneInfo("America/Chicago")
LST_OFFSET_SECONDS = -6 * 3600
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86_400
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class _Window:
    """Time spans of one run, as Unix seconds at UTC hour starts."""

    start: date
    end: date
    weather_start_utc: int  # Covers both windows below.
    weather_hours: int
    incident_start_utc: int  # Chicago local midnight at the start of `start`.
    incident_hours: int  # Up to Chicago local midnight at the end of `end`.


def _build_window(start: date, end: date) -> _Window:
    """Span Chicago local days `start`..`end` and the same LST days with UTC hours."""
    chicago_start = datetime(start.year, start.month, start.day, tzinfo=CHICAGO)
    after_end = end + timedelta(days=1)
    chicago_stop = datetime(after_end.year, after_end.month, after_end.day, tzinfo=CHICAGO)
    incident_start_utc = int(chicago_start.timestamp())
    incident_stop_utc = int(chicago_stop.timestamp())

    # Chicago midnight is 05:00 or 06:00 UTC and LST midnight is always 06:00 UTC,
    # so the weather window runs from 05:00 UTC on `start` to 06:00 UTC after `end`.
    weather_start_utc = _unix_day(start) * SECONDS_PER_DAY + 5 * SECONDS_PER_HOUR
    weather_stop_utc = _unix_day(after_end) * SECONDS_PER_DAY + 6 * SECONDS_PER_HOUR

    return _Window(
        start=start,
        end=end,
        weather_start_utc=weather_start_utc,
        weather_hours=(weather_stop_utc - weather_start_utc) // SECONDS_PER_HOUR,
        incident_start_utc=incident_start_utc,
        incident_hours=(incident_stop_utc - incident_start_utc) // SECONDS_PER_HOUR,
    )


def _unix_day(day: date) -> int:
    return (day - EPOCH).days


@dataclass(frozen=True)
class _ChicagoClock:
    """America/Chicago UTC offsets per UTC hour, looked up with zoneinfo once per run.

    Since 1884 the Chicago offset has changed only at whole UTC hours (checked against the
    tz database with zoneinfo), so one value per hour is exact.
    """

    first_hour: int  # Unix hour number of offsets[0].
    offsets: np.ndarray  # Seconds to add to UTC to get the wall clock.

    @classmethod
    def covering(cls, first_utc: int, last_utc: int) -> _ChicagoClock:
        first_hour = first_utc // SECONDS_PER_HOUR - 1
        hours = range(first_hour, last_utc // SECONDS_PER_HOUR + 2)
        offsets = [
            int(datetime.fromtimestamp(hour * SECONDS_PER_HOUR, tz=CHICAGO).utcoffset()
                .total_seconds())
            for hour in hours
        ]
        return cls(first_hour=first_hour, offsets=np.array(offsets, dtype=np.int64))

    def offset_at(self, utc_seconds: np.ndarray) -> np.ndarray:
        index = utc_seconds // SECONDS_PER_HOUR - self.first_hour
        if index.size and (index.min() < 0 or index.max() >= self.offsets.size):
            raise ValueError(
            "Demo timestamp outside the precomputed Chicago UTC offsets. This is a bug in "
            "ml/demo/clock.py, not in the arguments."
        )
        return self.offsets[index]

    def to_wall(self, utc_seconds: np.ndarray) -> np.ndarray:
        """Convert Unix seconds to wall-clock seconds (naive, counted as if UTC)."""
        return utc_seconds + self.offset_at(utc_seconds)

    def to_utc(self, wall_seconds: np.ndarray) -> np.ndarray:
        """Convert wall-clock seconds to Unix seconds.

        An ambiguous fall-back time maps to its first (daylight) instant, as with `fold=0`.
        Raises ValueError for a time that the spring-forward change skips.
        """
        utc = np.full(wall_seconds.shape, -1, dtype=np.int64)
        found = np.zeros(wall_seconds.shape, dtype=bool)
        for offset in np.unique(self.offsets)[::-1]:
            candidate = wall_seconds - offset
            matches = ~found & (self.offset_at(candidate) == offset)
            utc[matches] = candidate[matches]
            found |= matches

        if not found.all():
            raise ValueError(
            "Demo wall-clock time skipped by a spring-forward change. This is a bug in "
            "ml/demo/clock.py, not in the arguments."
        )
        return utc


def _day_of_year(wall_seconds: np.ndarray) -> np.ndarray:
    days = (wall_seconds // SECONDS_PER_DAY).astype("datetime64[D]")
    return (days - days.astype("datetime64[Y]")).astype(np.int64) + 1


def _wall_years(wall_seconds: np.ndarray) -> np.ndarray:
    days = (wall_seconds // SECONDS_PER_DAY).astype("datetime64[D]")
    return days.astype("datetime64[Y]").astype(np.int64) + 1970
