"""The Riskcast code location: assets, audit checks, jobs and resources for one run file.

The run file comes from ``RISKCAST_CONFIG`` (default: the bundled synthetic demo) and the output
folder from ``RISKCAST_HOME`` (default ``./data``). Both are read when Dagster loads the code
location, not at import time.

Besides the six jobs of the main job, three jobs chain them for the schedules
(``orchestration.schedules``): the hourly increment, the model refresh and the nightly evaluation.
Two more run a features or scoring backfill in parallel processes (``orchestration.scale_out``).
The run file's ``freshness`` block sets the thresholds of the freshness checks
(``orchestration.freshness``), and its ``executor`` block the executor of runs launched from the
UI or daemon (``orchestration.executors``).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from orchestration.assets.audit_report import data_input_audit_report
from orchestration.assets.audits import build_audit_checks
from orchestration.assets.backtest import backtest_metrics, backtest_predictions, model_metrics_report
from orchestration.assets.weather_modes import weather_mode_backtest
from orchestration.assets.bias import (
    bias_audit_report,
    bias_group_metrics,
    cell_groups,
    deployment_simulation,
    feedback_simulation,
    input_bias_audit,
    police_deployment_report,
)
from orchestration.assets.evaluation import evaluation_metrics
from orchestration.assets.features import build_features_asset
from orchestration.assets.models import build_training_asset
from orchestration.assets.raw import raw_crime_incidents, raw_offense_codes
from orchestration.assets.raw_forecasts import ARCHIVE_FOLDER, raw_weather_forecasts
from orchestration.assets.raw_geography import raw_boundaries, raw_cells, raw_demographics
from orchestration.assets.raw_requests import raw_service_requests
from orchestration.assets.raw_weather import raw_weather_observations
from orchestration.assets.release import bias_disparity_gate, current_ensemble, release_candidate
from orchestration.assets.scoring import build_scoring_asset
from orchestration.assets.warehouse import build_warehouse_assets, dbt_resource
from orchestration.dbt import prepare_manifest
from orchestration.executors import build_executor
from orchestration.hourly import hourly_increment_selection
from orchestration.freshness import build_freshness_checks_sensor, build_last_update_checks, build_scores_lag_check
from orchestration.jurisdiction import (
    JurisdictionConfig,
    RunConfig,
    check_crime_source,
    check_forecast_source,
    check_weather_source,
    default_run_config_path,
    load_jurisdiction,
    load_run_config,
)
from orchestration.partitions import (
    hourly_partitions,
    refresh_partitions,
    scoring_model_mapping,
    training_window_mapping,
)
from orchestration.notifications import notification_resource
from orchestration.resources import RiskcastResource
from orchestration.scale_out import build_backfill_jobs
from orchestration.schedules import WAREHOUSE_TAG, build_schedules
from orchestration.sensors import (
    build_extracts_sensor,
    build_freshness_sensor,
    build_run_failure_sensor,
    build_stale_features_sensor,
)
from orchestration.settings import HOME_VARIABLE, RiskcastSettings
from orchestration.sources.boundaries import BoundarySource, LocalBoundarySource, SocrataBoundarySource
from orchestration.sources.crimes import CrimeSource, LocalCrimeSource, SocrataCrimeSource
from orchestration.sources.demographics import LocalDemographicsSource
from orchestration.sources.forecasts import ForecastSource, LocalForecastSource, NwsForecastSource
from orchestration.sources.service_requests import check_requests_source, requests_source
from orchestration.sources.weather import LocalWeatherSource, NoaaLcdWeatherSource, WeatherSource

CONFIG_VARIABLE = "RISKCAST_CONFIG"

WAREHOUSE_JOB = "warehouse_job"
FEATURES_JOB = "features_job"
TRAIN_JOB = "train_job"
SCORE_JOB = "score_job"
EVALUATE_JOB = "evaluate_job"
RELEASE_JOB = "release_job"
HOURLY_JOB = "hourly_increment_job"
WEATHER_MODES_JOB = "weather_modes_job"
REFRESH_JOB = "model_refresh_job"
NIGHTLY_JOB = "nightly_evaluation_job"
BIAS_ASSETS = [cell_groups, bias_group_metrics, input_bias_audit, feedback_simulation, deployment_simulation,
               bias_audit_report, police_deployment_report]


def build_definitions(run_config_path: Path, home: Path) -> dg.Definitions:
    run = load_run_config(run_config_path)
    jurisdiction = load_jurisdiction(run.jurisdiction)
    check_crime_source(run, jurisdiction)
    check_requests_source(run, jurisdiction)
    check_weather_source(run, jurisdiction)
    check_forecast_source(run, jurisdiction)
    settings = RiskcastSettings(home=home, jurisdiction=jurisdiction.name)
    partitions = hourly_partitions(jurisdiction)
    refresh = refresh_partitions(run, jurisdiction)

    warehouse = build_warehouse_assets(prepare_manifest())
    features = build_features_asset(partitions)
    risk_ensemble = build_training_asset(refresh, training_window_mapping(run))
    scores = build_scoring_asset(partitions, scoring_model_mapping(run))
    extracts = run.extracts_folder or settings.demo_extracts_dir

    warehouse_selection = dg.AssetSelection.groups("raw", "warehouse", "audit")
    evaluate_selection = dg.AssetSelection.assets(evaluation_metrics, backtest_predictions, backtest_metrics,
                                                  model_metrics_report, *BIAS_ASSETS)
    release_selection = dg.AssetSelection.assets(release_candidate, current_ensemble)
    tags = {WAREHOUSE_TAG: jurisdiction.name}

    jobs = [
        dg.define_asset_job(WAREHOUSE_JOB, selection=warehouse_selection, tags=tags,
                            description="Ingest the extracts, build the dbt warehouse, run the input audit "
                                        "and write its reports."),
        dg.define_asset_job(FEATURES_JOB, selection=[features], partitions_def=partitions, tags=tags,
                            description="Build hourly cell features for a range of hours in one run."),
        dg.define_asset_job(TRAIN_JOB, selection=[risk_ensemble], partitions_def=refresh, tags=tags,
                            description=f"Train one ensemble per target for a {run.refresh.period} refresh "
                                        f"partition, on the trailing window of hourly features before its end."),
        dg.define_asset_job(SCORE_JOB, selection=[scores], partitions_def=partitions, tags=tags,
                            description="Score the next 72 hours for every cell, for each issue hour in a range."),
        dg.define_asset_job(EVALUATE_JOB, selection=evaluate_selection, tags=tags,
                            description="Compare the published scores with CompSTAT on the evaluation window, "
                                        "backtest the ensemble against every baseline on daily forecasts, "
                                        "audit the forecasts for bias, simulate deployment and feedback loops, "
                                        "and write the Model Metrics report."),
        dg.define_asset_job(WEATHER_MODES_JOB, selection=dg.AssetSelection.assets(weather_mode_backtest), tags=tags,
                            description="Retrain the ensemble over the backtest window with no weather, with "
                                        "stand-in forecast weather and with observed (oracle) weather, and score "
                                        "the three side by side for the Model Metrics report."),
        dg.define_asset_job(RELEASE_JOB, selection=release_selection, tags=tags,
                            description="Apply the bias release gate to the latest ensembles and promote them "
                                        "to current when it passes."),
    ]
    audit_checks = build_audit_checks(jurisdiction)
    hourly_job = dg.define_asset_job(
        HOURLY_JOB, selection=hourly_increment_selection(features, scores, audit_checks),
        partitions_def=partitions, tags=tags,
        description="One hour's increment: ingest the crimes, 311 requests and weather, rebuild the warehouse "
                    "models that the hour reads and run their blocking input audits, then the hour's features "
                    "and the 72-hour scores issued at that hour.")
    refresh_job = dg.define_asset_job(
        REFRESH_JOB, selection=dg.AssetSelection.assets(risk_ensemble) | release_selection,
        partitions_def=refresh, tags=tags,
        description=f"Train the ensembles of one {run.refresh.period} refresh partition, then apply the bias "
                    f"release gate and promote the ensembles that pass.")
    nightly_job = dg.define_asset_job(
        NIGHTLY_JOB, selection=warehouse_selection | evaluate_selection | release_selection, tags=tags,
        description="Rebuild the whole warehouse with every input audit and the Data Input Audit report, "
                    "evaluate and backtest the published scores, audit them for bias and write the reports, "
                    "then apply the bias release gate.")
    jobs += [hourly_job, refresh_job, nightly_job, *build_backfill_jobs(tags, run.executor)]
    freshness_checks = build_last_update_checks(run.freshness)
    return dg.Definitions(
        assets=[raw_crime_incidents, raw_offense_codes, raw_weather_observations, raw_weather_forecasts,
                raw_service_requests,
                raw_boundaries, raw_cells, raw_demographics,
                warehouse, data_input_audit_report, features, risk_ensemble, scores, evaluation_metrics,
                backtest_predictions, backtest_metrics, model_metrics_report, weather_mode_backtest, *BIAS_ASSETS,
                release_candidate, current_ensemble],
        asset_checks=[*audit_checks, bias_disparity_gate, *freshness_checks,
                      build_scores_lag_check(run.freshness)],
        jobs=jobs,
        schedules=build_schedules(run, jurisdiction, hourly_job, partitions, refresh_job, refresh, nightly_job),
        sensors=[*build_sensors(run, jurisdiction, settings, extracts),
                 build_freshness_checks_sensor(freshness_checks, jurisdiction.name, run.freshness)],
        resources={
            "notifications": notification_resource(run.notifications),
            "riskcast": RiskcastResource(run_config_path=str(run_config_path.resolve()), home=str(home)),
            "crime_source": crime_source(run.source, extracts, generate_demo=run.extracts_folder is None,
                                          memory_limit_gb=run.memory_limit_gb),
            "requests_source": requests_source(run.source, extracts, generate_demo=run.extracts_folder is None),
            "weather_source": weather_source(run, extracts),
            "forecast_source": forecast_source(run, extracts),
            "boundary_source": boundary_source(run.boundaries_source, extracts,
                                               generate_demo=run.extracts_folder is None),
            "demographics_source": LocalDemographicsSource(folder=str(extracts),
                                                           generate_demo=run.extracts_folder is None),
            "dbt": dbt_resource(),
        },
        executor=build_executor(run.executor),
    )


def build_sensors(run: RunConfig, jurisdiction: JurisdictionConfig, settings: RiskcastSettings,
                  extracts: Path) -> list[dg.SensorDefinition]:
    return [
        build_extracts_sensor(extracts, jurisdiction, WAREHOUSE_JOB),
        build_stale_features_sensor(settings.warehouse_path, jurisdiction, FEATURES_JOB),
        build_freshness_sensor(settings.warehouse_path, jurisdiction, run.freshness),
        build_run_failure_sensor(jurisdiction),
    ]


def crime_source(source: str, extracts: Path, generate_demo: bool,
                 memory_limit_gb: float | None = None) -> CrimeSource:
    """Return the resource that reads the run's crimes: the extracts folder or the Socrata API."""
    if source == "socrata":
        return SocrataCrimeSource(memory_limit_gb=memory_limit_gb)
    return LocalCrimeSource(folder=str(extracts), generate_demo=generate_demo, memory_limit_gb=memory_limit_gb)


