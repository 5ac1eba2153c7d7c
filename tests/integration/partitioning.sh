#!/usr/bin/env bash
# Integration tests of the partitioning of crm_email_sends: migrate('complete') with
# writers running during the copy, rollback after writes, and cleanup_old_email_partitions() on
# old data (dry run, two runs at once, a partition locked by another session, archive). Its
# single-session contract is tests/pg_regress/sql/retention.sql. The cluster's time zone is
# Asia/Tokyo, so "now" and month boundaries differ from UTC.
# Prints "ok - …" / "not ok - …" per check and ends with "N passed, M failed".
set -uo pipefail
export PGOPTIONS="-c client_min_messages=warning"
source "$(dirname "$0")/lib.sh"
DIR=$(run_dir it-part) && PORT=$(free_port) || exit 1

cluster_start "$DIR" "$PORT" "timezone = 'Asia/Tokyo'"
trap 'cluster_stop "$DIR"; remove_run_dir "$DIR"' EXIT
migrate() { psql_at "$DIR" "$PORT" "$1" -c "SET client_min_messages = notice" -c "CALL daznode_crm.migrate('${2:-latest}')" 2>&1; }
# Content of the sends without created_at, order-independent, comparable across both tables.
sends_hash() { q "$1" -c "SELECT count(*) || ':' || coalesce(sum(('x' || substr(md5(ROW(id, campaign_id, customer_id, email, status, sent_at, opened_at, clicked_at, bounced_at, error_message, metadata)::text), 1, 15))::bit(60)::bigint), 0) FROM public.$2"; }

echo "# migrate('complete') with writers running"
legacy_db part_db 2000 200000
migrate part_db >/dev/null
resolve_findings part_db
before=$(sends_hash part_db crm_email_sends)
# The writer: inserts, updates and deletes sends while the copy runs, in its own transactions.
(
    for i in $(seq 1 300); do
        # Every tenth writer runs as a logical replication subscriber would (replica mode).
        mode=$([ $((i % 10)) -eq 0 ] && echo replica || echo origin)
        psql_at "$DIR" "$PORT" part_db -q -c "SET session_replication_role = $mode; INSERT INTO public.crm_email_sends (campaign_id, email, status) VALUES (md5('camp1')::uuid, 'writer$i@x.io', 'pending');
            UPDATE public.crm_email_sends SET error_message = 'touched $i' WHERE id = md5('send' || ($i * 97))::uuid;
            DELETE FROM public.crm_email_sends WHERE id = md5('send' || ($i * 89 + 1))::uuid" >>"$DIR/writer.log" 2>&1
    done
) &
writer=$!
out=$(psql_at "$DIR" "$PORT" part_db -c "SET client_min_messages = notice" -c "CALL daznode_crm.migrate('complete')" 2>&1)
wait $writer
if grep -q "1 step(s) applied" <<<"$out"; then ok "migrate('complete') partitions the table"; else not_ok "migrate('complete') partitions the table" "$out"; fi
grep -q "copied .* of about" <<<"$out" && ok "the copy reports progress" || not_ok "the copy reports progress" "$out"
grep -qE "replayed [1-9][0-9]* rows written during the copy" <<<"$out" && ok "writes made during the copy were captured and replayed" \
    || not_ok "writes made during the copy were captured and replayed" "$(grep -E 'replayed|copied' <<<"$out")"
expect_eq "no capture trigger, change log or copy is left behind" \
    "$(q part_db -c "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'daznode_capture%'")|$(q part_db -c "SELECT to_regclass('public.crm_email_sends_changes') IS NULL AND to_regclass('public.crm_email_sends_partitioned') IS NULL")" "0|t"
expect_eq "partitioned by range on created_at, with a default partition" \
    "$(q part_db -c "SELECT pg_get_partkeydef('public.crm_email_sends'::regclass) || '|' || (SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.crm_email_sends'::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT')")" \
    "RANGE (created_at)|1"
if [ -s "$DIR/writer.log" ]; then not_ok "the writer saw no error during the migration" "$(sort "$DIR/writer.log" | uniq -c | head -5)"; else ok "the writer saw no error during the migration"; fi
expect_eq "every write made during the copy is there: 300 inserts, their updates, their deletes" \
    "$(q part_db -c "SELECT (SELECT count(*) FROM public.crm_email_sends WHERE email LIKE 'writer%') || '|' || (SELECT count(*) FROM public.crm_email_sends WHERE error_message LIKE 'touched %') || '|' || (SELECT count(*) FROM public.crm_email_sends WHERE id IN (SELECT md5('send' || (i * 89 + 1))::uuid FROM generate_series(1, 300) i))")" \
    "300|$(q part_db -c "SELECT count(*) FROM public.crm_email_sends_backup WHERE error_message LIKE 'touched %'")|0"
