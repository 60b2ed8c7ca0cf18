-- Every UTC hour from the jurisdiction's data start through the last hour with an incident.
-- Keyed by UTC, so no hour is missing or doubled at daylight-saving changes.
select hour
from generate_series(
    timestamp '{{ var("data_start") }}',
    (select max(hour) from {{ ref('int_incidents__located') }}),
    interval 1 hour
) as series(hour)
