-- The registered materialized views: whether each exists, is populated, can refresh
-- concurrently, and how long ago daznode_crm last refreshed it.
SELECT r.view_name, coalesce(c.relkind = 'm', false) AS is_matview, c.relispopulated AS populated,
       (SELECT extract(epoch FROM pg_catalog.now() - l.started_at)::float8 FROM daznode_crm.materialized_view_refresh_log l
        WHERE l.view_name = r.view_name AND l.mode IN ('concurrently', 'full') ORDER BY l.id DESC LIMIT 1) AS secs_since_refresh,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL) AS unique_index
FROM daznode_crm.materialized_view_registry r LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(r.view_name)
ORDER BY 1
