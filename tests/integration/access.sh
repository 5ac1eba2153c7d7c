#!/usr/bin/env bash
# Integration tests of access control and analytics: every policy as every role, on a
# Supabase-like database (an auth schema with auth.uid(), roles anon, authenticated and
# service_role) and on plain PostgreSQL (identity from the JWT claim setting); is_admin_user()
# that cannot be steered; rates; segments refreshed by difference.
# Prints "ok - …" / "not ok - …" per check and ends with "N passed, M failed".
set -uo pipefail
export PGOPTIONS="-c client_min_messages=warning"
source "$(dirname "$0")/lib.sh"
DIR=$(run_dir it-access) && PORT=$(free_port) || exit 1
# as DB ROLE USER_N SQL: runs SQL as ROLE with the JWT of fixture profile N (0: no JWT).
as() {
    local db=$1 role=$2 n=$3 sql=$4 claims=""
    [ "$n" = 0 ] || claims="SET request.jwt.claims = '{\"sub\": \"$(uuid_of "$n")\", \"role\": \"$role\"}';"
    psql_at "$DIR" "$PORT" "$db" -At -v ON_ERROR_STOP=0 -c "SET ROLE $role; $claims $sql" 2>&1 | grep -v '^SET$' | tr '\n' ' ' | sed 's/ $//'
}
uuid_of() { q postgres -c "SELECT md5('profile' || $1)::uuid"; }

cluster_start "$DIR" "$PORT" "timezone = 'Europe/Paris'"
trap 'cluster_stop "$DIR"; remove_run_dir "$DIR"' EXIT
quiet postgres -c "CREATE ROLE anon NOLOGIN" -c "CREATE ROLE authenticated NOLOGIN" -c "CREATE ROLE service_role NOLOGIN BYPASSRLS" \
    -c "CREATE ROLE app_user NOLOGIN" -c "CREATE ROLE attacker NOLOGIN"

setup_db() { # setup_db NAME supabase|plain
    quiet postgres -c "CREATE DATABASE $1"
    if [ "$2" = supabase ]; then
        quiet "$1" <<'SQL'
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
SQL
    fi
    quiet "$1" -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql
    quiet "$1" -v profiles=200 -v sends=2000 -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql
    # As on Supabase: the API roles get every table of public, including those created later
    # (default privileges), before the migration runs.
    quiet "$1" -c "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO anon, authenticated, service_role, app_user" \
        -c "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO anon, authenticated, service_role, app_user" \
        -c "GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role, app_user"
    psql_at "$DIR" "$PORT" "$1" -q -c "CALL daznode_crm.migrate()" >/dev/null 2>&1
}

