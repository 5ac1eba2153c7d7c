#!/usr/bin/env bash
# Integration tests of access control: every policy as every role on a migrated legacy database,
# on plain PostgreSQL (identity from the JWT claim setting) and in the Supabase role model (a
# non-superuser owner runs the migration, auth.uid() belongs to another role); an auth.uid()
# planted by a non-superuser; roles kept across transactions, seen from a second session. The
# single-session contract (the matrix on a Supabase-like database, who the caller is, how it
# cannot be steered, rates, segments) is tests/pg_regress/sql/access.sql.
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

setup_db() { # setup_db NAME: the legacy fixture, migrated, on plain PostgreSQL
    quiet postgres -c "CREATE DATABASE $1"
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
    expect_eq "crm_private's materialized view and live counts are not readable directly, even by an admin" \
        "$(for t in crm_segments_stats_mv campaign_send_counts campaign_send_deltas; do as "$db" "$r" 2 "SELECT count(*) FROM crm_private.$t"; echo; done | grep -c 'permission denied')" "3"
    expect_eq "a webhook's write, by a role with no right on crm_private, is counted at once (the counter is the owner's)" \
        "$(as "$db" "$r" 2 "WITH u AS (UPDATE public.crm_email_sends SET clicked_at = now() WHERE id = md5('send2')::uuid RETURNING 1) SELECT count(*) FROM u")|$(q "$db" -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" "1|0"
    expect_eq "the guide's React Admin sources: moderator reads campaigns analytics, not segments; customer and no JWT neither" \
        "$(as "$db" "$r" 3 "SELECT count(*) FROM public.crm_campaigns_analytics_mv") $(as "$db" "$r" 3 "SELECT count(*) FROM public.crm_segments_stats_mv") $(as "$db" "$r" 5 "SELECT count(*) FROM public.crm_campaigns_analytics_mv") $(as "$db" "$r" 0 "SELECT count(*) FROM public.crm_segments_stats_mv")" \
        "$c 0 0 0"
    expect_eq "an admin reads the segments source" "$(as "$db" "$r" 2 "SELECT count(*) FROM public.crm_segments_stats_mv")" "$s"
    expect_eq "the app's statistics views respect RLS for the reader (security_invoker)" \
        "$(as "$db" "$r" 5 "SELECT count(*) FROM public.crm_segment_stats")" "0"
}

setup_db plain
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

echo "# is_admin_user() cannot be steered (the rest of it is tests/pg_regress/sql/access.sql)"
quiet plain -c "GRANT CREATE ON DATABASE plain TO attacker"
quiet plain -c "SET ROLE attacker; CREATE SCHEMA auth; CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql AS \$\$ SELECT md5('profile1')::uuid \$\$; GRANT USAGE ON SCHEMA auth TO PUBLIC"
expect_eq "an auth.uid() planted by a non-superuser role is ignored" \
    "$(as plain app_user 5 "SELECT daznode_crm.current_user_id() = md5('profile5')::uuid, daznode_crm.is_admin_user()")" "t|f"
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

summary
