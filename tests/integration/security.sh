#!/usr/bin/env bash
# The security suite, in the Supabase role model: the tables belong to a
# non-superuser owner with CREATEROLE and BYPASSRLS (Supabase's `postgres`, here app_owner),
# auth.uid() to another non-superuser (supabase_auth_admin), default privileges give anon,
# authenticated and service_role ALL on everything new in public (and CREATE on public), and API
# requests come as PostgREST makes them: login `authenticator`, SET LOCAL ROLE, and only
# request.jwt.claims. One scenario per finding of the issue, each run as the exact attacker role,
# expecting its SQLSTATE or a harmless result; then the whole guide as the owner, pg_cron
# included, and role-cache correctness under a real logical-replication subscription.
# Prints "ok - …" / "not ok - …" per check and ends with "N passed, M failed".
set -uo pipefail
export PGOPTIONS="-c client_min_messages=error"
source "$(dirname "$0")/lib.sh"
DIR=$(run_dir it-security) && PORT=$(free_port) || exit 1

cluster_start "$DIR" "$PORT" "timezone = 'Europe/Paris'" "wal_level = logical" \
    "shared_preload_libraries = 'pg_cron'" "cron.database_name = 'sec'" "cron.use_background_workers = on" \
    "max_worker_processes = 16"
trap '[ -n "${KEEP:-}" ] || cluster_stop "$DIR"; remove_run_dir "$DIR"' EXIT

as() { as_login "$@"; }
# api DB ROLE N SQL: a PostgREST request of ROLE with the JWT of fixture profile N (0: no JWT).
api() {
    local db=$1 role=$2 n=$3 sql=$4 claims=""
    [ "$n" = 0 ] || claims="SET LOCAL request.jwt.claims = '{\"sub\": \"$(uuid_of "$n")\", \"role\": \"$role\"}';"
    as authenticator "$db" "BEGIN; SET LOCAL ROLE $role; $claims $sql; COMMIT;"
}
uuid_of() { q postgres -c "SELECT md5('profile' || $1)::uuid"; }
owner() { as app_owner "$@"; }
not_super() { q postgres -c "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolsuper AND rolname <> 'postgres'"; }

supabase_roles

# An owner's function that tries to make app_owner a superuser, and says what it ran as.
EVIL='CREATE OR REPLACE FUNCTION public.evil() RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    BEGIN EXECUTE $$ALTER ROLE app_owner SUPERUSER$$; EXCEPTION WHEN OTHERS THEN NULL; END;
    INSERT INTO public.evil_log VALUES (current_user);
    RETURN $$super_admin$$;
END $f$;
CREATE TABLE IF NOT EXISTS public.evil_log (ran_as text);
GRANT ALL ON public.evil_log TO PUBLIC;'
evil_log() { q "$1" -c "SELECT coalesce(string_agg(DISTINCT ran_as, ','), 'nothing') FROM public.evil_log"; }

echo "# the guide, as the non-superuser owner (app_owner, a member of daznode_crm_maintenance)"
supabase_like_db sec
expect_eq "the owner is no superuser" "$(q sec -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'app_owner'")" "f"
expect_eq "diagnostic as the owner" "$(owner sec "SELECT count(*) > 10 FROM daznode_crm.run_pre_migration_diagnostic()")" "t"
expect_eq "the diagnostic tells a superuser that migrate() runs as the owner" \
    "$(as postgres sec "SELECT status || ': ' || recommendation FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'privileges'")|$(owner sec "SELECT status FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'privileges'")" \
    "ERROR: GRANT daznode_crm_maintenance TO app_owner; SET ROLE app_owner; CALL daznode_crm.migrate();|OK"
expect_eq "orphan cleanup as the owner" "$(owner sec "SELECT count(*) FROM daznode_crm.cleanup_orphaned_records() WHERE action NOT LIKE 'skipped%'")" "10"
out=$(owner sec "CALL daznode_crm.migrate()")
expect_eq "migrate() as the owner" "$(echo "$out" | grep -c ERROR)|$(q sec -c "SELECT count(*) FROM daznode_crm.schema_migrations")" "0|11"
"$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U app_owner -d sec -v ON_ERROR_STOP=1 -f demo/30-resolve-findings.sql >/dev/null 2>&1
expect_eq "findings resolved and every planned index built, as the owner" \
    "$(q sec -c "SELECT string_agg(DISTINCT status, ',') FROM daznode_crm.check_concurrent_indexes_status()")" "valid"
out=$(owner sec "CALL daznode_crm.migrate('complete')")
expect_eq "migrate('complete') as the owner" "$(echo "$out" | grep -c ERROR)|$(q sec -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")" "0|p"
expect_eq "everything it made belongs to the owner" \
    "$(q sec -c "SELECT string_agg(DISTINCT relowner::regrole::text, ',') FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname LIKE 'crm\_%'")" "app_owner"
expect_eq "the materialized view left (segments; campaigns are live counts) refreshed as the owner" "$(owner sec "SELECT count(*) FROM daznode_crm.refresh_crm_materialized_views(concurrently => false) WHERE mode IN ('full', 'concurrently', 'skipped')")" "1"
expect_eq "segments refreshed as the owner" "$(owner sec "SELECT count(*) FROM daznode_crm.refresh_auto_update_segments() WHERE problem IS NULL")" \
    "$(q sec -c "SELECT count(*) FROM public.crm_customer_segments WHERE auto_update")"
