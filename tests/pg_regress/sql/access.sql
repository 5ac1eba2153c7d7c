-- Access control on a Supabase-like database (schema auth with auth.uid(), roles anon,
-- authenticated and service_role with ALL on public by default privileges): the role matrix
-- read as every requester, the writes each may make, the admin-only React Admin sources, who
-- the caller is and how it cannot be steered, and segments refreshed by difference (the rates
-- of a campaign counted by hand are in guide.sql). In a database of its own. The checks that
-- need a second session (roles kept across transactions) stay in tests/integration/access.sh.
SET client_min_messages = warning;
CREATE DATABASE daznode_crm_access;
\c daznode_crm_access
SET client_min_messages = warning;
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'access_attacker'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN EXECUTE format('CREATE ROLE %I NOLOGIN', r); END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN BYPASSRLS; END IF;
END $$;
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
CREATE EXTENSION daznode_crm;
CALL daznode_crm.migrate();

-- Profiles 1 super_admin, 2 admin, 3 moderator, 4 support, 5 and 6 customers.
INSERT INTO public.profiles (id, email, nom, prenom, email_verified, pubkey, created_at)
SELECT ('00000000-0000-4000-8000-00000000000' || n)::uuid, 'p' || n || '@daznode.io', 'Nom', 'P' || n, n % 2 = 0,
       CASE WHEN n = 5 THEN '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798' END,
       now() - make_interval(days => 100 * n)
FROM generate_series(1, 6) AS n;
INSERT INTO public.admin_roles (user_id, role) VALUES
    ('00000000-0000-4000-8000-000000000001', 'super_admin'), ('00000000-0000-4000-8000-000000000002', 'admin'),
    ('00000000-0000-4000-8000-000000000003', 'moderator'), ('00000000-0000-4000-8000-000000000004', 'support');
INSERT INTO public.orders (user_id, amount) VALUES
    ('00000000-0000-4000-8000-000000000005', 15000), ('00000000-0000-4000-8000-000000000005', 10000), ('00000000-0000-4000-8000-000000000006', 500);
INSERT INTO public.subscriptions (user_id, plan_id, status) VALUES
    ('00000000-0000-4000-8000-000000000005', 'premium', 'active'), ('00000000-0000-4000-8000-000000000006', 'basic', 'active');
INSERT INTO public.crm_customer_segments (id, name, criteria, auto_update) VALUES ('00000000-0000-4000-8000-0000000000a1', 'Clients', '{}', false);
INSERT INTO public.crm_customer_segment_members (segment_id, customer_id) VALUES ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000005');
INSERT INTO public.crm_email_templates (name, subject, content) VALUES ('Welcome', 's', 'c');
INSERT INTO public.crm_email_campaigns (id, name, subject, content) VALUES ('00000000-0000-4000-8000-0000000000c1', 'Launch', 's', 'c');
INSERT INTO public.crm_email_sends (campaign_id, customer_id, email, status, sent_at) VALUES
    ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-000000000005', 'p5@daznode.io', 'delivered', now()),
    ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-000000000006', 'p6@daznode.io', 'sent', now());
SELECT count(*) AS views_refreshed FROM daznode_crm.refresh_crm_materialized_views();

-- What each requester sees, as PostgREST asks: SET ROLE, then only request.jwt.claims.
\set seen 'SELECT (SELECT count(*) FROM public.profiles) AS profiles, (SELECT count(*) FROM public.admin_roles) AS admin_roles, (SELECT count(*) FROM public.orders) AS orders, (SELECT count(*) FROM public.subscriptions) AS subs, (SELECT count(*) FROM public.crm_customer_segments) AS segments, (SELECT count(*) FROM public.crm_customer_segment_members) AS members, (SELECT count(*) FROM public.crm_email_templates) AS templates, (SELECT count(*) FROM public.crm_email_campaigns) AS campaigns, (SELECT count(*) FROM public.crm_email_sends) AS sends, (SELECT count(*) FROM public.crm_campaigns_analytics_mv) AS campaigns_source, (SELECT count(*) FROM public.crm_segments_stats_mv) AS segments_source, (SELECT count(*) FROM public.crm_segment_stats) AS segment_stats'
SET ROLE anon;
:seen;
SET ROLE authenticated;
:seen;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000005", "role": "authenticated"}', false) IS NOT NULL AS customer;
:seen;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000004", "role": "authenticated"}', false) IS NOT NULL AS support;
:seen;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000003", "role": "authenticated"}', false) IS NOT NULL AS moderator;
:seen;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000002", "role": "authenticated"}', false) IS NOT NULL AS admin;
:seen;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated"}', false) IS NOT NULL AS super_admin;
:seen;
RESET request.jwt.claims;
SET ROLE service_role;
:seen;
RESET ROLE;

