-- The exact total React Admin asks for with the list (PostgREST Prefer: count=exact).
SELECT count(*) FROM public.profiles WHERE email_verified;
