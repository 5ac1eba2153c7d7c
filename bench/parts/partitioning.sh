# Part "partitioning", also run as "retention": migrate('complete') on a migrated
# database of 10 × `rows` sends over 24 months, under the writer probe; pgbench on the
# partitioned table against its unpartitioned twin (the backup, same rows, same indexes); then
# the retention cleanup in four steps (1, 2, 3 and 6 more months: 12 in all), each measured
# for cleanup_old_email_partitions(), DELETE on the unpartitioned twin, and pg_partman's
# run_maintenance() on a third copy with the same indexes. Sourced by bench/run.
source bench/parts/probe.sh
source bench/parts/pgbench.sh
pdb=partitioning_bench
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE IF EXISTS $pdb" -c "CREATE DATABASE $pdb" 2>/dev/null
ppsql() { PGOPTIONS="-c client_min_messages=warning" psql_at "$BENCH_DIR" "$BENCH_PORT" "$pdb" "$@"; }
sends=$((rows * 10))
bench_secs=$([ "$smoke" = true ] && echo 2 || echo 20)
ppsql -q -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql >/dev/null
ppsql -q -v profiles="$rows" -v sends="$sends" -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql >/dev/null
ppsql -q -c "CALL daznode_crm.migrate()" >/dev/null
ppsql -q -f demo/30-resolve-findings.sql >/dev/null 2>&1
ppsql -q -c "SELECT * FROM daznode_crm.cleanup_orphaned_records()" -c "VACUUM ANALYZE" >/dev/null

