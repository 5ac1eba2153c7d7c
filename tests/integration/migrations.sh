#!/usr/bin/env bash
# Integration tests of the schema migrations, against the installed build, in a
# throwaway cluster whose time zone is not UTC. What needs more than one session, pg_dump, a
# cancelled backend or several databases lives here; the SQL contract is in tests/pg_regress.
# Prints "ok - …" / "not ok - …" per check and ends with "N passed, M failed".
set -uo pipefail
PROFILES=${IT_PROFILES:-2000}
source "$(dirname "$0")/lib.sh"
DIR=$(run_dir it-migrations) && PORT=$(free_port) || exit 1
checksum_of() { checksums "$1" | awk -F'|' -v t="$2" '$1 == t {print $2 "|" $3}'; }
schema_dump() {
    "$PG_BIN/pg_dump" -h "$DIR" -p "$PORT" -U postgres --schema-only --schema=public -T public.users_backup "$1" |
        grep -vE '^(--|\\restrict|\\unrestrict)' | sed '/^$/d'
}
members() {
    q "$1" -c "SELECT pg_describe_object(classid, objid, 0) || coalesce(' ' || md5(pg_get_functiondef(objid)), '')
               FROM pg_depend d LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid AND p.prokind <> 'a'
               WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
                 AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'daznode_crm')
               ORDER BY 1"
}
migrate() { psql_at "$DIR" "$PORT" "$1" -c "CALL daznode_crm.migrate()" 2>&1; }

# The frozen install scripts of released versions, for CREATE EXTENSION … VERSION.
cp sql/released/daznode_crm--*.sql "$("$PG_CONFIG" --sharedir)/extension/"
cluster_start "$DIR" "$PORT" "timezone = 'America/New_York'" "log_min_messages = warning"
trap 'cluster_stop "$DIR"; remove_run_dir "$DIR"' EXIT

echo "# empty database"
quiet postgres -c "CREATE DATABASE empty_db"
quiet empty_db -c "CREATE EXTENSION daznode_crm"
expect_eq "CREATE EXTENSION creates no application table" \
    "$(q empty_db -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" "0"
out=$(migrate empty_db)
expect_eq "migrate() applies every step on an empty database" \
    "$(q empty_db -c "SELECT count(*) FILTER (WHERE applied) || '/' || count(*) FROM daznode_crm.migration_status")" "11/12"
expect_eq "every planned index is valid" \
    "$(q empty_db -c "SELECT string_agg(DISTINCT status, ',') FROM daznode_crm.check_concurrent_indexes_status()")" "valid"
expect_eq "no constraint is left NOT VALID" \
    "$(q empty_db -c "SELECT count(*) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public' AND NOT c.convalidated")" "0"
out=$(migrate empty_db)
if grep -q "0 step(s) applied" <<<"$out"; then ok "a second migrate() applies nothing"; else not_ok "a second migrate() applies nothing" "$out"; fi

echo "# a legacy database of other shapes (fixtures/legacy/other_shapes.sql)"
quiet postgres -c "CREATE DATABASE shapes_db"
quiet shapes_db -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql -f fixtures/legacy/other_shapes.sql
quiet shapes_db -v profiles=300 -v sends=3000 -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql
before=$(checksums shapes_db | grep -vE '^(profiles|users)\|')
out=$(migrate shapes_db)
if grep -q "11 step(s) applied" <<<"$out"; then ok "migrate() applies every step over views of other shapes and an app trigger calling public's functions unqualified"; else not_ok "migrate() over other shapes" "$out"; fi
expect_eq "the campaign view nothing read is replaced; the segment view another view reads is renamed _legacy; both reported" \
    "$(q shapes_db -c "SELECT string_agg(detail, ' / ' ORDER BY table_name) FROM daznode_crm.migration_findings WHERE kind = 'legacy_view_moved'")" \
    "public.crm_campaign_stats had another shape and nothing read it: replaced / public.crm_segment_stats had another shape and public.crm_dashboard read it: renamed public.crm_segment_stats_legacy"
