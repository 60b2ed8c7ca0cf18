"""The bias, release, deployment and simulation blocks of jurisdiction and run files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.bias import DEFAULT_GROUPS
from ml.deployment import DeploymentAssumptions
from orchestration.bias_config import BiasConfig
from orchestration.jurisdiction import load_jurisdiction, load_run_config
from tests.extracts import write_run_file
from tests.unit.test_jurisdiction import SCORE, TRAIN, chicago_content, jurisdiction_error, run_error, write_jurisdiction


def test_chicago_marks_arrest_driven_codes() -> None:
    chicago = load_jurisdiction("chicago")

    marked = sorted(code for code, meaning in chicago.offense_codes.items() if meaning.arrest_driven)
    assert marked == ["15", "16", "18", "19", "22", "24"]
    assert chicago.targets == ["violent", "robbery", "property"]


def test_arrest_driven_target_is_refused(tmp_path: Path) -> None:
    content = chicago_content()
    content["targets"] = ["violent", "other"]

    message = jurisdiction_error(tmp_path, content)

    assert "target 'other' contains the arrest-driven offense codes ['15', '16', '18', '19', '22', '24']" in message
    assert "allow_arrest_driven_targets" in message


def test_arrest_driven_target_allowed_when_asked(tmp_path: Path) -> None:
    content = chicago_content()
    content["targets"] = ["other"]
    content["bias"] = {"allow_arrest_driven_targets": True}

    assert load_jurisdiction(str(write_jurisdiction(tmp_path, content))).targets == ["other"]


def test_default_groups_keep_those_the_demographics_provide() -> None:
    definitions = BiasConfig().definitions({"nh_black_share", "per_capita_income"})

    assert [d.name for d in definitions] == ["black_share_q45", "lowest_income", "highest_income"]
    assert BiasConfig().definitions(None) == DEFAULT_GROUPS


def test_configured_group_with_missing_column_is_an_error() -> None:
    config = BiasConfig(groups=[{"name": "poorest", "column": "poverty_percent", "quintiles": [5]}])

    with pytest.raises(ValueError, match=r"bias groups use the columns \['poverty_percent'\]"):
        config.definitions({"nh_black_share"})


def test_group_with_unknown_reference_is_refused(tmp_path: Path) -> None:
    content = chicago_content()
    content["bias"] = {"groups": [{"name": "a", "column": "nh_black_share", "quintiles": [5], "reference": "b"}]}

    assert "names reference 'b', which is not a defined group" in jurisdiction_error(tmp_path, content)


def test_category_in_both_kinds_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\['ROBBERY'\] are listed as both"):
        BiasConfig(arrest_driven_categories=["robbery"])


def test_run_defaults(tmp_path: Path) -> None:
    run = load_run_config(write_run_file(tmp_path, "demo", None, TRAIN, SCORE))

    assert (run.release.metric, run.release.margin, run.release.direction) == ("flag_rate", 0.1, "both")
    assert run.release.score_with == "latest"
    assert run.deployment.assumptions() == DeploymentAssumptions()
    assert (run.simulation.n_cells, run.simulation.simulated_days) == (20, 730)


def test_run_sets_deployment_assumptions(tmp_path: Path) -> None:
    path = write_run_file(tmp_path, "demo", None, TRAIN, SCORE,
                          deployment={"officers_per_shift": 120, "prevention_probability": 0.25})
    assumptions = load_run_config(path).deployment.assumptions()

    assert assumptions.officers_per_shift == 120
    assert assumptions.prevention_probability == 0.25
    assert assumptions.floating_officers == 24


def test_unknown_release_metric_is_refused(tmp_path: Path) -> None:
    message = run_error(tmp_path, release={"metric": "accuracy"})

    assert "release.metric must be one of" in message


def test_negative_margin_is_refused(tmp_path: Path) -> None:
    assert "margin" in run_error(tmp_path, release={"margin": -0.5})
