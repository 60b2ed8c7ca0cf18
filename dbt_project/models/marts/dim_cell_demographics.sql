-- Population, race and ethnicity, income and poverty per forecasting cell (see
-- int_cells__demographics for how tract counts reach grid cells). Counts may be fractional on a
-- grid. Shares are null where the population is zero or unknown.
select
    cell_id,
    population,
    nh_white,
    nh_black,
    hispanic,
    nh_asian,
    other,
    nh_white_share,
    nh_black_share,
    hispanic_share,
    nh_asian_share,
    other_share,
    per_capita_income,
    poverty_percent
from {{ ref('int_cells__demographics') }}
order by cell_id
