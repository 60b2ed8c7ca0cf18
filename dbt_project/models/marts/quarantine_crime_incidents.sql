-- Incidents left out of the counts, each with the rule it fails and the reason, so that nothing is
-- dropped silently.
select
    incident_id,
    case quarantine_reason
        when 'future_time' then 'time_not_after_extract'
        when 'before_data_start' then 'time_on_or_after_data_start'
        when 'missing_coordinates' then 'coordinates_present'
        when 'zero_coordinates' then 'coordinates_not_zero'
        when 'outside_bounding_box' then 'inside_bounding_box'
        when 'outside_cells' then 'inside_cells'
    end as quarantine_rule,
    quarantine_reason,
    occurred_at_utc,
    offense_code,
    category,
    latitude,
    longitude,
    coordinates_swapped,
    source_file,
    source_row
from {{ ref('int_incidents__located') }}
where quarantine_reason is not null
order by quarantine_reason, incident_id
