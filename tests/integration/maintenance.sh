#!/usr/bin/env bash
# Integration tests of the maintenance functions in a throwaway cluster with pg_cron
# preloaded (Debian's postgresql-15-cron): each function on an empty, a legacy and a migrated
# database, two sessions at once, grants, and a pg_cron job that really runs.
# Prints "ok - …" / "not ok - …" per check and ends with "N passed, M failed".
set -uo pipefail
export PGOPTIONS="-c client_min_messages=warning"
source "$(dirname "$0")/lib.sh"
DIR=$(run_dir it-maint) && PORT=$(free_port) || exit 1
status_of() { q "$1" -c "SELECT status || ':' || coalesce(affected_rows::text, '-') FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = '$2'"; }

cron_settings=()
if has_extension pg_cron; then
    cron_settings=("shared_preload_libraries = 'pg_cron'" "cron.database_name = 'cron_db'" "cron.use_background_workers = on" "max_worker_processes = 16")
fi
cluster_start "$DIR" "$PORT" "timezone = 'Asia/Tokyo'" "${cron_settings[@]}"
trap 'cluster_stop "$DIR"; remove_run_dir "$DIR"' EXIT

echo "# empty database"
quiet postgres -c "CREATE DATABASE empty_db"
quiet empty_db -c "CREATE EXTENSION daznode_crm"
out=$(q empty_db -c "SELECT check_name, status FROM daznode_crm.run_pre_migration_diagnostic()")
if grep -q "^schema_shape|INFO" <<<"$out" && grep -q "^pending_migrations|INFO" <<<"$out" && ! grep -q "|ERROR" <<<"$out"; then
    ok "diagnostic on an empty database: no error, shape and pending steps reported"
else not_ok "diagnostic on an empty database" "$out"; fi
expect_eq "cleanup on an empty database skips every rule" \
    "$(q empty_db -c "SELECT count(*) FILTER (WHERE action LIKE 'skipped%') || '/' || count(*) FROM daznode_crm.cleanup_orphaned_records()")" "10/10"
expect_eq "performance diagnosis on an empty database says it is not partitioned" \
    "$(q empty_db -c "SELECT status FROM daznode_crm.diagnose_crm_performance() WHERE area = 'partitions'")" "INFO"
expect_eq "refresh with no view created yet skips both, saying why" \
    "$(q empty_db -c "SELECT string_agg(mode || ':' || skipped_reason, ',') FROM daznode_crm.refresh_crm_materialized_views()")" \
    "skipped:does not exist (yet),skipped:does not exist (yet)"

echo "# legacy database"
legacy_db legacy_db 2000
out=$(q legacy_db -c "SELECT status FROM daznode_crm.run_pre_migration_diagnostic()")
expect_eq "rows come most severe first" "$(uniq <<<"$out" | tr '\n' ',')" \
    "$(printf '%s\n' $out | sort -t, -k1,1 | awk '{o = ($1 == "ERROR") ? 0 : ($1 == "WARNING") ? 1 : ($1 == "INFO") ? 2 : 3; print o, $1}' | sort -s -n -k1,1 | cut -d' ' -f2 | uniq | tr '\n' ',')"
expect_eq "legacy shape and every step pending" "$(status_of legacy_db schema_shape)|$(status_of legacy_db pending_migrations)" "INFO:9|INFO:11"
expect_eq "orphan segment members (NULL customer) found" "$(status_of legacy_db 'orphans: crm_customer_segment_members.customer_id')" "WARNING:10"
expect_eq "dangling segment ids in campaigns found (no foreign key possible)" "$(status_of legacy_db 'orphans: crm_email_campaigns.segment_ids')" "WARNING:10"
expect_eq "case duplicates found after normalization" "$(status_of legacy_db duplicate_emails)" "WARNING:10"
expect_eq "invalid emails and pubkeys found by the native validators" \
    "$(status_of legacy_db invalid_emails)|$(status_of legacy_db invalid_pubkeys)|$(status_of legacy_db empty_pubkeys)" "WARNING:30|WARNING:200|INFO:200"
expect_eq "users rows absent from profiles, and conflicting ones" \
    "$(status_of legacy_db users_absent_from_profiles)|$(status_of legacy_db users_conflicting_with_profiles)" "INFO:200|WARNING:20"
