-- Boundary features left out of their layer, with the reason and where they came from.
select
    layer,
    kind,
    feature_id,
    quarantine_reason,
    source_file,
    feature_index
from {{ ref('stg_boundaries__features') }}
where quarantine_reason is not null
order by layer, feature_index
