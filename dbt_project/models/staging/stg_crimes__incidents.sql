{{ config(materialized="table") }}
-- A table rather than a view: the local-to-UTC conversion is the costly step, and the data tests would repeat it.
-- Typed crime incidents, one row per incident id: the version with the latest updated_on wins,
-- and ties between identical versions, or a portal without updated_on, keep the row that appears
-- last in the extracts.
--
-- crime_time_basis gives the time basis of the extract's times. 'local' (Chicago's Date): wall-clock times
-- in the jurisdiction's zone, converted to UTC by local_to_utc's documented DST rule. 'utc'
-- (Philadelphia's dispatch_date_time): instants that carry an offset, so there is no ambiguous or
-- nonexistent hour, and the local time is derived from them.
--
-- arrest is the portal's Arrest flag: 'true' or 'false' in any case, blank for unknown. Any other
-- value stages as NULL and is kept in invalid_arrest_value, which the warn-severity test
-- crime_arrest_values_parsed lists. A raw table stored before ingest mapped arrest has no such
-- column, so every arrest is NULL until the crimes are ingested again.
{%- set raw_columns = [] %}
{%- if execute %}
    {%- set raw_columns = adapter.get_columns_in_relation(source('raw', 'crime_incidents'))
                          | map(attribute='name') | map('lower') | list %}
    {%- if 'arrest' not in raw_columns %}
        {{- log("raw.crime_incidents has no arrest column, so every staged arrest is NULL. Materialize "
                "raw_crime_incidents again to fill it.", info=True) }}
    {%- endif %}
{%- endif %}
with typed as (
    select
        trim(id) as incident_id,
        nullif(trim(case_number), '') as case_number,
        -- Extract rows carry the CSV format and rows pulled from the Socrata API its floating
        -- timestamps. Ingest rejects a value that parses with neither, and a NULL left here
        -- fails the not_null test on occurred_at_utc. Both columns are naive timestamps, local
        -- or UTC as crime_time_basis says; a portal without updated_on leaves updated_at NULL.
        {{ parse_crime_time('date') }} as occurred_at_parsed,
        {{ parse_crime_time('updated_on') }} as updated_at_parsed,
        nullif(trim(iucr), '') as iucr,
        nullif(trim(primary_type), '') as primary_type,
        nullif(trim(location_description), '') as location_description,
        upper(nullif(trim(offense_code), '')) as offense_code,
        nullif(trim(beat), '') as beat,
        nullif(trim(district), '') as district,
        nullif(trim(community_area), '') as community_area,
        try_cast(nullif(trim(latitude), '') as double) as latitude,
        try_cast(nullif(trim(longitude), '') as double) as longitude,
{%- if 'arrest' in raw_columns %}
        nullif(trim(arrest), '') as arrest_text,
{%- else %}
        null::varchar as arrest_text,
{%- endif %}
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
        order by updated_at_parsed desc nulls last, source_file desc, source_row desc
    ) = 1
)
{%- if var('crime_time_basis') != 'utc' %},

-- The ICU time-zone conversion is the costly step, so it runs once per distinct local hour and
-- joins back. local_hour_utc_shifts documents the guard that keeps the result equal to local_to_utc.
local_hours as (
    select date_trunc('hour', occurred_at_parsed) as local_hour
    from latest
    where occurred_at_parsed is not null
    union
    select date_trunc('hour', updated_at_parsed) as local_hour
    from latest
    where updated_at_parsed is not null
),

hour_shifts as (
    {{ local_hour_utc_shifts('local_hours') }}
)
{%- endif %}

select
    incident_id,
    case_number,
{%- if var('crime_time_basis') == 'utc' %}
    {{ utc_to_local('occurred_at_parsed') }} as occurred_at_local,
    occurred_at_parsed as occurred_at_utc,
    false as ts_ambiguous,
    false as ts_nonexistent,
    updated_at_parsed as updated_at_utc,
{%- else %}
    occurred_at_parsed as occurred_at_local,
    {{ local_to_utc_by_hour('occurred_at_parsed', 'occurred_hour') }} as occurred_at_utc,
    {{ is_ambiguous_local_by_hour('occurred_at_parsed', 'occurred_hour') }} as ts_ambiguous,
    {{ is_nonexistent_local_by_hour('occurred_at_parsed', 'occurred_hour') }} as ts_nonexistent,
    {{ local_to_utc_by_hour('updated_at_parsed', 'updated_hour') }} as updated_at_utc,
{%- endif %}
    iucr,
    primary_type,
    location_description,
    offense_code,
    beat,
    district,
    community_area,
    latitude,
    longitude,
    case lower(arrest_text) when 'true' then true when 'false' then false end as arrest,
    case when lower(arrest_text) not in ('true', 'false') then arrest_text end as invalid_arrest_value,
    source_file,
    source_row
from latest
{%- if var('crime_time_basis') != 'utc' %}
left join hour_shifts as occurred_hour
    on occurred_hour.local_hour = date_trunc('hour', latest.occurred_at_parsed)
left join hour_shifts as updated_hour
    on updated_hour.local_hour = date_trunc('hour', latest.updated_at_parsed)
{%- endif %}
