{{ config(materialized="table") }}
-- Typed 311 service requests, one row per (request_type, request_id). Of the rows that share a
-- request, the one with the latest updated_on wins, and then the one that appears last in the
-- extracts (by source_file, then source_row). In the Chicago sanitation export the later row of a
-- repeated request number always has the later completion date.
-- created_date is the local calendar date of creation. created_at_utc is set only for datasets
-- whose creation times carry a time of day, so a date-only request never gets an invented hour.
with typed as (
    select
        dataset,
        request_type,
        trim(id) as request_id,
        {{ request_timestamp('created_on') }} as created_at_local,
        {{ request_timestamp('closed_on') }} as closed_at_local,
        {{ request_timestamp('updated_on') }} as updated_at_local,
        {{ request_is_date_only() }} as is_date_only,
        nullif(trim(status), '') as status,
        {{ request_is_duplicate() }} as is_duplicate,
        try_cast(nullif(trim(latitude), '') as double) as latitude,
        try_cast(nullif(trim(longitude), '') as double) as longitude,
        source_file,
        source_row
    from {{ source('raw', 'service_requests') }}
    where nullif(trim(id), '') is not null
),

latest as (
    select *
    from typed
    qualify row_number() over (
        partition by request_type, request_id
        order by updated_at_local desc nulls last, source_file desc, source_row desc
    ) = 1
)

select
    request_type,
    request_id,
    dataset,
    cast(created_at_local as date) as created_date,
    case when not is_date_only then {{ local_to_utc('created_at_local') }} end as created_at_utc,
    cast(closed_at_local as date) as closed_date,
    {{ local_to_utc('updated_at_local') }} as updated_at_utc,
    is_date_only,
    status,
    is_duplicate,
    latitude,
    longitude,
    source_file,
    source_row
from latest
