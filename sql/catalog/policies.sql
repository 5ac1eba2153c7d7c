-- The row-level security policies of the CRM tables ($1: their names), with their expressions.
SELECT p.polrelid::regclass::text || ': ' || pg_catalog.quote_ident(p.polname) AS name,
       coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '') AS using_expr,
       coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '') AS check_expr
FROM pg_catalog.pg_policy p
WHERE p.polrelid IN (SELECT pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(t)) FROM pg_catalog.unnest($1::text[]) t)
ORDER BY 1
