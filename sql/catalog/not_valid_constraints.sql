-- Constraints of the CRM tables ($1: their names) still NOT VALID.
SELECT c.conrelid::regclass::text || '.' || c.conname AS name
FROM pg_catalog.pg_constraint c
WHERE NOT c.convalidated
  AND c.conrelid IN (SELECT pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(t)) FROM pg_catalog.unnest($1::text[]) t)
ORDER BY 1
