-- The maintenance functions' SQL contract on a database with no CRM table yet: they report
-- what is missing, never fail on it.
BEGIN;
SET search_path = pg_catalog;

SELECT check_name, status, affected_rows
FROM daznode_crm.run_pre_migration_diagnostic()
WHERE check_name NOT IN ('server_version', 'privileges', 'database_size', 'table_sizes')
  AND check_name NOT LIKE 'extension:%'
ORDER BY check_name;

-- A users_backup next to users (step 0004 renames users to that name): one ERROR, saying what
-- to rename.
CREATE TABLE public.users (id uuid);
CREATE TABLE public.users_backup (id uuid);
SELECT check_name, status, recommendation FROM daznode_crm.run_pre_migration_diagnostic()
WHERE details LIKE '%users\_backup exists%' OR check_name LIKE '%users\_backup%';
DROP TABLE public.users, public.users_backup;

SELECT table_name, column_name, action, rows FROM daznode_crm.cleanup_orphaned_records(dry_run => true);

SELECT area, object, metric, value, status FROM daznode_crm.diagnose_crm_performance()
WHERE area IN ('partitions', 'materialized views');

SELECT view_name, mode, rows, skipped_reason FROM daznode_crm.refresh_crm_materialized_views();

-- Without pg_cron nothing is scheduled, and the answer says why.
SELECT job_name, action FROM daznode_crm.schedule_crm_maintenance();

-- Not for PUBLIC (so not for anon or authenticated); granted to daznode_crm_maintenance.
SELECT p.proname,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('daznode_crm_maintenance', p.oid, 'EXECUTE') AS maintenance
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'daznode_crm'
  AND p.proname IN ('run_pre_migration_diagnostic', 'cleanup_orphaned_records', 'diagnose_crm_performance',
                    'refresh_crm_materialized_views', 'register_crm_materialized_view',
                    'unregister_crm_materialized_view', 'schedule_crm_maintenance', 'unschedule_crm_maintenance')
ORDER BY 1;

-- SECURITY DEFINER functions pin their search_path.
SELECT p.proname, p.proconfig
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'daznode_crm' AND p.prosecdef
ORDER BY 1;
ROLLBACK;

-- Registering something that is not a materialized view: SQLSTATE 22023.
CREATE TABLE not_a_view (x int);
SELECT daznode_crm.register_crm_materialized_view('not_a_view');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE not_a_view;

-- Maintenance yields to the app: daznode_crm.maintenance_yield (0 to 20) is the pause after
-- each unit of work, in multiples of that unit's duration. Unset, it is 0 here (an interactive
-- session runs at full speed) and 3 in a pg_cron job.
SELECT daznode_crm.maintenance_yield();
SET daznode_crm.maintenance_yield = '1.5';
SELECT daznode_crm.maintenance_yield();
-- A value out of range stops every maintenance function before it does anything: SQLSTATE 22023,
-- with the bad value quoted short.
SET daznode_crm.maintenance_yield = '21';
SELECT daznode_crm.maintenance_yield();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM daznode_crm.cleanup_orphaned_records();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM daznode_crm.run_pre_migration_diagnostic();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM daznode_crm.refresh_auto_update_segments();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM daznode_crm.refresh_crm_materialized_views();
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('daznode_crm.maintenance_yield', repeat('9', 100000), false) IS NOT NULL AS set;
SELECT daznode_crm.maintenance_yield();
RESET daznode_crm.maintenance_yield;

-- CALL daznode_crm.run_in_steps(job): the jobs that take minutes, one unit of work per
-- transaction, for pg_cron (each unit's rows go to daznode_crm.run_in_steps_log). The units,
-- here on a database with no CRM table: an orphan rule, an auto_update segment (none here), a
-- group of checks; and the name each job has in operation_progress.
SELECT job, b.progress, u.n, u.unit
FROM unnest(ARRAY['cleanup_orphaned_records', 'refresh_auto_update_segments', 'run_pre_migration_diagnostic']) AS job,
     daznode_crm.run_in_steps_begin(job) AS b, unnest(b.units) WITH ORDINALITY AS u(unit, n)
ORDER BY job, u.n;
-- A job it does not run: 22023. Inside a transaction block it cannot commit: 2D000.
CALL daznode_crm.run_in_steps('refresh_crm_materialized_views');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
CALL daznode_crm.run_in_steps('run_pre_migration_diagnostic');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT p.proname, p.prokind,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('daznode_crm_maintenance', p.oid, 'EXECUTE') AS maintenance
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'daznode_crm' AND p.proname LIKE 'run\_in\_steps%'
ORDER BY 1;
SELECT has_table_privilege('public', 'daznode_crm.run_in_steps_log', 'SELECT') AS public,
       has_table_privilege('daznode_crm_maintenance', 'daznode_crm.run_in_steps_log', 'SELECT') AS maintenance;