expect_eq "partition cleanup as the owner" "$(owner sec "SELECT count(*) > 0 FROM daznode_crm.cleanup_old_email_partitions(dry_run => true)")" "t"
expect_eq "performance diagnosis as a maintenance member who owns nothing" "$(as dba sec "SELECT count(*) > 10 FROM daznode_crm.diagnose_crm_performance()")" "t"
expect_eq "migrate() by a maintenance member who does not own the tables: 42501" "$(as dba sec "CALL daznode_crm.migrate()")" "ERROR:  42501"
expect_eq "migrate() by a superuser on a non-superuser's tables: 42501 (SET ROLE to the owner)" \
    "$(as postgres sec "CALL daznode_crm.migrate('complete')")" "ERROR:  42501"
expect_eq "partition cleanup by a superuser on a non-superuser's tables: 42501" \
    "$(as postgres sec "SELECT count(*) FROM daznode_crm.cleanup_old_email_partitions()")" "ERROR:  42501"
quiet sec -c "CREATE EXTENSION pg_cron" -c "GRANT USAGE ON SCHEMA cron TO app_owner"
owner sec "SELECT count(*) FROM daznode_crm.schedule_crm_maintenance()" >/dev/null
expect_eq "pg_cron jobs scheduled by the owner run as the owner" \
    "$(q sec -c "SELECT string_agg(DISTINCT username, ',') || ':' || count(*) FROM cron.job")" "app_owner:4"
quiet sec -c "UPDATE cron.job SET schedule = '* * * * *'"

echo "# a legacy database of other shapes, as the non-superuser owner, parallel query on"
supabase_like_db shapes fixtures/legacy/other_shapes.sql
PARALLEL_ON="$PGOPTIONS -c max_parallel_workers_per_gather=2 -c parallel_setup_cost=0 -c parallel_tuple_cost=0 -c min_parallel_table_scan_size=0"
out=$(PGOPTIONS=$PARALLEL_ON owner shapes "SELECT count(*) FROM daznode_crm.cleanup_orphaned_records()")
out="$out$(PGOPTIONS=$PARALLEL_ON owner shapes "CALL daznode_crm.migrate()")"
PGOPTIONS=$PARALLEL_ON "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U app_owner -d shapes -f demo/30-resolve-findings.sql >/dev/null 2>&1
out="$out$(PGOPTIONS=$PARALLEL_ON owner shapes "CALL daznode_crm.migrate('complete')")"
expect_eq "views of other shapes and an app trigger calling public's functions unqualified: the whole migration as the owner" \
    "$(grep -c ERROR <<<"$out")|$(q shapes -c "SELECT count(*) FROM daznode_crm.schema_migrations")|$(q shapes -c "SELECT count(*) FROM daznode_crm.migration_findings WHERE kind = 'legacy_view_moved'")|$(api shapes authenticated 2 "SELECT count(*) > 0 FROM public.crm_campaign_stats")" \
    "0|12|2|t"

echo "# 1. no way up to superuser through code the owner controls"
quiet sec -c "SET ROLE app_owner; $EVIL"
# a. is_admin_user() reading a view, a policy or a cast of the owner's
owner sec "ALTER TABLE public.admin_roles RENAME TO admin_roles_real; CREATE VIEW public.admin_roles AS SELECT user_id, public.evil() AS role FROM public.admin_roles_real" >/dev/null
expect_eq "admin_roles replaced by a view: an anon request with a JWT runs none of it, and is nobody's admin" \
    "$(api sec anon 5 "SELECT daznode_crm.is_admin_user()")|$(evil_log sec)|$(not_super)" "f|nothing|"
owner sec "DROP VIEW public.admin_roles; ALTER TABLE public.admin_roles_real RENAME TO admin_roles" >/dev/null
owner sec "ALTER TABLE public.admin_roles FORCE ROW LEVEL SECURITY; CREATE POLICY evil ON public.admin_roles USING (public.evil() IS NOT NULL)" >/dev/null
api sec authenticated 5 "SELECT daznode_crm.is_admin_user()" >/dev/null
expect_eq "a forced policy on admin_roles: the lookup runs as the owner (who bypasses RLS here), never as the extension's owner" "$(evil_log sec)|$(not_super)" "nothing|"
owner sec "DROP POLICY evil ON public.admin_roles; ALTER TABLE public.admin_roles NO FORCE ROW LEVEL SECURITY; TRUNCATE public.evil_log" >/dev/null
owner sec "CREATE TYPE public.role_t AS ENUM ('super_admin', 'admin', 'moderator', 'support');
           CREATE FUNCTION public.role_to_text(public.role_t) RETURNS text LANGUAGE sql AS \$\$ SELECT public.evil() \$\$;
           CREATE CAST (public.role_t AS text) WITH FUNCTION public.role_to_text(public.role_t) AS IMPLICIT;
           ALTER TABLE public.admin_roles DISABLE TRIGGER USER;
           ALTER TABLE public.admin_roles ALTER COLUMN role TYPE public.role_t USING role::text::public.role_t;
           ALTER TABLE public.admin_roles ENABLE TRIGGER USER" >/dev/null
quiet sec -c "TRUNCATE public.evil_log"
expect_eq "role as an enum with the owner's cast to text: read through its output function, the cast never runs" \
    "$(api sec authenticated 2 "SELECT daznode_crm.is_admin_user('{admin}')")|$(evil_log sec)|$(not_super)" "t|nothing|"
