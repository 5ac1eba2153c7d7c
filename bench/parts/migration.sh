# Part "migration": the safe migration of a legacy database of `rows` profiles,
# `rows` users rows (half of them copies of profiles) and 10 × `rows` email sends, under a
# writer probe; then the online index plan; then, as the plain PostgreSQL baseline, the same
# indexes built with plain CREATE INDEX. Sourced by bench/run.
source bench/parts/probe.sh
mdb=migration_bench
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE IF EXISTS $mdb" -c "CREATE DATABASE $mdb"
mpsql() { psql_at "$BENCH_DIR" "$BENCH_PORT" "$mdb" "$@"; }

t0=$(date +%s%N)
mpsql -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql >/dev/null
mpsql -v profiles="$rows" -v sends=$((rows * 10)) -v users_only=$((rows / 2)) \
    -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql >/dev/null
gen_ms=$(ms_since "$t0")
sizes=$(mpsql -At -c "SELECT format('%s profiles, %s users, %s sends, database %s',
    (SELECT count(*) FROM public.profiles), (SELECT count(*) FROM public.users),
    (SELECT count(*) FROM public.crm_email_sends), pg_size_pretty(pg_database_size(current_database())))")
echo "generated: $sizes in $((gen_ms / 1000)) s"

probe_start "$mdb" idle
sleep 10
idle=$(probe_stop)

probe_start "$mdb" migrate
t0=$(date +%s%N)
mpsql -c "CALL daznode_crm.migrate()" 2>&1 | grep -E "done in|applied" | sed 's/^.*NOTICE:  //' | cut -c1-160
migrate_ms=$(ms_since "$t0")
during_migrate=$(probe_stop)

probe_start "$mdb" concurrent
t0=$(date +%s%N)
plan=$(mpsql -At -c "SELECT * FROM daznode_crm.concurrent_index_plan()")
while IFS= read -r stmt; do [ -z "$stmt" ] || mpsql -q -c "$stmt"; done <<<"$plan"
plan_ms=$(ms_since "$t0")
during_plan=$(probe_stop)
built=$(mpsql -At -c "SELECT string_agg(index_name, ', ') FROM daznode_crm.check_concurrent_indexes_status()
                      WHERE status = 'valid' AND table_name IN ('profiles', 'crm_email_sends')
                        AND index_name IN (SELECT unnest(regexp_matches('$(tr '\n' ' ' <<<"$plan")', 'EXISTS (\\w+)', 'g')))")

# Baseline: the same indexes, plain CREATE INDEX in one transaction (what a migration file can do).
plain_sql=$(sed -E 's/CONCURRENTLY //' <<<"$plan" | sed '/^$/d; s/$/;/')
mpsql -q -c "$(sed -E 's/^CREATE (UNIQUE )?INDEX IF NOT EXISTS ([a-z_]+) .*/DROP INDEX \2;/' <<<"$plain_sql")"
probe_start "$mdb" plain
t0=$(date +%s%N)
mpsql -q -c "BEGIN; $plain_sql COMMIT;"
plain_ms=$(ms_since "$t0")
during_plain=$(probe_stop)

steps_md=$(mpsql -At -c "SELECT format('| %s | %s |', step, round(duration_ms / 1000.0, 2)) FROM daznode_crm.schema_migrations ORDER BY step")
cat >"$out" <<EOF
## Migration: the safe migration of a legacy database, under a writer probe

$meta

Data (\`fixtures/legacy/generate.sql\`, generated in $((gen_ms / 1000)) s): $sizes; dirty
rows as in production (case variants, \`''\`, upper-case and off-curve pubkeys, orphans).
Probe: \`bench/sql/probe.sql\` (insert one profile and one email send) every 10 ms with pgbench
\`-R 100\`; latency of each transaction.

\`CALL daznode_crm.migrate()\`, step by step (seconds):

| step | seconds |
|---|---|
$steps_md
| **whole safe migration** | **$(awk -v m="$migrate_ms" 'BEGIN{printf "%.1f", m / 1000}')** |

Goal: under 5 minutes (300 s) → $(ratio "$migrate_ms" 300000)× the budget.

Then \`concurrent_index_plan()\`, statement by statement, built $built in
$(awk -v m="$plan_ms" 'BEGIN{printf "%.1f", m / 1000}') s. Baseline: the same indexes with plain
\`CREATE INDEX\` in one transaction, $(awk -v m="$plain_ms" 'BEGIN{printf "%.1f", m / 1000}') s.

| probe during | transactions | p50 ms | p99 ms | worst ms | worst ÷ idle worst |
|---|---|---|---|---|---|
| nothing (idle baseline) | $(f "$idle" 1) | $(f "$idle" 2) | $(f "$idle" 3) | $(f "$idle" 4) | 1.00 |
| \`CALL daznode_crm.migrate()\` | $(f "$during_migrate" 1) | $(f "$during_migrate" 2) | $(f "$during_migrate" 3) | **$(f "$during_migrate" 4)** | $(ratio "$(f "$during_migrate" 4)" "$(f "$idle" 4)") |
| \`concurrent_index_plan()\` (CREATE INDEX CONCURRENTLY) | $(f "$during_plan" 1) | $(f "$during_plan" 2) | $(f "$during_plan" 3) | **$(f "$during_plan" 4)** | $(ratio "$(f "$during_plan" 4)" "$(f "$idle" 4)") |
| baseline: plain \`CREATE INDEX\`, same indexes | $(f "$during_plain" 1) | $(f "$during_plain" 2) | $(f "$during_plain" 3) | $(f "$during_plain" 4) | $(ratio "$(f "$during_plain" 4)" "$(f "$idle" 4)") |

Goal: the probe never waits more than 1 s (1000 ms). Worst wait with the online
plan ÷ worst wait with plain CREATE INDEX: $(ratio "$(f "$during_plan" 4)" "$(f "$during_plain" 4)")×.
EOF
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE $mdb"
