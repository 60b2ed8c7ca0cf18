{#
  Parse a crime time field into a naive TIMESTAMP, trying the extract format first and then the
  Socrata API format. A format with a UTC offset (%z) yields an instant, which is turned into
  naive UTC here, so that the result never depends on the session's TimeZone setting.
#}
{% macro parse_one_crime_format(column, format) -%}
    {%- if '%z' in format -%}
        timezone('UTC', try_strptime({{ column }}, '{{ format | replace("'", "''") }}'))
    {%- else -%}
        try_strptime({{ column }}, '{{ format | replace("'", "''") }}')
    {%- endif -%}
{%- endmacro %}

{% macro parse_crime_time(column) -%}
    coalesce(
        {{ parse_one_crime_format(column, var("crime_timestamp_format")) }},
        {{ parse_one_crime_format(column, var("crime_api_timestamp_format")) }}
    )
{%- endmacro %}
