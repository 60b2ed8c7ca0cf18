-- 311 requests per cell, local creation date and request type, for days with at least one
-- request. Duplicates (a repeat report of an earlier request) and quarantined requests are left
-- out. A day's count is known only after the day ends, so features must use earlier days only.
select
    cell_id,
    created_date as local_date,
    request_type,
    count(*) as requests
from {{ ref('int_requests__located') }}
where quarantine_reason is null
    and not is_duplicate
group by cell_id, created_date, request_type
order by cell_id, local_date, request_type
