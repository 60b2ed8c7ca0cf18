"""Unit tests for the jobs `riskcast backtest` runs: one training run per refresh partition."""

from orchestration.cli import backtest_steps
from orchestration.definitions import EVALUATE_JOB, FEATURES_JOB, RELEASE_JOB, SCORE_JOB, TRAIN_JOB, WAREHOUSE_JOB
from orchestration.jurisdiction import RUNS_DIR, load_jurisdiction, load_run_config, run_targets


def test_chicago_backtest_trains_every_week_of_the_second_half_of_2017() -> None:
    run = load_run_config(RUNS_DIR / "chicago_backtest.yaml")
    jurisdiction = load_jurisdiction(run.jurisdiction)

    steps = backtest_steps(run, jurisdiction)
    trained = [tags["dagster/partition"] for name, tags in steps if name == TRAIN_JOB]

    # Refresh partitions are keyed by their start: the first ends 2017-07-02, the last 2017-12-24.
    assert trained[0] == "2017-06-25"
    assert trained[-1] == "2017-12-17"
    assert len(trained) == 26
    assert [name for name, _ in steps if name != TRAIN_JOB] == [WAREHOUSE_JOB, FEATURES_JOB, SCORE_JOB, EVALUATE_JOB,
                                                                  RELEASE_JOB]
    assert steps[1][1]["dagster/asset_partition_range_end"] == "2017-12-30-23:00"
    assert run_targets(run, jurisdiction) == ["violent"]
