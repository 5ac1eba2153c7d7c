#!/usr/bin/env bash
# Crashes (pg_ctl stop -m immediate) at each phase of migrate('complete'), of the rollback and
# between two partitions of cleanup_old_email_partitions(), and a cancel and a crash of step 0011
# between its counter's commit and its recount, with a writer inserting sends all
# along. The operation is paused at the exact point by daznode_crm.pause_at (a setting only
# tests use; the wait is for its pg_sleep in pg_stat_activity, never a fixed sleep). After each
# restart: every acknowledged write is there, and the next call completes with the same content.
# Also the disk preflight (a setting makes the need look large; the disk is never filled) and the
# progress view, read from another session during a paused run. Last, the CRM owner is a
# non-superuser (the Supabase role model) and its own run is crashed and resumed.
# Prints "ok - …" / "not ok - …" per check and ends with "N passed, M failed".
set -uo pipefail
export PGOPTIONS="-c client_min_messages=error"
source "$(dirname "$0")/lib.sh"
DIR=$(run_dir it-crash) && PORT=$(free_port) || exit 1

cluster_start "$DIR" "$PORT" "timezone = 'Asia/Tokyo'"
trap '[ -n "${WRITER:-}" ] && kill "$WRITER" 2>/dev/null; [ -n "${KEEP:-}" ] || cluster_stop "$DIR"; remove_run_dir "$DIR"' EXIT

legacy_db crash 2000
resolve_findings crash
quiet crash -c "SELECT * FROM daznode_crm.cleanup_orphaned_records()" -c "CALL daznode_crm.migrate()"
campaign=$(q crash -c "SELECT id FROM public.crm_email_campaigns ORDER BY id LIMIT 1")
ACKED="$DIR/acked"
: >"$ACKED"
WDB=crash
WUSER=postgres

# The writer: as WUSER in WDB (postgres in crash, then the app's owner in a Supabase-like
# database), one send per transaction, its id kept once the server acknowledged the commit.
start_writer() {
    (
        while [ ! -f "$DIR/stop_writer" ]; do
            id=$("$PG_BIN/psql" -X -qAt -h "$DIR" -p "$PORT" -U "$WUSER" -d "$WDB" -c \
                "INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at) VALUES ('$campaign', 'w@daznode.io', 'sent', now()) RETURNING id" 2>/dev/null) \
                && [ -n "$id" ] && echo "$id" >>"$ACKED"
        done
    ) &
    WRITER=$!
}
stop_writer() { touch "$DIR/stop_writer"; wait "$WRITER" 2>/dev/null; rm -f "$DIR/stop_writer"; WRITER=; }
lost_writes() {
    q "$WDB" -c "CREATE TEMP TABLE acked (id uuid)" -c "\\copy acked FROM '$ACKED'" \
        -c "SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM public.crm_email_sends e WHERE e.id = a.id)" | tail -1
}
# Waits (bounded) until a backend sleeps in pause_for_tests() at the given phase.
wait_paused() {
    for _ in $(seq 1 600); do
        [ "$(q postgres -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND application_name LIKE 'daznode\_crm %'")" -ge 1 ] && return 0
        sleep 0.1
    done
    return 1
}
# paused_call USER DB PHASE SQL: runs SQL in the background, paused at PHASE; its pid in $run.
paused_call() {
    PGOPTIONS="-c client_min_messages=error -c daznode_crm.pause_at=${3// /\\ }" "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U "$1" -d "$2" \
        -c "$4" >/dev/null 2>&1 &
    run=$!
}
crash_and_restart() {
    as_postgres "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1
    as_postgres "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null
}
content() { content_in crash "$1"; }
content_in() {  # DB TABLE: every column but created_at, in id order: the same rows with the same content
    q "$1" -c "SELECT count(*) || ':' || md5(string_agg(md5((id, campaign_id, customer_id, email, status, sent_at, opened_at, clicked_at, bounced_at, error_message, metadata)::text), '' ORDER BY id)) FROM $2"
}

