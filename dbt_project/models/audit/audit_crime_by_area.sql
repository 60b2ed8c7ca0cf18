-- Records per area, as the record names it (the jurisdiction's audit.area_field, such as the
-- police district), with the records that could not be placed in a cell. An unlocated record
-- still names its area, so this is where its share can be measured.
select
    coalesce(area, '(missing)') as area,
    count(*) as records,
    count(*) filter (where location_status in ('missing', 'out_of_bounds')) as unlocated_records,
    count(*) filter (where location_status = 'missing') as missing_coordinates_records,
    count(*) filter (where location_status = 'out_of_bounds') as out_of_bounds_records,
    count(*) filter (where location_status = 'swapped_repaired') as swapped_repaired_records,
    count(*) filter (where location_status in ('missing', 'out_of_bounds')) / count(*) as unlocated_share
from {{ ref('audit_crime_records') }}
group by 1
order by 1
