-- The segments list with member counts: the materialized view, through its admin view.
SELECT * FROM public.crm_segments_stats_admin ORDER BY name;
