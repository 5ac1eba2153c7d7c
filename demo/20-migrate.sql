\echo
\echo '### Step 4 of the guide: the migration, one transaction per step (CALL daznode_crm.migrate())'
\echo 'Pending steps:'
SELECT step, summary FROM daznode_crm.pending_migrations();
CALL daznode_crm.migrate();

\echo
\echo 'What each step did (daznode_crm.migration_status):'
SELECT step, duration_ms, result FROM daznode_crm.migration_status;

\echo
\echo 'What the migration left for a human (daznode_crm.migration_findings), by kind:'
SELECT kind, count(*) AS rows, min(detail) AS example
FROM daznode_crm.migration_findings GROUP BY kind ORDER BY kind;

\echo
\echo '### Step 6 of the guide: indexes on big tables are built online, one statement at a time'
SELECT index_name, status, detail FROM daznode_crm.check_concurrent_indexes_status() WHERE status <> 'valid';
\echo 'Each statement of daznode_crm.concurrent_index_plan(), run on its own by psql''s gexec:'
SELECT * FROM daznode_crm.concurrent_index_plan() \gexec

\echo
\echo 'The same table, read through the fixed crm_campaign_stats view (rates from the *_at timestamps):'
SELECT name, total_sends, sent, opened, clicked, bounced, open_rate, click_rate
FROM public.crm_campaign_stats ORDER BY name LIMIT 3;
