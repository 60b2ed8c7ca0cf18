{#
  The jurisdiction's weather block, passed by Riskcast as the dbt vars weather_stations and
  weather_layouts, as small relations. Each macro returns a typed empty relation when the
  jurisdiction configures no weather, so the weather models still build.
#}
{% macro sql_text(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{% macro weather_stations_relation() -%}
    {%- set stations = var('weather_stations', []) -%}
    {%- if stations | length == 0 -%}
    select null::varchar as station, null::integer as station_rank, null::integer as utc_offset_minutes
    where false
    {%- else -%}
    select * from (values
        {%- for station in stations %}
        ({{ sql_text(station['id']) }}, {{ station['rank'] | int }}, {{ station['utc_offset_minutes'] | int }}){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as stations(station, station_rank, utc_offset_minutes)
    {%- endif -%}
{%- endmacro %}

{% macro weather_report_types_relation() -%}
    {%- set rows = [] -%}
    {%- for layout in var('weather_layouts', []) -%}
        {%- for report_type, report_class in layout['report_types'].items() -%}
            {%- do rows.append([layout['name'], report_type, report_class]) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if rows | length == 0 -%}
    select null::varchar as layout, null::varchar as report_type, null::varchar as report_class
    where false
    {%- else -%}
    select * from (values
        {%- for row in rows %}
        ({{ sql_text(row[0]) }}, {{ sql_text(row[1] | trim) }}, {{ sql_text(row[2]) }}){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as report_types(layout, report_type, report_class)
    {%- endif -%}
{%- endmacro %}

{% macro weather_trace_values_relation() -%}
    {%- set rows = [] -%}
    {%- for layout in var('weather_layouts', []) -%}
        {%- for value in layout['trace_values'] -%}
            {%- do rows.append([layout['name'], value]) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if rows | length == 0 -%}
    select null::varchar as layout, null::varchar as trace_value
    where false
    {%- else -%}
    select * from (values
        {%- for row in rows %}
        ({{ sql_text(row[0]) }}, {{ sql_text(row[1] | trim) }}){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as trace_values(layout, trace_value)
    {%- endif -%}
{%- endmacro %}

{# Layouts whose files leave the precipitation of a dry hour blank. #}
{% macro weather_blank_precipitation_zero_layouts() -%}
    ({%- for layout in var('weather_layouts', []) if layout['blank_precipitation_is_zero'] -%}
        {{ sql_text(layout['name']) }}{% if not loop.last %}, {% endif %}
    {%- else -%}
        null
    {%- endfor -%})
{%- endmacro %}

{# Parse a layout's LST date text with that layout's format. #}
{% macro weather_parse_lst(date_column, layout_column) -%}
    {%- set layouts = var('weather_layouts', []) -%}
    {%- if layouts | length == 0 -%}
    null::timestamp
    {%- else -%}
    case {{ layout_column }}
        {%- for layout in layouts %}
        when {{ sql_text(layout['name']) }} then strptime(trim({{ date_column }}), {{ sql_text(layout['timestamp_format']) }})
        {%- endfor %}
    end
    {%- endif -%}
{%- endmacro %}
