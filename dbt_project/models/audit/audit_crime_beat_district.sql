-- Records per (beat, district) pair with the district that the beat number names under the
-- jurisdiction's rule (audit.beat_district: the beat without its last beat_digits digits).
-- is_consistent is NULL when there is no rule or either value is missing or not a number.
select
    beat,
    district,
    count(*) as records,
{%- if var('audit_beat_digits') | int > 0 %}
    try_cast(beat as integer) // {{ 10 ** (var('audit_beat_digits') | int) }} as beat_district,
{%- else %}
    cast(null as integer) as beat_district,
{%- endif %}
    beat_district = try_cast(district as integer) as is_consistent
from {{ ref('audit_crime_records') }}
group by beat, district
order by beat, district
