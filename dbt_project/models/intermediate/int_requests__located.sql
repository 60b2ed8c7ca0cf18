-- 311 requests with their cell. Requests that cannot be counted keep a quarantine_reason instead
-- of being dropped: missing_created_date, then the location rules of int_incidents__located
-- (missing_coordinates, zero_coordinates, outside_bounding_box, outside_cells). A point on a
-- shared cell boundary goes to the cell with the smallest cell_id.
with requests as (
    select
        *,
        case
            when created_date is null then 'missing_created_date'
            when latitude is null or longitude is null then 'missing_coordinates'
            when latitude = 0 or longitude = 0 then 'zero_coordinates'
            when not (latitude between {{ var('min_lat') }} and {{ var('max_lat') }}
                      and longitude between {{ var('min_lon') }} and {{ var('max_lon') }})
                then 'outside_bounding_box'
        end as problem
    from {{ ref('stg_311__requests') }}
),

points as (
    select request_type, request_id, ST_Point(longitude, latitude) as point
    from requests
    where problem is null
),

-- The smallest cell_id of the cells a point touches, with min() rather than a row_number() window,
-- which kept each matched cell's polygon beside its row (see int_incidents__located).
assigned as (
    select points.request_type, points.request_id, min(cells.cell_id) as cell_id
    from points
    join {{ ref('stg_cells') }} as cells
        -- ST_Intersects, not ST_Contains, because ST_Contains is false for a point on the polygon's
        -- boundary, so a point on a shared edge or corner would land in no cell.
        on ST_Intersects(cells.geom, points.point)
    group by points.request_type, points.request_id
)

select
    requests.* exclude (problem),
    assigned.cell_id,
    coalesce(
        requests.problem,
        case when assigned.cell_id is null then 'outside_cells' end
    ) as quarantine_reason
from requests
left join assigned
    on requests.request_type = assigned.request_type
    and requests.request_id = assigned.request_id
