#!/usr/bin/env bash
# Integration tests of the live campaign counts (step 0011) under concurrent writers: the
# recount property. Random inserts, updates (status, *_at, campaign_id), deletes, rolled-back
# transactions and replica-mode writes run from several clients (a superuser's, then the same
# writes, replica mode aside, by a role like Supabase's service_role: no superuser, no right on
# the counts' tables) while a fold runs now and then
# and a reader checks, in every read (one snapshot), that the counts equal a recount of the rows
# it sees; the same while migrate('complete') partitions the table and while the rollback puts it
# back; and, once the writers stop, the admins' source equals the old materialized view's
# definition over the rows. Its single-session contract is tests/pg_regress/sql/analytics.sql.
# Prints "ok - …" / "not ok - …" per check and ends with "N passed, M failed".
set -uo pipefail
export PGOPTIONS="-c client_min_messages=warning"
source "$(dirname "$0")/lib.sh"
DIR=$(run_dir it-analytics) && PORT=$(free_port) || exit 1
cluster_start "$DIR" "$PORT"
trap 'cluster_stop "$DIR"; remove_run_dir "$DIR"' EXIT
SENDS=50000
SECS=${ANALYTICS_SECS:-20}

legacy_db live_db 2000 $SENDS
quiet live_db -c "CALL daznode_crm.migrate()"
resolve_findings live_db
expect_eq "step 0011 applied: the counter on crm_email_sends, the materialized view gone, counts equal to a recount" \
    "$(q live_db -c "SELECT count(*) FROM daznode_crm.schema_migrations WHERE step = '0011_live_campaign_counts'")|$(q live_db -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.crm_email_sends'::regclass AND tgname LIKE 'daznode_count_sends%' AND tgenabled = 'A'")|$(q live_db -c "SELECT to_regclass('crm_private.crm_campaigns_analytics_mv') IS NULL")|$(q live_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" \
    "1|3|t|0"

# writers SECONDS TAG: 4 pgbench clients of random writes (deadlocks between them retried), as
# $WRITER (a superuser, with replica-mode writes, unless told otherwise).
WRITER=postgres
writers() {
    "$PG_BIN/pgbench" -n -h "$DIR" -p "$PORT" -U "$WRITER" -c 4 -j 4 -T "$1" --max-tries=20 -D sends=$SENDS \
        -D replica="$([ "$WRITER" = postgres ] && echo 1 || echo 0)" \
        -f tests/integration/analytics_writes.sql live_db >"$DIR/writers-$2.out" 2>&1
}
# checker TAG: until the flag file goes, one drift check per read (each one statement, one
# snapshot), and a fold every 10th; logs the reads that saw any drift.
checker() {
    local n=0
    : >"$DIR/drift-$1.log"
    while [ -e "$DIR/checking" ]; do
        n=$((n + 1))
        d=$(q live_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")
        [ "$d" = 0 ] || echo "read $n: $d" >>"$DIR/drift-$1.log"
        [ $((n % 10)) -ne 0 ] || q live_db -c "SELECT daznode_crm.fold_campaign_counts()" >/dev/null
    done
    echo "$n" >"$DIR/reads-$1"
}
# phase TAG CMD...: writers and the checker around CMD (or around the writers alone).
phase() {
    local tag=$1; shift
    touch "$DIR/checking"
    checker "$tag" &
    local c=$!
    writers "$SECS" "$tag" &
    local w=$!
    [ $# -eq 0 ] || "$@" >"$DIR/cmd-$tag.out" 2>&1
    wait $w
    rm -f "$DIR/checking"
    wait $c
}
tx() { grep -oE 'number of transactions actually processed: [0-9]+' "$DIR/writers-$1.out" | grep -oE '[0-9]+$'; }
failed_tx() { grep -oE 'number of failed transactions: [0-9]+' "$DIR/writers-$1.out" | grep -oE '[0-9]+$'; }
# writers_ok TAG WHAT: the writers of TAG committed over 100 transactions and none failed.
writers_ok() {
    if [ "$(tx "$1")" -gt 100 ] 2>/dev/null && [ "$(failed_tx "$1")" = 0 ]; then ok "$2: the 4 writers committed $(tx "$1") transactions, none failed"
    else not_ok "$2: the writers committed transactions, none failed" "$(cat "$DIR/writers-$1.out")"; fi
}

echo "# random writes on the unpartitioned table"
phase plain
writers_ok plain "random writes"
expect_eq "every one of $(cat "$DIR/reads-plain") reads during the writes saw counts equal to the recount of its snapshot" \
    "$(wc -l <"$DIR/drift-plain.log")" "0"
expect_eq "once the writers stop, counts equal a full recount" "$(q live_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" "0"
# The admins' source against the old materialized view's definition over the rows (columns and
# rates included), both ways.
src=$(q live_db -c "SELECT daznode_crm.campaign_counts_sql('analytics_live')")
rows=$(q live_db -c "SELECT daznode_crm.campaign_counts_sql('analytics_from_rows')")
expect_eq "the admins' analytics equal the materialized view's definition, every column" \
    "$(q live_db -c "SELECT (SELECT count(*) FROM (($src) EXCEPT ($rows)) a) || '|' || (SELECT count(*) FROM (($rows) EXCEPT ($src)) b) || '|' || (SELECT count(*) FROM ($src) c)")" \
    "0|0|500"

echo "# the same random writes by the app's own role: no superuser, no right on the counts' tables"
# Supabase's service_role: a login without superuser that bypasses RLS and writes the tables.
quiet postgres -c "CREATE ROLE app_writer LOGIN BYPASSRLS"
quiet live_db -c "GRANT USAGE ON SCHEMA public TO app_writer" -c "GRANT SELECT, INSERT, UPDATE, DELETE ON public.crm_email_sends TO app_writer"
expect_eq "the app's role is no superuser and has no right on the counts" \
    "$(q live_db -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'app_writer'")|$(q live_db -c "SELECT has_table_privilege('app_writer', 'crm_private.campaign_send_deltas', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE') OR has_table_privilege('app_writer', 'crm_private.campaign_send_counts', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')")" "f|f"
WRITER=app_writer phase app
writers_ok app "random writes as the app's role"
expect_eq "every one of $(cat "$DIR/reads-app") reads during its writes saw counts equal to the recount of its snapshot" \
    "$(wc -l <"$DIR/drift-app.log")" "0"
expect_eq "once it stops, counts equal a full recount" "$(q live_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" "0"

echo "# the partitioning swap with writers running"
phase swap psql_at "$DIR" "$PORT" live_db -c "SET client_min_messages = notice" -c "CALL daznode_crm.migrate('complete')"
expect_eq "migrate('complete') partitioned the table while the writers ran" \
    "$(grep -c '1 step(s) applied' "$DIR/cmd-swap.out")|$(q live_db -c "SELECT daznode_crm.email_sends_partitioned()")" "1|t"
expect_eq "the counter moved to the partitioned table; the backup has none" \
    "$(q live_db -c "SELECT string_agg(DISTINCT tgrelid::regclass::text, ',') || ':' || count(*) FROM pg_trigger WHERE tgname LIKE 'daznode_count_sends%'")" "crm_email_sends:3"
writers_ok swap "during the copy and the swap"
expect_eq "no read during the copy and the swap saw any drift ($(cat "$DIR/reads-swap") reads)" "$(wc -l <"$DIR/drift-swap.log")" "0"
expect_eq "after the swap, counts equal a full recount" "$(q live_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" "0"

echo "# the rollback with writers running"
phase rollback psql_at "$DIR" "$PORT" live_db -c "SELECT daznode_crm.rollback_email_sends_partitioning()"
expect_eq "the rollback restored the plain table while the writers ran; the counter followed" \
    "$(q live_db -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")|$(q live_db -c "SELECT string_agg(DISTINCT tgrelid::regclass::text, ',') || ':' || count(*) FROM pg_trigger WHERE tgname LIKE 'daznode_count_sends%'")" \
    "r|crm_email_sends:3"
writers_ok rollback "during the rollback"
expect_eq "no read during the rollback saw any drift ($(cat "$DIR/reads-rollback") reads)" "$(wc -l <"$DIR/drift-rollback.log")" "0"
expect_eq "after the rollback, counts equal a full recount" "$(q live_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" "0"

echo "# the step itself, run while the writers write"
quiet live_db -c "DROP TRIGGER daznode_count_sends ON public.crm_email_sends" -c "DROP TRIGGER daznode_count_sends_ins ON public.crm_email_sends" \
    -c "DROP TRIGGER daznode_count_sends_del ON public.crm_email_sends" -c "TRUNCATE crm_private.campaign_send_counts, crm_private.campaign_send_deltas" \
    -c "DELETE FROM daznode_crm.schema_migrations WHERE step = '0011_live_campaign_counts'"
writers "$SECS" step &
w=$!
sleep 2
out=$(psql_at "$DIR" "$PORT" live_db -c "CALL daznode_crm.migrate()" 2>&1)
wait $w
writers_ok step "during step 0011"
expect_eq "step 0011 applied while they wrote" "$(grep -c ERROR <<<"$out")|$(q live_db -c "SELECT count(*) FROM daznode_crm.schema_migrations WHERE step = '0011_live_campaign_counts'")" "0|1"
expect_eq "the counts it built (counter first, then one recount in one snapshot) equal a full recount" \
    "$(q live_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" "0"
expect_eq "the diagnosis: counter in place, fold current" \
    "$(q live_db -c "SELECT string_agg(metric || '=' || status, ',' ORDER BY metric) FROM daznode_crm.diagnose_crm_performance() WHERE area = 'analytics'")" \
    "deltas waiting for the fold=OK,live campaign counter=OK"
quiet live_db -c "ALTER TABLE public.crm_email_sends DISABLE TRIGGER daznode_count_sends"
expect_eq "a disabled counter trigger is an ERROR in the diagnosis" \
    "$(q live_db -c "SELECT status || ':' || value FROM daznode_crm.diagnose_crm_performance() WHERE metric = 'live campaign counter'")" \
    "ERROR:missing or disabled: daznode_count_sends"
quiet live_db -c "DROP TRIGGER daznode_count_sends_ins ON public.crm_email_sends"
expect_eq "install_send_counter(), as the diagnosis says, puts back the dropped trigger and re-enables the disabled one" \
    "$(q live_db -c "SELECT daznode_crm.install_send_counter()")|$(q live_db -c "SELECT status FROM daznode_crm.diagnose_crm_performance() WHERE metric = 'live campaign counter'")|$(q live_db -c "SELECT daznode_crm.install_send_counter()")" "t|OK|f"

summary
