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

{#
  Convert many wall-clock times with the ICU conversions run once per distinct local hour instead
  of once per row.

  local_hour_utc_shifts(hours) selects, for each local_hour in the relation `hours` (one column,
  local_hour, truncated to the hour, distinct, no NULL), the values that the per-row macros above
  give at the hour's start: utc_shift = local_to_utc(local_hour) - local_hour, is_ambiguous and
  is_nonexistent. is_uniform is true when the per-row macros give the same shift and flags at the
  hour's start and at its last microsecond (hour + 1 hour - 1 microsecond). For a uniform hour,
  local_to_utc(ts) = ts + utc_shift for every ts in it. An hour is not uniform when an offset
  change falls inside it or moves the clock by other than a whole hour, as Lord Howe Island's
  30-minute daylight saving change at 02:00 or a historic change from local mean time at odd
  minutes does. Rows in such an hour take the per-row macros.
  NOTE: the guard compares only the two ends of the hour, so two offset changes that cancel out
  within one hour would pass it. The system tz database (version 2025b, read with python-dateutil)
  has no zone with two changes less than four hours apart from 1901 to 2037. DuckDB's ICU carries
  its own copy of that database.

  The *_by_hour macros take a row's local time and the alias of its joined local_hour_utc_shifts
  row, and give the same value as the per-row macro, including NULL for a NULL time.
#}
{% macro local_hour_utc_shifts(hours) -%}
    select
        local_hour,
        {{ local_to_utc('local_hour') }} - local_hour as utc_shift,
        {{ is_ambiguous_local('local_hour') }} as is_ambiguous,
        {{ is_nonexistent_local('local_hour') }} as is_nonexistent,
        (
            {{ local_to_utc('hour_end') }} - hour_end = {{ local_to_utc('local_hour') }} - local_hour
            and {{ is_ambiguous_local('hour_end') }} = {{ is_ambiguous_local('local_hour') }}
            and {{ is_nonexistent_local('hour_end') }} = {{ is_nonexistent_local('local_hour') }}
        ) as is_uniform
    from (
        select local_hour, local_hour + interval 1 hour - interval 1 microsecond as hour_end
        from {{ hours }}
    )
{%- endmacro %}

{% macro local_to_utc_by_hour(local_ts, hour_alias) -%}
    case
        when {{ hour_alias }}.is_uniform then {{ local_ts }} + {{ hour_alias }}.utc_shift
        else {{ local_to_utc(local_ts) }}
    end
{%- endmacro %}

{% macro is_ambiguous_local_by_hour(local_ts, hour_alias) -%}
    case
        when {{ hour_alias }}.is_uniform then {{ hour_alias }}.is_ambiguous
        else {{ is_ambiguous_local(local_ts) }}
    end
{%- endmacro %}

{% macro is_nonexistent_local_by_hour(local_ts, hour_alias) -%}
    case
        when {{ hour_alias }}.is_uniform then {{ hour_alias }}.is_nonexistent
        else {{ is_nonexistent_local(local_ts) }}
    end
{%- endmacro %}
