-- The segments list with member counts: the legacy view counts the members on every read.
SELECT * FROM public.crm_segment_stats ORDER BY name;
