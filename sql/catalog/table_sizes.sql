-- The CRM tables ($1: their names), largest first: name, total size, estimated rows.
SELECT string_agg(format('%s %s (%s rows est.)', t, pg_size_pretty(pg_total_relation_size(c.oid)), greatest(c.reltuples, 0)::bigint), ', '
                  ORDER BY pg_total_relation_size(c.oid) DESC)
FROM unnest($1::text[]) t JOIN pg_class c ON c.oid = to_regclass('public.' || quote_ident(t))
