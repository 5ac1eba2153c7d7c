-- Exact row counts of the CRM tables that exist (statistics would only estimate).
SELECT c.relname AS "table",
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', c.oid::regclass), false, true, '')))[1]::text::bigint AS "rows"
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
  AND c.relname IN ('profiles', 'users', 'users_backup', 'admin_roles', 'orders', 'subscriptions',
                    'crm_customer_segments', 'crm_customer_segment_members', 'crm_email_templates',
                    'crm_email_campaigns', 'crm_email_sends', 'crm_email_sends_backup')
ORDER BY 1;
