-- Stations whose converted report times disagree with the UTC time group of their METAR remark
-- on more than 1% of routine reports. A disagreement means the station's utc_offset_hours is
-- wrong, or the file is not in Local Standard Time (for example UTC, or clock time with DST).
select
    station,
    count(*) as routine_reports_with_metar_time,
    count(*) filter (where not metar_time_matches) as disagreeing
from {{ ref('stg_weather__observations') }}
where report_class = 'routine' and metar_time_matches is not null
group by station
having count(*) filter (where not metar_time_matches) > 0.01 * count(*)
