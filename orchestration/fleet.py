"""Several jurisdictions in one code location: features and scores partitioned by jurisdiction x hour.

A fleet file lists run files, one per jurisdiction::

    run_files:
      - orchestration/runs/chicago.yaml
      - orchestration/runs/philadelphia.yaml

Each jurisdiction keeps its own warehouse, feature store and models under
``RISKCAST_HOME/<jurisdiction>``, built and trained by its own code location (``orchestration.definitions``).
This location adds ``fleet/cell_hour_features`` and ``fleet/risk_scores``, partitioned by a
``MultiPartitionsDefinition`` of a static ``jurisdiction`` dimension and a UTC ``hour`` dimension that
starts at the earliest jurisdiction's first partition. A partition such as
``2017-07-01-05:00|chicago`` builds the features or the 72-hour scores of that hour for that city with
the same functions as the single-city assets, so the outputs are identical.

A backfill over many partitions runs one range per jurisdiction, because ``BackfillPolicy.single_run``
keeps each run's hours contiguous. The runs of different jurisdictions share no file, so a run
queue or the multiprocess, celery or k8s executor can run them side by side.

Load it with ``RISKCAST_FLEET=fleet.yaml dagster dev -m orchestration.fleet``.
"""

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import yaml

from orchestration.assets.features import build_feature_window, feature_layout
from orchestration.assets.scoring import publish_scores, score_to_staging
from orchestration.jurisdiction import ConfigError, load_jurisdiction, load_run_config
from orchestration.resources import RiskcastResource
from orchestration.settings import HOME_VARIABLE

FLEET_VARIABLE = "RISKCAST_FLEET"
JURISDICTION = "jurisdiction"
HOUR_DIMENSION = "hour"
KEY_FORMAT = "%Y-%m-%d-%H:%M"
HOUR = timedelta(hours=1)
FEATURES_KEY = dg.AssetKey(["fleet", "cell_hour_features"])
SCORES_KEY = dg.AssetKey(["fleet", "risk_scores"])


def load_fleet(path: Path) -> dict[str, Path]:
    """Read a fleet file and return its run files by jurisdiction name, in the file's order."""
    if not path.is_file():
        raise ConfigError(f"fleet file {path} does not exist; write a YAML file with a `run_files` list")
    content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = content.get("run_files") if isinstance(content, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"fleet file {path} has no `run_files` list; list one run file per jurisdiction")

    members: dict[str, Path] = {}
    for entry in entries:
        run_file = (path.parent / str(entry)).resolve()
        name = load_jurisdiction(load_run_config(run_file).jurisdiction).name
        if name in members:
            raise ConfigError(f"fleet file {path}: jurisdiction {name!r} comes from both {members[name]} and "
                              f"{run_file}; keep one run file per jurisdiction")
        members[name] = run_file
    return members


def fleet_partitions(members: dict[str, Path]) -> dg.MultiPartitionsDefinition:
    """Jurisdiction x UTC hour, from the earliest first partition of any member."""
    first = min(load_jurisdiction(load_run_config(run_file).jurisdiction).partitions_start
                for run_file in members.values())
    return dg.MultiPartitionsDefinition({
        JURISDICTION: dg.StaticPartitionsDefinition(list(members)),
        HOUR_DIMENSION: dg.HourlyPartitionsDefinition(start_date=first.strftime(KEY_FORMAT), timezone="UTC"),
    })


class FleetResource(dg.ConfigurableResource):
    """The run file of each jurisdiction of the fleet, and the folder Riskcast writes to."""

    run_files: dict[str, str]
    home: str

    def member(self, name: str) -> RiskcastResource:
        if name not in self.run_files:
            raise ConfigError(f"jurisdiction {name!r} is not in the fleet ({', '.join(self.run_files)})")
        return RiskcastResource(run_config_path=self.run_files[name], home=self.home)


def fleet_window(context: dg.AssetExecutionContext) -> tuple[str, datetime, datetime]:
    """Return the jurisdiction and the UTC ``[start, end)`` hours of the partitions of this run.

    A run covers one jurisdiction and a contiguous range of its hours; a range across two
    jurisdictions is rejected, because their warehouses are different files.
    """
    key_range = context.partition_key_range
    partitions_def = context.assets_def.partitions_def
    first = partitions_def.get_partition_key_from_str(str(key_range.start))
    last = partitions_def.get_partition_key_from_str(str(key_range.end))
    first_keys, last_keys = first.keys_by_dimension, last.keys_by_dimension
    if first_keys[JURISDICTION] != last_keys[JURISDICTION]:
        raise ValueError(f"partition range {key_range.start} to {key_range.end} spans two jurisdictions; run one "
                         f"range per jurisdiction (a backfill does this by itself)")
    start = datetime.strptime(first_keys[HOUR_DIMENSION], KEY_FORMAT).replace(tzinfo=timezone.utc)
    end = datetime.strptime(last_keys[HOUR_DIMENSION], KEY_FORMAT).replace(tzinfo=timezone.utc) + HOUR
    if end <= start:
        raise ValueError(f"partition range end {key_range.end} is before its start {key_range.start}")
    return first_keys[JURISDICTION], start, end