expect_eq "the primary key is not counted as a conflict (legacy bug), nothing collides" "$(status_of legacy_db name_collisions)" "OK:0"
expect_eq "NOT VALID constraints are listed" "$(status_of legacy_db not_valid_constraints)" "INFO:2"
expect_eq "installed extensions only: pg_cron is available but not installed here" "$(status_of legacy_db 'extension: pg_cron')" "INFO:-"
quiet legacy_db -c "CREATE VIEW public.not_a_table AS SELECT 1"
expect_eq "views are not counted as tables" "$(q legacy_db -c "SELECT count(*) FROM daznode_crm.run_pre_migration_diagnostic() WHERE details LIKE '%not_a_table%'")" "0"

before=$(checksums legacy_db)
dry=$(q legacy_db -c "SELECT string_agg(table_name || '.' || column_name || '=' || action || ':' || rows, ' ' ORDER BY table_name, column_name) FROM daznode_crm.cleanup_orphaned_records(dry_run => true) WHERE rows > 0")
expect_eq "dry run reports what it would do" "$dry" \
    "public.crm_customer_segment_members.customer_id=would delete:10 public.crm_email_campaigns.segment_ids=would remove from array:10"
expect_eq "dry run changes nothing" "$(checksums legacy_db)" "$before"
# A paced cleanup (daznode_crm.maintenance_yield) sleeps in pg_sleep between its rules, where a
# second session sees it (wait event PgSleep) and can cancel it: all of it is undone.
PGOPTIONS="$PGOPTIONS -c daznode_crm.maintenance_yield=20" q legacy_db -v VERBOSITY=sqlstate -c "SELECT count(*) FROM daznode_crm.cleanup_orphaned_records()" >"$DIR/paced.out" &
paced=$!
seen=$(q legacy_db -c "DO \$\$
BEGIN
    FOR i IN 1..20000 LOOP
        PERFORM pg_stat_clear_snapshot();
        PERFORM pg_cancel_backend(pid) FROM pg_stat_activity
        WHERE wait_event = 'PgSleep' AND query LIKE '%cleanup_orphaned_records%' AND pid <> pg_backend_pid();
        IF FOUND THEN RAISE WARNING 'cancelled in a pause'; RETURN; END IF;
        PERFORM pg_sleep(0.0005);
    END LOOP;
END \$\$" >"$DIR/canceller.out" 2>&1; grep -c 'cancelled in a pause' "$DIR/canceller.out")
wait $paced
[ "$seen" = 1 ] || cat "$DIR/canceller.out" "$DIR/paced.out"
expect_eq "a paced cleanup pauses where another session sees it, is cancelled there, and leaves every row as it was" \
    "$seen|$(grep -o '57014' "$DIR/paced.out")|$(checksums legacy_db | md5sum)" "1|57014|$(md5sum <<<"$before")"
# The jobs going at once share one budget: beside n other maintenance runs (a pg_cron job, or a
# session under one of our progress names, running a daznode_crm statement), a run pauses as if
# the factor were (1 + factor) x (n + 1) - 1 (core::throttle::shared_factor, tested there). A
# psql session is no job, whatever it runs.
PGAPPNAME=pg_cron q legacy_db -c "SELECT daznode_crm.maintenance_yield(), pg_sleep(30)" >/dev/null 2>&1 &
job1=$!
PGAPPNAME='daznode_crm orphans:x' q legacy_db -c "SELECT daznode_crm.maintenance_yield(), pg_sleep(30)" >/dev/null 2>&1 &
job2=$!
q legacy_db -c "SELECT daznode_crm.maintenance_yield(), pg_sleep(30)" >/dev/null 2>&1 &
not_a_job=$!
for _ in $(seq 100); do
    [ "$(q legacy_db -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT daznode_crm.maintenance_yield(), pg_sleep(30)'")" = 3 ] && break
    sleep 0.1
done
shared=$(q legacy_db -c "SELECT daznode_crm.maintenance_runs()")
# run_in_steps passes the configured factor to each pause, which shares it (a shared factor over
# 20 once stopped its pauses: the soak of 2026-12-08 found it).
PGOPTIONS="$PGOPTIONS -c daznode_crm.maintenance_yield=20" q legacy_db -c "CALL daznode_crm.run_in_steps('run_pre_migration_diagnostic')" >"$DIR/shared-steps.out" 2>&1 &
steps=$!
sleep 2
q legacy_db -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT daznode_crm.maintenance_yield(), pg_sleep(30)'" >/dev/null
wait $job1 $job2 $not_a_job $steps 2>/dev/null
expect_eq "beside two maintenance runs (and a psql session, not one) three runs share the budget, one once they end; a run in steps with factor 20 beside them pauses, no error" \
    "$shared|$(q legacy_db -c "SELECT daznode_crm.maintenance_runs()")|$(grep -c ERROR "$DIR/shared-steps.out")" "3|1|0"
q legacy_db -c "SELECT * FROM daznode_crm.cleanup_orphaned_records()" >"$DIR/cleanup1.out" &
q legacy_db -c "SELECT * FROM daznode_crm.cleanup_orphaned_records()" >"$DIR/cleanup2.out" &
wait
expect_eq "two cleanups at once: together they delete each orphan once" \
    "$(cat "$DIR/cleanup1.out" "$DIR/cleanup2.out" | awk -F'|' '$2 == "customer_id" {s += $4} END {print s}')" "10"
expect_eq "after cleanup the diagnostic finds no orphan" \
    "$(q legacy_db -c "SELECT count(*) FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name LIKE 'orphans:%' AND status <> 'OK'")" "0"
expect_eq "dangling ids are removed from the arrays, the campaigns kept" \
    "$(q legacy_db -c "SELECT count(*) || ':' || count(*) FILTER (WHERE segment_ids = '{}') FROM public.crm_email_campaigns")" "500:10"
expect_eq "legacy: foreign keys without index are flagged" \
    "$(q legacy_db -c "SELECT count(*) > 0 FROM daznode_crm.diagnose_crm_performance() WHERE metric = 'foreign key without index'")" "t"

echo "# run_in_steps: the long jobs, one unit of work per transaction"
legacy_db steps_db 2000
log_rows() { q steps_db -c "SELECT string_agg(v, ',' ORDER BY v) FROM (SELECT $2 AS v FROM daznode_crm.run_in_steps_log, jsonb_to_record(result) AS r($3) WHERE job = '$1' AND run_started = (SELECT max(run_started) FROM daznode_crm.run_in_steps_log WHERE job = '$1')) x"; }
diag_cols="check_name text, status text, affected_rows bigint"
quiet steps_db -c "CALL daznode_crm.run_in_steps('run_pre_migration_diagnostic')"
expect_eq "the diagnostic in steps logs the rows of the diagnostic in one statement" \
    "$(log_rows run_pre_migration_diagnostic "check_name || '=' || status || ':' || coalesce(affected_rows::text, '-')" "$diag_cols")" \
    "$(q steps_db -c "SELECT string_agg(c, ',' ORDER BY c) FROM (SELECT check_name || '=' || status || ':' || coalesce(affected_rows::text, '-') AS c FROM daznode_crm.run_pre_migration_diagnostic()) x")"
before=$(checksums steps_db)
quiet steps_db -c "CALL daznode_crm.run_in_steps('cleanup_orphaned_records')"
expect_eq "the cleanup in steps applies every rule and logs what each did" \
    "$(log_rows cleanup_orphaned_records "column_name || '=' || action || ':' || rows" "column_name text, action text, rows bigint" | tr ',' '\n' | grep -v ':0$' | tr '\n' ' ')|$(q steps_db -c "SELECT count(*) FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name LIKE 'orphans:%' AND status <> 'OK'")" \
    "customer_id=delete:10 segment_ids=remove from array:10 |0"
# 40 auto_update segments, paced 20 times their work: a run of a few seconds.
quiet steps_db -c "INSERT INTO public.crm_customer_segments (id, name, criteria, auto_update) SELECT md5('step' || i)::uuid, 'Étape ' || i, '{\"profile\":{\"email_verified\":true}}', true FROM generate_series(1, 40) i"
paced_call() { PGOPTIONS="$PGOPTIONS -c daznode_crm.maintenance_yield=20" q steps_db -v VERBOSITY=sqlstate -c "$1" >"$DIR/$2.out" 2>&1; }
# xmin_moves SQL: runs SQL paced in the background; once it runs, a transaction commits. t when
# the runner's backend_xmin passes that transaction while the run still goes on (vacuum may then
# remove what died after it); f when it was seen held behind it until the run ended; "?" when
# the run was never seen.
xmin_moves() {
    paced_call "$1" xmin &
    local runner=$! pid xid seen=0 moved=f
    wait_for steps_db "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%refresh_auto_update_segments%' AND state = 'active' AND pid <> pg_backend_pid())" >/dev/null
    pid=$(q steps_db -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%refresh_auto_update_segments%' AND state = 'active' AND pid <> pg_backend_pid()")
    xid=$(q steps_db -c "SELECT txid_current() % 4294967296")
    for _ in $(seq 1 200); do
        [[ "$pid" =~ ^[0-9]+$ ]] || break
        case $(q steps_db -c "SELECT CASE WHEN state <> 'active' THEN 'done' WHEN backend_xmin IS NULL OR backend_xmin::text::bigint > $xid THEN 'moved' ELSE 'held' END FROM pg_stat_activity WHERE pid = $pid") in
            moved) moved=t; break ;;
            held) seen=$((seen + 1)) ;;
            *) break ;;
        esac
        sleep 0.02
    done
    wait "$runner"
    if [ "$moved" = t ] || [ "$seen" -gt 0 ]; then echo "$moved"; else echo "?"; fi
}
expect_eq "one SELECT holds its snapshot for the whole paced run; in steps the snapshot moves on during the run" \
    "$(xmin_moves "SELECT count(*) FROM daznode_crm.refresh_auto_update_segments()")|$(xmin_moves "CALL daznode_crm.run_in_steps('refresh_auto_update_segments')")" "f|t"
