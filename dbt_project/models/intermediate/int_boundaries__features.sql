-- The usable features of every boundary layer, one row per layer and feature id. Features that
-- share an id (a layer with dissolve: true, such as beats merged into police districts) are
-- merged into one polygon, and their populations are summed.
with usable as (
    select *
    from {{ ref('stg_boundaries__features') }}
    where quarantine_reason is null
),

merged as (
    select
        layer,
        any_value(kind) as kind,
        feature_id,
        min(name) as name,
        sum(population) as population,
        case when count(*) = 1 then any_value(geom) else ST_Union_Agg(geom) end as geom,
        bool_or(was_repaired) as was_repaired,
        count(*) as source_features
    from usable
    group by layer, feature_id
),

projected as (
    select
        *,
        {{ equal_area('geom') }} as geom_equal_area
    from merged
)

select
    layer,
    kind,
    feature_id,
    name,
    population,
    geom,
    geom_equal_area,
    ST_Area(geom_equal_area) / 1e6 as area_km2,
    ST_X(ST_Centroid(geom)) as centroid_lon,
    ST_Y(ST_Centroid(geom)) as centroid_lat,
    was_repaired,
    source_features
from projected
