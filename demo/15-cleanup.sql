\echo
\echo '### Step 2 of the guide: orphans, first as a dry run, then for real'
SELECT * FROM cleanup_orphaned_records(dry_run => true) WHERE rows > 0;
\echo 'The guide''s own lines, as written:'
SELECT cleanup_orphaned_records();
SELECT pg_size_pretty(pg_database_size(current_database()));
