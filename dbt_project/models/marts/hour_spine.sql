-- Every UTC hour from the jurisdiction's data start through the last hour with an incident.
-- Keyed by UTC, so no hour is missing or doubled at daylight-saving changes. Incidents quarantined
-- for their time (future_time, before_data_start) do not set the end, so a mistyped year cannot
-- stretch the spine. An incident quarantined for its place does, because its time is valid.
select hour
from generate_series(
    timestamp '{{ var("data_start") }}',
    (
        select max(hour)
        from {{ ref('int_incidents__located') }}
        where quarantine_reason is null or quarantine_reason not in ('future_time', 'before_data_start')
    ),
    interval 1 hour
) as series(hour)
