"""Execute the analyst notebooks against a warehouse and render them to HTML.

The notebooks live in ``notebooks/`` as Jupytext percent-format ``.py`` files (plain text that
diffs line by line, with no outputs to strip). Executing one converts it with Jupytext, adds a
cell after the cell tagged ``parameters`` that sets the given values (the papermill convention),
runs every cell in a fresh ``python3`` kernel with nbclient, and renders the result with
nbconvert's HTML exporter. The kernel runs in ``notebooks/`` with the repository first on
``PYTHONPATH``, so it imports this checkout's ``ml/``, ``orchestration/`` and ``notebooks/support.py``.

Jupytext, nbclient, nbconvert and ipykernel come with the ``notebooks`` (and ``test``) extras.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPOSITORY / "notebooks"
NOTEBOOK_NAMES = ("data_input_audit", "model_metrics", "bias_audit", "police_deployment")
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
RECORD_MIME_TYPE = "application/vnd.riskcast.record+json"
KERNEL_NAME = "python3"
CELL_TIMEOUT_SECONDS = 1800


class NotebookError(RuntimeError):
    """A notebook could not be read, executed or rendered."""


@dataclass(frozen=True)
class ExecutedNotebook:
    name: str
    notebook: Any
    seconds: float


def notebook_path(name: str) -> Path:
    path = NOTEBOOKS_DIR / f"{name}.py"
    if not path.is_file():
        raise NotebookError(f"no notebook {name!r}: {path} is missing; the notebooks are {list(NOTEBOOK_NAMES)}")
    return path


def tooling() -> tuple[Any, Any, Any]:
    """Import Jupytext, nbclient and nbconvert, or raise NotebookError naming the extra to install."""
    try:
        import jupytext
        import nbclient
        import nbconvert
    except ImportError as error:
        raise NotebookError(f"the notebook tools are not installed ({error}); install them with "
                            "pip install -e '.[notebooks]'") from error
    return jupytext, nbclient, nbconvert


def load_notebook(name: str) -> Any:
    """Read a percent-format notebook into an nbformat notebook with no outputs."""
    jupytext, _, _ = tooling()
    return jupytext.read(notebook_path(name), fmt="py:percent")


def inject_parameters(notebook: Any, parameters: Mapping[str, Any]) -> Any:
    """Add a cell after the ``parameters`` cell that assigns each parameter its value (as a Python literal)."""
    import nbformat

    positions = [index for index, cell in enumerate(notebook.cells)
                 if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])]
    if len(positions) != 1:
        raise NotebookError(f"a notebook needs exactly one cell tagged {PARAMETERS_TAG!r}, found {len(positions)}")
    known = parameter_names(notebook.cells[positions[0]].source)
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise NotebookError(f"unknown notebook parameters {unknown}; the parameter cell sets {sorted(known)}")

    source = "# Parameters set for this run\n" + "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source=source, metadata={"tags": [INJECTED_TAG]})
    notebook.cells.insert(positions[0] + 1, cell)
    return notebook


def parameter_names(source: str) -> set[str]:
    """Names assigned at the top level of a parameter cell."""
    import ast

    names = set()
    for statement in ast.parse(source).body:
        targets = statement.targets if isinstance(statement, ast.Assign) else (
            [statement.target] if isinstance(statement, ast.AnnAssign) else [])
        names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def kernel_environment() -> dict[str, str]:
    """Build the kernel's environment: this process's, with the repository and notebooks folder first on PYTHONPATH."""
    paths = [str(REPOSITORY), str(NOTEBOOKS_DIR)]
    existing = os.environ.get("PYTHONPATH")
    if existing:
        paths.append(existing)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def execute_notebook(name: str, parameters: Mapping[str, Any] | None = None,
                     timeout: int = CELL_TIMEOUT_SECONDS) -> ExecutedNotebook:
    """Run one notebook with ``parameters`` and return it with its outputs.

    Raises NotebookError with the failing cell's error when a cell fails.
    """
    _, nbclient, _ = tooling()
    notebook = inject_parameters(load_notebook(name), parameters or {})
    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name=KERNEL_NAME,
                                     resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    started = time.monotonic()
    try:
        client.execute(env=kernel_environment())
    except nbclient.exceptions.CellExecutionError as error:
        raise NotebookError(f"notebook {name} failed: {last_line(str(error))}") from error
    seconds = time.monotonic() - started
    logger.info("notebook %s: %d cells executed in %.1f s", name, len(notebook.cells), seconds)
    return ExecutedNotebook(name=name, notebook=notebook, seconds=seconds)


def last_line(message: str) -> str:
    """Return the last non-empty line of a traceback: the exception and its message."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else message


def render_html(executed: ExecutedNotebook, folder: Path) -> Path:
    """Write the executed notebook as ``<folder>/notebook_<name>.html`` with nbconvert's HTML exporter.

    The outputs that ``support.record`` stored for tests are left out of the page.
    """
    _, _, nbconvert = tooling()
    shown = copy.deepcopy(executed.notebook)
    for cell in shown.cells:
        if "outputs" in cell:
            cell.outputs = [output for output in cell.outputs if RECORD_MIME_TYPE not in output.get("data", {})]
    body, _ = nbconvert.HTMLExporter().from_notebook_node(shown)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"notebook_{executed.name}.html"
    path.write_text(body, encoding="utf-8")
    logger.info("notebook %s rendered to %s (%d characters)", executed.name, path, len(body))
    return path


def render_notebooks(warehouse: Path, reports_dir: Path, parameters: Mapping[str, Mapping[str, Any]] | None = None,
                     names: tuple[str, ...] = NOTEBOOK_NAMES) -> list[Path]:
    """Execute each notebook against ``warehouse`` and render it into ``reports_dir``; return the HTML paths.

    ``parameters`` maps a notebook name to extra parameters; ``warehouse`` is always set.
    """
    if not warehouse.is_file():
        raise NotebookError(f"no warehouse at {warehouse}: run `riskcast demo` or `riskcast run --config FILE` first")
    paths = []
    for name in names:
        values = {"warehouse": str(warehouse), **dict((parameters or {}).get(name, {}))}
        paths.append(render_html(execute_notebook(name, values), reports_dir))
    return paths


def recorded(notebook: Any, name: str) -> Any:
    """Return the value a notebook stored with ``support.record(name, value)``, raising KeyError when there is none."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            value = output.get("data", {}).get(RECORD_MIME_TYPE)
            if value is not None and value.get("name") == name:
                return value["value"]
    raise KeyError(f"the notebook recorded no value named {name!r}")
