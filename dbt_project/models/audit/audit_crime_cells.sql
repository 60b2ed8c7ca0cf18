-- Located records per cell with the cell's area in km², and the area (audit.area_field) that
-- most of the cell's located records name, with that area's unlocated share. Unlocated records
-- have no cell, so a cell shows the unlocated share of the area it mostly belongs to; ties go to
-- the smallest area name.
with located as (
    select cell_id, area, count(*) as records
    from {{ ref('audit_crime_records') }}
    where cell_id is not null
    group by all
),

modal_area as (
    select cell_id, area
    from located
    where area is not null
    qualify row_number() over (partition by cell_id order by records desc, area) = 1
)

select
    cells.cell_id,
    cells.area_km2,
    coalesce(sum(located.records), 0) as located_records,
    coalesce(sum(located.records), 0) / cells.area_km2 as records_per_km2,
    any_value(modal_area.area) as area,
    any_value(areas.unlocated_share) as area_unlocated_share
from {{ ref('dim_cells') }} as cells
left join located on located.cell_id = cells.cell_id
left join modal_area on modal_area.cell_id = cells.cell_id
left join {{ ref('audit_crime_by_area') }} as areas on areas.area = modal_area.area
group by cells.cell_id, cells.area_km2
order by cells.cell_id
