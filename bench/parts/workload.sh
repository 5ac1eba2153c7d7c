# Part "workload": the React Admin workload, as an admin, on the legacy database and on
# the same data migrated (safe steps, online indexes, partitioning, materialized views), in the
# same run. Each script of bench/sql/workload/ runs with pgbench (-M prepared, 2 clients, a
# fixed duration) on both; NAME.legacy.sql, when present, is what the legacy schema offers for
# the same screen. Queries that miss their goal get EXPLAIN (ANALYZE, BUFFERS) in the report.
# Sourced by bench/run.
source bench/parts/pgbench.sh
ldb=workload_legacy
mdb=workload_migrated
for db in $ldb $mdb; do psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE IF EXISTS $db" 2>/dev/null; done
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "CREATE DATABASE $ldb"
wq() { PGOPTIONS="-c client_min_messages=warning" psql_at "$BENCH_DIR" "$BENCH_PORT" "$@"; }
sends=$((rows * 10))
secs=$([ "$smoke" = true ] && echo 1 || echo 20)

t0=$(date +%s%N)
wq $ldb -q -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql >/dev/null
wq $ldb -q -v profiles="$rows" -v sends="$sends" -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql >/dev/null
gen_ms=$(ms_since "$t0")
size=$(wq $ldb -At -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
# The search terms: existing addresses in another case (case-insensitive search).
wq $ldb -q -c "CREATE SCHEMA bench" \
    -c "CREATE TABLE bench.search_terms AS SELECT row_number() OVER (ORDER BY id) AS k, upper(email) AS email FROM (SELECT id, email FROM public.profiles ORDER BY md5(id::text) LIMIT 1000) s" \
    -c "ALTER TABLE bench.search_terms ADD PRIMARY KEY (k)" -c "VACUUM ANALYZE"

t0=$(date +%s%N)
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "CREATE DATABASE $mdb TEMPLATE $ldb"
wq $mdb -q -c "CALL daznode_crm.migrate()" >/dev/null
wq $mdb -q -f demo/30-resolve-findings.sql >/dev/null 2>&1
wq $mdb -q -c "SELECT * FROM daznode_crm.cleanup_orphaned_records()" -c "CALL daznode_crm.migrate('complete')" \
    -c "SELECT daznode_crm.finish_email_sends_partitioning()" -c "SELECT * FROM daznode_crm.refresh_auto_update_segments()" \
    -c "SELECT * FROM daznode_crm.refresh_crm_materialized_views()" -c "VACUUM ANALYZE" >/dev/null
migrate_ms=$(ms_since "$t0")

# The admin: a login role without BYPASSRLS, identified as the super_admin profile by the JWT
# claim PostgREST sets. The legacy schema has no working RLS (its policies recursed): there the
# same role reads the tables directly.
wq postgres -q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_admin') THEN CREATE ROLE bench_admin LOGIN; END IF; END \$\$"
for db in $ldb $mdb; do
    wq $db -q -c "GRANT USAGE ON SCHEMA public, bench TO bench_admin" -c "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public, bench TO bench_admin"
done
admin=$(wq $mdb -At -c "SELECT md5('profile1')::uuid")
[ "$(PGOPTIONS="-c request.jwt.claim.sub=$admin" psql_at "$BENCH_DIR" "$BENCH_PORT" $mdb -U bench_admin -At -c "SELECT daznode_crm.is_admin_user('{super_admin}')")" = t ] \
    || { echo "workload: the bench admin is not seen as super_admin" >&2; exit 1; }
export PGOPTIONS="-c request.jwt.claim.sub=$admin"

queries=$(grep -v "^#" bench/sql/workload/queries.txt)
rows_md=""
explains=""
: >"$BENCH_DIR/workload.dat"
while IFS='|' read -r name kind goal; do
    mig_script=bench/sql/workload/$name.sql
    leg_script=bench/sql/workload/$name.sql
    [ -f "bench/sql/workload/$name.legacy.sql" ] && leg_script=bench/sql/workload/$name.legacy.sql
    leg=$(pgbench_pct $ldb bench_admin "$secs" "$leg_script" -D profiles="$rows" -D sends="$sends")
    mig=$(pgbench_pct $mdb bench_admin "$secs" "$mig_script" -D profiles="$rows" -D sends="$sends")
    met=$(awk -v p="$(f "$mig" 3)" -v g="$goal" 'BEGIN { print (p < g) ? "yes" : "**no**" }')
    rows_md+="| $name | $kind | $(f "$leg" 1) | $(f "$leg" 2) | $(f "$leg" 3) | $(f "$leg" 4) | $(f "$mig" 1) | $(f "$mig" 2) | **$(f "$mig" 3)** | $(f "$mig" 4) | $(ratio "$(f "$mig" 3)" "$(f "$leg" 3)") | < $goal | $met |
"
    echo "$name $(f "$leg" 3) $(f "$mig" 3)" >>"$BENCH_DIR/workload.dat"
    if [ "$met" != yes ]; then
        # The statement with fixed values for the pgbench variables, in a rolled-back transaction.
        stmt=$(grep -v '^\\' "$mig_script" | grep -v '^--' | sed -e "s/:sends/$sends/g; s/:profiles/$rows/g; s/:i\b/4242/g; s/:c\b/42/g; s/:p\b/$((1 + (4242 * 7919) % rows))/g; s/:s\b/2/g; s/:k\b/7/g")
        plan=$(psql_at "$BENCH_DIR" "$BENCH_PORT" $mdb -U bench_admin -c "BEGIN" -c "EXPLAIN (ANALYZE, BUFFERS) $stmt" -c "ROLLBACK" 2>&1)
        explains+="
#### $name (p95 $(f "$mig" 3) ms, goal < $goal ms)

\`\`\`
$stmt

$plan
\`\`\`
"
    fi
done <<<"$queries"
unset PGOPTIONS
cp "$BENCH_DIR/workload.dat" "$out_dir/workload.dat"
for db in $ldb $mdb; do psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE $db"; done

cat >"$out" <<EOF2
## Workload: the CRM's admin screens, legacy against migrated

$meta

Data: scale $scale, $rows profiles and $sends sends (\`fixtures/legacy/generate.sql\`, $size),
generated in $((gen_ms / 1000)) s. The migrated database is a copy of the legacy one, taken
through the whole guide in $((migrate_ms / 1000)) s: \`migrate()\`, the findings resolved, the
online index plan, the orphans cleaned up, \`migrate('complete')\` (partitioning), segments and
materialized views refreshed, \`VACUUM ANALYZE\`. Scripts: \`bench/sql/workload/\`; each runs
$secs s with pgbench \`-M prepared\`, 2 clients, as \`bench_admin\`: on the migrated database an
admin (JWT claim of the super_admin profile) *through RLS*; on the legacy one, whose RLS never
worked, the same role reads the tables directly. Latency in ms.

| query | kind | legacy tx | p50 | p95 | p99 | migrated tx | p50 | p95 | p99 | p95 migrated ÷ legacy | goal p95 | met |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
$rows_md
Goals: reads p95 < 100 ms; reads served by a materialized view or a covering index
(\`fast\`) < 10 ms; writes p95 < 10 ms. ![query p95, legacy against migrated](bench/results/workload.png)
${explains:+
### Queries that missed their goal: EXPLAIN (ANALYZE, BUFFERS) on the migrated database
$explains}
EOF2
