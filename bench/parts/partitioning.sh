# Part "partitioning" (issue #6): migrate('complete') on a migrated database of 10 × `rows`
# sends over 24 months, under the writer probe; then a retention cleanup removing 12 months:
# cleanup_old_email_partitions() against DELETE on the unpartitioned copy (the backup) and
# against pg_partman's run_maintenance() on the same rows. Sourced by bench/run.
source bench/parts/probe.sh
pdb=partitioning_bench
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE IF EXISTS $pdb" -c "CREATE DATABASE $pdb" 2>/dev/null
ppsql() { PGOPTIONS="-c client_min_messages=warning" psql_at "$BENCH_DIR" "$BENCH_PORT" "$pdb" "$@"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3g", a / b; else print "-" }'; }
sends=$((rows * 10))
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

# pg_partman on the same rows, in its own partitioned table.
ppsql -q -c "CREATE SCHEMA partman" -c "CREATE EXTENSION pg_partman SCHEMA partman" \
    -c "CREATE TABLE public.partman_sends (LIKE public.crm_email_sends INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)" \
    -c "SELECT partman.create_parent('public.partman_sends', 'created_at', 'native', 'monthly', p_start_partition := (SELECT (min(created_at))::text FROM public.crm_email_sends), p_premake := 3)" \
    -c "INSERT INTO public.partman_sends SELECT * FROM public.crm_email_sends" \
    -c "UPDATE partman.part_config SET retention = '12 months', retention_keep_table = false WHERE parent_table = 'public.partman_sends'" \
    -c "VACUUM ANALYZE public.partman_sends" >/dev/null

cutoff="now() - interval '12 months'"
old_rows=$(ppsql -At -c "SELECT count(*) FROM public.crm_email_sends WHERE created_at < date_trunc('month', $cutoff)")
t0=$(date +%s%N)
ours=$(ppsql -At -c "SELECT count(*) FILTER (WHERE action = 'dropped') || ' partitions, ' || coalesce(sum(rows) FILTER (WHERE action = 'dropped'), 0) || ' rows' FROM daznode_crm.cleanup_old_email_partitions(retention => '12 months')")
ours_ms=$(ms_since "$t0")
t0=$(date +%s%N)
deleted=$(ppsql -At -c "WITH d AS (DELETE FROM public.crm_email_sends_backup WHERE coalesce(sent_at, opened_at, clicked_at, bounced_at) < date_trunc('month', $cutoff) RETURNING 1) SELECT count(*) FROM d")
delete_ms=$(ms_since "$t0")
t0=$(date +%s%N)
ppsql -q -c "SELECT partman.run_maintenance('public.partman_sends')" >/dev/null
partman_ms=$(ms_since "$t0")
partman_left=$(ppsql -At -c "SELECT count(*) FROM public.partman_sends WHERE created_at < date_trunc('month', $cutoff)")
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE $pdb"
f() { cut -d'|' -f"$2" <<<"$1"; }

cat >"$out" <<EOF
## Partitioning: migrate('complete') and the retention cleanup

$meta

$sends email sends over 24 months (\`fixtures/legacy/generate.sql\`), migrated with the safe
steps first. Probe as in the migration part (one profile and one send every 10 ms).

| what | seconds |
|---|---|
| \`CALL daznode_crm.migrate('complete')\`: $parts partitions, online copy, verification, swap | **$(awk -v m="$part_ms" 'BEGIN{printf "%.1f", m / 1000}')** |

Goal (issue #6): under 2 minutes → $(ratio "$part_ms" 120000)× the budget.

| probe during | transactions | p50 ms | p99 ms | worst ms | worst ÷ idle worst |
|---|---|---|---|---|---|
| nothing (idle baseline) | $(f "$idle" 1) | $(f "$idle" 2) | $(f "$idle" 3) | $(f "$idle" 4) | 1.00 |
| \`migrate('complete')\` | $(f "$during" 1) | $(f "$during" 2) | $(f "$during" 3) | **$(f "$during" 4)** | $(ratio "$(f "$during" 4)" "$(f "$idle" 4)") |

Retention cleanup removing everything older than 12 months ($old_rows rows), same data:

| method | ms | ÷ ours |
|---|---|---|
| \`cleanup_old_email_partitions()\` ($ours dropped) | **$ours_ms** | 1 |
| \`DELETE … WHERE … < cutoff\` on the unpartitioned table ($deleted rows) | $delete_ms | $(ratio "$delete_ms" "$ours_ms") |
| pg_partman 4.7 \`run_maintenance()\`, retention 12 months ($partman_left old rows left) | $partman_ms | $(ratio "$partman_ms" "$ours_ms") |

Goals (issue #6): at least 100× faster than the DELETE, no slower than pg_partman. Dropping a
partition costs the same whatever its row count, so ours does not grow with the rows removed.
Not measured yet: the pgbench comparison (webhook update and campaign statistics,
partitioned against unpartitioned) and the PNG charts of issue #7.
EOF
