-- Row count and content checksum of every CRM table (and the backups), one row per table.
-- Content checksum: md5 of the rows' text, in primary key order.
SELECT c.relname AS table_name,
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', c.oid::regclass), false, true, '')))[1]::text::bigint AS n_rows,
       (xpath('/row/h/text()', query_to_xml(format('SELECT md5(coalesce(string_agg(t::text, %L ORDER BY t.id::text), %L)) AS h FROM %s AS t', E'\n', '', c.oid::regclass), false, true, '')))[1]::text AS checksum
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY 1;
