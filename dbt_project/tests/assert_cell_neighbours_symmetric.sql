-- Pairs of dim_cell_neighbours that are not symmetric (no reverse row, or a different
-- shared_boundary_km in it), and cells listed as their own neighbour.
select forward.cell_id, forward.neighbour_id, forward.shared_boundary_km, reverse.shared_boundary_km as reverse_km
from {{ ref('dim_cell_neighbours') }} as forward
left join {{ ref('dim_cell_neighbours') }} as reverse
    on reverse.cell_id = forward.neighbour_id
    and reverse.neighbour_id = forward.cell_id
where reverse.cell_id is null
    or reverse.shared_boundary_km is distinct from forward.shared_boundary_km
    or forward.cell_id = forward.neighbour_id
