-- What one React Admin list request costs through PostgREST (Prefer: count=exact): page 1 and
-- the exact total, in one transaction.
BEGIN;
SELECT id, email, nom, prenom, created_at FROM public.profiles WHERE email_verified ORDER BY created_at DESC, id LIMIT 25;
SELECT count(*) FROM public.profiles WHERE email_verified;
END;