expect_eq "the app's view still works, on the legacy view; ours have our columns" \
    "$(q shapes_db -c "SELECT (SELECT segments FROM public.crm_dashboard) = (SELECT count(*) FROM public.crm_customer_segments), (SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.crm_campaign_stats'::regclass AND attname = 'open_rate')")" "t|1"
expect_eq "the app's trigger ran during the normalization, with the app's search_path" \
    "$(q shapes_db -c "SELECT count(*) FROM public.profiles WHERE profile_score IS DISTINCT FROM public.calculate_profile_score(profiles) AND updated_at > now() - interval '1 hour' AND email = daznode_crm.normalize_email(email)")" "0"
expect_eq "other tables: same rows, same content" "$(checksums shapes_db | grep -vE '^(profiles|users|users_backup)\|' | grep -vE '^(crm_email_sends_backup)')" "$before"
quiet shapes_db -f demo/30-resolve-findings.sql
quiet shapes_db -c "SELECT * FROM daznode_crm.cleanup_orphaned_records()"
out=$(psql_at "$DIR" "$PORT" shapes_db -c "CALL daznode_crm.migrate('complete')" 2>&1)
expect_eq "then migrate('complete') partitions it" \
    "$(q shapes_db -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")|$(grep -c ERROR <<<"$out")" "p|0"

echo "# legacy database, $PROFILES profiles"
legacy_db legacy_db "$PROFILES" $((PROFILES * 10))
before=$(checksums legacy_db)
quiet legacy_db -c "CREATE SCHEMA it_before; CREATE TABLE it_before.profiles AS SELECT * FROM public.profiles; CREATE TABLE it_before.users AS SELECT * FROM public.users"
out=$(migrate legacy_db)
if grep -q "11 step(s) applied" <<<"$out"; then ok "migrate() applies every step on a legacy database"; else not_ok "migrate() applies every step on a legacy database" "$out"; fi
after=$(checksums legacy_db)
for t in orders subscriptions admin_roles crm_customer_segments crm_customer_segment_members crm_email_templates crm_email_campaigns crm_email_sends; do
    expect_eq "$t: same rows, same content" "$(grep "^$t|" <<<"$after")" "$(grep "^$t|" <<<"$before")"
done
expect_eq "users is kept, unchanged, as users_backup" \
    "$(grep '^users_backup|' <<<"$after" | cut -d'|' -f2-)" "$(grep '^users|' <<<"$before" | cut -d'|' -f2-)"
expect_eq "profiles gained exactly the users rows the step says it copied" \
    "$(q legacy_db -c "SELECT count(*) - (SELECT count(*) FROM it_before.profiles) FROM public.profiles")" \
    "$(q legacy_db -c "SELECT result->>'copied_to_profiles' FROM daznode_crm.schema_migrations WHERE step = '0004_consolidate_users'")"
expect_eq "every users row is in profiles or reported as not copied" \
    "$(q legacy_db -c "SELECT count(*) FROM it_before.users u WHERE NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = u.id) AND NOT EXISTS (SELECT 1 FROM daznode_crm.migration_findings f WHERE f.kind = 'users_not_copied' AND f.row_id = u.id::text)")" "0"
expect_eq "copied users: names split into prenom and nom" \
    "$(q legacy_db -c "SELECT prenom || '|' || nom FROM public.profiles WHERE id = md5('user-only1')::uuid")" "Anne-Sophie|De la Tour 1"
expect_eq "profiles: only email and pubkey changed, and only as reported" \
    "$(q legacy_db -c "SELECT count(*) FILTER (WHERE (to_jsonb(b) - 'email' - 'pubkey') <> (to_jsonb(p) - 'email' - 'pubkey'))
                       || '|' || count(*) FILTER (WHERE b.email <> p.email)
                       || '|' || count(*) FILTER (WHERE b.pubkey IS DISTINCT FROM p.pubkey)
                       FROM it_before.profiles b JOIN public.profiles p USING (id)")" \
    "$(q legacy_db -c "SELECT '0|' || (result->>'emails_normalized') || '|' || ((result->>'empty_pubkeys_to_null')::int + (result->>'pubkeys_lowercased')::int)
                       FROM daznode_crm.schema_migrations WHERE step = '0002_normalize_profiles'")"
expect_eq "case variants of one email are reported, not merged" \
    "$(q legacy_db -c "SELECT count(*) FROM daznode_crm.migration_findings WHERE kind = 'email_case_collision'")" \
    "$(q legacy_db -c "SELECT count(*) FROM it_before.profiles WHERE daznode_crm.normalize_email(email) IN (SELECT daznode_crm.normalize_email(email) FROM it_before.profiles GROUP BY 1 HAVING count(*) > 1)")"
