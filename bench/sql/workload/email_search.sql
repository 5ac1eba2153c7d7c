-- Case-insensitive search by email: normalize_email(), which the migrated schema indexes (unique).
\set k random(1, 1000)
SELECT id, email, nom, prenom FROM public.profiles
WHERE daznode_crm.normalize_email(email) = daznode_crm.normalize_email((SELECT e.email FROM bench.search_terms e WHERE e.k = :k));
