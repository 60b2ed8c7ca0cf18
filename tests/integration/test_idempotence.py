"""Reruns give the same outputs, and corrected or deleted records change only the partitions they touch.

Real Dagster runs on one instance over a 3 x 3 synthetic demo (ml.demo): the warehouse job,
features for 39 days of hours, one tiny seeded ensemble per target, and six scored issue hours.
The same partitions are then materialized a second time and every warehouse table, feature file,
model file and score is compared with the first run. Next, one violent record is revised to a
later hour in the opposite corner cell, and the runs that the stale-features sensor requests are
executed. Last, a full extract without another record is ingested.

Two warehouse columns are run timestamps by design, so the comparison leaves them out:
``raw.ingest_state.updated_at`` is when the ingest ran, and ``main.model_registry.registered_at``
is when the model was registered. Scoring reads ``registered_at`` only to order models with the
same ``train_end``. Model manifests, model cards and ``ensemble.json`` also record training
times, so the model comparison covers the fitted members' files and the model ids.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from ml.demo import write_demo_extracts
from ml.features import HOUR, LOOKBACK_HOURS
from orchestration.definitions import FEATURES_JOB, SCORE_JOB, TRAIN_JOB, WAREHOUSE_JOB, build_definitions
from orchestration.jurisdiction import JURISDICTIONS_DIR
from orchestration.partitions import RANGE_END_TAG, RANGE_START_TAG, partition_key
from orchestration.warehouse import connect

pytestmark = pytest.mark.integration

UTC = timezone.utc
NAME = "idemcity"
FEATURES_START = datetime(2023, 1, 15, tzinfo=UTC)
FEATURES_END = datetime(2023, 2, 23, tzinfo=UTC)
# The daily refresh partition "2023-02-18" ends at 2023-02-19 00:00, the end of the training window.
REFRESH_PARTITION = "2023-02-18"
TRAIN_END = datetime(2023, 2, 19, tzinfo=UTC)
SCORED_HOURS = 6
# The corrected record is dated so that the last issue hour whose features read it falls inside
# the scored hours, with unaffected issue hours after it.
CORRECTED_FROM_CELL = "R00C00"
CORRECTED_TO_CELL = "R02C02"
DELETED_CELL = "R00C01"
# Cells that are neither the corrected record's old or new cell nor a neighbour of either.
UNTOUCHED_CELLS = {"R00C02", "R02C00"}
LATER_UPDATED_ON = "03/20/2023 09:00:00 AM"
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
# Run timestamps by design: when the ingest ran and when a model was registered.
RUN_TIMESTAMP_COLUMNS = {("raw", "ingest_state", "updated_at"), ("main", "model_registry", "registered_at")}


@dataclass(frozen=True)
class Snapshot:
    """Warehouse rows per table, feature file bytes and fitted model files after one round of runs."""

    tables: dict[str, list[tuple]]
    feature_files: dict[str, bytes]
    model_files: dict[str, str]


@dataclass(frozen=True)
class Record:
    """One crime record: its id, the cell and UTC hour staging placed it in, and its local time."""

    incident_id: str
    cell_id: str
    hour: datetime
    local_time: datetime


def write_city(folder: Path) -> tuple[Path, Path]:
    """Write the 3 x 3 demo extracts, its jurisdiction file and the run file, and return the run file and extracts."""
    extracts = folder / "extracts"
    write_demo_extracts(extracts, start=date(2023, 1, 1), end=date(2023, 3, 5), grid_rows=3, grid_cols=3)
    content = yaml.safe_load((JURISDICTIONS_DIR / "demo.yaml").read_text(encoding="utf-8"))
    content["name"] = NAME
    content["data_start"] = "2023-01-01"
    jurisdiction = folder / f"{NAME}.yaml"
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    run_file = folder / "run.yaml"
    run_file.write_text(yaml.safe_dump({
        "jurisdiction": str(jurisdiction), "extracts_folder": str(extracts),
        "train": {"start": "2023-02-05", "end": "2023-02-19"}, "score": {"start": "2023-02-19", "end": "2023-02-20"},
        "refresh": {"period": "daily", "hour": 0},
        "ensemble": {"n_nets": 2, "epochs": 2, "hidden_sizes": [8], "lgbm_n_estimators": 10},
        "seed": 11,
    }), encoding="utf-8")
    return run_file, extracts


def range_tags(first: datetime, last: datetime) -> dict[str, str]:
    return {RANGE_START_TAG: partition_key(first), RANGE_END_TAG: partition_key(last)}


def run_job(definitions: dg.Definitions, name: str, instance: dg.DagsterInstance,
            **kwargs: object) -> dg.ExecuteInProcessResult:
    result = definitions.resolve_job_def(name).execute_in_process(instance=instance, **kwargs)
    assert result.success, f"{name} failed"
    return result


def read_tables(warehouse: Path) -> dict[str, list[tuple]]:
    """Return every table and view of the warehouse as sorted rows, geometries as WKT, run timestamps left out."""
    tables = {}
    with connect(warehouse, read_only=True, spatial=True) as connection:
        names = connection.sql("SELECT table_schema, table_name FROM information_schema.tables "
                               "ORDER BY ALL").fetchall()
        for schema, table in names:
            columns = connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", [schema, table]).fetchall()
            selected = [f'ST_AsText("{name}")' if kind.startswith("GEOMETRY") else f'"{name}"'
                        for name, kind in columns if (schema, table, name) not in RUN_TIMESTAMP_COLUMNS]
            tables[f"{schema}.{table}"] = connection.sql(
                f'SELECT {", ".join(selected)} FROM "{schema}"."{table}" ORDER BY ALL').fetchall()
    return tables


def take_snapshot(home: Path) -> Snapshot:
    root = home / NAME
    features = {path.name: path.read_bytes() for path in sorted((root / "features").glob("*.parquet"))}
    models = {str(path.relative_to(root / "models")): hashlib.sha256(path.read_bytes()).hexdigest()
              for path in sorted((root / "models").rglob("*"))
              if path.is_file() and path.name not in {"manifest.json", "MODEL_CARD.md", "ensemble.json"}}
    return Snapshot(read_tables(root / "warehouse.duckdb"), features, models)


def read_features(home: Path) -> pl.DataFrame:
    return pl.read_parquet(home / NAME / "features" / "*.parquet").sort(["hour", "cell_id"])


def read_scores(home: Path) -> pl.DataFrame:
    with connect(home / NAME / "warehouse.duckdb", read_only=True) as connection:
        return connection.sql("SELECT * FROM main.risk_scores ORDER BY ALL").pl()


def pick_record(warehouse: Path, cell_id: str, first: datetime, last: datetime) -> Record:
    """Return the earliest violent record placed in ``cell_id`` between two hours, alone in its case and id."""
    with connect(warehouse, read_only=True) as connection:
        row = connection.execute(
            "SELECT incident_id, cell_id, hour, occurred_at_local FROM intermediate.int_incidents__located "
            "WHERE cell_id = ? AND hour BETWEEN ? AND ? AND is_violent AND location_status = 'ok' "
            "AND case_number IN (SELECT case_number FROM intermediate.int_incidents__located "
            "                    GROUP BY case_number HAVING count(*) = 1) "
            "AND incident_id IN (SELECT id FROM raw.crime_incidents GROUP BY id HAVING count(*) = 1) "
            "ORDER BY hour, incident_id LIMIT 1",
            [cell_id, first.replace(tzinfo=None), last.replace(tzinfo=None)]).fetchone()
    assert row is not None, f"the demo has no single violent record in {cell_id} between {first} and {last}"
    return Record(row[0], row[1], row[2].replace(tzinfo=UTC), row[3])


def cell_point(warehouse: Path, cell_id: str) -> tuple[float, float]:
    """Return the mean located point of the records in ``cell_id``, which lies inside the square cell."""
    with connect(warehouse, read_only=True) as connection:
        return connection.execute(
            "SELECT avg(latitude), avg(longitude) FROM intermediate.int_incidents__located "
            "WHERE cell_id = ? AND location_status = 'ok'", [cell_id]).fetchone()


def rewrite_crime_file(extracts: Path, incident_id: str, change: dict[str, str] | None) -> None:
    """Change some fields of one record of the crime extract, or drop the record when ``change`` is None."""
    path = extracts / "crimes" / "demo_crimes_2023.csv.gz"
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines(keepends=True)
    header = next(csv.reader([lines[0]]))
    matches = [index for index, line in enumerate(lines) if line.startswith(f"{incident_id},")]
    assert len(matches) == 1, f"record {incident_id} is on {len(matches)} lines of {path}"

    index = matches[0]
    if change is None:
        del lines[index]
    else:
        fields = dict(zip(header, next(csv.reader([lines[index]])), strict=True))
        fields.update(change)
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow([fields[name] for name in header])
        lines[index] = line.getvalue()
    path.write_bytes(gzip.compress("".join(lines).encode("utf-8"), mtime=0))


def neighbours(warehouse: Path, cells: list[str]) -> set[str]:
    with connect(warehouse, read_only=True) as connection:
        rows = connection.execute("SELECT neighbour_id FROM marts.dim_cell_neighbours WHERE list_contains(?, cell_id)",
                                  [cells]).fetchall()
    return {row[0] for row in rows}


def changed_rows(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    """Return ``cell_id`` and ``hour`` of the feature rows whose values differ between two builds."""
    assert before.select("cell_id", "hour").equals(after.select("cell_id", "hour"))
    differs = pl.any_horizontal([before[name].ne_missing(after[name]) for name in before.columns])
    return before.filter(differs).select("cell_id", "hour")


def evaluate_sensor(definitions: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = definitions.resolve_sensor_def(f"{NAME}_stale_features")
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def changes_of_last_ingest(warehouse: Path) -> tuple[list[tuple], list[str]]:
    """Return the changed records and affected partitions that the latest ingest recorded."""
    with connect(warehouse, read_only=True) as connection:
        changes = connection.sql("SELECT change, incident_id FROM raw.crime_changes WHERE ingested_at = "
                                 "(SELECT max(ingested_at) FROM raw.crime_changes) ORDER BY ALL").fetchall()
        partitions = connection.sql("SELECT partition_key FROM raw.affected_partitions WHERE ingested_at = "
                                    "(SELECT max(ingested_at) FROM raw.affected_partitions) ORDER BY ALL").fetchall()
    return changes, [row[0] for row in partitions]


def build_through_training(definitions: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """Materialize the warehouse, the features of FEATURES_START to FEATURES_END and the ensembles."""
    run_job(definitions, WAREHOUSE_JOB, instance)
    run_job(definitions, FEATURES_JOB, instance, tags=range_tags(FEATURES_START, FEATURES_END - HOUR))
    run_job(definitions, TRAIN_JOB, instance, partition_key=REFRESH_PARTITION)


def choose_correction(warehouse: Path) -> tuple[Record, list[datetime]]:
    """Pick the record to correct, and issue hours around the last one whose features read it.

    Features of hours ``h`` to ``h + LOOKBACK_HOURS`` read a record of hour ``h``. The record moves
    one hour later, so issue hours from two hours before to three after ``h + LOOKBACK_HOURS``
    have four with changed inputs and two without. All of them come after the training window.
    """
    first = TRAIN_END - LOOKBACK_HOURS * HOUR + 2 * HOUR
    record = pick_record(warehouse, CORRECTED_FROM_CELL, first, first + timedelta(days=2))
    reach = record.hour + LOOKBACK_HOURS * HOUR
    return record, [reach + offset * HOUR for offset in range(-2, SCORED_HOURS - 2)]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("idempotence")
    run_file, extracts = write_city(folder)
    home = folder / "home"
    warehouse = home / NAME / "warehouse.duckdb"
    definitions = build_definitions(run_file, home)

    with dg.instance_for_test() as instance:
        build_through_training(definitions, instance)
        corrected, issue_hours = choose_correction(warehouse)
        run_job(definitions, SCORE_JOB, instance, tags=range_tags(issue_hours[0], issue_hours[-1]))
        first = take_snapshot(home)
        first_scores = read_scores(home)
        build_through_training(definitions, instance)
        run_job(definitions, SCORE_JOB, instance, tags=range_tags(issue_hours[0], issue_hours[-1]))
        second = take_snapshot(home)

        # Correction: one hour later, in the opposite corner cell, with a later Updated On.
        latitude, longitude = cell_point(warehouse, CORRECTED_TO_CELL)
        new_local_time = corrected.local_time + HOUR
        rewrite_crime_file(extracts, corrected.incident_id, {
            "Date": new_local_time.strftime(TIME_FORMAT), "Updated On": LATER_UPDATED_ON,
            "Latitude": f"{latitude:.6f}", "Longitude": f"{longitude:.6f}"})
        features_before = read_features(home)
        run_job(definitions, WAREHOUSE_JOB, instance)
        correction_changes = changes_of_last_ingest(warehouse)
        with connect(warehouse, read_only=True) as connection:
            corrected_placement = connection.execute(
                "SELECT cell_id, hour FROM intermediate.int_incidents__located WHERE incident_id = ?",
                [corrected.incident_id]).fetchall()
        correction_sensor = evaluate_sensor(definitions, instance, None)
        for request in correction_sensor.run_requests:
            run_job(definitions, FEATURES_JOB, instance, tags=dict(request.tags))
        features_corrected = read_features(home)
        corrected_files = {path.name: path.read_bytes() for path in (home / NAME / "features").glob("*.parquet")}
        run_job(definitions, SCORE_JOB, instance, tags=range_tags(issue_hours[0], issue_hours[-1]))
        corrected_scores = read_scores(home)

        # Deletion: a full extract without a record that the correction did not touch.
        deleted = pick_record(warehouse, DELETED_CELL, datetime(2023, 2, 1, tzinfo=UTC),
                              datetime(2023, 2, 10, tzinfo=UTC))
        with connect(warehouse, read_only=True) as connection:
            deleted_count_before = connection.execute(
                "SELECT crime_count FROM marts.fct_cell_hour_crimes WHERE cell_id = ? AND hour = ?",
                [deleted.cell_id, deleted.hour.replace(tzinfo=None)]).fetchone()[0]
        rewrite_crime_file(extracts, deleted.incident_id, None)
        deletion_ingest = run_job(definitions, WAREHOUSE_JOB, instance)
        deletion_sensor = evaluate_sensor(definitions, instance, correction_sensor.cursor)
        for request in deletion_sensor.run_requests:
            run_job(definitions, FEATURES_JOB, instance, tags=dict(request.tags))
        features_deleted = read_features(home)
        deletion_tables = read_tables(warehouse)

    return {"corrected": corrected, "correction_changes": correction_changes,
            "corrected_placement": corrected_placement, "first": first, "second": second,
            "first_scores": first_scores, "issue_hours": issue_hours,
            "new_hour": corrected.hour + HOUR, "features_before": features_before,
            "features_corrected": features_corrected, "corrected_files": corrected_files,
            "corrected_scores": corrected_scores, "correction_sensor": correction_sensor,
            "neighbourhood": neighbours(warehouse, [CORRECTED_FROM_CELL, CORRECTED_TO_CELL]),
            "deleted": deleted, "deleted_count_before": deleted_count_before, "deletion_ingest": deletion_ingest,
            "deletion_changes": changes_of_last_ingest(warehouse), "deletion_sensor": deletion_sensor,
            "features_deleted": features_deleted, "deletion_tables": deletion_tables}


def test_rerun_gives_identical_tables(outcome: dict) -> None:
    first, second = outcome["first"].tables, outcome["second"].tables

    assert sorted(second) == sorted(first)
    assert first["marts.fct_cell_hour_crimes"], "the demo placed no crimes in cells"
    for table, rows in first.items():
        assert second[table] == rows, f"{table} differs after the rerun"


def test_rerun_gives_identical_feature_files(outcome: dict) -> None:
    first, second = outcome["first"].feature_files, outcome["second"].feature_files

    assert len(first) == (FEATURES_END - FEATURES_START).days
    assert sorted(second) == sorted(first)
    for name, content in first.items():
        assert second[name] == content, f"feature file {name} differs after the rerun"


def test_rerun_gives_identical_models_and_scores(outcome: dict) -> None:
    first, second = outcome["first"], outcome["second"]

    assert any(name.endswith("state_dict.npz") for name in first.model_files)
    assert any(name.endswith("model.txt") for name in first.model_files)
    assert second.model_files == first.model_files
    assert len(first.tables["main.model_registry"]) == 3
    assert second.tables["main.risk_scores"] == first.tables["main.risk_scores"]
    assert len(first.tables["main.risk_scores"]) == 9 * 72 * 3 * SCORED_HOURS


def test_correction_is_recorded_as_revision(outcome: dict) -> None:
    corrected: Record = outcome["corrected"]
    changes, partitions = outcome["correction_changes"]

    assert changes == [("revised", corrected.incident_id)]
    assert partitions == [partition_key(corrected.hour), partition_key(outcome["new_hour"])]
    assert outcome["corrected_placement"] == [(CORRECTED_TO_CELL, outcome["new_hour"].replace(tzinfo=None))]


def test_sensor_requests_the_corrected_range(outcome: dict) -> None:
    requests = outcome["correction_sensor"].run_requests
    last = outcome["new_hour"] + LOOKBACK_HOURS * HOUR

    assert [(request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) for request in requests] == \
        [(partition_key(outcome["corrected"].hour), partition_key(last))]


def test_correction_moves_the_label(outcome: dict) -> None:
    corrected: Record = outcome["corrected"]
    before, after = outcome["features_before"], outcome["features_corrected"]

    def label(frame: pl.DataFrame, cell: str, hour: datetime) -> int:
        return frame.filter((pl.col("cell_id") == cell) & (pl.col("hour") == hour))["label_violent"].item()

    assert label(after, CORRECTED_FROM_CELL, corrected.hour) == label(before, CORRECTED_FROM_CELL, corrected.hour) - 1
    assert label(after, CORRECTED_TO_CELL, outcome["new_hour"]) == \
        label(before, CORRECTED_TO_CELL, outcome["new_hour"]) + 1


def test_correction_changes_only_affected_features(outcome: dict) -> None:
    corrected: Record = outcome["corrected"]
    changed = changed_rows(outcome["features_before"], outcome["features_corrected"])
    last = outcome["new_hour"] + LOOKBACK_HOURS * HOUR

    assert set(changed["cell_id"]) <= outcome["neighbourhood"] | {CORRECTED_FROM_CELL, CORRECTED_TO_CELL}
    assert not set(changed["cell_id"]) & UNTOUCHED_CELLS
    assert changed["hour"].min() == corrected.hour
    assert changed["hour"].max() <= last


def test_correction_leaves_other_days_byte_identical(outcome: dict) -> None:
    corrected: Record = outcome["corrected"]
    first_day = corrected.hour.date()
    last_day = (outcome["new_hour"] + LOOKBACK_HOURS * HOUR).date()
    untouched = {name: content for name, content in outcome["second"].feature_files.items()
                 if not first_day.isoformat() <= name.removeprefix("day=").removesuffix(".parquet")
                 <= last_day.isoformat()}

    assert untouched
    for name, content in untouched.items():
        assert outcome["corrected_files"][name] == content, f"feature file {name} changed"


def test_rescoring_changes_only_affected_issue_hours(outcome: dict) -> None:
    before, after = outcome["first_scores"], outcome["corrected_scores"]
    last_affected = (outcome["new_hour"] + LOOKBACK_HOURS * HOUR).replace(tzinfo=None)
    keys = ["cell_id", "hour", "horizon_hours", "target", "issued_at"]
    joined = before.join(after, on=keys, how="inner", suffix="_after", validate="1:1")

    assert joined.height == before.height == after.height
    risk_changed = joined.filter(pl.col("risk") != pl.col("risk_after"))
    assert risk_changed.height > 0
    assert risk_changed["issued_at"].max() <= last_affected
    assert not set(risk_changed["cell_id"]) & UNTOUCHED_CELLS
    unaffected = joined.filter(pl.col("issued_at") > last_affected)
    assert unaffected.height == 2 * 9 * 72 * 3
    for column in ("risk", "relative_risk", "rank", "model_id"):
        assert unaffected[column].equals(unaffected[f"{column}_after"], check_names=False), column


def test_deleted_record_leaves_raw_and_marts(outcome: dict) -> None:
    deleted: Record = outcome["deleted"]
    tables = outcome["deletion_tables"]

    for table in ("raw.crime_incidents", "staging.stg_crimes__incidents", "intermediate.int_incidents__located",
                  "audit.audit_crime_records"):
        assert all(deleted.incident_id not in row for row in tables[table]), table
    counts = {(row[0], row[1]): row[2] for row in tables["marts.fct_cell_hour_crimes"]}
    assert counts.get((deleted.cell_id, deleted.hour.replace(tzinfo=None)), 0) == outcome["deleted_count_before"] - 1


def test_deleted_record_counted_as_removed(outcome: dict) -> None:
    deleted: Record = outcome["deleted"]
    changes, partitions = outcome["deletion_changes"]
    materialization = outcome["deletion_ingest"].asset_materializations_for_node("raw_crime_incidents")[0]

    assert changes == [("removed", deleted.incident_id)]
    assert partitions == [partition_key(deleted.hour)]
    assert materialization.metadata["records_removed"].value == 1
    assert materialization.metadata["affected_partitions"].value == 1


def test_deletion_rebuilds_features_without_the_record(outcome: dict) -> None:
    deleted: Record = outcome["deleted"]
    before, after = outcome["features_corrected"], outcome["features_deleted"]
    requests = outcome["deletion_sensor"].run_requests

    def value(frame: pl.DataFrame, column: str, hour: datetime) -> int:
        return frame.filter((pl.col("cell_id") == deleted.cell_id) & (pl.col("hour") == hour))[column].item()

    assert [(request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) for request in requests] == \
        [(partition_key(deleted.hour), partition_key(FEATURES_END - HOUR))]
    assert value(after, "label_violent", deleted.hour) == value(before, "label_violent", deleted.hour) - 1
    assert value(after, "violent_1d", deleted.hour + HOUR) == value(before, "violent_1d", deleted.hour + HOUR) - 1
    assert changed_rows(before, after)["hour"].min() == deleted.hour
