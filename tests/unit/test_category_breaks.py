"""The category-break check: monthly counts per category across a known source-system change.

Each test writes a hand-made ``audit.audit_crime_calendar`` (one row per month and category) into
a real DuckDB file, runs the rule's measurement SQL and validates the result with its GX suite,
as the Dagster check does. The fixture change is Philadelphia's 2020 records-system migration,
configured as 2020-01-01.
"""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from pydantic import ValidationError

from orchestration.assets.audits import check_result
from orchestration.audit_report import RuleResult, finding_sentences
from orchestration.audit_rules import ALL_RULES, active_rules, audit_parameters
from orchestration.jurisdiction import AuditConfig, load_jurisdiction
from tests.unit.test_audit_rules import calendar_row, failing_rows, run_rule

RULE = "crime_category_breaks"
PHILADELPHIA = load_jurisdiction("philadelphia")
PARAMETERS = audit_parameters(PHILADELPHIA)
# The default 24 months on each side of 2020-01-01.
BEFORE = [f"{year}-{month:02d}" for year in (2018, 2019) for month in range(1, 13)]
AFTER = [f"{year}-{month:02d}" for year in (2020, 2021) for month in range(1, 13)]


def monthly(category: str, before: list[int] | int, after: list[int] | int,
            months: tuple[list[str], list[str]] = (BEFORE, AFTER)) -> list[dict[str, Any]]:
    """Calendar rows of one category: a count per month before the change and per month after it."""
    before_counts = before if isinstance(before, list) else [before] * len(months[0])
    after_counts = after if isinstance(after, list) else [after] * len(months[1])
    pairs = [*zip(months[0], before_counts, strict=True), *zip(months[1], after_counts, strict=True)]
    return [calendar_row(month, category, records) for month, records in pairs if records > 0]


def breaks(tmp_path: Path, *rows: list[dict[str, Any]], **parameters: Any) -> tuple[Any, pd.DataFrame]:
    table = pd.DataFrame([row for group in rows for row in group])
    return run_rule(tmp_path, RULE, {"audit.audit_crime_calendar": table}, {**PARAMETERS, **parameters})


def row_of(frame: pd.DataFrame, category: str) -> pd.Series:
    return frame[frame["category"] == category].iloc[0]


def test_philadelphia_migration_configured() -> None:
    changes = PHILADELPHIA.audit.source_changes

    assert [change.date for change in changes] == [date(2020, 1, 1)]
    assert PARAMETERS["source_change_dates"] == ["2020-01-01"]
    assert PARAMETERS["source_change_months"] == 24
    assert PARAMETERS["max_source_change_factor"] == 1.5


def test_doubling_category_flagged(tmp_path: Path) -> None:
    outcome, frame = breaks(tmp_path, monthly("THEFT", 100, 200), monthly("BURGLARY", 300, 300))
    theft = row_of(frame, "THEFT")

    assert outcome.severity == "warning"
    assert failing_rows(outcome, "judged_break_factor") == [{"change_date": "2020-01-01", "category": "THEFT"}]
    assert (theft["before_records"], theft["after_records"]) == (2400, 4800)
    assert (theft["before_mean"], theft["after_mean"]) == (100.0, 200.0)
    assert theft["mean_ratio"] == pytest.approx(2.0)
    assert theft["step_ratio"] == pytest.approx(2.0)
    assert theft["break_factor"] == pytest.approx(2.0)
    assert theft["direction"] == "rise"
    assert bool(theft["flagged"])


def test_same_volume_not_flagged(tmp_path: Path) -> None:
    outcome, frame = breaks(tmp_path, monthly("BURGLARY", 300, 300))
    burglary = row_of(frame, "BURGLARY")

    assert outcome.passed
    assert burglary["mean_ratio"] == pytest.approx(1.0)
    assert burglary["judged_break_factor"] == pytest.approx(1.0)
    assert burglary["direction"] == "none"
    assert not bool(burglary["flagged"])