# b. writes of app tables by the segment refresh and the orphan cleanup, as superuser and as a maintenance member
owner sec "CREATE FUNCTION public.evil_trigger() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM public.evil(); RETURN NULL; END \$\$;
           CREATE TRIGGER evil AFTER INSERT OR UPDATE OR DELETE ON public.crm_customer_segment_members FOR EACH STATEMENT EXECUTE FUNCTION public.evil_trigger();
           CREATE TRIGGER evil AFTER INSERT OR UPDATE OR DELETE ON public.crm_email_sends FOR EACH STATEMENT EXECUTE FUNCTION public.evil_trigger();
           CREATE TRIGGER evil AFTER INSERT OR UPDATE OR DELETE ON public.admin_roles FOR EACH STATEMENT EXECUTE FUNCTION public.evil_trigger()" >/dev/null
seg=$(q sec -c "SELECT id FROM public.crm_customer_segments WHERE auto_update ORDER BY name LIMIT 1")
for who in postgres dba; do
    as "$who" sec "SELECT count(*) FROM daznode_crm.refresh_segment('$seg'); SELECT count(*) FROM daznode_crm.refresh_auto_update_segments(); SELECT count(*) FROM daznode_crm.cleanup_orphaned_records()" >/dev/null
done
expect_eq "the owner's triggers fired by refresh_segment, refresh_auto_update_segments and the cleanup run as the owner" \
    "$(evil_log sec)|$(not_super)" "app_owner|"
# The same writes in steps (run_in_steps), by a maintenance member who owns nothing and by the
# non-superuser owner: each unit's statements run as the owner, and each run is logged.
quiet sec -c "TRUNCATE public.evil_log"
for who in dba app_owner; do
    as "$who" sec "CALL daznode_crm.run_in_steps('refresh_auto_update_segments')" >/dev/null
    as "$who" sec "CALL daznode_crm.run_in_steps('cleanup_orphaned_records')" >/dev/null
done
expect_eq "run_in_steps() by a member who owns nothing and by the non-superuser owner: the owner's triggers run as the owner, every run logged" \
    "$(evil_log sec)|$(not_super)|$(q sec -c "SELECT count(DISTINCT run_started) FROM daznode_crm.run_in_steps_log WHERE job IN ('refresh_auto_update_segments', 'cleanup_orphaned_records')")" "app_owner||4"
# c. the diagnostic reading a view planted where a table was
quiet sec -c "TRUNCATE public.evil_log"
as authenticator sec "SET ROLE anon; CREATE FUNCTION public.anon_evil() RETURNS text LANGUAGE plpgsql AS \$f\$ BEGIN INSERT INTO public.evil_log VALUES (current_user); BEGIN EXECUTE \$\$ALTER ROLE anon SUPERUSER\$\$; EXCEPTION WHEN OTHERS THEN NULL; END; RETURN 'x'; END \$f\$;
    CREATE VIEW public.users AS SELECT id, public.anon_evil() AS email FROM public.profiles" >/dev/null
diag=$(as postgres sec "SELECT status FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'object: public.users'")
expect_eq "a view planted by anon at public.users: reported ERROR, never read by the diagnostic" "$diag|$(evil_log sec)|$(not_super)" "ERROR|nothing|"
quiet sec -c "DROP VIEW public.users"
# d. the reverse mirror writing the backup (a trigger of the owner's on crm_email_sends itself
# would run as whoever writes, superuser included: PostgreSQL's rule, not the extension's)
owner sec "DROP TRIGGER evil ON public.crm_email_sends" >/dev/null
owner sec "CREATE TRIGGER evil AFTER INSERT OR UPDATE OR DELETE ON public.crm_email_sends_backup FOR EACH STATEMENT EXECUTE FUNCTION public.evil_trigger()" >/dev/null
quiet sec -c "TRUNCATE public.evil_log"
as postgres sec "UPDATE public.crm_email_sends SET status = status WHERE id IN (SELECT id FROM public.crm_email_sends LIMIT 3)" >/dev/null
api sec service_role 0 "UPDATE public.crm_email_sends SET status = status WHERE id IN (SELECT id FROM public.crm_email_sends LIMIT 3)" >/dev/null
expect_eq "a superuser's and service_role's writes: the mirror writes the backup as its owner, whose triggers run as the owner" \
    "$(evil_log sec)|$(not_super)" "app_owner|"
expect_eq "the mirror function belongs to the backup's owner" \
    "$(q sec -c "SELECT proowner::regrole FROM pg_proc WHERE oid = 'public.daznode_mirror_to_backup()'::regprocedure")" "app_owner"
# e. an object of step 0009 made first by someone else
supabase_like_db squat
as authenticator squat "SET ROLE anon; CREATE VIEW public.crm_performance_monitor AS SELECT 1 AS x" >/dev/null
out=$(as app_owner squat "CALL daznode_crm.migrate()")
expect_eq "crm_performance_monitor made first by anon: migrate() stops at 0009 with 42501 and a finding, the view is not adopted" \
    "$out|$(q squat -c "SELECT relowner::regrole FROM pg_class WHERE oid = 'public.crm_performance_monitor'::regclass")|$(q squat -c "SELECT count(*) FROM daznode_crm.schema_migrations WHERE step = '0009_analytics_views'")|$(q squat -c "SELECT count(*) FROM daznode_crm.migration_findings WHERE step = '0009_analytics_views' AND kind = 'refused' AND detail LIKE '%crm_performance_monitor%anon%'")" \
    "ERROR:  42501|anon|0|1"
# c'. a view where crm_email_sends was (the app dropped or renamed the table)
owner squat "ALTER TABLE public.crm_email_sends RENAME TO crm_email_sends_old" >/dev/null
quiet squat -c "SET ROLE app_owner; $EVIL"
as authenticator squat "SET ROLE anon; CREATE FUNCTION public.anon_evil() RETURNS uuid LANGUAGE plpgsql AS \$f\$ BEGIN INSERT INTO public.evil_log VALUES (current_user); RETURN NULL; END \$f\$;
    CREATE VIEW public.crm_email_sends AS SELECT public.anon_evil() AS customer_id, public.anon_evil() AS campaign_id" >/dev/null
