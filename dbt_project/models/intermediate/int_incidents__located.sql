-- Incidents with their category from the jurisdiction's offense_codes mapping (raw.offense_codes),
-- their UTC hour and their cell. A code the mapping does not list gets category 'unknown'.
-- Rows that cannot be placed keep a quarantine_reason instead of being dropped:
-- missing_coordinates, zero_coordinates, outside_bounding_box (likely swapped or mistyped), or
-- outside_cells (inside the box but in no cell polygon). A point on a shared cell boundary goes
-- to the cell with the smallest cell_id.
with incidents as (
    select
        incidents.*,
        date_trunc('hour', incidents.occurred_at_utc) as hour,
        coalesce(codes.category, 'unknown') as category,
        coalesce(codes.is_violent, false) as is_violent,
        coalesce(codes.offense_groups, []::varchar[]) as offense_groups,
        codes.offense_code is null as is_unknown_code,
        case
            when incidents.latitude is null or incidents.longitude is null then 'missing_coordinates'
            when incidents.latitude = 0 or incidents.longitude = 0 then 'zero_coordinates'
            when not (incidents.latitude between {{ var('min_lat') }} and {{ var('max_lat') }}
                      and incidents.longitude between {{ var('min_lon') }} and {{ var('max_lon') }})
                then 'outside_bounding_box'
        end as location_problem
    from {{ ref('stg_crimes__incidents') }} as incidents
    left join {{ source('raw', 'offense_codes') }} as codes
        on incidents.offense_code = codes.offense_code
),

points as (
    select incident_id, ST_Point(longitude, latitude) as point
    from incidents
    where location_problem is null
),

assigned as (
    select points.incident_id, cells.cell_id
    from points
    join {{ ref('stg_cells') }} as cells
        on ST_Contains(cells.geom, points.point)
    qualify row_number() over (partition by points.incident_id order by cells.cell_id) = 1
)

select
    incidents.* exclude (location_problem),
    assigned.cell_id,
    coalesce(
        incidents.location_problem,
        case when assigned.cell_id is null then 'outside_cells' end
    ) as quarantine_reason
from incidents
left join assigned
    on incidents.incident_id = assigned.incident_id
