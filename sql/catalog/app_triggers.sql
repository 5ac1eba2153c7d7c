-- The app's own triggers (not internal, not ours) on the CRM tables ($1: their names).
SELECT string_agg(format('%s on %s', t.tgname, t.tgrelid::regclass), ', ' ORDER BY t.tgrelid::regclass::text, t.tgname)
FROM pg_trigger t
WHERE NOT t.tgisinternal AND t.tgname NOT LIKE 'daznode\_%'
  AND t.tgrelid IN (SELECT daznode_crm.crm_table_oid(x) FROM unnest($1::text[]) x)
