"""Distribution drift of crime records against a trailing baseline.

Each period's distribution over bins (local hour of day, day of week, month of year) is compared
with the pooled distribution of the periods before it by two measures:

- the chi-square goodness-of-fit test of the period's counts against the baseline's proportions
  (Pearson 1900; ``scipy.stats.chisquare``), which tests whether the difference is more than
  sampling noise. With hundreds of thousands of records it rejects even negligible differences,
  so on its own it is not a drift alarm;
- the Jensen-Shannon distance (base 2) between the two distributions (Lin 1991, "Divergence
  measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37(1), doi:10.1109/18.61115),
  which runs from 0 (identical) to 1 (disjoint) and says how large the difference is.

A period is flagged when the test rejects at ``alpha`` and the distance exceeds the threshold.
Baseline proportions get half a record per bin (a Jeffreys-style pseudocount), so a bin that
is empty in the baseline does not make the expected count zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare

PSEUDOCOUNT = 0.5
DRIFT_COLUMNS = ["dimension", "period", "records", "baseline_records", "js_distance", "chi2_statistic",
                 "p_value", "flagged_distance", "volume_change", "absolute_volume_change", "note"]


def compare(counts: np.ndarray, baseline: np.ndarray) -> tuple[float, float, float]:
    """Return the Jensen-Shannon distance, chi-square statistic and p-value of counts against a baseline."""
    smoothed = baseline + PSEUDOCOUNT
    expected = smoothed / smoothed.sum() * counts.sum()
    statistic, p_value = chisquare(counts, expected)
    distance = float(jensenshannon(counts / counts.sum(), smoothed / smoothed.sum(), base=2))
    return distance, float(statistic), float(p_value)


def drift_row(dimension: str, period: str, counts: np.ndarray, baseline: np.ndarray, min_records: int,
              alpha: float) -> dict[str, object]:
    row: dict[str, object] = {"dimension": dimension, "period": period, "records": int(counts.sum()),
                              "baseline_records": int(baseline.sum()), "js_distance": None,
                              "chi2_statistic": None, "p_value": None, "flagged_distance": None,
                              "volume_change": None, "absolute_volume_change": None, "note": None}
    if counts.sum() < min_records or baseline.sum() < min_records:
        row["note"] = f"not judged: fewer than {min_records} records in the period or its baseline"
        return row
    distance, statistic, p_value = compare(counts, baseline)
    row.update(js_distance=distance, chi2_statistic=statistic, p_value=p_value)
    if p_value < alpha:
        row["flagged_distance"] = distance
    return row


def monthly_drift(calendar: pd.DataFrame, column: str, bins: list[int], dimension: str,
                  baseline_months: int, min_records: int, alpha: float) -> list[dict[str, object]]:
    """Compare each month's distribution over ``column`` with the ``baseline_months`` months before it."""
    table = (calendar.groupby(["local_month", column])["records"].sum()
             .unstack(fill_value=0).reindex(columns=bins, fill_value=0).sort_index())
    months = list(table.index)
    rows = []
    for position, month in enumerate(months[1:], start=1):
        previous = months[max(0, position - baseline_months):position]
        baseline = table.loc[previous].to_numpy().sum(axis=0).astype(float)
        counts = table.loc[month].to_numpy().astype(float)
        rows.append(drift_row(dimension, pd.Timestamp(month).strftime("%Y-%m"), counts, baseline,
                              min_records, alpha))
    return rows


def complete_years(calendar: pd.DataFrame) -> pd.DataFrame:
    """Records per year and month of year, for the years with records in all twelve months."""
    frame = calendar.assign(year=calendar["local_month"].dt.year, month=calendar["local_month"].dt.month)
    table = frame.groupby(["year", "month"])["records"].sum().unstack(fill_value=0)
    table = table.reindex(columns=range(1, 13), fill_value=0)
    return table[(table > 0).all(axis=1)].sort_index()


def yearly_drift(calendar: pd.DataFrame, min_records: int, alpha: float) -> list[dict[str, object]]:
    """Compare each complete year's month-of-year distribution and volume with the complete years before it."""
    table = complete_years(calendar)
    rows = []
    years = list(table.index)
    for position, year in enumerate(years[1:], start=1):
        baseline_table = table.loc[years[:position]]
        counts = table.loc[year].to_numpy().astype(float)
        baseline = baseline_table.to_numpy().sum(axis=0).astype(float)
        rows.append(drift_row("month_of_year", str(year), counts, baseline, min_records, alpha))

        mean_volume = baseline_table.to_numpy().sum(axis=1).mean()
        change = float(counts.sum() / mean_volume - 1)
        rows.append({**drift_row("year_volume", str(year), counts, baseline, min_records, alpha),
                     "js_distance": None, "chi2_statistic": None, "p_value": None, "flagged_distance": None,
                     "volume_change": change, "absolute_volume_change": abs(change)})
    return rows


def distribution_drift(calendar: pd.DataFrame, baseline_months: int, min_records: int,
                       alpha: float) -> pd.DataFrame:
    """Drift rows for hour of day, day of week, month of year and yearly volume.

    ``calendar`` has ``local_month`` (a timestamp), ``local_hour`` (0-23), ``local_dow`` (1-7) and
    ``records``. Rows without a month (records without a time) are ignored.
    """
    calendar = calendar.dropna(subset=["local_month"])
    calendar = calendar.assign(local_month=pd.to_datetime(calendar["local_month"]))
    rows = [
        *monthly_drift(calendar, "local_hour", list(range(24)), "hour_of_day", baseline_months, min_records, alpha),
        *monthly_drift(calendar, "local_dow", list(range(1, 8)), "day_of_week", baseline_months, min_records, alpha),
        *yearly_drift(calendar, min_records, alpha),
    ]
    frame = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    for name in ("js_distance", "chi2_statistic", "p_value", "flagged_distance", "volume_change",
                 "absolute_volume_change"):
        frame[name] = frame[name].astype("float64")
    return frame


def category_volume(monthly: pd.DataFrame, baseline_months: int, min_records: int) -> pd.DataFrame:
    """Find the categories that vanish or appear, month by month.

    ``monthly`` has ``local_month``, ``category`` and ``records``. A category vanishes in a month
    with no records when the month before had some and the trailing baseline has at least
    ``min_records``. It appears in a month with at least ``min_records`` when the baseline has
    none. Every other (month, category) pair with records in the month or its baseline is steady.
    """
    monthly = monthly.dropna(subset=["local_month"])
    table = (monthly.assign(local_month=pd.to_datetime(monthly["local_month"]))
             .pivot_table(index="local_month", columns="category", values="records", aggfunc="sum", fill_value=0)
             .sort_index())
    months = list(table.index)
    rows = []
    for position, month in enumerate(months[1:], start=1):
        baseline = table.loc[months[max(0, position - baseline_months):position]].sum(axis=0)
        previous = table.loc[months[position - 1]]
        current = table.loc[month]
        for category in table.columns:
            if baseline[category] == 0 and current[category] == 0:
                continue
            status = "steady"
            if current[category] == 0 and previous[category] > 0 and baseline[category] >= min_records:
                status = "vanished"
            elif baseline[category] == 0 and current[category] >= min_records:
                status = "appeared"
            rows.append({"month": pd.Timestamp(month).strftime("%Y-%m"), "category": str(category),
                         "records": int(current[category]), "baseline_records": int(baseline[category]),
                         "status": status})
    return pd.DataFrame(rows, columns=["month", "category", "records", "baseline_records", "status"])
