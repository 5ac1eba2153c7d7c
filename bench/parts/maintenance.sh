# Part "maintenance": the diagnostic and the performance diagnosis on a legacy
# database of `rows` profiles and 10 × `rows` sends; the performance diagnosis on a schema with
# 150 partitions and hundreds of indexes; the orphan cleanup of 100k orphans against a naive
# DELETE … WHERE NOT EXISTS; the refresh against plain REFRESH MATERIALIZED VIEW.
# Sourced by bench/run.
mdb=maintenance_bench
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE IF EXISTS $mdb" -c "CREATE DATABASE $mdb" 2>/dev/null
mpsql() { psql_at "$BENCH_DIR" "$BENCH_PORT" "$mdb" "$@"; }
mpsql -q -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql -f bench/sql/common.sql >/dev/null
mpsql -q -v profiles="$rows" -v sends=$((rows * 10)) -v users_only=$((rows / 2)) \
    -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql >/dev/null
orphans=$((rows / 10))
# 100k orphans at s=100 (rows / 10): segment members of profiles that do not exist, loaded the way
# a restore with disabled triggers would leave them.
mpsql -q -c "SET session_replication_role = replica;
  INSERT INTO public.crm_customer_segment_members (segment_id, customer_id)
  SELECT md5('seg' || (1 + i % 6))::uuid, md5('ghost' || i)::uuid FROM generate_series(1, $orphans) AS i;
  RESET session_replication_role;" -c "VACUUM ANALYZE"

ms() { mpsql -At -c "SELECT round((bench.best_ns(\$q\$$1\$q\$, ${2:-$reps}) / 1e6)::numeric, 1)"; }

diag=$(ms "SELECT count(*) FROM daznode_crm.run_pre_migration_diagnostic()" 3)
full_read=$(ms "SELECT (SELECT count(*) FROM public.profiles) + (SELECT count(*) FROM public.users) + (SELECT count(*) FROM public.crm_email_sends) + (SELECT count(*) FROM public.crm_customer_segment_members) + (SELECT count(*) FROM public.orders)" 3)
perf=$(ms "SELECT count(*) FROM daznode_crm.diagnose_crm_performance()" 3)
stats_read=$(ms "SELECT (SELECT count(*) FROM pg_stat_user_tables) + (SELECT count(*) FROM pg_stat_user_indexes) + (SELECT count(*) FROM pg_statio_user_tables)" 3)

# Cleanup: ours (every rule) and the naive statements for the same rules, each in a rolled-back
# transaction on the same data, best of 3.
ours_cleanup=$(PGOPTIONS="-c client_min_messages=warning" mpsql -At -c "SELECT round((bench.rolled_back_ns('SELECT count(*) FROM daznode_crm.cleanup_orphaned_records()', 3) / 1e6)::numeric, 1)")
naive_sql="DELETE FROM public.crm_customer_segment_members m WHERE m.customer_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = m.customer_id);
DELETE FROM public.crm_customer_segment_members m WHERE m.segment_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.crm_customer_segments s WHERE s.id = m.segment_id);
DELETE FROM public.admin_roles a WHERE NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = a.user_id);
UPDATE public.crm_email_campaigns c SET created_by = NULL WHERE created_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = c.created_by);
UPDATE public.crm_email_campaigns c SET template_id = NULL WHERE template_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public.crm_email_templates t WHERE t.id = c.template_id);
UPDATE public.crm_email_campaigns c SET segment_ids = ARRAY(SELECT x FROM unnest(c.segment_ids) x WHERE EXISTS (SELECT 1 FROM public.crm_customer_segments s WHERE s.id = x));
UPDATE public.crm_email_sends e SET customer_id = NULL WHERE customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = e.customer_id);"
mpsql -q -c "CREATE OR REPLACE FUNCTION bench.naive_cleanup() RETURNS void LANGUAGE plpgsql AS \$f\$ BEGIN $naive_sql END \$f\$"
naive_cleanup=$(mpsql -At -c "SELECT round((bench.rolled_back_ns('SELECT bench.naive_cleanup()', 3) / 1e6)::numeric, 1)")
naive_members=$(mpsql -At -c "SELECT round((bench.rolled_back_ns(\$q\$DELETE FROM public.crm_customer_segment_members m WHERE NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = m.customer_id)\$q\$, 3) / 1e6)::numeric, 1)")
deleted=$(PGOPTIONS="-c client_min_messages=warning" mpsql -At -c "SELECT rows FROM daznode_crm.cleanup_orphaned_records(dry_run => true) WHERE column_name = 'customer_id' AND table_name LIKE '%members'")

