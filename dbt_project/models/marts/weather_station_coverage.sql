-- Hours of fct_hourly_weather with and without an observation, for each configured station and,
-- in the row with station '(fallback)', after the fallback between stations. A station's
-- hours_without_observation counts every hour of the mart's range that the station did not report,
-- including hours before its first or after its last report.
with mart as (
    select * from {{ ref('fct_hourly_weather') }}
),

stations as (
    {{ weather_stations_relation() }}
),

station_hours as (
    select station_hours.*
    from {{ ref('int_weather__station_hours') }} as station_hours
    inner join mart
        on mart.hour = station_hours.hour
),

per_station as (
    select
        stations.station,
        stations.station_rank,
        (select count(*) from mart) as hours,
        count(station_hours.hour) as hours_with_observation,
        count(station_hours.temperature_f) as hours_with_temperature,
        count(station_hours.precipitation_in) as hours_with_precipitation,
        min(station_hours.hour) as first_hour,
        max(station_hours.hour) as last_hour
    from stations
    left join station_hours
        on station_hours.station = stations.station
    group by stations.station, stations.station_rank
),

after_fallback as (
    select
        '(fallback)' as station,
        null::integer as station_rank,
        count(*) as hours,
        count(*) filter (where not weather_missing) as hours_with_observation,
        count(temperature_f) as hours_with_temperature,
        count(precipitation_in) as hours_with_precipitation,
        min(hour) filter (where not weather_missing) as first_hour,
        max(hour) filter (where not weather_missing) as last_hour
    from mart
)

select
    *,
    hours - hours_with_observation as hours_without_observation,
    hours - hours_with_temperature as hours_without_temperature,
    hours - hours_with_precipitation as hours_without_precipitation
from (
    select * from per_station
    union all
    select * from after_fallback
)
order by station_rank nulls last
