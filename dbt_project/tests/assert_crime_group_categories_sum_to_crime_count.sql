-- Cell-hours where the category rows of fct_cell_hour_crime_groups do not add up to
-- fct_cell_hour_crimes.crime_count, or where the 'violent' row differs from violent_count.
-- Categories are those of offense_codes, plus 'unknown' for codes the mapping does not list.
with categories as (
    select distinct category as crime_group from {{ source('raw', 'offense_codes') }}
    union
    select 'unknown'
),

per_cell_hour as (
    select
        groups.cell_id,
        groups.hour,
        sum(groups.incidents) filter (where groups.crime_group in (select crime_group from categories))
            as category_incidents,
        coalesce(sum(groups.incidents) filter (where groups.crime_group = 'violent'), 0) as violent_incidents
    from {{ ref('fct_cell_hour_crime_groups') }} as groups
    group by groups.cell_id, groups.hour
)

select
    coalesce(crimes.cell_id, per_cell_hour.cell_id) as cell_id,
    coalesce(crimes.hour, per_cell_hour.hour) as hour,
    crimes.crime_count,
    per_cell_hour.category_incidents,
    crimes.violent_count,
    per_cell_hour.violent_incidents
from {{ ref('fct_cell_hour_crimes') }} as crimes
full outer join per_cell_hour
    on crimes.cell_id = per_cell_hour.cell_id
    and crimes.hour = per_cell_hour.hour
where crimes.crime_count is distinct from per_cell_hour.category_incidents
    or crimes.violent_count is distinct from per_cell_hour.violent_incidents