expect_eq "invalid pubkeys are reported with their ids" \
    "$(q legacy_db -c "SELECT count(*) FROM daznode_crm.migration_findings f JOIN public.profiles p ON p.id::text = f.row_id WHERE f.kind = 'invalid_pubkey' AND NOT daznode_crm.is_valid_lightning_pubkey(p.pubkey)")" \
    "$(q legacy_db -c "SELECT count(*) FROM public.profiles WHERE NOT daznode_crm.is_valid_lightning_pubkey(pubkey)")"
expect_eq "foreign keys to users now point at profiles" \
    "$(q legacy_db -c "SELECT confrelid::regclass FROM pg_constraint WHERE conname = 'orders_user_id_fkey'")" "profiles"
expect_eq "the legacy regex CHECKs are gone, the native ones in place" \
    "$(q legacy_db -c "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'public.profiles'::regclass AND contype = 'c'")" \
    "profiles_email_valid,profiles_pubkey_valid"
expect_eq "the dirty constraints stay NOT VALID, and new rows are checked at once" \
    "$(q legacy_db -c "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.profiles'::regclass AND NOT convalidated")|$(q legacy_db -c "INSERT INTO public.profiles (email, nom, prenom) VALUES ('a..b@x.io', 'x', 'y')" 2>&1 | grep -c profiles_email_valid)" \
    "2|1"

echo "# same schema as a fresh install, once the findings are resolved"
dup=$(q legacy_db -c "SELECT email FROM public.profiles WHERE daznode_crm.normalize_email(email) IN (SELECT daznode_crm.normalize_email(email) FROM public.profiles GROUP BY 1 HAVING count(*) > 1) ORDER BY id LIMIT 1")
expect_eq "while legacy duplicates wait, an interim unique index holds new rows: a new twin of a duplicate and of any address are refused (23505)" \
    "$(q legacy_db -c "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.profiles_email_normalized_key_interim'::regclass")|$(q legacy_db -v VERBOSITY=sqlstate -c "INSERT INTO public.profiles (email, nom, prenom) VALUES (upper('$dup'), 'x', 'y')")|$(q legacy_db -v VERBOSITY=sqlstate -c "INSERT INTO public.profiles (email, nom, prenom) VALUES ('fresh@daznode.io', 'x', 'y'); INSERT INTO public.profiles (email, nom, prenom) VALUES ('FRESH@daznode.io', 'x', 'y')")" \
    "t|ERROR:  23505|ERROR:  23505"
quiet legacy_db -c "DELETE FROM public.profiles WHERE email = 'fresh@daznode.io'"
resolve_findings legacy_db
expect_eq "once resolved, the plan builds the full unique indexes and drops the interim ones" \
    "$(q legacy_db -c "SELECT count(*) FROM pg_class WHERE relname LIKE '%\_interim'")|$(q legacy_db -c "SELECT count(*) FROM pg_index WHERE indexrelid IN (to_regclass('public.profiles_email_normalized_key'), to_regclass('public.profiles_pubkey_normalized_key')) AND indisvalid")" "0|2"
expect_eq "after the fixes, every planned index is valid" \
    "$(q legacy_db -c "SELECT string_agg(DISTINCT status, ',') FROM daznode_crm.check_concurrent_indexes_status()")" "valid"
diff_out=$(diff <(schema_dump legacy_db) <(schema_dump empty_db))
if [ -z "$diff_out" ]; then ok "pg_dump --schema-only: migrated legacy = migrated empty"; else not_ok "pg_dump --schema-only: migrated legacy = migrated empty" "$diff_out"; fi

echo "# upgrade from every released version, with data in it"
for old in $(ls sql/released | sed -nE 's/daznode_crm--(.*)\.sql/\1/p'); do
    quiet postgres -c "CREATE DATABASE upgrade_db"
    quiet upgrade_db -c "CREATE EXTENSION daznode_crm VERSION '$old'" -f fixtures/legacy/schema.sql
    quiet upgrade_db -v profiles=200 -v sends=1000 -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql
    upd=$(psql_at "$DIR" "$PORT" upgrade_db -c "ALTER EXTENSION daznode_crm UPDATE" 2>&1)
    expect_eq "ALTER EXTENSION UPDATE from $old" "$(q upgrade_db -c "SELECT extversion FROM pg_extension WHERE extname = 'daznode_crm'")" \
        "$(sed -nE 's/^version = "(.*)"/\1/p' Cargo.toml)"
    diff_out=$(diff <(members upgrade_db) <(members empty_db))
    if [ -z "$diff_out" ]; then ok "$old upgraded has the same members and function bodies as a fresh install"; else not_ok "$old upgraded = fresh install" "$upd"$'\n'"$diff_out"; fi
    out=$(migrate upgrade_db)
    if grep -q "11 step(s) applied" <<<"$out"; then ok "migrate() works after the upgrade from $old"; else not_ok "migrate() after upgrade from $old" "$out"; fi
    quiet postgres -c "DROP DATABASE upgrade_db"
