-- The campaigns list with analytics, newest first: the guide's React Admin source, as an admin.
SELECT * FROM public.crm_campaigns_analytics_mv ORDER BY created_at DESC, id LIMIT 25;