expect_eq "the segments in steps: one unit per auto_update segment, each logged with its members" \
    "$(q steps_db -c "SELECT count(DISTINCT unit) FILTER (WHERE unit <> '(start)') || ':' || count(*) FILTER (WHERE result->>'name' LIKE 'Étape %' AND (result->>'members')::int > 0) FROM daznode_crm.run_in_steps_log WHERE job = 'refresh_auto_update_segments' AND run_started = (SELECT max(run_started) FROM daznode_crm.run_in_steps_log WHERE job = 'refresh_auto_update_segments')")" "44:40"
# A cancel in the middle keeps the units done, undoes the one it was in; the next run does the rest.
quiet steps_db -c "DELETE FROM public.crm_customer_segment_members WHERE segment_id IN (SELECT id FROM public.crm_customer_segments WHERE name LIKE 'Étape %')"
paced_call "CALL daznode_crm.run_in_steps('refresh_auto_update_segments')" cancelled &
runner=$!
wait_for steps_db "SELECT EXISTS (SELECT 1 FROM daznode_crm.operation_progress WHERE operation = 'segments' AND rows_done >= 10)" 200
progress=$(q steps_db -c "SELECT (phase ~ '^[0-9a-f-]+$' OR phase = 'pause') AND rows_estimated = 44 AND estimated_end > started_at FROM daznode_crm.operation_progress WHERE operation = 'segments'")
quiet steps_db -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL daznode_crm.run_in_steps%' AND pid <> pg_backend_pid()"
wait "$runner"
filled() { q steps_db -c "SELECT count(DISTINCT segment_id) FROM public.crm_customer_segment_members WHERE segment_id IN (SELECT id FROM public.crm_customer_segments WHERE name LIKE 'Étape %')"; }
partial=$(filled)
expect_eq "progress of a run in steps is visible from another session (units done of 44, an estimated end)" "$progress" "t"
expect_eq "a run cancelled in the middle keeps the segments it committed, and the next run completes" \
    "$(grep -c 57014 "$DIR/cancelled.out")|$([ "$partial" -ge 6 ] && [ "$partial" -lt 40 ] && echo partial)|$(quiet steps_db -c "CALL daznode_crm.run_in_steps('refresh_auto_update_segments')"; filled)" "1|partial|40"
