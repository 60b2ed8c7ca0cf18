-- The forecasting cells: census tracts or grid cells, with equal-area size in km².
select
    cell_id,
    area_km2,
    centroid_lon,
    centroid_lat,
    ST_AsText(geom) as geometry_wkt
from {{ ref('stg_cells') }}
order by cell_id
