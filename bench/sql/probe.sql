-- The concurrent writer probe: one profile and one email send per transaction, what the app does
-- while a migration runs. pgbench runs it every 10 ms (-R 100) and logs each latency.
\set n random(1, 2000000000)
BEGIN;
INSERT INTO public.profiles (email, nom, prenom) VALUES ('probe' || :n || '.' || :client_id || '@probe.io', 'Probe', 'Probe') ON CONFLICT DO NOTHING;
INSERT INTO public.crm_email_sends (campaign_id, customer_id, email, status) VALUES (md5('camp1')::uuid, NULL, 'probe@probe.io', 'pending');
END;
