\echo
\echo '### Access control: the same queries as a customer, a support agent and an admin (RLS, one is_admin_user() per query)'
DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_api') THEN CREATE ROLE demo_api NOLOGIN; END IF; END $$;
GRANT USAGE ON SCHEMA public TO demo_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO demo_api;
SET ROLE demo_api;
SELECT set_config('request.jwt.claims', json_build_object('sub', md5('profile5')::uuid)::text, false) IS NOT NULL AS "as the customer profile5";
SELECT (SELECT count(*) FROM public.profiles) AS profiles, (SELECT count(*) FROM public.crm_email_sends) AS sends,
       (SELECT count(*) FROM public.crm_customer_segments) AS segments, (SELECT count(*) FROM public.crm_campaigns_analytics_mv) AS analytics;
SELECT set_config('request.jwt.claims', json_build_object('sub', md5('profile4')::uuid)::text, false) IS NOT NULL AS "as support (profile4)";
SELECT (SELECT count(*) FROM public.profiles) AS profiles, (SELECT count(*) FROM public.crm_email_sends) AS sends,
       (SELECT count(*) FROM public.crm_customer_segments) AS segments, (SELECT count(*) FROM public.crm_campaigns_analytics_mv) AS analytics;
SELECT set_config('request.jwt.claims', json_build_object('sub', md5('profile2')::uuid)::text, false) IS NOT NULL AS "as admin (profile2)";
SELECT (SELECT count(*) FROM public.profiles) AS profiles, (SELECT count(*) FROM public.crm_email_sends) AS sends,
       (SELECT count(*) FROM public.crm_customer_segments) AS segments, (SELECT count(*) FROM public.crm_campaigns_analytics_mv) AS analytics;
\echo 'The admin reads campaign analytics (rates from the *_at timestamps):'
SELECT name, recipients, delivered, opened, clicked, bounced, open_rate, click_rate, bounce_rate
FROM public.crm_campaigns_analytics_mv ORDER BY name LIMIT 3;
\echo 'Live counts (step 0011): a webhook marks a send of "Campagne 1" clicked; the admin''s next read counts it, with no refresh:'
SELECT name, opened, clicked FROM public.crm_campaigns_analytics_mv WHERE name = 'Campagne 1';
UPDATE public.crm_email_sends SET status = 'clicked', opened_at = coalesce(opened_at, now()), clicked_at = now()
WHERE id = (SELECT id FROM public.crm_email_sends WHERE campaign_id = md5('camp1')::uuid AND clicked_at IS NULL AND bounced_at IS NULL AND sent_at IS NOT NULL LIMIT 1);
SELECT name, opened, clicked FROM public.crm_campaigns_analytics_mv WHERE name = 'Campagne 1';
\echo 'Sessions keep the roles they looked up; a trigger on admin_roles tells them to forget. Demoted to support, profile2 no longer sees segments (this session: at once; others: at their next transaction):'
RESET ROLE;
UPDATE public.admin_roles SET role = 'support' WHERE user_id = md5('profile2')::uuid;
SET ROLE demo_api;
SELECT (SELECT count(*) FROM public.crm_customer_segments) AS segments, daznode_crm.is_admin_user('{admin}') AS "is_admin_user('{admin}')";
RESET ROLE;
UPDATE public.admin_roles SET role = 'admin' WHERE user_id = md5('profile2')::uuid;
RESET request.jwt.claims;
\echo
\echo 'Segments kept current by difference (what the 15-minute job runs):'
SELECT name, added, removed, members, problem FROM daznode_crm.refresh_auto_update_segments();
