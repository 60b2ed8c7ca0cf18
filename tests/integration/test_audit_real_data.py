"""The data input audit on real data: Chicago 2014-2017 and Philadelphia March 2017.

Only the warehouse job runs (ingest, dbt build, audit checks and reports). The heaping,
missing-coordinate and duplicate figures that the audit measures are compared with the same
figures computed here straight from the portal CSVs with polars, independently of the
pipeline. Skipped when ../shared/data is absent.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from orchestration.assets.audit_report import read_report_tables
from orchestration.assets.audits import evaluate_rule
from orchestration.audit_rules import ALL_RULES, audit_parameters
from orchestration.definitions import WAREHOUSE_JOB, build_definitions
from orchestration.jurisdiction import RUNS_DIR, load_jurisdiction

pytestmark = pytest.mark.integration

RULES = {rule.name: rule for rule in ALL_RULES}
CHICAGO_FIELDS = ["ID", "Case Number", "Date", "IUCR", "Primary Type", "Location Description", "Arrest", "Beat", "District",
                  "Community Area", "FBI Code", "Updated On", "Latitude", "Longitude"]
PHILADELPHIA_FIELDS = ["objectid", "dc_key", "dispatch_date_time", "ucr_general", "text_general_code", "dc_dist",
                       "psa", "point_y", "point_x"]


def run_warehouse(name: str, extracts: Path, folder: Path) -> tuple[Path, dg.ExecuteInProcessResult]:
    content = yaml.safe_load((RUNS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    content["extracts_folder"] = str(extracts)
    run_file = folder / f"{name}.yaml"
    run_file.write_text(yaml.safe_dump(content), encoding="utf-8")
    definitions = build_definitions(run_file, folder / "home")
    result = definitions.resolve_job_def(WAREHOUSE_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    return folder / "home" / name / "warehouse.duckdb", result


def measured(warehouse: Path, jurisdiction: str, rule: str) -> pl.DataFrame:
    _, frame = evaluate_rule(RULES[rule], warehouse, audit_parameters(load_jurisdiction(jurisdiction)))
    return pl.from_pandas(frame)


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {item.check_name: item for item in result.get_asset_check_evaluations()}


# Chicago.

@pytest.fixture(scope="module")
def chicago_csv() -> pl.DataFrame:
    from tests.conftest import SHARED_DATA

    files = sorted((SHARED_DATA / "chicago" / "crimes").glob("chicago_crimes_*.csv.gz"))
    if not files:
        pytest.skip("real Chicago data not found; it lives in ../shared/data beside the repository")
    rows = pl.concat([pl.read_csv(path, columns=CHICAGO_FIELDS, infer_schema=False) for path in files])
    local = pl.col("Date").str.strptime(pl.Datetime, "%m/%d/%Y %I:%M:%S %p")
    return rows.with_columns(local.alias("local"))


@pytest.fixture(scope="module")
def chicago(chicago_csv: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    from tests.conftest import SHARED_DATA

    return run_warehouse("chicago", SHARED_DATA / "chicago", tmp_path_factory.mktemp("chicago_audit"))


def heaping_by_year(rows: pl.DataFrame) -> pl.DataFrame:
    local = pl.col("local")
    return rows.group_by(local.dt.year().alias("year")).agg(
        pl.len().alias("records"),
        (local.dt.time() == pl.time(0, 0, 0)).mean().alias("midnight_share"),
        ((local.dt.minute() == 0) & (local.dt.second() == 0)).mean().alias("on_hour_share"),
        (local.dt.day() == 1).mean().alias("first_of_month_share"),
        (pl.col("Latitude").is_null() | pl.col("Longitude").is_null()).mean().alias("missing_coordinates_share"),
    ).sort("year")


def test_chicago_audit_does_not_block(chicago: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    assert chicago[1].success


def test_chicago_figures_by_year(chicago: tuple[Path, dg.ExecuteInProcessResult], chicago_csv: pl.DataFrame) -> None:
    expected = heaping_by_year(chicago_csv)
    years = pl.from_pandas(read_report_tables(chicago[0])["years"]).sort("year")

    assert years["year"].to_list() == [2014, 2015, 2016, 2017]
    assert years["records"].to_list() == expected["records"].to_list()
    for column in ("midnight_share", "on_hour_share", "first_of_month_share", "missing_coordinates_share"):
        assert years[column].to_list() == pytest.approx(expected[column].to_list(), abs=1e-12), column


def test_chicago_heaping_by_category(chicago: tuple[Path, dg.ExecuteInProcessResult],
                                     chicago_csv: pl.DataFrame) -> None:
    frame = measured(chicago[0], "chicago", "crime_time_heaping")
    expected = chicago_csv.filter(pl.col("Primary Type") == "OFFENSE INVOLVING CHILDREN").select(
        (pl.col("local").dt.time() == pl.time(0, 0, 0)).mean()).item()

    found = frame.filter(pl.col("category") == "OFFENSE INVOLVING CHILDREN")["midnight_share"].item()

    assert found == pytest.approx(expected, abs=1e-12)
    assert 0.07 < found < 0.10


def test_chicago_heaping_check_names_categories(chicago: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    evaluation = evaluations(chicago[1])["crime_time_heaping"]

    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "category=OFFENSE INVOLVING CHILDREN" in evaluation.metadata["problems"].value


def test_chicago_missing_coordinates(chicago: tuple[Path, dg.ExecuteInProcessResult], chicago_csv: pl.DataFrame) -> None:
    expected = chicago_csv.filter(pl.col("Latitude").is_null() | pl.col("Longitude").is_null()).height

    frame = measured(chicago[0], "chicago", "crime_completeness")

    assert frame.filter(pl.col("category") == "(all)")["missing_coordinates_records"].item() == expected


def test_chicago_duplicates(chicago: tuple[Path, dg.ExecuteInProcessResult], chicago_csv: pl.DataFrame) -> None:
    fields = chicago_csv.select(CHICAGO_FIELDS)
    copies = fields.height - fields.drop("ID").unique().height
    exact = fields.height - fields.unique().height
    repeated_ids = fields.height - fields["ID"].n_unique()

    frame = measured(chicago[0], "chicago", "crime_duplicate_rows")

    assert frame["copied_records"].item() == copies
    assert frame["exact_duplicate_rows"].item() == exact
    assert frame["duplicate_id_rows"].item() == repeated_ids
    assert copies == 57


def test_chicago_shared_case_numbers(chicago: tuple[Path, dg.ExecuteInProcessResult], chicago_csv: pl.DataFrame) -> None:
    shared = chicago_csv.group_by("Case Number").len().filter(pl.col("len") > 1)

    frame = measured(chicago[0], "chicago", "crime_shared_case_numbers")

    assert frame["shared_case_numbers"].item() == shared.height
    assert frame["records_sharing_case"].item() == shared["len"].sum()


def test_chicago_beat_district(chicago: tuple[Path, dg.ExecuteInProcessResult], chicago_csv: pl.DataFrame) -> None:
    pairs = chicago_csv.filter(pl.col("Beat").is_not_null() & pl.col("District").is_not_null())
    mismatched = pairs.filter(pl.col("Beat").cast(pl.Int64) // 100 != pl.col("District").cast(pl.Int64)).height

    frame = measured(chicago[0], "chicago", "crime_beat_district_consistency")

    assert frame["mismatched_records"].item() == mismatched
    assert frame["checked_records"].item() == pairs.height


def test_chicago_reports_written(chicago: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    reports = chicago[0].parent / "reports"

    assert (reports / "data_input_audit.html").stat().st_size > 10_000
    assert (reports / "audit" / "data_docs" / "index.html").is_file()


# Philadelphia.

@pytest.fixture(scope="module")
def philadelphia_csv() -> pl.DataFrame:
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "philadelphia" / "incidents_2017-03.csv.gz"
    if not path.is_file():
        pytest.skip("real Philadelphia data not found; it lives in ../shared/data beside the repository")
    return pl.read_csv(path, infer_schema=False)


@pytest.fixture(scope="module")
def philadelphia(philadelphia_csv: pl.DataFrame,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    from tests.conftest import SHARED_DATA

    return run_warehouse("philadelphia", SHARED_DATA / "philadelphia", tmp_path_factory.mktemp("philadelphia_audit"))


def test_philadelphia_audit_does_not_block(philadelphia: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    assert philadelphia[1].success


def test_philadelphia_heaping(philadelphia: tuple[Path, dg.ExecuteInProcessResult],
                              philadelphia_csv: pl.DataFrame) -> None:
    # dispatch_date and dispatch_time are the local clock of each incident.
    time = pl.col("dispatch_time")
    expected = philadelphia_csv.select(
        (time == "00:00:00").mean().alias("midnight_share"),
        time.str.ends_with(":00:00").mean().alias("on_hour_share"),
        pl.col("dispatch_date").str.ends_with("-01").mean().alias("first_of_month_share"))

    frame = measured(philadelphia[0], "philadelphia", "crime_time_heaping").filter(pl.col("category") == "(all)")

    for column in expected.columns:
        assert frame[column].item() == pytest.approx(expected[column].item(), abs=1e-12), column


def test_philadelphia_missing_coordinates(philadelphia: tuple[Path, dg.ExecuteInProcessResult],
                                          philadelphia_csv: pl.DataFrame) -> None:
    expected = philadelphia_csv.filter(pl.col("point_x").is_null() | pl.col("point_y").is_null()).height

    frame = measured(philadelphia[0], "philadelphia", "crime_completeness")

    assert frame.filter(pl.col("category") == "(all)")["missing_coordinates_records"].item() == expected == 140


def test_philadelphia_duplicates(philadelphia: tuple[Path, dg.ExecuteInProcessResult],
                                 philadelphia_csv: pl.DataFrame) -> None:
    fields = philadelphia_csv.select(PHILADELPHIA_FIELDS)
    copies = fields.height - fields.drop("objectid").unique().height
    shared = fields.group_by("dc_key").len().filter(pl.col("len") > 1)

    duplicates = measured(philadelphia[0], "philadelphia", "crime_duplicate_rows")
    cases = measured(philadelphia[0], "philadelphia", "crime_shared_case_numbers")

    assert duplicates["copied_records"].item() == copies
    assert duplicates["exact_duplicate_rows"].item() == fields.height - fields.unique().height
    assert cases["records_sharing_case"].item() == shared["len"].sum()


def test_philadelphia_skips_rules(philadelphia: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    names = set(evaluations(philadelphia[1]))

    assert "crime_dst_local_times" not in names
    assert "crime_late_updates" not in names
    assert "crime_beat_district_consistency" not in names
    assert "crime_unlocated_by_area" in names


def test_philadelphia_migration_not_covered(philadelphia: tuple[Path, dg.ExecuteInProcessResult],
                                            philadelphia_csv: pl.DataFrame) -> None:
    # One month of 2017 cannot show a jump at the 2020 migration: the check runs and judges nothing.
    months = philadelphia_csv.select(pl.col("dispatch_date").str.slice(0, 7).alias("month"))["month"]
    evaluation = evaluations(philadelphia[1])["crime_category_breaks"]

    frame = measured(philadelphia[0], "philadelphia", "crime_category_breaks")

    assert evaluation.passed
    assert frame["category"].to_list() == ["(all)"]
    assert frame["judged_break_factor"].is_null().all()
    assert evaluation.metadata["changes_not_covered"].value == (
        f"2020-01-01: the data ({months.min()} to {months.max()}) does not cover 2018-01 to 2021-12")

