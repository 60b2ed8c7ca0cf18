"""The ``riskcast`` command: run the main job from a terminal.

``riskcast demo`` runs the bundled synthetic demo; ``riskcast run --config FILE`` runs a run file;
``riskcast report [--notebooks]`` lists the HTML reports and can render the analyst notebooks.
Both execute the same Dagster jobs the UI shows, in order (warehouse, features, training,
scoring, evaluation and bias audit, release), record them in the Dagster instance under ``RISKCAST_HOME/dagster``, stop at
the first failed run, and print where the warehouse and the reports are. Training runs the one
refresh partition that ends at the run file's ``train.end``. The command exits with 1 when a job
fails and with 3 when everything ran but the bias release gate blocked promotion.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg

from ml.backtest import results_markdown
from orchestration.assets.models import table_columns
from orchestration.definitions import (
    CONFIG_VARIABLE,
    EVALUATE_JOB,
    FEATURES_JOB,
    RELEASE_JOB,
    SCORE_JOB,
    TRAIN_JOB,
    WAREHOUSE_JOB,
    build_definitions,
)
from orchestration.jurisdiction import ConfigError, default_run_config_path, load_jurisdiction, load_run_config
from orchestration.notebooks import NOTEBOOK_NAMES, NotebookError, render_notebooks
from orchestration.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    partition_key,
    refresh_key_format,
    refresh_partitions,
    training_partition_key,
)
from orchestration.settings import HOME_VARIABLE, RiskcastSettings
from orchestration.warehouse import connect

logger = logging.getLogger("riskcast")

PARTITION_TAG = "dagster/partition"

# Dagster's console logger prints every event at DEBUG, thousands of lines per partitioned run;
# INFO keeps the asset logs, step failures and run results.
CONSOLE_LOG_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class JobFailedError(RuntimeError):
    """A Dagster run of the main job failed."""


class ReleaseBlockedError(JobFailedError):
    """The release job ran, and the bias release gate failed, so no ensemble was promoted to current."""


GATE_CHECK = "bias_disparity_gate"


def run_job(definitions: dg.Definitions, instance: dg.DagsterInstance, name: str,
            tags: dict[str, str] | None = None) -> None:
    started = time.monotonic()
    result = definitions.resolve_job_def(name).execute_in_process(
        run_config=CONSOLE_LOG_CONFIG, instance=instance, tags=tags or {}, raise_on_error=False)
    elapsed = time.monotonic() - started
    if not result.success:
        failures = [f"{event.step_key}: {root_cause(event.event_specific_data.error)}"
                    for event in result.all_events if event.is_step_failure]
        detail = "\n".join(failures) or "see the run in the Dagster UI"
        if failures and all(failure.split(":")[0].endswith(GATE_CHECK) for failure in failures):
            raise ReleaseBlockedError(f"{name}: the bias release gate failed, so the ensembles were not promoted "
                                      f"to current (run {result.run_id})")
        raise JobFailedError(f"{name} failed (run {result.run_id}):\n{detail}")
    logger.info("%s finished in %.1f s (run %s)", name, elapsed, result.run_id)


def root_cause(error) -> str:
    """The message of the innermost error in a Dagster error chain: the user's exception, not Dagster's wrapper."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()


def range_tags(start: datetime, end: datetime) -> dict[str, str]:
    """Tags that make one run cover the hourly partitions of ``[start, end)``."""
    last = end - timedelta(hours=1)
    return {RANGE_START_TAG: partition_key(start), RANGE_END_TAG: partition_key(last)}


