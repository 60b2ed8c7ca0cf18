"""A revised crime record rebuilds exactly the feature partitions it made stale.

Real Dagster runs on one instance: the warehouse job and a features run over ten days, then a
corrected extract and the warehouse job again. The stale-features sensor is evaluated on that
instance, and the run it requests is executed. The corrected hour's label then changes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ml.features import LOOKBACK_HOURS
from orchestration.definitions import FEATURES_JOB, WAREHOUSE_JOB, build_definitions
from orchestration.partitions import RANGE_END_TAG, RANGE_START_TAG
from orchestration.sensors import contiguous_ranges, stale_hours
from tests.extracts import crime_row, write_extracts, write_run_file, write_test_jurisdiction

UTC = timezone.utc
ORIGINAL = [
    crime_row("900101", "ZZ1", "07/02/2023 12:15:00 AM", "04A", "07/11/2023 03:41:00 PM", "41.879", "-87.658"),
    crime_row("900102", "ZZ2", "07/04/2023 12:15:00 PM", "06", "07/11/2023 03:41:00 PM", "41.879", "-87.658"),
]
# 900102 corrected: a robbery (violent) two hours later, with a later Updated On.
CORRECTED = [
    ORIGINAL[0],
    crime_row("900102", "ZZ2", "07/04/2023 02:15:00 PM", "03", "07/20/2023 09:00:00 AM", "41.879", "-87.658"),
]


def test_stale_hours_reach_the_lookback() -> None:
    hours = stale_hours(["2023-07-04-17:00"], lookback_hours=3)

    assert sorted(hours) == [datetime(2023, 7, 4, hour, tzinfo=UTC) for hour in (17, 18, 19, 20)]


def test_contiguous_ranges_split_at_gaps() -> None:
    hours = {datetime(2023, 7, 4, hour, tzinfo=UTC) for hour in (1, 2, 3, 7, 8)}

    assert contiguous_ranges(hours) == [
        (datetime(2023, 7, 4, 1, tzinfo=UTC), datetime(2023, 7, 4, 3, tzinfo=UTC)),
        (datetime(2023, 7, 4, 7, tzinfo=UTC), datetime(2023, 7, 4, 8, tzinfo=UTC)),
    ]


def features_of(home: Path, cell: str, hour: datetime) -> dict:
    frame = pl.read_parquet(home / "testcity" / "features" / "**" / "*.parquet")
    return frame.filter((pl.col("cell_id") == cell) & (pl.col("hour") == hour)).to_dicts()[0]


@pytest.fixture(scope="module")
def sensor_outcome(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("stale")
    jurisdiction = write_test_jurisdiction(folder, "2023-07-01")
    home = folder / "home"
    outcome: dict = {"home": home}
    with dg.instance_for_test() as instance:
        for rows in (ORIGINAL, CORRECTED):
            extracts = write_extracts(folder / "extracts", rows, [])
            run_file = write_run_file(folder, jurisdiction, extracts, ("2023-07-01", "2023-07-05"),
                                      ("2023-07-05", "2023-07-06"))
            definitions = build_definitions(run_file, home)
            assert definitions.resolve_job_def(WAREHOUSE_JOB).execute_in_process(instance=instance).success
            if rows is ORIGINAL:
                features = definitions.resolve_job_def(FEATURES_JOB).execute_in_process(
                    instance=instance, tags={RANGE_START_TAG: "2023-07-01-00:00", RANGE_END_TAG: "2023-07-10-23:00"})
                assert features.success
                outcome["before"] = features_of(home, "WEST", datetime(2023, 7, 4, 19, tzinfo=UTC))

        sensor = definitions.resolve_sensor_def("testcity_stale_features")
        result = sensor(dg.build_sensor_context(instance=instance, cursor=None))
        outcome["result"] = result
        for request in result.run_requests:
            assert definitions.resolve_job_def(FEATURES_JOB).execute_in_process(
                instance=instance, tags=dict(request.tags)).success
        outcome["after"] = features_of(home, "WEST", datetime(2023, 7, 4, 19, tzinfo=UTC))
        outcome["again"] = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    return outcome


def test_sensor_requests_the_stale_range(sensor_outcome: dict) -> None:
    requests = sensor_outcome["result"].run_requests

    # The old time (17:15 UTC) and the new one (19:15 UTC) make hours from 17:00 stale, up to the
    # last materialized hour, well within the lookback.
    assert LOOKBACK_HOURS > 24 * 6
    assert [(request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) for request in requests] == \
        [("2023-07-04-17:00", "2023-07-10-23:00")]


def test_rebuilt_features_carry_the_correction(sensor_outcome: dict) -> None:
    assert sensor_outcome["before"]["label_violent"] == 0
    assert sensor_outcome["after"]["label_violent"] == 1


def test_handled_revisions_are_not_requested_again(sensor_outcome: dict) -> None:
    assert isinstance(sensor_outcome["again"], dg.SkipReason)
