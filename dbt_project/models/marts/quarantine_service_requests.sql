-- 311 requests left out of the daily counts for a reason other than being a duplicate, so that
-- nothing is dropped silently.
select
    request_type,
    request_id,
    quarantine_reason,
    created_date,
    status,
    is_duplicate,
    latitude,
    longitude,
    source_file,
    source_row
from {{ ref('int_requests__located') }}
where quarantine_reason is not null
order by quarantine_reason, request_type, request_id