matrix() { # matrix DB ROLE
    local db=$1 r=$2
    echo "# $db, as $r"
    # Fixture: profile 1 super_admin, 2 admin, 3 moderator, 4 support, 5 a customer.
    local count="SELECT (SELECT count(*) FROM public.profiles) || ',' || (SELECT count(*) FROM public.crm_customer_segments) || ',' ||
                 (SELECT count(*) FROM public.crm_customer_segment_members) || ',' || (SELECT count(*) FROM public.crm_email_templates) || ',' ||
                 (SELECT count(*) FROM public.crm_email_campaigns) || ',' || (SELECT count(*) FROM public.crm_email_sends) || ',' ||
                 (SELECT count(*) FROM public.admin_roles) || ',' || (SELECT count(*) FROM public.orders) || ',' || (SELECT count(*) FROM public.subscriptions)"
    local all
    all=$(q "$db" -c "$count")
    local own_orders own_subs
    own_orders=$(q "$db" -c "SELECT count(*) FROM public.orders WHERE user_id = md5('profile5')::uuid")
    own_subs=$(q "$db" -c "SELECT count(*) FROM public.subscriptions WHERE user_id = md5('profile5')::uuid")
    IFS=, read -r p s m t c e a o sub <<<"$all"
    expect_eq "no JWT: sees nothing" "$(as "$db" "$r" 0 "$count")" "0,0,0,0,0,0,0,0,0"
    expect_eq "customer: own profile, own orders and subscriptions, nothing of the CRM" "$(as "$db" "$r" 5 "$count")" "1,0,0,0,0,0,0,$own_orders,$own_subs"
    expect_eq "support: reads profiles and sends, nothing else of the CRM" "$(as "$db" "$r" 4 "$count")" "$p,0,0,0,0,$e,1,$o,$sub"
    expect_eq "moderator: templates, campaigns, sends" "$(as "$db" "$r" 3 "$count")" "$p,0,0,$t,$c,$e,1,$o,$sub"
    expect_eq "admin: everything but other people's admin roles" "$(as "$db" "$r" 2 "$count")" "$p,$s,$m,$t,$c,$e,1,$o,$sub"
    expect_eq "super_admin: everything" "$(as "$db" "$r" 1 "$count")" "$p,$s,$m,$t,$c,$e,$a,$o,$sub"
    expect_eq "customer updates their own profile, not another" \
        "$(as "$db" "$r" 5 "WITH u AS (UPDATE public.profiles SET ville = 'Lyon' WHERE id = md5('profile5')::uuid RETURNING 1) SELECT count(*) FROM u; WITH u AS (UPDATE public.profiles SET ville = 'Lyon' WHERE id = md5('profile6')::uuid RETURNING 1) SELECT count(*) FROM u")" \
        "1 0"
    expect_eq "support cannot change a send" \
        "$(as "$db" "$r" 4 "WITH u AS (UPDATE public.crm_email_sends SET status = 'opened' WHERE id = md5('send1')::uuid RETURNING 1) SELECT count(*) FROM u")" "0"
    expect_eq "moderator cannot create a segment" \
        "$(as "$db" "$r" 3 "INSERT INTO public.crm_customer_segments (name, criteria) VALUES ('x', '{}')" | grep -c 'row-level security')" "1"
    expect_eq "admin creates a segment" "$(as "$db" "$r" 2 "WITH i AS (INSERT INTO public.crm_customer_segments (name, criteria) VALUES ('x', '{}') RETURNING 1) SELECT count(*) FROM i")" "1"
    expect_eq "the materialized views of crm_private are not readable directly, even by an admin" \
        "$(as "$db" "$r" 2 "SELECT count(*) FROM crm_private.crm_campaigns_analytics_mv" | grep -c 'permission denied')" "1"
    expect_eq "the guide's React Admin sources: moderator reads campaigns analytics, not segments; customer and no JWT neither" \
        "$(as "$db" "$r" 3 "SELECT count(*) FROM public.crm_campaigns_analytics_mv") $(as "$db" "$r" 3 "SELECT count(*) FROM public.crm_segments_stats_mv") $(as "$db" "$r" 5 "SELECT count(*) FROM public.crm_campaigns_analytics_mv") $(as "$db" "$r" 0 "SELECT count(*) FROM public.crm_segments_stats_mv")" \
        "$c 0 0 0"
    expect_eq "an admin reads the segments source" "$(as "$db" "$r" 2 "SELECT count(*) FROM public.crm_segments_stats_mv")" "$s"
    expect_eq "the app's statistics views respect RLS for the reader (security_invoker)" \
        "$(as "$db" "$r" 5 "SELECT count(*) FROM public.crm_segment_stats")" "0"
}

setup_db supa supabase
matrix supa authenticated
expect_eq "service_role bypasses RLS and reads everything" \
    "$(as supa service_role 0 "SELECT count(*) FROM public.crm_customer_segments")" "$(q supa -c "SELECT count(*) FROM public.crm_customer_segments")"
expect_eq "on Supabase, the identity is auth.uid()" \
    "$(as supa authenticated 2 "SELECT daznode_crm.current_user_id() = auth.uid(), daznode_crm.is_admin_user()")" "t|t"
supa_uid_body=$(q supa -c "SELECT prosrc FROM pg_proc WHERE oid = 'auth.uid()'::regprocedure")
expect_eq "Supabase's auth.uid(): the id follows the JWT settings, within and across transactions" \
    "$(q supa <<SQL | tr '\n' ' '
SET request.jwt.claims = '{"sub": "$(uuid_of 2)"}';
SELECT daznode_crm.current_user_id() = md5('profile2')::uuid, daznode_crm.is_admin_user();
SET request.jwt.claims = '{"sub": "$(uuid_of 5)"}';
SELECT daznode_crm.current_user_id() = md5('profile5')::uuid, daznode_crm.is_admin_user();
BEGIN;
SET LOCAL request.jwt.claim.sub = '$(uuid_of 1)';
SELECT daznode_crm.current_user_id() = md5('profile1')::uuid, daznode_crm.is_admin_user('{super_admin}');
COMMIT;
SELECT daznode_crm.current_user_id() = md5('profile5')::uuid, daznode_crm.is_admin_user();
SQL
)" "t|t t|f t|t t|f "
expect_eq "another auth.uid() (reading a table) is asked again at every transaction" \
    "$(q supa <<SQL | tr '\n' ' '
