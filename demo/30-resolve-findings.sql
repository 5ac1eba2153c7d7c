\echo
\echo '### After the migration: a DBA resolves the findings, then validates and finishes the indexes'
\echo 'Here the demo decides for the human: case duplicates get a new address, typos are fixed,'
\echo 'invalid pubkeys are cleared (their old values stay in the findings).'
UPDATE public.profiles SET email = 'dup.' || id || '@daznode.io'
WHERE email <> daznode_crm.normalize_email(email)
  AND daznode_crm.normalize_email(email) IN (SELECT daznode_crm.normalize_email(email) FROM public.profiles GROUP BY 1 HAVING count(*) > 1);
UPDATE public.profiles SET email = ltrim(replace(email, '..', '.'), '.') WHERE NOT daznode_crm.is_valid_email(email);
UPDATE public.profiles SET pubkey = NULL WHERE NOT daznode_crm.is_valid_lightning_pubkey(pubkey);
SELECT daznode_crm.step_validate_constraints() AS validation;
SELECT * FROM daznode_crm.concurrent_index_plan() \gexec
SELECT status, count(*) AS indexes FROM daznode_crm.check_concurrent_indexes_status() GROUP BY status;
