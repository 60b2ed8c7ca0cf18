-- Population, group counts, income and poverty per cell.
-- Counts come from the demographics counts layer. When the cells are that layer's features, each
-- cell takes its own feature's counts. Otherwise (an H3 grid over tracts) each feature's counts
-- are spread over the cells in proportion to overlapping area: a cell gets
-- sum over features of count * area(cell and feature) / area(feature), in equal-area meters. That
-- assumes people are spread evenly within a feature. Income and poverty come from the income
-- layer's feature that contains the cell's centroid, or else overlaps the cell most.
-- Which models this one reads depends on the layer vars, so its dependencies are declared here
-- for every jurisdiction:
-- depends_on: {{ ref('int_boundaries__features') }}, {{ ref('int_demographics__areas') }}
-- depends_on: {{ ref('int_cells__containing_features') }}
{% set cells_layer = var('cells_layer') %}
{% set counts_layer = var('demographics_counts_layer') %}
{% set income_layer = var('demographics_income_layer') %}
{% set count_fields = ['population', 'nh_white', 'nh_black', 'hispanic', 'nh_asian', 'other'] %}
with cells as (
    select cell_id, geom
    from {{ ref('stg_cells') }}
),

{% if counts_layer is none %}
counts as (
    select
        cell_id,
        {% for field in count_fields %}
        cast(null as double) as {{ field }}{{ "," if not loop.last }}
        {% endfor %}
    from cells
),
{% elif counts_layer == cells_layer %}
counts as (
    select
        cells.cell_id,
        {% for field in count_fields %}
        areas.{{ field }}{{ "," if not loop.last }}
        {% endfor %}
    from cells
    left join {{ ref('int_demographics__areas') }} as areas
        on areas.layer = '{{ counts_layer }}' and areas.area_id = cells.cell_id
),
{% else %}
areas as (
    select
        features.feature_id,
        features.geom_equal_area,
        ST_Area(features.geom_equal_area) as area_m2,
        {% for field in count_fields %}
        areas.{{ field }}{{ "," if not loop.last }}
        {% endfor %}
    from {{ ref('int_boundaries__features') }} as features
    join {{ ref('int_demographics__areas') }} as areas
        on areas.layer = features.layer and areas.area_id = features.feature_id
    where features.layer = '{{ counts_layer }}'
      and ST_Area(features.geom_equal_area) > 0
),

projected_cells as (
    select cell_id, {{ equal_area('geom') }} as geom_equal_area
    from cells
),

pieces as (
    select
        projected_cells.cell_id,
        ST_Area(ST_Intersection(projected_cells.geom_equal_area, areas.geom_equal_area)) / areas.area_m2 as weight,
        {% for field in count_fields %}
        areas.{{ field }}{{ "," if not loop.last }}
        {% endfor %}
    from projected_cells
    join areas on ST_Intersects(projected_cells.geom_equal_area, areas.geom_equal_area)
),

counts as (
    select
        cells.cell_id,
        {% for field in count_fields %}
        sum(pieces.weight * pieces.{{ field }}) as {{ field }}{{ "," if not loop.last }}
        {% endfor %}
    from cells
    left join pieces on pieces.cell_id = cells.cell_id
    group by cells.cell_id
),
{% endif %}

income as (
    select
        cells.cell_id,
        {% if income_layer is none %}
        cast(null as double) as per_capita_income,
        cast(null as double) as poverty_percent
        {% else %}
        areas.per_capita_income,
        areas.poverty_percent
        {% endif %}
    from cells
    {% if income_layer is not none %}
    left join {{ ref('int_cells__containing_features') }} as containing
        on containing.cell_id = cells.cell_id and containing.layer = '{{ income_layer }}'
    left join {{ ref('int_demographics__areas') }} as areas
        on areas.layer = containing.layer and areas.area_id = containing.feature_id
    {% endif %}
)

select
    counts.cell_id,
    {% for field in count_fields %}
    counts.{{ field }},
    {% endfor %}
    counts.nh_white / nullif(counts.population, 0) as nh_white_share,
    counts.nh_black / nullif(counts.population, 0) as nh_black_share,
    counts.hispanic / nullif(counts.population, 0) as hispanic_share,
    counts.nh_asian / nullif(counts.population, 0) as nh_asian_share,
    counts.other / nullif(counts.population, 0) as other_share,
    income.per_capita_income,
    income.poverty_percent
from counts
join income on income.cell_id = counts.cell_id