CREATE TABLE auth.current_user_of_test (id uuid);
INSERT INTO auth.current_user_of_test VALUES (md5('profile2')::uuid);
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS \$\$ SELECT id FROM auth.current_user_of_test \$\$;
SELECT daznode_crm.current_user_id() = md5('profile2')::uuid, daznode_crm.is_admin_user();
UPDATE auth.current_user_of_test SET id = md5('profile5')::uuid;
SELECT daznode_crm.current_user_id() = md5('profile5')::uuid, daznode_crm.is_admin_user();
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS \$\$$supa_uid_body\$\$;
DROP TABLE auth.current_user_of_test;
SQL
)" "t|t t|f "
no_recursion=$(as supa authenticated 2 "SELECT count(*) FROM public.admin_roles; SELECT count(*) FROM public.crm_email_sends")
if grep -q "infinite recursion" <<<"$no_recursion"; then not_ok "no infinite recursion in policies" "$no_recursion"; else ok "no infinite recursion in policies"; fi
expect_eq "every policy calls the functions once per query (diagnose_crm_performance finds no per-row call)" \
    "$(q supa -c "SELECT count(*) FROM daznode_crm.diagnose_crm_performance() WHERE area = 'rls' AND status <> 'OK'")|$(q supa -c "SELECT count(*) > 10 FROM daznode_crm.diagnose_crm_performance() WHERE area = 'rls'")" "0|t"

setup_db plain plain
matrix plain app_user

echo "# the Supabase role model: tables of a non-superuser owner who runs the migration, auth.uid() of another"
supabase_roles
supabase_like_db owned
expect_eq "migrate() as the owner" "$(as_login app_owner owned "CALL daznode_crm.migrate()")" ""
matrix owned authenticated
expect_eq "service_role bypasses RLS and reads everything" \
    "$(as owned service_role 0 "SELECT count(*) FROM public.crm_customer_segments")" "$(q owned -c "SELECT count(*) FROM public.crm_customer_segments")"
expect_eq "auth.uid() owned by supabase_auth_admin: the JWT claims give the same identity" \
    "$(as owned authenticated 2 "SELECT daznode_crm.current_user_id() = auth.uid(), daznode_crm.is_admin_user()")" "t|t"

echo "# is_admin_user() cannot be steered"
expect_eq "there is no way to ask about another user" \
    "$(as plain app_user 5 "SELECT daznode_crm.is_admin_user(md5('profile1')::uuid)" | grep -c 'does not exist')" "1"
quiet plain -c "CREATE SCHEMA evil AUTHORIZATION attacker" -c "GRANT CREATE ON DATABASE plain TO attacker"
quiet plain -c "SET ROLE attacker; CREATE TABLE evil.admin_roles (user_id uuid, role text); INSERT INTO evil.admin_roles VALUES (md5('profile5')::uuid, 'super_admin'); CREATE FUNCTION evil.is_admin_user(text[] DEFAULT NULL) RETURNS boolean LANGUAGE sql AS 'SELECT true'; GRANT USAGE ON SCHEMA evil TO PUBLIC; GRANT SELECT ON evil.admin_roles TO PUBLIC"
expect_eq "a search_path with same-named objects first changes nothing" \
    "$(as plain app_user 5 "SET search_path = evil, public, daznode_crm; SELECT daznode_crm.is_admin_user(), count(*) FROM public.crm_customer_segments")" "f|0"
quiet plain -c "SET ROLE attacker; CREATE SCHEMA auth; CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql AS \$\$ SELECT md5('profile1')::uuid \$\$; GRANT USAGE ON SCHEMA auth TO PUBLIC"
expect_eq "an auth.uid() planted by a non-superuser role is ignored" \
    "$(as plain app_user 5 "SELECT daznode_crm.current_user_id() = md5('profile5')::uuid, daznode_crm.is_admin_user()")" "t|f"
expect_eq "a role removed by the caller's own transaction counts from its next statement" \
    "$(q plain -c "BEGIN; SET LOCAL request.jwt.claims = '{\"sub\": \"$(uuid_of 2)\"}'; SELECT daznode_crm.is_admin_user(); DELETE FROM public.admin_roles WHERE user_id = md5('profile2')::uuid; SELECT daznode_crm.is_admin_user(); ROLLBACK;" | tr '\n' ' ')" \
    "t f "
