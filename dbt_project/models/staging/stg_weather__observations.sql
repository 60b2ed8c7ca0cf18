-- Routine hourly weather reports (FM-15 at airports) with times converted from Local Standard
-- Time, a fixed offset all year, to UTC. Special reports (FM-16) carry running precipitation
-- totals and summary rows (SOD) carry daily values, so neither is used for hourly values.
select
    trim(station) as station,
    strptime(date, '{{ var("weather_timestamp_format") }}') as observed_at_lst,
    strptime(date, '{{ var("weather_timestamp_format") }}')
        - to_minutes(cast(round({{ var("weather_utc_offset_hours") }} * 60) as integer)) as observed_at_utc,
    trim(report_type) as report_type,
    {{ lcd_number('temperature_f') }} as temperature_f,
    {{ lcd_number('relative_humidity') }} as relative_humidity,
    {{ lcd_number('wind_speed_mph') }} as wind_speed_mph,
    {{ lcd_number('precipitation_in') }} as precipitation_in,
    coalesce(trim(precipitation_in) = 'T', false) as precipitation_is_trace,
    {{ lcd_is_suspect('precipitation_in') }} or {{ lcd_is_suspect('temperature_f') }} as is_suspect,
    source_file,
    source_row
from {{ source('raw', 'weather_observations') }}
where trim(report_type) = '{{ var("weather_routine_report_type") }}'
