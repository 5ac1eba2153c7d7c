\echo
\echo '### Step 1 of the guide: the pre-migration diagnostic (most severe first; OK rows hidden here)'
SELECT check_name, status, affected_rows, left(details, 90) AS details
FROM daznode_crm.run_pre_migration_diagnostic() WHERE status <> 'OK';
\echo 'Each row comes with the exact SQL to run next, e.g.:'
SELECT check_name, recommendation FROM daznode_crm.run_pre_migration_diagnostic()
WHERE recommendation IS NOT NULL AND status = 'WARNING' LIMIT 3;
