-- Row count and content checksum of every CRM table (and the backups), one row per table.
-- Content checksum: md5 of the rows' text, in primary key order. Plain PL/pgSQL, so that it
-- works on servers built without libxml (PostgreSQL 16 and 18 from PyPI), where query_to_xml
-- fails and would make both sides of a comparison the same error.
CREATE FUNCTION pg_temp.table_checksum(t regclass, OUT n_rows bigint, OUT checksum text) LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT count(*), md5(coalesce(string_agg(t::text, %L ORDER BY t.id::text), %L)) FROM %s AS t', E'\n', '', t)
    INTO n_rows, checksum;
END $$;
SELECT c.relname AS table_name, s.n_rows, s.checksum
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL pg_temp.table_checksum(c.oid::regclass) AS s
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY 1;
