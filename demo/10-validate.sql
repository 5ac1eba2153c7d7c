\echo
\echo '### Step 1 of the guide, first part: which emails and pubkeys would the native validators refuse?'
\echo 'Legacy CHECK regexes let these rows in; daznode_crm.email_validation_error() says why each fails.'
SELECT coalesce(daznode_crm.email_validation_error(email), 'valid') AS email_verdict, count(*) AS profiles,
       min(email) AS example
FROM public.profiles
GROUP BY 1 ORDER BY 2 DESC;

SELECT CASE WHEN pubkey IS NULL THEN '(NULL: no key)'
            ELSE coalesce(daznode_crm.lightning_pubkey_validation_error(pubkey), 'valid') END AS pubkey_verdict,
       count(*) AS profiles,
       left(min(pubkey), 16) || CASE WHEN min(pubkey) <> '' THEN '…' ELSE '' END AS example
FROM public.profiles
GROUP BY 1 ORDER BY 2 DESC;

\echo 'Emails that differ only by case (UNIQUE(email) let both in); normalize_email() shows the clash:'
SELECT daznode_crm.normalize_email(email) AS normalized, count(*) AS variants, string_agg(email, ' | ' ORDER BY email) AS stored
FROM public.profiles
GROUP BY 1 HAVING count(*) > 1
ORDER BY 1 LIMIT 5;
