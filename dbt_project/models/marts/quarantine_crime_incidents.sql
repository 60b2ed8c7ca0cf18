-- Incidents left out of the counts, each with the reason, so that nothing is dropped silently.
select
    incident_id,
    quarantine_reason,
    occurred_at_utc,
    offense_code,
    category,
    latitude,
    longitude,
    source_file,
    source_row
from {{ ref('int_incidents__located') }}
where quarantine_reason is not null
order by quarantine_reason, incident_id
