{#
  Convert a wall-clock TIMESTAMP in the jurisdiction's zone to a naive UTC TIMESTAMP.

  Rule for daylight-saving edges, applied the same way everywhere:
  - an ambiguous time (the repeated fall-back hour) is read as its FIRST occurrence, the earlier
    instant, in daylight time;
  - a nonexistent time (the skipped spring-forward hour) is shifted forward by the gap, so
    02:30 on the spring-forward day becomes 03:30 daylight time.
  DuckDB's ICU conversion picks the later instant for ambiguous times, so the macro checks whether
  one hour earlier maps to the same wall-clock time and uses that instant if it does. The result
  does not depend on the session's TimeZone setting.
#}
{% macro utc_guess(local_ts) -%}
    timezone('UTC', timezone('{{ var("time_zone") }}', {{ local_ts }}))
{%- endmacro %}

{% macro utc_to_local(utc_ts) -%}
    timezone('{{ var("time_zone") }}', timezone('UTC', {{ utc_ts }}))
{%- endmacro %}

{% macro local_to_utc(local_ts) -%}
    case
        when {{ utc_to_local(utc_guess(local_ts) ~ " - interval 1 hour") }} = {{ local_ts }}
            then {{ utc_guess(local_ts) }} - interval 1 hour
        else {{ utc_guess(local_ts) }}
    end
{%- endmacro %}

{% macro is_ambiguous_local(local_ts) -%}
    (
        {{ utc_to_local(utc_guess(local_ts) ~ " - interval 1 hour") }} = {{ local_ts }}
        or {{ utc_to_local(utc_guess(local_ts) ~ " + interval 1 hour") }} = {{ local_ts }}
    )
{%- endmacro %}

{% macro is_nonexistent_local(local_ts) -%}
    ({{ utc_to_local(utc_guess(local_ts)) }} <> {{ local_ts }})
{%- endmacro %}