# Refresh: the guide's two views on this data.
mpsql -q -c "CREATE MATERIALIZED VIEW public.crm_segments_stats_mv AS
    SELECT s.id, s.name, count(m.id) AS member_count FROM public.crm_customer_segments s
    LEFT JOIN public.crm_customer_segment_members m ON m.segment_id = s.id GROUP BY s.id, s.name;
  CREATE UNIQUE INDEX ON public.crm_segments_stats_mv (id);
  CREATE MATERIALIZED VIEW public.crm_campaigns_analytics_mv AS
    SELECT c.id, count(e.id) AS recipients, count(e.opened_at) AS opened, count(e.clicked_at) AS clicked
    FROM public.crm_email_campaigns c LEFT JOIN public.crm_email_sends e ON e.campaign_id = c.id GROUP BY c.id;
  CREATE UNIQUE INDEX ON public.crm_campaigns_analytics_mv (id);"
mpsql -q -c "CREATE OR REPLACE FUNCTION bench.plain_refresh(conc boolean) RETURNS bigint LANGUAGE plpgsql AS \$f\$
BEGIN
  IF conc THEN
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.crm_segments_stats_mv;
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.crm_campaigns_analytics_mv;
  ELSE
    REFRESH MATERIALIZED VIEW public.crm_segments_stats_mv;
    REFRESH MATERIALIZED VIEW public.crm_campaigns_analytics_mv;
  END IF;
  RETURN 1;
END \$f\$"
plain_refresh=$(ms "SELECT bench.plain_refresh(false)" 3)
plain_concurrent=$(ms "SELECT bench.plain_refresh(true)" 3)
mpsql -q -c "SELECT * FROM daznode_crm.refresh_crm_materialized_views()" >/dev/null
sleep 1.5
unchanged=$(ms "SELECT count(*) FROM daznode_crm.refresh_crm_materialized_views()" 3)
mpsql -q -c "UPDATE public.crm_email_sends SET opened_at = now() WHERE id = md5('send1')::uuid"
sleep 1.5
changed_t0=$(date +%s%N)
mpsql -q -c "SELECT * FROM daznode_crm.refresh_crm_materialized_views()" >/dev/null
changed=$(awk -v n="$(( $(date +%s%N) - changed_t0 ))" 'BEGIN{printf "%.1f", n / 1e6}')

