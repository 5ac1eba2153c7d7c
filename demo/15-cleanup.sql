\echo
\echo '### Step 2 of the guide: orphans, first as a dry run, then for real'
SELECT * FROM daznode_crm.cleanup_orphaned_records(dry_run => true) WHERE rows > 0;
SELECT * FROM daznode_crm.cleanup_orphaned_records() WHERE rows > 0;
