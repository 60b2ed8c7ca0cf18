-- One weather row per UTC hour of the spine. Each routine report goes to the UTC hour it falls in
-- (floored), and the latest report in the hour wins. Hours without a report have NULL values and
-- weather_missing = true: missing weather is never filled with zeros.
with observations as (
    select
        date_trunc('hour', observed_at_utc) as hour,
        *
    from {{ ref('stg_weather__observations') }}
    qualify row_number() over (
        partition by date_trunc('hour', observed_at_utc)
        order by observed_at_utc desc, station, source_row desc
    ) = 1
)

select
    hours.hour,
    observations.station,
    observations.observed_at_utc,
    observations.temperature_f,
    observations.relative_humidity,
    observations.wind_speed_mph,
    observations.precipitation_in,
    coalesce(observations.precipitation_is_trace, false) as precipitation_is_trace,
    coalesce(observations.is_suspect, false) as is_suspect,
    observations.hour is null as weather_missing
from {{ ref('hour_spine') }} as hours
left join observations
    on observations.hour = hours.hour
order by hours.hour
