#!/usr/bin/env bash
# The whole guide on a database of the real DazNode project's shape (fixtures/dazlng/schema.sql),
# in the Supabase role model, as its non-superuser owner: diagnostic, orphan cleanup, migrate(),
# the index plan, findings resolved, migrate('complete'), refresh, retention. No manual fix in
# between. Then: every table keeps its rows (but the reported orphans), every role's reads match
# the role matrix without error, the app's own triggers and RPCs still work.
# Prints "ok - …" / "not ok - …" per check and ends with "N passed, M failed".
set -uo pipefail
export PGOPTIONS="-c client_min_messages=error"
source "$(dirname "$0")/lib.sh"
DIR=$(run_dir it-real-shape) && PORT=$(free_port) || exit 1

cluster_start "$DIR" "$PORT" "timezone = 'Europe/Paris'"
trap '[ -n "${KEEP:-}" ] || cluster_stop "$DIR"; remove_run_dir "$DIR"' EXIT

owner() { as_login app_owner "$@"; }
uuid_of() { printf '00000000-0000-4000-8000-%012x' "$1"; }
# api ROLE N SQL: a PostgREST request of ROLE with the JWT of fixture profile N (0: no JWT).
api() {
    local role=$1 n=$2 sql=$3 claims=""
    [ "$n" = 0 ] || claims="SET LOCAL request.jwt.claims = '{\"sub\": \"$(uuid_of "$n")\", \"role\": \"$role\"}';"
    as_login authenticator real "BEGIN; SET LOCAL ROLE $role; $claims $sql; COMMIT;"
}
counts() {
    q real -c "CREATE FUNCTION pg_temp.n_rows(t regclass, OUT n bigint) LANGUAGE plpgsql AS \$\$ BEGIN EXECUTE format('SELECT count(*) FROM %s', t) INTO n; END \$\$" \
           -c "SELECT string_agg(format('%s=%s', c.relname, pg_temp.n_rows(c.oid)), ' ' ORDER BY c.relname)
               FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                 AND c.relname NOT IN ('crm_email_sends_backup', 'crm_email_sends_changes')"
}

supabase_roles
dazlng_db real
expect_eq "the fixture of the real shape loads whole (18 app tables, no public.users)" \
    "$(q real -c "SELECT count(*) FILTER (WHERE relkind = 'r'), count(*) FILTER (WHERE relname = 'users') FROM pg_class WHERE relnamespace = 'public'::regnamespace")" "18|0"

# Before: what the app suffers today, and what the diagnostic sees of it.
expect_eq "before: every CRM read by authenticated fails on the recursive admin_roles policy" \
    "$(api authenticated 5 "SELECT count(*) FROM public.crm_customer_segments")" "ERROR:  42P17"
expect_eq "before: orders are unreadable by authenticated (a policy reads auth.users)" \
    "$(api authenticated 5 "SELECT count(*) FROM public.orders")" "ERROR:  42501"
diag=$(owner real "SELECT check_name || ' ' || status FROM daznode_crm.run_pre_migration_diagnostic() WHERE status = 'ERROR'")
expect_eq "the diagnostic names the recursion, the auth.users policy, anon reading anonymous orders and the legacy guide functions as ERRORs" \
    "$(grep -c 'policies: public.admin_roles as authenticated' <<<"$diag")|$(grep -c 'policies: public.orders as authenticated' <<<"$diag")|$(grep -c 'legacy function: public.is_admin_user(uuid)' <<<"$diag")" "1|1|1"
expect_eq "the diagnostic sees both legacy statistics views of other shapes in the way of step 0007, and the app's triggers" \
    "$(grep -o 'in the way of 0007_stats_views' <<<"$(owner real "SELECT check_name FROM daznode_crm.run_pre_migration_diagnostic() WHERE status = 'WARNING'")" | wc -l)|$(owner real "SELECT details LIKE '%trigger_update_profile_score on public.profiles%' FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'app triggers on CRM tables'")" "2|t"
before=$(counts)

# The guide, step by step, as the owner, with nothing fixed by hand.
out=$(owner real "SELECT daznode_crm.cleanup_orphaned_records(false)")
expect_eq "the orphan cleanup runs as the owner" "$(grep -c 'ERROR' <<<"$out")" "0"
orphans=$(q real -c "SELECT count(*) FROM public.crm_customer_segment_members WHERE customer_id NOT IN (SELECT id FROM public.profiles)")
expect_eq "the orphan member is gone, the orphan orders are only reported" \
    "$orphans|$(q real -c "SELECT count(*) FROM public.orders WHERE user_id IS NOT NULL AND user_id NOT IN (SELECT id FROM public.profiles)")" "0|4"
