-- The guide's own SQL snippets (../shared/seed/guide-migration-crm.fr.md), verbatim, with the
-- Supabase SQL Editor's search_path ("$user", public, extensions): as the CRM owner, as a
-- maintenance member who owns nothing, and as an admin identified only by request.jwt.claims;
-- then the app's calls as PostgREST makes them. Each reaches the native code through the
-- wrappers step 0000 puts in public. Snippets whose output changes from run to run (sizes,
-- timings) run with their output discarded; what they returned is shown by a count after them.
-- In a database of its own, so that the other files keep an unmigrated one.
DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'guide_api') THEN CREATE ROLE guide_api NOLOGIN; END IF; END $$;
-- The owner migrates an empty database, then the app writes a few rows: an admin, a customer,
-- and a campaign of 5 sends counted by hand: 4 sent (e never left), 3 delivered (a, c, d: b
-- bounced, e failed), 2 opened (a's click implies its open, d), 1 clicked, 1 bounced, 1 failed;
-- so open rate 2/3 and click rate 1/3 of the delivered, bounce 1/4 and delivery 3/4 of the sent.
\set db daznode_crm_guide
\set owner guide_owner
\set other guide_dba
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/sql/owned_database.psql
SELECT step, result ->> 'skipped' AS skipped FROM daznode_crm.migration_status WHERE step = '0000_guide_api';
INSERT INTO public.profiles (id, email, nom, prenom) VALUES
    ('00000000-0000-4000-8000-000000000001', 'admin@daznode.io', 'Admin', 'Ada'),
    ('00000000-0000-4000-8000-000000000002', 'client@daznode.io', 'Client', 'Cy');
INSERT INTO public.admin_roles (user_id, role) VALUES ('00000000-0000-4000-8000-000000000001', 'admin');
INSERT INTO public.crm_customer_segments (id, name, criteria) VALUES ('00000000-0000-4000-8000-0000000000a1', 'Clients', '{}');
INSERT INTO public.crm_customer_segment_members (segment_id, customer_id) VALUES ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000002');
INSERT INTO public.crm_email_campaigns (id, name, subject, content, created_at)
VALUES ('00000000-0000-4000-8000-0000000000c1', 'Rates', 's', 'c', '2026-01-01');
INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at, opened_at, clicked_at, bounced_at) VALUES
    ('00000000-0000-4000-8000-0000000000c1', 'a@x.io', 'clicked',   now(), NULL,  now(), NULL),
    ('00000000-0000-4000-8000-0000000000c1', 'b@x.io', 'bounced',   now(), NULL,  NULL,  now()),
    ('00000000-0000-4000-8000-0000000000c1', 'c@x.io', 'delivered', now(), NULL,  NULL,  NULL),
    ('00000000-0000-4000-8000-0000000000c1', 'd@x.io', 'opened',    now(), now(), NULL,  NULL),
    ('00000000-0000-4000-8000-0000000000c1', 'e@x.io', 'failed',    NULL,  NULL,  NULL,  NULL);
GRANT SELECT ON ALL TABLES IN SCHEMA public TO guide_api;

-- The wrappers: the guide's names in public, each calling its native function.
SELECT p.oid::regprocedure AS wrapper, obj_description(p.oid, 'pg_proc') AS calls,
       has_function_privilege('guide_api', p.oid, 'EXECUTE') AS api_may_call
FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY p.proname;

SET search_path = "$user", public, extensions;

-- Étape 1 (the guide runs its diagnostic file; its support section asks for this call).
\o /dev/null
SELECT * FROM run_pre_migration_diagnostic();
\o
SELECT :ROW_COUNT > 10 AS "run_pre_migration_diagnostic() answered";

-- Étape 2: Nettoyage.
SELECT cleanup_orphaned_records();
\o /dev/null
SELECT pg_size_pretty(pg_database_size(current_database()));
\o

-- Étape 5: Validation Post-Migration.
\o /dev/null
SELECT * FROM diagnose_crm_performance();
\o
SELECT :ROW_COUNT > 5 AS "diagnose_crm_performance() answered";
\o /dev/null
SELECT refresh_crm_materialized_views();
\o
SELECT view_name, mode FROM daznode_crm.materialized_view_refresh_log ORDER BY id;
\o /dev/null
SELECT * FROM crm_performance_monitor;
\o
SELECT :ROW_COUNT AS "crm_performance_monitor rows (one per CRM table)";

