-- One campaign's sends, latest first, page 1.
\set c random(1, 500)
SELECT id, customer_id, email, status, sent_at, opened_at, clicked_at
FROM public.crm_email_sends WHERE campaign_id = md5('camp' || :c)::uuid
ORDER BY sent_at DESC NULLS LAST LIMIT 25;
