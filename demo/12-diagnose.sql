\echo
\echo '### Step 1 of the guide: the pre-migration diagnostic, by its bare name as in the SQL Editor (most severe first; OK rows hidden here)'
\echo 'CALL daznode_crm.migrate(''0000_guide_api'') put the guide''s names in public; SELECT * FROM run_pre_migration_diagnostic() now reaches the native code:'
CALL daznode_crm.migrate('0000_guide_api');
SELECT check_name, status, affected_rows, left(details, 90) AS details
FROM run_pre_migration_diagnostic() WHERE status <> 'OK';
\echo 'Each row comes with the exact SQL to run next, e.g.:'
SELECT check_name, recommendation FROM run_pre_migration_diagnostic()
WHERE recommendation IS NOT NULL AND status = 'WARNING' LIMIT 3;
