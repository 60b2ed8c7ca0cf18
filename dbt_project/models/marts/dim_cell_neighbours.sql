-- Queen-contiguity neighbours of each cell: two cells are neighbours when their polygons share a
-- boundary segment or only a corner. Queen and rook contiguity are the standard polygon weights
-- of spatial econometrics. L. Anselin, "Contiguity-Based Spatial Weights", GeoDa workbook
-- (https://geodacenter.github.io/workbook/4a_contig_weights/lab4a.html) defines both and the
-- precision threshold that GeoDa adds for boundaries that do not match exactly.
--
-- Tolerance: cells count as touching when their distance is at most var('neighbour_tolerance_m')
-- metres (default 1 m). This absorbs digitising gaps and slivers between tracts from different
-- sources. The nearest pair of Chicago 2010 tracts that do not touch lies 4.5 m apart, so 1 m
-- adds no false neighbour there. Distances are measured in metres, never in degrees: a degree
-- of longitude near 41.9 N is only 0.74 of a degree of latitude. Cells are projected onto a
-- transverse Mercator centred on the mean cell centroid, a conformal projection whose scale
-- error stays below 0.002 % within 30 km of the centre.
--
-- Speed: a grid-hash prefilter keeps the exact distance test off most pairs. Every cell's
-- bounding box, widened by the tolerance, goes into the square tiles it overlaps, and only cells
-- that share a tile and whose boxes overlap reach ST_DWithin. Tiles are twice the median box
-- side, so a cell of typical size falls into at most four tiles, and a tile of a regular grid
-- contains about four to nine cells. A large cell spans more tiles, which costs time but no pair.
--
-- shared_boundary_km, to the metre. Cells that touch without overlapping (ST_Touches, the usual
-- case in a clean layer or a generated grid) get the exact length of their common boundary, so a
-- neighbour that touches only at a corner gets 0 and rook contiguity is shared_boundary_km > 0.
-- Cells with a gap within the tolerance, or with overlapping slivers, get an estimate instead:
-- the length of each cell's boundary within the tolerance of the other cell, averaged over both
-- directions, less twice the tolerance. The subtraction removes the stretch of up to one
-- tolerance that a contact picks up at each end, and the estimate is never below 0.
-- NOTE: the estimate can be several metres too long where a contact ends in an acute angle.
-- A pair that touches exactly in one place and has a gap elsewhere gets the exact length of the
-- touching part only.
--
-- The table is symmetric: every pair appears as (A, B) and (B, A) with the same length, and no
-- cell neighbours itself. A cell with no neighbour (an island) has no rows.
{% set tolerance_m = var('neighbour_tolerance_m') | float %}
{% if tolerance_m < 0 %}
    {{ exceptions.raise_compiler_error("neighbour_tolerance_m must be 0 or more metres, got " ~ tolerance_m) }}
{% endif %}

with projection as (
    select
        '+proj=tmerc +lat_0=' || avg(centroid_lat) || ' +lon_0=' || avg(centroid_lon)
            || ' +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs' as proj_string
    from {{ ref('stg_cells') }}
),

projected as (
    select
        cells.cell_id,
        ST_Transform(cells.geom, 'EPSG:4326', projection.proj_string, always_xy := true) as geom_m
    from {{ ref('stg_cells') }} as cells
    cross join projection
    where not ST_IsEmpty(cells.geom)
),

boxes as (
    select
        cell_id,
        geom_m,
        ST_XMin(geom_m) - {{ tolerance_m }} as min_x,
        ST_XMax(geom_m) + {{ tolerance_m }} as max_x,
        ST_YMin(geom_m) - {{ tolerance_m }} as min_y,
        ST_YMax(geom_m) + {{ tolerance_m }} as max_y
    from projected
),

tile_size as (
    select 2 * median(greatest(max_x - min_x, max_y - min_y)) as size_m
    from boxes
),

tile_columns as (
    select
        boxes.cell_id,
        boxes.min_y,
        boxes.max_y,
        tile_size.size_m,
        unnest(range(floor(boxes.min_x / tile_size.size_m)::bigint,
                     floor(boxes.max_x / tile_size.size_m)::bigint + 1)) as tile_x
    from boxes
    cross join tile_size
),

tiles as (
    select
        cell_id,
        tile_x,
        unnest(range(floor(min_y / size_m)::bigint, floor(max_y / size_m)::bigint + 1)) as tile_y
    from tile_columns
),

candidates as (
    select distinct
        a.cell_id,
        b.cell_id as neighbour_id
    from tiles as a
    join tiles as b
        on a.tile_x = b.tile_x
        and a.tile_y = b.tile_y
        and a.cell_id < b.cell_id
),

touching as (
    select
        candidates.cell_id,
        candidates.neighbour_id,
        a.geom_m as cell_geom,
        b.geom_m as neighbour_geom
    from candidates
    join boxes as a
        on a.cell_id = candidates.cell_id
    join boxes as b
        on b.cell_id = candidates.neighbour_id
    where a.min_x <= b.max_x
        and b.min_x <= a.max_x
        and a.min_y <= b.max_y
        and b.min_y <= a.max_y
        and ST_DWithin(a.geom_m, b.geom_m, {{ tolerance_m }})
),

measured as (
    select
        cell_id,
        neighbour_id,
        case
            when ST_Touches(cell_geom, neighbour_geom)
                then ST_Length(ST_Intersection(ST_Boundary(cell_geom), ST_Boundary(neighbour_geom)))
            else greatest(
                (
                    ST_Length(ST_Intersection(ST_Boundary(cell_geom), ST_Buffer(neighbour_geom, {{ tolerance_m }})))
                    + ST_Length(ST_Intersection(ST_Boundary(neighbour_geom), ST_Buffer(cell_geom, {{ tolerance_m }})))
                ) / 2 - 2 * {{ tolerance_m }},
                0
            )
        end as shared_boundary_m
    from touching
),

pairs as (
    select
        cell_id,
        neighbour_id,
        round(shared_boundary_m) / 1000 as shared_boundary_km
    from measured
)

select cell_id, neighbour_id, shared_boundary_km
from pairs
union all
select neighbour_id as cell_id, cell_id as neighbour_id, shared_boundary_km
from pairs
order by cell_id, neighbour_id
