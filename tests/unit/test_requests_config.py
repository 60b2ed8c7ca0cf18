"""311 dataset configuration in jurisdiction files: the shipped blocks and every rejected mistake."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from orchestration.dbt import duckdb_timestamp_formats, service_request_vars
from orchestration.jurisdiction import JURISDICTIONS_DIR, ConfigError, load_jurisdiction
from tests.request_extracts import MIXED_DATASET, SANITATION_DATASET


def jurisdiction_error(folder: Path, datasets: list[dict]) -> str:
    content = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    content["service_requests"] = datasets
    path = folder / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_jurisdiction(str(path))
    return str(caught.value)


def changed(base: dict, **fields: object) -> dict:
    dataset = copy.deepcopy(base)
    dataset.update(fields)
    return dataset


def test_chicago_sanitation_dataset() -> None:
    datasets = load_jurisdiction("chicago").service_requests

    assert [dataset.request_type for dataset in datasets] == ["sanitation_code"]
    sanitation = datasets[0]
    assert sanitation.files == "311/sanitation_code_complaints_*.csv*"
    assert sanitation.columns == {"id": "Service_Request_Number", "created_on": "Creation_Date", "status": "Status",
                                  "closed_on": "Completion_Date", "latitude": "Latitude", "longitude": "Longitude"}
    assert sanitation.creation_is_date_only is True
    assert sanitation.duplicate_statuses == ["Completed - Dup", "Open - Dup"]
    assert sanitation.api is not None
    assert sanitation.api.dataset_id == "me59-5fac"
    assert sanitation.api.columns["id"] == "service_request_number"


def test_date_only_detected_from_format(tmp_path: Path) -> None:
    content = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    without_setting = changed(SANITATION_DATASET)
    with_time = changed(SANITATION_DATASET, request_type="timed", timestamp_format="%m/%d/%Y %I:%M:%S %p")
    content["service_requests"] = [without_setting, with_time]
    path = tmp_path / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")

    datasets = load_jurisdiction(str(path)).service_requests

    assert datasets[0].creation_is_date_only is True
    assert datasets[1].creation_is_date_only is False


def test_missing_required_field_rejected(tmp_path: Path) -> None:
    columns = {name: column for name, column in SANITATION_DATASET["columns"].items() if name != "created_on"}

    message = jurisdiction_error(tmp_path, [changed(SANITATION_DATASET, columns=columns)])

    assert "service_requests[sanitation_code].columns" in message
    assert "['created_on']" in message


def test_unknown_field_rejected(tmp_path: Path) -> None:
    columns = SANITATION_DATASET["columns"] | {"street_address": "Street_Address"}

    message = jurisdiction_error(tmp_path, [changed(SANITATION_DATASET, columns=columns)])

    assert "unknown fields ['street_address']" in message
    assert "free text" in message


def test_misspelled_setting_rejected(tmp_path: Path) -> None:
    message = jurisdiction_error(tmp_path, [changed(SANITATION_DATASET, timestamp_fromat="%Y")])

    assert "timestamp_fromat" in message


def test_invalid_label_rejected(tmp_path: Path) -> None:
    message = jurisdiction_error(tmp_path, [changed(SANITATION_DATASET, request_type="Street Lights")])

    assert "'Street Lights' is not a valid request type label" in message


def test_date_only_false_needs_time_in_format(tmp_path: Path) -> None:
    message = jurisdiction_error(tmp_path, [changed(SANITATION_DATASET, date_only=False)])

    assert "date_only: false" in message
    assert "'%Y-%m-%d'" in message


def test_type_labels_need_type_column(tmp_path: Path) -> None:
    labels_only = changed(SANITATION_DATASET, type_labels={"Sanitation Code Violation": "sanitation"})
    column_only = changed(MIXED_DATASET, type_labels={})

    assert "request_type column and list type_labels together" in jurisdiction_error(tmp_path, [labels_only])
    assert "request_type column and list type_labels together" in jurisdiction_error(tmp_path, [column_only])


def test_invalid_type_label_rejected(tmp_path: Path) -> None:
    dataset = changed(MIXED_DATASET, type_labels={"Graffiti Removal Request": "Graffiti"})

    message = jurisdiction_error(tmp_path, [dataset])

    assert "type_labels['Graffiti Removal Request']" in message


def test_repeated_request_type_rejected(tmp_path: Path) -> None:
    message = jurisdiction_error(tmp_path, [SANITATION_DATASET, changed(SANITATION_DATASET, files="other/*.csv")])

    assert "repeats request_type ['sanitation_code']" in message


def test_repeated_api_dataset_rejected(tmp_path: Path) -> None:
    api = {"base_url": "https://example.invalid", "dataset_id": "abcd-1234",
           "columns": SANITATION_DATASET["columns"]}
    first = changed(SANITATION_DATASET, api=api)
    second = changed(SANITATION_DATASET, request_type="sanitation_again", api=api)

    message = jurisdiction_error(tmp_path, [first, second])

    assert "['abcd-1234'] more than once" in message


def test_api_columns_checked(tmp_path: Path) -> None:
    api = {"base_url": "https://example.invalid", "dataset_id": "abcd-1234", "columns": {"id": "sr_number"}}

    message = jurisdiction_error(tmp_path, [changed(SANITATION_DATASET, api=api)])

    assert "api.columns has no mapping for required fields ['created_on', 'latitude', 'longitude']" in message


def test_api_must_map_type_column_too(tmp_path: Path) -> None:
    columns = {name: column for name, column in MIXED_DATASET["columns"].items() if name != "request_type"}
    api = {"base_url": "https://example.invalid", "dataset_id": "abcd-1234", "columns": columns}

    message = jurisdiction_error(tmp_path, [changed(MIXED_DATASET, api=api)])

    assert "both map request_type" in message


def test_dbt_vars_per_dataset() -> None:
    sanitation = load_jurisdiction("chicago").service_requests[0]

    assert service_request_vars(sanitation) == {
        "name": "sanitation_code",
        "file_formats": ["%Y-%m-%d"],
        "api_formats": ["%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"],
        "date_only": True,
        "duplicate_statuses": ["Completed - Dup", "Open - Dup"],
    }


def test_duckdb_formats_drop_fraction() -> None:
    assert duckdb_timestamp_formats("%m/%d/%Y %I:%M:%S %p") == ["%m/%d/%Y %I:%M:%S %p"]
    assert duckdb_timestamp_formats("%Y-%m-%dT%H:%M:%S%.3f") == ["%Y-%m-%dT%H:%M:%S.%g", "%Y-%m-%dT%H:%M:%S"]