-- Writes: a customer changes their own profile only; support cannot change a send; a moderator
-- cannot create a segment (42501, row-level security); an admin can.
SET ROLE authenticated;
SET request.jwt.claims = '{"sub": "00000000-0000-4000-8000-000000000005"}';
WITH u AS (UPDATE public.profiles SET ville = 'Lyon' WHERE id IN ('00000000-0000-4000-8000-000000000005', '00000000-0000-4000-8000-000000000006') RETURNING id)
SELECT id FROM u;
SET request.jwt.claims = '{"sub": "00000000-0000-4000-8000-000000000004"}';
WITH u AS (UPDATE public.crm_email_sends SET status = 'opened' RETURNING 1) SELECT count(*) AS sends_changed_by_support FROM u;
SET request.jwt.claims = '{"sub": "00000000-0000-4000-8000-000000000003"}';
\set VERBOSITY sqlstate
INSERT INTO public.crm_customer_segments (name, criteria) VALUES ('x', '{}');
\set VERBOSITY default
SET request.jwt.claims = '{"sub": "00000000-0000-4000-8000-000000000002"}';
BEGIN;
WITH i AS (INSERT INTO public.crm_customer_segments (name, criteria) VALUES ('x', '{}') RETURNING 1) SELECT count(*) AS created_by_admin FROM i;
ROLLBACK;
-- The materialized view and the live counts themselves are out of reach, even for an admin.
\set VERBOSITY sqlstate
SELECT count(*) FROM crm_private.campaign_send_counts;
\set VERBOSITY default
RESET request.jwt.claims;
RESET ROLE;

-- Who the caller is: auth.uid() on Supabase, the claims within and across transactions, the
-- legacy request.jwt.claim.sub too.
SET request.jwt.claims = '{"sub": "00000000-0000-4000-8000-000000000002"}';
SELECT daznode_crm.current_user_id() = auth.uid() AS same_as_auth_uid, daznode_crm.is_admin_user() AS admin;
SET request.jwt.claims = '{"sub": "00000000-0000-4000-8000-000000000005"}';
SELECT daznode_crm.current_user_id(), daznode_crm.is_admin_user() AS admin;
BEGIN;
SET LOCAL request.jwt.claim.sub = '00000000-0000-4000-8000-000000000001';
SELECT daznode_crm.current_user_id(), daznode_crm.is_admin_user('{super_admin}') AS super_admin;
COMMIT;
SELECT daznode_crm.current_user_id(), daznode_crm.is_admin_user() AS admin;
-- Another auth.uid() (one reading a table) is asked again at every transaction.
CREATE TABLE auth.current_user_of_test (id uuid);
INSERT INTO auth.current_user_of_test VALUES ('00000000-0000-4000-8000-000000000002');
ALTER FUNCTION auth.uid() RENAME TO uid_from_claims;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT id FROM auth.current_user_of_test $$;
SELECT daznode_crm.current_user_id(), daznode_crm.is_admin_user() AS admin;
UPDATE auth.current_user_of_test SET id = '00000000-0000-4000-8000-000000000005';
SELECT daznode_crm.current_user_id(), daznode_crm.is_admin_user() AS admin;
DROP FUNCTION auth.uid();
ALTER FUNCTION auth.uid_from_claims() RENAME TO uid;
DROP TABLE auth.current_user_of_test;
-- A role removed by the caller's own transaction counts from its next statement.
SET request.jwt.claims = '{"sub": "00000000-0000-4000-8000-000000000002"}';
BEGIN;
SELECT daznode_crm.is_admin_user() AS before_delete;
DELETE FROM public.admin_roles WHERE user_id = '00000000-0000-4000-8000-000000000002';
SELECT daznode_crm.is_admin_user() AS after_delete;
ROLLBACK;

