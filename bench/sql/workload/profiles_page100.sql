-- The same list at page 100.
SELECT id, email, nom, prenom, created_at FROM public.profiles WHERE email_verified ORDER BY created_at DESC, id LIMIT 25 OFFSET 2475;
