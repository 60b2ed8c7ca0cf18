"""Demographic tables read from CSV: label rows, id prefixes, skipped rows and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.ingest import ExtractError
from orchestration.jurisdiction import DemographicTableConfig
from orchestration.sources.demographics import read_demographic_table
from tests.geo_fixtures import write_text

# An American FactFinder export of table B03002: a header, a label row, then block groups.
BLOCK_GROUPS = """GEO.id,GEO.id2,GEO.display-label,HD01_VD01,HD01_VD03,HD01_VD04,HD01_VD06,HD01_VD12
Id,Id2,Geography,Estimate; Total:,Estimate; White alone,Estimate; Black alone,Estimate; Asian alone,Estimate; Hispanic
1500000US170310001001,170310001001,"Block Group 1, Census Tract 1",100,50,20,5,20
1500000US170310001002,170310001002,"Block Group 2, Census Tract 1",300,30,180,15,60
,,Total of the county,400,80,200,20,80
1500000US170310002001,170310002001,"Block Group 1, Census Tract 2",200,100,0,40,50
"""


def table(**overrides: object) -> DemographicTableConfig:
    settings = {"name": "tract_race", "file": "demographics/block_groups.csv", "layer": "tracts",
                "id_column": "GEO.id2", "id_length": 11, "label_rows": 1,
                "columns": {"population": "HD01_VD01", "nh_white": "HD01_VD03", "nh_black": "HD01_VD04",
                            "nh_asian": "HD01_VD06", "hispanic": "HD01_VD12"}}
    settings.update(overrides)
    return DemographicTableConfig(**settings)


def test_block_groups_keep_tract_prefix(tmp_path: Path) -> None:
    write_text(tmp_path / "demographics" / "block_groups.csv", BLOCK_GROUPS)

    result = read_demographic_table(tmp_path, table())
    frame = result.frame

    assert frame["area_id"].to_list() == ["17031000100", "17031000100", "17031000200"]
    assert frame["source_id"].to_list() == ["170310001001", "170310001002", "170310002001"]
    assert frame["population"].to_list() == ["100", "300", "200"]
    assert frame["hispanic"].to_list() == ["20", "60", "50"]
    assert frame["other"].to_list() == [None, None, None]
    assert frame["per_capita_income"].to_list() == [None, None, None]
    assert frame["table_name"].unique().to_list() == ["tract_race"]
    assert frame["layer"].unique().to_list() == ["tracts"]


def test_source_rows_count_the_label_row(tmp_path: Path) -> None:
    write_text(tmp_path / "demographics" / "block_groups.csv", BLOCK_GROUPS)

    frame = read_demographic_table(tmp_path, table()).frame

    # The header is row 1 and the label row is row 2, so the first block group is row 3.
    assert frame["source_row"].to_list() == [3, 4, 6]


def test_row_without_id_is_counted(tmp_path: Path) -> None:
    write_text(tmp_path / "demographics" / "block_groups.csv", BLOCK_GROUPS)

    result = read_demographic_table(tmp_path, table())

    assert result.rows_without_id == 1
    assert result.frame.height == 3


def test_integer_ids(tmp_path: Path) -> None:
    write_text(tmp_path / "areas.csv", "ComAreaID,Pop2014\n35.0,19430\n36.0,6473\n\n")

    frame = read_demographic_table(tmp_path, table(
        file="areas.csv", layer="community_areas", id_column="ComAreaID", id_type="integer",
        id_length=None, label_rows=0, columns={"population": "Pop2014"})).frame

    assert frame["area_id"].to_list() == ["35", "36"]
    assert frame["population"].to_list() == ["19430", "6473"]


def test_value_not_a_number(tmp_path: Path) -> None:
    write_text(tmp_path / "demographics" / "block_groups.csv", BLOCK_GROUPS.replace(",300,30,", ",(X),30,"))

    with pytest.raises(ExtractError, match=r"block_groups.csv, row 4, column 'HD01_VD01': '\(X\)' is not a number"):
        read_demographic_table(tmp_path, table())


def test_missing_column(tmp_path: Path) -> None:
    write_text(tmp_path / "demographics" / "block_groups.csv", BLOCK_GROUPS)

    with pytest.raises(ExtractError, match=r"required column missing: per_capita_income \(column 'HD01_VD99'\)"):
        read_demographic_table(tmp_path, table(columns={"population": "HD01_VD01",
                                                        "per_capita_income": "HD01_VD99"}))


def test_repeated_ids_need_id_length(tmp_path: Path) -> None:
    write_text(tmp_path / "areas.csv", "AREA,POP\n1,10\n2,20\n1,30\n")

    with pytest.raises(ExtractError, match=r"ids in column 'AREA' repeat: \['1'\]. Set id_length"):
        read_demographic_table(tmp_path, table(file="areas.csv", id_column="AREA", id_length=None,
                                               label_rows=0, columns={"population": "POP"}))


def test_id_shorter_than_prefix(tmp_path: Path) -> None:
    write_text(tmp_path / "areas.csv", "GEOID,POP\n1703100010,10\n")

    with pytest.raises(ExtractError, match="id '1703100010' is shorter than id_length 11"):
        read_demographic_table(tmp_path, table(file="areas.csv", id_column="GEOID", label_rows=0,
                                               columns={"population": "POP"}))


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="demographics table 'tract_race' not found"):
        read_demographic_table(tmp_path, table())
