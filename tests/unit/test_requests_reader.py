"""Reading local 311 extracts: file formats, row numbers, labels and the errors for bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from orchestration.ingest import ExtractError
from orchestration.jurisdiction import ServiceRequestSourceConfig, load_jurisdiction
from orchestration.sources.service_requests import (
    RAW_REQUEST_COLUMNS,
    LocalServiceRequestSource,
    read_all_request_extracts,
    read_request_extracts,
)
from tests.request_extracts import (
    MIXED_DATASET,
    SANITATION_DATASET,
    SANITATION_HEADER,
    mixed_row,
    sanitation_row,
    write_mixed_file,
    write_request_jurisdiction,
    write_sanitation_file,
)

ROWS = [
    sanitation_row("2023-07-04", "Completed", "2023-07-10", "23-00000001", "41.879", "-87.658"),
    sanitation_row("2023-07-05", "Open - Dup", "", "23-00000002", "", "", nature="Other, with a comma"),
]


def sanitation(**fields: object) -> ServiceRequestSourceConfig:
    return ServiceRequestSourceConfig(**(SANITATION_DATASET | fields))


def mixed() -> ServiceRequestSourceConfig:
    return ServiceRequestSourceConfig(**MIXED_DATASET)


def write_csv(folder: Path, rows: list[list[str]], name: str = "sanitation_code_complaints_2023.csv") -> Path:
    return write_sanitation_file(folder / "311" / name, rows)


def test_csv_rows_in_raw_layout(tmp_path: Path) -> None:
    write_csv(tmp_path, ROWS)

    table = read_request_extracts(tmp_path, sanitation())
    first = table.frame.row(0, named=True)

    assert table.frame.columns == list(RAW_REQUEST_COLUMNS)
    assert first == {"dataset": "sanitation_code", "request_type": "sanitation_code", "id": "23-00000001",
                     "created_on": "2023-07-04", "closed_on": "2023-07-10", "updated_on": None,
                     "status": "Completed", "duplicate": None, "latitude": "41.879", "longitude": "-87.658",
                     "source_file": "sanitation_code_complaints_2023.csv", "source_row": 2}
    assert table.frame["source_row"].to_list() == [2, 3]


def test_blank_rows_skipped_and_counted(tmp_path: Path) -> None:
    write_csv(tmp_path, [ROWS[0], [""] * len(SANITATION_HEADER), ROWS[1]])

    table = read_request_extracts(tmp_path, sanitation())

    assert table.blank_rows_skipped == 1
    assert table.frame["source_row"].to_list() == [2, 4]


def test_gzip_csv_read(tmp_path: Path) -> None:
    plain = write_csv(tmp_path, ROWS)
    packed = plain.with_name(plain.name + ".gz")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()

    table = read_request_extracts(tmp_path, sanitation())

    assert table.frame["id"].to_list() == ["23-00000001", "23-00000002"]
    assert table.files == [packed]


def test_parquet_rows_count_from_one(tmp_path: Path) -> None:
    frame = pl.DataFrame([dict(zip(SANITATION_HEADER, row)) for row in ROWS])
    (tmp_path / "311").mkdir()
    frame.write_parquet(tmp_path / "311" / "sanitation_code_complaints_2023.parquet")

    table = read_request_extracts(tmp_path, sanitation(files="311/*.parquet"))

    assert table.frame["source_row"].to_list() == [1, 2]
    assert table.frame["status"].to_list() == ["Completed", "Open - Dup"]


def test_json_export_read(tmp_path: Path) -> None:
    write_mixed_file(tmp_path / "311" / "service_requests_2023.json", [
        mixed_row("SR23-0001", "Graffiti Removal Request", "2023-07-04T23:30:00.000", "2023-07-05T08:00:00.000",
                  "Open", "41.879", "-87.658", duplicate=True),
        mixed_row("SR23-0002", "Pothole in Street Complaint", "2023-07-05T09:00:00.000", "2023-07-06T08:00:00.000",
                  "Open", None, None),
    ])

    frame = read_request_extracts(tmp_path, mixed()).frame

    assert frame["request_type"].to_list() == ["graffiti", "other_311"]
    assert frame["duplicate"].to_list() == ["true", "false"]
    assert frame["latitude"].to_list() == ["41.879", None]
    assert frame["closed_on"].to_list() == [None, None]
    assert frame["source_row"].to_list() == [1, 2]


def test_gzip_json_read(tmp_path: Path) -> None:
    rows = [mixed_row("SR23-0001", "Street Light Out Complaint", "2023-07-04T23:30:00.000",
                      "2023-07-05T08:00:00.000", "Open", "41.879", "-87.658")]
    (tmp_path / "311").mkdir()
    (tmp_path / "311" / "service_requests_2023.json.gz").write_bytes(gzip.compress(json.dumps(rows).encode()))

    dataset = ServiceRequestSourceConfig(**(MIXED_DATASET | {"files": "311/*.json.gz"}))

    frame = read_request_extracts(tmp_path, dataset).frame

    assert frame["request_type"].to_list() == ["street_lights_out"]


def test_missing_column_names_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ROWS)
    columns = SANITATION_DATASET["columns"] | {"closed_on": "Closed_Date"}

    with pytest.raises(ExtractError) as caught:
        read_request_extracts(tmp_path, sanitation(columns=columns))

    assert str(path) in str(caught.value)
    assert "closed_on (column 'Closed_Date')" in str(caught.value)
    assert "`columns` mapping" in str(caught.value)


def test_bad_date_format_names_row(tmp_path: Path) -> None:
    bad = sanitation_row("07/05/2023", "Open", "", "23-00000003", "41.879", "-87.658")
    path = write_csv(tmp_path, [*ROWS, bad])

    with pytest.raises(ExtractError) as caught:
        read_request_extracts(tmp_path, sanitation())

    message = str(caught.value)
    assert str(path) in message
    assert "row 4" in message
    assert "column 'Creation_Date'" in message
    assert "'07/05/2023'" in message
    assert "timestamp_format" in message


def test_bad_closed_date_names_row(tmp_path: Path) -> None:
    bad = sanitation_row("2023-07-05", "Completed", "2023-13-01", "23-00000003", "41.879", "-87.658")
    write_csv(tmp_path, [bad])

    with pytest.raises(ExtractError) as caught:
        read_request_extracts(tmp_path, sanitation())

    assert "row 2, column 'Completion_Date'" in str(caught.value)


def test_json_without_id_field_rejected(tmp_path: Path) -> None:
    rows = [{"sr_type": "Graffiti Removal Request", "created_date": "2023-07-04T23:30:00.000"}]
    write_mixed_file(tmp_path / "311" / "service_requests_2023.json", rows)

    with pytest.raises(ExtractError) as caught:
        read_request_extracts(tmp_path, mixed())

    assert "id (column 'sr_number')" in str(caught.value)


def test_json_object_rejected(tmp_path: Path) -> None:
    (tmp_path / "311").mkdir()
    (tmp_path / "311" / "service_requests_2023.json").write_text('{"data": []}', encoding="utf-8")

    with pytest.raises(ExtractError) as caught:
        read_request_extracts(tmp_path, mixed())

    assert "JSON list of row objects" in str(caught.value)
    assert "found dict" in str(caught.value)


def test_invalid_json_names_file(tmp_path: Path) -> None:
    (tmp_path / "311").mkdir()
    path = tmp_path / "311" / "service_requests_2023.json"
    path.write_text('[{"sr_number": "SR23-0001",', encoding="utf-8")

    with pytest.raises(ExtractError) as caught:
        read_request_extracts(tmp_path, mixed())

    assert f"cannot read {path}" in str(caught.value)


def test_no_matching_files_rejected(tmp_path: Path) -> None:
    (tmp_path / "311").mkdir()

    with pytest.raises(ExtractError) as caught:
        read_request_extracts(tmp_path, sanitation())

    assert "no 311 sanitation_code files match '311/sanitation_code_complaints_*.csv*'" in str(caught.value)


def test_datasets_combine_into_one_table(tmp_path: Path) -> None:
    write_csv(tmp_path, ROWS[:1], "sanitation_code_complaints_2022.csv")
    write_csv(tmp_path, ROWS[1:], "sanitation_code_complaints_2023.csv")
    write_mixed_file(tmp_path / "311" / "service_requests_2023.json", [
        mixed_row("SR23-0001", "Graffiti Removal Request", "2023-07-04T23:30:00.000", "2023-07-05T08:00:00.000",
                  "Open", "41.879", "-87.658")])

    table = read_all_request_extracts(tmp_path, [sanitation(), mixed()])

    assert table.frame["id"].to_list() == ["23-00000001", "23-00000002", "SR23-0001"]
    assert [path.name for path in table.files] == ["sanitation_code_complaints_2022.csv",
                                                   "sanitation_code_complaints_2023.csv",
                                                   "service_requests_2023.json"]


def test_local_source_without_datasets_is_empty(tmp_path: Path) -> None:
    jurisdiction = load_jurisdiction(str(write_request_jurisdiction(tmp_path, [])))

    table = LocalServiceRequestSource(folder=str(tmp_path / "absent")).service_requests(jurisdiction)

    assert table.frame.height == 0
    assert table.frame.columns == list(RAW_REQUEST_COLUMNS)


def test_old_demo_folder_gets_311_files(tmp_path: Path) -> None:
    from ml.demo import write_demo_extracts

    folder = tmp_path / "demo"
    write_demo_extracts(folder)
    crimes_before = {path.name: path.read_bytes() for path in (folder / "crimes").iterdir()}
    for path in (folder / "311").iterdir():
        path.unlink()
    (folder / "311").rmdir()

    table = LocalServiceRequestSource(folder=str(folder), generate_demo=True).service_requests(
        load_jurisdiction("demo"))

    assert set(table.frame["request_type"]) == {"sanitation_code", "street_lights_out", "graffiti"}
    sanitation_dates = table.frame.filter(pl.col("dataset") == "sanitation_code")["created_on"]
    assert sanitation_dates.min().startswith("2021-01-")
    assert sanitation_dates.max().startswith("2023-12-")
    assert {path.name: path.read_bytes() for path in (folder / "crimes").iterdir()} == crimes_before