def check_member_window(member: RiskcastResource, start: datetime) -> None:
    jurisdiction = member.jurisdiction()
    if start < jurisdiction.partitions_start:
        raise ValueError(f"{jurisdiction.name} has no hours before {jurisdiction.partitions_start.isoformat()} "
                         f"(its data_start); start the range at {jurisdiction.partitions_start:%Y-%m-%d-%H:%M} "
                         f"or later")


def build_fleet_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(key=FEATURES_KEY, group_name="fleet", partitions_def=partitions_def,
              backfill_policy=dg.BackfillPolicy.single_run(), kinds={"polars", "parquet"})
    def fleet_cell_hour_features(context: dg.AssetExecutionContext, fleet: FleetResource) -> dg.MaterializeResult:
        """Hourly cell features of one jurisdiction's hours, in that jurisdiction's feature store."""
        name, start, end = fleet_window(context)
        member = fleet.member(name)
        check_member_window(member, start)
        settings = member.settings()

        summary = build_feature_window(settings, member.jurisdiction(), start, end, context.log)

        context.log.info(f"{name} partitions {start:%Y-%m-%d-%H:%M} to {end - HOUR:%Y-%m-%d-%H:%M}: "
                         f"{summary.rows} feature rows written")
        metadata = summary.metadata(feature_layout(member.jurisdiction()), settings, start, end)
        return dg.MaterializeResult(metadata={**metadata, "jurisdiction": dg.MetadataValue.text(name)})

    @dg.asset(key=SCORES_KEY, group_name="fleet", partitions_def=partitions_def, deps=[FEATURES_KEY],
              backfill_policy=dg.BackfillPolicy.single_run(), kinds={"duckdb"})
    def fleet_risk_scores(context: dg.AssetExecutionContext, fleet: FleetResource) -> dg.MaterializeResult:
        """72-hour scores issued at each of one jurisdiction's hours, in that jurisdiction's warehouse."""
        name, start, end = fleet_window(context)
        member = fleet.member(name)
        check_member_window(member, start)
        settings = member.settings()
        staging = settings.staging_dir / f"scores_{context.run_id}"

        summary = score_to_staging(settings, member.run_config(), member.jurisdiction(), start, end, staging,
                                   context.log)
        published = publish_scores(settings.warehouse_path, summary.files, [(start, end)], summary.targets)
        shutil.rmtree(staging, ignore_errors=True)

        context.log.info(f"{name} partitions {start:%Y-%m-%d-%H:%M} to {end - HOUR:%Y-%m-%d-%H:%M}: "
                         f"wrote {published} risk scores")
        return dg.MaterializeResult(metadata={**summary.metadata(start, end),
                                              "jurisdiction": dg.MetadataValue.text(name)})

    return [fleet_cell_hour_features, fleet_risk_scores]


def build_fleet_definitions(fleet_file: Path, home: Path) -> dg.Definitions:
    members = load_fleet(fleet_file)
    partitions = fleet_partitions(members)
    assets = build_fleet_assets(partitions)
    return dg.Definitions(
        assets=assets,
        jobs=[dg.define_asset_job("fleet_hourly_job", selection=assets,
                                  description="Features and 72-hour scores for jurisdiction x hour partitions; "
                                              "each run covers one jurisdiction's range of hours.")],
        resources={"fleet": FleetResource(run_files={name: str(path) for name, path in members.items()},
                                          home=str(home))},
        executor=dg.multiprocess_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    fleet_file = os.environ.get(FLEET_VARIABLE)
    if not fleet_file:
        raise ConfigError(f"set {FLEET_VARIABLE} to a fleet file (a YAML `run_files` list) to load the fleet "
                          f"code location")
    home = Path(os.environ.get(HOME_VARIABLE) or "data").expanduser().resolve()
    return build_fleet_definitions(Path(fleet_file).resolve(), home)
