"""The ``riskcast`` command: run, backfill, score, evaluate and inspect the pipeline from a terminal.

``riskcast demo`` runs the main job on the bundled synthetic demo, and ``riskcast run --config FILE``
runs it on a run file. Both run the Dagster jobs that the UI shows, in order: warehouse, features,
training, scoring, evaluation and bias audit, release. The runs are recorded in the Dagster
instance under ``RISKCAST_HOME/dagster``. Training runs the one refresh partition that ends at the
run file's ``train.end``, and ``riskcast backtest`` trains every refresh partition of the backtest
window. ``backfill``, ``score`` and ``evaluate`` run parts of the main job on an existing home
folder. ``report`` lists (and can rebuild) the HTML reports, ``status`` prints what is materialized
and how fresh it is, and ``ui`` starts ``dagster dev`` on the same instance.

Every job prints a progress line to stderr when it starts and when it ends, and results go to
stdout. Exit codes: 0 when everything ran, 1 when a job failed or an input is invalid (with a
one-line ``riskcast: <cause>`` on stderr), 2 for a command-line usage error, and 3 when everything
ran but the bias release gate blocked promotion.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import dagster as dg

from ml.backtest import plan_issues, results_markdown
from orchestration.assets.weather_modes import headline_rows, plan_origins
from orchestration.assets.models import table_columns
from orchestration.definitions import (
    EVALUATE_JOB,
    FEATURES_JOB,
    RELEASE_JOB,
    SCORE_JOB,
    WAREHOUSE_JOB,
    WEATHER_MODES_JOB,
    build_definitions,
)
from orchestration.home_lock import HomeLockedError, home_lock
from orchestration.jurisdiction import (
    ConfigError,
    JurisdictionConfig,
    RunConfig,
    default_run_config_path,
    load_jurisdiction,
    load_run_config,
    run_targets,
)
from orchestration.notebooks import NOTEBOOK_NAMES, NotebookError, render_notebooks
from orchestration.partitions import partition_key
from orchestration.runner import (  # noqa: F401 (re-exported: tests and notebooks import them from here)
    CONSOLE_LOG_CONFIG,
    GATE_CHECK,
    PARTITION_TAG,
    JobFailedError,
    ReleaseBlockedError,
    RunContext,
    backfill_range,
    backtest_steps,
    parallel_backfill_range,
    prepare_run,
    print_progress,
    range_tags,
    root_cause,
    run_job,
    run_main_job,
    run_with_instance,
)
from orchestration.settings import HOME_VARIABLE, RiskcastSettings
from orchestration.status import StatusError, open_instance, status_lines
from orchestration.warehouse import connect


HOUR = timedelta(hours=1)
TOP_CELLS = 10
# The workspace file that `riskcast ui` hands to `dagster dev`, at the repository root.
WORKSPACE_FILE = Path(__file__).resolve().parent.parent / "workspace.yaml"


class CliError(click.ClickException):
    """A failure that ``riskcast`` reports as one ``riskcast: <cause>`` line and a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(one_line(message))
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"riskcast: {self.format_message()}", err=True)


def one_line(message: str) -> str:
    """Join a multi-line message, such as a job failure with its failed steps, into one line."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return f"{lines[0].rstrip(':')}: {'; '.join(lines[1:])}"


# ---------------------------------------------------------------------------------------------
# Times and partitions


def parse_hour(value: str, option: str) -> tuple[datetime, bool]:
    """Parse an ISO date or time (naive means UTC) and floor it to the hour.

    Also accepts Dagster's hourly partition keys (``2017-07-01-05:00``). Returns the UTC hour and
    whether rounding changed the value.
    """
    text = value.strip()
    try:
        moment = datetime.strptime(text, "%Y-%m-%d-%H:%M")
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise CliError(f"{option} {value!r} is not an ISO date or time; give a date such as 2017-07-01 "
                           f"or an hour such as 2017-07-01T05:00 (UTC unless it has an offset such as "
                           f"-05:00)") from None
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour, hour != moment


def iso_hour(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M UTC")


def last_partition_end(now: datetime | None = None) -> datetime:
    """Return the end of the newest hourly partition: the start of the current UTC hour."""
    moment = now or datetime.now(timezone.utc)
    return moment.replace(minute=0, second=0, microsecond=0)


def check_hours(start: datetime, end: datetime, jurisdiction: JurisdictionConfig, option_start: str,
                option_end: str, now: datetime | None = None) -> None:
    """Raise ``CliError`` unless ``[start, end)`` is non-empty and inside the jurisdiction's hourly partitions."""
    first = jurisdiction.partitions_start
    last_end = last_partition_end(now)
    if end <= start:
        raise CliError(f"{option_end} {iso_hour(end)} is not after {option_start} {iso_hour(start)}; give the "
                       f"earlier time as {option_start} (the range includes {option_start} and excludes "
                       f"{option_end})")
    if start < first:
        raise CliError(f"{option_start} {iso_hour(start)} is before {jurisdiction.name}'s first hourly "
                       f"partition {iso_hour(first)} (its data_start); use {first.strftime('%Y-%m-%d')} "
                       f"or later")
    if end > last_end:
        raise CliError(f"{option_end} {iso_hour(end)} is after the newest hourly partition, which ends at "
                       f"{iso_hour(last_end)} (a partition exists once its hour has ended); use "
                       f"{last_end.strftime('%Y-%m-%dT%H:%M')} or earlier")