expect_eq "declared STABLE and SECURITY DEFINER with a pinned search_path" \
    "$(q plain -c "SELECT provolatile::text || '|' || prosecdef || '|' || array_to_string(proconfig, ',') FROM pg_proc WHERE oid = 'daznode_crm.is_admin_user(text[])'::regprocedure")" \
    "s|true|search_path=pg_catalog, pg_temp"

echo "# roles kept across transactions, forgotten when admin_roles changes"
if has_extension dblink; then
# A second session (a dblink connection keeps one backend) identified as profile 2 (admin) asks
# is_admin_user() and is_admin_user('{admin}') after each change made by this session.
quiet plain -c "CREATE EXTENSION IF NOT EXISTS dblink" -c "CREATE SCHEMA it" -c "CREATE TABLE it.saved AS SELECT * FROM public.admin_roles"
sessions() { # sessions SQL: runs SQL in this session, with pg_temp.other() asking the other one
    q plain <<SQL 2>&1 | grep -v '^OK$\|^$\|^SET$\|^BEGIN$\|^COMMIT$\|^ROLLBACK$\|^INSERT\|^DELETE\|^UPDATE\|^ALTER\|^TRUNCATE\|^SELECT [0-9]\|^CREATE\|^DROP' | tr '\n' ' ' | sed 's/ $//'
SELECT dblink_connect('other', 'host=$DIR port=$PORT dbname=plain user=postgres') \gset
SELECT dblink_exec('other', \$\$SET request.jwt.claims = '{"sub": "$(uuid_of 2)"}'\$\$) \gset
CREATE FUNCTION pg_temp.other() RETURNS text LANGUAGE sql AS
  \$\$ SELECT r FROM dblink('other', 'SELECT daznode_crm.is_admin_user()::text || daznode_crm.is_admin_user(''{admin}'')::text') AS t(r text) \$\$;
$1
SELECT dblink_disconnect('other') \gset
SQL
}
p2="md5('profile2')::uuid"
expect_eq "revoked, granted, changed: seen by the other session at its next transaction" \
    "$(sessions "SELECT pg_temp.other(); DELETE FROM public.admin_roles WHERE user_id = $p2; SELECT pg_temp.other();
                 INSERT INTO public.admin_roles (user_id, role) VALUES ($p2, 'support'); SELECT pg_temp.other();
                 UPDATE public.admin_roles SET role = 'admin' WHERE user_id = $p2; SELECT pg_temp.other();")" \
    "truetrue falsefalse truefalse truetrue"
expect_eq "a change rolled back changes nothing; TRUNCATE and replica-mode writes count" \
    "$(sessions "SELECT pg_temp.other(); BEGIN; DELETE FROM public.admin_roles WHERE user_id = $p2; ROLLBACK; SELECT pg_temp.other();
                 TRUNCATE public.admin_roles; SELECT pg_temp.other();
                 INSERT INTO public.admin_roles SELECT * FROM it.saved; SELECT pg_temp.other();
                 SET session_replication_role = replica; DELETE FROM public.admin_roles WHERE user_id = $p2; RESET session_replication_role; SELECT pg_temp.other();
                 INSERT INTO public.admin_roles SELECT * FROM it.saved WHERE user_id = $p2; SELECT pg_temp.other();")" \
    "truetrue truetrue falsefalse truetrue falsefalse truetrue"
expect_eq "a lookup made in an old snapshot is not kept: a revocation during a repeatable-read transaction holds at the next one" \
    "$(sessions "SELECT pg_temp.other(); SELECT dblink_exec('other', 'BEGIN ISOLATION LEVEL REPEATABLE READ') \gset
                 SELECT * FROM dblink('other', 'SELECT 1') AS t(one int) \gset
                 DELETE FROM public.admin_roles WHERE user_id = $p2;
                 SELECT * FROM dblink('other', 'SELECT count(*) FROM public.crm_email_templates') AS t(n bigint) \gset
                 SELECT pg_temp.other() IS NOT NULL; SELECT dblink_exec('other', 'COMMIT') \gset
                 SELECT pg_temp.other(); INSERT INTO public.admin_roles SELECT * FROM it.saved WHERE user_id = $p2;")" \
    "truetrue t falsefalse"
expect_eq "other users of the same session are kept apart" \
    "$(sessions "SELECT pg_temp.other(); SELECT dblink_exec('other', \$\$SET request.jwt.claims = '{\"sub\": \"$(uuid_of 5)\"}'\$\$) \gset
                 SELECT pg_temp.other(); SELECT dblink_exec('other', \$\$SET request.jwt.claims = '{\"sub\": \"$(uuid_of 2)\"}'\$\$) \gset
                 SELECT pg_temp.other();")" \
    "truetrue falsefalse truetrue"
