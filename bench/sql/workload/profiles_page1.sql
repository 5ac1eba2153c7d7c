-- React Admin's profiles list: a filter, sorted by created_at DESC, page 1 of 25.
SELECT id, email, nom, prenom, created_at FROM public.profiles WHERE email_verified ORDER BY created_at DESC, id LIMIT 25;
