-- The random writer of tests/integration/analytics.sh (pgbench): every write path of the live
-- campaign counts, in small transactions, some rolled back. Ids are the fixture's md5('send' || i).
-- replica=1: some inserts in replica mode (session_replication_role, a superuser's setting);
-- replica=0, for a writer that is not a superuser: those inserts in the ordinary mode.
\set op random(1, 12)
\set c random(1, 500)
\set c2 random(1, 500)
\set s random(1, :sends)
\if :op <= 3
INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at)
SELECT md5('camp' || :c)::uuid, 'w' || g || '@x.io', CASE WHEN g = 3 THEN 'failed' ELSE 'sent' END, CASE WHEN g <> 3 THEN now() END
FROM generate_series(1, :op) AS g;
\elif :op <= 6
UPDATE public.crm_email_sends SET status = 'opened', opened_at = now() WHERE id = md5('send' || :s)::uuid;
\elif :op = 7
UPDATE public.crm_email_sends SET status = 'bounced', bounced_at = now(), opened_at = NULL WHERE id IN (md5('send' || :s)::uuid, md5('send' || (:s + 1))::uuid);
\elif :op = 8
UPDATE public.crm_email_sends SET campaign_id = md5('camp' || :c2)::uuid WHERE id = md5('send' || :s)::uuid;
\elif :op = 9
UPDATE public.crm_email_sends SET campaign_id = NULL WHERE id = md5('send' || :s)::uuid;
\elif :op = 10
DELETE FROM public.crm_email_sends WHERE id = md5('send' || :s)::uuid;
\elif :op = 11
BEGIN;
UPDATE public.crm_email_sends SET clicked_at = now(), status = 'clicked' WHERE campaign_id = md5('camp' || :c)::uuid AND id = md5('send' || :s)::uuid;
DELETE FROM public.crm_email_sends WHERE id = md5('send' || (:s + 2))::uuid;
ROLLBACK;
\elif :replica
SET session_replication_role = replica;
INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at, clicked_at) VALUES (md5('camp' || :c)::uuid, 'replica@x.io', 'clicked', now(), now());
RESET session_replication_role;
\else
INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at, clicked_at) VALUES (md5('camp' || :c)::uuid, 'app@x.io', 'clicked', now(), now());
\endif
