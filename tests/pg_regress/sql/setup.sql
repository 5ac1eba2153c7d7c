-- Every other file assumes the extension is installed in this database.
CREATE EXTENSION daznode_crm;
SELECT extname, extversion IS NOT NULL AS has_version, extrelocatable, n.nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname = 'daznode_crm';
