{{ config(materialized='view') }}
-- One row per staged incident with the fields the data input audit measures: the audit category
-- (the portal's primary type, else the offense code), the local clock of the event, the heaping
-- and daylight-saving flags, the location status and the update lag. Times are read on the local
-- clock, because heaping is a habit of the people who enter the wall-clock time.
select
    incident_id,
    case_number,
    coalesce(primary_type, offense_code, '(missing)') as audit_category,
    offense_code,
    category,
    offense_code is null as is_missing_offense_code,
    is_unknown_code and offense_code is not null as is_unknown_code,
    occurred_at_utc is null as is_missing_time,
    occurred_at_local,
    date_trunc('month', occurred_at_local) as local_month,
    year(occurred_at_local) as local_year,
    hour(occurred_at_local) as local_hour,
    isodow(occurred_at_local) as local_dow,
    date_trunc('day', occurred_at_local) = occurred_at_local as is_midnight,
    date_trunc('hour', occurred_at_local) = occurred_at_local as is_on_hour,
    day(occurred_at_local) = 1 as is_first_of_month,
    ts_nonexistent,
    ts_ambiguous,
    location_status,
    coordinates_swapped,
    quarantine_reason,
    cell_id,
{%- if var('audit_area_field') %}
    {{ var('audit_area_field') }} as area,
{%- else %}
    cast(null as varchar) as area,
{%- endif %}
    beat,
    district,
    date_diff('second', occurred_at_utc, updated_at_utc) / 86400.0 as update_lag_days
from {{ ref('int_incidents__located') }}
