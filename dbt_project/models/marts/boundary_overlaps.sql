-- Area shared by features of the same layer, per layer, in square meters. The features of a
-- layer should partition the city, so anything above digitizing slivers means a broken file.
-- Features that only touch along a border share no area.
with pairs as (
    select
        a.layer,
        ST_Area(ST_Intersection(a.geom_equal_area, b.geom_equal_area)) as overlap_m2
    from {{ ref('int_boundaries__features') }} as a
    join {{ ref('int_boundaries__features') }} as b
        on a.layer = b.layer
        and a.feature_id < b.feature_id
        and ST_Intersects(a.geom, b.geom)
),

layers as (
    select distinct layer
    from {{ ref('int_boundaries__features') }}
)

select
    layers.layer,
    count(pairs.overlap_m2) filter (where pairs.overlap_m2 > 0) as overlapping_pairs,
    coalesce(sum(pairs.overlap_m2), 0) as overlap_m2
from layers
left join pairs on pairs.layer = layers.layer
group by layers.layer
order by layers.layer