out=$(owner real "CALL daznode_crm.migrate()")
expect_eq "migrate() completes on the real shape (every safe step applied: 0000 to 0009)" \
    "$(grep -c 'ERROR' <<<"$out")|$(q real -c "SELECT count(*) FROM daznode_crm.schema_migrations")" "0|11"
[ "$(grep -c ERROR <<<"$out")" = 0 ] || echo "$out" | head -5
expect_eq "the app's score trigger ran under the app's search_path (emails normalized, scores kept)" \
    "$(q real -c "SELECT count(*) FROM public.profiles WHERE email <> lower(email) AND email NOT LIKE 'CLIENT2@%'")|$(q real -c "SELECT count(*) FROM public.profiles WHERE profile_score IS NULL")" "0|0"
expect_eq "no second updated_at trigger on the CRM tables that had their own" \
    "$(q real -c "SELECT string_agg(c.relname || ':' || n, ',' ORDER BY c.relname) FROM (SELECT tgrelid, count(*) n FROM pg_trigger WHERE tgfoid = 'public.update_updated_at_column()'::regprocedure GROUP BY 1) t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relname LIKE 'crm%'")" \
    "crm_customer_segments:1,crm_email_campaigns:1,crm_email_templates:1"
expect_eq "legacy views of other shapes were replaced; the legacy guide functions moved" \
    "$(q real -c "SELECT count(*) FROM daznode_crm.migration_findings WHERE kind = 'legacy_view_moved'")|$(q real -c "SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE '%\_legacy'")" \
    "2|cleanup_orphaned_records_legacy,is_admin_user_legacy,run_pre_migration_diagnostic_legacy"
expect_eq "after migrate(), the diagnostic reports no legacy guide function and no failing or too-wide read" \
    "$(owner real "SELECT count(*) FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name ~ '^(legacy function|policies: |row-level)' AND status <> 'OK'")" "0"
expect_eq "the moved legacy functions are their owner's only: anon gets 42501" \
    "$(api anon 0 "SELECT public.run_pre_migration_diagnostic_legacy()")" "ERROR:  42501"
expect_eq "legacy materialized views are closed to the API roles; legacy views of CRM tables run as the reader" \
    "$(api anon 0 "SELECT count(*) FROM public.crm_segments_stats_simple")|$(api authenticated 9 "SELECT total_profiles FROM public.profile_completion_stats")" "ERROR:  42501|1"
expect_eq "policies granting more reads were dropped, their definitions kept as ERROR findings" \
    "$(q real -c "SELECT string_agg(table_name || ': ' || split_part(split_part(detail, 'policy ', 2), ' showed', 1), '; ' ORDER BY 1) FROM daznode_crm.migration_findings WHERE kind = 'policy_dropped_grants_more'")" \
    'public.orders: "Allow read anonymous orders"'
expect_eq "the auth.users policies were dropped with their definitions; the owner-rule duplicates too" \
    "$(q real -c "SELECT count(*) FROM daznode_crm.migration_findings WHERE kind = 'policy_dropped_would_error' AND table_name = 'public.orders'")|$(q real -c "SELECT count(*) FROM daznode_crm.migration_findings WHERE kind = 'policy_dropped_duplicate'")" "1|4"

# Every requester reads what the matrix says, without error.
expect_eq "every read of the role matrix runs and matches (the step's own self-check, again)" \
    "$(owner real "SELECT count(*) FILTER (WHERE error IS NULL AND seen = expected) || '/' || count(*) FROM daznode_crm.matrix_reads()")" "108/108"
expect_eq "orders: a customer reads their own, anon nothing, an admin all" \
    "$(api authenticated 9 "SELECT count(*) FROM public.orders")|$(api anon 0 "SELECT count(*) FROM public.orders")|$(api authenticated 2 "SELECT count(*) FROM public.orders")" \
    "$(q real -c "SELECT count(*) FROM public.orders WHERE user_id = '$(uuid_of 9)'")|0|60"
expect_eq "the app's rpc('is_admin_user') works: about the caller for everyone, about others for admins only" \
    "$(api authenticated 2 "SELECT public.is_admin_user()")|$(api authenticated 9 "SELECT public.is_admin_user()")|$(api authenticated 9 "SELECT coalesce(public.is_admin_user('$(uuid_of 1)')::text, 'unknown')")|$(api authenticated 2 "SELECT public.is_admin_user('$(uuid_of 3)')")" \
    "t|f|unknown|t"

