"""Unit tests for the run file's backtest block and targets list."""

import pytest
from pydantic import ValidationError

from orchestration.jurisdiction import (
    BacktestSettings,
    ConfigError,
    RunConfig,
    load_jurisdiction,
    run_targets,
)

RUN = {"jurisdiction": "demo", "train": {"start": "2023-05-05", "end": "2023-09-01"},
       "score": {"start": "2023-09-01", "end": "2023-09-04"}}


def test_backtest_window_defaults_to_the_evaluation_window() -> None:
    run = RunConfig(**RUN, evaluate={"start": "2023-09-02", "end": "2023-09-03"})

    assert run.backtest_window == run.evaluate_window
    assert run.backtest.baselines[0] == "compstat"
    assert len(run.backtest.baselines) == 8


def test_backtest_value_rule_needs_a_threshold() -> None:
    with pytest.raises(ValidationError, match="threshold_value"):
        BacktestSettings(threshold_rule="value")


def test_backtest_rejects_parameters_of_an_unlisted_baseline() -> None:
    with pytest.raises(ValidationError, match=r"names \['sepp'\], which are not in backtest.baselines"):
        BacktestSettings(baselines=["compstat"], baseline_params={"sepp": {"history_days": 30}})


def test_backtest_rejects_an_unknown_baseline_name() -> None:
    with pytest.raises(ValidationError, match="kde"):
        BacktestSettings(baselines=["kde"])


def test_backtest_rejects_shift_starts_outside_the_day() -> None:
    with pytest.raises(ValidationError, match=r"shift_starts must list local hours 0-23, got \[0, 24\]"):
        BacktestSettings(shift_starts=[0, 24])


def test_run_targets_default_to_the_jurisdiction_targets() -> None:
    jurisdiction = load_jurisdiction("demo")

    assert run_targets(RunConfig(**RUN), jurisdiction) == list(jurisdiction.targets)
    assert run_targets(RunConfig(**RUN, targets=["robbery"]), jurisdiction) == ["robbery"]


def test_run_targets_outside_the_jurisdiction_are_an_error() -> None:
    jurisdiction = load_jurisdiction("demo")

    with pytest.raises(ConfigError, match=r"drop \['narcotics'\]"):
        run_targets(RunConfig(**RUN, targets=["violent", "narcotics"]), jurisdiction)
