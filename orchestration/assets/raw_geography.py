"""Raw geography (group ``raw``): boundary layers, the forecasting cells and demographics.

``raw_boundaries`` stores every feature of every configured layer as delivered, with the
structural problem of its geometry when it has one (see ``orchestration.geography``).
``raw_cells`` derives the forecasting cells from it: the usable features of the cells layer, or
an H3 grid over the union of a layer or over the bounding box. ``raw_demographics`` stores the
configured demographic tables with canonical field names. Each asset replaces its table, so
re-ingesting the same files changes nothing. A jurisdiction without layers or tables still gets
the tables, empty, so that the dbt models build.
"""

import json
from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.assets.raw import store_raw_table
from orchestration.geography import BoundaryTable, empty_boundary_frame
from orchestration.h3_grid import bounding_box_geometry, h3_grid
from orchestration.ingest import ExtractError
from orchestration.jurisdiction import JurisdictionConfig
from orchestration.resources import RiskcastResource
from orchestration.sources.boundaries import BoundarySource
from orchestration.sources.demographics import DemographicsSource, DemographicTable, empty_demographic_frame
from orchestration.warehouse import connect

# The repair that staging applies too (macro repaired_polygons): invalid polygons go through
# ST_MakeValid, and only their polygonal parts are kept.
REPAIRED_GEOMETRY = """
    CASE WHEN ST_IsValid(ST_GeomFromGeoJSON(geometry_geojson)) THEN ST_GeomFromGeoJSON(geometry_geojson)
         ELSE ST_CollectionExtract(ST_MakeValid(ST_GeomFromGeoJSON(geometry_geojson)), 3) END
"""