# The findings, followed as given, then the rest of the guide.
expect_eq "a row with an invalid email and an invalid pubkey gets one statement that fixes both" \
    "$(q real -c "SELECT count(*) FROM daznode_crm.migration_findings WHERE row_id = '00000000-0000-4000-8000-0000000000f2' AND detail LIKE '%SET email = <a valid address>, pubkey = NULL WHERE id%'")" "1"
out=$(owner real "UPDATE public.profiles SET email = 'both.bad@daznode.io', pubkey = NULL WHERE id = '00000000-0000-4000-8000-0000000000f2'")
expect_eq "that statement works with both NOT VALID checks in place" "$out" ""
quiet real -c "SET ROLE app_owner" -f demo/30-resolve-findings.sql
expect_eq "the demo's resolution leaves no invalid row, every constraint validated" \
    "$(q real -c "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.profiles'::regclass AND NOT convalidated")" "0"
out=$(owner real "CALL daznode_crm.migrate('complete')")
expect_eq "migrate('complete') partitions the sends of the real shape" \
    "$(grep -c 'ERROR' <<<"$out")|$(q real -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")" "0|p"
[ "$(grep -c ERROR <<<"$out")" = 0 ] || echo "$out" | head -5
expect_eq "the app's materialized view rebuilt by the swap keeps exactly its grants (none for the API roles, as step 0008 left it)" \
    "$(q real -c "SELECT has_table_privilege('anon', 'public.crm_campaigns_stats_simple', 'SELECT') OR has_table_privilege('authenticated', 'public.crm_campaigns_stats_simple', 'SELECT'), (SELECT count(*) FROM public.crm_campaigns_stats_simple)")" "f|8"
after=$(counts)
expect_eq "every table keeps its rows, but the one orphan member the cleanup reported" \
    "$(diff <(tr ' ' '\n' <<<"$before") <(tr ' ' '\n' <<<"$after") | grep '^[<>]' | tr '\n' ' ')" \
    "< crm_customer_segment_members=41 > crm_customer_segment_members=40 "
out=$(owner real "SELECT daznode_crm.refresh_crm_materialized_views()")
expect_eq "the materialized views refresh as the owner" "$(grep -c ERROR <<<"$out")" "0"
old=$(q real -c "SELECT count(*) FROM public.crm_email_sends WHERE created_at < date_trunc('month', now()) - interval '12 months'")
out=$(owner real "SELECT count(*) FROM daznode_crm.cleanup_old_email_partitions('12 months')")
expect_eq "the retention cleanup drops exactly the sends older than 12 months" \
    "$(grep -c ERROR <<<"$out")|$(q real -c "SELECT count(*) FROM public.crm_email_sends WHERE created_at < date_trunc('month', now()) - interval '12 months'")|$(q real -c "SELECT 600 - count(*) FROM public.crm_email_sends")" \
    "0|0|$old"
# The guide's own rollback and troubleshooting snippets, verbatim, after the swap: the first
# cannot drop the live table (views depend on it) and changes nothing; the second drops the
# backup, and the app's writes go on (the mirror into it stops).
rows_before=$(q real -c "SELECT count(*) FROM public.crm_email_sends")
out=$(owner real "DROP TABLE IF EXISTS crm_email_sends; ALTER TABLE crm_email_sends_backup RENAME TO crm_email_sends;")
expect_eq "the guide's rollback snippet fails harmlessly after the swap: the live table and its rows stay" \
    "$out|$(q real -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")|$(q real -c "SELECT count(*) FROM public.crm_email_sends")" \
    "ERROR:  2BP01|p|$rows_before"
out=$(owner real "DROP TABLE IF EXISTS crm_email_sends_backup CASCADE;")
expect_eq "the guide's 'relation already exists' snippet drops the backup; the app still writes sends" \
    "$out|$(owner real "INSERT INTO public.crm_email_sends (campaign_id, email, status) VALUES ('40000000-0000-4000-8000-000000000001', 'late@daznode.io', 'pending'); SELECT count(*) FROM public.crm_email_sends WHERE email = 'late@daznode.io'")" \
    "|1"
expect_eq "after the whole guide, every read of the matrix still matches" \
    "$(owner real "SELECT count(*) FILTER (WHERE error IS NULL AND seen = expected) || '/' || count(*) FROM daznode_crm.matrix_reads()")" "108/108"
expect_eq "the app's own tables keep their policies and work: a customer reads their checkout sessions" \
    "$(api authenticated 9 "SELECT count(*) >= 0 FROM public.checkout_sessions")" "t"

summary
