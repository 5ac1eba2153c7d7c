-- The live campaign counts (step 0011): the admins' source public.crm_campaigns_analytics_mv is
-- current after every commit, whatever the write, with no refresh; the fold changes nothing a
-- reader sees; campaign_counts_drift() (recount minus counts) is empty throughout. In a database
-- of its own, migrated by its owner.
\set db daznode_crm_analytics
\set owner analytics_owner
\set other analytics_other
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/sql/owned_database.psql
SELECT step, result ->> 'campaigns_counted' AS campaigns_counted FROM daznode_crm.schema_migrations WHERE step = '0011_live_campaign_counts';
SELECT to_regclass('crm_private.crm_campaigns_analytics_mv') AS campaigns_matview,
       (SELECT string_agg(tgname || ':' || tgenabled::text, ', ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'public.crm_email_sends'::regclass AND tgname LIKE 'daznode_count%') AS counter;
INSERT INTO public.profiles (id, email, nom, prenom) VALUES ('00000000-0000-4000-8000-0000000000a1', 'admin@daznode.io', 'Admin', 'A');
INSERT INTO public.admin_roles (user_id, role) VALUES ('00000000-0000-4000-8000-0000000000a1', 'admin');
INSERT INTO public.crm_email_campaigns (id, name, subject, content, created_at) VALUES
    ('00000000-0000-4000-8000-0000000000c1', 'Spring', 's', 'c', '2026-03-01'),
    ('00000000-0000-4000-8000-0000000000c2', 'Summer', 's', 'c', '2026-06-01');
-- What the admin's React Admin list reads, through the guide's source name, identified by the
-- claims PostgREST sets.
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000a1", "role": "authenticated"}', false) IS NOT NULL AS as_admin;
\set list 'SELECT name, recipients, sent, delivered, opened, clicked, bounced, failed, open_rate, bounce_rate FROM public.crm_campaigns_analytics_mv ORDER BY created_at DESC, id'
\set drift 'SELECT count(*) AS drift FROM daznode_crm.campaign_counts_drift()'
:list;

-- INSERT: three sends sent, one of them already bounced.
INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at, bounced_at) VALUES
    ('00000000-0000-4000-8000-0000000000c1', 'a@x.io', 'sent', now(), NULL),
    ('00000000-0000-4000-8000-0000000000c1', 'b@x.io', 'sent', now(), NULL),
    ('00000000-0000-4000-8000-0000000000c1', 'c@x.io', 'bounced', now(), now());
:list;
-- UPDATE of a status and a *_at (a webhook), and an UPDATE that changes no count.
UPDATE public.crm_email_sends SET status = 'opened', opened_at = now() WHERE email = 'a@x.io';
UPDATE public.crm_email_sends SET email = lower(email) WHERE email = 'b@x.io';
:list;
-- UPDATE of campaign_id: the send moves from one campaign's counts to the other's.
UPDATE public.crm_email_sends SET campaign_id = '00000000-0000-4000-8000-0000000000c2' WHERE email = 'b@x.io';
:list;
-- A failed send, in replica mode (a restore, a subscriber's session; a superuser's setting):
-- counted too.
RESET ROLE;
SET session_replication_role = replica;
INSERT INTO public.crm_email_sends (campaign_id, email, status) VALUES ('00000000-0000-4000-8000-0000000000c2', 'd@x.io', 'failed');
RESET session_replication_role;
SET ROLE :"owner";
-- A rolled-back write leaves nothing; a DELETE is subtracted.
BEGIN;
DELETE FROM public.crm_email_sends;
ROLLBACK;
DELETE FROM public.crm_email_sends WHERE email = 'c@x.io';
:list;
:drift;
-- COPY, and INSERT … ON CONFLICT DO UPDATE (one row inserted, one updated to clicked).
COPY public.crm_email_sends (id, campaign_id, email, status, sent_at) FROM stdin;
00000000-0000-4000-8000-0000000000e1	00000000-0000-4000-8000-0000000000c2	e@x.io	sent	2026-06-02 10:00:00+00
\.
INSERT INTO public.crm_email_sends (id, campaign_id, email, status, sent_at) VALUES
    ('00000000-0000-4000-8000-0000000000e1', '00000000-0000-4000-8000-0000000000c2', 'e@x.io', 'sent', now()),
    ('00000000-0000-4000-8000-0000000000e2', '00000000-0000-4000-8000-0000000000c2', 'f@x.io', 'sent', now())
ON CONFLICT (id) DO UPDATE SET status = 'clicked', clicked_at = now();
:list;
:drift;
-- A campaign deleted: its sends go by the foreign key's cascade, and so do their counts.
INSERT INTO public.crm_email_campaigns (id, name, subject, content) VALUES ('00000000-0000-4000-8000-0000000000c3', 'Gone', 's', 'c');
INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at) VALUES ('00000000-0000-4000-8000-0000000000c3', 'g@x.io', 'sent', now());
DELETE FROM public.crm_email_campaigns WHERE id = '00000000-0000-4000-8000-0000000000c3';
:drift;
-- Every combination of what the counters read (four timestamps set or not, four statuses with
-- NULL, a campaign or none) in one INSERT, then each send changed in one UPDATE (timestamps
-- cleared and set, statuses swapped, sends moved between campaigns, given one or losing it):
-- the native trigger counts each send as sql/rates.sql's functions do, so no drift.
INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at, opened_at, clicked_at, bounced_at)
SELECT CASE WHEN i % 3 > 0 THEN ('00000000-0000-4000-8000-0000000000c' || (1 + i % 2))::uuid END, 'combo' || i || '@x.io',
       (ARRAY[NULL, 'sent', 'failed', 'bounced'])[1 + i / 16 % 4], CASE WHEN i & 1 > 0 THEN now() END,
       CASE WHEN i & 2 > 0 THEN now() END, CASE WHEN i & 4 > 0 THEN now() END, CASE WHEN i & 8 > 0 THEN now() END
