-- One weather row per UTC hour, from the first hour of the hour spine or of the weather data
-- (whichever is earlier) to the last hour of either. Each variable comes from the first station
-- in the jurisdiction's fallback order whose chosen observation (int_weather__station_hours) has
-- it, and *_station names that station. A variable wind direction ("VRB") counts as a wind
-- direction observation, so it is not replaced by another station's degrees.
-- Hours with no usable report from any station have NULL values and weather_missing = true:
-- missing weather is never filled with zeros. Suspect values are used, with their flags.
{% set stations = var('weather_stations', []) %}
{% set first_station = stations[0]['id'] if stations else '' %}
with station_hours as (
    select * from {{ ref('int_weather__station_hours') }}
),

hours as (
    select hour
    from generate_series(
        least((select min(hour) from {{ ref('hour_spine') }}), (select min(hour) from station_hours)),
        greatest((select max(hour) from {{ ref('hour_spine') }}), (select max(hour) from station_hours)),
        interval 1 hour
    ) as series(hour)
),

per_hour as (
    select
        hour,
        min_by(station, station_rank) as station,
        min_by(observed_at_utc, station_rank) as observed_at_utc,
        count(*) as stations_reporting,

        min_by(temperature_f, station_rank) filter (where temperature_f is not null) as temperature_f,
        min_by(station, station_rank) filter (where temperature_f is not null) as temperature_station,
        min_by(temperature_suspect, station_rank) filter (where temperature_f is not null) as temperature_suspect,

        min_by(relative_humidity, station_rank) filter (where relative_humidity is not null) as relative_humidity,
        min_by(station, station_rank) filter (where relative_humidity is not null) as relative_humidity_station,
        min_by(relative_humidity_suspect, station_rank) filter (where relative_humidity is not null)
            as relative_humidity_suspect,

        min_by(wind_speed_mph, station_rank) filter (where wind_speed_mph is not null) as wind_speed_mph,
        min_by(station, station_rank) filter (where wind_speed_mph is not null) as wind_speed_station,
        min_by(wind_speed_suspect, station_rank) filter (where wind_speed_mph is not null) as wind_speed_suspect,

        min_by(wind_direction_deg, station_rank) filter (where wind_direction_deg is not null or wind_variable)
            as wind_direction_deg,
        min_by(wind_variable, station_rank) filter (where wind_direction_deg is not null or wind_variable)
            as wind_variable,
        min_by(station, station_rank) filter (where wind_direction_deg is not null or wind_variable)
            as wind_direction_station,

        min_by(precipitation_in, station_rank) filter (where precipitation_in is not null) as precipitation_in,
        min_by(station, station_rank) filter (where precipitation_in is not null) as precipitation_station,
        min_by(precipitation_trace, station_rank) filter (where precipitation_in is not null) as precipitation_is_trace,
        min_by(precipitation_suspect, station_rank) filter (where precipitation_in is not null)
            as precipitation_suspect
    from station_hours
    group by hour
)

select
    hours.hour,
    per_hour.station,
    per_hour.observed_at_utc,
    coalesce(per_hour.stations_reporting, 0) as stations_reporting,
    per_hour.temperature_f,
    per_hour.temperature_station,
    per_hour.relative_humidity,
    per_hour.relative_humidity_station,
    per_hour.wind_speed_mph,
    per_hour.wind_speed_station,
    per_hour.wind_direction_deg,
    coalesce(per_hour.wind_variable, false) as wind_variable,
    per_hour.wind_direction_station,
    per_hour.precipitation_in,
    per_hour.precipitation_station,
    coalesce(per_hour.precipitation_is_trace, false) as precipitation_is_trace,
    coalesce(per_hour.temperature_suspect, false) as temperature_suspect,
    coalesce(per_hour.precipitation_suspect, false) as precipitation_suspect,
    coalesce(per_hour.temperature_suspect or per_hour.relative_humidity_suspect or per_hour.wind_speed_suspect
             or per_hour.precipitation_suspect, false) as is_suspect,
    per_hour.precipitation_in is null as precipitation_missing,
    -- True when any value comes from a station other than the first in the fallback order.
    {%- for column in ['temperature_station', 'relative_humidity_station', 'wind_speed_station',
                       'wind_direction_station', 'precipitation_station'] %}
    coalesce(per_hour.{{ column }} <> {{ sql_text(first_station) }}, false){% if not loop.last %} or{% endif %}
    {%- endfor %} as fallback_used,
    per_hour.hour is null as weather_missing
from hours
left join per_hour
    on per_hour.hour = hours.hour
order by hours.hour
