\echo
\echo '### After the migration: a DBA resolves the findings, then validates and finishes the indexes'
\echo 'Here the demo decides for the human: case duplicates get a new address, typos are fixed,'
\echo 'invalid pubkeys are cleared (their old values stay in the findings).'
\echo 'One statement fixes every column of a row at once: the NOT VALID checks apply to each row an'
\echo 'UPDATE writes, so a row with an invalid email and an invalid pubkey cannot be fixed one column'
\echo 'at a time (each finding''s detail gives that row''s statement).'
UPDATE public.profiles p SET
    email = CASE WHEN d.normalized IS NOT NULL AND p.email <> d.normalized THEN 'dup.' || p.id || '@daznode.io'
                 WHEN NOT daznode_crm.is_valid_email(p.email) THEN ltrim(replace(p.email, '..', '.'), '.')
                 ELSE p.email END,
    pubkey = CASE WHEN daznode_crm.is_valid_lightning_pubkey(p.pubkey) THEN p.pubkey END
FROM public.profiles x
LEFT JOIN (SELECT daznode_crm.normalize_email(email) AS normalized FROM public.profiles GROUP BY 1 HAVING count(*) > 1) d
       ON d.normalized = daznode_crm.normalize_email(x.email)
WHERE x.id = p.id
  AND ((d.normalized IS NOT NULL AND p.email <> d.normalized)
       OR NOT daznode_crm.is_valid_email(p.email) OR NOT daznode_crm.is_valid_lightning_pubkey(p.pubkey));
SELECT daznode_crm.step_validate_constraints() AS validation;
SELECT * FROM daznode_crm.concurrent_index_plan() \gexec
SELECT status, count(*) AS indexes FROM daznode_crm.check_concurrent_indexes_status() GROUP BY status;