probe_start "$pdb" idle
sleep 5
idle=$(probe_stop)
probe_start "$pdb" partition
t0=$(date +%s%N)
ppsql -q -c "CALL daznode_crm.migrate('complete')" >/dev/null
part_ms=$(ms_since "$t0")
during=$(probe_stop)
parts=$(ppsql -At -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.crm_email_sends'::regclass")
ppsql -q -c "SELECT daznode_crm.finish_email_sends_partitioning()" -c "VACUUM ANALYZE" >/dev/null

# pgbench: the same scripts on the partitioned table and on the backup, as the owner.
for s in webhook campaign_stats; do
    src=$([ $s = webhook ] && echo bench/sql/workload/webhook.sql || echo bench/sql/campaign_stats.sql)
    sed 's/public\.crm_email_sends\b/public.crm_email_sends_backup/' "$src" >"$BENCH_DIR/$s.flat.sql"
    r=$(pgbench_pct "$pdb" postgres "$bench_secs" "$src" -D profiles="$rows" -D sends="$sends")
    printf -v "pb_${s}_part" '%s' "$r"
    r=$(pgbench_pct "$pdb" postgres "$bench_secs" "$BENCH_DIR/$s.flat.sql" -D profiles="$rows" -D sends="$sends")
    printf -v "pb_${s}_flat" '%s' "$r"
done

# pg_partman on the same rows, in its own partitioned table with the same keys and indexes.
ppsql -q -c "CREATE SCHEMA partman" -c "CREATE EXTENSION pg_partman SCHEMA partman" \
    -c "CREATE TABLE public.partman_sends (LIKE public.crm_email_sends INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)" \
    -c "SELECT partman.create_parent('public.partman_sends', 'created_at', 'native', 'monthly', p_start_partition := (SELECT (min(created_at))::text FROM public.crm_email_sends), p_premake := 3)" \
    -c "INSERT INTO public.partman_sends SELECT * FROM public.crm_email_sends" \
    -c "ALTER TABLE public.partman_sends ADD PRIMARY KEY (id, created_at)" \
    -c "ALTER TABLE public.partman_sends ADD FOREIGN KEY (campaign_id) REFERENCES public.crm_email_campaigns (id) ON DELETE CASCADE" \
    -c "ALTER TABLE public.partman_sends ADD FOREIGN KEY (customer_id) REFERENCES public.profiles (id) ON DELETE CASCADE" \
    -c "CREATE INDEX ON public.partman_sends (campaign_id, customer_id)" -c "CREATE INDEX ON public.partman_sends (customer_id)" \
    -c "CREATE INDEX ON public.partman_sends (campaign_id) INCLUDE (status, sent_at, opened_at, clicked_at, bounced_at)" \
    -c "VACUUM ANALYZE public.partman_sends" -c "CHECKPOINT" >/dev/null

# Retention in steps: each step removes the months between the previous cutoff and the next.
: >"$BENCH_DIR/retention.dat"
steps=""
total_rows=0
for keep in 23 21 18 12; do
    cutoff="date_trunc('month', now() - interval '$keep months')"
    # In one transaction: the function, then its own time read inside the transaction; the rest
    # of the total is the commit, where PostgreSQL removes the partitions' files.
    t0=$(date +%s%N)
    r=$(ppsql -At -c "BEGIN" -c "SELECT count(*) FILTER (WHERE action = 'dropped') FROM daznode_crm.cleanup_old_email_partitions(retention => '$keep months')" \
        -c "SELECT round(extract(epoch FROM clock_timestamp() - now()) * 1000)" -c "COMMIT")
    ours_ms=$(ms_since "$t0")
    ours=$(sed -n 1p <<<"$r"); ours_fn_ms=$(sed -n 2p <<<"$r")
    t0=$(date +%s%N)
    deleted=$(ppsql -At -c "WITH d AS (DELETE FROM public.crm_email_sends_backup WHERE coalesce(sent_at, opened_at, clicked_at, bounced_at) < $cutoff RETURNING 1) SELECT count(*) FROM d")
    delete_ms=$(ms_since "$t0")
    # The DELETE leaves dead rows; their space comes back only with a VACUUM.
    t0=$(date +%s%N)
    ppsql -q -c "VACUUM public.crm_email_sends_backup"
    vacuum_ms=$(ms_since "$t0")
    ppsql -q -c "UPDATE partman.part_config SET retention = '$keep months', retention_keep_table = false WHERE parent_table = 'public.partman_sends'"
    t0=$(date +%s%N)
    ppsql -q -c "SELECT partman.run_maintenance('public.partman_sends')" >/dev/null
    partman_ms=$(ms_since "$t0")
    partman_left=$(ppsql -At -c "SELECT count(*) FROM public.partman_sends WHERE created_at < $cutoff")
    echo "$deleted $delete_ms $ours_ms $partman_ms $ours_fn_ms $vacuum_ms" >>"$BENCH_DIR/retention.dat"
    steps+="| $keep months | $ours partitions, $deleted rows | **$ours_ms** ($ours_fn_ms + commit $((ours_ms - ours_fn_ms))) | $delete_ms (+ VACUUM $vacuum_ms) | $partman_ms ($partman_left old rows left) | $(ratio "$delete_ms" "$ours_ms") | $(ratio "$partman_ms" "$ours_ms") |
"
    total_rows=$((total_rows + deleted))
done
cp "$BENCH_DIR/retention.dat" "$out_dir/retention.dat"
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE $pdb"
sum_col() { awk -v c="$1" '{ s += $c } END { print s }' "$BENCH_DIR/retention.dat"; }
ours_total=$(sum_col 3); delete_total=$(sum_col 2); partman_total=$(sum_col 4); ours_fn_total=$(sum_col 5); vacuum_total=$(sum_col 6)

pb_row() { # label partitioned unpartitioned
    echo "| $1 | $(f "$2" 1) | $(f "$2" 2) | **$(f "$2" 3)** | $(f "$3" 1) | $(f "$3" 2) | $(f "$3" 3) | $(ratio "$(f "$2" 3)" "$(f "$3" 3)") |"
}

cat >"$out" <<EOF2
## Partitioning: migrate('complete'), pgbench, and the retention cleanup

$meta

$sends email sends over 24 months (\`fixtures/legacy/generate.sql\`), migrated with the safe
steps first. Probe as in the migration part (one profile and one send every 10 ms).

| what | seconds |
|---|---|
| \`CALL daznode_crm.migrate('complete')\`: $parts partitions, online copy, bulk index build, verification, swap | **$(awk -v m="$part_ms" 'BEGIN{printf "%.1f", m / 1000}')** |

Goal: under 2 minutes → $(ratio "$part_ms" 120000)× the budget.

| probe during | transactions | p50 ms | p99 ms | worst ms | worst ÷ idle worst |
|---|---|---|---|---|---|
| nothing (idle baseline) | $(f "$idle" 1) | $(f "$idle" 2) | $(f "$idle" 3) | $(f "$idle" 4) | 1.00 |
| \`migrate('complete')\` | $(f "$during" 1) | $(f "$during" 2) | $(f "$during" 3) | **$(f "$during" 4)** | $(ratio "$(f "$during" 4)" "$(f "$idle" 4)") |

Writes are captured by a trigger into a change log and replayed; they are blocked only for the
swap, which replays the last few ids under the lock (goal: worst probe wait under 1 s).

pgbench (\`-M prepared\`, 2 clients, $bench_secs s each, as the owner) on the partitioned table
and on its unpartitioned twin (the backup: same rows, same indexes), latency in ms:

| script | partitioned tx | p50 | p95 | unpartitioned tx | p50 | p95 | p95 ratio |
|---|---|---|---|---|---|---|---|
$(pb_row "webhook: UPDATE by (campaign_id, customer_id)" "$pb_webhook_part" "$pb_webhook_flat")
$(pb_row "campaign statistics (covering index)" "$pb_campaign_stats_part" "$pb_campaign_stats_flat")

Goal: no slower. Without a created_at in the webhook, the partitioned table probes
the index of every partition ($parts).

Retention cleanup, in four steps that remove 1, 2, 3 and 6 more months ($total_rows rows older
than 12 months in all), same data, times in ms including the commit (where the files are
removed):

| keep | removed | \`cleanup_old_email_partitions()\` (function + commit) | \`DELETE … WHERE … < cutoff\` (unpartitioned) | pg_partman 4.7 \`run_maintenance()\` | DELETE ÷ ours | partman ÷ ours |
|---|---|---|---|---|---|---|
$steps| **all four** | $total_rows rows | **$ours_total** ($ours_fn_total + commit $((ours_total - ours_fn_total))) | $delete_total (+ VACUUM $vacuum_total) | $partman_total | $(ratio "$delete_total" "$ours_total") | $(ratio "$partman_total" "$ours_total") |

Goals: time does not grow with the rows removed; at least 100× faster than the
DELETE; no slower than pg_partman. Most of our time is the commit, where PostgreSQL unlinks the
dropped partitions' files (heap and four indexes each; pg_partman pays the same): the function
itself runs in $ours_fn_total ms, $(ratio "$delete_total" "$ours_fn_total")× faster than the
DELETE. The DELETE also leaves $total_rows dead rows that only the VACUUM shown reclaims.
![retention cleanup](bench/results/retention.png)
EOF2
