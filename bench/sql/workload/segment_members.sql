-- The members of one segment, newest first, page 1.
\set s random(1, 6)
SELECT p.id, p.email, p.nom, p.prenom, m.added_at
FROM public.crm_customer_segment_members m JOIN public.profiles p ON p.id = m.customer_id
WHERE m.segment_id = md5('seg' || :s)::uuid ORDER BY m.added_at DESC LIMIT 25;
