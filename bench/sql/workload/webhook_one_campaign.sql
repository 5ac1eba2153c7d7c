-- Delivery webhooks of one campaign (campaign 1: the sends whose i is a multiple of 500), marked
-- clicked: with several clients, every statement updates the same campaign's counts.
\set k random(1, :sends / 500)
\set i 500 * :k
\set p 1 + (:i * 7919) % :profiles
UPDATE public.crm_email_sends SET status = 'clicked', opened_at = coalesce(opened_at, now()), clicked_at = now()
WHERE campaign_id = md5('camp1')::uuid AND customer_id = md5('profile' || :p)::uuid;
