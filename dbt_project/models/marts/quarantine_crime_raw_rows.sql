-- Raw crime rows that staging cannot key, each with the rule it fails and the reason, so that
-- nothing is dropped silently: a row without an id cannot be deduplicated or revised.
select
    'id_present' as quarantine_rule,
    'missing_id' as quarantine_reason,
    source_file,
    source_row,
    date,
    offense_code,
    latitude,
    longitude
from {{ source('raw', 'crime_incidents') }}
where nullif(trim(id), '') is null
order by source_file, source_row
