-- The signature of what materialized view $1 reads: the insert, update, delete and live-row
-- counters of every table it reads, through the views it reads, a partitioned table by its
-- partitions, with when statistics were last reset. NULL when no table is found.
WITH RECURSIVE reads(rel) AS (
    SELECT d.refobjid FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE r.ev_class = to_regclass($1) AND d.classid = 'pg_rewrite'::regclass
      AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> to_regclass($1)
    UNION
    SELECT d.refobjid FROM reads JOIN pg_class v ON v.oid = reads.rel AND v.relkind = 'v'
    JOIN pg_rewrite r ON r.ev_class = v.oid
    JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass
                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid),
tables AS (
    SELECT c.oid AS relid FROM reads JOIN pg_class c ON c.oid = reads.rel AND c.relkind IN ('r', 'm')
    UNION
    SELECT t.relid FROM reads JOIN pg_class c ON c.oid = reads.rel AND c.relkind = 'p'
    CROSS JOIN LATERAL pg_partition_tree(c.oid) t WHERE t.isleaf)
SELECT md5(string_agg(format('%s:%s:%s:%s:%s', s.relid, s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_live_tup), ',' ORDER BY s.relid)
           || coalesce((SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()), ''))
FROM pg_stat_all_tables s WHERE s.relid IN (SELECT relid FROM tables)
