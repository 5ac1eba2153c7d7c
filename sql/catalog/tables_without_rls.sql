-- The CRM tables ($1: their names) that API roles may read while row-level security is off.
SELECT string_agg(t, ', ' ORDER BY t) FROM unnest($1::text[]) t
WHERE daznode_crm.crm_table_oid(t) IS NOT NULL
  AND NOT (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = daznode_crm.crm_table_oid(t))
  AND EXISTS (SELECT 1 FROM daznode_crm.api_roles(daznode_crm.crm_table_oid(t)))
