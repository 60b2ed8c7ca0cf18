-- Duplicate counts in one row. Raw: rows without an id, ids on more than one row (revisions, or
-- the same record in two extracts), and rows identical to another in every stored field.
-- Staged (one row per id): records identical to another in every field except the id, and case
-- numbers shared by several records, which multi-victim cases do legitimately. Nothing is
-- dropped here: staging keeps the latest version of each id, and every record is counted.
with raw_rows as (
    select * exclude (source_file, source_row)
    from {{ source('raw', 'crime_incidents') }}
),

raw_ids as (
    select trim(id) as id, count(*) as rows
    from raw_rows
    where nullif(trim(id), '') is not null
    group by 1
),

staged as (
    select * exclude (incident_id, source_file, source_row)
    from {{ ref('stg_crimes__incidents') }}
),

cases as (
    select case_number, count(*) as records
    from {{ ref('stg_crimes__incidents') }}
    where case_number is not null
    group by 1
)

select
    (select count(*) from raw_rows) as raw_rows,
    (select count(*) from raw_rows where nullif(trim(id), '') is null) as rows_without_id,
    (select count(*) from raw_ids) as distinct_ids,
    (select count(*) from raw_ids where rows > 1) as duplicated_ids,
    (select coalesce(sum(rows), 0) from raw_ids where rows > 1) as duplicate_id_rows,
    (select count(*) from raw_rows) - (select count(*) from (select distinct * from raw_rows)) as exact_duplicate_rows,
    (select count(*) from staged) as staged_records,
    (select count(*) from staged) - (select count(*) from (select distinct * from staged)) as copied_records,
    (select count(*) from cases) as case_numbers,
    (select count(*) from cases where records > 1) as shared_case_numbers,
    (select coalesce(sum(records), 0) from cases where records > 1) as records_sharing_case
