-- The live campaign counts of step 0011, when installed: who owns the deltas table, and which of
-- the counter's triggers public.crm_email_sends carries, enabled (ENABLE ALWAYS is 'A').
SELECT c.relowner::bigint AS owner,
       ARRAY(SELECT t.tgname::text FROM pg_catalog.pg_trigger t
             WHERE t.tgrelid = pg_catalog.to_regclass('public.crm_email_sends') AND t.tgname::text = ANY ($1) AND t.tgenabled = 'A'
             ORDER BY 1) AS triggers
FROM pg_catalog.pg_class c
WHERE c.oid = pg_catalog.to_regclass('crm_private.campaign_send_deltas') AND c.relkind = 'r'
