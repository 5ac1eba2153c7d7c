#!/usr/bin/env bash
# A real streaming hot standby on this machine (pg_basebackup -R): every function that writes
# stops at once with 25006 and says to run it on the primary; the read-only diagnostics run there
# and say so; admin reads through RLS work on the standby; a demotion made on the primary is seen
# by a standby session at its next transaction.
# Prints "ok - …" / "not ok - …" per check and ends with "N passed, M failed".
set -uo pipefail
export PGOPTIONS="-c client_min_messages=error"
source "$(dirname "$0")/lib.sh"
DIR=$(run_dir it-standby) && PORT=$(free_port) || exit 1
SDIR=$(run_dir it-standby-replica) && SPORT=$(free_port) || exit 1
while [ "$SPORT" = "$PORT" ]; do SPORT=$(free_port) || exit 1; done

cluster_start "$DIR" "$PORT" "timezone = 'Europe/Paris'"
trap '[ -n "${KEEP:-}" ] || { as_postgres "$PG_BIN/pg_ctl" -D "$SDIR/data" -m immediate stop >/dev/null 2>&1; cluster_stop "$DIR"; }; remove_run_dir "$SDIR"; remove_run_dir "$DIR"' EXIT

supabase_roles
supabase_like_db sb
as_login app_owner sb "CALL daznode_crm.migrate()" >/dev/null
quiet sb -c "SET ROLE app_owner" -f demo/30-resolve-findings.sql
as_login app_owner sb "SELECT count(*) FROM daznode_crm.cleanup_orphaned_records()" >/dev/null
as_login app_owner sb "CALL daznode_crm.migrate('complete')" >/dev/null

