"""Hand-made boundary layers and demographic tables for the geography tests.

Every polygon is a rectangle near 41.86 N, 87.69 W (inside Chicago's bounding box), given by its
west, east, south and north edges in degrees.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestration.jurisdiction import BoundaryLayerConfig


def rectangle(west: float, east: float, south: float, north: float) -> dict:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


# A bow-tie: the ring crosses itself in the middle of the square [-87.68, -87.67] x [41.85, 41.86].
# ST_MakeValid turns it into two triangles with half the square's area.
BOW_TIE = {"type": "Polygon", "coordinates": [[[-87.68, 41.85], [-87.67, 41.86], [-87.67, 41.85],
                                               [-87.68, 41.86], [-87.68, 41.85]]]}


def feature(properties: dict, geometry: dict | None) -> dict:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def write_collection(path: Path, features: list[dict] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(features, str):
        path.write_text(features, encoding="utf-8")
    else:
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def tract_layer(**overrides: object) -> BoundaryLayerConfig:
    settings = {"name": "tracts", "kind": "census_tract", "file": "boundaries/tracts.geojson",
                "id_property": "geoid10", "name_property": "namelsad10"}
    settings.update(overrides)
    return BoundaryLayerConfig(**settings)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