expect_eq "the partitioned table and the backup hold the same rows" "$(sends_hash part_db crm_email_sends)" "$(sends_hash part_db crm_email_sends_backup)"
expect_eq "primary key (id, created_at), planned indexes in place and valid" \
    "$(q part_db -c "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'crm_email_sends_pkey' AND conrelid = 'public.crm_email_sends'::regclass")|$(q part_db -c "SELECT string_agg(DISTINCT status, ',') FROM daznode_crm.check_concurrent_indexes_status() WHERE table_name = 'crm_email_sends'")" \
    "PRIMARY KEY (id, created_at)|valid"
expect_eq "no name clashes: the backup's objects are renamed" \
    "$(q part_db -c "SELECT count(*) FROM pg_class WHERE relname IN ('crm_email_sends_backup_pkey', 'idx_email_sends_customer_backup')")" "2"
expect_eq "views read the partitioned table; the live counts moved with the swap and equal a recount" \
    "$(q part_db -c "SELECT count(*) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE d.refobjid = 'public.crm_email_sends_backup'::regclass AND r.ev_class <> 'public.crm_email_sends_backup'::regclass")|$(q part_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")|$(q part_db -c "SELECT string_agg(tgrelid::regclass::text, ',') FROM pg_trigger WHERE tgname LIKE 'daznode_count_sends%'")|$(q part_db -c "SELECT sum(total_sends) > 0 FROM public.crm_campaign_stats")" \
    "0|0|crm_email_sends,crm_email_sends,crm_email_sends|t"
expect_eq "row-level security and its policies follow" \
    "$(q part_db -c "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")|$(q part_db -c "SELECT count(*) FROM pg_policy WHERE polrelid = 'public.crm_email_sends'::regclass")" "t|4"
expect_eq "created_at backfilled from the first timestamp a row has" \
    "$(q part_db -c "SELECT count(*) FROM public.crm_email_sends WHERE sent_at IS NOT NULL AND created_at <> sent_at")" "0"
expect_eq "a second migrate('complete') has nothing to do" "$(migrate part_db complete | grep -c '0 step(s) applied')" "1"
# A write to the partitioned table is in the live counts at once, with no refresh.
camp=$(q part_db -c "SELECT id FROM public.crm_email_campaigns ORDER BY id LIMIT 1")
live_recipients() { q part_db -c "SELECT recipients FROM ($(q part_db -c "SELECT daznode_crm.campaign_counts_sql('live')")) l WHERE campaign_id = '$camp'"; }
n_before=$(live_recipients)
quiet part_db -c "INSERT INTO public.crm_email_sends (campaign_id, customer_id, email, status) SELECT '$camp', id, 'fresh@example.com', 'sent' FROM public.profiles ORDER BY id LIMIT 1"
expect_eq "after a write to a partition, the live counts count it at once" \
    "$(( $(live_recipients) - n_before ))|$(q part_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")" "1|0"

echo "# rollback after writes"
quiet part_db -c "INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at) VALUES (md5('camp2')::uuid, 'after@x.io', 'sent', now())" \
    -c "SET session_replication_role = replica" -c "INSERT INTO public.crm_email_sends (campaign_id, email, status, sent_at) VALUES (md5('camp2')::uuid, 'replica@x.io', 'sent', now())" -c "RESET session_replication_role" \
    -c "UPDATE public.crm_email_sends SET status = 'clicked', clicked_at = now() WHERE id = md5('send10')::uuid" \
    -c "DELETE FROM public.crm_email_sends WHERE id = md5('send11')::uuid"
guide=$(psql_at "$DIR" "$PORT" part_db -c "BEGIN" -c "DROP TABLE public.crm_email_sends" -c "ROLLBACK" 2>&1)
expect_eq "the guide's rollback (DROP TABLE; RENAME) fails: views depend on the table" "$(grep -c 'other objects depend on it' <<<"$guide")" "1"
partitioned=$(sends_hash part_db crm_email_sends)
out=$(q part_db -c "SELECT daznode_crm.rollback_email_sends_partitioning()")
expect_eq "rollback restores the unpartitioned table with every row written since" \
    "$(q part_db -c "SELECT relkind FROM pg_class WHERE oid = 'public.crm_email_sends'::regclass")|$(sends_hash part_db crm_email_sends)" "r|$partitioned"
expect_eq "the writes after the migration are in it, one made in replica mode too" \
    "$(q part_db -c "SELECT (SELECT count(*) FROM public.crm_email_sends WHERE email IN ('after@x.io', 'replica@x.io')) || '|' || (SELECT status FROM public.crm_email_sends WHERE id = md5('send10')::uuid) || '|' || (SELECT count(*) FROM public.crm_email_sends WHERE id = md5('send11')::uuid)")" \
    "2|clicked|0"