expect_eq "a view planted at public.crm_email_sends: ERROR in the diagnostic, never read by it or by the cleanup" \
    "$(as postgres squat "SELECT status FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'object: public.crm_email_sends'")|$(as dba squat "SELECT count(*) FROM daznode_crm.cleanup_orphaned_records() WHERE table_name = 'public.crm_email_sends' AND action LIKE 'skipped%'")|$(evil_log squat)" \
    "ERROR|2|nothing"

# Legacy policies step 0008 keeps next to its own: checked by its self-check as every API role and
# every kind of requester.
supabase_like_db pol
owner pol "CREATE POLICY \"Admins can view all orders\" ON public.orders FOR SELECT USING (EXISTS (SELECT 1 FROM auth.users u WHERE u.id = auth.uid() AND u.raw_user_meta_data ->> 'role' = 'admin'));
    CREATE POLICY \"Users can view own profile\" ON public.profiles FOR SELECT USING (auth.uid() = id);
    CREATE POLICY \"Users manage own subscriptions\" ON public.subscriptions FOR ALL USING ((SELECT auth.uid()) = user_id)" >/dev/null
expect_eq "a legacy policy reading auth.users (unreadable by the API roles) is dropped, its definition kept as a finding; orders read fine" \
    "$(owner pol "CALL daznode_crm.migrate()" | grep -c ERROR)|$(q pol -c "SELECT count(*) FROM daznode_crm.migration_findings WHERE kind = 'policy_dropped_would_error' AND detail LIKE '%CREATE POLICY \"Admins can view all orders\" ON public.orders AS PERMISSIVE FOR SELECT TO PUBLIC USING%'")|$(api pol authenticated 2 "SELECT count(*) > 0 FROM public.orders")" \
    "0|1|t"
expect_eq "a legacy policy repeating the matrix's owner rule is dropped; one letting users write their own rows is kept as an error finding" \
    "$(q pol -c "SELECT string_agg(kind || ':' || table_name, ',' ORDER BY kind) FROM daznode_crm.migration_findings WHERE kind IN ('policy_dropped_duplicate', 'policy_grants_more')")|$(q pol -c "SELECT string_agg(polname, ',' ORDER BY polname) FROM pg_policy WHERE polname NOT LIKE 'daznode%'")" \
    "policy_dropped_duplicate:public.profiles,policy_grants_more:public.subscriptions|Users manage own subscriptions"
supabase_like_db wide
owner wide "ALTER TABLE public.crm_email_templates ENABLE ROW LEVEL SECURITY;
    CREATE POLICY \"everyone reads templates\" ON public.crm_email_templates FOR SELECT USING (true)" >/dev/null
expect_eq "a legacy policy granting more reads than the matrix: the diagnostic names it, step 0008 drops it, keeping it as an ERROR finding" \
    "$(owner wide "SELECT check_name || ' ' || status FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name LIKE 'policies: public.crm_email_templates%'" | tr '\n' ' ')|$(owner wide "CALL daznode_crm.migrate()" | grep -c ERROR)|$(q wide -c "SELECT count(*) FROM pg_policy WHERE polname = 'everyone reads templates'")" \
    "policies: public.crm_email_templates as anon ERROR policies: public.crm_email_templates as authenticated ERROR|0|0"
expect_eq "the finding names the requester, the table and the policy, with its definition" \
    "$(q wide -c "SELECT count(*) FROM daznode_crm.migration_findings WHERE kind = 'policy_dropped_grants_more' AND table_name = 'public.crm_email_templates' AND detail LIKE 'ERROR: policy \"everyone reads templates\" showed more than the role matrix (no JWT as anon sees % row(s), the matrix says 0;%CREATE POLICY \"everyone reads templates\" ON public.crm_email_templates AS PERMISSIVE FOR SELECT TO PUBLIC USING (true)'")" "1"
expect_eq "afterwards anon reads no template" "$(api wide anon 0 "SELECT count(*) FROM public.crm_email_templates")" "0"

# The diagnostic checks the live app: what fails for the API roles today, what shadows our names,
# what exposes secrets.
supabase_like_db live
owner live "ALTER TABLE public.admin_roles ENABLE ROW LEVEL SECURITY;
    CREATE POLICY \"admins read roles\" ON public.admin_roles FOR SELECT USING (EXISTS (SELECT 1 FROM public.admin_roles a WHERE a.user_id = auth.uid()));
    CREATE FUNCTION public.is_admin_user(uid uuid) RETURNS boolean LANGUAGE sql SECURITY DEFINER AS 'SELECT true'" >/dev/null
expect_eq "the diagnostic: a recursive policy fails for each API role, a legacy SECURITY DEFINER is_admin_user(uuid) open to them, users' password exposed: ERRORs" \
    "$(as postgres live "SELECT string_agg(check_name, ' / ' ORDER BY check_name) FROM daznode_crm.run_pre_migration_diagnostic() WHERE status = 'ERROR' AND check_name ~ '^(policies|legacy function|sensitive)'")" \
    "legacy function: public.is_admin_user(uuid) / policies: public.admin_roles as anon / policies: public.admin_roles as authenticated / sensitive columns: public.users"
expect_eq "the diagnostic: CRM tables the API roles read with row-level security off, in one ERROR" \
    "$(as postgres live "SELECT status || ' ' || (details LIKE '%crm_email_sends%profiles%') FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'row-level security: off'")" "ERROR true"