def read_range(start_text: str, end_text: str, jurisdiction: JurisdictionConfig) -> tuple[datetime, datetime]:
    """Parse ``--from`` and ``--to`` into whole UTC hours covering them, and check them against the partitions."""
    start, start_moved = parse_hour(start_text, "--from")
    end, end_moved = parse_hour(end_text, "--to")
    if start_moved:
        print_progress(f"riskcast: rounded --from {start_text} down to {iso_hour(start)}, because partitions "
                       f"are whole UTC hours")
    if end_moved:
        end += HOUR
        print_progress(f"riskcast: rounded --to {end_text} up to {iso_hour(end)}, so the range covers it")
    check_hours(start, end, jurisdiction, "--from", "--to")
    return start, end


# ---------------------------------------------------------------------------------------------
# Printing results


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


def top_scores(warehouse: Path, issued_at: datetime, horizon_hours: int,
               limit: int = TOP_CELLS) -> list[tuple[str, int, str, float, float]]:
    """Return ``(target, rank, cell_id, risk, relative_risk)`` of the highest-risk cells per target."""
    with connect(warehouse, read_only=True) as connection:
        return connection.execute(
            "SELECT target, rank, cell_id, risk, relative_risk FROM main.risk_scores "
            "WHERE issued_at = ? AND horizon_hours = ? AND rank <= ? ORDER BY target, rank",
            [issued_at.replace(tzinfo=None), horizon_hours, limit]).fetchall()


def print_top_scores(rows: list[tuple[str, int, str, float, float]], issued_at: datetime, horizon_hours: int,
                     horizons: int) -> None:
    target_hour = issued_at + (horizon_hours - 1) * HOUR
    print(f"Scores issued at {iso_hour(issued_at)}: top {TOP_CELLS} cells per target for the hour "
          f"{iso_hour(target_hour)} (horizon {horizon_hours} of {horizons})")
    print(f"  {'target':<12} {'rank':>4}  {'cell_id':<20} {'risk':>10}  {'relative_risk':>13}")
    for target, rank, cell_id, risk, relative_risk in rows:
        relative = "n/a" if relative_risk is None else f"{relative_risk:.3f}"
        print(f"  {target:<12} {rank:>4}  {cell_id:<20} {risk:>10.6f}  {relative:>13}")


# ---------------------------------------------------------------------------------------------
# Shared command steps


def load_config(config_path: Path) -> tuple[RunConfig, JurisdictionConfig]:
    """Load a run file and its jurisdiction, turning a missing or invalid file into a one-line error."""
    try:
        run = load_run_config(config_path)
        return run, load_jurisdiction(run.jurisdiction)
    except ConfigError as error:
        raise CliError(str(error)) from None


def require_warehouse(jurisdiction: JurisdictionConfig, home: Path) -> None:
    """Raise ``CliError`` naming the command that builds the warehouse when ``home`` has none."""
    warehouse = RiskcastSettings(home=home, jurisdiction=jurisdiction.name).warehouse_path
    if not warehouse.is_file():
        raise CliError(f"no warehouse at {warehouse}: run `riskcast demo` or `riskcast run --config FILE` "
                       f"with --home {home} first")


