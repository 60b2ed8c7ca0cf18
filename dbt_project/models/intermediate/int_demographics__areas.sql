-- Demographics per feature of a boundary layer. Rows of one table that share an area_id (block
-- groups of one tract) are aggregated: counts are summed, and per-capita income and poverty are
-- averaged with population weights. That average is exact for per-capita income (total income
-- over total population) and approximate for poverty_percent, whose base may be households.
-- Each field of a layer comes from one table (the jurisdiction file is checked for that), so the
-- tables of a layer combine without conflicts. A layer's population property, when it has one,
-- fills in areas that no table gives a population. "other" is population minus the four groups
-- when a table does not map it. in_layer is false for areas that are not features of their layer,
-- such as the suburban tracts of a county-wide ACS file.
with per_table as (
    select
        table_name,
        layer,
        area_id,
        sum(population) as population,
        sum(nh_white) as nh_white,
        sum(nh_black) as nh_black,
        sum(hispanic) as hispanic,
        sum(nh_asian) as nh_asian,
        sum(other) as other,
        case
            when count(*) = 1 then any_value(per_capita_income)
            else sum(per_capita_income * population)
                 / nullif(sum(case when per_capita_income is not null then population end), 0)
        end as per_capita_income,
        case
            when count(*) = 1 then any_value(poverty_percent)
            else sum(poverty_percent * population)
                 / nullif(sum(case when poverty_percent is not null then population end), 0)
        end as poverty_percent
    from {{ ref('stg_demographics__rows') }}
    group by table_name, layer, area_id
),

per_layer as (
    select
        layer,
        area_id,
        max(population) as population,
        max(nh_white) as nh_white,
        max(nh_black) as nh_black,
        max(hispanic) as hispanic,
        max(nh_asian) as nh_asian,
        max(other) as other,
        max(per_capita_income) as per_capita_income,
        max(poverty_percent) as poverty_percent,
        string_agg(distinct table_name, ', ' order by table_name) as source_tables
    from per_table
    group by layer, area_id
),

boundary_populations as (
    select layer, feature_id as area_id, population
    from {{ ref('int_boundaries__features') }}
    where population is not null
),

combined as (
    select
        coalesce(tables.layer, boundaries.layer) as layer,
        coalesce(tables.area_id, boundaries.area_id) as area_id,
        coalesce(tables.population, boundaries.population) as population,
        case
            when tables.population is not null then 'table'
            when boundaries.population is not null then 'boundary_property'
        end as population_source,
        tables.nh_white,
        tables.nh_black,
        tables.hispanic,
        tables.nh_asian,
        coalesce(
            tables.other,
            coalesce(tables.population, boundaries.population)
                - tables.nh_white - tables.nh_black - tables.hispanic - tables.nh_asian
        ) as other,
        tables.per_capita_income,
        tables.poverty_percent,
        tables.source_tables
    from per_layer as tables
    full outer join boundary_populations as boundaries
        on tables.layer = boundaries.layer and tables.area_id = boundaries.area_id
)

select
    combined.layer,
    combined.area_id,
    features.feature_id is not null as in_layer,
    combined.population,
    combined.population_source,
    combined.nh_white,
    combined.nh_black,
    combined.hispanic,
    combined.nh_asian,
    combined.other,
    combined.nh_white / nullif(combined.population, 0) as nh_white_share,
    combined.nh_black / nullif(combined.population, 0) as nh_black_share,
    combined.hispanic / nullif(combined.population, 0) as hispanic_share,
    combined.nh_asian / nullif(combined.population, 0) as nh_asian_share,
    combined.other / nullif(combined.population, 0) as other_share,
    combined.per_capita_income,
    combined.poverty_percent,
    combined.source_tables
from combined
left join {{ ref('int_boundaries__features') }} as features
    on features.layer = combined.layer and features.feature_id = combined.area_id
