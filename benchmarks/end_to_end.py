"""Wall time and peak memory of the main job on one or four city-years, in one process, against the targets.

Each scenario writes a run file to a temporary folder. One child process then runs the main job's
jobs in order, on an ephemeral Dagster instance with the in-process executor. These are the jobs
that ``riskcast run`` starts, minus ``release_job``, because its bias gate is not part of the
timed chain:

- ``warehouse_job``: raw ingest, ``dbt build`` and the input audits (the gates);
- ``features_job``: every hour of the scenario's city-years, one range run;
- ``train_job``: the refresh partition that ends at ``train.end``, with the default ensemble
  trained on the 26 weeks before it (one refresh window);
- ``score_job`` and ``evaluate_job``: the day after ``train.end`` (24 issue hours).

Scenarios:

- ``city-year``: Chicago 2017 (801 census tracts) from ``RISKCAST_SHARED_DATA/chicago``
  (default ``../shared/data/chicago``) when that folder exists, else a synthetic 27 x 30 grid
  (810 cells) written by ``ml.demo`` for 2016-12-01 to 2017-12-31;
- ``four-years``: Chicago 2014 to 2017 (the crime extracts of the four years); it needs the
  shared data.

The parent process prints each job's wall time and the total. It also prints the feature build
rate three times: through the whole ``features_job`` (Dagster stores one materialization event per
hourly partition), through the asset's own work (``window_seconds``: inputs read, features built,
day files written) and of the build alone (``build_seconds``). Then come each
target's ensemble training time (from its manifest), and the scoring of the first issue hour
outside Dagster: per model with the model loaded, and for all targets through ``score_to_staging``.
Last come peak resident set sizes: of the child's own process after each job, of the largest
subprocess it had waited for by then (dbt, which runs the warehouse's DuckDB queries; the training
workers are children of a fork server that outlives the jobs, so they are not counted), and of the
whole child. That last figure is ``ru_maxrss`` from
``wait4``: the largest of the child and the processes it waited for, not their sum. A subprocess
started by fork (git, for a manifest's code version) is charged the child's resident size at that
moment, so a subprocess figure at or below the child's own peak may be the child's. Each figure with a target gets PASS
or MISS. ``--smoke`` replaces the scenarios with a synthetic 8 x 8 grid over three months and a
2-net ensemble, so the whole chain runs in a few minutes (its figures are not comparable with the
targets). ``--profile FOLDER`` runs each job under pyinstrument (cProfile when pyinstrument is not
installed), writes one profile per job to FOLDER and prints the 10 functions with the largest
cumulative time per job. Run from the repository root:

    .venv/bin/python benchmarks/end_to_end.py [--scenario city-year four-years] [--smoke] [--profile FOLDER]
        [--memory-limit-gb GB] [--record]

``--record`` adds the figures to docs/benchmarks.md (newest first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks.ingest_crimes import commit, record  # noqa: E402
from benchmarks.stage_profiles import StageProfiler  # noqa: E402

SHARED_CHICAGO = Path(os.environ.get("RISKCAST_SHARED_DATA", REPOSITORY.parent / "shared" / "data")) / "chicago"
CHILD_FLAG = "--child"
CHICAGO_TRACTS = 801
SYNTHETIC_GRID = (27, 30)
SMOKE_GRID = (8, 8)
REFRESH_WEEKS = 26
GIB = 1024 ** 3

# Targets of the project's performance requirements, for 2 cores and 24 GB of RAM.
TARGET_WALL_SECONDS = {"city-year": 120.0, "four-years": 480.0}
# The issue states 4 GB; decimal gigabytes are the stricter reading.
TARGET_PEAK_RSS_BYTES = {"four-years": 4 * 10**9}
TARGET_TRAIN_SECONDS = 60.0
TARGET_SCORE_SECONDS = 1.0
TARGET_FEATURE_RATE = 5_000_000


@dataclass(frozen=True)
class Scenario:
    """One benchmark input: where its extracts come from and the windows of its run file."""

    name: str
    source: str
    """``chicago`` (linked shared data) or ``synthetic`` (written by ``ml.demo``)."""
    years: tuple[int, ...]
    cells: int
    features_start: datetime
    features_end: datetime
    train_end: datetime
    n_nets: int | None
    epochs: int | None
    grid: tuple[int, int] | None = None
    synthetic_start: date | None = None

    @property
    def cell_hours(self) -> int:
        return self.cells * int((self.features_end - self.features_start) / timedelta(hours=1))


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=timezone.utc)


def build_scenario(name: str, smoke: bool) -> Scenario:
    """Return the scenario ``name``, or its smoke-sized stand-in when ``smoke`` is set."""
    if smoke:
        return Scenario(name=f"{name} (smoke)", source="synthetic", years=(2023,), cells=SMOKE_GRID[0] * SMOKE_GRID[1],
                        features_start=utc(2023, 2, 1), features_end=utc(2023, 3, 25), train_end=utc(2023, 3, 17),
                        n_nets=2, epochs=1, grid=SMOKE_GRID, synthetic_start=date(2023, 1, 1))

    # 2017-12-24 is a Sunday: the refresh partition ends there, and its first day is scored, so the
    # 72-hour labels of every issue hour fall inside the year.
    if name == "city-year" and not SHARED_CHICAGO.is_dir():
        rows, columns = SYNTHETIC_GRID
        return Scenario(name=name, source="synthetic", years=(2017,), cells=rows * columns,
                        features_start=utc(2017, 1, 1), features_end=utc(2018, 1, 1), train_end=utc(2017, 12, 24),
                        n_nets=None, epochs=None, grid=SYNTHETIC_GRID, synthetic_start=date(2016, 12, 1))
    if name == "city-year":
        years: tuple[int, ...] = (2017,)
    elif name == "four-years":
        years = (2014, 2015, 2016, 2017)
    else:
        raise SystemExit(f"unknown scenario {name!r}; use city-year or four-years")
    if not SHARED_CHICAGO.is_dir():
        raise SystemExit(f"the {name} scenario needs the Chicago extracts in {SHARED_CHICAGO}; set "
                         f"RISKCAST_SHARED_DATA to the folder that contains chicago/")
    return Scenario(name=name, source="chicago", years=years, cells=CHICAGO_TRACTS,
                    features_start=utc(years[0], 1, 1), features_end=utc(2018, 1, 1), train_end=utc(2017, 12, 24),
                    n_nets=None, epochs=None)


def link_chicago_extracts(folder: Path, years: tuple[int, ...]) -> Path:
    """Make an extracts folder that links the chosen years of crimes and every other Chicago folder."""
    folder.mkdir(parents=True)
    for source in SHARED_CHICAGO.iterdir():
        if source.is_dir() and source.name != "crimes":
            (folder / source.name).symlink_to(source, target_is_directory=True)

    (folder / "crimes").mkdir()
    for year in years:
        source = SHARED_CHICAGO / "crimes" / f"chicago_crimes_{year}.csv.gz"
        if not source.is_file():
            raise SystemExit(f"{source} not found; the scenario needs the {year} crime extract")
        (folder / "crimes" / source.name).symlink_to(source)
    return folder


def write_synthetic_jurisdiction(folder: Path, scenario: Scenario) -> tuple[Path, Path]:
    """Write the synthetic extracts and a copy of the demo jurisdiction that starts with them."""
    from ml.demo import write_demo_extracts
    from orchestration.jurisdiction import JURISDICTIONS_DIR

    extracts = folder / "extracts"
    rows, columns = scenario.grid or SMOKE_GRID
    last_day = (scenario.features_end - timedelta(days=1)).date()
    write_demo_extracts(extracts, start=scenario.synthetic_start, end=last_day, grid_rows=rows, grid_cols=columns)

    content = yaml.safe_load((JURISDICTIONS_DIR / "demo.yaml").read_text(encoding="utf-8"))
    content["name"] = "benchdemo"
    content["data_start"] = scenario.synthetic_start.isoformat()
    jurisdiction = folder / "benchdemo.yaml"
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    return jurisdiction, extracts


def write_run_file(folder: Path, scenario: Scenario, memory_limit_gb: float | None = None) -> Path:
    """Write the scenario's extracts (links or synthetic files) and its run file; return the run file."""
    if scenario.source == "chicago":
        jurisdiction: str = "chicago"
        extracts = link_chicago_extracts(folder / "extracts", scenario.years)
    else:
        jurisdiction_file, extracts = write_synthetic_jurisdiction(folder, scenario)
        jurisdiction = str(jurisdiction_file)

    train_weeks = 6 if scenario.n_nets is not None and scenario.n_nets <= 2 else REFRESH_WEEKS
    content: dict = {
        "jurisdiction": jurisdiction,
        "extracts_folder": str(extracts),
        "train": {"start": (scenario.train_end - timedelta(weeks=train_weeks)).date().isoformat(),
                  "end": scenario.train_end.date().isoformat()},
        "score": {"start": scenario.train_end.isoformat(),
                  "end": (scenario.train_end + timedelta(days=1)).isoformat()},
        "horizon_hours": 72,
        "seed": 7,
    }
    ensemble = {key: value for key, value in (("n_nets", scenario.n_nets), ("epochs", scenario.epochs))
                if value is not None}
    if ensemble:
        content["ensemble"] = ensemble
    if memory_limit_gb is not None:
        content["memory_limit_gb"] = memory_limit_gb

    run_file = folder / "run.yaml"
    run_file.write_text(yaml.safe_dump(content), encoding="utf-8")
    return run_file


