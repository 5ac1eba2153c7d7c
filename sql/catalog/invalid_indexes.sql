-- Invalid indexes of the CRM tables ($1: their names) that no CREATE INDEX is building now.
SELECT i.indexrelid::regclass::text AS name
FROM pg_catalog.pg_index i
WHERE NOT i.indisvalid
  AND i.indrelid IN (SELECT pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(t)) FROM pg_catalog.unnest($1::text[]) t)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
ORDER BY 1
