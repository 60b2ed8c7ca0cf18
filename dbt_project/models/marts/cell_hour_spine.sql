{{ config(materialized='view') }}
-- The complete cell x hour panel with zero counts filled in; a view, so it costs no storage.
select
    cells.cell_id,
    hours.hour,
    coalesce(counts.crime_count, 0) as crime_count,
    coalesce(counts.violent_count, 0) as violent_count
from {{ ref('dim_cells') }} as cells
cross join {{ ref('hour_spine') }} as hours
left join {{ ref('fct_cell_hour_crimes') }} as counts
    on counts.cell_id = cells.cell_id and counts.hour = hours.hour