expect_eq "the log keeps the last 10 runs of a job" \
    "$(for _ in $(seq 1 11); do quiet steps_db -c "CALL daznode_crm.run_in_steps('run_pre_migration_diagnostic')"; done; q steps_db -c "SELECT count(DISTINCT run_started) FROM daznode_crm.run_in_steps_log WHERE job = 'run_pre_migration_diagnostic'")" "10"
# A crash (immediate stop) in the middle: the same, the committed segments and their log rows kept.
quiet steps_db -c "DELETE FROM public.crm_customer_segment_members WHERE segment_id IN (SELECT id FROM public.crm_customer_segments WHERE name LIKE 'Étape %')"
paced_call "CALL daznode_crm.run_in_steps('refresh_auto_update_segments')" crashed &
runner=$!
wait_for steps_db "SELECT EXISTS (SELECT 1 FROM daznode_crm.operation_progress WHERE operation = 'segments' AND rows_done >= 10)" 200
as_postgres "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1
wait "$runner"
as_postgres "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null
partial=$(filled)
logged_units=$(q steps_db -c "SELECT count(DISTINCT unit) FROM daznode_crm.run_in_steps_log WHERE job = 'refresh_auto_update_segments' AND unit <> '(start)' AND run_started = (SELECT max(run_started) FROM daznode_crm.run_in_steps_log WHERE job = 'refresh_auto_update_segments') AND result->>'name' LIKE 'Étape %'")
expect_eq "a run crashed in the middle keeps the segments it committed and their log rows, and the next run completes" \
    "$([ "$partial" -ge 6 ] && [ "$partial" -lt 40 ] && echo partial)|$([ "$logged_units" = "$partial" ] && echo same)|$(quiet steps_db -c "CALL daznode_crm.run_in_steps('refresh_auto_update_segments')"; filled)" "partial|same|40"
