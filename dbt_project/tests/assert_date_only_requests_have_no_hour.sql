-- A request of a date-only dataset must have no creation hour, and every other dated request
-- must have one.
select request_type, request_id, is_date_only, created_at_utc
from {{ ref('stg_311__requests') }}
where (is_date_only and created_at_utc is not null)
    or (not is_date_only and created_date is not null and created_at_utc is null)
