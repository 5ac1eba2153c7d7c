-- A delivery webhook: one send, found by (campaign_id, customer_id), marked opened.
\set i random(1, :sends)
\set c 1 + :i % 500
\set p 1 + (:i * 7919) % :profiles
UPDATE public.crm_email_sends SET status = 'opened', opened_at = now()
WHERE campaign_id = md5('camp' || :c)::uuid AND customer_id = md5('profile' || :p)::uuid;