def weather_source(run: RunConfig, extracts: Path) -> WeatherSource:
    """Return the resource that reads the run's weather: the extracts folder or NOAA's service."""
    if run.weather_source == "noaa":
        return NoaaLcdWeatherSource()
    return LocalWeatherSource(folder=str(extracts), generate_demo=run.extracts_folder is None)


def forecast_source(run: RunConfig, extracts: Path) -> ForecastSource:
    """Return the resource that reads the run's forecasts: the NWS API, else the archive folder.

    With ``forecast_source: none`` the asset reads nothing, so the archive resource is only a placeholder.
    """
    if run.forecast_source == "nws":
        return NwsForecastSource()
    return LocalForecastSource(folder=str(extracts / ARCHIVE_FOLDER))


def boundary_source(source: str, extracts: Path, generate_demo: bool) -> BoundarySource:
    """Return the resource that reads the boundary layers: live from the portal for Socrata runs."""
    if source == "socrata":
        return SocrataBoundarySource(folder=str(extracts))
    return LocalBoundarySource(folder=str(extracts), generate_demo=generate_demo)


def settings_from_env() -> tuple[Path, Path]:
    config = Path(os.environ.get(CONFIG_VARIABLE) or default_run_config_path())
    home = Path(os.environ.get(HOME_VARIABLE) or "data").expanduser().resolve()
    return config, home


@dg.definitions
def defs() -> dg.Definitions:
    config, home = settings_from_env()
    return build_definitions(config, home)
