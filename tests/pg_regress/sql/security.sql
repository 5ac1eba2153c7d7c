-- The security contract (README "Security"): who the extension's statements run as, what a user
-- may change in their own profile, and bad input refused with 22023 and a short message.
BEGIN;
SET search_path = pg_catalog;
\set VERBOSITY terse

-- No CRM table yet: no CRM owner. Once profiles exists, its owner is the CRM owner, as whom the
-- extension reads and writes application tables, and whom migrate() must run as.
SELECT daznode_crm.crm_owner() IS NULL AS no_owner_yet;
CREATE TABLE public.profiles (id uuid PRIMARY KEY, email text, ville text, t4g_tokens int);
SELECT daznode_crm.crm_owner()::regrole = current_user::regrole AS owner_is_me;

-- The columns a user may change in their own profile; every other one is an admin's.
SELECT unnest(daznode_crm.profile_owner_columns()) AS editable ORDER BY 1;

-- lock_down(): every grant but the owner's revoked, row-level security on.
CREATE ROLE daznode_regress_api NOLOGIN;
CREATE TABLE public.crm_email_sends_p209901 (x int);
GRANT ALL ON public.crm_email_sends_p209901 TO daznode_regress_api, PUBLIC;
SELECT daznode_crm.lock_down('public.crm_email_sends_p209901');
-- (Who holds a privilege, not the letters: PostgreSQL 17 added MAINTAIN, 'm', to an owner's.)
SELECT relrowsecurity, (SELECT array_agg(DISTINCT a.grantee::regrole::text) FROM aclexplode(relacl) a) AS grantees
FROM pg_class WHERE oid = 'public.crm_email_sends_p209901'::regclass;

-- A retention under a month needs force => true (22023 otherwise); checked before anything else.
SAVEPOINT s;
SELECT * FROM daznode_crm.cleanup_old_email_partitions('1 microsecond');
ROLLBACK TO s;
SELECT * FROM daznode_crm.cleanup_old_email_partitions('3 weeks');
ROLLBACK TO s;
-- With force, the arguments pass, and the next check answers (the table is not partitioned: 55000).
SELECT * FROM daznode_crm.cleanup_old_email_partitions('1 day', force => true);
ROLLBACK TO s;
-- A segment id that does not exist: 22023.
SELECT * FROM daznode_crm.refresh_segment('00000000-0000-0000-0000-000000000000');
ROLLBACK;
