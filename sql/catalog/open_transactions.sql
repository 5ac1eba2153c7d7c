-- Every open transaction of another client backend, with its age (the long-transaction rule is
-- core::diagnostics::long_transaction_status).
SELECT pid, usename::text AS usename, application_name,
       extract(epoch FROM pg_catalog.now() - xact_start)::float8 AS open_secs
FROM pg_catalog.pg_stat_activity
WHERE xact_start IS NOT NULL AND pid <> pg_catalog.pg_backend_pid() AND backend_type = 'client backend'
