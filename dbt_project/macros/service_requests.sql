{#
  Parsing of raw.service_requests, which holds the rows of every configured 311 dataset. Each
  dataset brings its own settings through var('service_request_datasets'): the timestamp formats
  of its extract rows and of its rows pulled from Socrata (source_file 'socrata:<id>'), whether its
  creation times are dates only, and the statuses that mark a duplicate. A row of a dataset that
  is no longer configured gets NULL times, so it is quarantined as missing_created_date.
#}
{% macro sql_text_list(values) -%}
    [{%- for value in values -%}'{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}{%- endfor -%}]
{%- endmacro %}

{% macro request_timestamp(column) -%}
    {%- set datasets = var('service_request_datasets') -%}
    {%- if datasets | length == 0 -%}
        cast(null as timestamp)
    {%- else -%}
        case dataset
        {%- for dataset in datasets %}
            when '{{ dataset["name"] }}' then
                case when source_file like 'socrata:%'
                    then try_strptime(nullif(trim({{ column }}), ''), {{ sql_text_list(dataset["api_formats"]) }})
                    else try_strptime(nullif(trim({{ column }}), ''), {{ sql_text_list(dataset["file_formats"]) }})
                end
        {%- endfor %}
        end
    {%- endif -%}
{%- endmacro %}

{% macro request_is_date_only() -%}
    {%- set names = var('service_request_datasets') | selectattr('date_only') | map(attribute='name') | list -%}
    {%- if names | length == 0 -%}
        false
    {%- else -%}
        list_contains({{ sql_text_list(names) }}, dataset)
    {%- endif -%}
{%- endmacro %}

{# A request is a duplicate when its status is one of its dataset's duplicate statuses, or when a
   mapped duplicate flag column holds a true value (the values of DUPLICATE_FLAG_VALUES in
   orchestration/assets/raw_requests.py). #}
{% macro request_is_duplicate() -%}
    (
        coalesce(lower(trim(duplicate)) in ('true', 't', 'y', 'yes', '1'), false)
        {%- for dataset in var('service_request_datasets') if dataset["duplicate_statuses"] %}
        or (dataset = '{{ dataset["name"] }}'
            and coalesce(list_contains({{ sql_text_list(dataset["duplicate_statuses"]) }}, trim(status)), false))
        {%- endfor %}
    )
{%- endmacro %}
