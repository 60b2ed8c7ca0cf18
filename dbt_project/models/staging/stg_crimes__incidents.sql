{{ config(materialized="table") }}
-- A table rather than a view: the local-to-UTC conversion is the costly step, and the data tests would repeat it.
-- Typed crime incidents, one row per incident id: the version with the latest updated_on wins,
-- and ties between identical versions keep the row that appears last in the extracts.
with typed as (
    select
        trim(id) as incident_id,
        nullif(trim(case_number), '') as case_number,
        -- Extract rows carry the CSV format and rows pulled from the Socrata API its floating
        -- timestamps, both local wall-clock times. Ingest rejects a value that parses with neither,
        -- and a NULL left here fails the not_null tests on occurred_at_utc and updated_at_utc.
        coalesce(
            try_strptime(date, '{{ var("crime_timestamp_format") }}'),
            try_strptime(date, '{{ var("crime_api_timestamp_format") }}')
        ) as occurred_at_local,
        coalesce(
            try_strptime(updated_on, '{{ var("crime_timestamp_format") }}'),
            try_strptime(updated_on, '{{ var("crime_api_timestamp_format") }}')
        ) as updated_at_local,
        nullif(trim(iucr), '') as iucr,
        nullif(trim(primary_type), '') as primary_type,
        nullif(trim(location_description), '') as location_description,
        upper(nullif(trim(fbi_code), '')) as fbi_code,
        nullif(trim(beat), '') as beat,
        nullif(trim(district), '') as district,
        nullif(trim(community_area), '') as community_area,
        try_cast(nullif(trim(latitude), '') as double) as latitude,
        try_cast(nullif(trim(longitude), '') as double) as longitude,
        source_file,
        source_row
    from {{ source('raw', 'crime_incidents') }}
    where nullif(trim(id), '') is not null
),

latest as (
    select *
    from typed
    qualify row_number() over (
        partition by incident_id
        order by updated_at_local desc, source_file desc, source_row desc
    ) = 1
)

select
    incident_id,
    case_number,
    occurred_at_local,
    {{ local_to_utc('occurred_at_local') }} as occurred_at_utc,
    {{ is_ambiguous_local('occurred_at_local') }} as ts_ambiguous,
    {{ is_nonexistent_local('occurred_at_local') }} as ts_nonexistent,
    {{ local_to_utc('updated_at_local') }} as updated_at_utc,
    iucr,
    primary_type,
    location_description,
    fbi_code,
    beat,
    district,
    community_area,
    latitude,
    longitude,
    source_file,
    source_row
from latest
