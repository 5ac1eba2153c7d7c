# Part "soak": the app's workload and every maintenance job together, for a long time, through
# real pg_cron. Its own cluster (pg_cron preloaded in its default mode, a libpq connection per
# run; log_lock_waits on), a migrated and partitioned database of the run's scale. The React
# Admin reads, 4 clients each, are measured three times in the same run: alone; with the app's
# writes (webhooks at 50/s, inserts at 20/s) and no job (the baseline of the goal); and with those
# writes and every job at a one-minute cadence: the MV refresh, the segment refresh, the partition
# cleanup with premake (its retention set so that the oldest month expires halfway through), the
# orphan cleanup, both diagnostics, and the fold of the live campaign counts.
# Reports each read's p95 with the jobs against the same read with the writes and no job (goal
# <= 1.5x) and against the read alone, every client error and every failed cron run (goal: none),
# deadlocks and lock waits over 1 s (goal: none), and whether every acknowledged write is there.
# SOAK_SECS sets the phase with the jobs (1200 by default, 60 in the smoke tier). Sourced by
# bench/run.
source bench/parts/pgbench.sh
SOAK_DIR=$(run_dir bench-soak) && SOAK_PORT=$(free_port) || exit 1
while [ "$SOAK_PORT" = "$BENCH_PORT" ]; do SOAK_PORT=$(free_port) || exit 1; done
soak_secs=${SOAK_SECS:-$([ "$smoke" = true ] && echo 60 || echo 1200)}
base_secs=$([ "$smoke" = true ] && echo 10 || echo 60)
quiet_secs=$([ "$smoke" = true ] && echo 10 || echo 120)
cluster_start "$SOAK_DIR" "$SOAK_PORT" "shared_buffers = '2GB'" "work_mem = '64MB'" "maintenance_work_mem = '1GB'" \
    "max_wal_size = '8GB'" "checkpoint_timeout = '30min'" "shared_preload_libraries = 'pg_cron'" \
    "cron.database_name = 'soak'" "cron.host = '$SOAK_DIR'" "max_worker_processes = 20" \
    "log_lock_waits = on" "deadlock_timeout = '1s'"
trap 'cluster_stop "$BENCH_DIR"; cluster_stop "$SOAK_DIR"; remove_run_dir "$SOAK_DIR"; remove_run_dir "$BENCH_DIR"' EXIT
sq() { PGOPTIONS="-c client_min_messages=warning" psql_at "$SOAK_DIR" "$SOAK_PORT" soak "$@"; }
psql_at "$SOAK_DIR" "$SOAK_PORT" postgres -q -c "CREATE DATABASE soak"
sends=$((rows * 10))
t0=$(date +%s%N)
sq -q -c "CREATE EXTENSION daznode_crm" -c "CREATE EXTENSION pg_cron" -f fixtures/legacy/schema.sql >/dev/null
sq -q -v profiles="$rows" -v sends="$sends" -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql >/dev/null
sq -q -c "CALL daznode_crm.migrate()" >/dev/null
sq -q -f demo/30-resolve-findings.sql >/dev/null 2>&1
sq -q -c "SELECT * FROM daznode_crm.cleanup_orphaned_records()" -c "CALL daznode_crm.migrate('complete')" \
   -c "SELECT daznode_crm.finish_email_sends_partitioning(drop_backup => true)" -c "VACUUM ANALYZE" >/dev/null
gen_s=$(( $(ms_since "$t0") / 1000 ))
sq -q -c "CREATE SCHEMA bench" \
    -c "CREATE TABLE bench.search_terms AS SELECT row_number() OVER (ORDER BY id) AS k, upper(email) AS email FROM (SELECT id, email FROM public.profiles ORDER BY md5(id::text) LIMIT 1000) s" \
    -c "ALTER TABLE bench.search_terms ADD PRIMARY KEY (k)"
