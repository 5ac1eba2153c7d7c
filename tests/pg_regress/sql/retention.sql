-- cleanup_old_email_partitions(retention, premake, dry_run, archive, force): the monthly
-- retention of crm_email_sends, as its owner runs it from pg_cron. Months are shown as offsets
-- from the current UTC month (0 is this month, -14 fourteen months ago), so that the output is
-- the same whatever the day it runs. In a database of its own.
\set db daznode_crm_retention
\set owner retention_owner
\set other retention_other
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/sql/owned_database.psql
INSERT INTO public.crm_email_campaigns (id, name, subject, content) VALUES ('00000000-0000-4000-8000-0000000000c1', 'Old and new', 's', 'c');
-- One send in the middle of each month, from 14 months ago to this month.
INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at)
SELECT '00000000-0000-4000-8000-0000000000c1', 'm' || k || '@x.io', 'delivered',
       (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => k) + interval '14 days') AT TIME ZONE 'UTC'
FROM generate_series(0, 14) AS k;
-- Rows of a table named by its oid (no libxml needed, unlike query_to_xml).
CREATE FUNCTION pg_temp.row_count(t regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN EXECUTE format('SELECT count(*) FROM %s', t) INTO n; RETURN n; END $$;
CREATE FUNCTION pg_temp.month_of(t timestamptz) RETURNS int LANGUAGE sql STABLE AS $$
    SELECT ((extract(year FROM t AT TIME ZONE 'UTC') - extract(year FROM now() AT TIME ZONE 'UTC')) * 12
            + extract(month FROM t AT TIME ZONE 'UTC') - extract(month FROM now() AT TIME ZONE 'UTC'))::int
$$;

-- Before the partitioning: 55000, saying how to partition.
\set VERBOSITY sqlstate
SELECT * FROM daznode_crm.cleanup_old_email_partitions();
\set VERBOSITY default
SELECT * FROM daznode_crm.cleanup_old_email_partitions();

CALL daznode_crm.migrate('complete');
SELECT count(*) AS partitions, min(pg_temp.month_of(range_start)) AS first_month, max(pg_temp.month_of(range_start)) AS last_month
FROM daznode_crm.email_sends_partitions() WHERE kind = 'monthly';

-- Every month bound is midnight UTC on the 1st, whatever the session's time zone (this cluster's
-- is Europe/Paris; bounds are shown in UTC and ISO style here).
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT count(*) AS monthly_partitions,
       bool_and(pg_get_expr(c.relpartbound, c.oid) ~ '^FOR VALUES FROM \(''\d{4}-\d{2}-01 00:00:00\+00''\) TO \(''\d{4}-\d{2}-01 00:00:00\+00''\)$') AS midnight_utc_on_the_1st
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'public.crm_email_sends'::regclass AND c.relname ~ '^crm_email_sends_p\d{6}$';
RESET TimeZone;
RESET DateStyle;

-- Arguments: 22023 for each bad one, before anything is read.
\set VERBOSITY sqlstate
SELECT * FROM daznode_crm.cleanup_old_email_partitions(retention => NULL);
SELECT * FROM daznode_crm.cleanup_old_email_partitions(retention => '-1 day');
SELECT * FROM daznode_crm.cleanup_old_email_partitions(retention => '1 microsecond');
SELECT * FROM daznode_crm.cleanup_old_email_partitions(premake => 121);
SELECT * FROM daznode_crm.cleanup_old_email_partitions(premake => -1);
\set VERBOSITY default
SELECT * FROM daznode_crm.cleanup_old_email_partitions(retention => '1 microsecond');

-- A dry run says what a run would do and changes nothing: the two months that ended more than 12
-- months ago expire; step 0010 made this month and the next three, premake 5 adds two.
SELECT pg_temp.month_of(range_start) AS month, action, rows
FROM daznode_crm.cleanup_old_email_partitions(dry_run => true, premake => 5) ORDER BY 1;
SELECT pg_temp.month_of(range_start) AS month, action
FROM daznode_crm.cleanup_old_email_partitions(dry_run => true, archive => true, premake => 0) ORDER BY 1;
SELECT count(*) AS partitions_unchanged FROM daznode_crm.email_sends_partitions();

-- Rows outside every partition wait in the default one; a run gives their month a partition and
-- moves them. An unexpected partition (another name) is reported and left alone, with its month.
RESET ROLE;
INSERT INTO public.crm_email_sends (campaign_id, email, status, created_at)
VALUES ('00000000-0000-4000-8000-0000000000c1', 'future@x.io', 'pending',
        (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '6 months 2 days') AT TIME ZONE 'UTC');
SET ROLE retention_owner;
-- diagnose_crm_performance() counts it (reading the default partition by its name).
SELECT status, value FROM daznode_crm.diagnose_crm_performance() WHERE metric = 'rows in the default partition';
DO $$
BEGIN
    EXECUTE format('CREATE TABLE public.crm_email_sends_odd PARTITION OF public.crm_email_sends FOR VALUES FROM (%L) TO (%L)',
                   (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '8 months') AT TIME ZONE 'UTC',
                   (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '9 months') AT TIME ZONE 'UTC');
END $$;
SELECT partition_name ~ '^crm_email_sends_p[0-9]{6}$|^public\.crm_email_sends_odd$' AS expected_name,
       pg_temp.month_of(range_start) AS month, split_part(action, ':', 1) AS action, rows
FROM daznode_crm.cleanup_old_email_partitions(premake => 8) ORDER BY 2, 3;
SELECT pg_temp.month_of(created_at) AS month, tableoid::regclass = 'public.crm_email_sends_default'::regclass AS in_default
FROM public.crm_email_sends WHERE email = 'future@x.io';
SELECT count(*) AS rows_of_dropped_months FROM public.crm_email_sends
WHERE created_at < (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '12 months') AT TIME ZONE 'UTC';

SELECT status, value FROM daznode_crm.diagnose_crm_performance() WHERE metric = 'rows in the default partition';

-- A second run has nothing left to do but report the unexpected partition.
SELECT pg_temp.month_of(range_start) AS month, split_part(action, ':', 1) AS action FROM daznode_crm.cleanup_old_email_partitions(premake => 8);

-- Archive: the expired partition leaves the table for schema crm_archive, with its rows.
SELECT pg_temp.month_of(range_start) AS month, split_part(action, ':', 1) AS action, rows
FROM daznode_crm.cleanup_old_email_partitions(retention => '11 months', archive => true, premake => 0) ORDER BY 1;
SELECT n.nspname, count(*) AS tables, bool_or(c.relispartition) AS attached,
       sum(pg_temp.row_count(c.oid::regclass)) AS archived_rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'crm_archive' AND c.relkind = 'r' GROUP BY 1;

-- Only the CRM owner runs it (42501), even a member of daznode_crm_maintenance.
SET ROLE retention_other;
\set VERBOSITY sqlstate
SELECT * FROM daznode_crm.cleanup_old_email_partitions();
\set VERBOSITY default
RESET ROLE;

-- Step 0010's months come from the core: from the oldest send's month to three months ahead.
SELECT count(*) AS months, min(pg_temp.month_of(range_start)) AS first, max(pg_temp.month_of(range_start)) AS last,
       bool_and(range_end = (range_start AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC') AS whole_utc_months
FROM daznode_crm.email_sends_partition_months(now() - interval '2 months', now());
SELECT count(*) AS months FROM daznode_crm.email_sends_partition_months(NULL, now());

\c daznode_crm_regress
SET client_min_messages = warning;
DROP DATABASE daznode_crm_retention;
