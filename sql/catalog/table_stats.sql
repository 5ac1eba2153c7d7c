-- Statistics of the CRM tables ($1: their names).
SELECT s.relid::regclass::text AS relation, s.seq_scan, coalesce(s.idx_scan, 0) AS idx_scan, s.n_live_tup AS live, s.n_dead_tup AS dead,
       (extract(epoch FROM pg_catalog.now() - greatest(s.last_analyze, s.last_autoanalyze)) / 86400)::float8 AS days_since_analyze,
       s.n_mod_since_analyze AS modified_since_analyze,
       pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(s.relid)) AS total_size,
       pg_catalog.pg_size_pretty(pg_catalog.pg_indexes_size(s.relid)) AS indexes_size
FROM pg_catalog.pg_stat_user_tables s
WHERE s.relid IN (SELECT pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(t)) FROM pg_catalog.unnest($1::text[]) t)
ORDER BY s.relname