def load_context(config_path: Path, home: Path) -> RunContext:
    """Load the run file and build its definitions, turning a bad run file into a one-line error."""
    try:
        return prepare_run(config_path, home)
    except ConfigError as error:
        raise CliError(str(error)) from None


def run_or_fail(context: RunContext, steps) -> ReleaseBlockedError | None:
    """Run ``steps`` on the persistent instance; return the gate's block instead of raising it."""
    try:
        run_with_instance(context, steps)
    except ReleaseBlockedError as error:
        return error
    except (JobFailedError, HomeLockedError) as error:
        raise CliError(str(error)) from None
    return None


def finish(settings: RiskcastSettings, blocked: ReleaseBlockedError | None) -> None:
    """Print the release status; exit 3 with the gate's one-line cause when the gate blocked promotion."""
    print_release(settings)
    if blocked is not None:
        raise CliError(f"{blocked}. Read {settings.reports_dir / 'bias_audit.html'} for the groups that failed.",
                       exit_code=3)


def run_main(home: Path, config_path: Path, backtest: bool) -> None:
    """Run the main job (or a backtest) on a run file and print the summary."""
    try:
        jurisdiction = load_jurisdiction(load_run_config(config_path).jurisdiction)
        blocked = None
        try:
            settings = run_main_job(config_path, home, backtest=backtest)
        except ReleaseBlockedError as error:
            blocked = error
            settings = RiskcastSettings(home=home, jurisdiction=jurisdiction.name)
    except (ConfigError, JobFailedError, HomeLockedError) as error:
        raise CliError(str(error)) from None
    print_summary(settings, config_path, jurisdiction.synthetic)
    if backtest:
        print_backtest(settings)
    finish(settings, blocked)


def report_asset_keys(definitions: dg.Definitions) -> list[dg.AssetKey]:
    """Return the keys of every asset that writes an HTML report (the assets of kind ``html``)."""
    return [spec.key for spec in definitions.resolve_all_asset_specs() if "html" in spec.kinds]


def build_reports(context: RunContext) -> None:
    """Materialize every report asset in one run, from the tables that are already in the warehouse."""
    keys = report_asset_keys(context.definitions)
    job = context.definitions.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(keys))
    names = ", ".join(key.to_user_string() for key in keys)
    print_progress(f"[1/1] report assets ({names}) ...")
    started = time.monotonic()

    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(run_config=CONSOLE_LOG_CONFIG, instance=instance, raise_on_error=False)
    if not result.success:
        failures = [f"{event.step_key}: {root_cause(event.event_specific_data.error)}"
                    for event in result.all_events if event.is_step_failure]
        raise CliError(f"building the reports failed (run {result.run_id}): "
                       f"{'; '.join(failures) or 'see the run in the Dagster UI'}")

    print_progress(f"[1/1] report assets done in {time.monotonic() - started:.1f} s")


def check_ui_host(host: str, allow_remote: bool) -> None:
    """Reject a host that is not a loopback address unless ``allow_remote`` is set."""
    if host == "localhost" or allow_remote:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise CliError(f"--host {host} is not a loopback address. The Dagster UI has no login, so anyone who "
                       f"can reach {host} could launch, cancel and delete runs and read the warehouse paths; "
                       f"keep the default 127.0.0.1, or add --allow-remote if the network is trusted")


def ui_environment(settings: RiskcastSettings, config_path: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment[HOME_VARIABLE] = str(settings.home)
    environment["RISKCAST_CONFIG"] = str(config_path.resolve())
    environment["DAGSTER_HOME"] = str(settings.dagster_home)
    return environment


# ---------------------------------------------------------------------------------------------
# Commands


CONFIG_HELP = "run file: jurisdiction, extracts folder and windows (default: the bundled synthetic demo run file)"


def config_option(function):
    return click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
                        default=None, help=CONFIG_HELP)(function)


def home_of(context: click.Context) -> Path:
    return context.find_root().obj["home"]


def config_or_default(config_path: Path | None) -> Path:
    return config_path if config_path is not None else default_run_config_path()