expect_eq "after migrate(), the recursive policy is gone and the diagnostic sees no failing read" \
    "$(owner live "CALL daznode_crm.migrate()" | grep -c ERROR)|$(as postgres live "SELECT status FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'policies: reads as the API roles'")" "0|OK"

echo "# 2. nothing the extension creates is a way around RLS"
part=$(q sec -c "SELECT 'public.' || relname FROM pg_class WHERE relname ~ '^crm_email_sends_p[0-9]{6}$' ORDER BY relname DESC LIMIT 1 OFFSET 3")
for r in anon authenticated; do
    expect_eq "$r reads a partition directly: 42501" "$(api sec $r 5 "SELECT count(*) FROM $part")" "ERROR:  42501"
    expect_eq "$r inserts into the default partition directly: 42501" \
        "$(api sec $r 2 "INSERT INTO public.crm_email_sends_default (id, campaign_id, created_at) SELECT gen_random_uuid(), id, '1990-01-01' FROM public.crm_email_campaigns LIMIT 1")" "ERROR:  42501"
done
for r in anon authenticated service_role; do
    expect_eq "$r cannot fold, recount, rebase or read the live counts' tables, nor call their trigger function: 42501 each" \
        "$(for sql in "SELECT daznode_crm.fold_campaign_counts()" "SELECT count(*) FROM daznode_crm.campaign_counts_drift()" "SELECT daznode_crm.rebase_campaign_counts()" \
                      "SELECT count(*) FROM crm_private.campaign_send_deltas" "SELECT count(*) FROM crm_private.campaign_send_counts" "SELECT daznode_crm.count_send_changes()"; do
               api sec $r 2 "$sql"; echo; done | grep -c '42501')" "6"
done
# Checked on the counts alone: the partition cleanup above (and the owner's cron jobs, every
# minute) drop old months, which changes the recount but never the counts (they keep history).
live_sql=$(owner sec "SELECT daznode_crm.campaign_counts_sql('live')")
clicked_before=$(owner sec "SELECT sum(clicked) FROM ($live_sql) l")
expect_eq "an admin's webhook through PostgREST (authenticated) is counted by the owner's counter at once: 3 more clicked" \
    "$(api sec authenticated 2 "WITH u AS (UPDATE public.crm_email_sends SET status = 'clicked', clicked_at = now() WHERE id IN (SELECT id FROM public.crm_email_sends WHERE clicked_at IS NULL AND bounced_at IS NULL AND campaign_id IS NOT NULL LIMIT 3) RETURNING 1) SELECT count(*) FROM u")|$(( $(owner sec "SELECT sum(clicked) FROM ($live_sql) l") - clicked_before ))" "3|3"
# The counter's insert runs as the deltas table's owner, never as the writer nor as a superuser
# writer: the owner's own trigger on that table (which tries to make app_owner a superuser) runs
# as app_owner and gains nothing. (The log may hold more rows: the owner's cron jobs write too.)
quiet sec -c "TRUNCATE public.evil_log" -c "SET ROLE app_owner" -c "CREATE FUNCTION crm_private.evil_on_deltas() RETURNS trigger LANGUAGE plpgsql AS \$f\$ BEGIN PERFORM public.evil(); RETURN NULL; END \$f\$" \
    -c "CREATE TRIGGER evil_on_deltas AFTER INSERT ON crm_private.campaign_send_deltas FOR EACH STATEMENT EXECUTE FUNCTION crm_private.evil_on_deltas()"
webhook="UPDATE public.crm_email_sends SET status = 'clicked', clicked_at = now() WHERE id IN (SELECT id FROM public.crm_email_sends WHERE clicked_at IS NULL AND bounced_at IS NULL AND campaign_id IS NOT NULL LIMIT 1)"
expect_eq "a webhook by authenticated and one by a superuser: the counter inserts as the deltas' owner (its trigger ran as app_owner), no one gains a right" \
    "$(api sec authenticated 2 "$webhook" >/dev/null; as postgres sec "$webhook" >/dev/null; evil_log sec)|$(not_super)" "app_owner|"
quiet sec -c "DROP TRIGGER evil_on_deltas ON crm_private.campaign_send_deltas" -c "DROP FUNCTION crm_private.evil_on_deltas()" -c "TRUNCATE public.evil_log"
expect_eq "the owner (a maintenance member) attaches the counter to another table: its writes stop with 42501, nothing counted" \
    "$(owner sec "CREATE TABLE public.not_the_sends (LIKE public.crm_email_sends INCLUDING DEFAULTS); CREATE TRIGGER c AFTER INSERT ON public.not_the_sends REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION daznode_crm.count_send_changes(); INSERT INTO public.not_the_sends (id, campaign_id, email) SELECT gen_random_uuid(), id, 'x' FROM public.crm_email_campaigns LIMIT 1" 2>&1 | grep -o 42501; owner sec "DROP TABLE IF EXISTS public.not_the_sends" >/dev/null)" "42501"
expect_eq "after the partitioning swap, the app's statistics views still read as their reader: a customer sees no campaign" \
    "$(api sec authenticated 5 "SELECT count(*) FROM public.crm_campaign_stats")|$(q sec -c "SELECT string_agg(relname || '=' || array_to_string(reloptions, ','), ' ' ORDER BY relname) FROM pg_class WHERE relname IN ('crm_campaign_stats', 'crm_segment_stats')")" \
    "0|crm_campaign_stats=security_invoker=true crm_segment_stats=security_invoker=true"
