"""Small hand-made extract folders in the Chicago portal and NOAA LCD layouts, for tests."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from orchestration.jurisdiction import JURISDICTIONS_DIR

CRIME_HEADER = ("ID,Case Number,Date,Block,IUCR,Primary Type,Description,Location Description,Arrest,"
                "Domestic,Beat,District,Ward,Community Area,FBI Code,X Coordinate,Y Coordinate,"
                "Updated On,Latitude,Longitude")
WEATHER_HEADER = ("STATION,STATION_NAME,ELEVATION,LATITUDE,LONGITUDE,DATE,REPORTTPYE,HOURLYDRYBULBTEMPF,"
                  "HOURLYRelativeHumidity,HOURLYWindSpeed,HOURLYPrecip,DAILYPrecip")

# Two square tracts side by side: WEST covers longitudes -87.70 to -87.65, EAST -87.65 to -87.60,
# both latitudes 41.85 to 41.90.
TRACTS = {
    "WEST": [(-87.70, 41.85), (-87.65, 41.85), (-87.65, 41.90), (-87.70, 41.90), (-87.70, 41.85)],
    "EAST": [(-87.65, 41.85), (-87.60, 41.85), (-87.60, 41.90), (-87.65, 41.90), (-87.65, 41.85)],
}


def crime_row(incident_id: str, case: str, date: str, fbi_code: str, updated: str,
              latitude: str, longitude: str, block: str = "012XX W EXAMPLE ST", arrest: str = "false",
              primary_type: str = "BATTERY") -> str:
    return (f"{incident_id},{case},{date},{block},0486,{primary_type},DOMESTIC BATTERY SIMPLE,APARTMENT,{arrest},"
            f"true,1234,012,27,28,{fbi_code},,,{updated},{latitude},{longitude}")


def write_tracts(path: Path) -> None:
    features = [{"type": "Feature", "properties": {"geoid10": name},
                 "geometry": {"type": "Polygon", "coordinates": [[list(point) for point in ring]]}}
                for name, ring in TRACTS.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")


def write_extracts(folder: Path, crime_rows: list[str], weather_rows: list[str]) -> Path:
    (folder / "crimes").mkdir(parents=True, exist_ok=True)
    (folder / "weather").mkdir(parents=True, exist_ok=True)
    (folder / "crimes" / "chicago_crimes_2023.csv").write_text(
        "\n".join([CRIME_HEADER, *crime_rows]) + "\n", encoding="utf-8")
    (folder / "weather" / "ohare_lcd_hourly_2023.csv").write_text(
        "\n".join([WEATHER_HEADER, *weather_rows]) + "\n", encoding="utf-8")
    write_tracts(folder / "boundaries" / "census_tracts_2010.geojson")
    return folder


def write_test_jurisdiction(folder: Path, data_start: str, min_inside_box_share: float = 0.5) -> Path:
    """A copy of the Chicago jurisdiction file with another name, data start and audit threshold."""
    content = yaml.safe_load((JURISDICTIONS_DIR / "chicago.yaml").read_text(encoding="utf-8"))
    content["name"] = "testcity"
    content["data_start"] = data_start
    content["audit"] = {"min_inside_box_share": min_inside_box_share}
    content["crimes"]["files"] = "crimes/chicago_crimes_*.csv"
    # The test LCD files have the LCD v1 layout without a wind direction column.
    content["weather"]["files"] = [{"pattern": "weather/ohare_lcd_hourly_*.csv", "layout": "lcd_v1"}]
    del content["weather"]["layouts"]["lcd_v1"]["columns"]["wind_direction"]
    # The hand-made extracts have no 311 files. Tests of the 311 source add their own datasets.
    content.pop("service_requests", None)
    # The hand-made extracts have tracts only: no other boundary layers and no demographics.
    content["boundaries"]["layers"] = [layer for layer in content["boundaries"]["layers"]
                                       if layer["name"] == "tracts"]
    # No portal address is ever kept in a test jurisdiction: tests serve the portal on 127.0.0.1.
    for layer in content["boundaries"]["layers"]:
        layer.pop("api", None)
    content.pop("demographics", None)
    path = folder / "testcity.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def write_run_file(folder: Path, jurisdiction: Path | str, extracts: Path | None, train: tuple[str, str],
                   score: tuple[str, str], **extra: object) -> Path:
    content = {
        "jurisdiction": str(jurisdiction),
        "extracts_folder": str(extracts) if extracts else None,
        "train": {"start": train[0], "end": train[1]},
        "score": {"start": score[0], "end": score[1]},
        # Daily refresh partitions accept a training window of any whole number of days; the
        # weekly default would need whole weeks. Pass refresh to test the weekly default.
        "refresh": {"period": "daily"},
        **extra,
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path
