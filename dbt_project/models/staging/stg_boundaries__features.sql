{{ config(materialized='table') }}
-- One row per delivered boundary feature, typed, with its polygon repaired when it was invalid.
-- Features that cannot be used keep a quarantine_reason and a null geom: the structural problem
-- found at ingest (missing_geometry, not_a_polygon, malformed_coordinates, empty_geometry), or
-- empty_after_repair when MakeValid leaves no area (a ring of collinear points).
with parsed as (
    select
        layer,
        kind,
        feature_id,
        name,
        cast(population as double) as population,
        geometry_problem,
        case when geometry_problem is null then ST_Force2D(ST_GeomFromGeoJSON(geometry_geojson)) end as delivered,
        source_file,
        feature_index
    from {{ source('raw', 'boundaries') }}
),

repaired as (
    select
        *,
        geometry_problem is null and not ST_IsValid(delivered) as was_invalid,
        {{ repaired_polygons('delivered') }} as repaired
    from parsed
)

select
    layer,
    kind,
    feature_id,
    name,
    population,
    case when geometry_problem is null and not ST_IsEmpty(repaired) then repaired end as geom,
    was_invalid and not ST_IsEmpty(repaired) as was_repaired,
    coalesce(geometry_problem, case when ST_IsEmpty(repaired) then 'empty_after_repair' end) as quarantine_reason,
    source_file,
    feature_index
from repaired
