"""The analyst notebooks are stored without outputs, and their parameters can be set for a run."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from notebooks import strip_outputs
from orchestration.notebooks import (
    INJECTED_TAG,
    NOTEBOOK_NAMES,
    NOTEBOOKS_DIR,
    NotebookError,
    inject_parameters,
    load_notebook,
    parameter_names,
)

COMMON_PARAMETERS = {"warehouse", "jurisdiction", "time_zone", "start_date", "end_date", "hours", "weekdays"}
JUPYTEXT_HEADER = "# ---\n# jupyter:\n#   jupytext:"


def stored_notebooks() -> list[Path]:
    """Every notebook file in notebooks/: the percent-format .py files and any .ipynb."""
    python = [path for path in NOTEBOOKS_DIR.glob("*.py") if path.read_text(encoding="utf-8").startswith(JUPYTEXT_HEADER)]
    return sorted(python + list(NOTEBOOKS_DIR.glob("*.ipynb")))


def test_notebooks_stored_as_percent_files() -> None:
    names = sorted(path.stem for path in stored_notebooks() if path.suffix == ".py")

    assert names == sorted(NOTEBOOK_NAMES)


@pytest.mark.parametrize("path", stored_notebooks(), ids=lambda path: path.name)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    notebook = strip_outputs.read_notebook(path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]

    assert code
    assert [cell.get("outputs", []) for cell in code] == [[] for _ in code]
    assert [cell.get("execution_count") for cell in code] == [None for _ in code]


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_parameter_cell(name: str) -> None:
    notebook = load_notebook(name)
    cells = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]

    assert len(cells) == 1
    names = parameter_names(cells[0].source)
    assert COMMON_PARAMETERS <= names
    assert ("coverage" in names) == (name != "data_input_audit")


def notebook_with_outputs() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    cell.execution_count = 3
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"), cell])


def test_strip_outputs_checks_then_strips_an_ipynb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "analysis.ipynb"
    nbformat.write(notebook_with_outputs(), path)

    assert strip_outputs.main(["--check", str(path)]) == 1
    assert json.loads(path.read_text(encoding="utf-8"))["cells"][1]["execution_count"] == 3
    assert strip_outputs.main([str(path)]) == 1
    stripped = json.loads(path.read_text(encoding="utf-8"))["cells"][1]
    assert (stripped["outputs"], stripped["execution_count"], stripped["metadata"]) == ([], None, {})
    assert strip_outputs.main(["--check", str(path)]) == 0
    assert "analysis.ipynb: stripped outputs from 1 code cells" in capsys.readouterr().out


def test_strip_outputs_rejects_plain_python(tmp_path: Path) -> None:
    path = tmp_path / "plain.py"
    path.write_text("x = 1\n", encoding="utf-8")

    assert strip_outputs.main(["--check", str(path)]) == 2


def test_parameters_are_injected_after_the_parameter_cell() -> None:
    notebook = load_notebook("model_metrics")
    position = next(index for index, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))

    inject_parameters(notebook, {"coverage": 0.1, "hours": [8, 9]})

    injected = notebook.cells[position + 1]
    assert injected.metadata["tags"] == [INJECTED_TAG]
    assert injected.source.splitlines()[1:] == ["coverage = 0.1", "hours = [8, 9]"]


def test_inject_parameters_rejects_unknown_name() -> None:
    notebook = load_notebook("bias_audit")

    with pytest.raises(NotebookError, match=r"unknown notebook parameters \['coverge'\].*'coverage'"):
        inject_parameters(notebook, {"coverge": 0.1})