psql_at "$SOAK_DIR" "$SOAK_PORT" postgres -q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_admin') THEN CREATE ROLE bench_admin LOGIN; END IF; END \$\$"
sq -q -c "GRANT USAGE ON SCHEMA public, bench TO bench_admin" -c "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public, bench TO bench_admin"
admin=$(sq -At -c "SELECT user_id FROM public.admin_roles WHERE role = 'super_admin' ORDER BY user_id LIMIT 1")
claim="-c request.jwt.claim.sub=$admin"
reads=(profiles_list_request campaigns_list segments_list email_search)
pgb() {  # pgb SECONDS CLIENTS RATE SCRIPT USER -> "transactions|p50|p95|p99|max|failed"
    local dir; dir=$(mktemp -d "$SOAK_DIR/pgbench.XXXXXX")
    PGOPTIONS="$claim" "$PG_BIN/pgbench" -n -h "$SOAK_DIR" -p "$SOAK_PORT" -U "$5" -M prepared -c "$2" -j "$2" -T "$1" \
        ${3:+-R "$3"} -D profiles="$rows" -D sends="$sends" -f "$4" -l --log-prefix="$dir/log" soak >"$dir/out" 2>&1
    echo "$(latencies "$dir"/log* | cut -d'|' -f1-5)|$(grep -cE 'aborted|error' "$dir/out" || true)"
    grep -E 'aborted|error' "$dir/out" | head -3 >&2 || true
}
# writers SECONDS TAG: the app's webhooks and inserts, in the background, for SECONDS.
writer_pids=()
writers() {
    pgb "$1" 2 50 bench/sql/workload/webhook.sql bench_admin >"$SOAK_DIR/webhook-$2.res" &
    writer_pids=($!)
    pgb "$1" 1 20 bench/sql/workload/insert_send.sql bench_admin >"$SOAK_DIR/insert-$2.res" &
    writer_pids+=($!)
}
declare -A base quiet load
inserts_before=$(sq -At -c "SELECT count(*) FROM public.crm_email_sends WHERE email LIKE 'queued%@bench.io'")
for r in "${reads[@]}"; do base[$r]=$(pgb "$base_secs" 4 "" "bench/sql/workload/$r.sql" bench_admin); done
# The same reads with the app's writes and no job: the goal's baseline.
writers $(( quiet_secs * ${#reads[@]} + 5 )) quiet
sleep 2
# No job runs here, the fold neither: it is done once before each read, so that each starts, as
# with the jobs, from the deltas of about a minute at most (campaigns_list sums the pending ones).
fold() { sq -q -c "SELECT daznode_crm.fold_campaign_counts()" >/dev/null; }
for r in "${reads[@]}"; do fold; quiet[$r]=$(pgb "$quiet_secs" 4 "" "bench/sql/workload/$r.sql" bench_admin); done
wait "${writer_pids[@]}"

# The jobs, every minute, through pg_cron, as the CRM owner (the database's superuser here).
oldest_end=$(sq -At -c "SELECT max(upper_end) FROM (SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_end FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.crm_email_sends'::regclass AND c.relname ~ '_p[0-9]{6}$' ORDER BY 1 LIMIT 1) x")
retention=$(sq -At -c "SELECT (now() - '$oldest_end'::timestamptz) + make_interval(secs => $soak_secs / 2)")
parts_before=$(sq -At -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.crm_email_sends'::regclass")
sq -q -c "SELECT cron.schedule('soak-refresh', '* * * * *', 'SELECT daznode_crm.refresh_crm_materialized_views()')" \
      -c "SELECT cron.schedule('soak-segments', '* * * * *', \$\$CALL daznode_crm.run_in_steps('refresh_auto_update_segments')\$\$)" \
      -c "SELECT cron.schedule('soak-partitions', '* * * * *', \$\$SELECT count(*) FROM daznode_crm.cleanup_old_email_partitions(retention => '$retention', premake => 3, force => true)\$\$)" \
      -c "SELECT cron.schedule('soak-orphans', '* * * * *', \$\$CALL daznode_crm.run_in_steps('cleanup_orphaned_records')\$\$)" \
      -c "SELECT cron.schedule('soak-diagnostic', '* * * * *', \$\$CALL daznode_crm.run_in_steps('run_pre_migration_diagnostic')\$\$)" \
      -c "SELECT cron.schedule('soak-performance', '* * * * *', 'SELECT count(*) FROM daznode_crm.diagnose_crm_performance()')" \
      -c "SELECT cron.schedule('soak-fold', '* * * * *', 'SELECT daznode_crm.fold_campaign_counts()')" >/dev/null
fold
log_lines_before=$(wc -l <"$SOAK_DIR/server.log")
started=$(date +%s)
writers "$soak_secs" loaded
# What the reads of the live counts pay for: the oldest snapshot of the cluster (its xmin's age, in
# transactions) and the size of the deltas' heap, which vacuum cannot shrink past that snapshot.
( end=$(( $(date +%s) + soak_secs )); while [ "$(date +%s)" -lt "$end" ]; do
    sq -At -c "SELECT coalesce(max(age(backend_xmin)), 0) || '|' || pg_relation_size('crm_private.campaign_send_deltas') FROM pg_stat_activity" 2>/dev/null
    sleep 5
  done >"$SOAK_DIR/horizon.dat" ) &
sampler=$!
# The reads in turn, 4 clients each, for the whole loaded phase.
slice=$(( soak_secs / ${#reads[@]} ))
for r in "${reads[@]}"; do load[$r]=$(pgb "$slice" 4 "" "bench/sql/workload/$r.sql" bench_admin); done
wait "${writer_pids[@]}" "$sampler"
sleep 2
# The jobs are stopped first (no new run starts), the runs still going are waited for (bounded;
# never counted as failures), and only then removed. Neither cron.unschedule() nor
# cron.alter_job(active => false) will do for the first: pg_cron cancels a running run of a job
# that is removed or made inactive ("job canceled"). A schedule that cannot come soon (1 January,
# midnight) starts no new run and lets the running ones finish; a run that was queued behind
# a running one still starts, so the wait lasts until nothing has run for 5 s.
soak_jobs=$(sq -At -c "SELECT string_agg(jobid::text, ',') FROM cron.job WHERE jobname LIKE 'soak-%'")
sq -q -c "SELECT cron.alter_job(jobid, schedule => '0 0 1 1 *') FROM cron.job WHERE jobname LIKE 'soak-%'" >/dev/null
# A paced orphan cleanup or diagnostic may take five minutes or more at s=100 (see its table).
idle=0
for _ in $(seq 1 900); do
    if [ "$(sq -At -c "SELECT count(*) FROM cron.job_run_details WHERE jobid IN ($soak_jobs) AND status IN ('starting', 'running')")" = 0 ]; then
        idle=$((idle + 1)); [ "$idle" -ge 5 ] && break
    else
        idle=0
    fi
    sleep 1
done
unfinished=$(sq -At -c "SELECT count(*) FROM cron.job_run_details WHERE jobid IN ($soak_jobs) AND status IN ('starting', 'running')")
sq -q -c "SELECT cron.unschedule(jobname) FROM cron.job WHERE jobname LIKE 'soak-%'" >/dev/null
cron_runs=$(sq -At -c "SELECT count(*) FROM cron.job_run_details WHERE jobid IN ($soak_jobs) AND start_time >= to_timestamp($started)")
webhook=$(cat "$SOAK_DIR/webhook-loaded.res"); insert=$(cat "$SOAK_DIR/insert-loaded.res")
webhook_quiet=$(cat "$SOAK_DIR/webhook-quiet.res"); insert_quiet=$(cat "$SOAK_DIR/insert-quiet.res")
acked=$(( $(f "$insert" 1) + $(f "$insert_quiet" 1) ))
present=$(( $(sq -At -c "SELECT count(*) FROM public.crm_email_sends WHERE email LIKE 'queued%@bench.io'") - inserts_before ))
cron_failed=$(sq -At -c "SELECT count(*) FROM cron.job_run_details WHERE jobid IN ($soak_jobs) AND status = 'failed' AND start_time >= to_timestamp($started)")
cron_errors=$(sq -At -c "SELECT string_agg(DISTINCT left(return_message, 120), ' / ') FROM cron.job_run_details WHERE jobid IN ($soak_jobs) AND status = 'failed' AND start_time >= to_timestamp($started)")
# Each job's runs and its longest run: a job still running at its next minute is skipped by pg_cron.
job_table=$(sq -At -c "SELECT '| \`' || replace(command, '|', '/') || '\` | ' || count(*) || ' | ' || coalesce(round(max(extract(epoch FROM end_time - start_time))::numeric, 1)::text, '-') || ' |'
    FROM cron.job_run_details WHERE jobid IN ($soak_jobs) AND start_time >= to_timestamp($started) GROUP BY command ORDER BY command")
tail -n +"$((log_lines_before + 1))" "$SOAK_DIR/server.log" >"$SOAK_DIR/soak.log"
deadlocks=$(grep -c 'deadlock detected' "$SOAK_DIR/soak.log" || true)
waits=$(grep -c 'still waiting for' "$SOAK_DIR/soak.log" || true)
worst_wait=$( (grep -oE 'after [0-9.]+ ms' "$SOAK_DIR/soak.log" || true) | awk '{print $2}' | sort -n | tail -1)
parts_after=$(sq -At -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.crm_email_sends'::regclass")
horizon=$(sort -t'|' -k1,1n "$SOAK_DIR/horizon.dat" | awk -F'|' '{a[NR] = $1} END {print a[int((NR + 1) / 2)] "|" a[NR]}')
deltas_max=$(sort -t'|' -k2,2n "$SOAK_DIR/horizon.dat" | tail -1 | cut -d'|' -f2)
client_errors=$(( $(f "$webhook" 6) + $(f "$insert" 6) + $(f "$webhook_quiet" 6) + $(f "$insert_quiet" 6) ))
rows_md=""
worst=0
worst_alone=0
for r in "${reads[@]}"; do
    a=$(f "${base[$r]}" 3); b=$(f "${quiet[$r]}" 3); l=$(f "${load[$r]}" 3)
    rows_md+="| \`$r\` | $a | $b | $l | **$(ratio "$l" "$b")×** | $(ratio "$l" "$a")× | $(f "${load[$r]}" 6) |"$'\n'
    client_errors=$(( client_errors + $(f "${load[$r]}" 6) + $(f "${base[$r]}" 6) + $(f "${quiet[$r]}" 6) ))
    worst=$(awk -v w="$worst" -v x="$(ratio "$l" "$b")" 'BEGIN { print (x + 0 > w + 0) ? x : w }')
    worst_alone=$(awk -v w="$worst_alone" -v x="$(ratio "$l" "$a")" 'BEGIN { print (x + 0 > w + 0) ? x : w }')
done
cat >"$out" <<EOF
## Soak: the workload with every job running

$meta

Its own cluster (pg_cron preloaded, in its default mode: a connection per run; \`log_lock_waits = on\`,
\`deadlock_timeout = 1s\`), the database migrated and partitioned at this scale ($rows profiles, $sends
sends; built in $gen_s s). Reads as the super_admin through RLS, 4 clients each, in three phases of
the same run: alone ($base_secs s each); with the app's writes, webhooks at 50/s (2 clients) and
inserts at 20/s, and no job ($quiet_secs s each: the goal's baseline); then $slice s each while, for
$soak_secs s in all, the same writes run with seven pg_cron jobs every minute: the MV refresh, the
segment refresh, the partition cleanup (premake 3, its retention set so that the oldest month expires
halfway), the orphan cleanup, both diagnostics and the fold of the live campaign counts (with
the writes and no job, the deltas are folded once before each read instead). The jobs run paced,
as in any pg_cron job (\`daznode_crm.maintenance_yield\` unset: 3), sharing one budget (the runs
going at once take together the quarter of a CPU one run alone may take), and the three that take minutes
(the segment refresh, the orphan cleanup, the pre-migration diagnostic) run as
\`CALL daznode_crm.run_in_steps(...)\`, one unit of work per transaction; at the end they are given a
schedule that cannot come soon, their last runs are waited for, and only then are they removed.

| read | p95 alone (ms) | p95 with the writes, no job (ms) | p95 with the writes and the jobs (ms) | jobs / no job | jobs / alone | client errors |
|---|---|---|---|---|---|---|
${rows_md}
Goal: ≤ 1.5× against the same read with no job (worst here **${worst}×**; against the reads
alone, with no write either, ${worst_alone}×).

| what | measured | goal |
|---|---|---|
| webhook UPDATEs (50/s): transactions, p95 with no job, p95 with the jobs | $(f "$webhook_quiet" 1) + $(f "$webhook" 1), $(f "$webhook_quiet" 3) ms, $(f "$webhook" 3) ms | — |
| inserts (20/s): acknowledged, present at the end | $acked, $present | all of them |
| client errors (every pgbench run) | $client_errors | none |
| pg_cron runs of the seven jobs, failed | $cron_runs, $cron_failed${cron_errors:+ ($cron_errors)} | none failed |
| the oldest snapshot during the jobs (age of the oldest backend_xmin, in transactions; sampled every 5 s): median, worst | ${horizon%%|*}, ${horizon##*|} | — |
| the live counts' deltas heap during the jobs, largest | $(( ${deltas_max:-0} / 1024 )) kB | — |
| deadlocks | $deadlocks | none |
| lock waits over 1 s (\`log_lock_waits\`), worst | $waits${worst_wait:+, $worst_wait ms} | none |
| partitions before and after (the oldest month expired during the run) | $parts_before, $parts_after | one fewer, premake kept |
| job runs still unfinished 900 s after the load stopped (then cancelled by the unschedule) | $unfinished | — |

pg_cron skips a job's minute while its previous run is still going, so a job slower than a minute
runs less often than every minute:

| job | runs | longest run (s) |
|---|---|---|
$job_table
EOF
cluster_stop "$SOAK_DIR"