echo "# the disk preflight refuses to start below 1.2x what the copy needs; force skips it"
out=$(PGOPTIONS="-c client_min_messages=error -c daznode_crm.disk_need_inflate=1e9" "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d crash -v VERBOSITY=verbose -c "CALL daznode_crm.migrate('complete')" 2>&1)
expect_eq "with the need made to look huge: 53100, both numbers, nothing started" \
    "$(grep -c 'ERROR:  53100' <<<"$out")|$(grep -c 'needs .* with the 1.2× margin; .* is free' <<<"$out")|$(q crash -c "SELECT count(*) FROM pg_class WHERE relname = 'crm_email_sends_partitioned'")" "1|1|0"
expect_eq "the diagnostic says the same, as an ERROR" \
    "$(PGOPTIONS="-c daznode_crm.disk_need_inflate=1e9" q crash -c "SELECT status FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'disk: room for the partitioning'")|$(q crash -c "SELECT status FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'disk: room for the partitioning'")" "ERROR|OK"

echo "# a crash at each phase of migrate('complete'), with a writer running"
start_writer
for phase in copied "indexes built" verified; do
    paused_call postgres crash "$phase" "CALL daznode_crm.migrate('complete')"
    if wait_paused "migrate"; then
        if [ "$phase" = copied ]; then
            expect_eq "another session sees the copy's progress in operation_progress" \
                "$(q crash -c "SELECT operation || ':' || phase || ':' || (rows_done > 0) || ':' || (rows_estimated >= rows_done) || ':' || (started_at <= now()) FROM daznode_crm.operation_progress")" "0010:copying:true:true:true"
        fi
        crash_and_restart
        wait "$run" 2>/dev/null
        expect_eq "crash at '$phase': every acknowledged write is there, the table is still the unpartitioned one" \
            "$(lost_writes)|$(q crash -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")" "0|r"
    else
        not_ok "migrate('complete') never paused at '$phase'"
    fi
done
stop_writer
out=$(q crash -c "CALL daznode_crm.migrate('complete')")
expect_eq "after the crashes, migrate('complete') completes with every acknowledged write and the same content in both tables" \
    "$(grep -c ERROR <<<"$out")|$(q crash -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")|$(lost_writes)|$([ "$(content public.crm_email_sends)" = "$(content public.crm_email_sends_backup)" ] && echo same)" \
    "0|p|0|same"

echo "# a crash inside the rollback"
start_writer
paused_call postgres crash "rollback" "SELECT daznode_crm.rollback_email_sends_partitioning()"
if wait_paused "rollback"; then
    expect_eq "another session sees the rollback in operation_progress" "$(q crash -c "SELECT operation || ':' || phase FROM daznode_crm.operation_progress")" "rollback:swapping-back"
    crash_and_restart
    wait "$run" 2>/dev/null
    expect_eq "crash in the rollback: nothing of it stays (still partitioned, mirror on), no acknowledged write lost" \
        "$(q crash -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")|$(q crash -c "SELECT count(*) FROM pg_trigger WHERE tgname = 'daznode_mirror_to_backup' AND tgrelid = 'public.crm_email_sends'::regclass")|$(lost_writes)" "p|1|0"
else
    not_ok "the rollback never paused"
fi
stop_writer
out=$(q crash -c "SELECT daznode_crm.rollback_email_sends_partitioning() IS NOT NULL")
expect_eq "the next rollback completes: unpartitioned again, every acknowledged write there, the same content as the partitioned copy" \
    "$out|$(q crash -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")|$(lost_writes)|$([ "$(content public.crm_email_sends)" = "$(content public.crm_email_sends_partitioned)" ] && echo same)" \
    "t|r|0|same"

echo "# a crash between two partitions of the retention cleanup"
quiet crash -c "CALL daznode_crm.migrate('complete')"
before=$(q crash -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.crm_email_sends'::regclass")
expired=$(q crash -c "SELECT count(*) FROM daznode_crm.cleanup_old_email_partitions(retention => '3 months', force => true, dry_run => true) WHERE action = 'would drop'")
start_writer
paused_call postgres crash "between partitions" "SELECT count(*) FROM daznode_crm.cleanup_old_email_partitions(retention => '3 months', force => true)"
if [ "$expired" -ge 2 ] && wait_paused "cleanup_old_email_partitions"; then
    expect_eq "another session sees the cleanup's progress (one partition done of $expired)" \
        "$(q crash -c "SELECT operation || ':' || phase || ':' || rows_done || '/' || rows_estimated FROM daznode_crm.operation_progress")" "cleanup:dropping:1/$expired"
    crash_and_restart
    wait "$run" 2>/dev/null
    expect_eq "crash between two partitions: none dropped (one transaction), no acknowledged write lost" \
        "$(q crash -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.crm_email_sends'::regclass")|$(lost_writes)" "$before|0"
else
    not_ok "the cleanup never paused between partitions ($expired expired)"
fi
stop_writer
out=$(q crash -c "SELECT count(*) FROM daznode_crm.cleanup_old_email_partitions(retention => '3 months', force => true) WHERE action = 'dropped'")
expect_eq "the next cleanup drops them all; every acknowledged write is there" "$out|$(lost_writes)" "$expired|0"

