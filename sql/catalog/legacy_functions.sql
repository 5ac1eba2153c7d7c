-- Functions of public carrying one of the guide's names ($1), other than the wrappers that call
-- daznode_crm's: whether each is SECURITY DEFINER and executable by the API roles (false when
-- there are no anon and authenticated roles).
SELECT p.oid::regprocedure::text AS signature, p.proname::text AS name, p.prosecdef AS security_definer,
       coalesce((SELECT pg_catalog.has_function_privilege('anon', p.oid, 'EXECUTE') OR pg_catalog.has_function_privilege('authenticated', p.oid, 'EXECUTE')
                 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon')
                   AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated')), false) AS api_executable
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY ($1::text[])
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc t ON t.oid = d.refobjid
                  WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_proc'::regclass
                    AND t.pronamespace = 'daznode_crm'::regnamespace)
ORDER BY 1
