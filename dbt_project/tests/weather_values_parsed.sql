{{ config(severity='warn') }}
-- Reports with a value that is neither a number nor a known LCD marker; staging made it NULL.
select station, observed_at_lst, report_type, source_file, source_row
from {{ ref('stg_weather__observations') }}
where has_unparsed_value
