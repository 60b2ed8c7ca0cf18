-- Record counts per local month, audit category, local hour of day and ISO day of week (1 is
-- Monday), with the counts of every flag the audit judges. The checks, the drift test and the
-- report's charts all aggregate this table.
select
    local_month,
    audit_category,
    local_hour,
    local_dow,
    count(*) as records,
    count(*) filter (where is_missing_time) as missing_time_records,
    count(*) filter (where is_midnight) as midnight_records,
    count(*) filter (where is_on_hour) as on_hour_records,
    count(*) filter (where is_first_of_month) as first_of_month_records,
    count(*) filter (where ts_nonexistent) as nonexistent_time_records,
    count(*) filter (where ts_ambiguous) as ambiguous_time_records,
    count(*) filter (where location_status = 'missing') as missing_coordinates_records,
    count(*) filter (where location_status = 'out_of_bounds') as out_of_bounds_records,
    count(*) filter (where quarantine_reason = 'outside_cells') as outside_cells_records,
    count(*) filter (where location_status = 'swapped_repaired') as swapped_repaired_records,
    count(*) filter (where coordinates_swapped) as swapped_records,
    count(*) filter (where is_missing_offense_code) as missing_offense_code_records,
    count(*) filter (where is_unknown_code) as unknown_code_records
from {{ ref('audit_crime_records') }}
group by all
order by all
