-- For each station and LST day with a summary-of-day report (SOD), the sum of the hourly
-- precipitation that int_weather__station_hours keeps (routine reports only, a trace counted as
-- 0.0) next to the SOD daily total. The two agree when they differ by at most 0.02 inches.
-- Summing every report instead, or taking specials, gives a larger or smaller total, because a
-- special report's amount is a running total since the last routine report.
-- The hourly amounts are summed as decimals: a sum of doubles depends on the order DuckDB's
-- threads add them in, and a rebuild must give the same table to the last bit.
with daily as (
    select
        station,
        cast(observed_at_lst as date) as lst_date,
        max_by(daily_precipitation_in, observed_at_lst) as daily_precipitation_in,
        max_by(daily_precipitation_trace, observed_at_lst) as daily_precipitation_trace
    from {{ ref('stg_weather__observations') }}
    where report_class = 'summary' and daily_precipitation_in is not null
    group by station, cast(observed_at_lst as date)
),

hourly as (
    select
        station,
        cast(observed_at_lst as date) as lst_date,
        cast(sum(cast(precipitation_in as decimal(18, 4))) as double) as hourly_precipitation_in,
        count(precipitation_in) as hours_with_precipitation,
        count(*) filter (where precipitation_missing) as hours_without_precipitation
    from {{ ref('int_weather__station_hours') }}
    group by station, cast(observed_at_lst as date)
)

select
    daily.station,
    daily.lst_date,
    daily.daily_precipitation_in,
    daily.daily_precipitation_trace,
    coalesce(hourly.hourly_precipitation_in, 0.0) as hourly_precipitation_in,
    coalesce(hourly.hours_with_precipitation, 0) as hours_with_precipitation,
    coalesce(hourly.hours_without_precipitation, 0) as hours_without_precipitation,
    round(coalesce(hourly.hourly_precipitation_in, 0.0) - daily.daily_precipitation_in, 2) as difference_in,
    abs(coalesce(hourly.hourly_precipitation_in, 0.0) - daily.daily_precipitation_in) <= 0.02 + 1e-9 as agrees
from daily
left join hourly
    on hourly.station = daily.station and hourly.lst_date = daily.lst_date
order by daily.station, daily.lst_date