done

echo "# pg_dump round trip"
"$PG_BIN/pg_dump" -h "$DIR" -p "$PORT" -U postgres legacy_db >"$DIR/plain.sql"
"$PG_BIN/pg_dump" -h "$DIR" -p "$PORT" -U postgres -Fc legacy_db >"$DIR/custom.dump"
quiet postgres -c "CREATE DATABASE restored_plain" -c "CREATE DATABASE restored_custom"
if restore_out=$("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d restored_plain -f "$DIR/plain.sql" 2>&1); then
    ok "plain dump restores with ON_ERROR_STOP"; else not_ok "plain dump restores with ON_ERROR_STOP" "$restore_out"; fi
if restore_out=$("$PG_BIN/pg_restore" --exit-on-error -h "$DIR" -p "$PORT" -U postgres -d restored_custom "$DIR/custom.dump" 2>&1); then
    ok "custom dump restores with --exit-on-error"; else not_ok "custom dump restores with --exit-on-error" "$restore_out"; fi
reference=$(checksums legacy_db)
for db in restored_plain restored_custom; do
    expect_eq "$db: every row of every table" "$(checksums $db)" "$reference"
    expect_eq "$db: the ledger and the findings came along, nothing pending" \
        "$(q $db -c "SELECT (SELECT count(*) FROM daznode_crm.schema_migrations) || '|' || (SELECT count(*) FROM daznode_crm.migration_findings) || '|' || (SELECT count(*) FROM daznode_crm.pending_migrations())")" \
        "$(q legacy_db -c "SELECT (SELECT count(*) FROM daznode_crm.schema_migrations) || '|' || (SELECT count(*) FROM daznode_crm.migration_findings) || '|0'")"
    expect_eq "$db: the extension works" "$(q $db -c "SELECT daznode_crm.is_valid_email('a..b@x.io')")" "f"
    expect_eq "$db: the live campaign counts came along exact, and count a new send" \
        "$(q $db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")|$(q $db -c "WITH i AS (INSERT INTO public.crm_email_sends (campaign_id, email, status) SELECT id, 'restored@x.io', 'sent' FROM public.crm_email_campaigns LIMIT 1 RETURNING 1) SELECT count(*) FROM i")|$(q $db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" "0|1|0"
done

echo "# DROP EXTENSION never deletes customer data"
quiet postgres -c "CREATE DATABASE drop_db TEMPLATE legacy_db"
drop_out=$(psql_at "$DIR" "$PORT" drop_db -c "DROP EXTENSION daznode_crm" 2>&1)
if grep -q "depend" <<<"$drop_out"; then ok "DROP EXTENSION refuses while constraints use the validators"; else not_ok "DROP EXTENSION refuses while constraints use the validators" "$drop_out"; fi
quiet drop_db -c "DROP EXTENSION daznode_crm CASCADE"
expect_eq "DROP EXTENSION … CASCADE keeps every row" "$(checksums drop_db)" "$reference"
expect_eq "… and takes the live campaign counter with it: the app's writes to crm_email_sends still work" \
    "$(q drop_db -c "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'daznode_count_sends%'")|$(q drop_db -c "WITH i AS (INSERT INTO public.crm_email_sends (campaign_id, email, status) SELECT id, 'after-drop@x.io', 'sent' FROM public.crm_email_campaigns LIMIT 1 RETURNING 1) SELECT count(*) FROM i")" "0|1"

echo "# cancelled or failed mid-migration, then re-run"
legacy_db tpl_db $((PROFILES * 5)) $((PROFILES * 50))
quiet postgres -c "CREATE DATABASE reference_db TEMPLATE tpl_db"
migrate reference_db >/dev/null
reference=$(checksums reference_db)
for timeout in 20 60 150 400; do
    db="timeout_${timeout}_db"
    quiet postgres -c "CREATE DATABASE $db TEMPLATE tpl_db"
    first=$(psql_at "$DIR" "$PORT" "$db" -c "SET statement_timeout = '${timeout}ms'" -c "CALL daznode_crm.migrate()" 2>&1)
    steps_before=$(q "$db" -c "SELECT count(*) FROM daznode_crm.schema_migrations")
    migrate "$db" >/dev/null
    expect_eq "statement_timeout ${timeout}ms after ${steps_before} step(s), then a re-run: same result as one clean run" \
        "$(checksums "$db")" "$reference"
done
grep -q "canceling statement due to statement timeout" <<<"$first" || true

quiet postgres -c "CREATE DATABASE cancel_db TEMPLATE tpl_db"
psql_at "$DIR" "$PORT" cancel_db -c "SET application_name = 'it_migrate'" -c "CALL daznode_crm.migrate()" >"$DIR/cancel.out" 2>&1 &
bg=$!
for _ in $(seq 1 200); do
    [ "$(q cancel_db -c "SELECT count(*) FROM daznode_crm.schema_migrations")" -ge 1 ] && break
    sleep 0.01
done
q postgres -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'it_migrate'" >/dev/null
wait $bg
cancelled_at=$(q cancel_db -c "SELECT count(*) FROM daznode_crm.schema_migrations")
migrate cancel_db >/dev/null
expect_eq "pg_cancel_backend after ${cancelled_at} step(s), then a re-run: same result" "$(checksums cancel_db)" "$reference"

quiet postgres -c "CREATE DATABASE failing_db TEMPLATE tpl_db"
quiet failing_db -c "CREATE TABLE public.users_backup (note text)"
fail_out=$(migrate failing_db)
expect_eq "a step that fails stops migrate() with a clear error and keeps the earlier steps" \
    "$(grep -c 'users_backup already exists' <<<"$fail_out")|$(q failing_db -c "SELECT string_agg(step, ',' ORDER BY step) FROM daznode_crm.schema_migrations")" \
    "1|0000_guide_api,0001_base_schema,0002_normalize_profiles,0003_native_constraints"
expect_eq "the failed step left nothing behind but one step_failed finding with its SQLSTATE" \
    "$(q failing_db -c "SELECT count(*) FROM public.users")|$(q failing_db -c "SELECT string_agg(kind || ' ' || split_part(detail, ':', 1), ',') FROM daznode_crm.migration_findings WHERE step = '0004_consolidate_users'")" \
    "$(q tpl_db -c "SELECT count(*) FROM public.users")|step_failed ERROR 42P07"
quiet failing_db -c "DROP TABLE public.users_backup"
migrate failing_db >/dev/null
expect_eq "after the fix, a re-run finishes with the same result" "$(checksums failing_db)" "$reference"

echo "# two sessions migrating at once"
quiet postgres -c "CREATE DATABASE twice_db TEMPLATE tpl_db"
migrate twice_db >"$DIR/twice1.out" &
p1=$!
migrate twice_db >"$DIR/twice2.out" &
p2=$!
wait $p1; s1=$?
wait $p2; s2=$?
expect_eq "both calls succeed, each step is applied once" \
    "$s1|$s2|$(grep -h 'done in' "$DIR/twice1.out" "$DIR/twice2.out" | wc -l)|$(q twice_db -c "SELECT count(*) FROM daznode_crm.schema_migrations")" \
    "0|0|11|11"
expect_eq "and the result is the same" "$(checksums twice_db)" "$reference"

echo "# an autovacuum in the way"
# PostgreSQL cancels an autovacuum that blocks a lock only once the waiter has waited
# deadlock_timeout (1s), longer than the steps' 500ms lock_timeout: without more, a slow
# autovacuum of a legacy table makes every attempt fail. Here one crawls over public.profiles
# (cost limit 1, 100ms delay per page; analyzed by hand first, so that what runs is its VACUUM,
# seen in pg_stat_progress_vacuum of this database: databases copied from one template share
# their OIDs) while migrate() runs.
# autovacuum_in_the_way DB WHO MIGRATE...: the database DB (a copy of tpl_db) with that crawling
# autovacuum, then the given migrate command.
autovacuum_in_the_way() {
    local db=$1 who=$2 vacuuming=0 out
    shift 2
    quiet "$db" -c "ALTER TABLE public.profiles SET (autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1)" \
        -c "ALTER TABLE public.profiles DISABLE TRIGGER USER" -c "UPDATE public.profiles SET email = email" -c "ALTER TABLE public.profiles ENABLE TRIGGER USER" -c "ANALYZE public.profiles"
    for _ in $(seq 1 600); do
        vacuuming=$(q "$db" -c "SELECT count(*) FROM pg_stat_progress_vacuum v JOIN pg_stat_activity a USING (pid) WHERE a.backend_type = 'autovacuum worker' AND v.datname = current_database() AND v.relid = 'public.profiles'::regclass")
        [ "$vacuuming" -ge 1 ] && break
        sleep 0.1
    done
    [ "$who" = "the superuser" ] || expect_eq "$who: pg_stat_activity shows it no autovacuum worker while one runs" \
        "$(as_login app_owner "$db" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" "0"
    out=$("$@" 2>&1)
    expect_eq "$who: an autovacuum of public.profiles was running, and migrate() got past it (PostgreSQL cancelled it)" \
        "$vacuuming|$(grep -c 'an autovacuum holds a lock in public' <<<"$out" | sed 's/^[1-9][0-9]*$/seen/')|$(q "$db" -c "SELECT count(*) FROM daznode_crm.schema_migrations")" \
        "1|seen|11"
}
quiet postgres -c "ALTER SYSTEM SET autovacuum_naptime = '1s'" -c "SELECT pg_reload_conf()"
quiet postgres -c "CREATE DATABASE vac_db TEMPLATE tpl_db"
autovacuum_in_the_way vac_db "the superuser" migrate vac_db
# The same with the CRM owner a non-superuser without pg_read_all_stats (Supabase's postgres),
# to whom pg_stat_activity does not show which sessions are autovacuum workers.
supabase_roles
quiet postgres -c "CREATE DATABASE vac_owned_db TEMPLATE tpl_db"
give_public_to_app_owner vac_owned_db
quiet vac_owned_db -c "GRANT CREATE ON SCHEMA public TO app_owner" -c "GRANT CREATE ON DATABASE vac_owned_db TO app_owner" -c "GRANT daznode_crm_maintenance TO app_owner"
autovacuum_in_the_way vac_owned_db "a non-superuser CRM owner" \
    "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U app_owner -d vac_owned_db -c "CALL daznode_crm.migrate()"
quiet postgres -c "ALTER SYSTEM RESET autovacuum_naptime" -c "SELECT pg_reload_conf()"

echo "# a lock held by another session for longer than every attempt"
legacy_db locked_db 50 200
# SHARE on profiles stops every write to it: step 0002's UPDATE cannot start.
psql_at "$DIR" "$PORT" locked_db -q -c "BEGIN" -c "LOCK TABLE public.profiles IN SHARE MODE" -c "SELECT pg_sleep(30)" -c "COMMIT" >/dev/null 2>&1 &
holder=$!
wait_for locked_db "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'public.profiles'::regclass AND mode = 'ShareLock' AND granted)"
out=$(psql_at "$DIR" "$PORT" locked_db -v ON_ERROR_STOP=0 -c "SET client_min_messages = notice" -c "SET daznode_crm.lock_timeout = '100ms'" \
    -c "CALL daznode_crm.migrate()" -c "\\echo :LAST_ERROR_SQLSTATE" 2>&1)
expect_eq "migrate() retries 4 times, then stops with 55P03 naming the step; the steps before it stay applied, it does not" \
    "$(grep -c 'retrying' <<<"$out")|$(grep -c 'could not take its locks in 5 attempts' <<<"$out")|$(tail -1 <<<"$out")|$(q locked_db -c "SELECT count(*) > 0, bool_and(step < '0002') FROM daznode_crm.schema_migrations")" \
    "4|1|55P03|t|t"
psql_at "$DIR" "$PORT" locked_db -q -c "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = 'public.profiles'::regclass AND mode = 'ShareLock'" >/dev/null
wait "$holder" 2>/dev/null
expect_eq "once the lock is gone, the next migrate() applies the rest" \
    "$(psql_at "$DIR" "$PORT" locked_db -c "SET client_min_messages = error" -c "CALL daznode_crm.migrate()" 2>&1 | grep -c ERROR)|$(q locked_db -c "SELECT count(*) FROM daznode_crm.pending_migrations('latest')")" "0|0"

summary
