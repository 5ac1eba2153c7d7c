-- Every index of the CRM tables ($1: their names), with its key attribute numbers (0 for an
-- expression); which are redundant is core::catalog::IndexFacts::covered_by.
SELECT i.indexrelid::regclass::text AS name, i.indrelid::bigint AS table_oid, i.indisunique AS "unique", i.indisvalid AS valid,
       i.indkey::int2[] AS columns, (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL) AS partial_or_expression,
       coalesce(s.idx_scan, 0) AS scans, pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size(i.indexrelid)) AS size,
       (SELECT am.amname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_am am ON am.oid = c.relam WHERE c.oid = i.indexrelid) AS access_method,
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint
FROM pg_catalog.pg_index i LEFT JOIN pg_catalog.pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE i.indrelid IN (SELECT pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(t)) FROM pg_catalog.unnest($1::text[]) t)
ORDER BY 1
