-- The segments list with member counts: the guide's React Admin source, as an admin.
SELECT * FROM public.crm_segments_stats_mv ORDER BY name;
