"""The whole graph on a small synthetic jurisdiction, materialized by Dagster.

These runs use the demo generator (synthetic data) at a small size, so they run on every machine;
the real-data run lives in test_chicago_slice.py.
"""

from __future__ import annotations

import gzip
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from ml.demo import write_demo_extracts
from orchestration.assets import backtest
from orchestration.assets.audits import BLOCKING_CHECKS
from orchestration.assets.backtest import read_spine
from ml.bias import GROUP_METRICS
from ml.metrics import flag_top_share
from orchestration.assets.bias import release_gate
from orchestration.cli import JobFailedError, ReleaseBlockedError, run_job
from orchestration.definitions import RELEASE_JOB, SCORE_JOB, build_definitions
from orchestration.jurisdiction import JURISDICTIONS_DIR, load_run_config
from orchestration.warehouse import connect

EXPECTED_METRICS = {"tpr", "tnr", "fpr", "fnr", "accuracy", "precision", "roc_auc", "pai", "hit_rate",
                    "area_share_used", "observed_rate"}
CELLS = 16
SCORE_HOURS = 24
HORIZON = 72
TARGETS = ("violent", "robbery", "property")


def write_small_demo(folder: Path) -> tuple[Path, Path]:
    extracts = folder / "extracts"
    write_demo_extracts(extracts, start=date(2023, 1, 1), end=date(2023, 4, 30), grid_rows=4, grid_cols=4)
    content = yaml.safe_load((JURISDICTIONS_DIR / "demo.yaml").read_text(encoding="utf-8"))
    content["name"] = "smalldemo"
    content["data_start"] = "2023-01-01"
    jurisdiction = folder / "smalldemo.yaml"
    jurisdiction.write_text(yaml.safe_dump(content), encoding="utf-8")
    run_file = folder / "run.yaml"
    run_file.write_text(yaml.safe_dump({
        "jurisdiction": str(jurisdiction),
        "extracts_folder": str(extracts),
        # Eight weeks: weekly refresh partitions end on Saturdays, the weekday of train.end.
        "train": {"start": "2023-02-04", "end": "2023-04-01"},
        "score": {"start": "2023-04-01", "end": "2023-04-02"},
        "ensemble": {"n_nets": 10, "epochs": 3},
        # A week of daily forecasts, all from the one ensemble trained up to 2023-04-01.
        "backtest": {"window": {"start": "2023-04-01", "end": "2023-04-08"}, "n_boot": 200},
    }), encoding="utf-8")
    return run_file, extracts


@pytest.fixture(scope="module")
def demo_run(small_demo_run) -> tuple[Path, Path, dg.DagsterInstance]:
    return small_demo_run.run_file, small_demo_run.warehouse, small_demo_run.instance


def read_scores(warehouse: Path) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql("SELECT * FROM main.risk_scores "
                              "ORDER BY target, issued_at, horizon_hours, cell_id").pl()


