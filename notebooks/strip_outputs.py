"""Strip outputs and execution counts from notebooks, for a pre-commit hook or by hand.

The notebooks are stored as Jupytext percent-format ``.py`` files, which hold no outputs. This
script guards the other way in: a ``.ipynb`` file (for example one paired by Jupytext while
editing) loses its outputs, execution counts and execution metadata in place. With ``--check``
it changes nothing and exits with 1 when any notebook has outputs, which is what a pre-commit
hook or CI runs. A ``.py`` notebook must parse as a percent-format notebook.

    python notebooks/strip_outputs.py notebooks/*.ipynb          # strip in place
    python notebooks/strip_outputs.py --check notebooks/*.py      # report only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

STRIPPED_METADATA = ("execution", "collapsed", "scrolled")


def stored_outputs(notebook: nbformat.NotebookNode) -> int:
    """Count the code cells that carry outputs or an execution count."""
    return sum(1 for cell in notebook.cells if cell.cell_type == "code"
               and (cell.get("outputs") or cell.get("execution_count") is not None))


def strip(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs, execution counts and execution metadata from every code cell."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        for key in STRIPPED_METADATA:
            cell.metadata.pop(key, None)
    return notebook


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a ``.ipynb`` file, or a percent-format ``.py`` file through Jupytext."""
    if path.suffix == ".ipynb":
        return nbformat.read(path, as_version=4)
    if path.suffix == ".py":
        import jupytext

        text = path.read_text(encoding="utf-8")
        if "# %%" not in text:
            raise ValueError(f"{path} has no '# %%' cell marker; store notebooks as Jupytext percent files")
        return jupytext.reads(text, fmt="py:percent")
    raise ValueError(f"{path} is neither a .ipynb nor a percent-format .py notebook")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Strip outputs from notebooks (or check that none are stored).")
    parser.add_argument("paths", nargs="+", type=Path, help=".ipynb or Jupytext percent .py notebooks")
    parser.add_argument("--check", action="store_true", help="change nothing; exit with 1 when a notebook has outputs")
    arguments = parser.parse_args(argv)

    dirty = []
    for path in arguments.paths:
        try:
            notebook = read_notebook(path)
        except (OSError, ValueError) as error:
            print(f"strip_outputs: {error}", file=sys.stderr)
            return 2
        cells = stored_outputs(notebook)
        if not cells:
            continue
        dirty.append(path)
        if arguments.check or path.suffix != ".ipynb":
            print(f"{path}: {cells} code cells have outputs or execution counts")
            continue
        nbformat.write(strip(notebook), path)
        print(f"{path}: stripped outputs from {cells} code cells")

    print(f"strip_outputs: {len(dirty)} of {len(arguments.paths)} notebooks had outputs")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