-- It cannot be steered: no user argument; same-named objects first on the search_path change
-- nothing.
SET request.jwt.claims = '{"sub": "00000000-0000-4000-8000-000000000005"}';
\set VERBOSITY sqlstate
SELECT daznode_crm.is_admin_user('00000000-0000-4000-8000-000000000001'::uuid);
\set VERBOSITY default
CREATE SCHEMA evil AUTHORIZATION access_attacker;
SET ROLE access_attacker;
CREATE TABLE evil.admin_roles (user_id uuid, role text);
INSERT INTO evil.admin_roles VALUES ('00000000-0000-4000-8000-000000000005', 'super_admin');
CREATE FUNCTION evil.is_admin_user(text[] DEFAULT NULL) RETURNS boolean LANGUAGE sql AS 'SELECT true';
GRANT USAGE ON SCHEMA evil TO PUBLIC;
GRANT SELECT ON evil.admin_roles TO PUBLIC;
SET ROLE authenticated;
SET search_path = evil, public, daznode_crm;
SELECT daznode_crm.is_admin_user() AS admin, (SELECT count(*) FROM public.crm_customer_segments) AS segments;
RESET search_path;
RESET ROLE;
RESET request.jwt.claims;
-- Declared STABLE, SECURITY DEFINER, with a pinned search_path; the invalidation trigger of
-- admin_roles is ENABLE ALWAYS and its function not executable by the API roles.
SELECT provolatile, prosecdef, proconfig FROM pg_proc WHERE oid = 'daznode_crm.is_admin_user(text[])'::regprocedure;
SELECT tgenabled, has_function_privilege('authenticated', tgfoid, 'EXECUTE') AS api_may_call
FROM pg_trigger WHERE tgrelid = 'public.admin_roles'::regclass AND tgname = 'daznode_admin_roles_changed';
-- Every policy calls its functions once per query: no per-row call.
SELECT count(*) FILTER (WHERE status <> 'OK') AS per_row_calls, count(*) > 5 AS policies_checked
FROM daznode_crm.diagnose_crm_performance() WHERE area = 'rls';

-- Segments by criteria (verified: 2, 4, 6; a pubkey: 5; created 150 to 450 days ago: 2, 3, 4;
-- premium and active: 5; orders of at least 20000 in all: 5).
CREATE TABLE pg_temp.criteria (k int, criteria jsonb);
INSERT INTO pg_temp.criteria VALUES
    (1, '{"profile":{"email_verified":true}}'), (2, '{"profile":{"has_pubkey":true}}'),
    (3, '{"profile":{"created_days_ago":{"min":150,"max":450}}}'),
    (4, '{"subscription":{"plan":["premium","enterprise"],"status":["active"]}}'),
    (5, '{"orders":{"total_amount":{"min":20000},"count":{"min":1}}}');
INSERT INTO public.crm_customer_segments (id, name, criteria)
SELECT ('00000000-0000-4000-8000-0000000005' || lpad(k::text, 2, '0'))::uuid, 'criteria ' || k, criteria FROM pg_temp.criteria;
SELECT c.criteria, r.added, r.removed, r.members
FROM pg_temp.criteria c, daznode_crm.refresh_segment(('00000000-0000-4000-8000-0000000005' || lpad(c.k::text, 2, '0'))::uuid) r
ORDER BY c.k;
-- Which profiles (by their last digit) each segment holds now.
SELECT c.k, string_agg(right(m.customer_id::text, 1), ',' ORDER BY m.customer_id) AS profiles
FROM pg_temp.criteria c JOIN public.crm_customer_segment_members m
  ON m.segment_id = ('00000000-0000-4000-8000-0000000005' || lpad(c.k::text, 2, '0'))::uuid
GROUP BY c.k ORDER BY c.k;
-- By difference: profile 3 becomes verified and 4 stops: one in, one out, the other member rows
-- untouched (the same row ids).
CREATE TABLE pg_temp.kept AS SELECT id FROM public.crm_customer_segment_members
WHERE segment_id = '00000000-0000-4000-8000-000000000501' AND customer_id <> '00000000-0000-4000-8000-000000000004';
UPDATE public.profiles SET email_verified = NOT email_verified
WHERE id IN ('00000000-0000-4000-8000-000000000003', '00000000-0000-4000-8000-000000000004');
SELECT * FROM daznode_crm.refresh_segment('00000000-0000-4000-8000-000000000501');
SELECT count(*) AS kept_rows FROM pg_temp.kept k JOIN public.crm_customer_segment_members m USING (id);
-- An unknown key is refused with 22023, naming the known ones; an injection attempt in a value
-- stays a value.
INSERT INTO public.crm_customer_segments (id, name, criteria) VALUES
    ('00000000-0000-4000-8000-000000000601', 'bad', '{"profile":{"vip":true}}'),
    ('00000000-0000-4000-8000-000000000602', 'evil', '{"subscription":{"plan":["x''); DELETE FROM public.profiles; --"]}}');
SELECT * FROM daznode_crm.refresh_segment('00000000-0000-4000-8000-000000000601');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM daznode_crm.refresh_segment('00000000-0000-4000-8000-000000000602');
SELECT count(*) AS profiles_left FROM public.profiles;
-- refresh_auto_update_segments() covers every auto_update segment, reporting the bad one.
SELECT count(*) AS segments, count(problem) AS with_problem FROM daznode_crm.refresh_auto_update_segments();

\c daznode_crm_regress
SET client_min_messages = warning;
DROP DATABASE daznode_crm_access;
