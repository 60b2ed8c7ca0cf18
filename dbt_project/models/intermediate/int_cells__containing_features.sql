-- For each cell and each boundary layer, the feature that contains the cell's centroid. The
-- centroid of a concave cell can fall outside it, so a cell with no feature around its centroid
-- takes the feature around its point on surface (a point always inside the cell). A point on a
-- shared border goes to the smallest feature_id. The cells layer itself maps each cell to its own
-- feature. A cell outside every feature of a layer has no row for that layer.
{% set cells_layer = var('cells_layer') %}
with cells as (
    select
        cell_id,
        ST_Centroid(geom) as centroid,
        ST_PointOnSurface(geom) as surface_point
    from {{ ref('stg_cells') }}
),

features as (
    select layer, kind, feature_id, geom
    from {{ ref('int_boundaries__features') }}
    {% if cells_layer is not none %}
    where layer != '{{ cells_layer }}'
    {% endif %}
),

matches as (
    select cells.cell_id, features.layer, features.kind, features.feature_id, 1 as rule
    from cells
    join features on ST_Contains(features.geom, cells.centroid)
    union all
    select cells.cell_id, features.layer, features.kind, features.feature_id, 2 as rule
    from cells
    join features on ST_Contains(features.geom, cells.surface_point)
)

select cell_id, layer, kind, feature_id, rule = 1 as contains_centroid
from matches
qualify row_number() over (partition by cell_id, layer order by rule, feature_id) = 1
{% if cells_layer is not none %}
union all
select cells.cell_id, features.layer, features.kind, features.feature_id, true as contains_centroid
from {{ ref('stg_cells') }} as cells
join {{ ref('int_boundaries__features') }} as features
    on features.layer = '{{ cells_layer }}' and features.feature_id = cells.cell_id
{% endif %}