def run_main_job(config_path: Path, home: Path, instance: dg.DagsterInstance | None = None,
                 backtest: bool = False) -> RiskcastSettings:
    """Run the six jobs of the main job in order; ``instance`` defaults to the persistent one.

    The release job runs last. When its bias gate fails, every other job has finished and
    ``ReleaseBlockedError`` reports that no ensemble was promoted to current.

    With ``backtest``, training covers every refresh partition of the backtest window
    (``backtest_steps``) instead of the one that ends at ``train.end``.
    """
    run = load_run_config(config_path)
    jurisdiction = load_jurisdiction(run.jurisdiction)
    settings = RiskcastSettings(home=home, jurisdiction=jurisdiction.name)
    settings.ensure_dirs()
    os.environ[HOME_VARIABLE] = str(home)
    os.environ[CONFIG_VARIABLE] = str(config_path.resolve())
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)

    definitions = build_definitions(config_path.resolve(), home)
    if backtest:
        steps = backtest_steps(run, jurisdiction)
    else:
        features_end = max(run.score.end, run.evaluate_window.end, run.backtest_window.end)
        training_partition = training_partition_key(run, jurisdiction, refresh_partitions(run, jurisdiction))
        steps = [
            (WAREHOUSE_JOB, None),
            (FEATURES_JOB, range_tags(run.train.start, features_end)),
            (TRAIN_JOB, {PARTITION_TAG: training_partition}),
            (SCORE_JOB, range_tags(run.score.start, run.score.end)),
            (EVALUATE_JOB, None),
            (RELEASE_JOB, None),
        ]
    if instance is not None:
        for name, tags in steps:
            run_job(definitions, instance, name, tags)
        return settings
    with dg.DagsterInstance.get() as persistent:
        for name, tags in steps:
            run_job(definitions, persistent, name, tags)
    return settings


def backtest_steps(run, jurisdiction) -> list[tuple[str, dict[str, str] | None]]:
    """Jobs of a backtest: the main job's steps with one training run per refresh partition.

    Every refresh partition that ends from ``train.end`` up to the backtest window's last issue
    time is trained, so each daily forecast comes from a model trained only on data before it.
    """
    window = run.backtest_window
    features_end = max(run.score.end, run.evaluate_window.end, window.end)
    refresh = refresh_partitions(run, jurisdiction)
    first_key = training_partition_key(run, jurisdiction, refresh)
    steps: list[tuple[str, dict[str, str] | None]] = [
        (WAREHOUSE_JOB, None),
        (FEATURES_JOB, range_tags(run.train.start, features_end)),
    ]
    end = run.train.end
    key = first_key
    while end < window.end:
        steps.append((TRAIN_JOB, {PARTITION_TAG: key}))
        end += run.refresh.length
        key = (end - run.refresh.length).strftime(refresh_key_format(run))
    steps += [(SCORE_JOB, range_tags(run.score.start, run.score.end)), (EVALUATE_JOB, None), (RELEASE_JOB, None)]
    return steps


def dagster_ui_command(settings: RiskcastSettings, config_path: Path) -> str:
    dagster = Path(sys.executable).parent / "dagster"
    return (f"RISKCAST_HOME={settings.home} RISKCAST_CONFIG={config_path.resolve()} "
            f"DAGSTER_HOME={settings.dagster_home} {dagster} dev -w workspace.yaml")


def print_summary(settings: RiskcastSettings, config_path: Path, synthetic: bool) -> None:
    with connect(settings.warehouse_path, read_only=True) as connection:
        scores = connection.sql("SELECT count(*) FROM main.risk_scores").fetchone()[0]
        metrics = connection.sql(
            "SELECT model, metric, value FROM main.evaluation_metrics "
            "WHERE metric IN ('roc_auc', 'pai', 'tpr', 'fpr') ORDER BY model, metric").fetchall()
    if synthetic:
        print("NOTE: this run used the SYNTHETIC demo jurisdiction; no record in it is real.")
    print(f"Warehouse:   {settings.warehouse_path}  (tables main.risk_scores: {scores:,} rows, "
          f"main.evaluation_metrics)")
    print(f"Reports:     {settings.reports_dir / 'model_metrics.html'} (backtest of every model), "
          f"{settings.reports_dir / 'score_metrics.html'} (published scores), "
          f"{settings.reports_dir / 'bias_audit.html'} (bias audit and release gate), "
          f"{settings.reports_dir / 'police_deployment.html'} (deployment simulation)")
    print(f"Models:      {settings.models_dir}  (one per target, each with manifest.json and MODEL_CARD.md)")
    print(f"Dagster UI:  {dagster_ui_command(settings, config_path)}")
    for model, metric, value in metrics:
        print(f"  {model:<9} {metric:<8} {'n/a' if value is None else f'{value:.4f}'}")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="riskcast", description="Hourly, place-based crime-risk forecasting.")
    parser.add_argument("--home", type=Path, default=None,
                        help="folder for the warehouse, models and reports (default: $RISKCAST_HOME or ./data)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the main job on the bundled synthetic demo jurisdiction")
    run_parser = commands.add_parser("run", help="run the main job on a run file")
    run_parser.add_argument("--config", type=Path, required=True,
                            help="run file: jurisdiction, extracts folder, train, score and evaluate windows")
    backtest_parser = commands.add_parser(
        "backtest", help="train an ensemble for every refresh partition of the run file's backtest window, "
                         "then score every model on daily forecasts and write the Model Metrics report")
    backtest_parser.add_argument("--config", type=Path, required=True,
                                 help="run file with a backtest block (window, issue hour, baselines)")
    report_parser = commands.add_parser(
        "report", help="print the paths of a jurisdiction's HTML reports; with --notebooks, execute the analyst "
                       "notebooks against its warehouse first and render them beside the reports")
    report_parser.add_argument("--jurisdiction", default="demo",
                               help="jurisdiction name or YAML file (default: demo)")
    report_parser.add_argument("--notebooks", action="store_true",
                               help="execute the four notebooks in notebooks/ and render them to HTML")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = parse_arguments(argv)
    home = (arguments.home or Path(os.environ.get(HOME_VARIABLE) or "data")).expanduser().resolve()
    if arguments.command == "report":
        return print_reports(home, arguments.jurisdiction, arguments.notebooks)
    config_path = default_run_config_path() if arguments.command == "demo" else arguments.config

    blocked = None
    try:
        synthetic = load_jurisdiction(load_run_config(config_path).jurisdiction).synthetic
        try:
            settings = run_main_job(config_path, home, backtest=arguments.command == "backtest")
        except ReleaseBlockedError as error:
            blocked = error
            settings = RiskcastSettings(home=home, jurisdiction=load_run_config(config_path).jurisdiction)
    except (ConfigError, JobFailedError) as error:
        print(f"riskcast: {error}", file=sys.stderr)
        return 1
    print_summary(settings, config_path, synthetic)
    if arguments.command == "backtest":
        print_backtest(settings)
    print_release(settings)
    if blocked is not None:
        print(f"riskcast: {blocked}. Read {settings.reports_dir / 'bias_audit.html'} for the groups that failed.",
              file=sys.stderr)
        return 3
    return 0


