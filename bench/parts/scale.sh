# Part "scale": the costs that grow with the data, measured at the run's scale in one database,
# and kept per scale in bench/results/scale.dat (a run replaces its own scale's row), from which
# the curve (scale.md, scale.png) is drawn over every scale measured:
# - the generation of the legacy data (fixtures/legacy/generate.sql);
# - migrate('complete') after the safe steps (the partitioning copy), and the writer probe's
#   worst wait meanwhile (bench/parts/probe.sh: a profile and a send every 10 ms);
# - every workload query's p95 (bench/sql/workload/queries.txt, as an admin through RLS), the
#   counter's deltas folded first, as its every-minute job leaves them;
# - the live counter's webhook overhead (bench/parts/counter.sh), at 2 and 8 clients;
# - the retention cleanup of the oldest 12 of 24 months, commit included.
# Sourced by bench/run.
source bench/parts/probe.sh
source bench/parts/counter.sh
sdb=scale_bench
sq() { PGOPTIONS="-c client_min_messages=warning" psql_at "$BENCH_DIR" "$BENCH_PORT" $sdb "$@"; }
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE IF EXISTS $sdb" -c "CREATE DATABASE $sdb"
sends=$((rows * 10))
secs=$([ "$smoke" = true ] && echo 1 || echo 10)
free_gb=$(df -BG --output=avail "$BENCH_DIR" | tail -1 | tr -dc 0-9)
# The database takes about 450 bytes a send (s=1000: 44 GB after migrate()); step 0010's own
# preflight then asks for 1.2 × (table and indexes + as much WAL), about 600 more: stop here,
# before the generation, rather than there, after it (s=1000 needs 105 GB).
need_gb=$((sends * 1050 / 1000000000 + 1))
[ "$free_gb" -ge "$need_gb" ] || { echo "scale: $need_gb GB needed at scale $scale, $free_gb GB free" >&2; exit 1; }

t0=$(date +%s%N)
sq -q -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql >/dev/null
sq -q -v profiles="$rows" -v sends="$sends" -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql >/dev/null
gen_ms=$(ms_since "$t0")
db_mb=$(sq -At -c "SELECT pg_database_size(current_database()) / 1048576")
sq -q -c "CALL daznode_crm.migrate()" >/dev/null
sq -q -f demo/30-resolve-findings.sql >/dev/null 2>&1
sq -q -c "SELECT * FROM daznode_crm.cleanup_orphaned_records()" -c "VACUUM ANALYZE" >/dev/null
probe_start $sdb scale
t0=$(date +%s%N)
sq -q -c "CALL daznode_crm.migrate('complete')" >/dev/null
migrate_ms=$(ms_since "$t0")
probe=$(probe_stop)
sq -q -c "SELECT daznode_crm.finish_email_sends_partitioning(drop_backup => true)" \
   -c "SELECT * FROM daznode_crm.refresh_auto_update_segments()" -c "SELECT * FROM daznode_crm.refresh_crm_materialized_views()" \
   -c "VACUUM ANALYZE" >/dev/null
sq -q -c "CREATE SCHEMA bench" \
   -c "CREATE TABLE bench.search_terms AS SELECT row_number() OVER (ORDER BY id) AS k, upper(email) AS email FROM (SELECT id, email FROM public.profiles ORDER BY md5(id::text) LIMIT 1000) s" \
   -c "ALTER TABLE bench.search_terms ADD PRIMARY KEY (k)" -c "ANALYZE bench.search_terms"
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_admin') THEN CREATE ROLE bench_admin LOGIN; END IF; END \$\$"
sq -q -c "GRANT USAGE ON SCHEMA public, bench TO bench_admin" -c "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public, bench TO bench_admin"
export PGOPTIONS="-c request.jwt.claim.sub=$(sq -At -c "SELECT md5('profile1')::uuid")"

# The webhooks first, on the freshly vacuumed table; then the reads; the retention drop last.
overhead=""
for script in webhook webhook_one_campaign; do
    for clients in 2 8; do
        r=$(counter_overhead $sdb bench_admin "$secs" "$clients" "bench/sql/workload/$script.sql" -D profiles="$rows" -D sends="$sends")
        overhead+=" $(ratio "$(f "$r" 2)" "$(f "$r" 1)")"
    done
done
# The runs with the counter on left their deltas: fold them, as the job does every minute.
sq -q -c "SELECT daznode_crm.fold_campaign_counts()" -c "VACUUM crm_private.campaign_send_deltas, crm_private.campaign_send_counts" >/dev/null
p95s=""
names=""
while IFS='|' read -r name kind goal; do
    r=$(pgbench_pct $sdb bench_admin "$secs" "bench/sql/workload/$name.sql" -D profiles="$rows" -D sends="$sends")
    p95s+=" $(f "$r" 3)"
    names+=" $name"
done <<<"$(grep -v '^#' bench/sql/workload/queries.txt)"
unset PGOPTIONS
t0=$(date +%s%N)
dropped=$(sq -At -c "SELECT count(*) FILTER (WHERE action = 'dropped') FROM daznode_crm.cleanup_old_email_partitions(retention => '12 months')")
retention_ms=$(ms_since "$t0")
[ "$dropped" -ge 12 ] || { echo "scale: the retention cleanup dropped $dropped partitions, not 12" >&2; exit 1; }
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE $sdb"

# The row of this scale replaces the one a previous run left; the header names the columns.
dat="$out_dir/scale.dat"
touch "$dat"
header="# scale date sends db_mb generation_ms migrate_complete_ms probe_worst_ms retention_ms webhook_2 webhook_8 webhook_one_campaign_2 webhook_one_campaign_8$names"
{ echo "$header"
  awk -v s="$scale" '!/^#/ && $1 != s' "$dat"
  echo "$scale $(date -u +%F) $sends $db_mb $gen_ms $migrate_ms $(f "$probe" 4) $retention_ms$overhead$p95s"
} | { read -r h; echo "$h"; sort -n; } >"$dat.new"
mv "$dat.new" "$dat"
log "scale $scale: $sends sends ($db_mb MB) generated in $((gen_ms / 1000)) s; migrate('complete') $((migrate_ms / 1000)) s"
bench/scale_report "$dat" "$meta" >"$out"
