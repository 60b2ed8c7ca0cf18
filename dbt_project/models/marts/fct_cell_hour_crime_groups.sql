-- Incidents per cell, UTC hour and crime group, for cell-hours with at least one incident.
-- Each located incident counts once under its category and once under each of its offense
-- groups. So crime_group contains both kinds of name, as JurisdictionConfig.crime_groups lists
-- them. A code that offense_codes does not list counts under 'unknown'. Incidents are counted
-- by distinct case number, because homicides carry one row per victim.
--
-- Per cell-hour, the rows whose crime_group is a category sum to fct_cell_hour_crimes.crime_count,
-- and the 'violent' row equals its violent_count (the dbt tests below the model check both).
-- NOTE: the sum holds only while no name is both a category of one code and a group of another.
with named as (
    select
        cell_id,
        hour,
        coalesce(case_number, incident_id) as case_key,
        list_distinct(list_prepend(category, offense_groups)) as crime_groups
    from {{ ref('int_incidents__located') }}
    where quarantine_reason is null
),

exploded as (
    select cell_id, hour, case_key, unnest(crime_groups) as crime_group
    from named
)

select
    cell_id,
    hour,
    crime_group,
    count(distinct case_key) as incidents
from exploded
group by cell_id, hour, crime_group
order by cell_id, hour, crime_group
