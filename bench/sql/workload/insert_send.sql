-- The app queues one send.
\set c random(1, 500)
\set p random(1, :profiles)
INSERT INTO public.crm_email_sends (campaign_id, customer_id, email, status)
VALUES (md5('camp' || :c)::uuid, md5('profile' || :p)::uuid, 'queued' || :p || '@bench.io', 'pending');
