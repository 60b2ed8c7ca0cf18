{#
  NOAA LCD values are text with markers: "T" (trace, precipitation only), a trailing "s"
  (suspect value), "M" (missing), "*" (not yet available) and blanks.
  Policy: trace precipitation counts as 0.0 inches with is_trace set; a suspect value is kept
  with is_suspect set; "M", "*", blanks and anything else that is not a number become NULL.
#}
{% macro lcd_number(column) -%}
    case
        when trim({{ column }}) = 'T' then 0.0
        else try_cast(regexp_replace(trim({{ column }}), 's$', '') as double)
    end
{%- endmacro %}

{% macro lcd_is_suspect(column) -%}
    coalesce(regexp_matches(trim({{ column }}), '^[0-9.\-]+s$'), false)
{%- endmacro %}