logged() { q steps_db -c "SELECT count(*) FROM daznode_crm.run_in_steps_log"; }
before_block=$(logged)
expect_eq "inside a transaction block it cannot commit: refused (2D000), nothing logged" \
    "$(q steps_db -v VERBOSITY=sqlstate -c "BEGIN" -c "CALL daznode_crm.run_in_steps('cleanup_orphaned_records')" | grep -c 2D000)|$(logged)" "1|$before_block"
expect_eq "an unknown or NULL job is an invalid argument (22023), the name cut short" \
    "$(q steps_db -v VERBOSITY=sqlstate -c "CALL daznode_crm.run_in_steps('refresh_crm_materialized_views')")|$(q steps_db -v VERBOSITY=sqlstate -c "CALL daznode_crm.run_in_steps(NULL)")|$(q steps_db -c "CALL daznode_crm.run_in_steps(repeat('x', 10000000))" | awk 'length($0) < 400 && /not "xxxx/ {print "short"}')" \
    "ERROR:  22023|ERROR:  22023|short"
expect_eq "a unit of a run that was never started is refused (22023), nothing logged" \
    "$(q steps_db -v VERBOSITY=sqlstate -c "SELECT daznode_crm.run_in_steps_unit('cleanup_orphaned_records', 'orders.user_id', 'infinity')")|$(logged)" "ERROR:  22023|$before_block"

echo "# half-migrated, then migrated"
psql_at "$DIR" "$PORT" legacy_db -q -c "CALL daznode_crm.migrate('0003_native_constraints')" >/dev/null 2>&1
expect_eq "half-migrated shape" "$(q legacy_db -c "SELECT status || ':' || details FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'schema_shape'")" \
    "WARNING:half-migrated: native constraints and legacy objects side by side"
psql_at "$DIR" "$PORT" legacy_db -q -c "CALL daznode_crm.migrate()" >/dev/null 2>&1
resolve_findings legacy_db
expect_eq "migrated shape, nothing pending, no warning left" \
    "$(status_of legacy_db schema_shape)|$(status_of legacy_db pending_migrations)|$(q legacy_db -c "SELECT count(*) FROM daznode_crm.run_pre_migration_diagnostic() WHERE status IN ('ERROR', 'WARNING')")" \
    "OK:9|OK:-|0"
expect_eq "migrated: every foreign key has its index" \
    "$(q legacy_db -c "SELECT count(*) FROM daznode_crm.diagnose_crm_performance() WHERE metric = 'foreign key without index'")" "0"
