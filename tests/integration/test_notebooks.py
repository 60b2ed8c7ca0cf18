"""The four analyst notebooks, executed with nbclient against a small synthetic demo warehouse.

The warehouse comes from the whole main job on the small demo of test_demo_pipeline.py (synthetic
data), so these tests run on every machine. Each notebook stores its key results with
``support.record``; the tests compare them with the tables the pipeline wrote. Set
RISKCAST_NOTEBOOK_WAREHOUSE to a real warehouse (and RISKCAST_NOTEBOOK_JURISDICTION to its
jurisdiction, chicago by default) to run the notebooks on it as well.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from orchestration.cli import main
from orchestration.notebooks import NOTEBOOK_NAMES, ExecutedNotebook, execute_notebook, recorded
from orchestration.warehouse import connect


@pytest.fixture(scope="module")
def demo(small_demo_run) -> dict[str, Path]:
    return {"warehouse": small_demo_run.warehouse, "jurisdiction": small_demo_run.folder / "smalldemo.yaml",
            "home": small_demo_run.folder / "home"}


def parameters(demo: dict[str, Path], **extra: object) -> dict[str, object]:
    return {"warehouse": str(demo["warehouse"]), "jurisdiction": str(demo["jurisdiction"]), **extra}


@pytest.fixture(scope="module")
def executed(demo: dict[str, Path]) -> dict[str, ExecutedNotebook]:
    runs = {name: execute_notebook(name, parameters(demo)) for name in NOTEBOOK_NAMES}
    print("notebook execution seconds: " + ", ".join(f"{name} {run.seconds:.1f}" for name, run in runs.items())
          + f"; all four {sum(run.seconds for run in runs.values()):.1f}")
    return runs


def read_table(warehouse: Path, name: str) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(f"SELECT * FROM {name}").pl()


def outputs_text(run: ExecutedNotebook) -> str:
    parts = []
    for cell in run.notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [str(value) for key, value in output.get("data", {}).items() if key.startswith("text/")]
    return "\n".join(parts)


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_every_notebook_says_the_data_is_synthetic(executed: dict[str, ExecutedNotebook], name: str) -> None:
    assert "SYNTHETIC DATA" in outputs_text(executed[name])


def test_model_metrics_match_the_stored_backtest(executed: dict[str, ExecutedNotebook], demo: dict[str, Path]) -> None:
    notebook = executed["model_metrics"].notebook
    metrics = pl.DataFrame(recorded(notebook, "metrics"))
    stored = read_table(demo["warehouse"], "main.backtest_metrics")

    assert {"ensemble", "compstat"} <= set(metrics["model"])
    joined = metrics.join(stored, on=["model", "aggregation", "metric"], suffix="_stored")
    assert joined.height == stored.height
    assert (joined["value"] - joined["value_stored"]).abs().fill_null(0).max() < 1e-12
    assert recorded(notebook, "stored_differences") == 0


def test_accuracy_of_flagging_nothing(executed: dict[str, ExecutedNotebook]) -> None:
    notebook = executed["model_metrics"].notebook
    table = {row["rule"]: row for row in recorded(notebook, "accuracy_table")}

    assert table["flag nothing"]["accuracy"] == pytest.approx(1 - recorded(notebook, "base_rate"), abs=1e-12)
    assert table["ensemble: top 5% of cells each hour"]["accuracy"] < table["flag nothing"]["accuracy"]


def test_bias_notebook_shows_group_metrics_of_both_models(executed: dict[str, ExecutedNotebook],
                                                          demo: dict[str, Path]) -> None:
    notebook = executed["bias_audit"].notebook
    metrics = pl.DataFrame(recorded(notebook, "group_metrics"))
    stored = read_table(demo["warehouse"], "main.bias_group_metrics")

    assert set(metrics["model"]) == {"ensemble", "compstat"}
    joined = metrics.join(stored, on=["model", "group", "metric"], suffix="_stored")
    assert joined.height == stored.height == metrics.height
    assert (joined["value"] - joined["value_stored"]).abs().fill_null(0).max() < 1e-12
    latest = read_table(demo["warehouse"], "main.model_releases")["message"][0]
    assert recorded(notebook, "gate")["message"] == latest


def test_deployment_comparison_equals_the_stored_one(executed: dict[str, ExecutedNotebook],
                                                      demo: dict[str, Path]) -> None:
    notebook = executed["police_deployment"].notebook
    comparison = pl.DataFrame(recorded(notebook, "comparison"))
    stored = read_table(demo["warehouse"], "main.deployment_comparison")

    assert comparison["model"].to_list() == ["ensemble", "compstat"]
    assert comparison.select(stored.columns).to_dicts() == stored.to_dicts()
    assert recorded(notebook, "matches_stored") is True


def test_deployment_follows_the_assumptions(executed: dict[str, ExecutedNotebook], demo: dict[str, Path]) -> None:
    stored = read_table(demo["warehouse"], "main.deployment_comparison")

    run = execute_notebook("police_deployment", parameters(demo, officers_per_flagged_cell=4, hours=[8]))
    comparison = pl.DataFrame(recorded(run.notebook, "comparison"))

    # Only the 08:00 shifts: a third of the 21 shifts, each directing twice the officers.
    assert comparison["shifts"].to_list() == [7, 7]
    assert comparison["officers_needed_per_shift"].to_list() == [4.0, 4.0]
    assert recorded(run.notebook, "matches_stored") is False
    assert stored["shifts"].to_list() == [21, 21]


def test_input_audit_shows_the_warehouse_quarantine_counts(executed: dict[str, ExecutedNotebook],
                                                           demo: dict[str, Path]) -> None:
    counts = recorded(executed["data_input_audit"].notebook, "quarantine_counts")
    with connect(demo["warehouse"], read_only=True) as connection:
        tables = [row[0] for row in connection.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' "
            "AND table_name LIKE 'quarantine%'").fetchall()]
        expected = {table: connection.sql(f"SELECT count(*) FROM marts.{table}").fetchone()[0] for table in tables}

    assert counts == expected
    assert counts["quarantine_crime_incidents"] > 0
    rules = recorded(executed["data_input_audit"].notebook, "audit_rules")
    assert {"crime_incidents_input_audit", "quarantine_share_check"} <= {row["rule"] for row in rules}


def test_report_command_renders_the_notebooks(demo: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--home", str(demo["home"]), "report", "--jurisdiction", str(demo["jurisdiction"]), "--notebooks"])

    printed = capsys.readouterr().out
    reports = demo["home"] / "smalldemo" / "reports"
    assert code == 0
    for name in NOTEBOOK_NAMES:
        page = reports / f"notebook_{name}.html"
        assert f"Notebook:    {page}" in printed
        assert "SYNTHETIC DATA" in page.read_text(encoding="utf-8")
    assert f"Report:      {reports / 'bias_audit.html'}" in printed
    assert "L.geoJson" in (reports / "notebook_bias_audit.html").read_text(encoding="utf-8")


def test_report_without_warehouse_fails(tmp_path: Path, demo: dict[str, Path],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--home", str(tmp_path), "report", "--jurisdiction", str(demo["jurisdiction"]), "--notebooks"])

    error = capsys.readouterr().err.strip()
    assert code == 1
    assert error == (f"riskcast: no warehouse at {tmp_path / 'smalldemo' / 'warehouse.duckdb'}: run `riskcast demo` "
                     f"or `riskcast run --config FILE` with --home {tmp_path} first")


@pytest.mark.integration
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebooks_run_on_a_real_warehouse(name: str) -> None:
    warehouse = os.environ.get("RISKCAST_NOTEBOOK_WAREHOUSE")
    if not warehouse or not Path(warehouse).is_file():
        pytest.skip("set RISKCAST_NOTEBOOK_WAREHOUSE to a real warehouse.duckdb to run the notebooks on it")
    jurisdiction = os.environ.get("RISKCAST_NOTEBOOK_JURISDICTION", "chicago")

    run = execute_notebook(name, {"warehouse": warehouse, "jurisdiction": jurisdiction})

    assert "SYNTHETIC DATA" not in outputs_text(run)
