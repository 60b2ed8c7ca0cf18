"""Boundary layers from GeoJSON: feature ids, properties and geometry checks, as raw rows.

A layer arrives as a GeoJSON FeatureCollection (RFC 7946) in WGS 84 longitude/latitude, from a
file or from a portal. Each feature becomes one row of ``raw.boundaries`` with its geometry as
GeoJSON text, as delivered. Nothing is repaired here, so the raw table stays a faithful copy.
Structural problems are named in ``geometry_problem`` instead:

- ``missing_geometry``: the feature's geometry is null or absent;
- ``not_a_polygon``: a Point, LineString or other type that cannot be an area;
- ``malformed_coordinates``: coordinates that are not nested lists of numbers as the type needs,
  or a ring that is not closed or has fewer than four positions;
- ``empty_geometry``: a Polygon or MultiPolygon with no coordinates.

Staging keeps those rows out of the layer and lists them in ``quarantine_boundaries``, and it
repairs the remaining invalid polygons (self-intersections) with ``ST_MakeValid``. Some problems
make the whole file unusable, so they raise ``ExtractError`` naming the file and the feature. They
are a file that is not a FeatureCollection, a feature without its id property, a repeated id in a
layer that does not dissolve, a non-numeric population, and coordinates outside longitude and
latitude ranges.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from orchestration.ingest import ExtractError
from orchestration.jurisdiction import BoundaryLayerConfig

logger = logging.getLogger(__name__)

BOUNDARY_SCHEMA = {
    "layer": pl.String,
    "kind": pl.String,
    "feature_id": pl.String,
    "name": pl.String,
    "population": pl.String,
    "geometry_geojson": pl.String,
    "geometry_problem": pl.String,
    "source_file": pl.String,
    "feature_index": pl.Int64,
}
POLYGON_TYPES = ("Polygon", "MultiPolygon")
# RFC 7946 fixes WGS 84 longitude/latitude. Older files may still name it in a "crs" member.
WGS84_CRS_NAMES = frozenset({
    "urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326", "CRS84",
})


@dataclass(frozen=True)
class LayerProperties:
    """The feature properties that give a layer's id, name and population."""

    id_property: str
    id_type: str = "text"
    name_property: str | None = None
    population_property: str | None = None

    @classmethod
    def of_file(cls, layer: BoundaryLayerConfig) -> "LayerProperties":
        return cls(layer.id_property, layer.id_type, layer.name_property, layer.population_property)

    @classmethod
    def of_api(cls, layer: BoundaryLayerConfig) -> "LayerProperties":
        """Return the layer's properties with the api block's overrides applied."""
        api = layer.api
        if api is None:
            return cls.of_file(layer)
        return cls(
            api.id_property or layer.id_property,
            layer.id_type,
            api.name_property or layer.name_property,
            api.population_property or layer.population_property,
        )


@dataclass(frozen=True)
class BoundaryTable:
    """The raw rows of one layer and where they came from."""

    layer: str
    frame: pl.DataFrame
    source: str
    requests: list[str] = field(default_factory=list)

    def problem_counts(self) -> dict[str, int]:
        problems = self.frame["geometry_problem"].drop_nulls().to_list()
        return {problem: problems.count(problem) for problem in sorted(set(problems))}


def empty_boundary_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=BOUNDARY_SCHEMA)


def normalize_id(value: object, id_type: str, where: str) -> str | None:
    """Return an id as text, or None when it is missing or blank.

    ``integer`` ids accept 35, 35.0 and "35" and return "35", so that a layer and a table that
    write the same number differently still join. ``text`` ids keep their spelling, which
    preserves the leading zeros of GEOIDs. Raises ``ExtractError`` naming ``where`` for an
    integer id that is not a whole number, and for a list or object id.
    """
    if value is None:
        return None
    if isinstance(value, (bool, list, dict)):
        raise ExtractError(f"{where}: id {value!r} must be a text or a number")

    text = value.strip() if isinstance(value, str) else json.dumps(value)
    if text == "":
        return None
    if id_type == "text":
        return text

    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise ExtractError(f"{where}: id {text!r} is not a whole number; set id_type: text in the "
                           f"jurisdiction file if the ids are not numbers")
    return str(int(number))


def parse_number_text(value: object, where: str) -> str | None:
    """Return a numeric property or cell as clean text, None when blank; raise on anything else."""
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else json.dumps(value)
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ExtractError(f"{where}: {text!r} is not a number. Fix the value in the file, or "
                           f"map another column or property in the jurisdiction file")
    return text


def load_feature_collection(text: str | bytes, source: str) -> dict:
    """Parse GeoJSON text and check that it is a FeatureCollection in longitude/latitude."""
    try:
        collection = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExtractError(f"{source} is not valid GeoJSON: {error}") from error

    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        found = collection.get("type") if isinstance(collection, dict) else type(collection).__name__
        raise ExtractError(f"{source} must hold a GeoJSON FeatureCollection, found {found!r}; "
                           f"export the boundaries as a FeatureCollection")
    if not isinstance(collection.get("features"), list):
        raise ExtractError(f"{source}: the FeatureCollection has no list of features")

    crs = collection.get("crs")
    crs_name = crs.get("properties", {}).get("name") if isinstance(crs, dict) else None
    if crs_name is not None and crs_name not in WGS84_CRS_NAMES:
        raise ExtractError(f"{source} declares coordinate reference system {crs_name!r}; Riskcast "
                           f"reads WGS 84 longitude/latitude only, so reproject the file to EPSG:4326")
    return collection


