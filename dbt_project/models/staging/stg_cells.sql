-- Spatial cells with geometry, equal-area size and centroid. Invalid polygons are repaired as in
-- stg_boundaries__features (raw_cells has already left out cells with no area after repair).
-- Areas come from EPSG:6933 (WGS 84 / NSIDC EASE-Grid 2.0 Global, an equal-area projection),
-- never from degrees.
with parsed as (
    select
        cell_id,
        ST_Force2D(ST_GeomFromGeoJSON(geometry_geojson)) as delivered
    from {{ source('raw', 'cells') }}
),

repaired as (
    select
        cell_id,
        {{ repaired_polygons('delivered') }} as geom,
        not ST_IsValid(delivered) as was_repaired
    from parsed
)

select
    cell_id,
    geom,
    ST_Area({{ equal_area('geom') }}) / 1e6 as area_km2,
    ST_X(ST_Centroid(geom)) as centroid_lon,
    ST_Y(ST_Centroid(geom)) as centroid_lat,
    ST_IsValid(geom) as is_valid_geometry,
    was_repaired
from repaired
