# Part "analytics": the live campaign counts of step 0011 at the run's scale, on a database
# migrated to 'complete' (partitioned crm_email_sends). In the same run and database:
# - the webhook UPDATE's p95 with the counter's triggers disabled (the baseline) and enabled, at
#   2 and 8 clients, for webhooks spread over every campaign and for webhooks of one campaign
#   (the hot-row case), in the order off on on off off on on off (bench/parts/counter.sh;
#   goal: <= 1.15x);
# - the React Admin campaigns list read by an admin through public.crm_campaigns_analytics_mv
#   (goal: p95 < 10 ms), with deltas pending and after the fold;
# - the step's own duration (counter, rebase over every send), the fold's, and a full recount
#   once the writers stopped (campaign_counts_drift(): goal 0 rows).
# Sourced by bench/run.
source bench/parts/counter.sh
adb=analytics_bench
aq() { PGOPTIONS="-c client_min_messages=warning" psql_at "$BENCH_DIR" "$BENCH_PORT" $adb "$@"; }
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE IF EXISTS $adb" -c "CREATE DATABASE $adb"
sends=$((rows * 10))
secs=$([ "$smoke" = true ] && echo 1 || echo 15)
t0=$(date +%s%N)
aq -q -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql >/dev/null
aq -q -v profiles="$rows" -v sends="$sends" -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql >/dev/null
gen_ms=$(ms_since "$t0")
t0=$(date +%s%N)
aq -q -c "CALL daznode_crm.migrate()" >/dev/null
aq -q -f demo/30-resolve-findings.sql >/dev/null 2>&1
aq -q -c "SELECT * FROM daznode_crm.cleanup_orphaned_records()" -c "CALL daznode_crm.migrate('complete')" \
   -c "SELECT daznode_crm.finish_email_sends_partitioning(drop_backup => true)" -c "VACUUM ANALYZE" >/dev/null
migrate_ms=$(ms_since "$t0")
step_ms=$(aq -At -c "SELECT round(duration_ms) FROM daznode_crm.schema_migrations WHERE step = '0011_live_campaign_counts'")
[ "$(aq -At -c "SELECT daznode_crm.email_sends_partitioned() AND to_regclass('crm_private.campaign_send_deltas') IS NOT NULL")" = t ] \
    || { echo "analytics: the database is not partitioned with live counts" >&2; exit 1; }
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_admin') THEN CREATE ROLE bench_admin LOGIN; END IF; END \$\$"
aq -q -c "GRANT USAGE ON SCHEMA public TO bench_admin" -c "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO bench_admin"
export PGOPTIONS="-c request.jwt.claim.sub=$(aq -At -c "SELECT md5('profile1')::uuid")"
rows_md=""
for script in webhook webhook_one_campaign; do
    for clients in 2 8; do
        r=$(counter_overhead $adb bench_admin "$secs" "$clients" "bench/sql/workload/$script.sql" -D profiles="$rows" -D sends="$sends")
        x=$(ratio "$(f "$r" 2)" "$(f "$r" 1)")
        met=$(awk -v x="$x" 'BEGIN { print (x != "-" && x <= 1.15) ? "yes" : "**no**" }')
        rows_md+="| $script | $clients | $(f "$r" 3) | $(f "$r" 1) ($(f "$r" 5)) | $(f "$r" 4) | $(f "$r" 2) ($(f "$r" 6)) | **$x** | ≤ 1.15 | $met |
"
    done
done
# The baseline runs were not counted: the rebase adds them (recount minus counts, one snapshot).
aq -q -c "SELECT daznode_crm.rebase_campaign_counts()" >/dev/null

# The reads: with every delta of those runs pending (the worst case: no fold for minutes at
# full webhook speed), then folded and vacuumed (what the job and autovacuum leave), then with a
# minute of webhooks at 50 per second pending (the soak's rate; the job folds each minute).
pending=$(aq -At -c "SELECT count(*) FROM crm_private.campaign_send_deltas")
list_pending=$(pgbench_pct $adb bench_admin "$secs" bench/sql/workload/campaigns_list.sql)
t0=$(date +%s%N)
folded=$(aq -At -c "SELECT daznode_crm.fold_campaign_counts()")
fold_ms=$(ms_since "$t0")
aq -q -c "VACUUM crm_private.campaign_send_deltas" -c "VACUUM crm_private.campaign_send_counts"
list_folded=$(pgbench_pct $adb bench_admin "$secs" bench/sql/workload/campaigns_list.sql)
minute=$([ "$smoke" = true ] && echo 2 || echo 60)
pgbench_pct $adb bench_admin "$minute" bench/sql/workload/webhook.sql -R 50 -D profiles="$rows" -D sends="$sends" >/dev/null
pending_minute=$(aq -At -c "SELECT count(*) FROM crm_private.campaign_send_deltas")
list_minute=$(pgbench_pct $adb bench_admin "$secs" bench/sql/workload/campaigns_list.sql)
t0=$(date +%s%N)
drift=$(aq -At -c "SELECT count(*) FROM daznode_crm.campaign_counts_drift()")
recount_ms=$(ms_since "$t0")
[ "$drift" = 0 ] || { echo "analytics: the live counts differ from a recount for $drift campaigns" >&2; exit 1; }

cat >"$out" <<MD
## Live campaign analytics (step 0011)

$meta

$rows profiles, $sends sends, 500 campaigns; crm_email_sends partitioned by month.
Generation $((gen_ms / 1000)) s; migrate() to 'complete' $((migrate_ms / 1000)) s, of which step
0011 (the counter, then one recount of every send in one snapshot) $((step_ms / 1000)) s.

**Webhook UPDATE p95 (ms), counter off (baseline) and on**, same database: eight runs of $secs s
in the order off on on off off on on off, so that the slow-down every run leaves to the next
(dead rows, index entries) weighs on both sides alike, each after a VACUUM of the sends and a
CHECKPOINT; each side's p95 is the median of its four runs' p95s (in brackets: each run's own),
transactions summed. The counter is the native trigger function (\`src/api/counter.rs\`); the
webhook rows of the scale table below (2026-12-04) were measured with the PL/pgSQL one it replaced. \`webhook\` spreads over every
campaign; \`webhook_one_campaign\` updates sends of a single campaign (every statement adds to
the same campaign's counts: the hot-row case).

| script | clients | tx off | p95 off | tx on | p95 on | ratio | goal | met |
|---|---|---|---|---|---|---|---|---|
$rows_md
**Reads.** The campaigns list (25 newest, as an admin, through public.crm_campaigns_analytics_mv;
goal p95 < 10 ms), p95 in ms:

| deltas pending | p95 |
|---|---|
| none (folded, vacuumed: what the job and autovacuum leave) | **$(f "$list_folded" 3)** |
| $pending_minute (a minute of webhooks at 50/s: the job folds every minute) | **$(f "$list_minute" 3)** |
| $pending (every webhook of the runs above, minutes at full speed, no fold: the worst case) | $(f "$list_pending" 3) |

A read sums every pending delta, so its cost grows with what the fold has not taken yet, not
with the sends: the fold job keeps it small. The fold of the $pending deltas into $folded
campaigns' counts: $fold_ms ms. A full recount
(\`campaign_counts_drift()\`, once the writers stopped): $drift campaigns differ, in $recount_ms ms
(the full refresh of the old materialized view cost about as much, every hour).
MD
unset PGOPTIONS
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE $adb"