expect_eq "every table in public has RLS on (splinter's rls_disabled_in_public)" \
    "$(q sec -c "SELECT coalesce(string_agg(relname, ','), 'none') FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relrowsecurity AND relname <> 'evil_log'")" "none"
expect_eq "no API role holds a privilege on a partition, the backup of users, or a materialized view" \
    "$(q sec -c "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a WHERE c.relnamespace = 'public'::regnamespace
                 AND (c.relispartition OR c.relname = 'users_backup' OR c.relkind = 'm') AND a.grantee IN ('anon'::regrole, 'authenticated'::regrole, 'service_role'::regrole, 0)")" "0"

echo "# 3. privileges within the role matrix"
expect_eq "a signed-in user with no role empties admin_roles: 42501" "$(api sec authenticated 5 "TRUNCATE public.admin_roles")" "ERROR:  42501"
expect_eq "they attach a trigger to admin_roles: 42501" \
    "$(api sec authenticated 5 "CREATE TRIGGER x BEFORE INSERT ON public.admin_roles FOR EACH ROW EXECUTE FUNCTION public.evil_trigger()")" "ERROR:  42501"
expect_eq "service_role truncates a CRM table: 42501" "$(api sec service_role 0 "TRUNCATE public.crm_email_templates")" "ERROR:  42501"
for r in anon authenticated; do
    expect_eq "$r reads crm_performance_monitor: 42501" "$(api sec $r 1 "SELECT count(*) FROM public.crm_performance_monitor")" "ERROR:  42501"
    expect_eq "$r reads or writes users_backup: 42501" \
        "$(api sec $r 1 "SELECT count(*) FROM public.users_backup") $(api sec $r 1 "DELETE FROM public.users_backup")" "ERROR:  42501 ERROR:  42501"
done

echo "# 4. a customer edits only what is theirs to edit"
for col in "t4g_tokens = 1000000" "email_verified = NOT coalesce(email_verified, false)" "verified_at = now()" "profile_score = 100" "auth_method = 'admin'" "email = 'x@daznode.io'"; do
    expect_eq "customer sets $col on their own profile: 42501" \
        "$(api sec authenticated 5 "UPDATE public.profiles SET $col WHERE id = md5('profile5')::uuid")" "ERROR:  42501"
done
expect_eq "customer sets their city: 1 row" \
    "$(api sec authenticated 5 "WITH u AS (UPDATE public.profiles SET ville = 'Lyon' WHERE id = md5('profile5')::uuid RETURNING 1) SELECT count(*) FROM u")" "1"
expect_eq "an admin and service_role set tokens: 1 row each" \
    "$(api sec authenticated 2 "WITH u AS (UPDATE public.profiles SET t4g_tokens = 7 WHERE id = md5('profile5')::uuid RETURNING 1) SELECT count(*) FROM u") $(api sec service_role 0 "WITH u AS (UPDATE public.profiles SET t4g_tokens = 8 WHERE id = md5('profile5')::uuid RETURNING 1) SELECT count(*) FROM u")" "1 1"

echo "# 5. partitions are known by identity"
quiet sec -c "CREATE TABLE public.victim (x int)"
owner sec "CREATE SCHEMA otherschema; CREATE TABLE otherschema.victim (LIKE public.crm_email_sends INCLUDING CONSTRAINTS);
           ALTER TABLE public.crm_email_sends ATTACH PARTITION otherschema.victim FOR VALUES FROM ('1999-01-01') TO ('1999-02-01');
           CREATE TABLE public.crm_email_sends_p199801 (LIKE public.crm_email_sends INCLUDING CONSTRAINTS);
           ALTER TABLE public.crm_email_sends ATTACH PARTITION public.crm_email_sends_p199801 FOR VALUES FROM (MINVALUE) TO ('1998-06-01')" >/dev/null