FROM generate_series(0, 191) AS i;
:drift;
UPDATE public.crm_email_sends
SET sent_at = CASE WHEN sent_at IS NULL THEN now() END, bounced_at = CASE WHEN clicked_at IS NULL THEN now() END,
    opened_at = CASE WHEN email LIKE 'combo1%' THEN NULL ELSE opened_at END,
    status = CASE WHEN status IS NULL THEN 'failed' WHEN status = 'failed' THEN NULL ELSE status END,
    campaign_id = CASE WHEN email LIKE '%7@x.io' THEN NULL WHEN campaign_id = '00000000-0000-4000-8000-0000000000c1' THEN '00000000-0000-4000-8000-0000000000c2'::uuid
                       ELSE '00000000-0000-4000-8000-0000000000c1'::uuid END
WHERE email LIKE 'combo%';
:drift;
DELETE FROM public.crm_email_sends WHERE email LIKE 'combo%';
:drift;
-- The trigger function counts only as the step's triggers on public.crm_email_sends: attached
-- to another table it counts nothing and stops the write (42501).
CREATE TABLE public.not_the_sends (LIKE public.crm_email_sends);
CREATE TRIGGER count_elsewhere AFTER INSERT ON public.not_the_sends REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION daznode_crm.count_send_changes();
INSERT INTO public.not_the_sends (id, campaign_id, email) VALUES (gen_random_uuid(), '00000000-0000-4000-8000-0000000000c1', 'x@x.io');
DROP TABLE public.not_the_sends;
-- Nor as one of the step's names with another shape (here the UPDATE trigger's name on INSERT,
-- which would count every insert twice and no update): the write stops, and
-- install_send_counter() puts the right one back.
DROP TRIGGER daznode_count_sends ON public.crm_email_sends;
CREATE TRIGGER daznode_count_sends AFTER INSERT ON public.crm_email_sends REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION daznode_crm.count_send_changes();
\set VERBOSITY sqlstate
INSERT INTO public.crm_email_sends (campaign_id, email, status) VALUES ('00000000-0000-4000-8000-0000000000c1', 'h@x.io', 'sent');
\set VERBOSITY default
SELECT daznode_crm.install_send_counter() AS repaired;
SELECT tgname, tgtype, tgenabled FROM pg_trigger WHERE tgrelid = 'public.crm_email_sends'::regclass AND tgname LIKE 'daznode_count%' ORDER BY tgname;
UPDATE public.crm_email_sends SET status = 'opened', opened_at = now() WHERE email = 'e@x.io';
:drift;
-- The fold moves the deltas into one row per campaign; the reads do not change.
SELECT count(*) > 0 AS deltas_before FROM crm_private.campaign_send_deltas;
SELECT daznode_crm.fold_campaign_counts() AS campaigns_folded;
SELECT (SELECT count(*) FROM crm_private.campaign_send_deltas) AS deltas_after, (SELECT count(*) FROM crm_private.campaign_send_counts) AS count_rows;
:list;
:drift;
-- A second fold has nothing to move.
SELECT daznode_crm.fold_campaign_counts() AS campaigns_folded;
-- The SQL of each part is readable; an unknown part is an invalid argument.
SELECT daznode_crm.campaign_counts_sql('fold') LIKE 'WITH moved AS (DELETE FROM crm_private.campaign_send_deltas%' AS fold_is_one_statement;
\set VERBOSITY sqlstate
SELECT daznode_crm.campaign_counts_sql('everything');
\set VERBOSITY default
SELECT daznode_crm.campaign_counts_sql('everything');
-- Someone without the maintenance role cannot fold, nor read the counts directly.
RESET ROLE;
CREATE ROLE analytics_stranger;
SET ROLE analytics_stranger;
\set VERBOSITY sqlstate
SELECT daznode_crm.fold_campaign_counts();
SELECT count(*) FROM crm_private.campaign_send_counts;
\set VERBOSITY default
RESET ROLE;
DROP ROLE analytics_stranger;

\c daznode_crm_regress
SET client_min_messages = warning;
DROP DATABASE daznode_crm_analytics;