class OrderedGroup(click.Group):
    """A command group that lists its commands in the order they are defined, as a user runs them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=OrderedGroup, context_settings={"help_option_names": ["-h", "--help"]},
             help="Hourly, place-based crime-risk forecasting.")
@click.option("--home", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="folder for the warehouse, models and reports (default: $RISKCAST_HOME or ./data)")
@click.pass_context
def cli(context: click.Context, home: Path | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    resolved = (home or Path(os.environ.get(HOME_VARIABLE) or "data")).expanduser().resolve()
    context.obj = {"home": resolved}


@cli.command(help="Run the main job on the bundled synthetic demo jurisdiction.")
@click.pass_context
def demo(context: click.Context) -> None:
    run_main(home_of(context), default_run_config_path(), backtest=False)


@cli.command(help="Run the main job on a run file: warehouse, features, training, scores, evaluation, release.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="run file: jurisdiction, extracts folder, train, score and evaluate windows")
@click.pass_context
def run(context: click.Context, config_path: Path) -> None:
    run_main(home_of(context), config_path, backtest=False)


@cli.command(help="Train an ensemble for every refresh partition of the run file's backtest window, then "
                  "score every model on daily forecasts and write the Model Metrics report.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="run file with a backtest block (window, issue hour, baselines)")
@click.pass_context
def backtest(context: click.Context, config_path: Path) -> None:
    run_main(home_of(context), config_path, backtest=True)


@cli.command(help="Build the features, then the 72-hour scores, of the hourly partitions from --from up to "
                  "--to (excluded), one run per job. Needs the warehouse and a model trained before --from.")
@click.option("--from", "start_text", required=True, metavar="TIME",
              help="first hour, ISO 8601: 2017-07-01 or 2017-07-01T05:00, UTC unless it has an offset")
@click.option("--to", "end_text", required=True, metavar="TIME",
              help="end of the range (excluded), in the same form; a time inside an hour includes that hour")
@config_option
@click.option("--no-score", is_flag=True, help="build the features only")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="processes: with 2 or more, each job runs as a fan-out job that splits the range at UTC "
                   "midnights and builds the pieces in parallel on Dagster's multiprocess executor")
@click.pass_context
def backfill(context: click.Context, start_text: str, end_text: str, config_path: Path | None,
             no_score: bool, workers: int) -> None:
    config = config_or_default(config_path)
    _, jurisdiction = load_config(config)
    start, end = read_range(start_text, end_text, jurisdiction)
    require_warehouse(jurisdiction, home_of(context))
    run_context = load_context(config, home_of(context))

    try:
        with home_lock(run_context.settings), dg.DagsterInstance.get() as instance:
            if workers > 1:
                parallel_backfill_range(run_context, instance, start, end, workers, score=not no_score)
            else:
                backfill_range(run_context.definitions, instance, start, end, score=not no_score)
    except (JobFailedError, HomeLockedError) as error:
        raise CliError(str(error)) from None

    hours = int((end - start) / HOUR)
    built = "features" if no_score else "features and scores"
    print(f"Backfilled {built} of {hours} hourly partitions: {partition_key(start)} .. {partition_key(end - HOUR)}")
    print(f"Warehouse:   {run_context.settings.warehouse_path}")


@cli.command(help="Score the 72 hours issued at one hour (one partition of score_job), then print the "
                  "10 highest-risk cells of each target with their risk and relative risk.")
@click.option("--at", "at_text", required=True, metavar="TIME",
              help="issue hour, ISO 8601: 2017-07-01T05:00, UTC unless it has an offset")
@click.option("--horizon", "horizon_hours", type=click.IntRange(min=1), default=1, show_default=True,
              help="which of the forecast hours to print, 1 being the issue hour itself")
@config_option
@click.pass_context
def score(context: click.Context, at_text: str, horizon_hours: int, config_path: Path | None) -> None:
    config = config_or_default(config_path)
    run, jurisdiction = load_config(config)
    horizons = run.horizon_hours
    if horizon_hours > horizons:
        raise CliError(f"--horizon {horizon_hours} is past the run file's horizon_hours {horizons}; "
                       f"use 1 to {horizons}")
    issued_at, moved = parse_hour(at_text, "--at")
    if moved:
        print_progress(f"riskcast: rounded --at {at_text} down to {iso_hour(issued_at)}, because forecasts "
                       f"are issued at whole UTC hours")
    check_hours(issued_at, issued_at + HOUR, jurisdiction, "--at", "--at")
    require_warehouse(jurisdiction, home_of(context))

    run_context = load_context(config, home_of(context))
    check_features_exist(run_context, issued_at)

    blocked = run_or_fail(run_context, [(SCORE_JOB, {PARTITION_TAG: partition_key(issued_at)})])
    if blocked is not None:
        raise CliError(str(blocked))

    rows = top_scores(run_context.settings.warehouse_path, issued_at, horizon_hours)
    missing = sorted(set(run_targets(run_context.run, run_context.jurisdiction)) - {row[0] for row in rows})
    print_top_scores(rows, issued_at, horizon_hours, horizons)
    if missing:
        raise CliError(f"score_job wrote no scores of {missing} for {iso_hour(issued_at)}; read the run's "
                       f"log in the Dagster UI")


def check_features_exist(run_context: RunContext, issued_at: datetime) -> None:
    """Raise ``CliError`` when the feature partition that scoring ``issued_at`` reads is not materialized."""
    key = partition_key(issued_at)
    with dg.DagsterInstance.get() as instance:
        materialized = instance.get_materialized_partitions(dg.AssetKey("cell_hour_features"))
    if key not in materialized:
        raise CliError(f"the features of hour {key} are not materialized, and its scores read them; run "
                       f"`riskcast backfill --from {issued_at:%Y-%m-%dT%H:%M} --to "
                       f"{issued_at + HOUR:%Y-%m-%dT%H:%M}` first")


@cli.command(help="Evaluate the published scores and backtest, audit them for bias, write the reports, "
                  "then apply the bias release gate. Exits with 3 when the gate blocks promotion.")
@config_option
@click.pass_context
def evaluate(context: click.Context, config_path: Path | None) -> None:
    config = config_or_default(config_path)
    run_context = load_context(config, home_of(context))
    blocked = run_or_fail(run_context, [(EVALUATE_JOB, None), (RELEASE_JOB, None)])
    print_summary(run_context.settings, config, run_context.jurisdiction.synthetic)
    finish(run_context.settings, blocked)


def weather_mode_lines(settings: RiskcastSettings) -> list[str]:
    """Return the weather-mode backtest's headline table as Markdown lines."""
    with connect(settings.warehouse_path, read_only=True) as connection:
        frame = connection.sql("SELECT * FROM main.weather_mode_metrics").pl()
    lines = ["| mode | ROC-AUC (hour) | ROC-AUC (day) | PAI at 5% (day) |", "|---|---|---|---|"]
    for row in headline_rows(frame):
        values = [f"{row[name]:.3f}" if row[name] is not None else "n/a"
                  for name in ("roc_auc_hour", "roc_auc_day", "pai_day")]
        lines.append(f"| {row['label']} | " + " | ".join(values) + " |")
    return lines