for how in "DISABLE TRIGGER daznode_admin_roles_changed" "ENABLE TRIGGER daznode_admin_roles_changed" "DISABLE TRIGGER ALL"; do
    expect_eq "trigger changed ($how): roles are kept one transaction only, and replica-mode writes still count" \
        "$(sessions "SELECT pg_temp.other(); ALTER TABLE public.admin_roles $how; SELECT pg_temp.other();
                     SET session_replication_role = replica; DELETE FROM public.admin_roles WHERE user_id = $p2; RESET session_replication_role;
                     SELECT pg_temp.other(); INSERT INTO public.admin_roles SELECT * FROM it.saved WHERE user_id = $p2;
                     ALTER TABLE public.admin_roles ENABLE TRIGGER ALL; ALTER TABLE public.admin_roles ENABLE ALWAYS TRIGGER daznode_admin_roles_changed;")" \
        "truetrue truetrue falsefalse"
done
expect_eq "trigger dropped: roles are kept one transaction only; migrate's step puts it back" \
    "$(sessions "SELECT pg_temp.other(); DROP TRIGGER daznode_admin_roles_changed ON public.admin_roles; SELECT pg_temp.other();
                 DELETE FROM public.admin_roles WHERE user_id = $p2; SELECT pg_temp.other();
                 INSERT INTO public.admin_roles SELECT * FROM it.saved WHERE user_id = $p2; SELECT pg_temp.other();
                 CREATE TRIGGER daznode_admin_roles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.admin_roles
                     FOR EACH STATEMENT EXECUTE FUNCTION daznode_crm.admin_roles_changed();
                 ALTER TABLE public.admin_roles ENABLE ALWAYS TRIGGER daznode_admin_roles_changed;
                 SELECT pg_temp.other(); DELETE FROM public.admin_roles WHERE user_id = $p2; SELECT pg_temp.other();
                 INSERT INTO public.admin_roles SELECT * FROM it.saved WHERE user_id = $p2;")" \
    "truetrue truetrue falsefalse truetrue truetrue falsefalse"
else
    skip "roles across transactions, seen from a second session (a dblink connection)" dblink
fi
expect_eq "the invalidation trigger is created by the migration, ENABLE ALWAYS, its function not executable by PUBLIC" \
    "$(q supa -c "SELECT tgenabled, has_function_privilege('authenticated', tgfoid, 'EXECUTE') FROM pg_trigger WHERE tgrelid = 'public.admin_roles'::regclass AND tgname = 'daznode_admin_roles_changed'")" \
    "A|f"

echo "# rates from the *_at timestamps"
quiet plain <<'SQL'
INSERT INTO public.crm_email_campaigns (id, name, subject, content) VALUES ('00000000-0000-0000-0000-0000000000c1', 'Rates', 's', 'c');
INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at, opened_at, clicked_at, bounced_at) VALUES
  ('00000000-0000-0000-0000-0000000000c1', 'a@x.io', 'clicked',   now(), NULL,  now(), NULL),
  ('00000000-0000-0000-0000-0000000000c1', 'b@x.io', 'bounced',   now(), NULL,  NULL,  now()),
  ('00000000-0000-0000-0000-0000000000c1', 'c@x.io', 'delivered', now(), NULL,  NULL,  NULL),
  ('00000000-0000-0000-0000-0000000000c1', 'd@x.io', 'opened',    now(), now(), NULL,  NULL),
  ('00000000-0000-0000-0000-0000000000c1', 'e@x.io', 'failed',    NULL,  NULL,  NULL,  NULL);
SQL
quiet plain -c "SELECT * FROM daznode_crm.refresh_crm_materialized_views()"
# Counted by hand: 4 sent (e never left), 3 delivered (a, c, d: b bounced, e failed), 2 opened
# (a's click implies its open, d), 1 clicked, 1 bounced, 1 failed; open 2/3, click 1/3 of the
# delivered, bounce 1/4 and delivery 3/4 of the sent.
expect_eq "a clicked send counts as opened, a bounced one as neither" \
    "$(q plain -c "SELECT recipients, sent, delivered, opened, clicked, bounced, failed, open_rate, click_rate, bounce_rate, delivery_rate FROM crm_private.crm_campaigns_analytics_mv WHERE id = '00000000-0000-0000-0000-0000000000c1'")" \
    "5|4|3|2|1|1|1|66.67|33.33|25.00|75.00"
