"""Unit tests for the backtest's issue plan and its per-issue forecasts (ml.backtest)."""

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from ml.backtest import Issue, forecast_issue, plan_issues, target_rows
from ml.baselines import RiskBaseline

UTC = timezone.utc
CHICAGO = "America/Chicago"


def test_issues_are_local_midnights_in_utc() -> None:
    issues = plan_issues(datetime(2017, 7, 2, tzinfo=UTC), datetime(2017, 7, 5, tzinfo=UTC), CHICAGO, 0)

    # Local midnight in July is 05:00 UTC (CDT); 2017-07-02 00:00 UTC is 19:00 on 1 July locally.
    assert [issue.issued_at for issue in issues] == [
        datetime(2017, 7, 2, 5, tzinfo=UTC), datetime(2017, 7, 3, 5, tzinfo=UTC), datetime(2017, 7, 4, 5, tzinfo=UTC)]
    assert [issue.hours for issue in issues] == [24, 24, 24]


def test_issue_days_have_25_and_23_hours_at_dst_changes() -> None:
    autumn = plan_issues(datetime(2017, 11, 5, tzinfo=UTC), datetime(2017, 11, 6, tzinfo=UTC), CHICAGO, 0)
    spring = plan_issues(datetime(2017, 3, 12, tzinfo=UTC), datetime(2017, 3, 13, tzinfo=UTC), CHICAGO, 0)

    assert autumn == [Issue(datetime(2017, 11, 5, 5, tzinfo=UTC), datetime(2017, 11, 6, 6, tzinfo=UTC))]
    assert autumn[0].hours == 25
    assert spring == [Issue(datetime(2017, 3, 12, 6, tzinfo=UTC), datetime(2017, 3, 13, 5, tzinfo=UTC))]
    assert spring[0].hours == 23


def test_issue_at_a_skipped_local_hour_moves_to_the_hour_after_the_gap() -> None:
    # 02:00 does not exist in Chicago on 2017-03-12; 03:00 CDT is 08:00 UTC.
    issues = plan_issues(datetime(2017, 3, 12, tzinfo=UTC), datetime(2017, 3, 13, tzinfo=UTC), CHICAGO, 2)

    assert issues[0].issued_at == datetime(2017, 3, 12, 8, tzinfo=UTC)
    assert issues[0].until == datetime(2017, 3, 13, 7, tzinfo=UTC)


def test_a_window_without_an_issue_hour_is_an_error() -> None:
    with pytest.raises(ValueError, match="contains no local 00:00"):
        plan_issues(datetime(2017, 7, 2, 6, tzinfo=UTC), datetime(2017, 7, 2, 9, tzinfo=UTC), CHICAGO, 0)


def test_target_rows_cover_every_cell_and_hour_with_horizons() -> None:
    issue = Issue(datetime(2017, 7, 2, 5, tzinfo=UTC), datetime(2017, 7, 2, 8, tzinfo=UTC))

    rows = target_rows(issue, ["a", "b"])

    assert rows.height == 6
    assert rows.filter(pl.col("cell_id") == "b")["horizon_hours"].to_list() == [1, 2, 3]
    assert rows["hour"].max() == datetime(2017, 7, 2, 7, tzinfo=UTC)


class CountBefore(RiskBaseline):
    """Risk = incidents of the cell before the cutoff; records the cutoffs it was fitted at."""

    name = "count_before"
    risk_kind = "rate"

    def __init__(self) -> None:
        self.cutoffs: list[datetime] = []
        self.counts: pl.DataFrame | None = None

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "CountBefore":
        self.cutoffs.append(cutoff)
        self.counts = (history.filter(pl.col("hour") < cutoff).group_by("cell_id")
                       .agg(risk=pl.col("crime_count").sum().cast(pl.Float64)))
        return self

    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        return targets.join(self.counts, on="cell_id", how="left", maintain_order="left").with_columns(
            pl.col("risk").fill_null(0.0))


def test_forecast_issue_fits_at_the_issue_time_and_sees_no_later_incident() -> None:
    issue = Issue(datetime(2017, 7, 2, 5, tzinfo=UTC), datetime(2017, 7, 2, 7, tzinfo=UTC))
    history = pl.DataFrame({
        "cell_id": ["a", "a", "b"],
        "hour": [issue.issued_at - timedelta(hours=3), issue.issued_at, issue.issued_at - timedelta(hours=1)],
        "crime_count": [2, 5, 1],
    }).with_columns(pl.col("hour").dt.cast_time_unit("us"))
    model = CountBefore()

    frame = forecast_issue(issue, datetime(2017, 7, 2, tzinfo=UTC), ["a", "b", "c"], {"count_before": model},
                           {"count_before": history})

    assert model.cutoffs == [issue.issued_at]
    # Cell a's 5 incidents at the issue hour itself are after the cut-off and must not count.
    assert frame.sort("cell_id", "hour")["count_before"].to_list() == [2.0, 2.0, 1.0, 1.0, 0.0, 0.0]
    assert set(frame["origin"].to_list()) == {datetime(2017, 7, 2, tzinfo=UTC)}
    assert np.all(frame["issued_at"].to_numpy() == np.datetime64(issue.issued_at.replace(tzinfo=None), "us"))
