-- Demographic table rows with numbers typed. area_id is the feature id of the row's layer, cut
-- to the table's id_length at ingest (a block group's 12-digit GEOID becomes its tract's 11).
select
    table_name,
    layer,
    area_id,
    source_id,
    cast(population as double) as population,
    cast(nh_white as double) as nh_white,
    cast(nh_black as double) as nh_black,
    cast(hispanic as double) as hispanic,
    cast(nh_asian as double) as nh_asian,
    cast(other as double) as other,
    cast(per_capita_income as double) as per_capita_income,
    cast(poverty_percent as double) as poverty_percent,
    source_file,
    source_row
from {{ source('raw', 'demographics') }}
