-- How many roles other than $2 own CRM tables ($1: their names).
SELECT count(DISTINCT c.relowner) FROM unnest($1::text[]) AS t(name)
JOIN pg_class c ON c.oid = to_regclass('public.' || quote_ident(t.name))
WHERE c.relkind IN ('r', 'p') AND c.relowner <> $2