@dg.asset(group_name="raw", kinds={"duckdb", "parquet"})
def raw_boundaries(context: dg.AssetExecutionContext, riskcast: RiskcastResource,
                   boundary_source: BoundarySource) -> dg.MaterializeResult:
    """Features of every boundary layer (tracts, community areas, police beats...), one row each."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    tables = [boundary_source.read_layer(layer) for layer in jurisdiction.boundaries.layers]
    frame = pl.concat([table.frame for table in tables]) if tables else empty_boundary_frame()
    store_raw_table(settings.warehouse_path, settings.raw_dir, "boundaries", frame)

    invalid = count_invalid_polygons(settings.warehouse_path)
    summary = [layer_summary(table, *invalid.get(table.layer, (0, 0))) for table in tables]
    for row in summary:
        context.log.info(
            f"{jurisdiction.name}: layer {row['layer']}: {row['features']} features "
            f"({row['distinct_ids']} distinct ids) from {row['source']}. "
            f"{row['repaired']} invalid polygons to repair in staging, "
            f"{row['quarantined']} quarantined {row['problems'] or ''}")
    if not tables:
        context.log.warning(f"{jurisdiction.name}: no boundary layers configured, so raw.boundaries is empty")

    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(frame.height),
        "layers": dg.MetadataValue.md(summary_markdown(summary)),
        "invalid_polygons_to_repair": dg.MetadataValue.int(sum(row["repaired"] for row in summary)),
        "quarantined_features": dg.MetadataValue.int(sum(row["quarantined"] for row in summary)),
        "requests": dg.MetadataValue.int(sum(len(table.requests) for table in tables)),
    })


def count_invalid_polygons(warehouse: Path) -> dict[str, tuple[int, int]]:
    """Count, per layer, the structurally sound polygons that are invalid, and those left empty by repair.

    The first count includes the second. Staging repairs the others and quarantines the empty ones.
    """
    with connect(warehouse, read_only=True, spatial=True) as connection:
        rows = connection.execute(f"""
            SELECT layer,
                   count(*) FILTER (WHERE NOT ST_IsValid(ST_GeomFromGeoJSON(geometry_geojson))),
                   count(*) FILTER (WHERE ST_IsEmpty({REPAIRED_GEOMETRY}))
            FROM raw.boundaries
            WHERE geometry_problem IS NULL
            GROUP BY layer
        """).fetchall()
    return {layer: (invalid, empty) for layer, invalid, empty in rows}


def layer_summary(table: BoundaryTable, invalid: int, empty_after_repair: int) -> dict:
    problems = table.problem_counts()
    if empty_after_repair:
        problems["empty_after_repair"] = empty_after_repair
    return {
        "layer": table.layer,
        "features": table.frame.height,
        "distinct_ids": table.frame["feature_id"].n_unique(),
        "repaired": invalid - empty_after_repair,
        "quarantined": sum(problems.values()),
        "problems": ", ".join(f"{name}: {count}" for name, count in sorted(problems.items())),
        "source": table.source,
    }


def summary_markdown(summary: list[dict]) -> str:
    if not summary:
        return "no boundary layers configured"
    lines = ["| layer | features | distinct ids | invalid, repaired in staging | quarantined | source |",
             "|---|---|---|---|---|---|"]
    for row in summary:
        quarantined = f"{row['quarantined']} ({row['problems']})" if row["problems"] else "0"
        lines.append(f"| {row['layer']} | {row['features']} | {row['distinct_ids']} | "
                     f"{row['repaired']} | {quarantined} | {row['source']} |")
    return "\n".join(lines)


@dg.asset(group_name="raw", kinds={"duckdb", "parquet"}, deps=[raw_boundaries])
def raw_cells(context: dg.AssetExecutionContext, riskcast: RiskcastResource) -> dg.MaterializeResult:
    """Polygons of the forecasting cells: the features of the cells layer, or an H3 grid."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    cells = jurisdiction.cells

    if cells.layer is not None:
        frame, left_out = layer_cells(settings.warehouse_path, jurisdiction)
        description = f"layer {cells.layer}"
    else:
        cover = cover_geometry(settings.warehouse_path, jurisdiction)
        frame = h3_grid(cover, cells.h3.resolution, cells.h3.containment)
        left_out = {}
        extent = f"layer {cells.h3.cover_layer}" if cells.h3.cover_layer else "the bounding box"
        description = f"H3 resolution {cells.h3.resolution} over {extent} ({cells.h3.containment} containment)"

    store_raw_table(settings.warehouse_path, settings.raw_dir, "cells", frame)
    context.log.info(f"{jurisdiction.name}: stored {frame.height} cells ({cells.spatial_unit}) from {description}")
    if left_out:
        context.log.warning(f"{jurisdiction.name}: {sum(left_out.values())} features of the cells layer "
                            f"have no usable polygon and are listed in quarantine_boundaries: {left_out}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(frame.height),
        "spatial_unit": dg.MetadataValue.text(cells.spatial_unit),
        "cells_from": dg.MetadataValue.text(description),
        "features_left_out": dg.MetadataValue.int(sum(left_out.values())),
    })


def layer_cells(warehouse: Path, jurisdiction: JurisdictionConfig) -> tuple[pl.DataFrame, dict[str, int]]:
    """Return the cells layer's usable features as cells, and the count left out per reason.

    Raises ``ExtractError`` when no feature of the layer has a usable polygon.
    """
    layer = jurisdiction.cells.layer
    with connect(warehouse, read_only=True, spatial=True) as connection:
        rows = connection.execute(f"""
            SELECT feature_id, geometry_geojson,
                   CASE WHEN geometry_problem IS NOT NULL THEN geometry_problem
                        WHEN ST_IsEmpty({REPAIRED_GEOMETRY}) THEN 'empty_after_repair' END AS problem
            FROM raw.boundaries
            WHERE layer = ?
            ORDER BY feature_index
        """, [layer]).fetchall()

    usable = [(feature_id, geometry) for feature_id, geometry, problem in rows if problem is None]
    problems = [problem for _, _, problem in rows if problem is not None]
    left_out = {problem: problems.count(problem) for problem in sorted(set(problems))}
    if not usable:
        source = jurisdiction.boundaries.layer(layer).file or "its portal dataset"
        raise ExtractError(f"the cells layer {layer!r} ({source}) has no usable polygon: "
                           f"{len(rows)} features, left out {left_out or 'none'}. Fix the boundary "
                           f"file or choose another cells layer")
    frame = pl.DataFrame(usable, schema={"cell_id": pl.String, "geometry_geojson": pl.String}, orient="row")
    return frame, left_out