def test_whole_table_row_mixes_categories(tmp_path: Path) -> None:
    # 100 + 300 records a month before and 200 + 300 after: the whole table rises by 1.25 only.
    _, frame = breaks(tmp_path, monthly("THEFT", 100, 200), monthly("BURGLARY", 300, 300))
    whole = row_of(frame, "(all)")

    assert frame["category"].tolist() == ["(all)", "THEFT", "BURGLARY"]
    assert whole["mean_ratio"] == pytest.approx(1.25)
    assert not bool(whole["flagged"])


def test_small_category_measured_not_judged(tmp_path: Path) -> None:
    # 2 then 4 records a month: 144 records in the 48 months, below min_source_change_records (200).
    outcome, frame = breaks(tmp_path, monthly("RARE", 2, 4), monthly("BURGLARY", 300, 300))
    rare = row_of(frame, "RARE")

    assert outcome.passed
    assert rare["before_records"] + rare["after_records"] == 144
    assert rare["mean_ratio"] == pytest.approx(2.0)
    assert rare["break_factor"] == pytest.approx(2.0)
    assert math.isnan(rare["judged_break_factor"])
    assert not bool(rare["flagged"])
    assert rare["note"] == "not judged: fewer than 200 records in the months compared"


def test_steady_trend_not_flagged(tmp_path: Path) -> None:
    # 100 records in January 2018, 10 more every month, no jump. The means of the two sides differ
    # by 2.12, which alone would be flagged. The trend lines meet at the change date, so the step
    # ratio is 1 and the category is not flagged.
    counts = [100 + 10 * month for month in range(48)]
    outcome, frame = breaks(tmp_path, monthly("TREND", counts[:24], counts[24:]))
    trend = row_of(frame, "TREND")

    assert outcome.passed
    assert trend["mean_ratio"] == pytest.approx(455 / 215)
    assert trend["trend_per_month"] == pytest.approx(10.0)
    assert trend["step_ratio"] == pytest.approx(1.0)
    assert trend["break_factor"] == 1.0
    assert not bool(trend["flagged"])


def test_jump_inside_trend_flagged(tmp_path: Path) -> None:
    # The same rising trend, doubled from the change on.
    counts = [100 + 10 * month for month in range(48)]
    outcome, frame = breaks(tmp_path, monthly("TREND", counts[:24], [2 * count for count in counts[24:]]))
    trend = row_of(frame, "TREND")

    assert outcome.severity == "warning"
    assert trend["mean_ratio"] == pytest.approx(910 / 215)
    assert trend["step_ratio"] > 1.5
    assert trend["break_factor"] == pytest.approx(min(trend["mean_ratio"], trend["step_ratio"]))
    assert bool(trend["flagged"])


def seasonal(category: str, jump: int, change: str) -> list[dict[str, Any]]:
    """Monthly counts from 2017 to 2022 around 1000 with a July peak (swing of 30%), times ``jump`` from ``change`` on."""
    months = pd.date_range("2017-01-01", "2022-12-01", freq="MS")
    counts = [round(1000 * (1 + 0.3 * math.cos(2 * math.pi * (month.month - 7) / 12))) for month in months]
    return [calendar_row(month.strftime("%Y-%m"), category, count * (jump if month >= pd.Timestamp(change) else 1))
            for month, count in zip(months, counts, strict=True)]


def test_seasonal_cycle_not_flagged(tmp_path: Path) -> None:
    # The slope comes from months a year apart, so the seasonal cycle leaves both ratios at 1.
    outcome, frame = breaks(tmp_path, seasonal("SEASONAL", 1, "2020-10-01"),
                            source_change_dates=["2020-10-01"], source_change_notes=["autumn change"])
    row = row_of(frame, "SEASONAL")

    assert outcome.passed
    assert row["trend_per_month"] == pytest.approx(0.0)
    assert row["mean_ratio"] == pytest.approx(1.0)
    assert row["step_ratio"] == pytest.approx(1.0)