def scenario_steps(run_file: Path, home: Path, scenario: Scenario):
    """Return the prepared run and the main job's steps, with features over every hour of the scenario."""
    from orchestration.definitions import FEATURES_JOB, RELEASE_JOB
    from orchestration.runner import main_steps, prepare_run, range_tags

    context = prepare_run(run_file, home)
    steps = []
    for name, tags in main_steps(context.run, context.jurisdiction):
        if name == RELEASE_JOB:
            continue
        if name == FEATURES_JOB:
            tags = range_tags(scenario.features_start, scenario.features_end)
        steps.append((name, tags))
    return context, steps


def child(scenario_name: str, smoke: bool, folder: Path, profile_folder: Path | None, output: Path,
          memory_limit_gb: float | None = None) -> None:
    """Run one scenario in this process and write its per-job wall times to ``output`` as JSON."""
    import logging

    import dagster as dg

    from orchestration.runner import run_job, step_label

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    scenario = build_scenario(scenario_name, smoke)
    run_file = write_run_file(folder, scenario, memory_limit_gb)
    context, steps = scenario_steps(run_file, folder / "home", scenario)
    profiler = StageProfiler(profile_folder) if profile_folder is not None else None

    timings: list[tuple[str, float]] = []
    peaks: list[tuple[str, int]] = []
    subprocess_peaks: list[tuple[str, int]] = []
    started = time.perf_counter()
    with dg.DagsterInstance.ephemeral() as instance:
        for name, tags in steps:
            print(f"running {step_label(name, tags)} ...", file=sys.stderr, flush=True)
            step_started = time.perf_counter()
            if profiler is None:
                run_job(context.definitions, instance, name, tags)
            else:
                profiler.run(name, lambda: run_job(context.definitions, instance, name, tags))
            timings.append((name, time.perf_counter() - step_started))
            peaks.append((name, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
            subprocess_peaks.append((name, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))
            print(f"{name} done in {timings[-1][1]:.1f} s, peak RSS so far {peaks[-1][1] / GIB:.2f} GiB, "
                  f"largest finished subprocess so far {subprocess_peaks[-1][1] / GIB:.2f} GiB",
                  file=sys.stderr, flush=True)
        total = time.perf_counter() - started
        build_seconds = feature_build_seconds(instance)
    probe = scoring_probe(context)

    issue_hours = int((context.run.score.end - context.run.score.start) / timedelta(hours=1))
    output.write_text(json.dumps({"steps": timings, "total": total, "issue_hours": issue_hours,
                                  "feature_build_seconds": build_seconds, "scoring": probe, "peaks": peaks,
                                  "subprocess_peaks": subprocess_peaks,
                                  "training_seconds": training_seconds(context.settings.models_dir),
                                  "train": [context.run.train.start.isoformat(), context.run.train.end.isoformat()],
                                  "profiles": profiler.summaries if profiler else {}}), encoding="utf-8")


def feature_build_seconds(instance) -> dict[str, float]:
    """Return the features asset's own times, without Dagster's partition events: build alone, and with I/O."""
    import dagster as dg

    event = instance.get_latest_materialization_event(dg.AssetKey("cell_hour_features"))
    metadata = event.asset_materialization.metadata
    return {name: float(metadata[name].value) for name in ("build_seconds", "window_seconds")}


def training_seconds(models_dir: Path) -> dict[str, float]:
    """Return the ensemble training time of each target, from the manifests of the models trained."""
    manifests = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(models_dir.glob("*/manifest.json"))]
    return {manifest["target"]: manifest["training_seconds"] for manifest in manifests}


def scoring_probe(context) -> dict[str, float]:
    """Time the scoring of the first issue hour (every cell x 72 h) outside Dagster.

    Returns the wall time of ``score_to_staging`` for all targets. That call loads the models, reads
    the features and weather, ranks and writes Parquet, but does not write the warehouse. Per model,
    it also returns the time to build the scoring matrix and predict, with the model already loaded.
    """
    import logging

    from ml.feature_store import read_window
    from ml.model_data import build_scoring_blocks
    from orchestration.assets.scoring import ModelCache, score_to_staging, scoring_spans
    from orchestration.weather_inputs import target_weather
    from orchestration.warehouse import connect

    settings, run, jurisdiction = context.settings, context.run, context.jurisdiction
    start = run.score.start
    end = start + timedelta(hours=1)
    with tempfile.TemporaryDirectory(prefix="riskcast-scoring-probe-") as staging:
        started = time.perf_counter()
        score_to_staging(settings, run, jurisdiction, start, end, Path(staging), logging.getLogger("probe"))
        all_targets = time.perf_counter() - started

    with connect(settings.warehouse_path, read_only=True) as connection:
        n_cells = connection.sql("SELECT count(*) FROM marts.dim_cells").fetchone()[0]
    rows = read_window(settings.features_dir, start, end, n_cells)
    models = ModelCache()
    per_model = {}
    for span in scoring_spans(settings, run, jurisdiction, start, end)[1]:
        ensemble, inputs = models.get(span), models.weather_inputs(span)
        weather = target_weather(settings.warehouse_path, inputs, run.horizon_hours, start, start)
        started = time.perf_counter()
        _, blocks = build_scoring_blocks(rows, run.horizon_hours, jurisdiction.time_zone,
                                         jurisdiction.holiday_country, jurisdiction.holiday_subdivision,
                                         ensemble.feature_names, inputs, weather)
        ensemble.predict_proba(blocks)
        per_model[span.target] = time.perf_counter() - started
    return {"all_targets": all_targets, "per_model": per_model, "cells": n_cells}


def run_scenario(name: str, smoke: bool, profile_folder: Path | None, memory_limit_gb: float | None = None) -> dict:
    """Run one scenario in a child process; return its figures with the child's wall time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="riskcast-end-to-end-") as scratch:
        folder = Path(scratch)
        output = folder / "figures.json"
        command = [sys.executable, __file__, CHILD_FLAG, name, str(folder), str(output)]
        if smoke:
            command.append("--smoke")
        if profile_folder is not None:
            command += ["--profile", str(profile_folder / name.replace(" ", "-"))]
        if memory_limit_gb is not None:
            command += ["--memory-limit-gb", str(memory_limit_gb)]

        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=sys.stderr)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if status != 0 or not output.is_file():
            raise SystemExit(f"the {name} scenario failed with exit status {status}; see its log above")
        figures = json.loads(output.read_text(encoding="utf-8"))

    figures["child_wall"] = wall
    # ru_maxrss is in KiB on Linux.
    figures["peak_rss_bytes"] = usage.ru_maxrss * 1024
    figures["scenario"] = build_scenario(name, smoke)
    figures["memory_limit_gb"] = memory_limit_gb
    return figures


def verdict(value: float, target: float, at_most: bool = True) -> str:
    passed = value <= target if at_most else value >= target
    return "PASS" if passed else "MISS"


def scenario_rows(name: str, figures: dict, smoke: bool) -> list[str]:
    """Format one scenario's figures as Markdown table rows, each with its target and verdict."""
    scenario: Scenario = figures["scenario"]
    seconds = dict(figures["steps"])
    rows = [f"| {name} | {step} | {value:.1f} s | | |" for step, value in figures["steps"]]

    def checked(label: str, value: str, target: str, outcome: str) -> str:
        return f"| {name} | {label} | {value} | {target} | {'(smoke)' if smoke else outcome} |"

    wall_target = TARGET_WALL_SECONDS.get(name.removesuffix(" (smoke)"))
    total = figures["total"]
    rows.append(checked("total, warehouse to evaluate", f"{total:.1f} s",
                        f"<= {wall_target:.0f} s" if wall_target else "",
                        verdict(total, wall_target) if wall_target else ""))
    rate = scenario.cell_hours / seconds["features_job"]
    rows.append(checked(f"features_job, {scenario.cell_hours:,} cell-hours (wall, Dagster's partition events "
                        f"included)", f"{rate:,.0f} cell-hours/s", "", ""))
    feature_seconds = figures["feature_build_seconds"]
    window_rate = scenario.cell_hours / feature_seconds["window_seconds"]
    rows.append(checked(f"features asset without Dagster's events (inputs read, built, day files written; "
                        f"{feature_seconds['window_seconds']:.1f} s)", f"{window_rate:,.0f} cell-hours/s", "", ""))
    build_rate = scenario.cell_hours / feature_seconds["build_seconds"]
    rows.append(checked(f"feature build alone ({feature_seconds['build_seconds']:.1f} s inside features_job)",
                        f"{build_rate:,.0f} cell-hours/s", f">= {TARGET_FEATURE_RATE:,}",
                        verdict(build_rate, TARGET_FEATURE_RATE, at_most=False)))
    window = f"{figures['train'][0][:10]} to {figures['train'][1][:10]}"
    for target, value in figures["training_seconds"].items():
        rows.append(checked(f"ensemble training, {target}, {window}", f"{value:.1f} s",
                            f"<= {TARGET_TRAIN_SECONDS:.0f} s", verdict(value, TARGET_TRAIN_SECONDS)))
    per_issue = seconds["score_job"] / figures["issue_hours"]
    rows.append(checked(f"score_job per issue hour ({figures['issue_hours']} issue hours, "
                        f"{scenario.cells} cells x 72 h x {len(figures['training_seconds'])} targets each, "
                        f"Dagster overhead included)", f"{per_issue:.2f} s", "", ""))
    probe = figures["scoring"]
    for target, value in probe["per_model"].items():
        rows.append(checked(f"scoring {probe['cells']} cells x 72 h, {target} model (matrix and prediction)",
                            f"{value:.2f} s", f"<= {TARGET_SCORE_SECONDS:.0f} s",
                            verdict(value, TARGET_SCORE_SECONDS)))
    rows.append(checked(f"scoring one issue hour, all targets, outside Dagster (models loaded, inputs read, "
                        f"Parquet written)", f"{probe['all_targets']:.2f} s", "", ""))
    raised = [job for (job, peak), (_, before) in zip(figures["peaks"], [("", 0), *figures["peaks"]])
              if peak > before]
    rows.append(checked("jobs that raised this process's peak RSS, in order",
                        ", ".join(f"{job} {peak / GIB:.2f} GiB" for job, peak in figures["peaks"] if job in raised),
                        "", ""))
    raised_by_subprocess = [job for (job, peak), (_, before) in
                            zip(figures["subprocess_peaks"], [("", 0), *figures["subprocess_peaks"]]) if peak > before]
    rows.append(checked("jobs whose subprocesses (dbt with its DuckDB) raised the largest subprocess peak RSS, "
                        "in order",
                        ", ".join(f"{job} {peak / GIB:.2f} GiB" for job, peak in figures["subprocess_peaks"]
                                  if job in raised_by_subprocess), "", ""))
    rss_target = TARGET_PEAK_RSS_BYTES.get(name.removesuffix(" (smoke)"))
    target_text = f"<= {rss_target / 1e9:.0f} GB ({rss_target / GIB:.2f} GiB)" if rss_target else ""
    rows.append(checked("peak RSS of the child (largest process, the scoring probe after the jobs included)",
                        f"{figures['peak_rss_bytes'] / GIB:.2f} GiB", target_text,
                        verdict(figures["peak_rss_bytes"], rss_target) if rss_target else ""))
    return rows


def describe_input(scenario: Scenario) -> str:
    if scenario.source == "chicago":
        years = ", ".join(f"chicago_crimes_{year}.csv.gz" for year in scenario.years)
        return f"{scenario.name}: real Chicago extracts ({years}), {scenario.cells} census tracts"
    rows, columns = scenario.grid or SMOKE_GRID
    return (f"{scenario.name}: synthetic demo city, {rows} x {columns} grid ({scenario.cells} cells), "
            f"{scenario.synthetic_start} to {(scenario.features_end - timedelta(days=1)).date()}")


def report(results: dict[str, dict], smoke: bool) -> str:
    """Format the figures of every scenario as a docs/benchmarks.md entry."""
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    lines = [
        f"## {date.today().isoformat()}: main job end to end in one process{' (smoke run)' if smoke else ''}",
        "",
        f"- Command: `.venv/bin/python benchmarks/end_to_end.py {' '.join(sys.argv[1:])}`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f} after the run",
    ]
    lines += [f"- Input: {describe_input(figures['scenario'])}" for figures in results.values()]
    limits = {figures["memory_limit_gb"] for figures in results.values()}
    lines.append(f"- Run file: memory_limit_gb {limits.pop()}" if limits != {None}
                 else "- Run file: memory_limit_gb unset (55% of RAM)")
    lines += [
        "- Jobs: warehouse_job, features_job over every hour of the input years, train_job on the window in its "
        "row (one refresh window of 26 weeks, 6 in a smoke run), score_job and evaluate_job on the 24 issue hours "
        "from the window's end. They ran on the in-process executor and an ephemeral instance. Peak RSS is `ru_maxrss` of the child "
        "that ran them",
        "",
        "| scenario | figure | value | target | outcome |",
        "|---|---|---|---|---|",
    ]
    for name, figures in results.items():
        lines += scenario_rows(name, figures, smoke)
    lines.append("")
    return "\n".join(lines)


def print_profiles(results: dict[str, dict]) -> None:
    """Print each job's top functions by cumulative time, as the child measured them."""
    for name, figures in results.items():
        for job, summary in figures["profiles"].items():
            print(f"\n{name}, {job}: top functions by cumulative time ({summary['profile']})")
            for function, seconds in summary["top"]:
                print(f"  {seconds:8.2f} s  {function}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        profile = Path(sys.argv[sys.argv.index("--profile") + 1]) if "--profile" in sys.argv else None
        limit = (float(sys.argv[sys.argv.index("--memory-limit-gb") + 1]) if "--memory-limit-gb" in sys.argv
                 else None)
        child(sys.argv[2], "--smoke" in sys.argv, Path(sys.argv[3]), profile, Path(sys.argv[4]), limit)
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", nargs="+", default=["city-year", "four-years"],
                        choices=["city-year", "four-years"], help="scenarios to run, in order")
    parser.add_argument("--smoke", action="store_true",
                        help="run each scenario on a synthetic 8 x 8 grid over three months with a 2-net ensemble")
    parser.add_argument("--profile", type=Path, metavar="FOLDER",
                        help="profile each job and write FOLDER/SCENARIO/JOB.txt and JOB.html (JOB.prof with cProfile)")
    parser.add_argument("--memory-limit-gb", type=float, metavar="GB",
                        help="set memory_limit_gb in the scenarios' run files (default: unset, 55%% of RAM)")
    parser.add_argument("--record", action="store_true", help="add the figures to docs/benchmarks.md")
    arguments = parser.parse_args()
    if arguments.smoke and arguments.record:
        parser.error("--record with --smoke: smoke figures are not comparable with the targets, so they are not "
                     "recorded; drop one of the two options")

    results = {}
    for name in arguments.scenario:
        key = f"{name} (smoke)" if arguments.smoke else name
        results[key] = run_scenario(name, arguments.smoke, arguments.profile, arguments.memory_limit_gb)

    text = report(results, arguments.smoke)
    print(text)
    if arguments.profile is not None:
        print_profiles(results)
    if arguments.record:
        record(text)


if __name__ == "__main__":
    main()