@cli.command("weather-modes",
             help="Retrain the ensemble over the run file's backtest window with no weather, with stand-in "
                  "forecast weather and with observed (oracle) weather, score the three side by side and print "
                  "the table. `report --build` then shows it in the Model Metrics report. With --prepare, first "
                  "build the warehouse and the features that the training windows need.")
@config_option
@click.option("--prepare", is_flag=True, help="build the warehouse and the features of the training windows first")
@click.pass_context
def weather_modes(context: click.Context, config_path: Path | None, prepare: bool) -> None:
    config = config_or_default(config_path)
    run_context = load_context(config, home_of(context))
    run = run_context.run
    window = run.backtest_window
    issues = plan_issues(window.start, window.end, run_context.jurisdiction.time_zone, run.backtest.issue_hour)
    origins = plan_origins(issues, run.weather_modes.refresh_days, run.weather_modes.train_days)
    steps = []
    if prepare:
        steps = [(WAREHOUSE_JOB, None), (FEATURES_JOB, range_tags(origins[0].start, issues[-1].until))]
    run_or_fail(run_context, [*steps, (WEATHER_MODES_JOB, None)])
    click.echo("\n".join(weather_mode_lines(run_context.settings)))


@cli.command(help="Print the paths of a jurisdiction's HTML reports. With --build, first materialize every "
                  "report asset (data input audit, score metrics, model metrics, bias audit, police "
                  "deployment) from the tables already in the warehouse, for the run file of --config. "
                  "With --notebooks, also execute the analyst notebooks and render them beside the reports.")
@click.option("--jurisdiction", "jurisdiction_name", default=None,
              help="jurisdiction name or YAML file (default: the run file's with --config, else demo)")
@config_option
@click.option("--build", is_flag=True,
              help="rebuild the HTML reports before listing them (needs a finished main job in --home)")
