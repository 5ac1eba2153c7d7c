\echo
\echo '### The guide''s complete migration: crm_email_sends partitioned by month, online (CALL daznode_crm.migrate(''complete''))'
\echo 'Orphan sends first (the partitioned table''s foreign keys would reject them):'
SELECT * FROM cleanup_orphaned_records() WHERE rows > 0;
CALL daznode_crm.migrate('complete');
SELECT step, duration_ms, result FROM daznode_crm.migration_status WHERE step = '0010_partition_email_sends';
\echo 'Partitions before the retention cleanup:'
SELECT count(*) AS partitions, min(c.relname) AS oldest, max(c.relname) FILTER (WHERE c.relname ~ '_p[0-9]{6}$') AS newest
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.crm_email_sends'::regclass;
\echo 'cleanup_old_email_partitions(retention => ''12 months''), as the monthly pg_cron job runs it:'
SELECT partition_name, range_start::date, range_end::date, action, rows
FROM cleanup_old_email_partitions(retention => '12 months', premake => 4);
\echo 'Partitions after:'
SELECT count(*) AS partitions, min(c.relname) AS oldest, max(c.relname) FILTER (WHERE c.relname ~ '_p[0-9]{6}$') AS newest
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.crm_email_sends'::regclass;
\echo 'The unpartitioned table stays in sync as crm_email_sends_backup until finish_email_sends_partitioning(): a rollback loses nothing.'