-- 3. Monitoring Continu, and the troubleshooting section.
\o /dev/null
SELECT * FROM diagnose_crm_performance();
SELECT 
  schemaname,
  tablename,
  attname,
  n_distinct,
  correlation
FROM pg_stats 
WHERE schemaname = 'public' 
AND tablename LIKE 'crm_%';
\o
-- Two snippets without ORDER BY, whose row order differs between PostgreSQL majors: run
-- verbatim with their output discarded, then shown sorted.
\o /dev/null
SELECT tablename, schemaname 
FROM pg_tables 
WHERE tablename LIKE 'crm_%';
\o
SELECT tablename, schemaname FROM pg_tables WHERE tablename LIKE 'crm_%' ORDER BY 1;
-- (As the owner, ANALYZE skips what it does not own with one WARNING each: not shown.)
SET client_min_messages = error;
ANALYZE;
SET client_min_messages = warning;
\o /dev/null
SELECT refresh_crm_materialized_views();
SELECT * FROM pg_stat_user_indexes 
WHERE schemaname = 'public' 
AND relname LIKE 'crm_%';
\o
\o /dev/null
SELECT schemaname, tablename, policyname, cmd, qual 
FROM pg_policies 
WHERE schemaname = 'public' 
AND tablename LIKE 'crm_%';
\o
SELECT schemaname, tablename, policyname, cmd, qual FROM pg_policies
WHERE schemaname = 'public' AND tablename LIKE 'crm_%' ORDER BY tablename, policyname;
SELECT is_admin_user();

-- The guide's monthly pg_cron job (pg_cron itself is tested in tests/integration/maintenance.sh,
-- which preloads it): it reaches the native cleanup, which says the table is not partitioned yet
-- (55000, with the hint to run migrate('complete')).
\set VERBOSITY sqlstate
SELECT cleanup_old_email_partitions();
\set VERBOSITY default
RESET ROLE;

-- As a maintenance member who owns nothing: the diagnostics and the refresh run (they act as the
-- owner where they must); the retention cleanup is the owner's (42501, with a SET ROLE hint).
SET ROLE guide_dba;
\o /dev/null
SELECT * FROM run_pre_migration_diagnostic();
SELECT * FROM diagnose_crm_performance();
SELECT refresh_crm_materialized_views();
\o
SELECT cleanup_orphaned_records();
\set VERBOSITY sqlstate
SELECT cleanup_old_email_partitions();
\set VERBOSITY default
RESET ROLE;

-- As the admin, identified only by request.jwt.claims (what PostgREST sets): the guide's
-- React Admin sources, and one open rate for the campaign counted by hand (2 opened of 3
-- delivered), in crm_campaign_stats too.
SET ROLE guide_api;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated"}', false) IS NOT NULL AS as_admin;
SELECT is_admin_user();
SELECT name, recipients, sent, delivered, opened, clicked, bounced, open_rate, click_rate, bounce_rate, delivery_rate
FROM crm_campaigns_analytics_mv;
SELECT name, member_count FROM crm_segments_stats_mv;
SELECT name, open_rate, click_rate FROM crm_campaign_stats;
-- The customer: nothing of either source.
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000002", "role": "authenticated"}', false) IS NOT NULL AS as_customer;
SELECT is_admin_user(), (SELECT count(*) FROM crm_campaigns_analytics_mv) AS campaigns, (SELECT count(*) FROM crm_segments_stats_mv) AS segments;
-- The legacy signature: about oneself, and about someone else only for an admin (NULL here).
SELECT is_admin_user('00000000-0000-4000-8000-000000000002') AS about_me, is_admin_user('00000000-0000-4000-8000-000000000001') AS about_the_admin;
RESET request.jwt.claims;
RESET ROLE;

-- PostgREST-style RPCs: a transaction, SET LOCAL ROLE, the claims, then the function of public.
BEGIN;
SET LOCAL ROLE guide_api;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated"}', true) IS NOT NULL AS claims;
SELECT public.is_admin_user();
COMMIT;
BEGIN;
SET LOCAL ROLE guide_api;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated"}', true) IS NOT NULL AS claims;
\set VERBOSITY sqlstate
SELECT public.cleanup_orphaned_records();
\set VERBOSITY default
ROLLBACK;

-- The materialized view and the live counts are out of PostgREST's reach and their owner's only.
SET ROLE guide_api;
\set VERBOSITY sqlstate
SELECT count(*) FROM crm_private.campaign_send_counts;
\set VERBOSITY default
RESET ROLE;

\c daznode_crm_regress
SET client_min_messages = warning;
DROP DATABASE daznode_crm_guide;
