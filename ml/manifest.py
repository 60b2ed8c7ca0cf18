"""Reproducibility manifests and model cards for trained ensembles.

A manifest records what is needed to rebuild a model exactly: the hashes of the training inputs,
the code version, the package versions, the parameters and the seed. The model card is the same
information written for a reader (in the spirit of Mitchell et al. 2019, "Model Cards for Model
Reporting", FAT* '19, DOI 10.1145/3287560.3287596).
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ("riskcast", "numpy", "polars", "torch", "lightgbm", "duckdb", "dbt-core", "dagster",
            "great-expectations")


def array_sha256(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(str(contiguous.dtype).encode())
        digest.update(str(contiguous.shape).encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


def code_version(repository: Path) -> str:
    """Return the git commit of the code, with ``+dirty`` when the work tree has changes."""
    try:
        commit = subprocess.run(["git", "-C", str(repository), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repository), "status", "--porcelain"], check=True,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit}+dirty" if dirty else commit


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path


def write_model_card(folder: Path, manifest: dict[str, Any], synthetic: bool) -> Path:
    lines = [f"# Model card: {manifest['model_id']}", ""]
    if synthetic:
        lines += ["> **This model was trained on SYNTHETIC demo data. Its numbers say nothing about any real city.**", ""]
    lines += [
        "## What it predicts",
        f"The probability that a cell ({manifest['spatial_unit'].replace('_', ' ')}) in "
        f"{manifest['jurisdiction_display_name']} has at least one violent incident (FBI codes "
        f"01A, 02, 03, 04A, 04B) in a given hour, 1 to {manifest['horizon_hours']} hours after "
        "the forecast is issued. It forecasts places and hours, never people.",
        "",
        "## Training data",
        f"- Window: {manifest['train_start']} to {manifest['train_end']} (UTC, end excluded)",
        f"- Rows: {manifest['training_rows']:,} cell-hours, {manifest['training_positives']:,} with a violent incident "
        f"(base rate {manifest['base_rate']:.5f}). Each cell and cut-off hour of the window gives one row with a "
        f"horizon drawn at random from 1 to {manifest['horizon_hours']} hours; rows whose target falls after the "
        "window's end are left out.",
        f"- Training matrix SHA-256: `{manifest['training_data_sha256']}`",
        "",
        "## Method",
        f"- {manifest['parameters']['n_nets']} feed-forward nets (torch), each on its own 1:1 downsample, and LightGBM",
        "- Probabilities corrected from the downsampled rate back to the population base rate",
        f"- Member weights from out-of-sample performance on the last "
        f"{manifest['parameters']['validation_fraction']:.0%} of training hours: "
        + ", ".join(f"{name} {weight:.3f}" for name, weight in manifest["weights"].items()),
        f"- Inputs: {', '.join(manifest['feature_names'])}",
        "",
        "## Members on validation hours",
        "",
        "Scores of the members fitted on the earlier part of the window, before the refit on all rows.",
        "",
        "| member | kind | ROC-AUC | log loss | Brier | weight |",
        "|---|---|---|---|---|---|",
    ]
    for member in manifest["members"]:
        lines.append(f"| {member.get('name', member.get('bag', ''))} | {member.get('kind', '')} | "
                     f"{format_number(member.get('roc_auc'))} | {format_number(member.get('log_loss'))} | "
                     f"{format_number(member.get('brier'))} | {format_number(member.get('weight'))} |")
    lines += [
        "",
        "## Limits",
        "- Recorded crime reflects reporting and police activity, not all crime. Riskcast has no bias audit yet, "
        "so check how the forecasts fall on different neighbourhoods before any use.",
        "- Weather inputs are the last observation before the forecast is issued, not a weather forecast.",
        "",
        "## Reproduce",
        f"- Code version: `{manifest['code_version']}`; seed {manifest['seed']}",
        f"- Packages: {', '.join(f'{name} {version}' for name, version in manifest['packages'].items())}",
        "",
    ]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def format_number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
