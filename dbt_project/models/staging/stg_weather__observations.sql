-- Every NOAA report of the configured stations, typed, with its time converted from the station's
-- Local Standard Time to UTC by the station's fixed offset. LST never observes daylight saving, so
-- no local time is skipped or repeated and no zone rules apply. Minutes are kept.
--
-- Values: see the lcd_number macro. Trace precipitation ("T", or a layout's other trace values)
-- is 0.0 inches with precipitation_trace set. A blank precipitation value is NULL, except in
-- layouts that leave dry hours blank, where it is 0.0 with precipitation_blank set. A variable
-- wind direction ("VRB") is NULL with wind_variable set; the wind speed is kept.
with stations as (
    {{ weather_stations_relation() }}
),

report_types as (
    {{ weather_report_types_relation() }}
),

trace_values as (
    {{ weather_trace_values_relation() }}
),

reports as (
    select
        raw.*,
        trim(raw.report_type) as report_type_trimmed,
        nullif(trim(raw.precipitation_in), '') as precipitation_text,
        exists (
            select 1 from trace_values
            where trace_values.layout = raw.layout and trace_values.trace_value = trim(raw.precipitation_in)
        ) as is_trace,
        exists (
            select 1 from trace_values
            where trace_values.layout = raw.layout and trace_values.trace_value = trim(raw.daily_precipitation_in)
        ) as is_daily_trace
    from {{ source('raw', 'weather_observations') }} as raw
),

typed as (
    select
        reports.station,
        stations.station_rank,
        {{ weather_parse_lst('reports.date', 'reports.layout') }} as observed_at_lst,
        stations.utc_offset_minutes,
        reports.report_type_trimmed as report_type,
        coalesce(report_types.report_class, 'unknown') as report_class,

        {{ lcd_number('reports.temperature_f') }} as temperature_f,
        {{ lcd_is_suspect('reports.temperature_f') }} as temperature_suspect,
        {{ lcd_number('reports.relative_humidity') }} as relative_humidity,
        {{ lcd_is_suspect('reports.relative_humidity') }} as relative_humidity_suspect,
        {{ lcd_number('reports.wind_speed_mph') }} as wind_speed_mph,
        {{ lcd_is_suspect('reports.wind_speed_mph') }} as wind_speed_suspect,
        {{ lcd_number('reports.wind_direction') }} as wind_direction_deg,
        coalesce(trim(reports.wind_direction) = 'VRB', false) as wind_variable,

        case
            when reports.is_trace then 0.0
            when reports.precipitation_text is null
                and reports.layout in {{ weather_blank_precipitation_zero_layouts() }} then 0.0
            else {{ lcd_number('reports.precipitation_in') }}
        end as precipitation_in,
        reports.is_trace as precipitation_trace,
        {{ lcd_is_suspect('reports.precipitation_in') }} as precipitation_suspect,
        coalesce(reports.precipitation_text = '*', false) as precipitation_deferred,
        coalesce(reports.precipitation_text is null
            and reports.layout in {{ weather_blank_precipitation_zero_layouts() }}, false) as precipitation_blank,

        case when reports.is_daily_trace then 0.0 else {{ lcd_number('reports.daily_precipitation_in') }} end
            as daily_precipitation_in,
        reports.is_daily_trace as daily_precipitation_trace,

        {{ lcd_is_unparsed('reports.temperature_f') }}
            or {{ lcd_is_unparsed('reports.relative_humidity') }}
            or {{ lcd_is_unparsed('reports.wind_speed_mph') }}
            or {{ lcd_is_unparsed('reports.wind_direction', ['VRB']) }}
            or ({{ lcd_is_unparsed('reports.precipitation_in') }} and not reports.is_trace)
            or ({{ lcd_is_unparsed('reports.daily_precipitation_in') }} and not reports.is_daily_trace)
            as has_unparsed_value,

        reports.metar_time_group,
        reports.layout,
        reports.source_file,
        reports.source_row
    from reports
    inner join stations
        on stations.station = reports.station
    left join report_types
        on report_types.layout = reports.layout and report_types.report_type = reports.report_type_trimmed
)

select
    station,
    station_rank,
    observed_at_lst,
    observed_at_lst - to_minutes(utc_offset_minutes) as observed_at_utc,
    date_trunc('hour', observed_at_lst - to_minutes(utc_offset_minutes)) as hour,
    report_type,
    report_class,
    temperature_f,
    temperature_suspect,
    relative_humidity,
    relative_humidity_suspect,
    wind_speed_mph,
    wind_speed_suspect,
    wind_direction_deg,
    wind_variable,
    precipitation_in,
    precipitation_trace,
    precipitation_suspect,
    precipitation_deferred,
    precipitation_blank,
    daily_precipitation_in,
    daily_precipitation_trace,
    has_unparsed_value,
    metar_time_group,
    -- The METAR group ddhhmm (UTC) of the report's remark, compared with the converted time.
    case
        when metar_time_group is not null
            then strftime(observed_at_lst - to_minutes(utc_offset_minutes), '%d%H%M') = metar_time_group
    end as metar_time_matches,
    layout,
    source_file,
    source_row
from typed
