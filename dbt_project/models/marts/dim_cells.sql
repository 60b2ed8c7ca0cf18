-- The forecasting cells: census tracts, grid cells or H3 cells, with equal-area size in km² and
-- population where the demographics give it. Each cell also gets the census tract, community
-- area, police beat and police district that contain its centroid, or else overlap it most.
-- They are null where the jurisdiction has no such layer or the cell lies outside it.
with containing as (
    select
        cell_id,
        max(feature_id) filter (where kind = 'census_tract') as census_tract_id,
        max(feature_id) filter (where kind = 'community_area') as community_area_id,
        max(feature_id) filter (where kind = 'police_beat') as police_beat_id,
        max(feature_id) filter (where kind = 'police_district') as police_district_id
    from {{ ref('int_cells__containing_features') }}
    group by cell_id
)

select
    cells.cell_id,
    cells.area_km2,
    cells.centroid_lon,
    cells.centroid_lat,
    demographics.population,
    containing.census_tract_id,
    containing.community_area_id,
    containing.police_beat_id,
    containing.police_district_id,
    ST_AsText(cells.geom) as geometry_wkt
from {{ ref('stg_cells') }} as cells
left join {{ ref('int_cells__demographics') }} as demographics
    on demographics.cell_id = cells.cell_id
left join containing
    on containing.cell_id = cells.cell_id
order by cells.cell_id
