-- The campaigns list with analytics: the materialized view, through its admin view.
SELECT * FROM public.crm_campaigns_analytics_admin ORDER BY name LIMIT 25;