quiet legacy_db -c "CREATE INDEX idx_redundant_sends_campaign ON public.crm_email_sends (campaign_id)"
expect_eq "a redundant index is flagged" \
    "$(q legacy_db -c "SELECT status FROM daznode_crm.diagnose_crm_performance() WHERE object = 'public.idx_redundant_sends_campaign' AND metric = 'redundant index'")" "WARNING"
quiet legacy_db -c "CREATE FUNCTION public.is_staff() RETURNS boolean LANGUAGE sql STABLE AS 'SELECT true'" \
    -c "ALTER TABLE public.crm_email_templates ENABLE ROW LEVEL SECURITY" \
    -c "CREATE POLICY per_row ON public.crm_email_templates USING (public.is_staff())" \
    -c "CREATE POLICY once ON public.crm_email_templates FOR INSERT WITH CHECK ((SELECT public.is_staff()))"
expect_eq "an RLS policy calling a function per row is flagged, a wrapped one is not" \
    "$(q legacy_db -c "SELECT string_agg(object || '=' || status, ',' ORDER BY object) FROM daznode_crm.diagnose_crm_performance() WHERE area = 'rls' AND object ~ ': (per_row|once)$'")" \
    "public.crm_email_templates: once=OK,public.crm_email_templates: per_row=WARNING"

echo "# materialized views"
# migrate() created the guide's two views; step 0011 replaced the campaigns' one by live counts
# (unregistered, dropped). Make the other unpopulated, as after a restore WITH NO DATA.
expect_eq "the campaigns' analytics are live counts: their materialized view is gone and unregistered" \
    "$(q legacy_db -c "SELECT to_regclass('crm_private.crm_campaigns_analytics_mv') IS NULL, (SELECT string_agg(view_name, ',') FROM daznode_crm.materialized_view_registry)")" \
    "t|crm_private.crm_segments_stats_mv"
quiet legacy_db -c "REFRESH MATERIALIZED VIEW crm_private.crm_segments_stats_mv WITH NO DATA"
expect_eq "first refresh: full where it cannot be concurrent, saying why" \
    "$(q legacy_db -c "SELECT string_agg(view_name || '=' || mode || ':' || coalesce(skipped_reason, '-'), ' ' ORDER BY view_name) FROM daznode_crm.refresh_crm_materialized_views()" \
         -c "SELECT pg_stat_force_next_flush()")" \
    "crm_private.crm_segments_stats_mv=full:not populated yet: the first refresh cannot be concurrent"
# The refresh reads the statistics of its base tables: each session that writes flushes its own
# before it ends (pg_stat_force_next_flush()), so that the next reads them.
q legacy_db -c "SELECT * FROM daznode_crm.refresh_crm_materialized_views()" -c "SELECT pg_stat_force_next_flush()" >/dev/null
expect_eq "unchanged base tables: skipped" \
    "$(q legacy_db -c "SELECT string_agg(mode, ',' ORDER BY view_name) FROM daznode_crm.refresh_crm_materialized_views()")" "skipped"
quiet legacy_db -c "DELETE FROM public.crm_customer_segment_members WHERE id IN (SELECT id FROM public.crm_customer_segment_members LIMIT 5)" \
    -c "SELECT pg_stat_force_next_flush()"
expect_eq "a base table changed: the view is refreshed" \
    "$(q legacy_db -c "SELECT string_agg(mode, ',' ORDER BY view_name) FROM daznode_crm.refresh_crm_materialized_views()")" "concurrently"
psql_at "$DIR" "$PORT" legacy_db -q -c "BEGIN" -c "SELECT pg_advisory_xact_lock(hashtext('daznode_crm.refresh_crm_materialized_views'))" -c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null 2>&1 &
wait_for legacy_db "$ADVISORY_HELD"
expect_eq "a second run while one holds the lock returns at once" \
    "$(q legacy_db -c "SELECT string_agg(mode || ':' || skipped_reason, ',') FROM daznode_crm.refresh_crm_materialized_views()")" \
    "skipped:already running"
wait
expect_eq "the log records refreshes and the diagnosis reads it" \
    "$(q legacy_db -c "SELECT count(*) FROM daznode_crm.diagnose_crm_performance() WHERE area = 'materialized views' AND metric = 'seconds since last refresh' AND status = 'OK'")" "1"
