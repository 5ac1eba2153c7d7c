\echo
\echo '### Step 5 of the guide: post-migration checks (rows that are not OK)'
SELECT area, object, metric, value, status FROM daznode_crm.diagnose_crm_performance()
WHERE status <> 'OK' AND area <> 'size' ORDER BY area, object LIMIT 15;
\echo
\echo 'refresh_crm_materialized_views(): the two views of the guide come with the access and analytics release'
SELECT * FROM daznode_crm.refresh_crm_materialized_views();
\echo
\echo 'schedule_crm_maintenance() (pg_cron is not installed in the demo cluster: it says so and changes nothing)'
SELECT * FROM daznode_crm.schedule_crm_maintenance();