# The performance diagnosis on 150 partitions and hundreds of indexes.
pdb=partitions_bench
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE IF EXISTS $pdb" -c "CREATE DATABASE $pdb" 2>/dev/null
psql_at "$BENCH_DIR" "$BENCH_PORT" "$pdb" -q -c "CREATE EXTENSION daznode_crm" -f bench/sql/common.sql -c "CALL daznode_crm.migrate()" 2>/dev/null >/dev/null
psql_at "$BENCH_DIR" "$BENCH_PORT" "$pdb" -q <<'SQL' >/dev/null
SET client_min_messages = warning;
DROP TABLE public.crm_email_sends CASCADE;
CREATE TABLE public.crm_email_sends (
    id uuid NOT NULL DEFAULT gen_random_uuid(), campaign_id uuid, customer_id uuid, email varchar(255) NOT NULL,
    status varchar(50) DEFAULT 'pending', sent_at timestamptz, opened_at timestamptz, clicked_at timestamptz,
    bounced_at timestamptz, error_message text, metadata jsonb DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
SELECT format('CREATE TABLE public.crm_email_sends_p%s PARTITION OF public.crm_email_sends FOR VALUES FROM (%L) TO (%L)',
              to_char(m, 'YYYYMM'), m, m + interval '1 month')
FROM generate_series(date_trunc('month', now()) - interval '146 months', date_trunc('month', now()) + interval '2 months', interval '1 month') AS m \gexec
CREATE TABLE public.crm_email_sends_default PARTITION OF public.crm_email_sends DEFAULT;
CREATE INDEX ON public.crm_email_sends (campaign_id, customer_id);
CREATE INDEX ON public.crm_email_sends (customer_id);
CREATE INDEX ON public.crm_email_sends (campaign_id) INCLUDE (status, sent_at, opened_at, clicked_at, bounced_at);
SQL
shape=$(psql_at "$BENCH_DIR" "$BENCH_PORT" "$pdb" -At -c "SELECT (SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.crm_email_sends'::regclass) || ' partitions, ' || (SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'public'::regnamespace) || ' indexes'")
perf_parts=$(psql_at "$BENCH_DIR" "$BENCH_PORT" "$pdb" -At -c "SELECT round((bench.best_ns('SELECT count(*) FROM daznode_crm.diagnose_crm_performance()', 3) / 1e6)::numeric, 1)")
stats_parts=$(psql_at "$BENCH_DIR" "$BENCH_PORT" "$pdb" -At -c "SELECT round((bench.best_ns('SELECT (SELECT count(*) FROM pg_stat_user_tables) + (SELECT count(*) FROM pg_stat_user_indexes) + (SELECT count(*) FROM pg_statio_user_tables)', 3) / 1e6)::numeric, 1)")
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE $pdb" -c "DROP DATABASE $mdb"

cat >"$out" <<EOF
## Maintenance: diagnostics, orphan cleanup, materialized-view refresh

$meta

A legacy database of $rows profiles, $rows users rows and $((rows * 10)) sends
(\`fixtures/legacy/generate.sql\`), plus $orphans orphan segment members. Times in ms, best of 3;
each baseline is plain PostgreSQL doing the least the function has to do, in the same run.

| what | ours ms | baseline | baseline ms | ours ÷ baseline |
|---|---|---|---|---|
| \`run_pre_migration_diagnostic()\` (legacy, before migration) | **$diag** | \`count(*)\` of profiles, users, sends, members, orders (one full read) | $full_read | $(ratio "$diag" "$full_read") |
| \`diagnose_crm_performance()\` (same database) | **$perf** | reading pg_stat_user_tables, pg_stat_user_indexes, pg_statio_user_tables | $stats_read | $(ratio "$perf" "$stats_read") |
| \`diagnose_crm_performance()\`, $shape | **$perf_parts** | the same statistics views there | $stats_parts | $(ratio "$perf_parts" "$stats_parts") |
| \`cleanup_orphaned_records()\`: all 10 rules, $deleted orphans deleted | **$ours_cleanup** | the naive \`DELETE/UPDATE … WHERE NOT EXISTS\` for the same rules | $naive_cleanup | $(ratio "$ours_cleanup" "$naive_cleanup") |
| (same) | $ours_cleanup | the naive \`DELETE … WHERE NOT EXISTS\` of the members rule alone | $naive_members | $(ratio "$ours_cleanup" "$naive_members") |
| \`refresh_crm_materialized_views()\`, a base table changed | **$changed** | plain \`REFRESH MATERIALIZED VIEW\` of both | $plain_refresh | $(ratio "$changed" "$plain_refresh") |
| (same) | $changed | \`REFRESH … CONCURRENTLY\` of both | $plain_concurrent | $(ratio "$changed" "$plain_concurrent") |
| \`refresh_crm_materialized_views()\`, nothing changed | **$unchanged** | plain \`REFRESH MATERIALIZED VIEW\` of both | $plain_refresh | $(ratio "$unchanged" "$plain_refresh") |

The cleanup costs what the naive statements cost (the same anti-joins, on the parents' primary
keys); what it adds is row locks only, a lock_timeout, a dry run and an advisory lock. The
refresh of changed views is CONCURRENTLY (readers never blocked), so it pays the concurrent
diff; an unchanged run only reads the statistics counters.
EOF
