{#
  NOAA LCD values are text with markers (NOAA NCEI, "Local Climatological Data (LCD) Dataset
  Documentation", https://www.ncei.noaa.gov/data/local-climatological-data/doc/LCD_documentation.pdf,
  "Special Indicator Appendix" and the precipitation table notes): "T" is a trace of precipitation, a
  trailing "s" marks a suspect value, "M" is missing, "*" is an amount included in a later
  report, "VRB" is a variable wind direction, and blank means unreported.

  Policy: a number, with or without the trailing "s", is kept as its value; a suspect value is
  kept and used, with a suspect flag. Everything else is NULL. Trace precipitation is handled
  by the staging model, because which values mean a trace depends on the file layout.
#}
{% macro lcd_number(column) -%}
    try_cast(regexp_replace(trim({{ column }}), 's$', '') as double)
{%- endmacro %}

{% macro lcd_is_suspect(column) -%}
    coalesce(regexp_full_match(trim({{ column }}), '-?[0-9]*\.?[0-9]+s'), false)
{%- endmacro %}

{# True when a value is present but is neither a number nor one of the markers listed above. #}
{% macro lcd_is_unparsed(column, extra_markers=[]) -%}
    coalesce(
        trim({{ column }}) <> ''
        and {{ lcd_number(column) }} is null
        and trim({{ column }}) not in ('M', '*'{% for marker in extra_markers %}, '{{ marker | replace("'", "''") }}'{% endfor %}),
        false
    )
{%- endmacro %}
