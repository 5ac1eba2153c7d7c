-- Case-insensitive search by email (an address typed in another case): lower() on the legacy table.
\set k random(1, 1000)
SELECT id, email, nom, prenom FROM public.profiles
WHERE lower(email) = lower((SELECT e.email FROM bench.search_terms e WHERE e.k = :k));