def cover_geometry(warehouse: Path, jurisdiction: JurisdictionConfig) -> dict:
    """Return the area an H3 grid covers: the union of the cover layer, or the bounding box."""
    layer = jurisdiction.cells.h3.cover_layer
    if layer is None:
        return bounding_box_geometry(jurisdiction.bounding_box)

    with connect(warehouse, read_only=True, spatial=True) as connection:
        union, features = connection.execute(f"""
            SELECT ST_AsGeoJSON(ST_Union_Agg(geom)), count(*)
            FROM (SELECT {REPAIRED_GEOMETRY} AS geom FROM raw.boundaries
                  WHERE layer = ? AND geometry_problem IS NULL)
            WHERE NOT ST_IsEmpty(geom)
        """, [layer]).fetchone()
    if features == 0:
        raise ExtractError(f"the H3 cover layer {layer!r} has no usable polygon, so the grid has no "
                           f"extent. Fix the layer, or remove cells.h3.cover_layer to cover the bounding box")
    return json.loads(union)


@dg.asset(group_name="raw", kinds={"duckdb", "parquet"}, deps=[raw_boundaries])
def raw_demographics(context: dg.AssetExecutionContext, riskcast: RiskcastResource,
                     demographics_source: DemographicsSource) -> dg.MaterializeResult:
    """Demographic table rows (population, race and ethnicity counts, income), keyed by area id."""
    jurisdiction = riskcast.jurisdiction()
    settings = riskcast.settings()
    configured = jurisdiction.demographics.tables if jurisdiction.demographics else []
    tables = [demographics_source.read_table(table) for table in configured]
    frame = pl.concat([table.frame for table in tables]) if tables else empty_demographic_frame()
    store_raw_table(settings.warehouse_path, settings.raw_dir, "demographics", frame)

    matches = count_layer_matches(settings.warehouse_path)
    summary = [table_summary(table, matches.get(table.name, (0, 0))) for table in tables]
    for row in summary:
        context.log.info(
            f"{jurisdiction.name}: demographics table {row['table']}: {row['rows']} rows into "
            f"{row['areas']} areas of layer {row['layer']}, {row['areas_in_layer']} of them in the "
            f"layer; {row['rows_without_id']} rows without an id and {row['blank_rows']} blank rows skipped")
    if not tables:
        context.log.warning(f"{jurisdiction.name}: no demographics tables configured; raw.demographics is empty")

    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(frame.height),
        "tables": dg.MetadataValue.json(summary),
        "rows_without_id": dg.MetadataValue.int(sum(table.rows_without_id for table in tables)),
    })


def count_layer_matches(warehouse: Path) -> dict[str, tuple[int, int]]:
    """Return, per table, its distinct areas and how many of them are features of its layer."""
    with connect(warehouse, read_only=True) as connection:
        rows = connection.execute("""
            WITH areas AS (SELECT DISTINCT table_name, layer, area_id FROM raw.demographics),
                 features AS (SELECT DISTINCT layer, feature_id FROM raw.boundaries)
            SELECT areas.table_name, count(*), count(features.feature_id)
            FROM areas
            LEFT JOIN features ON features.layer = areas.layer AND features.feature_id = areas.area_id
            GROUP BY areas.table_name
        """).fetchall()
    return {name: (areas, matched) for name, areas, matched in rows}


def table_summary(table: DemographicTable, matches: tuple[int, int]) -> dict:
    return {
        "table": table.name,
        "layer": table.frame["layer"][0],
        "file": str(table.path),
        "rows": table.frame.height,
        "areas": matches[0],
        "areas_in_layer": matches[1],
        "rows_without_id": table.rows_without_id,
        "blank_rows": table.blank_rows_skipped,
    }