# The pg_cron jobs run every minute now: while one holds the cleanup's lock, a call reports only
# "skipped: already running", so ask again (20 s at most).
for _ in $(seq 1 40); do
    out=$(owner sec "SELECT coalesce(string_agg(partition_name || ':' || split_part(action, ':', 1), ',' ORDER BY partition_name) FILTER (WHERE action LIKE 'unexpected%'), '')
                            || CASE WHEN bool_or(action = 'skipped: already running') THEN '#busy' ELSE '' END
                     FROM daznode_crm.cleanup_old_email_partitions()")
    [ "${out%#busy}" = "$out" ] && break
    sleep 0.5
done
expect_eq "a partition in another schema and one bounded by MINVALUE: reported, not dropped, the run goes on" \
    "$out|$(q sec -c "SELECT count(*) FROM pg_class WHERE oid IN (to_regclass('public.victim'), to_regclass('otherschema.victim'), to_regclass('public.crm_email_sends_p199801'))")" \
    "otherschema.victim:unexpected partition, left alone,public.crm_email_sends_p199801:unexpected partition, left alone|3"

echo "# 6. the role cache"
owner sec "CREATE TABLE public.admin_roles_child () INHERITS (public.admin_roles);
           INSERT INTO public.admin_roles_child (user_id, role) VALUES (md5('profile5')::uuid, 'super_admin')" >/dev/null
expect_eq "a row in an inheritance child of admin_roles makes nobody admin" "$(api sec authenticated 5 "SELECT daznode_crm.is_admin_user()")" "f"
owner sec "DROP TABLE public.admin_roles_child" >/dev/null

# PostgreSQL's default settings: parallel query on. The policy's is_admin_user() then runs in the
# leader of a parallel plan, where no new snapshot may be taken.
PAR="SET LOCAL max_parallel_workers_per_gather = 2; SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_table_scan_size = 0;"
expect_eq "an admin's read through RLS with a parallel plan works, and the answer is the matrix's" \
    "$(api sec authenticated 2 "$PAR EXPLAIN (COSTS OFF) SELECT count(*) FROM public.profiles WHERE lower(email) LIKE '%a%'" | grep -c Gather)|$(api sec authenticated 2 "$PAR SELECT count(*) FROM public.profiles WHERE lower(email) LIKE '%@%'")|$(api sec authenticated 5 "$PAR SELECT count(*) FROM public.profiles WHERE lower(email) LIKE '%@%'")" \
    "1|$(q sec -c "SELECT count(*) FROM public.profiles WHERE lower(email) LIKE '%@%'")|1"

echo "# 7. recommendations are quoted"
owner sec "ALTER TABLE public.crm_email_templates ADD COLUMN \"x); DROP TABLE public.profiles; --\" uuid CONSTRAINT \"fk; DROP TABLE public.orders; --\" REFERENCES public.profiles (id)" >/dev/null
rec=$(as dba sec "SELECT recommendation FROM daznode_crm.diagnose_crm_performance() WHERE area = 'foreign keys' AND recommendation LIKE '%DROP TABLE%'")
owner sec "${rec%%;*}" >/dev/null
obj=$(as dba sec "SELECT object FROM daznode_crm.diagnose_crm_performance() WHERE area = 'foreign keys' AND object LIKE '%DROP TABLE%'")
expect_eq "a column and a constraint named like SQL: the advice and the details quote them, and running the advice drops nothing" \
    "$(q sec -c "SELECT to_regclass('public.profiles') IS NOT NULL AND to_regclass('public.orders') IS NOT NULL")|$(grep -c '"x); DROP TABLE public.profiles; --"' <<<"$rec")|$obj" \
    't|1|public.crm_email_templates."fk; DROP TABLE public.orders; --"'
owner sec "ALTER TABLE public.crm_email_templates DROP COLUMN \"x); DROP TABLE public.profiles; --\"" >/dev/null

echo "# 8. bad input"
owner sec "INSERT INTO public.crm_customer_segments (name, criteria, auto_update) VALUES
    ('deep', (repeat('{\"a\":', 200) || '1' || repeat('}', 200))::jsonb, true),
    ('huge', ('{\"orders\": {\"count\": {\"min\": 1' || repeat('0', 400) || '}}}')::jsonb, true),
    ('long', jsonb_build_object('profile', jsonb_build_object('email_verified', repeat('y', 10000000))), true)" >/dev/null
for s in deep huge long; do
    out=$(as dba sec "SELECT * FROM daznode_crm.refresh_segment('$(q sec -c "SELECT id FROM public.crm_customer_segments WHERE name = '$s'")')")
    expect_eq "criteria '$s': 22023, never XX000" "$out" "ERROR:  22023"
