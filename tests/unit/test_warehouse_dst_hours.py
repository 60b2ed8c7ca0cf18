"""Crime staging's per-hour UTC conversion at daylight saving edges, through real dbt runs.

stg_crimes__incidents converts local times to UTC once per distinct local hour and falls back to
the per-row macros of ``local_to_utc.sql`` for an hour in which the offset is not constant. Each
fixture writes a small ``raw.crime_incidents`` table into a new DuckDB file and runs
``dbt run --select stg_crimes__incidents`` on it. America/Chicago has whole-hour changes at
02:00, so every hour takes the per-hour shift. Australia/Lord_Howe moves its clock by 30 minutes
at 02:00, so the hours around its changes take the per-row fallback.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest

from orchestration.dbt import DBT_PROJECT_DIR, dbt_environment, dbt_executable, dbt_vars
from orchestration.jurisdiction import load_jurisdiction
from orchestration.settings import RiskcastSettings
from orchestration.warehouse import connect, open_connection

RAW_COLUMNS = ("id", "date", "offense_code", "latitude", "longitude", "updated_on", "case_number", "iucr",
               "primary_type", "location_description", "beat", "district", "community_area", "arrest")

# Chicago in 2023: CST is UTC-6 and CDT is UTC-5. The clock jumps from 02:00 to 03:00 on
# 2023-03-12 and falls back from 02:00 CDT to 01:00 CST on 2023-11-05.
# id: (Date, Updated On, occurred_at_utc, ts_ambiguous, ts_nonexistent, updated_at_utc)
CHICAGO_CASES: dict[str, tuple[str, str, datetime, bool, bool, datetime | None]] = {
    "winter": ("01/15/2023 10:20:00 AM", "01/16/2023 08:00:00 AM",
               datetime(2023, 1, 15, 16, 20), False, False, datetime(2023, 1, 16, 14)),
    "summer": ("07/04/2023 12:15:00 AM", "07/11/2023 03:41:00 PM",
               datetime(2023, 7, 4, 5, 15), False, False, datetime(2023, 7, 11, 20, 41)),
    "before_gap": ("03/12/2023 01:59:59 AM", "03/12/2023 02:30:00 AM",
                   datetime(2023, 3, 12, 7, 59, 59), False, False, datetime(2023, 3, 12, 8, 30)),
    # A time in the skipped hour moves forward by the gap: 02:30 reads as 03:30 CDT.
    "gap_start": ("03/12/2023 02:00:00 AM", "03/12/2023 03:00:00 AM",
                  datetime(2023, 3, 12, 8), False, True, datetime(2023, 3, 12, 8)),
    "gap_middle": ("03/12/2023 02:30:00 AM", "03/12/2023 02:59:59 AM",
                   datetime(2023, 3, 12, 8, 30), False, True, datetime(2023, 3, 12, 8, 59, 59)),
    "gap_end": ("03/12/2023 02:59:59 AM", "03/12/2023 01:59:59 AM",
                datetime(2023, 3, 12, 8, 59, 59), False, True, datetime(2023, 3, 12, 7, 59, 59)),
    "after_gap": ("03/12/2023 03:00:00 AM", "",
                  datetime(2023, 3, 12, 8), False, False, None),
    "before_repeat": ("11/05/2023 12:59:59 AM", "11/05/2023 01:00:00 AM",
                      datetime(2023, 11, 5, 5, 59, 59), False, False, datetime(2023, 11, 5, 6)),
    # A time in the repeated hour reads as its first occurrence, in CDT.
    "repeat_start": ("11/05/2023 01:00:00 AM", "11/05/2023 02:00:00 AM",
                     datetime(2023, 11, 5, 6), True, False, datetime(2023, 11, 5, 8)),
    "repeat_middle": ("11/05/2023 01:30:00 AM", "11/05/2023 01:30:00 AM",
                      datetime(2023, 11, 5, 6, 30), True, False, datetime(2023, 11, 5, 6, 30)),
    "repeat_end": ("11/05/2023 01:59:59 AM", "11/05/2023 01:59:59 AM",
                   datetime(2023, 11, 5, 6, 59, 59), True, False, datetime(2023, 11, 5, 6, 59, 59)),
    "after_repeat": ("11/05/2023 02:00:00 AM", "11/05/2023 12:59:59 AM",
                     datetime(2023, 11, 5, 8), False, False, datetime(2023, 11, 5, 5, 59, 59)),
}

# Lord Howe Island in 2023: +10:30 standard, +11 daylight. The clock jumps from 02:00 to 02:30 on
# 2023-10-01 and falls back from 02:00 daylight to 01:30 standard on 2023-04-02.
# id: (Date, Updated On)
LORD_HOWE_CASES: dict[str, tuple[str, str]] = {
    "ordinary": ("06/15/2023 10:20:00 AM", "06/16/2023 10:20:00 AM"),
    "gap": ("10/01/2023 02:15:00 AM", "10/01/2023 02:45:00 AM"),
    "after_gap": ("10/01/2023 02:45:00 AM", "10/01/2023 02:15:00 AM"),
    "gap_hour_start": ("10/01/2023 02:00:00 AM", "10/01/2023 02:29:59 AM"),
    "repeat": ("04/02/2023 01:45:00 AM", "04/02/2023 01:15:00 AM"),
    "before_repeat": ("04/02/2023 01:15:00 AM", "04/02/2023 01:45:00 AM"),
}

LOCAL_TO_UTC_SQL = (DBT_PROJECT_DIR / "macros" / "local_to_utc.sql").read_text(encoding="utf-8")


def stage(folder: Path, time_zone: str, cases: dict[str, tuple[str, str]]) -> dict[str, tuple]:
    """Write ``cases`` as a raw crime table, run dbt on crime staging in ``time_zone`` and return its rows by id."""
    settings = RiskcastSettings(home=folder / "home", jurisdiction="dstcity")
    settings.warehouse_path.parent.mkdir(parents=True)
    with connect(settings.warehouse_path) as connection:
        connection.execute("CREATE SCHEMA raw")
        columns = ", ".join(f"{name} VARCHAR" for name in RAW_COLUMNS)
        connection.execute(f"CREATE TABLE raw.crime_incidents ({columns}, source_file VARCHAR, source_row BIGINT)")
        for row, (incident_id, (occurred, updated)) in enumerate(cases.items(), start=1):
            values = [incident_id, occurred, "08B", "41.88", "-87.62", updated, f"ZZ{row}", "0486", "BATTERY",
                      "STREET", "1234", "012", "28", "false", "crimes_2023.csv", row]
            connection.execute(f"INSERT INTO raw.crime_incidents VALUES ({', '.join('?' * len(values))})", values)

    variables = dbt_vars(load_jurisdiction("chicago")) | {"time_zone": time_zone}
    # dbt runs in its own process, as DbtCliResource runs it, so that its DuckDB handle closes.
    completed = subprocess.run(
        [dbt_executable(), "run", "--select", "stg_crimes__incidents", "--vars", json.dumps(variables),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(folder / "target")],
        env=os.environ | dbt_environment(settings), capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stdout

    with connect(settings.warehouse_path, read_only=True) as connection:
        rows = connection.sql(
            "SELECT incident_id, occurred_at_local, occurred_at_utc, ts_ambiguous, ts_nonexistent, updated_at_utc "
            "FROM staging.stg_crimes__incidents").fetchall()
    return {row[0]: row[1:] for row in rows}


def evaluate_per_row_macros(time_zone: str, occurred: datetime, updated: datetime) -> tuple[Any, ...]:
    """Evaluate the per-row macros local_to_utc, is_ambiguous_local and is_nonexistent_local in DuckDB."""
    template = jinja2.Environment().from_string(
        LOCAL_TO_UTC_SQL + "select {{ local_to_utc('occurred') }}, {{ is_ambiguous_local('occurred') }}, "
        "{{ is_nonexistent_local('occurred') }}, {{ local_to_utc('updated') }} "
        "from (select $occurred::timestamp as occurred, $updated::timestamp as updated)")
    sql = template.render(var=lambda name: {"time_zone": time_zone}[name])
    connection = open_connection(Path(":memory:"))
    try:
        connection.execute("SET TimeZone = 'UTC'")
        return connection.execute(sql, {"occurred": occurred, "updated": updated}).fetchone()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def chicago(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    cases = {incident_id: case[:2] for incident_id, case in CHICAGO_CASES.items()}
    return stage(tmp_path_factory.mktemp("chicago"), "America/Chicago", cases)


@pytest.fixture(scope="module")
def lord_howe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    return stage(tmp_path_factory.mktemp("lord_howe"), "Australia/Lord_Howe", LORD_HOWE_CASES)


@pytest.mark.parametrize("incident_id", list(CHICAGO_CASES))
def test_chicago_edges_follow_rule(chicago: dict[str, tuple], incident_id: str) -> None:
    _, _, occurred_utc, ambiguous, nonexistent, updated_utc = CHICAGO_CASES[incident_id]
    row = chicago[incident_id]

    assert row[1] == occurred_utc
    assert row[2] is ambiguous
    assert row[3] is nonexistent
    assert row[4] == updated_utc


def test_chicago_stages_every_case(chicago: dict[str, tuple]) -> None:
    assert set(chicago) == set(CHICAGO_CASES)


@pytest.mark.parametrize("incident_id", list(LORD_HOWE_CASES))
def test_half_hour_change_matches_per_row(lord_howe: dict[str, tuple], incident_id: str) -> None:
    occurred_local, occurred_utc, ambiguous, nonexistent, updated_utc = lord_howe[incident_id]
    updated_local = datetime.strptime(LORD_HOWE_CASES[incident_id][1], "%m/%d/%Y %I:%M:%S %p")
    expected = evaluate_per_row_macros("Australia/Lord_Howe", occurred_local, updated_local)

    assert occurred_utc == expected[0]
    assert ambiguous is expected[1]
    assert nonexistent is expected[2]
    assert updated_utc == expected[3]


def test_half_hour_gap_values(lord_howe: dict[str, tuple]) -> None:
    # 02:15 is skipped and reads with the standard offset, +10:30. 02:45 exists in daylight time,
    # +11. Both are 15:45 UTC, which no single shift for the 02:00 hour gives.
    assert lord_howe["gap"][1:4] == (datetime(2023, 9, 30, 15, 45), False, True)
    assert lord_howe["after_gap"][1:4] == (datetime(2023, 9, 30, 15, 45), False, False)
    assert lord_howe["gap"][4] == datetime(2023, 9, 30, 15, 45)
    assert lord_howe["after_gap"][4] == datetime(2023, 9, 30, 15, 45)
