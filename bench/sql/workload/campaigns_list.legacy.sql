-- The campaigns list with analytics: the legacy view aggregates every send on every read.
SELECT * FROM public.crm_campaign_stats ORDER BY name LIMIT 25;
