-- Every usable feature of every boundary layer (tracts, community areas, beats, districts...)
-- with its equal-area size, centroid and polygon as WKT, for maps and reports.
select
    layer,
    kind,
    feature_id,
    name,
    population,
    area_km2,
    centroid_lon,
    centroid_lat,
    was_repaired,
    source_features,
    ST_AsText(geom) as geometry_wkt
from {{ ref('int_boundaries__features') }}
order by layer, feature_id
