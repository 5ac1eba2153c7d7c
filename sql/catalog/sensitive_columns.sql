-- Relations of public without row-level security that anon or authenticated may read, with the
-- sensitive columns ($1: lower-case names) they hold.
SELECT c.oid::regclass::text AS relation, pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) AS columns
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relrowsecurity
  AND pg_catalog.lower(a.attname) = ANY ($1::text[])
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles ro WHERE ro.rolname IN ('anon', 'authenticated') AND pg_catalog.has_table_privilege(ro.oid, c.oid, 'SELECT'))
GROUP BY 1 ORDER BY 1