done
msg=$("$PG_BIN/psql" -X -q -At -h "$DIR" -p "$PORT" -U dba -d sec -c "SELECT * FROM daznode_crm.refresh_segment('$(q sec -c "SELECT id FROM public.crm_customer_segments WHERE name = 'long'")')" 2>&1)
expect_eq "the 10 MB value's error message is short" "$([ "${#msg}" -lt 1000 ] && echo short || echo "${#msg} bytes")" "short"
expect_eq "one bad segment gets its own problem row; the others are refreshed" \
    "$(as dba sec "SELECT count(*) FILTER (WHERE problem IS NOT NULL) || ',' || count(*) FILTER (WHERE problem IS NULL) FROM daznode_crm.refresh_auto_update_segments()")" \
    "3,$(q sec -c "SELECT count(*) - 3 FROM public.crm_customer_segments WHERE auto_update")"
owner sec "DELETE FROM public.crm_customer_segments WHERE name IN ('deep', 'huge', 'long')" >/dev/null
# An error raised by the owner's code under ours (here a trigger of the segment refresh) reaches
# the user as the owner's message, with no Rust backtrace in its DETAIL (the release build).
owner sec "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'members are frozen'; END \$\$;
           CREATE TRIGGER refuse BEFORE INSERT OR DELETE ON public.crm_customer_segment_members FOR EACH ROW EXECUTE FUNCTION public.refuse()" >/dev/null
owner sec "INSERT INTO public.crm_customer_segments (name, criteria) VALUES ('everyone', '{}')" >/dev/null
msg=$("$PG_BIN/psql" -X -q -At -h "$DIR" -p "$PORT" -U dba -d sec -c "SELECT * FROM daznode_crm.refresh_segment('$(q sec -c "SELECT id FROM public.crm_customer_segments WHERE name = 'everyone'")')" 2>&1)
expect_eq "an error of the owner's trigger under refresh_segment: its message, no Rust backtrace" \
    "$(grep -c 'members are frozen' <<<"$msg")|$(grep -cE 'pgrx|rustc|\.rs:[0-9]' <<<"$msg")" "1|0"
owner sec "DROP TRIGGER refuse ON public.crm_customer_segment_members; DELETE FROM public.crm_customer_segments WHERE name = 'everyone'" >/dev/null
before=$(q sec -c "SELECT (SELECT count(*) FROM public.admin_roles) || ',' || (SELECT count(*) FROM public.crm_customer_segment_members) || ',' || (SELECT count(customer_id) FROM public.crm_email_sends)")
owner sec "ALTER TABLE public.profiles RENAME TO profiles_away" >/dev/null
out=$(as dba sec "SELECT count(*) FILTER (WHERE action LIKE 'skipped%') FROM daznode_crm.cleanup_orphaned_records()")
owner sec "ALTER TABLE public.profiles_away RENAME TO profiles" >/dev/null
expect_eq "profiles briefly missing: the cleanup skips its rules and deletes nothing" \
    "$out|$(q sec -c "SELECT (SELECT count(*) FROM public.admin_roles) || ',' || (SELECT count(*) FROM public.crm_customer_segment_members) || ',' || (SELECT count(customer_id) FROM public.crm_email_sends)")" \
    "6|$before"
expect_eq "a retention of 1 microsecond: 22023; with force => true it is accepted" \
    "$(owner sec "SELECT count(*) FROM daznode_crm.cleanup_old_email_partitions('1 microsecond', dry_run => true)")|$(owner sec "SELECT count(*) > 0 FROM daznode_crm.cleanup_old_email_partitions('1 microsecond', dry_run => true, force => true)")" \
    "ERROR:  22023|t"

echo "# 9. look-alike emails"
twin=$(q sec -c "SELECT normalize(email, NFD) FROM public.profiles WHERE email ~ '[^[:ascii:]]' OR true ORDER BY id LIMIT 1")
expect_eq "the decomposed form of an address: one more address is refused (23505)" \
    "$(api sec service_role 0 "INSERT INTO public.profiles (id, email, nom, prenom) VALUES (gen_random_uuid(), 'jose' || U&'\\0301' || '@twin.io', 'a', 'b'), (gen_random_uuid(), 'jos' || U&'\\00E9' || '@twin.io', 'a', 'b')")" "ERROR:  23505"
for c in 00AD 034F 061C 2066 2069 FE0F; do
    expect_eq "an address holding U+$c is invalid" "$(q sec -c "SELECT daznode_crm.is_valid_email('ali' || U&'\\$c' || 'ce@x.io')")" "f"
done
expect_eq "an address holding a tag character is invalid" "$(q sec -c "SELECT daznode_crm.is_valid_email('alice' || U&'\\+0E0041' || '@x.io')")" "f"

echo "# pg_cron: the owner's jobs really run"
for _ in $(seq 1 100); do
    [ "$(q sec -c "SELECT count(DISTINCT jobid) FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')")" -ge 3 ] && break
    sleep 2
done
expect_eq "the three jobs ran as the owner and succeeded" \
    "$(q sec -c "SELECT string_agg(DISTINCT j.username || ':' || d.status, ',') FROM cron.job_run_details d JOIN cron.job j USING (jobid)")" "app_owner:succeeded"
quiet sec -c "SELECT cron.unschedule(jobid) FROM cron.job"

echo "# the rollback window, as the owner"
expect_eq "rollback as the owner" "$(owner sec "SELECT daznode_crm.rollback_email_sends_partitioning() ? 'restored'")" "t"
expect_eq "the partitioned table kept by the rollback is its owner's only" \
    "$(q sec -c "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = 'public.crm_email_sends_partitioned'::regclass AND a.grantee <> c.relowner")" "0"
expect_eq "partition again, then finish, as the owner" \
    "$(owner sec "CALL daznode_crm.migrate('complete')" | grep -c ERROR)|$(owner sec "SELECT daznode_crm.finish_email_sends_partitioning(drop_backup => true) LIKE 'backup dropped%'")" \
    "0|t"

echo "# 6b. the role cache under logical replication"
supabase_like_db pub
supabase_like_db sub
for db in pub sub; do as app_owner $db "CALL daznode_crm.migrate()" >/dev/null; done
quiet pub -c "CREATE PUBLICATION roles FOR TABLE public.admin_roles" -c "SELECT pg_create_logical_replication_slot('roles', 'pgoutput')"
quiet sub -c "TRUNCATE public.admin_roles" \
    -c "CREATE SUBSCRIPTION roles CONNECTION 'host=$DIR port=$PORT dbname=pub user=postgres' PUBLICATION roles WITH (create_slot = false, slot_name = 'roles')"
for _ in $(seq 1 50); do
    [ "$(q sub -c "SELECT count(*) FROM public.admin_roles")" = "$(q pub -c "SELECT count(*) FROM public.admin_roles")" ] && break
    sleep 0.2
done
# A second session keeps a connection open (as PostgREST does) and asks before and after a
# demotion made on the publisher.
coproc WATCH { "$PG_BIN/psql" -X -q -At -h "$DIR" -p "$PORT" -U authenticator -d sub 2>&1; }
ask() { echo "BEGIN; SET LOCAL ROLE authenticated; SET LOCAL request.jwt.claims = '{\"sub\": \"$(uuid_of 2)\"}'; SELECT daznode_crm.is_admin_user(); COMMIT;" >&"${WATCH[1]}"; read -r -t 10 line <&"${WATCH[0]}"; echo "$line"; }
first=$(ask)
quiet pub -c "DELETE FROM public.admin_roles WHERE user_id = md5('profile2')::uuid"
for _ in $(seq 1 50); do
    [ "$(q sub -c "SELECT count(*) FROM public.admin_roles WHERE user_id = md5('profile2')::uuid")" = 0 ] && break
    sleep 0.2
done
second=$(ask)
echo '\q' >&"${WATCH[1]}"
expect_eq "a demotion replicated into admin_roles is seen by a session that had cached the role" "$first|$second" "t|f"
quiet sub -c "ALTER SUBSCRIPTION roles DISABLE" -c "ALTER SUBSCRIPTION roles SET (slot_name = NONE)" -c "DROP SUBSCRIPTION roles"
quiet pub -c "SELECT pg_drop_replication_slot('roles')"

summary