expect_eq "the diagnosis sees the live counts' counter in place and the fold current" \
    "$(q legacy_db -c "SELECT string_agg(metric || '=' || status, ',' ORDER BY metric) FROM daznode_crm.diagnose_crm_performance() WHERE area = 'analytics'")" \
    "deltas waiting for the fold=OK,live campaign counter=OK"
out=$(q legacy_db -v ON_ERROR_STOP=0 -c "SELECT daznode_crm.register_crm_materialized_view('public.profiles')" -c "\\echo :LAST_ERROR_SQLSTATE")
expect_eq "registering a table is refused with 22023" "$(grep -c '^22023$' <<<"$out")" "1"
expect_eq "registering another view works" \
    "$(q legacy_db -c "CREATE MATERIALIZED VIEW public.extra_mv AS SELECT 1 AS x" -c "SELECT daznode_crm.register_crm_materialized_view('public.extra_mv')" | tail -1)" "public.extra_mv"

echo "# grants"
quiet postgres -c "CREATE ROLE app_user LOGIN" -c "CREATE ROLE dba LOGIN IN ROLE daznode_crm_maintenance"
for f in "run_pre_migration_diagnostic()" "cleanup_orphaned_records()" "diagnose_crm_performance()" "refresh_crm_materialized_views()"; do
    denied=$(psql_at "$DIR" "$PORT" legacy_db -U app_user -At -c "SELECT count(*) FROM daznode_crm.$f" 2>&1)
    allowed=$(psql_at "$DIR" "$PORT" legacy_db -U dba -At -c "SELECT count(*) > 0 FROM daznode_crm.$f" 2>&1)
    expect_eq "$f: refused without the grant, allowed to daznode_crm_maintenance" \
        "$(grep -c 'permission denied' <<<"$denied")|$allowed" "1|t"
done

denied=$(psql_at "$DIR" "$PORT" legacy_db -U app_user -At -c "CALL daznode_crm.run_in_steps('cleanup_orphaned_records')" 2>&1)
psql_at "$DIR" "$PORT" legacy_db -U dba -At -c "CALL daznode_crm.run_in_steps('run_pre_migration_diagnostic')" >"$DIR/dba_steps.out" 2>&1
expect_eq "run_in_steps() and its log: refused without the grant, allowed to daznode_crm_maintenance" \
    "$(grep -c 'permission denied' <<<"$denied")|$(cat "$DIR/dba_steps.out")$(psql_at "$DIR" "$PORT" legacy_db -U dba -At -c "SELECT count(*) > 0 FROM daznode_crm.run_in_steps_log" 2>&1)" "1|t"

echo "# pg_cron"
out=$(q legacy_db -c "SELECT action FROM daznode_crm.schedule_crm_maintenance()")
if grep -q "pg_cron is not installed" <<<"$out"; then ok "without pg_cron: a clear message, nothing changed"; else not_ok "without pg_cron" "$out"; fi
if ! has_extension pg_cron; then
    skip "schedule_crm_maintenance() with pg_cron, and the jobs really running" pg_cron
    summary
    exit
fi
legacy_db cron_db 200
quiet cron_db -c "CREATE EXTENSION pg_cron"
expect_eq "schedule_crm_maintenance() creates the refresh job, skips what this version lacks" \
    "$(q cron_db -c "SELECT string_agg(job_name || '=' || split_part(action, ':', 1), ',' ORDER BY job_name) FROM daznode_crm.schedule_crm_maintenance()")" \
    "daznode-crm-cleanup-email-partitions=skipped,daznode-crm-fold-campaign-counts=scheduled,daznode-crm-refresh-materialized-views=scheduled,daznode-crm-refresh-segments=scheduled"
expect_eq "a second call updates, never duplicates" \
    "$(q cron_db -c "SELECT string_agg(action, ',') FROM daznode_crm.schedule_crm_maintenance() WHERE action NOT LIKE 'skipped%'")|$(q cron_db -c "SELECT count(*) FROM cron.job")" "updated,updated,updated|3"