expect_eq "one definition of each rate: crm_campaign_stats counts and rates the same campaign the same way" \
    "$(q plain -c "SELECT total_sends, sent, delivered, opened, clicked, bounced, open_rate, click_rate FROM public.crm_campaign_stats WHERE id = '00000000-0000-0000-0000-0000000000c1'")" \
    "5|4|3|2|1|1|66.67|33.33"

echo "# segments"
seg() { q plain -c "INSERT INTO public.crm_customer_segments (name, criteria) VALUES ('t', \$\$$1\$\$) RETURNING id" | head -1; }
members_of() { q plain -c "SELECT count(*) FROM public.crm_customer_segment_members WHERE segment_id = '$1'"; }
for pair in \
    '{"profile":{"email_verified":true}}|SELECT count(*) FROM public.profiles WHERE email_verified' \
    '{"profile":{"has_pubkey":true}}|SELECT count(*) FROM public.profiles WHERE pubkey IS NOT NULL AND pubkey <> '"''"'' \
    '{"profile":{"created_days_ago":{"min":30,"max":400}}}|SELECT count(*) FROM public.profiles WHERE created_at <= now() - interval '"'"'30 days'"'"' AND created_at >= now() - interval '"'"'400 days'"'"'' \
    '{"activity":{"last_login_days":100}}|SELECT count(*) FROM public.profiles WHERE updated_at >= now() - interval '"'"'100 days'"'"'' \
    '{"subscription":{"plan":["premium","enterprise"],"status":["active"]}}|SELECT count(*) FROM public.profiles p WHERE EXISTS (SELECT 1 FROM public.subscriptions s WHERE s.user_id = p.id AND s.plan_id IN ('"'premium', 'enterprise'"') AND s.status = '"'active'"')' \
    '{"orders":{"total_amount":{"min":20000},"count":{"min":1}}}|SELECT count(*) FROM public.profiles p WHERE (SELECT sum(amount) FROM public.orders o WHERE o.user_id = p.id) >= 20000'; do
    criteria=${pair%%|*}
    expected=$(q plain -c "${pair#*|}")
    id=$(seg "$criteria")
    got=$(q plain -c "SELECT added || '/' || removed || '/' || members FROM daznode_crm.refresh_segment('$id')")
    expect_eq "refresh_segment $criteria" "$got" "$expected/0/$expected"
done
id=$(seg '{"profile":{"email_verified":true}}')
q plain -c "SELECT * FROM daznode_crm.refresh_segment('$id')" >/dev/null
others="SELECT string_agg(id::text, ',' ORDER BY id) FROM public.crm_customer_segment_members WHERE segment_id = '$id' AND customer_id NOT IN (md5('profile3')::uuid, md5('profile4')::uuid)"
before=$(q plain -c "$others")
# profile3 was not verified, profile4 was: one enters, one leaves.
quiet plain -c "UPDATE public.profiles SET email_verified = NOT email_verified WHERE id IN (md5('profile3')::uuid, md5('profile4')::uuid)"
expect_eq "by difference: one in, one out, the other member rows untouched (same row ids)" \
    "$(q plain -c "SELECT added || '/' || removed FROM daznode_crm.refresh_segment('$id')")|$(q plain -c "$others")" "1/1|$before"
bad=$(seg '{"profile":{"vip":true}}')
out=$(q plain -v ON_ERROR_STOP=0 -c "SELECT * FROM daznode_crm.refresh_segment('$bad')" -c "\\echo :LAST_ERROR_SQLSTATE")
expect_eq "an unknown key is refused with 22023, naming the known ones" "$(grep -c 'profile.email_verified' <<<"$out")|$(tail -1 <<<"$out")" "1|22023"
evil=$(seg '{"subscription":{"plan":["x'"'"'); DELETE FROM public.profiles; --"]}}')
q plain -c "SELECT * FROM daznode_crm.refresh_segment('$evil')" >/dev/null
expect_eq "an injection attempt in a criteria value stays a value" "$(q plain -c "SELECT count(*) > 0 FROM public.profiles")|$(members_of "$evil")" "t|0"
expect_eq "refresh_auto_update_segments() covers every auto_update segment, reporting the bad one" \
    "$(q plain -c "SELECT count(*) || '|' || count(problem) FROM daznode_crm.refresh_auto_update_segments()" 2>&1 | tail -1)" \
    "$(q plain -c "SELECT count(*) FROM public.crm_customer_segments WHERE auto_update")|1"

summary
