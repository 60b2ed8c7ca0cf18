-- One observation per station and UTC hour, chosen by this rule:
--   1. a routine report (FM-15 METAR, SY-MT, QCLCD "AA"): the latest in the hour;
--   2. else a special report (FM-16 SPECI): the latest in the hour, nearest the next hour's start;
--   3. else a synoptic report (FM-12): the latest in the hour.
-- Summaries (SOD, SOM) and report types the layout does not name are never used. Temperature,
-- humidity and wind come from the chosen report. Precipitation comes from a routine report only:
-- a special report's amount is a running total since the last routine report, not the amount of
-- its own minutes, so an hour without a routine report has NULL precipitation and
-- precipitation_missing set. A station-hour without any usable report has no row here.
with usable as (
    select
        *,
        case report_class when 'routine' then 1 when 'special' then 2 when 'synoptic' then 3 end as class_order,
        count(*) over (partition by station, hour) as reports_in_hour
    from {{ ref('stg_weather__observations') }}
    where report_class in ('routine', 'special', 'synoptic')
),

chosen as (
    select *
    from usable
    qualify row_number() over (
        partition by station, hour
        order by class_order, observed_at_utc desc, source_row desc
    ) = 1
)

select
    station,
    station_rank,
    hour,
    observed_at_lst,
    observed_at_utc,
    report_type,
    report_class,
    reports_in_hour,
    temperature_f,
    temperature_suspect,
    relative_humidity,
    relative_humidity_suspect,
    wind_speed_mph,
    wind_speed_suspect,
    wind_direction_deg,
    wind_variable,
    case when report_class = 'routine' then precipitation_in end as precipitation_in,
    report_class = 'routine' and precipitation_trace as precipitation_trace,
    report_class = 'routine' and precipitation_suspect as precipitation_suspect,
    report_class = 'routine' and precipitation_blank as precipitation_blank,
    report_class = 'routine' and precipitation_deferred as precipitation_deferred,
    report_class <> 'routine' or precipitation_in is null as precipitation_missing,
    source_file,
    source_row
from chosen