quiet cron_db -c "SELECT cron.alter_job(jobid, schedule => '* * * * *') FROM cron.job WHERE jobname IN ('daznode-crm-refresh-materialized-views', 'daznode-crm-refresh-segments')"
# The guide's own job, verbatim (its bare name reaches the wrapper of step 0000), then every minute.
quiet cron_db -c "CALL daznode_crm.migrate()"
expect_eq "the guide's cron.schedule call, as written, schedules its job" \
    "$(q cron_db -c "SELECT cron.schedule(
  'refresh-crm-stats', 
  '0 * * * *', 
  'SELECT refresh_crm_materialized_views();'
) > 0")" "t"
quiet cron_db -c "SELECT cron.alter_job(jobid, schedule => '* * * * *') FROM cron.job WHERE jobname = 'refresh-crm-stats'"
# What a maintenance function yields in a pg_cron job, the setting unset: 3 (0 in psql).
quiet cron_db -c "CREATE TABLE yield_seen (factor float8)" \
    -c "SELECT cron.schedule('yield-seen', '* * * * *', 'INSERT INTO yield_seen SELECT daznode_crm.maintenance_yield()')"
echo "# waiting for pg_cron to run the jobs (its smallest interval is one minute)"
for _ in $(seq 1 80); do
    [ "$(q cron_db -c "SELECT count(DISTINCT command) FROM cron.job_run_details WHERE status IN ('succeeded', 'failed') AND command LIKE '%materialized%'")" -ge 2 ] &&
        [ "$(q cron_db -c "SELECT count(*) FROM yield_seen")" -ge 1 ] &&
        [ "$(q cron_db -c "SELECT count(*) FROM cron.job_run_details WHERE status IN ('succeeded', 'failed') AND command LIKE '%fold_campaign_counts%'")" -ge 1 ] &&
        [ "$(q cron_db -c "SELECT count(*) FROM cron.job_run_details WHERE status IN ('succeeded', 'failed') AND command LIKE '%run_in_steps%'")" -ge 1 ] && break
    sleep 1
done
expect_eq "both jobs ran and succeeded: daznode_crm's, and the guide's by its bare name" \
    "$(q cron_db -c "SELECT string_agg(DISTINCT status || ':' || command, ' / ') FROM cron.job_run_details WHERE command LIKE '%materialized%'")" \
    "succeeded:SELECT daznode_crm.refresh_crm_materialized_views() / succeeded:SELECT refresh_crm_materialized_views();"
expect_eq "the fold of the live campaign counts ran as a job and left no delta behind" \
    "$(q cron_db -c "SELECT string_agg(DISTINCT status, ',') FROM cron.job_run_details WHERE command LIKE '%fold_campaign_counts%'")|$(q cron_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" "succeeded|0"
expect_eq "the segment refresh ran in steps as a job (a background worker's CALL commits between segments) and logged each segment" \
    "$(q cron_db -c "SELECT string_agg(DISTINCT status || ':' || return_message, ',') FROM cron.job_run_details WHERE command LIKE '%run_in_steps%' AND status IN ('succeeded', 'failed')")|$(q cron_db -c "SELECT count(DISTINCT unit) FILTER (WHERE unit <> '(start)') || ':' || count(DISTINCT xmin::text) FILTER (WHERE unit <> '(start)') FROM daznode_crm.run_in_steps_log WHERE job = 'refresh_auto_update_segments' AND run_started = (SELECT min(run_started) FROM daznode_crm.run_in_steps_log WHERE job = 'refresh_auto_update_segments')")" \
    "succeeded:CALL|4:4"
expect_eq "in a pg_cron job, maintenance yields 3 times its work (0 in psql)" \
    "$(q cron_db -c "SELECT string_agg(DISTINCT factor::text, ',') FROM yield_seen")|$(q cron_db -c "SELECT daznode_crm.maintenance_yield()")" "3|0"
quiet cron_db -c "SELECT cron.unschedule('refresh-crm-stats')" -c "SELECT cron.unschedule('yield-seen')"
expect_eq "unschedule_crm_maintenance() removes the jobs" \
    "$(q cron_db -c "SELECT string_agg(action, ',' ORDER BY job_name) FROM daznode_crm.unschedule_crm_maintenance()")|$(q cron_db -c "SELECT count(*) FROM cron.job")" \
    "not scheduled,unscheduled,unscheduled,unscheduled|0"

summary
