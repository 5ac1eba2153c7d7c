\echo
\echo '### Step 5 of the guide: post-migration checks, by the guide''s own names (rows that are not OK)'
SELECT area, object, metric, value, status FROM diagnose_crm_performance()
WHERE status <> 'OK' AND area <> 'size' ORDER BY area, object LIMIT 15;
\echo
\echo 'SELECT refresh_crm_materialized_views(); (the guide''s line), then its monitor:'
SELECT refresh_crm_materialized_views();
SELECT table_name, total_size, live_rows, dead_rows, cache_hit_pct FROM crm_performance_monitor ORDER BY table_name;
\echo
\echo
\echo '### The guide''s pg_cron jobs, scheduled for real (the demo cluster preloads pg_cron), as the guide writes them:'
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT cron.schedule(
  'refresh-crm-stats', 
  '0 * * * *', 
  'SELECT refresh_crm_materialized_views();'
);
SELECT cron.schedule(
  'cleanup-email-partitions', 
  '0 2 1 * *', 
  'SELECT cleanup_old_email_partitions();'
);
SELECT jobname, schedule, command, username FROM cron.job ORDER BY jobname;
\echo '(daznode_crm.schedule_crm_maintenance() schedules the same two, qualified, plus the 15-minute segment refresh and the fold of the live campaign counts every minute.)'
\echo 'What each job runs, run once now as pg_cron would (the job owner, its default search_path):'
SELECT refresh_crm_materialized_views();
SELECT partition_name, action, rows FROM cleanup_old_email_partitions() WHERE action <> 'kept';
