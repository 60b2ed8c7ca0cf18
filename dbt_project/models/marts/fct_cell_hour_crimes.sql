-- Crime counts per cell and UTC hour, for cell-hours with at least one located incident.
-- Incidents are counted by distinct case number, because homicides carry one row per victim.
-- Join to cell_hour_spine for the complete panel with zeros.
select
    cell_id,
    hour,
    count(distinct coalesce(case_number, incident_id)) as crime_count,
    count(distinct case when is_violent then coalesce(case_number, incident_id) end) as violent_count
from {{ ref('int_incidents__located') }}
where quarantine_reason is null
group by cell_id, hour
order by cell_id, hour