def test_scores_cover_cells_hours_horizons(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    scores = read_scores(demo_run[1])

    assert scores.height == CELLS * SCORE_HOURS * HORIZON * len(TARGETS)
    assert sorted(scores["target"].unique()) == sorted(TARGETS)
    assert scores.select(pl.struct("target", "cell_id", "hour", "horizon_hours").n_unique()).item() == scores.height
    assert scores["issued_at"].n_unique() == SCORE_HOURS
    assert scores["risk"].min() > 0
    assert scores["risk"].max() < 1


def test_relative_risk_averages_one(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    scores = read_scores(demo_run[1])
    means = scores.group_by("target", "issued_at", "horizon_hours").agg(pl.col("relative_risk").mean())["relative_risk"]

    assert means.min() == pytest.approx(1.0, abs=1e-9)
    assert means.max() == pytest.approx(1.0, abs=1e-9)


def test_ranks_order_cells_per_map(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    scores = read_scores(demo_run[1])
    maps = scores.group_by("target", "issued_at", "horizon_hours").agg(
        pl.col("rank").sort().alias("ranks"), pl.col("risk").sort_by("rank").alias("risk_by_rank"))

    assert all(ranks == list(range(1, CELLS + 1)) for ranks in maps["ranks"].to_list())
    assert all(risks == sorted(risks, reverse=True) for risks in maps["risk_by_rank"].to_list())


def test_robbery_risk_below_violent_risk(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    scores = read_scores(demo_run[1])
    mean_risk = dict(scores.group_by("target").agg(pl.col("risk").mean()).iter_rows())

    assert mean_risk["robbery"] < mean_risk["violent"]


def test_target_hour_matches_horizon(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    scores = read_scores(demo_run[1])
    offsets = (scores["hour"] - scores["issued_at"]).dt.total_hours() + 1

    assert (offsets == scores["horizon_hours"].cast(pl.Int64)).all()


def test_metrics_present_for_both_models(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    with connect(demo_run[1], read_only=True) as connection:
        rows = connection.sql("SELECT model, metric, value FROM main.evaluation_metrics").fetchall()
    by_model: dict[str, set[str]] = {}
    for model, metric, _ in rows:
        by_model.setdefault(model, set()).add(metric)

    assert EXPECTED_METRICS <= by_model["ensemble"]
    assert EXPECTED_METRICS <= by_model["compstat"]
    assert {"brier", "log_loss"} <= by_model["ensemble"]


def test_ensemble_beats_chance(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    with connect(demo_run[1], read_only=True) as connection:
        auc = connection.sql("SELECT value FROM main.evaluation_metrics "
                             "WHERE model = 'ensemble' AND metric = 'roc_auc'").fetchone()[0]

    assert auc > 0.5


def test_model_has_manifest_and_card(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    with connect(demo_run[1], read_only=True) as connection:
        models = connection.sql("SELECT target, model_id, path FROM main.model_registry ORDER BY target").fetchall()
    target, model_id, path = models[0]
    manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    card = (Path(path) / "MODEL_CARD.md").read_text(encoding="utf-8")

    assert sorted(row[0] for row in models) == sorted(TARGETS)
    assert manifest["model_id"] == model_id
    assert manifest["target"] == target
    assert len(manifest["training_data_sha256"]) == 64
    assert manifest["parameters"]["n_nets"] >= 10
    assert manifest["training_positives"] > 0
    assert "SYNTHETIC" in card


BACKTEST_MODELS = ["ensemble", "compstat", "compstat_day", "naive", "retrospective_hotspot",
                   "prospective_hotspot", "sepp", "random", "oracle"]


def test_backtest_forecasts_every_cell_hour_of_the_week_with_every_model(
        demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    with connect(demo_run[1], read_only=True) as connection:
        predictions = connection.sql("SELECT * FROM main.backtest_predictions").pl()

    # Seven local days from 2023-04-01 (America/Chicago, no DST change) of 24 hours each.
    assert predictions.height == 7 * 24 * CELLS
    assert predictions.select(BACKTEST_MODELS).null_count().sum_horizontal().item() == 0
    assert (predictions["hour"] >= predictions["issued_at"]).all()
    assert predictions["origin"].unique().to_list() == [datetime(2023, 4, 1)]
    assert predictions["horizon_hours"].max() == 24


def test_backtest_metrics_rank_the_oracle_first(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    with connect(demo_run[1], read_only=True) as connection:
        hit_rates = dict(connection.sql(
            "SELECT model, value FROM main.backtest_metrics WHERE aggregation = 'day' AND metric = 'hit_rate'"
        ).fetchall())
        comparisons = connection.sql("SELECT model, metric, p_value, ci_low, ci_high, difference "
                                     "FROM main.backtest_comparisons WHERE aggregation = 'day'").pl()

    assert set(hit_rates) == set(BACKTEST_MODELS)
    assert hit_rates["oracle"] == max(hit_rates.values())
    assert set(comparisons["model"].to_list()) == set(BACKTEST_MODELS) - {"ensemble"}
    assert comparisons["p_value"].is_between(0, 1, closed="right").all()
    assert (comparisons["ci_low"] <= comparisons["ci_high"]).all()


def test_report_says_data_is_synthetic(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    report = demo_run[1].parent / "reports" / "model_metrics.html"

    assert "SYNTHETIC DATA" in report.read_text(encoding="utf-8")


def test_rescoring_is_idempotent(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    run_file, warehouse, instance = demo_run
    before = read_scores(warehouse)
    definitions = build_definitions(run_file, warehouse.parent.parent)
    tags = {"dagster/asset_partition_range_start": "2023-04-01-00:00",
            "dagster/asset_partition_range_end": "2023-04-01-23:00"}

    result = definitions.resolve_job_def(SCORE_JOB).execute_in_process(instance=instance, tags=tags)

    assert result.success
    assert read_scores(warehouse).equals(before)


def test_range_run_records_every_partition(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    instance = demo_run[2]
    materialized = instance.get_materialized_partitions(dg.AssetKey("risk_scores"))
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=SCORE_JOB))

    assert len(materialized) == SCORE_HOURS
    assert min(materialized) == "2023-04-01-00:00"
    assert len({run.run_id for run in runs}) == 2


def swap_coordinates(extracts: Path, share_every: int) -> None:
    """Swap latitude and longitude on every n-th located row of each crime file."""
    for path in sorted((extracts / "crimes").glob("*.csv.gz")):
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
        changed = [lines[0]]
        for index, line in enumerate(lines[1:]):
            fields = line.rsplit(",", 2)
            if index % share_every == 0 and fields[1] and fields[2]:
                line = f"{fields[0]},{fields[2]},{fields[1]}"
            changed.append(line)
        path.write_bytes(gzip.compress(("\n".join(changed) + "\n").encode("utf-8"), mtime=0))


def test_failed_audit_blocks_features(tmp_path: Path) -> None:
    run_file, extracts = write_small_demo(tmp_path)
    swap_coordinates(extracts, share_every=20)
    definitions = build_definitions(run_file, tmp_path / "home")
    instance = dg.DagsterInstance.ephemeral()
    selection = dg.AssetSelection.groups("raw", "warehouse") | dg.AssetSelection.assets("cell_hour_features")

    result = dg.materialize(
        assets=[*(definitions.assets or []), *(definitions.asset_checks or [])],
        resources=dict(definitions.resources or {}), selection=selection, partition_key="2023-03-01-00:00",
        instance=instance, raise_on_error=False)
    checks = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}

    assert not result.success
    assert checks["crime_incidents_input_audit"] is False
    assert instance.get_latest_materialization_event(dg.AssetKey("fct_cell_hour_crimes")) is not None
    assert instance.get_latest_materialization_event(dg.AssetKey("cell_hour_features")) is None


def test_blocking_checks_guard_features(tmp_path: Path) -> None:
    run_file, _ = write_small_demo(tmp_path)
    definitions = build_definitions(run_file, tmp_path / "home")
    graph = definitions.resolve_asset_graph()
    features_parents = graph.get(dg.AssetKey("cell_hour_features")).parent_keys

    assert BLOCKING_CHECKS
    for name in BLOCKING_CHECKS:
        check_keys = [key for key in graph.asset_check_keys if key.name == name]
        assert len(check_keys) == 1
        assert check_keys[0].asset_key in features_parents


# Bias audit, simulations and the release gate.


def read_table(warehouse: Path, name: str) -> pl.DataFrame:
    with connect(warehouse, read_only=True) as connection:
        return connection.sql(f"SELECT * FROM main.{name}").pl()


def test_bias_groups_and_metrics_cover_both_models(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    groups = read_table(demo_run[1], "bias_cell_groups")
    metrics = read_table(demo_run[1], "bias_group_metrics")
    names = [name for name, dtype in groups.schema.items() if dtype == pl.Boolean]

    measured = [name for name in names if groups[name].any()]

    assert groups.height == CELLS
    assert names == ["black_share_q45", "hispanic_share_q45", "white_share_q45", "lowest_income", "highest_income"]
    # On the 4 x 4 grid, equal values share a quintile, so some groups hold no cell and are not measured.
    assert sorted(set(metrics["group"])) == sorted(measured)
    assert metrics.height == 2 * len(measured) * len(GROUP_METRICS)
    assert set(metrics["model"]) == {"ensemble", "compstat"}
    assert metrics.filter(pl.col("metric") == "flag_rate")["ci_low"].null_count() == 0


def test_group_flag_rate_matches_the_backtest_flags(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    """The stored flag rate of a group is the share of its cell-hours in each hour's top 5% of cells."""
    predictions = read_table(demo_run[1], "backtest_predictions").sort("hour", "cell_id")
    groups = read_table(demo_run[1], "bias_cell_groups")
    metrics = read_table(demo_run[1], "bias_group_metrics")
    slices = predictions["hour"].rank("dense").cast(pl.Int64).to_numpy()

    for model in ("ensemble", "compstat"):
        flagged = predictions.with_columns(flagged=pl.Series(flag_top_share(predictions[model].to_numpy(), slices, 0.05)))
        members = flagged.join(groups.select("cell_id", "hispanic_share_q45"), on="cell_id")
        expected = members.filter(pl.col("hispanic_share_q45"))["flagged"].mean()
        stored = metrics.filter((pl.col("model") == model) & (pl.col("group") == "hispanic_share_q45")
                                & (pl.col("metric") == "flag_rate"))["value"][0]
        assert stored == pytest.approx(expected, abs=1e-12)


def test_deployment_and_simulation_tables(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    comparison = read_table(demo_run[1], "deployment_comparison")
    summary = read_table(demo_run[1], "sim_feedback_summary")
    cells = read_table(demo_run[1], "deployment_cells")

    assert comparison["model"].to_list() == ["ensemble", "compstat"]
    # 7 days of three 8-hour shifts; with 16 cells, 5% coverage flags one cell per shift.
    assert comparison["shifts"].to_list() == [21, 21]
    assert comparison["cells_flagged_per_shift"].to_list() == [1.0, 1.0]
    assert cells.height == 2 * CELLS
    by_setting = {row["setting"]: row for row in summary.iter_rows(named=True)}
    assert by_setting["discovered"]["last_divergence"] > 0.5
    assert by_setting["discovered"]["last_divergence"] > 3 * by_setting["reported"]["last_divergence"]


def test_bias_and_deployment_reports_render_maps(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    reports = demo_run[1].parent / "reports"
    bias = (reports / "bias_audit.html").read_text(encoding="utf-8")
    deployment = (reports / "police_deployment.html").read_text(encoding="utf-8")

    assert "Release gate" in bias
    assert "SYNTHETIC" in bias
    assert bias.count("L.geoJson") >= 5
    assert "Officers" in deployment or "officers" in deployment
    assert deployment.count("L.geoJson") >= 2


def check_record(instance: dg.DagsterInstance):
    key = dg.AssetCheckKey(dg.AssetKey("release_candidate"), "bias_disparity_gate")
    return instance.get_latest_asset_check_evaluation_record(key)


def release_rows(warehouse: Path) -> pl.DataFrame:
    return read_table(warehouse, "model_releases").sort("target")


def test_release_record_follows_the_gate(demo_run: tuple[Path, Path, dg.DagsterInstance]) -> None:
    run_file, warehouse, instance = demo_run
    gate = release_gate(read_table(warehouse, "bias_group_metrics"), load_run_config(run_file))
    releases = release_rows(warehouse)
    record = check_record(instance)

    assert releases["target"].to_list() == sorted(TARGETS)
    assert set(releases["status"]) == {"candidate" if gate.passed else "blocked"}
    assert releases["message"][0] == gate.message
    assert record is not None
    assert record.status.value == ("SUCCEEDED" if gate.passed else "FAILED")
    card = (Path(read_table(warehouse, "model_registry")["path"][0]) / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Release gate" in card
    assert gate.message in card


def release_run_file(run_file: Path, folder: Path, release: dict) -> Path:
    content = yaml.safe_load(run_file.read_text(encoding="utf-8"))
    content["release"] = release
    path = folder / "release.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def planted(metrics: pl.DataFrame, ensemble_ratio: float, compstat_ratio: float) -> pl.DataFrame:
    """Every group's flag-rate ratios set to the given values."""
    flag = pl.col("metric") == "flag_rate"
    return metrics.with_columns(
        ratio=pl.when(flag & (pl.col("model") == "ensemble")).then(ensemble_ratio)
        .when(flag).then(compstat_ratio).otherwise(pl.col("ratio")))


def replace_metrics(warehouse: Path, frame: pl.DataFrame) -> None:
    with connect(warehouse) as connection:
        connection.register("incoming", frame.to_arrow())
        connection.execute("CREATE OR REPLACE TABLE main.bias_group_metrics AS SELECT * FROM incoming")


def test_release_gate_promotes_and_blocks(
        demo_run: tuple[Path, Path, dg.DagsterInstance], tmp_path: Path) -> None:
    run_file, warehouse, _ = demo_run
    home = warehouse.parent.parent
    original = read_table(warehouse, "bias_group_metrics")
    instance = dg.DagsterInstance.ephemeral()

    release = {"margin": 0.1, "score_with": "current"}
    definitions = build_definitions(release_run_file(run_file, tmp_path, release), home)
    try:
        # No disparity: the ensemble's ratios equal CompSTAT's, so the gate passes and they become current.
        replace_metrics(warehouse, planted(original, 1.5, 1.5))
        run_job(definitions, instance, RELEASE_JOB)
        promoted = release_rows(warehouse)
        assert set(promoted["status"]) == {"current"}
        assert promoted["promoted_at"].null_count() == 0
        assert check_record(instance).status.value == "SUCCEEDED"
        card = (Path(read_table(warehouse, "model_registry")["path"][0]) / "MODEL_CARD.md").read_text(encoding="utf-8")
        assert "current: it passed the gate" in card
        run_job(definitions, instance, SCORE_JOB, {"dagster/partition": "2023-04-01-00:00"})

        # A planted disparity: the check fails, promotion does not run, and the ensembles are blocked.
        replace_metrics(warehouse, planted(original, 9.0, 1.0))
        with pytest.raises(ReleaseBlockedError):
            run_job(definitions, instance, RELEASE_JOB)
        blocked = release_rows(warehouse)
        assert set(blocked["status"]) == {"blocked"}
        assert "ratio 9.000" in blocked["message"][0]
        assert check_record(instance).status.value == "FAILED"
        with pytest.raises(JobFailedError, match="passed the release gate"):
            run_job(definitions, instance, SCORE_JOB, {"dagster/partition": "2023-04-01-00:00"})
    finally:
        replace_metrics(warehouse, original)
        try:
            run_job(build_definitions(run_file, home), instance, RELEASE_JOB)
        except ReleaseBlockedError:
            pass  # The release record is back to the gate's verdict on the real metrics.


def test_spine_read_in_pieces_equals_one_read(demo_run: tuple[Path, Path, dg.DagsterInstance],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The backtest's history, read SPINE_PIECE at a time, is the same frame as one read of the whole range."""
    start, end = datetime(2023, 1, 1, tzinfo=timezone.utc), datetime(2023, 4, 8, 5, tzinfo=timezone.utc)
    pieces = read_spine(demo_run[1], "violent", start, end)
    monkeypatch.setattr(backtest, "SPINE_PIECE", timedelta(days=3650))
    whole = read_spine(demo_run[1], "violent", start, end)
    monkeypatch.setattr(backtest, "SPINE_PIECE", timedelta(hours=7))
    small_pieces = read_spine(demo_run[1], "violent", start, end)

    hours = int((end - start) / timedelta(hours=1))
    assert whole.height == hours * CELLS
    assert whole["crime_count"].sum() > 100
    assert whole.equals(whole.sort("hour", "cell_id"))
    assert pieces.equals(whole)
    assert small_pieces.equals(whole)