# (crm_campaign_stats; the campaigns' materialized view is gone since step 0011: live counts)
expect_eq "views read the restored table, the step is pending again" \
    "$(q part_db -c "SELECT count(DISTINCT r.ev_class) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE d.refobjid = 'public.crm_email_sends'::regclass AND r.ev_class <> 'public.crm_email_sends'::regclass")|$(q part_db -c "SELECT count(*) FROM daznode_crm.pending_migrations('complete')")" \
    "1|1"
counters() { echo "$(q part_db -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")|$(q part_db -c "SELECT string_agg(tgrelid::regclass::text || ':' || tgenabled::text, ',') FROM pg_trigger WHERE tgname LIKE 'daznode_count_sends%'")"; }
expect_eq "the live counts followed the rollback: exact (the write in replica mode counted), on the restored table" \
    "$(counters)" "0|crm_email_sends:A,crm_email_sends:A,crm_email_sends:A"
expect_eq "and it can be partitioned again" "$(migrate part_db complete | grep -c '1 step(s) applied')|$(sends_hash part_db crm_email_sends)" "1|$partitioned"
expect_eq "the live counts followed the second swap, still exact" \
    "$(counters)" "0|crm_email_sends:A,crm_email_sends:A,crm_email_sends:A"

echo "# cleanup_old_email_partitions()"
cleanup() { q "$1" -c "SELECT string_agg(coalesce(partition_name, '') || '=' || action, ',' ORDER BY range_start NULLS FIRST) FROM daznode_crm.cleanup_old_email_partitions($2)"; }
# Arguments, the unpartitioned table, bounds, premake and rows stuck in the default partition:
# tests/pg_regress/sql/retention.sql. Here: old data, and what needs a second session.
# Old data: part_db's partitions start in 2024-11; keep 12 months.
expired_before=$(q part_db -c "SELECT count(*) FROM pg_class WHERE relname ~ '^crm_email_sends_p' AND relkind = 'r' AND relname < 'crm_email_sends_p' || to_char(now() AT TIME ZONE 'UTC' - interval '12 months', 'YYYYMM')")
rows_before=$(q part_db -c "SELECT count(*) FROM public.crm_email_sends")
live_total() { q part_db -c "SELECT sum(recipients) FROM ($(q part_db -c "SELECT daznode_crm.campaign_counts_sql('live')")) l"; }
live_before=$(live_total)
dry=$(cleanup part_db "dry_run => true")
expect_eq "a dry run reports and changes nothing" \
    "$(tr ',' '\n' <<<"$dry" | grep -c 'would drop')|$(q part_db -c "SELECT count(*) FROM public.crm_email_sends")" "$expired_before|$rows_before"
psql_at "$DIR" "$PORT" part_db -q -c "BEGIN" -c "SELECT pg_advisory_xact_lock(hashtext('daznode_crm.cleanup_old_email_partitions'))" -c "SELECT pg_sleep(2)" -c "COMMIT" >/dev/null 2>&1 &
wait_for part_db "$ADVISORY_HELD"
expect_eq "a second run while one runs returns at once" "$(cleanup part_db "")" "=skipped: already running"
wait
oldest=$(q part_db -c "SELECT min(relname) FROM pg_class WHERE relname ~ '^crm_email_sends_p[0-9]{6}$' AND relkind = 'r'")
psql_at "$DIR" "$PORT" part_db -q -c "BEGIN" -c "SELECT count(*) FROM public.$oldest" -c "SELECT pg_sleep(6)" -c "COMMIT" >/dev/null 2>&1 &
wait_for part_db "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'public.$oldest'::regclass AND granted AND pid <> pg_backend_pid())"
result=$(cleanup part_db "archive => true")
wait
expect_eq "a partition locked by another session is skipped, the others are archived" \
    "$(tr ',' '\n' <<<"$result" | grep -c "^$oldest=skipped: lock not available")|$(tr ',' '\n' <<<"$result" | grep -c '=archived to crm_archive')" \
    "1|$((expired_before - 1))"
expect_eq "archived partitions keep their rows in crm_archive, detached" \
    "$(q part_db -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'crm_archive' AND c.relkind = 'r' AND NOT c.relispartition")" "$((expired_before - 1))"
expect_eq "the next run drops the one that was locked" "$(cleanup part_db "")" "$oldest=dropped"
expect_eq "the live counts keep the history of the dropped and archived partitions" \
    "$(live_total)|$(q part_db -c "SELECT sum(recipients) < 0 FROM daznode_crm.campaign_counts_drift()")" "$live_before|t"
expect_eq "nothing within the retention window was touched" \
    "$(q part_db -c "SELECT count(*) FROM public.crm_email_sends WHERE created_at >= now() - interval '12 months'")" \
    "$(q part_db -c "SELECT count(*) FROM public.crm_email_sends_backup b WHERE coalesce(b.sent_at, b.opened_at, b.clicked_at, b.bounced_at, now()) >= now() - interval '12 months'")"

summary
