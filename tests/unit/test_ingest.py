"""Local-extract readers of crime exports in the Chicago portal layout (weather and cells have their own tests)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from orchestration.ingest import ExtractError, read_crime_extracts
from orchestration.jurisdiction import JurisdictionConfig, load_jurisdiction
from tests.extracts import CRIME_HEADER, crime_row

CRIME_FILE = "chicago_crimes_2023.csv"
UPDATED = "07/11/2023 03:41:00 PM"
ROWS = [
    crime_row("900101", "ZZ100001", "07/04/2023 12:15:00 AM", "08B", UPDATED, "41.879", "-87.658"),
    crime_row("900102", "ZZ100002", "07/04/2023 12:15:00 PM", "06", UPDATED, "41.88", "-87.62"),
    crime_row("900103", "ZZ100003", "11/05/2023 01:30:00 AM", "03", UPDATED, "", ""),
]


@pytest.fixture(scope="module")
def chicago() -> JurisdictionConfig:
    return load_jurisdiction("chicago")


def write_crimes(folder: Path, rows: list[str], header: str = CRIME_HEADER, name: str = CRIME_FILE,
                 prefix: str = "") -> Path:
    """Write a crime export under ``folder/crimes``, gzip-compressed when the name ends in ``.gz``."""
    path = folder / "crimes" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = prefix + "\n".join([header, *rows]) + "\n"
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def without_column(line: str, index: int) -> str:
    fields = line.split(",")
    return ",".join(fields[:index] + fields[index + 1:])


def reversed_columns(line: str) -> str:
    return ",".join(reversed(line.split(",")))


# Crime extracts: columns and provenance.

def test_crime_columns_are_canonical(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path, ROWS)

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert set(frame.columns) == set(chicago.crimes.columns) | {"source_file", "source_row"}


@pytest.mark.parametrize("column", ["Block", "Description", "Arrest", "Domestic", "X Coordinate",
                                    "Y Coordinate", "Ward", "block", "description", "domestic"])
def test_crime_unmapped_column_dropped(tmp_path: Path, chicago: JurisdictionConfig, column: str) -> None:
    write_crimes(tmp_path, ROWS)

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert column not in frame.columns


def test_crime_values_stay_text(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path, ROWS)

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert frame.drop("source_row").dtypes == [pl.String] * (frame.width - 1)
    # Leading zeros would be lost if the reader inferred integers.
    assert frame["district"].to_list() == ["012", "012", "012"]
    assert frame["date"].to_list() == ["07/04/2023 12:15:00 AM", "07/04/2023 12:15:00 PM",
                                       "11/05/2023 01:30:00 AM"]
    assert frame["offense_code"].to_list() == ["08B", "06", "03"]


def test_crime_empty_coordinates_are_null(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path, ROWS)

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert frame["latitude"].to_list() == ["41.879", "41.88", None]


def test_crime_source_file_and_row(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path, ROWS)

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert frame["source_file"].to_list() == [CRIME_FILE] * 3
    # The header is line 1, so the first data row is line 2.
    assert frame["source_row"].to_list() == [2, 3, 4]


def test_crime_rows_numbered_per_file(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path, ROWS[:2], name="chicago_crimes_2022.csv")
    write_crimes(tmp_path, ROWS[2:], name="chicago_crimes_2023.csv")

    table = read_crime_extracts(tmp_path, chicago.crimes)

    assert [path.name for path in table.files] == ["chicago_crimes_2022.csv", "chicago_crimes_2023.csv"]
    assert table.frame.select("source_file", "source_row").rows() == [
        ("chicago_crimes_2022.csv", 2), ("chicago_crimes_2022.csv", 3), ("chicago_crimes_2023.csv", 2)]
    assert table.frame["id"].to_list() == ["900101", "900102", "900103"]


def test_crime_row_after_multiline_field(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    # source_row is the row number a spreadsheet shows: a quoted field spanning two lines stays
    # in one row, so the second record is row 3 although it starts on line 4 of the file.
    multiline = crime_row("900101", "ZZ100001", "07/04/2023 12:15:00 AM", "08B", UPDATED, "41.879",
                          "-87.658", block='"012XX W EXAMPLE ST\nREAR"')
    write_crimes(tmp_path, [multiline, ROWS[1]])

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert frame["source_row"].to_list() == [2, 3]


# Crime extracts: file formats and header variants.

def test_crime_gzip_matches_plain(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path / "plain", ROWS, name="chicago_crimes_2023.csv")
    write_crimes(tmp_path / "packed", ROWS, name="chicago_crimes_2023.csv.gz")

    plain = read_crime_extracts(tmp_path / "plain", chicago.crimes).frame
    packed = read_crime_extracts(tmp_path / "packed", chicago.crimes).frame

    assert packed["source_file"].to_list() == ["chicago_crimes_2023.csv.gz"] * 3
    assert packed.drop("source_file").equals(plain.drop("source_file"))


def test_crime_json_and_parquet_match_csv(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path / "plain", ROWS, name="chicago_crimes_2023.csv")
    records = pl.read_csv(tmp_path / "plain" / "crimes" / "chicago_crimes_2023.csv", infer_schema=False)
    (tmp_path / "json" / "crimes").mkdir(parents=True)
    (tmp_path / "json" / "crimes" / "export.json").write_text(
        json.dumps([{key: value for key, value in row.items() if value is not None} for row in records.to_dicts()]),
        encoding="utf-8")
    (tmp_path / "parquet" / "crimes").mkdir(parents=True)
    records.write_parquet(tmp_path / "parquet" / "crimes" / "export.parquet")
    any_file = chicago.crimes.model_copy(update={"files": "crimes/*"})

    plain = read_crime_extracts(tmp_path / "plain", any_file).frame.drop("source_file")
    from_json = read_crime_extracts(tmp_path / "json", any_file).frame.drop("source_file")
    from_parquet = read_crime_extracts(tmp_path / "parquet", any_file).frame.drop("source_file")

    assert from_json.equals(plain)
    assert from_parquet.equals(plain)


def test_crime_json_object_is_rejected(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    (tmp_path / "crimes").mkdir()
    (tmp_path / "crimes" / "export.json").write_text('{"rows": []}', encoding="utf-8")

    with pytest.raises(ExtractError) as raised:
        read_crime_extracts(tmp_path, chicago.crimes.model_copy(update={"files": "crimes/*.json"}))

    assert "must contain a JSON array of objects" in str(raised.value)


def test_crime_byte_order_mark(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path, ROWS, prefix="\ufeff")

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert frame["id"].to_list() == ["900101", "900102", "900103"]


def test_crime_extra_columns_ignored(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path, [f"{row},60607" for row in ROWS], header=f"{CRIME_HEADER},Zip Code")

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert "Zip Code" not in frame.columns
    assert frame["longitude"].to_list() == ["-87.658", "-87.62", None]


def test_crime_reordered_columns(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path / "ordered", ROWS)
    write_crimes(tmp_path / "reordered", [reversed_columns(row) for row in ROWS],
                 header=reversed_columns(CRIME_HEADER))

    ordered = read_crime_extracts(tmp_path / "ordered", chicago.crimes).frame
    reordered = read_crime_extracts(tmp_path / "reordered", chicago.crimes).frame

    assert reordered.select(ordered.columns).equals(ordered)


def test_crime_optional_column_absent(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    beat = CRIME_HEADER.split(",").index("Beat")
    write_crimes(tmp_path, [without_column(row, beat) for row in ROWS],
                 header=without_column(CRIME_HEADER, beat))

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert frame["beat"].to_list() == [None, None, None]


def test_crime_header_only_file(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path, [])

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert frame.height == 0


# Crime extracts: errors.

@pytest.fixture
def error_without_date(tmp_path: Path, chicago: JurisdictionConfig) -> tuple[str, Path]:
    date = CRIME_HEADER.split(",").index("Date")
    path = write_crimes(tmp_path, [without_column(row, date) for row in ROWS],
                        header=without_column(CRIME_HEADER, date))
    with pytest.raises(ExtractError) as caught:
        read_crime_extracts(tmp_path, chicago.crimes)
    return str(caught.value), path


def test_missing_column_names_file(error_without_date: tuple[str, Path]) -> None:
    message, path = error_without_date

    assert str(path) in message


def test_missing_column_names_column(error_without_date: tuple[str, Path]) -> None:
    message, _ = error_without_date

    assert "date (column 'Date')" in message


def test_missing_column_names_fix(error_without_date: tuple[str, Path]) -> None:
    message, _ = error_without_date

    assert "fix the export or the `columns` mapping" in message


def test_missing_column_lists_only_missing(error_without_date: tuple[str, Path]) -> None:
    message, _ = error_without_date

    assert "offense_code (column" not in message


@pytest.fixture
def error_bad_date(tmp_path: Path, chicago: JurisdictionConfig) -> tuple[str, Path]:
    rows = [
        ROWS[0],
        crime_row("900102", "ZZ100002", "2023-07-04 12:15", "06", UPDATED, "41.88", "-87.62"),
        crime_row("900103", "ZZ100003", "13/45/2023 01:30:00 AM", "03", UPDATED, "41.88", "-87.62"),
    ]
    path = write_crimes(tmp_path, rows)
    with pytest.raises(ExtractError) as caught:
        read_crime_extracts(tmp_path, chicago.crimes)
    return str(caught.value), path


def test_bad_date_names_file(error_bad_date: tuple[str, Path]) -> None:
    message, path = error_bad_date

    assert str(path) in message


def test_bad_date_names_first_row(error_bad_date: tuple[str, Path]) -> None:
    message, _ = error_bad_date

    assert "row 3," in message


def test_bad_date_names_column(error_bad_date: tuple[str, Path]) -> None:
    message, _ = error_bad_date

    assert "column 'Date'" in message


def test_bad_date_shows_value(error_bad_date: tuple[str, Path]) -> None:
    message, _ = error_bad_date

    assert "'2023-07-04 12:15'" in message


def test_bad_date_counts_rows(error_bad_date: tuple[str, Path]) -> None:
    message, _ = error_bad_date

    assert "(2 such rows)" in message


def test_bad_updated_on_names_column(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    rows = [crime_row("900101", "ZZ100001", "07/04/2023 12:15:00 AM", "08B", "yesterday", "41.879", "-87.658")]
    write_crimes(tmp_path, rows)

    with pytest.raises(ExtractError, match="row 2, column 'Updated On'"):
        read_crime_extracts(tmp_path, chicago.crimes)


def test_empty_date_row_kept(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    rows = [ROWS[0], crime_row("900102", "ZZ100002", "", "06", UPDATED, "41.88", "-87.62")]
    write_crimes(tmp_path, rows)

    frame = read_crime_extracts(tmp_path, chicago.crimes).frame

    assert frame.filter(pl.col("id") == "900102")["date"].to_list() == [None]


def test_no_matching_files(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    (tmp_path / "crimes").mkdir()
    (tmp_path / "crimes" / "crimes_2023.csv").write_text(CRIME_HEADER + "\n", encoding="utf-8")

    with pytest.raises(ExtractError) as caught:
        read_crime_extracts(tmp_path, chicago.crimes)

    assert "'crimes/chicago_crimes_*.csv*'" in str(caught.value)
    assert str(tmp_path) in str(caught.value)


def test_missing_folder(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    folder = tmp_path / "absent"

    with pytest.raises(ExtractError) as caught:
        read_crime_extracts(folder, chicago.crimes)

    assert f"extracts folder not found: {folder}" in str(caught.value)


def test_truncated_gzip(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    path = write_crimes(tmp_path, ROWS * 50, name="chicago_crimes_2023.csv.gz")
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])

    with pytest.raises(ExtractError) as caught:
        read_crime_extracts(tmp_path, chicago.crimes)

    assert f"cannot read {path}" in str(caught.value)




# The real 2017 Chicago export, when the shared data folder is present.

@pytest.mark.integration
def test_real_2017_crime_export(chicago_data: Path, chicago: JurisdictionConfig) -> None:
    path = chicago_data / "crimes" / "chicago_crimes_2017.csv.gz"
    with gzip.open(path, "rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    only_2017 = chicago.crimes.model_copy(update={"files": "crimes/chicago_crimes_2017.csv.gz"})

    frame = read_crime_extracts(chicago_data, only_2017).frame

    assert frame.height == lines - 1
    assert frame.height == 267_792
    assert set(frame.columns) == set(chicago.crimes.columns) | {"source_file", "source_row"}


def test_blank_lines_skipped_and_counted(tmp_path: Path, chicago: JurisdictionConfig) -> None:
    write_crimes(tmp_path, [ROWS[0], ",,,,,,,,,,,,,,,,,,,", ROWS[1]])

    table = read_crime_extracts(tmp_path, chicago.crimes)

    assert table.frame["id"].to_list() == ["900101", "900102"]
    assert table.blank_rows_skipped == 1
    assert table.frame["source_row"].to_list() == [2, 4]