def geometry_problem(geometry: object) -> str | None:
    """Return why a geometry cannot be a polygon layer's area, or None when it may be used."""
    if geometry is None:
        return "missing_geometry"
    if not isinstance(geometry, dict) or "type" not in geometry:
        return "malformed_coordinates"
    if geometry["type"] not in POLYGON_TYPES:
        return "not_a_polygon"

    coordinates = geometry.get("coordinates")
    polygons = [coordinates] if geometry["type"] == "Polygon" else coordinates
    if not isinstance(polygons, list):
        return "malformed_coordinates"
    positions = 0
    for polygon in polygons:
        if not isinstance(polygon, list):
            return "malformed_coordinates"
        for ring in polygon:
            if not isinstance(ring, list) or not all(is_position(point) for point in ring):
                return "malformed_coordinates"
            # RFC 7946: a linear ring is closed and has at least four positions.
            if ring and (len(ring) < 4 or ring[0][:2] != ring[-1][:2]):
                return "malformed_coordinates"
            positions += len(ring)
    return "empty_geometry" if positions == 0 else None


def is_position(point: object) -> bool:
    return (isinstance(point, list) and len(point) >= 2
            and all(isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) for value in point))


def check_longitude_latitude(geometry: dict, where: str) -> None:
    """Raise when a usable geometry has a position outside longitude and latitude ranges."""
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    for polygon in polygons:
        for ring in polygon:
            for longitude, latitude, *_ in ring:
                if not (-180 <= longitude <= 180 and -90 <= latitude <= 90):
                    raise ExtractError(
                        f"{where}: position ({longitude}, {latitude}) is not a longitude/latitude "
                        f"pair. The file seems to use projected coordinates, so reproject it to "
                        f"WGS 84 (EPSG:4326)")


def parse_feature_collection(collection: dict, layer: BoundaryLayerConfig, properties: LayerProperties,
                             source: str) -> pl.DataFrame:
    """Turn a FeatureCollection into raw boundary rows, one per feature, in file order."""
    rows = []
    for index, feature in enumerate(collection["features"]):
        where = f"{source}, feature {index}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise ExtractError(f"{where} is not a GeoJSON Feature object")
        values = feature.get("properties") or {}

        feature_id = normalize_id(values.get(properties.id_property), properties.id_type, where)
        if feature_id is None:
            raise ExtractError(f"{where}: property {properties.id_property!r} is missing; set "
                               f"id_property of layer {layer.name!r} to the property that "
                               f"identifies each feature. This feature has {sorted(values)}")

        population = None
        if properties.population_property is not None:
            population = parse_number_text(values.get(properties.population_property),
                                           f"{where} ({feature_id}), property {properties.population_property!r}")
        name = values.get(properties.name_property) if properties.name_property else None

        geometry = feature.get("geometry")
        problem = geometry_problem(geometry)
        if problem is None:
            check_longitude_latitude(geometry, f"{where} ({feature_id})")
        rows.append({
            "layer": layer.name,
            "kind": layer.kind,
            "feature_id": feature_id,
            "name": None if name is None else str(name),
            "population": population,
            "geometry_geojson": None if geometry is None else json.dumps(geometry, separators=(",", ":")),
            "geometry_problem": problem,
            "source_file": source,
            "feature_index": index,
        })

    frame = pl.DataFrame(rows, schema=BOUNDARY_SCHEMA)
    if frame.height == 0:
        raise ExtractError(f"{source} contains no features; export at least one polygon of layer {layer.name!r}")
    if not layer.dissolve:
        repeated = frame.filter(pl.col("feature_id").is_duplicated())["feature_id"].unique().sort().to_list()
        if repeated:
            raise ExtractError(
                f"{source}: ids of layer {layer.name!r} are not unique: {repeated[:10]}. Set "
                f"dissolve: true on the layer to merge the features that share an id, or pick "
                f"another id_property")
    return frame


def check_extracts_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ExtractError(f"extracts folder not found: {folder}; set extracts_folder in the run "
                           f"file to the folder that holds the portal exports")


def read_layer_file(folder: Path, layer: BoundaryLayerConfig) -> BoundaryTable:
    """Read one layer from its GeoJSON file in the extracts folder."""
    check_extracts_folder(folder)
    if layer.file is None:
        raise ExtractError(f"boundary layer {layer.name!r} has no file; add `file` to the layer in "
                           f"the jurisdiction file, or run with a live source")
    path = folder / layer.file
    if not path.is_file():
        raise ExtractError(f"boundary file of layer {layer.name!r} not found: {path}; set the "
                           f"layer's file in the jurisdiction file or add the GeoJSON to the "
                           f"extracts folder")

    collection = load_feature_collection(path.read_bytes(), str(path))
    frame = parse_feature_collection(collection, layer, LayerProperties.of_file(layer), path.name)
    table = BoundaryTable(layer=layer.name, frame=frame, source=str(path))
    logger.info("read %d features of layer %s from %s (geometry problems: %s)", frame.height,
                layer.name, path, table.problem_counts() or "none")
    return table