def test_seasonal_doubling_flagged(tmp_path: Path) -> None:
    outcome, frame = breaks(tmp_path, seasonal("SEASONAL", 2, "2020-10-01"),
                            source_change_dates=["2020-10-01"], source_change_notes=["autumn change"])
    row = row_of(frame, "SEASONAL")

    assert outcome.severity == "warning"
    assert row["step_ratio"] == pytest.approx(2.0)
    assert row["break_factor"] == pytest.approx(2.0)


def test_short_sides_bent_by_season(tmp_path: Path) -> None:
    # With 12 months a side the slope is fitted within each side, so the seasonal cycle bends it
    # and a doubling on 1 October is missed. This pins the limit that the default of 24 avoids.
    outcome, frame = breaks(tmp_path, seasonal("SEASONAL", 2, "2020-10-01"), source_change_months=12,
                            source_change_dates=["2020-10-01"], source_change_notes=["autumn change"])
    row = row_of(frame, "SEASONAL")

    assert outcome.passed
    assert row["mean_ratio"] == pytest.approx(2.0)
    assert row["step_ratio"] == pytest.approx(1.108, abs=0.001)
    assert not bool(row["flagged"])


def test_short_sides_steady_trend(tmp_path: Path) -> None:
    # Without seasonality, the least-squares slope of 12-month sides also removes a steady trend.
    counts = [100 + 10 * month for month in range(24)]
    months = (BEFORE[12:], AFTER[:12])

    outcome, frame = breaks(tmp_path, monthly("TREND", counts[:12], counts[12:], months), source_change_months=12)
    trend = row_of(frame, "TREND")

    assert outcome.passed
    assert trend["mean_ratio"] == pytest.approx(275 / 155)
    assert trend["trend_per_month"] == pytest.approx(10.0)
    assert trend["step_ratio"] == pytest.approx(1.0)


def test_split_category_flagged_both_ways(tmp_path: Path) -> None:
    # Philadelphia's kind of change: recovered stolen vehicles leave the stolen-vehicle category
    # and get their own, which did not exist before.
    outcome, frame = breaks(tmp_path, monthly("MOTOR VEHICLE THEFT", 300, 150),
                            monthly("RECOVERED STOLEN MOTOR VEHICLE", 0, 150))
    theft = row_of(frame, "MOTOR VEHICLE THEFT")
    recovered = row_of(frame, "RECOVERED STOLEN MOTOR VEHICLE")

    assert failing_rows(outcome, "judged_break_factor") == [
        {"change_date": "2020-01-01", "category": "RECOVERED STOLEN MOTOR VEHICLE"},
        {"change_date": "2020-01-01", "category": "MOTOR VEHICLE THEFT"}]
    assert theft["mean_ratio"] == pytest.approx(0.5)
    assert theft["break_factor"] == pytest.approx(2.0)
    assert theft["direction"] == "fall"
    assert recovered["before_records"] == 0
    assert math.isinf(recovered["break_factor"])
    assert recovered["direction"] == "rise"
    assert row_of(frame, "(all)")["mean_ratio"] == pytest.approx(1.0)


def test_report_names_whole_table_jump(tmp_path: Path) -> None:
    outcome, frame = breaks(tmp_path, monthly("THEFT", 100, 300), monthly("BURGLARY", 100, 100))
    rule = next(rule for rule in ALL_RULES if rule.name == RULE)

    sentences = finding_sentences(RuleResult(rule, outcome, frame), PARAMETERS)

    assert sentences[-1] == ("All categories together also change x2.00 (200.0 to 400.0 records a month), so the "
                             "change added or dropped records rather than only moving them between categories.")


def test_mid_month_change_skips_that_month(tmp_path: Path) -> None:
    # A change on 2020-01-15 compares 2018-2019 with February 2020 to January 2022. January 2020
    # contains records of both systems, so it is left out.
    months = (BEFORE, [*AFTER[1:], "2022-01"])
    rows = [*monthly("THEFT", 100, 200, months), calendar_row("2020-01", "THEFT", 5000)]

    _, frame = breaks(tmp_path, rows, source_change_dates=["2020-01-15"], source_change_notes=["mid-month"])
    theft = row_of(frame, "THEFT")

    assert (theft["before_records"], theft["after_records"]) == (2400, 4800)
    assert theft["mean_ratio"] == pytest.approx(2.0)
    assert theft["step_ratio"] == pytest.approx(2.0)


