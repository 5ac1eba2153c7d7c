-- The migration API's SQL contract, without touching any application table.
BEGIN;
SET search_path = pg_catalog;

-- The step catalog, in order; every step is pending in a database that never migrated.
SELECT step, target, function_name FROM daznode_crm.migration_steps();
SELECT count(*) AS pending FROM daznode_crm.pending_migrations();
SELECT step FROM daznode_crm.pending_migrations('0002_normalize_profiles');

-- The planned indexes: no volatile expression, each with its purpose.
SELECT index_name, table_name, is_unique, definition FROM daznode_crm.planned_indexes();
SELECT count(*) AS volatile_definitions FROM daznode_crm.planned_indexes()
WHERE definition ~* '(now\(\)|date_trunc|current_)';

-- CREATE EXTENSION created no application table, so every index is missing and none is planned.
SELECT DISTINCT status, detail FROM daznode_crm.check_concurrent_indexes_status() ORDER BY detail;
SELECT count(*) AS statements FROM daznode_crm.concurrent_index_plan();

-- The ledger survives pg_dump: both tables are extension config tables.
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid
WHERE e.extname = 'daznode_crm' ORDER BY 1;

-- Nothing here is callable by PUBLIC.
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'daznode_crm' AND (p.proname LIKE 'step\_%' OR p.proname IN ('migrate', 'pending_migrations', 'concurrent_index_plan', 'check_concurrent_indexes_status'))
ORDER BY 1;
ROLLBACK;

-- Bad targets are refused with SQLSTATE 22023 and the list of what is allowed.
SELECT * FROM daznode_crm.pending_migrations('everything');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM daznode_crm.pending_migrations(NULL);
\echo :LAST_ERROR_SQLSTATE
-- migrate() is a procedure: it commits after each step, so it cannot run in a transaction block
-- (the first step is rolled back with the block).
SET client_min_messages = warning;
\set SHOW_CONTEXT never
BEGIN;
CALL daznode_crm.migrate('0001_base_schema');
ROLLBACK;
RESET client_min_messages;
SELECT count(*) AS tables_left FROM pg_tables WHERE schemaname = 'public';
