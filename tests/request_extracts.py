"""Small hand-made 311 extracts and jurisdiction blocks, in Chicago portal layouts, for tests.

Two datasets: ``sanitation_code`` in the layout of the historical "Sanitation Code Complaints"
export (creation dates without a time of day, duplicates marked in the status), and a mixed
dataset in the layout of the unified "311 Service Requests" JSON export (creation times with a
time of day, a type column, a last-modified time and a duplicate flag).
"""

from __future__ import annotations

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