def test_uncovered_change_not_judged(tmp_path: Path) -> None:
    # The data ends in June 2020, so the 24 months after the change are not all there.
    outcome, frame = breaks(tmp_path, monthly("THEFT", 100, [200] * 6, (BEFORE, AFTER[:6])))

    assert outcome.passed
    assert frame["judged_break_factor"].isna().all()
    assert not frame["flagged"].any()
    assert row_of(frame, "THEFT")["note"] == "not judged: the data (2018-01 to 2020-06) does not cover 2018-01 to 2021-12"


def test_change_outside_data_keeps_row(tmp_path: Path) -> None:
    # A change years after the data still gets its whole-table row, whose note gives the reason it is
    # not judged.
    _, frame = breaks(tmp_path, monthly("THEFT", 100, 200), source_change_dates=["2020-01-01", "2025-01-01"],
                      source_change_notes=["migration", "later change"])
    later = frame[frame["change_date"] == "2025-01-01"]

    assert later["category"].tolist() == ["(all)"]
    assert later["note"].item() == "not judged: the data (2018-01 to 2021-12) does not cover 2023-01 to 2026-12"
    assert frame.loc[frame["change_date"] == "2020-01-01", "flagged"].tolist() == [True, True]


def test_no_change_skips_rule() -> None:
    _, skipped = active_rules(load_jurisdiction("chicago"))

    assert skipped[RULE] == "audit.source_changes lists no known source-system change"


def test_philadelphia_runs_rule() -> None:
    rules, skipped = active_rules(PHILADELPHIA)

    assert RULE in {rule.name for rule in rules}
    assert RULE not in skipped


def test_check_metadata_names_categories(tmp_path: Path) -> None:
    outcome, frame = breaks(tmp_path, monthly("THEFT", 100, 200), monthly("BURGLARY", 300, 300))
    rule = next(rule for rule in ALL_RULES if rule.name == RULE)

    result = check_result(outcome, frame, rule.summarize(frame))

    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["flagged_categories"].value == \
        "THEFT at 2020-01-01 (x2.00: 100.0 to 200.0 records a month)"
    assert result.metadata["changes_not_covered"].value == "none"


def test_report_explains_break(tmp_path: Path) -> None:
    outcome, frame = breaks(tmp_path, monthly("THEFT", 100, 200), monthly("BURGLARY", 300, 300),
                            monthly("RARE", 2, 4))
    rule = next(rule for rule in ALL_RULES if rule.name == RULE)

    sentences = finding_sentences(RuleResult(rule, outcome, frame), PARAMETERS)

    assert "likely a definition change: do not read it as a rise or fall of crime" in sentences[0]
    assert sentences[1].startswith("2020-01-01 (police data systems moved to a cloud-based system")
    assert "3 categories compared, of which 1 had fewer than 200 records and were not judged" in sentences[1]
    assert sentences[1].endswith("Possible definition changes: THEFT (100.0 records a month before, 200.0 "
                                 "after, x2.00; trend level at the date x2.00).")
    assert len(sentences) == 2


@pytest.mark.parametrize(("changes", "message"), [
    ([{"date": "2020-01-01", "note": "a"}, {"date": "2020-01-01", "note": "b"}],
     "lists the dates ['2020-01-01'] more than once"),
    ([{"date": "2020-01-01", "note": "  "}], "have a blank note"),
    ([{"date": "early 2020", "note": "a"}], "valid date"),
])
def test_invalid_source_changes_rejected(changes: list[dict[str, str]], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        AuditConfig(source_changes=changes)


@pytest.mark.parametrize(("field", "value"), [("max_source_change_factor", 1.0), ("source_change_months", 0),
                                              ("min_source_change_records", 0)])
def test_invalid_break_thresholds_rejected(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        AuditConfig(**{field: value})