@click.option("--notebooks", is_flag=True, help="execute the four notebooks in notebooks/ and render them to HTML")
@click.pass_context
def report(context: click.Context, jurisdiction_name: str | None, config_path: Path | None, build: bool,
           notebooks: bool) -> None:
    home = home_of(context)
    if build or config_path is not None:
        config = config_or_default(config_path)
        try:
            run_jurisdiction = load_run_config(config).jurisdiction
        except ConfigError as error:
            raise CliError(str(error)) from None
        if jurisdiction_name is not None and jurisdiction_name != run_jurisdiction:
            raise CliError(f"--jurisdiction {jurisdiction_name} differs from the run file's jurisdiction "
                           f"{run_jurisdiction} ({config}); give only one of them")
        jurisdiction_name = run_jurisdiction
    jurisdiction_name = jurisdiction_name or "demo"

    if build:
        require_warehouse(load_config(config)[1], home)
        build_reports(load_context(config, home))
    code = print_reports(home, jurisdiction_name, notebooks)
    if code != 0:
        context.exit(code)


@cli.command(help="Start the Dagster UI (`dagster dev`) on this home folder's instance and the run file's "
                  "code location. Stop it with Ctrl-C.")
@config_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; a non-loopback address needs --allow-remote")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True, help="TCP port")
@click.option("--allow-remote", is_flag=True,
              help="allow a non-loopback --host, which exposes the UI (it has no login) to that network")
@click.pass_context
def ui(context: click.Context, config_path: Path | None, host: str, port: int, allow_remote: bool) -> None:
    check_ui_host(host, allow_remote)
    config = config_or_default(config_path)
    _, jurisdiction = load_config(config)
    if not WORKSPACE_FILE.is_file():
        raise CliError(f"workspace file not found: {WORKSPACE_FILE}; `riskcast ui` needs a source checkout of "
                       f"Riskcast (pip install -e .), because dagster dev loads the code location from it")
    dagster = Path(sys.executable).parent / "dagster"
    if not dagster.is_file():
        raise CliError(f"dagster executable not found: {dagster}; install Riskcast into this environment "
                       f"(pip install -e .) to get it")

    settings = RiskcastSettings(home=home_of(context), jurisdiction=jurisdiction.name)
    settings.ensure_dirs()
    print_progress(f"riskcast: starting the Dagster UI at http://{host}:{port} for {jurisdiction.name} "
                   f"(instance {settings.dagster_home}); Ctrl-C stops it")
    sys.stderr.flush()
    sys.stdout.flush()
    os.chdir(WORKSPACE_FILE.parent)
    os.execve(str(dagster), [str(dagster), "dev", "-w", str(WORKSPACE_FILE), "-h", host, "-p", str(port)],
              ui_environment(settings, config))


@cli.command(help="Print each asset's latest materialization and partitions, the latest asset-check "
                  "results, the age of each portal source's newest record and the newest scores.")
@config_option
@click.option("--all", "everything", is_flag=True,
              help="list every dbt model and every asset check, not only the checks that did not pass")
@click.pass_context
def status(context: click.Context, config_path: Path | None, everything: bool) -> None:
    config = config_or_default(config_path)
    home = home_of(context)
    run, jurisdiction = load_config(config)
    require_warehouse(jurisdiction, home)
    settings = RiskcastSettings(home=home, jurisdiction=jurisdiction.name)

    try:
        definitions = build_definitions(config.resolve(), home)
        with open_instance(settings.dagster_home) as instance:
            lines = status_lines(definitions, instance, settings.warehouse_path, run.freshness,
                                 everything=everything)
    except (ConfigError, StatusError) as error:
        raise CliError(str(error)) from None

    print(f"Status of {jurisdiction.name} (run file {config.resolve()}, home {home})")
    for line in lines:
        print(line)


def main(argv: list[str] | None = None) -> int:
    """Run the ``riskcast`` command and return its exit code; usage errors print one line and return 2."""
    try:
        result = cli.main(args=argv, prog_name="riskcast", standalone_mode=False)
    except click.UsageError as error:
        command = f"riskcast {error.ctx.command_path.split(' ', 1)[1]} --help" \
            if error.ctx is not None and " " in error.ctx.command_path else "riskcast --help"
        print(f"riskcast: {one_line(error.format_message())} (see `{command}`)", file=sys.stderr)
        return 2
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Exit as exit_request:
        return exit_request.exit_code
    except click.Abort:
        print("riskcast: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
