-- For each cell and each boundary layer, the feature that contains the cell's centroid. A point
-- on a shared border goes to the smallest feature_id. When no feature contains the centroid (a
-- concave cell, or a tract that reaches beyond the city's community areas), the cell takes the
-- feature it overlaps most, and contains_centroid is false. A cell that overlaps no feature of a
-- layer has no row for that layer. The cells layer itself maps each cell to its own feature.
{% set cells_layer = var('cells_layer') %}
with cells as (
    select
        cell_id,
        geom,
        ST_Centroid(geom) as centroid
    from {{ ref('stg_cells') }}
),

features as (
    select layer, kind, feature_id, geom
    from {{ ref('int_boundaries__features') }}
    {% if cells_layer is not none %}
    where layer != '{{ cells_layer }}'
    {% endif %}
),

centroid_matches as (
    select cells.cell_id, features.layer, features.kind, features.feature_id
    from cells
    join features on ST_Contains(features.geom, cells.centroid)
    qualify row_number() over (partition by cells.cell_id, features.layer order by features.feature_id) = 1
),

unmatched as (
    select cells.cell_id, cells.geom, layers.layer
    from cells
    cross join (select distinct layer from features) as layers
    where not exists (
        select 1 from centroid_matches
        where centroid_matches.cell_id = cells.cell_id and centroid_matches.layer = layers.layer
    )
),

overlap_matches as (
    select unmatched.cell_id, features.layer, features.kind, features.feature_id
    from unmatched
    join features
        on features.layer = unmatched.layer
        and ST_Intersects(features.geom, unmatched.geom)
    -- Degrees squared rank the overlaps of one small cell as well as square meters would.
    qualify row_number() over (
        partition by unmatched.cell_id, features.layer
        order by ST_Area(ST_Intersection(features.geom, unmatched.geom)) desc, features.feature_id
    ) = 1
)

select cell_id, layer, kind, feature_id, true as contains_centroid
from centroid_matches
union all
select cell_id, layer, kind, feature_id, false as contains_centroid
from overlap_matches
{% if cells_layer is not none %}
union all
select cells.cell_id, features.layer, features.kind, features.feature_id, true as contains_centroid
from {{ ref('stg_cells') }} as cells
join {{ ref('int_boundaries__features') }} as features
    on features.layer = '{{ cells_layer }}' and features.feature_id = cells.cell_id
{% endif %}