# The standby: a base backup with recovery settings, on its own port and socket.
rm -rf "$SDIR" && mkdir -p "$SDIR" && chown postgres:postgres "$SDIR"
as_postgres "$PG_BIN/pg_basebackup" -h "$DIR" -p "$PORT" -U postgres -D "$SDIR/data" -R -X stream >/dev/null 2>&1
{ echo "port = $SPORT"; echo "unix_socket_directories = '$SDIR'"; echo "hot_standby = on"; } >>"$SDIR/data/postgresql.auto.conf"
as_postgres "$PG_BIN/pg_ctl" -D "$SDIR/data" -l "$SDIR/server.log" -w -t 60 start >/dev/null || cat "$SDIR/server.log"
sq() { local db=$1; shift; psql_at "$SDIR" "$SPORT" "$db" -At "$@" 2>&1; }
# ssql USER SQL: on the standby as USER, errors shown as "ERROR: <SQLSTATE>".
ssql() {
    local user=$1; shift
    "$PG_BIN/psql" -X -q -At -h "$SDIR" -p "$SPORT" -U "$user" -d sb -v VERBOSITY=sqlstate -v ON_ERROR_STOP=1 -c "$*" 2>&1 | tr '\n' ' ' | sed 's/ *$//'
}
# Waits until the standby has replayed everything the primary wrote so far (bounded).
caught_up() {
    local lsn
    lsn=$(q postgres -c "SELECT pg_current_wal_lsn()")
    for _ in $(seq 1 200); do
        [ "$(sq postgres -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
        sleep 0.05
    done
    return 1
}
caught_up
expect_eq "the standby is in recovery and has the migrated database" \
    "$(sq sb -c "SELECT pg_is_in_recovery(), (SELECT count(*) FROM daznode_crm.schema_migrations)")" "t|12"

echo "# functions that write stop at once on the standby (25006), naming the standby"
for call in "SELECT * FROM daznode_crm.cleanup_orphaned_records()" \
            "SELECT * FROM daznode_crm.refresh_crm_materialized_views()" \
            "SELECT * FROM daznode_crm.refresh_auto_update_segments()" \
            "SELECT * FROM daznode_crm.schedule_crm_maintenance()" \
            "SELECT * FROM daznode_crm.cleanup_old_email_partitions()" \
            "SELECT daznode_crm.rollback_email_sends_partitioning()" \
            "CALL daznode_crm.migrate('complete')" \
            "SELECT daznode_crm.fold_campaign_counts()" \
            "CALL daznode_crm.run_in_steps('run_pre_migration_diagnostic')" \
            "SELECT cleanup_orphaned_records()" \
            "SELECT refresh_crm_materialized_views()"; do
    expect_eq "$call: 25006" "$(ssql app_owner "$call")" "ERROR:  25006"
done
msg=$("$PG_BIN/psql" -X -q -h "$SDIR" -p "$SPORT" -U app_owner -d sb -c "SELECT * FROM daznode_crm.refresh_crm_materialized_views()" 2>&1)
expect_eq "the message names the function and the standby, and says where to run it" \
    "$(grep -c 'refresh_crm_materialized_views() writes, and this server is a hot standby (in recovery): run it on the primary' <<<"$msg")" "1"

echo "# read-only functions run there, and say so"
expect_eq "the dry run of the orphan cleanup runs on the standby" \
    "$(ssql app_owner "SELECT count(*) > 0 FROM daznode_crm.cleanup_orphaned_records(dry_run => true)")" "t"
# The dry run reads only the catalog (no temporary table): the same plan as on the primary.
expect_eq "the retention dry run runs on the standby and plans what the primary plans" \
    "$(ssql app_owner "SELECT string_agg(partition_name || ' ' || action, ', ' ORDER BY partition_name) FROM daznode_crm.cleanup_old_email_partitions(retention => '2 months', force => true, dry_run => true)")" \
    "$(as_login app_owner sb "SELECT string_agg(partition_name || ' ' || action, ', ' ORDER BY partition_name) FROM daznode_crm.cleanup_old_email_partitions(retention => '2 months', force => true, dry_run => true)")"
expect_eq "that plan is not empty (it would drop months)" \
    "$(ssql app_owner "SELECT count(*) > 0 FROM daznode_crm.cleanup_old_email_partitions(retention => '2 months', force => true, dry_run => true) WHERE action = 'would drop'")" "t"
expect_eq "run_pre_migration_diagnostic() runs and says it is on a hot standby" \
    "$(ssql dba "SELECT status FROM daznode_crm.run_pre_migration_diagnostic() WHERE check_name = 'server: hot standby'")|$(ssql dba "SELECT count(*) > 5 FROM run_pre_migration_diagnostic()")" "INFO|t"
expect_eq "diagnose_crm_performance() runs and says so too" \
    "$(ssql dba "SELECT status FROM daznode_crm.diagnose_crm_performance() WHERE area = 'server'")" "INFO"

echo "# admin reads through RLS on the standby, and a demotion at the next transaction"
admin=$(q sb -c "SELECT user_id FROM public.admin_roles WHERE role = 'admin' ORDER BY user_id LIMIT 1")
claims="{\"sub\": \"$admin\", \"role\": \"authenticated\"}"
expect_eq "the admin reads every profile through RLS on the standby, anon none" \
    "$(ssql authenticator "BEGIN; SET LOCAL ROLE authenticated; SET LOCAL request.jwt.claims = '$claims'; SELECT count(*) FROM public.profiles; COMMIT;")|$(ssql authenticator "BEGIN; SET LOCAL ROLE anon; SELECT count(*) FROM public.profiles; COMMIT;")" \
    "$(q sb -c "SELECT count(*) FROM public.profiles")|0"
# One standby session: reads as admin, the primary demotes them, and the session's next
# transaction (after the standby replayed the demotion) sees it.
out=$("$PG_BIN/psql" -X -q -At -h "$SDIR" -p "$SPORT" -U authenticator -d sb -v ON_ERROR_STOP=1 2>&1 <<SQL
SET ROLE authenticated;
SELECT set_config('request.jwt.claims', '$claims', false) IS NOT NULL;
SELECT daznode_crm.is_admin_user('{admin}');
\! "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d sb -c "UPDATE public.admin_roles SET role = 'support' WHERE user_id = '$admin'"
\! for i in \$(seq 1 200); do [ "\$("$PG_BIN/psql" -X -qAt -h "$SDIR" -p "$SPORT" -U postgres -d sb -c "SELECT pg_last_wal_replay_lsn() >= '\$("$PG_BIN/psql" -X -qAt -h "$DIR" -p "$PORT" -U postgres -d postgres -c 'SELECT pg_current_wal_lsn()')'::pg_lsn")" = t ] && break; sleep 0.05; done
SELECT daznode_crm.is_admin_user('{admin}');
SQL
)
expect_eq "a standby session kept its role until the demotion replayed, then lost it at its next transaction" "$(tr '\n' ' ' <<<"$out" | sed 's/ *$//')" "t t f"
quiet sb -c "UPDATE public.admin_roles SET role = 'admin' WHERE user_id = '$admin'"

summary
