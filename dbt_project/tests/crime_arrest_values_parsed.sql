{{ config(severity='warn') }}
-- Incidents whose arrest text is neither true, false nor blank; staging made their arrest NULL.
select incident_id, invalid_arrest_value, source_file, source_row
from {{ ref('stg_crimes__incidents') }}
where invalid_arrest_value is not null
