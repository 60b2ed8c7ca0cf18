-- Spatial cells with geometry, equal-area size and centroid. Areas come from EPSG:6933
-- (WGS 84 / NSIDC EASE-Grid 2.0 Global, an equal-area projection), never from degrees.
with parsed as (
    select
        cell_id,
        ST_GeomFromGeoJSON(geometry_geojson) as geom
    from {{ source('raw', 'cells') }}
)

select
    cell_id,
    geom,
    ST_Area(ST_Transform(geom, 'EPSG:4326', 'EPSG:6933', always_xy := true)) / 1e6 as area_km2,
    ST_X(ST_Centroid(geom)) as centroid_lon,
    ST_Y(ST_Centroid(geom)) as centroid_lat,
    ST_IsValid(geom) as is_valid_geometry
from parsed
