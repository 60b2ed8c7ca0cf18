"""Small hand-made 311 extracts and jurisdiction blocks, in Chicago portal layouts, for tests.

Two datasets. ``sanitation_code`` has the layout of the historical "Sanitation Code Complaints"
export, with creation dates without a time of day and duplicates marked in the status. The mixed
dataset has the layout of the unified "311 Service Requests" JSON export, with creation times of
day, a type column, a last-modified time and a duplicate flag.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import yaml

from tests.extracts import write_test_jurisdiction

SANITATION_HEADER = (
    "Creation_Date", "Status", "Completion_Date", "Service_Request_Number", "Type_of_Service_Request",
    "What_is_the_Nature_of_this_Code_Violation", "Street_Address", "ZIP_Code", "X_Coordinate",
    "Y_Coordinate", "Ward", "Police_District", "Community_Area", "Latitude", "Longitude", "Location",
)

SANITATION_DATASET = {
    "request_type": "sanitation_code",
    "files": "311/sanitation_code_complaints_*.csv*",
    "timestamp_format": "%Y-%m-%d",
    "columns": {
        "id": "Service_Request_Number",
        "created_on": "Creation_Date",
        "status": "Status",
        "closed_on": "Completion_Date",
        "latitude": "Latitude",
        "longitude": "Longitude",
    },
}

MIXED_DATASET = {
    "request_type": "other_311",
    "files": "311/service_requests_*.json",
    "timestamp_format": "%Y-%m-%dT%H:%M:%S%.f",
    "columns": {
        "id": "sr_number",
        "request_type": "sr_type",
        "created_on": "created_date",
        "updated_on": "last_modified_date",
        "closed_on": "closed_date",
        "status": "status",
        "duplicate": "duplicate",
        "latitude": "latitude",
        "longitude": "longitude",
    },
    "type_labels": {
        "Street Light Out Complaint": "street_lights_out",
        "Graffiti Removal Request": "graffiti",
    },
}


def sanitation_row(created: str, status: str, completed: str, request_id: str, latitude: str,
                   longitude: str, nature: str = "Garbage in alley") -> list[str]:
    location = f"({latitude}, {longitude})" if latitude else ""
    return [created, status, completed, request_id, "Sanitation Code Violation", nature,
            "1234 W EXAMPLE ST", "60607", "", "", "27", "12", "28", latitude, longitude, location]


def write_sanitation_file(path: Path, rows: list[list[str]]) -> Path:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(SANITATION_HEADER)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.getvalue(), encoding="utf-8")
    return path


def mixed_row(request_id: str, request_type: str, created: str | None, modified: str, status: str,
              latitude: str | None, longitude: str | None, duplicate: bool = False) -> dict[str, object]:
    row: dict[str, object] = {
        "sr_number": request_id, "sr_type": request_type, "status": status,
        "created_date": created, "last_modified_date": modified, "closed_date": None,
        "duplicate": duplicate, "street_address": "1234 W EXAMPLE ST", "latitude": latitude,
        "longitude": longitude,
    }
    return {name: value for name, value in row.items() if value is not None}


def write_mixed_file(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def write_request_jurisdiction(folder: Path, datasets: list[dict], data_start: str = "2023-01-01") -> Path:
    """Write the test jurisdiction of ``tests.extracts`` with the given 311 datasets."""
    path = write_test_jurisdiction(folder, data_start)
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    content["service_requests"] = datasets
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


# Rows of the local Socrata portal (tests/requests_server.py).

SANITATION_ID = "me59-5fac"
MIXED_ID = "v6vf-nfxy"
SANITATION_API_COLUMNS = {"id": "service_request_number", "created_on": "creation_date", "status": "status",
                          "closed_on": "completion_date", "latitude": "latitude", "longitude": "longitude"}
MIXED_API_COLUMNS = {"id": "sr_number", "request_type": "sr_type", "created_on": "created_date",
                     "updated_on": "last_modified_date", "closed_on": "closed_date", "status": "status",
                     "duplicate": "duplicate", "latitude": "latitude", "longitude": "longitude"}


def sanitation_api_row(system_id: str, updated_at: str, request_id: str, created: str, status: str,
                       latitude: str = "41.879", longitude: str = "-87.658") -> dict[str, str]:
    return {":id": system_id, ":updated_at": updated_at, "service_request_number": request_id,
            "creation_date": created, "status": status, "completion_date": "2023-07-10T00:00:00.000",
            "type_of_service_request": "Sanitation Code Violation",
            # Free text that the mapping must leave out.
            "street_address": "1234 W EXAMPLE ST", "latitude": latitude, "longitude": longitude}


SANITATION_ROWS = [
    sanitation_api_row("row-1", "2024-06-01T10:00:00.000Z", "23-00000001", "2023-07-04T00:00:00.000", "Completed"),
    sanitation_api_row("row-2", "2024-06-01T10:00:00.000Z", "23-00000002", "2023-07-04T00:00:00.000", "Open"),
    sanitation_api_row("row-3", "2024-06-01T10:00:00.000Z", "23-00000003", "2023-07-05T00:00:00.000",
                       "Completed - Dup"),
    sanitation_api_row("row-4", "2024-06-02T09:00:00.000Z", "23-00000004", "2023-07-05T00:00:00",
                       "Completed"),
    sanitation_api_row("row-5", "2024-06-03T12:00:00.000Z", "23-00000005", "2023-07-06T00:00:00.000", "Open"),
]
MIXED_ROWS = [
    {":id": "row-a", ":updated_at": "2024-06-01T10:00:00.000Z", "sr_number": "SR23-0001",
     "sr_type": "Street Light Out Complaint", "created_date": "2023-07-04T23:30:00.000",
     "last_modified_date": "2023-07-05T08:00:00.000", "status": "Open", "duplicate": False,
     "latitude": "41.879", "longitude": "-87.658"},
    {":id": "row-b", ":updated_at": "2024-06-01T11:00:00.000Z", "sr_number": "SR23-0002",
     "sr_type": "Pothole in Street Complaint", "created_date": "2023-07-05T09:00:00.000",
     "last_modified_date": "2023-07-06T08:00:00.000", "status": "Open", "duplicate": True},
]


def api_dataset(base: dict, dataset_id: str, columns: dict[str, str], base_url: str) -> dict:
    dataset = copy.deepcopy(base)
    dataset["api"] = {"base_url": base_url, "dataset_id": dataset_id, "columns": columns, "page_size": 2,
                      "lookback_days": 30}
    return dataset