def print_reports(home: Path, jurisdiction_name: str, notebooks: bool) -> int:
    """Print the jurisdiction's HTML reports; with ``notebooks``, render the analyst notebooks first.

    Returns 1 with a one-line cause when the jurisdiction or warehouse is missing or a notebook fails.
    """
    try:
        jurisdiction = load_jurisdiction(jurisdiction_name)
        settings = RiskcastSettings(home=home, jurisdiction=jurisdiction.name)
        if not settings.warehouse_path.is_file():
            raise NotebookError(f"no warehouse at {settings.warehouse_path}: run `riskcast demo` or "
                                f"`riskcast run --config FILE` with --home {home} first")
        rendered = []
        if notebooks:
            source = str(Path(jurisdiction_name).resolve()) if Path(jurisdiction_name).suffix in (".yaml", ".yml") \
                else jurisdiction_name
            rendered = render_notebooks(settings.warehouse_path, settings.reports_dir,
                                        {name: {"jurisdiction": source} for name in NOTEBOOK_NAMES})
    except (ConfigError, NotebookError) as error:
        print(f"riskcast: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    reports = sorted(path for path in settings.reports_dir.glob("*.html") if path not in rendered)
    for path in reports:
        print(f"Report:      {path}")
    for path in rendered:
        print(f"Notebook:    {path}")
    if not reports and not rendered:
        print(f"riskcast: no HTML report in {settings.reports_dir}; run the main job first", file=sys.stderr)
        return 1
    return 0


def print_release(settings: RiskcastSettings) -> None:
    """Print each target's release status and the gate's result."""
    with connect(settings.warehouse_path, read_only=True) as connection:
        if not table_columns(connection, "model_releases"):
            return
        rows = connection.sql("SELECT target, model_id, status, message FROM main.model_releases "
                              "QUALIFY row_number() OVER (PARTITION BY target ORDER BY evaluated_at DESC) = 1 "
                              "ORDER BY target").fetchall()
    for target, model_id, status, _ in rows:
        print(f"Release:     {target} {model_id}: {status}")
    if rows:
        print(f"Gate:        {rows[0][3]}")


def print_backtest(settings: RiskcastSettings) -> None:
    """Print the backtest's headline table: value and 95% interval per model."""
    with connect(settings.warehouse_path, read_only=True) as connection:
        metrics = connection.sql("SELECT * FROM main.backtest_metrics").pl()
    print("Backtest (value [95% interval], paired bootstrap over days):")
    print(results_markdown(metrics))


if __name__ == "__main__":
    sys.exit(main())
