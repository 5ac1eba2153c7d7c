# Shared by the integration tests: sourced, never run. Each test file sets DIR and PORT (its own
# throwaway cluster) before using these.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO_ROOT"

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; [ -z "${2:-}" ] || printf '%s\n' "$2" | head -40 | sed 's/^/    /'; failed=$((failed + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $3"$'\n'"got:      $2"; fi; }
q() { local db=$1; shift; psql_at "$DIR" "$PORT" "$db" -At "$@" 2>&1; }
quiet() { local db=$1; shift; psql_at "$DIR" "$PORT" "$db" "$@" >/dev/null 2>&1; }
# checksums DB: one "table|rows|md5" line per table; a failure never compares equal to anything
checksums() {
    local out
    out=$(q "$1" -f tests/integration/checksums.sql)
    if [ -z "$out" ] || grep -q ERROR <<<"$out"; then echo "checksums of $1 failed: $out" >&2; echo "checksums-failed-$RANDOM$RANDOM"; else echo "$out"; fi
}
# wait_for DB SQL [TRIES]: asks SQL (a boolean) every 0.1 s until it is true, TRIES times at most
# (100: 10 s). Fails when it never was.
wait_for() {
    local db=$1 sql=$2 n=${3:-100}
    for _ in $(seq 1 "$n"); do [ "$(q "$db" -c "$sql")" = t ] && return 0; sleep 0.1; done
    echo "# wait_for: still false after $n tries: $sql" >&2
    return 1
}
# An advisory lock another session holds (granted), as the background holders below take it.
ADVISORY_HELD="SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid())"
# legacy_db NAME PROFILES [SENDS]: a database with the extension and a legacy DazNode schema.
legacy_db() {
    quiet postgres -c "CREATE DATABASE $1"
    quiet "$1" -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql
    quiet "$1" -v profiles="$2" -v sends="${3:-$(($2 * 10))}" -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql
}
# What a DBA does with the migration's findings: the demo's step, quietly.
resolve_findings() { quiet "$1" -f demo/30-resolve-findings.sql; }
# as_login USER DB SQL: a login as USER (trust auth), errors shown as "ERROR: <SQLSTATE>".
as_login() {
    local user=$1 db=$2; shift 2
    "$PG_BIN/psql" -X -q -At -h "$DIR" -p "$PORT" -U "$user" -d "$db" -v VERBOSITY=sqlstate -v ON_ERROR_STOP=1 -c "$*" 2>&1 \
        | sed -E 's/^psql:[^:]*: //' | tr '\n' ' ' | sed 's/ *$//'
}

# The Supabase role model (README "Security"), cluster-wide: app_owner owns the tables (Supabase's
# `postgres`: no superuser, CREATEROLE, BYPASSRLS), supabase_auth_admin owns auth.uid(), the API
# roles, PostgREST's authenticator (NOINHERIT, SET ROLE to them), and dba, a maintenance member
# who owns nothing. Roles that exist already are kept.
supabase_roles() {
    quiet postgres <<'SQL'
DO $$
DECLARE r text[];
BEGIN
    FOREACH r SLICE 1 IN ARRAY ARRAY[['app_owner', 'LOGIN CREATEROLE BYPASSRLS'], ['supabase_auth_admin', 'NOLOGIN'],
                                     ['anon', 'NOLOGIN'], ['authenticated', 'NOLOGIN'], ['service_role', 'NOLOGIN BYPASSRLS'],
                                     ['authenticator', 'LOGIN NOINHERIT'], ['dba', 'LOGIN']] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r[1]) THEN
            EXECUTE format('CREATE ROLE %I %s', r[1], r[2]);
        END IF;
    END LOOP;
END $$;
GRANT anon, authenticated, service_role TO authenticator;
SQL
}

# supabase_like_db NAME [FIXTURE.sql ...]: the extension (installed by the superuser), Supabase's
# roles and default privileges, and a legacy DazNode database with dirty rows (and the given
# fixtures of other shapes on top), owned by app_owner.
supabase_like_db() {
    supabase_stub "$1"
    # The generator loads in replica mode (a superuser's right); then everything is app_owner's.
    local db=$1 extra=()
    shift
    for f in "$@"; do extra+=(-f "$f"); done
    quiet "$db" -f fixtures/legacy/schema.sql "${extra[@]}"
    quiet "$db" -v profiles=200 -v sends=2000 -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql
    give_public_to_app_owner "$db"
}
# dazlng_db NAME: the same stub with a database of the real project's shape (fixtures/dazlng),
# its dirty rows included. Loading stops at the first error: the fixture must load whole.
dazlng_db() {
    supabase_stub "$1"
    psql_at "$DIR" "$PORT" "$1" -X -q -v ON_ERROR_STOP=1 -f fixtures/dazlng/schema.sql >/dev/null
    give_public_to_app_owner "$1"
}
supabase_stub() {
    quiet postgres -c "CREATE DATABASE $1"
    quiet "$1" <<'SQL'
GRANT ALL ON SCHEMA public TO app_owner, anon, authenticated, service_role;
SELECT format($$GRANT CREATE ON DATABASE %I TO app_owner$$, current_database()) \gexec
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, app_owner;
SET ROLE supabase_auth_admin;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  select
  coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role;
-- As on Supabase: auth.users is not readable by the API roles.
CREATE TABLE auth.users (id uuid PRIMARY KEY, raw_user_meta_data jsonb);
RESET ROLE;
CREATE EXTENSION daznode_crm;
GRANT daznode_crm_maintenance TO app_owner, dba;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
SQL
}
give_public_to_app_owner() {
    quiet "$1" <<'SQL'
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel, c.relkind FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') LOOP
        EXECUTE format('ALTER %s %s OWNER TO app_owner', CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, r.rel);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO app_owner', r.fn);
    END LOOP;
END $$;
GRANT ALL ON ALL TABLES IN SCHEMA public TO anon, authenticated, service_role;
SQL
}

summary() {
    echo
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
