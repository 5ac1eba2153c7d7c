-- Foreign keys of the CRM tables ($1: their names) that no full index leads with.
SELECT c.conrelid::regclass::text AS relation, pg_catalog.quote_ident(c.conname) AS constraint_name,
       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.n)
        FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(att, n)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att) AS columns
FROM pg_catalog.pg_constraint c
WHERE c.contype = 'f'
  AND c.conrelid IN (SELECT pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(t)) FROM pg_catalog.unnest($1::text[]) t)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.conrelid AND i.indpred IS NULL
                  AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                  AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
ORDER BY 1, 2