# cancel_and_crash_0011 USER DB: in DB, migrated up to step 0009 by USER (the CRM owner), step
# 0011 is cancelled, then crashed, after its counter committed and before its recount, with the
# writer running as USER; the next migrate() by USER completes it.
cancel_and_crash_0011() {
    local user=$1 db=$2
    migrate_as() { if [ "$user" = postgres ]; then q "$db" -c "CALL daznode_crm.migrate()"; else as_login "$user" "$db" "CALL daznode_crm.migrate()"; fi; }
    state() { echo "$(q "$db" -c "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'daznode_count_sends%'")|$(q "$db" -c "SELECT to_regclass('crm_private.crm_campaigns_analytics_mv') IS NOT NULL")|$(q "$db" -c "SELECT count(*) FROM daznode_crm.pending_migrations()")"; }
    paused_call "$user" "$db" "counter committed" "CALL daznode_crm.migrate()"
    if wait_paused "migrate"; then
        quiet "$db" -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND application_name LIKE 'daznode\_crm %'"
        wait "$run" 2>/dev/null
        expect_eq "$user: a cancel of step 0011 after its counter committed: the counter stays, the admins still read the materialized view, the step is pending" \
            "$(state)" "3|t|1"
    else
        not_ok "$user: step 0011 never paused after its counter committed"
    fi
    WDB=$db
    WUSER=$user
    campaign=$(q "$db" -c "SELECT id FROM public.crm_email_campaigns ORDER BY id LIMIT 1")
    : >"$ACKED"
    start_writer
    paused_call "$user" "$db" "counter committed" "CALL daznode_crm.migrate()"
    if wait_paused "migrate"; then
        expect_eq "$user: another session sees step 0011 counting in operation_progress" "$(q "$db" -c "SELECT operation || ':' || phase FROM daznode_crm.operation_progress")" "0011:counting"
        crash_and_restart
        wait "$run" 2>/dev/null
        expect_eq "$user: crash in step 0011: the counter stays (committed), the admins still read the materialized view, the step is pending, no acknowledged write lost" \
            "$(state)|$(lost_writes)" "3|t|1|0"
    else
        not_ok "$user: step 0011 never paused after its counter committed"
    fi
    out=$(migrate_as)
    stop_writer
    expect_eq "$user: the next migrate() completes step 0011 while the writer writes: the counts equal a full recount, the materialized view is gone, no acknowledged write lost" \
        "$(grep -c ERROR <<<"$out")|$(q "$db" -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")|$(q "$db" -c "SELECT to_regclass('crm_private.crm_campaigns_analytics_mv') IS NULL")|$(lost_writes)" \
        "0|0|t|0"
}

echo "# a cancel and a crash inside step 0011 (live campaign counts): after its counter committed, before the recount"
legacy_db live11 500
resolve_findings live11
quiet live11 -c "CALL daznode_crm.migrate('0009_analytics_views')"
cancel_and_crash_0011 postgres live11

echo "# the same crash with the CRM owner a non-superuser (Supabase's postgres): app_owner runs migrate('complete')"
supabase_roles
echo "# first, step 0011's cancel and crash as app_owner, in a Supabase-like database"
supabase_like_db sblive
as_login app_owner sblive "CALL daznode_crm.migrate('0009_analytics_views')" >/dev/null
cancel_and_crash_0011 app_owner sblive
supabase_like_db sbcrash
as_login app_owner sbcrash "CALL daznode_crm.migrate()" >/dev/null
quiet sbcrash -c "SET ROLE app_owner" -f demo/30-resolve-findings.sql
as_login app_owner sbcrash "SELECT count(*) FROM daznode_crm.cleanup_orphaned_records()" >/dev/null
WDB=sbcrash
WUSER=app_owner
campaign=$(q sbcrash -c "SELECT id FROM public.crm_email_campaigns ORDER BY id LIMIT 1")
: >"$ACKED"
start_writer
paused_call app_owner sbcrash "copied" "CALL daznode_crm.migrate('complete')"
if wait_paused "migrate"; then
    expect_eq "app_owner's run shows in operation_progress, read by the dba role" \
        "$(as_login dba sbcrash "SELECT operation || ':' || phase FROM daznode_crm.operation_progress")" "0010:copying"
    crash_and_restart
    wait "$run" 2>/dev/null
    expect_eq "crash of app_owner's run: every acknowledged write is there, still unpartitioned" \
        "$(lost_writes)|$(q sbcrash -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")" "0|r"
else
    not_ok "app_owner's migrate('complete') never paused at 'copied'"
fi
stop_writer
out=$(as_login app_owner sbcrash "CALL daznode_crm.migrate('complete')")
expect_eq "app_owner's next run completes: partitioned, owned by app_owner, every acknowledged write, same content as the backup" \
    "$(grep -c ERROR <<<"$out")|$(q sbcrash -c "SELECT relkind::text || ':' || pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")|$(lost_writes)|$([ "$(content_in sbcrash public.crm_email_sends)" = "$(content_in sbcrash public.crm_email_sends_backup)" ] && echo same)" \
    "0|p:app_owner|0|same"

summary
