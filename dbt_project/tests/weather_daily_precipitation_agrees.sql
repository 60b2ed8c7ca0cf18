{{ config(severity='warn') }}
-- LST days whose hourly precipitation does not add up to the summary-of-day total within 0.02 in.
select *
from {{ ref('weather_daily_precipitation_check') }}
where not agrees
