-- Relation locks other sessions hold on the CRM tables ($1: their names); which modes stop
-- writes is core::catalog::WRITE_BLOCKING_MODES.
SELECT l.pid, l.mode, l.relation::regclass::text AS relation
FROM pg_catalog.pg_locks l
WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()
  AND l.relation IN (SELECT pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(t)) FROM pg_catalog.unnest($1::text[]) t)
