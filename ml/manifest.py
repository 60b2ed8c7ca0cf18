"""Reproducibility manifests and model cards for trained ensembles.

A manifest records what is needed to rebuild a model exactly: the SHA-256 of each training
feature file, the code version, the package versions, the parameters and the seed, plus what
training produced (member weights, validation metrics, wall time). The model card is the same
information written for a reader, with the model's intended use and limits (after Mitchell et
al. 2019, "Model Cards for Model Reporting", FAT* '19, DOI 10.1145/3287560.3287596).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ml.feature_store import day_file, days_in

HASH_BLOCK = 1 << 20

PACKAGES = ("riskcast", "numpy", "polars", "torch", "lightgbm", "duckdb", "dbt-core", "dagster",
            "great-expectations")


def array_sha256(*arrays: np.ndarray, prefix: "hashlib._Hash | None" = None) -> str:
    """Return the SHA-256 of the arrays' dtypes, shapes and bytes, in order.

    ``prefix`` is a digest that already contains earlier arrays (from ``array_digest``). It is
    copied, so one digest of a large shared array serves many hashes of that array plus a small one.
    """
    return array_digest(*arrays, digest=prefix.copy() if prefix is not None else None).hexdigest()


def array_digest(*arrays: np.ndarray, digest: "hashlib._Hash | None" = None) -> "hashlib._Hash":
    """Feed the arrays into ``digest`` (a new SHA-256 when None) and return it."""
    digest = digest if digest is not None else hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(str(contiguous.dtype).encode())
        digest.update(str(contiguous.shape).encode())
        digest.update(memoryview(contiguous).cast("B"))
    return digest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def feature_file_hashes(root: Path, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Return name, size and SHA-256 of each day file of features that covers ``[start, end)``.

    A day file also contains the hours of its day outside the window, so the hash pins the file a
    model read, not only the rows it used.
    """
    hashes = []
    for day in days_in(start, end):
        path = day_file(root, day)
        if not path.is_file():
            raise FileNotFoundError(f"feature file not found: {path}; materialize cell_hour_features "
                                    f"for {day.isoformat()} before training")
        hashes.append({"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return hashes


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


def write_model_card(folder: Path, manifest: dict[str, Any], bias_audit: Path,
                     release: dict[str, Any] | None = None) -> Path:
    """Write ``MODEL_CARD.md`` beside the manifest; ``bias_audit`` is where the audit report belongs.

    ``release`` is the model's release-gate record (``orchestration.assets.release``): the bound,
    the result per group and the model's status. Without it the card states that the gate has not run.
    """
    sections = [
        card_title(manifest),
        card_intended_use(manifest),
        card_training_data(manifest),
        card_metrics(manifest),
        card_release(release),
        card_limits(manifest, folder, bias_audit),
        card_reproduce(manifest),
    ]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(line for section in sections for line in section), encoding="utf-8")
    return path


def card_title(manifest: dict[str, Any]) -> list[str]:
    lines = [f"# Model card: {manifest['model_id']}", ""]
    if manifest["synthetic_data"]:
        lines += ["> **This model was trained on SYNTHETIC demo data. Its numbers say nothing about any real city.**",
                  ""]
    return lines


def card_intended_use(manifest: dict[str, Any]) -> list[str]:
    codes = ", ".join(manifest["target_offense_codes"]) or "none listed"
    return [
        "## Intended use",
        "",
        f"The model gives the probability that a cell ({manifest['spatial_unit'].replace('_', ' ')}) of "
        f"{manifest['jurisdiction_display_name']} records at least one incident of the target "
        f"**{manifest['target']}** (offense codes: {codes}) in a given hour, 1 to "
        f"{manifest['horizon_hours']} hours after the forecast is issued.",
        "",
        "- It forecasts places and hours, never people. It has no input about any person and must not be "
        "used to judge, stop or watch a person.",
        "- It is a decision aid for crime analysts, who read it beside other information. It must not "
        "trigger enforcement, patrols or any other action without a person's review.",
        f"- It serves the forecasts issued from {manifest['train_end']} (the end of its training window) "
        "until a newer model of the same target is registered.",
        "",
    ]


def card_training_data(manifest: dict[str, Any]) -> list[str]:
    provenance = "synthetic (generated demo data)" if manifest["synthetic_data"] else "recorded public data"
    files = manifest["feature_files"]
    return [
        "## Training data",
        "",
        f"- Jurisdiction: {manifest['jurisdiction_display_name']} (`{manifest['jurisdiction']}`), {provenance}",
        f"- Window: {manifest['train_start']} to {manifest['train_end']} (UTC, end excluded), refresh "
        f"partition `{manifest['refresh_partition']}`",
        f"- Rows: {manifest['training_rows']:,} cell-hours, {manifest['training_positives']:,} positives, base rate "
        f"{manifest['base_rate']:.5f}. Each cell and cut-off hour of the window gives one row with a horizon "
        f"drawn at random from 1 to {manifest['horizon_hours']} hours. Rows whose target hour falls at or "
        "after the window's end are left out, so no label comes from after it.",
        f"- Inputs: {len(manifest['feature_names'])} columns ({', '.join(manifest['feature_names'])})",
        f"- Feature files: {len(files)} day files, SHA-256 of each in `manifest.json` "
        f"(first {files[0]['file'] if files else 'none'}, last {files[-1]['file'] if files else 'none'})",
        "",
    ]


def card_metrics(manifest: dict[str, Any]) -> list[str]:
    parameters = manifest["parameters"]
    weights = ", ".join(f"{name} {weight:.3f}" for name, weight in manifest["weights"].items())
    lines = [
        "## Method and metrics",
        "",
        f"- {parameters['n_nets']} feed-forward nets (torch) and {parameters['lgbm_members']} LightGBM "
        f"member(s), each on its own downsample ({parameters['negative_ratio']:g} negatives per positive); "
        "probabilities corrected from the downsampled rate back to the population base rate",
        f"- Member weights from each member's log-loss skill over the last {parameters['validation_weeks']} "
        f"weeks of the window (at most {parameters['validation_fraction']:.0%} of its hours), weeks "
        f"discounted with a half-life of {parameters['weight_half_life_weeks']:g} weeks: {weights}",
        f"- Training wall time: {manifest['training_seconds']:.1f} s",
        "",
    ]
    validation = manifest["validation_metrics"]
    if validation:
        lines += [
            "Validation hours, scored by the members fitted on the earlier hours of the window:",
            "",
            "| model | ROC-AUC | log loss | Brier | mean probability | rows | positives |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, values in validation.items():
            lines.append(f"| {name} | {format_number(values.get('roc_auc'))} | {format_number(values.get('log_loss'))} | "
                         f"{format_number(values.get('brier'))} | {format_number(values.get('mean_probability'))} | "
                         f"{format_number(values.get('n_rows'))} | {format_number(values.get('n_pos'))} |")
        lines.append("")
    lines += [
        "Members on the validation hours:",
        "",
        "| member | kind | ROC-AUC | log loss | Brier | weight |",
        "|---|---|---|---|---|---|",
    ]
    for member in manifest["members"]:
        lines.append(f"| {member.get('name', member.get('bag', ''))} | {member.get('kind', '')} | "
                     f"{format_number(member.get('roc_auc'))} | {format_number(member.get('log_loss'))} | "
                     f"{format_number(member.get('brier'))} | {format_number(member.get('weight'))} |")
    lines.append("")
    return lines


RELEASE_STATUS_TEXT = {
    "candidate": "passed the gate and awaits promotion",
    "current": "current: it passed the gate and scores new forecasts",
    "retired": "retired: it passed the gate and was current until a newer release replaced it",
    "blocked": "BLOCKED: it failed the gate and must not be promoted",
}


def card_release(release: dict[str, Any] | None) -> list[str]:
    """Render the release gate's bound and result, or state that the gate has not run."""
    lines = ["## Release gate", ""]
    if release is None:
        return lines + ["The bias release gate has not run for this model, so it has not been promoted to current.", ""]

    scale = "distance from parity, max(r, 1/r)," if release["direction"] == "both" else "ratio"
    lines += [
        f"- Status: **{RELEASE_STATUS_TEXT.get(release['status'], release['status'])}** "
        f"(gate evaluated {release['evaluated_at']}).",
        f"- Bound: in every group, the ensemble's {release['metric']} {scale} group over reference, may exceed "
        f"{release['baseline']}'s by at most {release['margin']:g}, on the backtest forecasts of "
        f"{release['window']}.",
        f"- Result: {release['message']}",
        "",
        f"| group | reference | ensemble ratio | {release['baseline']} ratio | bound | passed |",
        "|---|---|---|---|---|---|",
    ]
    for check in release["checks"]:
        lines.append(f"| {check['group']} | {check['reference']} | {format_number(check['model_ratio'])} | "
                     f"{format_number(check['baseline_ratio'])} | {format_number(check['bound'])} | "
                     f"{'yes' if check['passed'] else 'no'} |")
    lines.append("")
    return lines


def card_limits(manifest: dict[str, Any], folder: Path, bias_audit: Path) -> list[str]:
    link = Path(os.path.relpath(bias_audit, folder)).as_posix()
    if bias_audit.is_file():
        audit = f"- Bias audit: [{bias_audit.name}]({link}). Read it before any use."
    else:
        audit = (f"- Bias audit: the report ({link}) had not been produced when this card was written. "
                 "Nobody has yet checked how this model's forecasts fall on different neighbourhoods, so "
                 "run the bias audit before any use.")
    return [
        "## Limits",
        "",
        "- Recorded crime is not all crime. Labels and lagged counts come from incidents that were "
        "reported and recorded, so they reflect reporting habits and police activity as well as crime.",
        "- Feedback loops: if more patrols go where the forecast is high, more incidents are recorded "
        "there, and the next model learns that the place is riskier (Ensign et al. 2018, \"Runaway "
        "Feedback Loops in Predictive Policing\", FAT* '18).",
        "- Weather inputs are the last observation before the forecast is issued, not a weather forecast.",
        "- The probabilities are calibrated to the base rate of the training window; a change in recording "
        "practice or in crime levels after it makes them drift.",
        audit,
        "",
    ]


def card_reproduce(manifest: dict[str, Any]) -> list[str]:
    return [
        "## Reproduce",
        "",
        f"- Code version: `{manifest['code_version']}`; seed {manifest['seed']}",
        f"- Packages: {', '.join(f'{name} {version}' for name, version in manifest['packages'].items())}",
        "- Parameters, feature file hashes and the training matrix hash "
        f"(`{manifest['training_data_sha256']}`) are in `manifest.json`.",
        "",
    ]


def format_number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
