# Part "access": the profiles list as an admin through RLS against the same query as
# the table owner; refresh_segment() on a ~300k-member segment with 1% changed against
# delete-all-and-reinsert; the cost per profile write of keeping auto_update segments current.
# Sourced by bench/run.
adb=access_bench
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE IF EXISTS $adb" -c "CREATE DATABASE $adb" 2>/dev/null
apsql() { psql_at "$BENCH_DIR" "$BENCH_PORT" "$adb" "$@"; }
apsql -q -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql -f bench/sql/common.sql >/dev/null
apsql -q -v profiles="$rows" -v sends="$rows" -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql >/dev/null
PGOPTIONS="-c client_min_messages=warning" apsql -q -c "CALL daznode_crm.migrate()" >/dev/null
# What a DBA does with the findings (see demo/30-resolve-findings.sql), so rows can be updated.
apsql -q -f demo/30-resolve-findings.sql >/dev/null 2>&1
apsql -At -c "SELECT * FROM daznode_crm.concurrent_index_plan()" | while IFS= read -r stmt; do apsql -q -c "$stmt"; done
apsql -q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_api') THEN CREATE ROLE bench_api NOLOGIN; END IF; END \$\$" \
    -c "GRANT USAGE ON SCHEMA public, bench TO bench_api" -c "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO bench_api" \
    -c "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA bench TO bench_api" -c "VACUUM ANALYZE"
best() { # best ROLE_SETUP QUERY → ms, best of reps (rows=25 pages are fast: more repetitions)
    apsql -At -c "$1" -c "SELECT round((bench.best_ns(\$q\$$2\$q\$, 20) / 1e6)::numeric, 3)" | tail -1
}
as_admin="SET ROLE bench_api; SELECT set_config('request.jwt.claims', json_build_object('sub', md5('profile2')::uuid)::text, false);"
page1="SELECT count(*) FROM (SELECT id, email, nom, prenom, created_at FROM public.profiles WHERE email_verified ORDER BY created_at DESC, id LIMIT 25) p"
page100="SELECT count(*) FROM (SELECT id, email, nom, prenom, created_at FROM public.profiles WHERE email_verified ORDER BY created_at DESC, id LIMIT 25 OFFSET 2475) p"
total="SELECT count(*) FROM public.profiles WHERE email_verified"
owner_p1=$(best "SELECT 1" "$page1"); admin_p1=$(best "$as_admin" "$page1")
owner_p100=$(best "SELECT 1" "$page100"); admin_p100=$(best "$as_admin" "$page100")
owner_total=$(best "SELECT 1" "$total"); admin_total=$(best "$as_admin" "$total")

# The same lists the way the app sends them: prepared statements (PostgREST prepares), over the
# socket, with pgbench (2 clients); the owner against an admin login role through RLS. Rounds
# alternate owner and admin, and the medians of the rounds are compared (a 40 µs request on a
# 2-core machine shared with pgbench drifts from one run to the next).
source bench/parts/pgbench.sh
apsql -q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_admin') THEN CREATE ROLE bench_admin LOGIN; END IF; END \$\$" \
    -c "GRANT USAGE ON SCHEMA public, bench TO bench_admin" -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_admin"
admin_claim="-c request.jwt.claim.sub=$(apsql -At -c "SELECT md5('profile2')::uuid")"
pb_secs=$([ "$smoke" = true ] && echo 1 || echo 10)
rounds=$([ "$smoke" = true ] && echo 1 || echo 3)
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# median_of_rounds CMD...: CMD run $rounds times in a row, the median of what it printed.
median_of_rounds() { local out=""; for _ in $(seq "$rounds"); do out+=" $("$@")"; done; median <<<"$out"; }
# minus A B → A - B, signed, two decimals.
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", a - b }'; }
pb_rows=""
for q in profiles_page1 profiles_page100 profiles_count profiles_list_request; do
    o50="" o95="" a50="" a95=""
    for _ in $(seq "$rounds"); do
        o=$(pgbench_pct "$adb" postgres "$pb_secs" "bench/sql/workload/$q.sql")
        a=$(PGOPTIONS="$admin_claim" pgbench_pct "$adb" bench_admin "$pb_secs" "bench/sql/workload/$q.sql")
        o50+=" $(f "$o" 2)" o95+=" $(f "$o" 3)" a50+=" $(f "$a" 2)" a95+=" $(f "$a" 3)"
    done
    o50=$(median <<<"$o50") o95=$(median <<<"$o95") a50=$(median <<<"$a50") a95=$(median <<<"$a95")
    pb_rows+="| $q | $o50 | $o95 | **$a50** | $a95 | **$(ratio "$a50" "$o50")** | $(ratio "$a95" "$o95") |
"
done

# Server time per request without the network: a procedure runs the page-1 query (its plan kept,
# as for a prepared statement) and commits, n times, so that every request is a transaction of
# its own, as with PostgREST; is_admin_user() alone against an empty request shows its own cost.
apsql -q -c "CREATE OR REPLACE PROCEDURE bench.page1_requests(n int) LANGUAGE plpgsql AS \$p\$
DECLARE c bigint;
BEGIN
  FOR i IN 1..n LOOP
    SELECT count(*) INTO c FROM (SELECT id, email, nom, prenom, created_at FROM public.profiles WHERE email_verified ORDER BY created_at DESC, id LIMIT 25) p;
    COMMIT;
  END LOOP;
END \$p\$" \
    -c "CREATE OR REPLACE PROCEDURE bench.is_admin_requests(n int) LANGUAGE plpgsql AS \$p\$
DECLARE b boolean;
BEGIN FOR i IN 1..n LOOP b := (SELECT daznode_crm.is_admin_user()); COMMIT; END LOOP; END \$p\$" \
    -c "CREATE OR REPLACE PROCEDURE bench.empty_requests(n int) LANGUAGE plpgsql AS \$p\$
DECLARE b boolean;
BEGIN FOR i IN 1..n LOOP b := (SELECT true); COMMIT; END LOOP; END \$p\$"
loops=$([ "$smoke" = true ] && echo 200 || echo 50000)
per_request() { # per_request USER PROCEDURE → µs per request
    local t0
    t0=$(date +%s%N)
    PGOPTIONS="$admin_claim" psql_at "$BENCH_DIR" "$BENCH_PORT" "$adb" -U "$1" -q -c "CALL bench.$2($loops)"
    awk -v ns=$(($(date +%s%N) - t0)) -v n="$loops" 'BEGIN { printf "%.2f", ns / n / 1000 }'
}
lo="" la="" le="" li=""
for _ in $(seq "$rounds"); do
    lo+=" $(per_request postgres page1_requests)" la+=" $(per_request bench_admin page1_requests)"
    le+=" $(per_request bench_admin empty_requests)" li+=" $(per_request bench_admin is_admin_requests)"
done
lo=$(median <<<"$lo") la=$(median <<<"$la") le=$(median <<<"$le") li=$(median <<<"$li")
is_admin_cost=$(minus "$li" "$le")

# Where the admin's extra server time goes: the same page-1 request with the profiles read
# policy replaced, in turn, by simpler ones (the same C function declared without SET
# search_path, then without SECURITY DEFINER), up to a policy that evaluates nothing.
apsql -q -c "CREATE OR REPLACE FUNCTION bench.is_admin_definer(text[] DEFAULT NULL) RETURNS boolean STABLE SECURITY DEFINER LANGUAGE c AS '\$libdir/daznode_crm', 'is_admin_user_wrapper'" \
    -c "CREATE OR REPLACE FUNCTION bench.is_admin_invoker(text[] DEFAULT NULL) RETURNS boolean STABLE LANGUAGE c AS '\$libdir/daznode_crm', 'is_admin_user_wrapper'"
shipped=$(apsql -At -c "SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = 'public.profiles'::regclass AND polname = 'daznode_read'")
read_policy() { apsql -q -c "BEGIN" -c "DROP POLICY daznode_read ON public.profiles" -c "CREATE POLICY daznode_read ON public.profiles FOR SELECT USING ($1)" -c "COMMIT"; }
variant_rows=""
for v in "true|RLS on, a policy that evaluates nothing" \
         "(SELECT bench.is_admin_invoker())|+ the function, once per query (neither SECURITY DEFINER nor SET)" \
         "(SELECT bench.is_admin_definer())|+ SECURITY DEFINER" \
         "(SELECT daznode_crm.is_admin_user())|+ SET search_path = pg_catalog, pg_temp (is_admin_user() as shipped)" \
         "$shipped|+ the owner's arm: OR id = (SELECT current_user_id()) (the shipped policy)"; do
    read_policy "${v%%|*}"
    t=$(median_of_rounds per_request bench_admin page1_requests)
    variant_rows+="| ${v#*|} | $t | $(minus "$t" "$lo") |
"
done
read_policy "$shipped"

# The same is_admin_user() request on a Supabase-like database: with Supabase's auth.uid() (its
# body recognized, so its answer is kept with the JWT settings), then with an auth.uid() of
# another body (called at every transaction).
apsql -q -c "CREATE SCHEMA auth" -c "GRANT USAGE ON SCHEMA auth TO bench_admin" \
    -c "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS \$\$ select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid \$\$"
ls=$(median_of_rounds per_request bench_admin is_admin_requests)
apsql -q -c "CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS \$\$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid where true \$\$"
lx=$(median_of_rounds per_request bench_admin is_admin_requests)
apsql -q -c "DROP SCHEMA auth CASCADE"
supa_cost=$(minus "$ls" "$le") other_cost=$(minus "$lx" "$le")

# A segment of about 30% of the profiles: created in the last 242 days (the generator spreads
# created_at over 730 days from 2024-11-01).
seg=$(apsql -At -c "INSERT INTO public.crm_customer_segments (name, criteria, auto_update) VALUES ('bench window', '{\"profile\":{\"created_days_ago\":{\"min\":0,\"max\":242}}}', false) RETURNING id" | head -1)
apsql -q -c "SELECT * FROM daznode_crm.refresh_segment('$seg')" >/dev/null
members=$(apsql -At -c "SELECT count(*) FROM public.crm_customer_segment_members WHERE segment_id = '$seg'")
changed=$((members / 100))
# 1% changed: half of them leave the window, as many enter it.
apsql -q -c "UPDATE public.profiles SET created_at = created_at - interval '400 days' WHERE id IN (SELECT customer_id FROM public.crm_customer_segment_members WHERE segment_id = '$seg' ORDER BY customer_id LIMIT $((changed / 2)))" \
    -c "UPDATE public.profiles SET created_at = now() - interval '10 days' WHERE id IN (SELECT id FROM public.profiles WHERE created_at < now() - interval '300 days' ORDER BY id LIMIT $((changed / 2)))" \
    -c "VACUUM ANALYZE public.profiles, public.crm_customer_segment_members"
ours_seg=$(apsql -At -c "SELECT round((bench.rolled_back_ns(\$q\$SELECT * FROM daznode_crm.refresh_segment('$seg')\$q\$, 3) / 1e6)::numeric, 1)")
apsql -q -c "CREATE OR REPLACE FUNCTION bench.reinsert_segment(s uuid) RETURNS void LANGUAGE plpgsql AS \$f\$
BEGIN
  DELETE FROM public.crm_customer_segment_members WHERE segment_id = s;
  INSERT INTO public.crm_customer_segment_members (segment_id, customer_id)
  SELECT s, p.id FROM public.profiles p WHERE p.created_at <= now() AND p.created_at >= now() - interval '242 days';
END \$f\$"
reinsert_seg=$(apsql -At -c "SELECT round((bench.rolled_back_ns(\$q\$SELECT bench.reinsert_segment('$seg')\$q\$, 3) / 1e6)::numeric, 1)")
diff=$(apsql -At -c "SELECT added || ' in, ' || removed || ' out' FROM daznode_crm.refresh_segment('$seg')")

# Profile writes with the auto_update segments in place (the job approach adds no trigger), and
# with every segment set to auto_update = false: the same INSERT, 2,000 rows each, best of 3.
apsql -q -c "CREATE OR REPLACE FUNCTION bench.insert_profiles(tag text, n int) RETURNS bigint LANGUAGE plpgsql AS \$f\$
BEGIN
  FOR i IN 1..n LOOP
    INSERT INTO public.profiles (email, nom, prenom, pubkey, email_verified) VALUES (tag || i || '@bench.io', 'N', 'P', NULL, true);
  END LOOP;
  RETURN n;
END \$f\$"
with_auto=$(apsql -At -c "SELECT round((bench.rolled_back_ns('SELECT bench.insert_profiles(''a'', 2000)', 3) / 2000 / 1e3)::numeric, 2)")
apsql -q -c "UPDATE public.crm_customer_segments SET auto_update = false"
without_auto=$(apsql -At -c "SELECT round((bench.rolled_back_ns('SELECT bench.insert_profiles(''b'', 2000)', 3) / 2000 / 1e3)::numeric, 2)")
psql_at "$BENCH_DIR" "$BENCH_PORT" postgres -q -c "DROP DATABASE $adb"

cat >"$out" <<EOF
## Access control and segments

$meta

$rows profiles, migrated (\`CALL daznode_crm.migrate()\`, then the online index plan). The
admin runs as a role without BYPASSRLS, with the JWT claim of an admin profile, so every
policy applies; the owner bypasses RLS. Best of 20 (lists) or 3 (writes) in the same run.

| query | owner ms | admin through RLS ms | admin ÷ owner |
|---|---|---|---|
| profiles list, \`email_verified\`, \`ORDER BY created_at DESC\`, page 1 | $owner_p1 | **$admin_p1** | $(ratio "$admin_p1" "$owner_p1") |
| same, page 100 | $owner_p100 | **$admin_p100** | $(ratio "$admin_p100" "$owner_p100") |
| the exact total count React Admin asks for | $owner_total | **$admin_total** | $(ratio "$admin_total" "$owner_total") |

Goal: ≤ 1.1×, which is why every policy calls is_admin_user() once per query. The
table above is server time of a statement planned on every run (PL/pgSQL \`EXECUTE\`), so it
includes planning the policies' two sub-selects; the app's statements are prepared:

| pgbench \`-M prepared\`, 2 clients, median of $rounds rounds of $pb_secs s | owner p50 ms | owner p95 | admin through RLS p50 | admin p95 | p50 ratio | p95 ratio |
|---|---|---|---|---|---|---|
$pb_rows
Server time per request, without the network (a procedure runs the kept plan and commits,
$loops times; median of $rounds rounds):

| per request, µs | owner | admin through RLS | admin ÷ owner |
|---|---|---|---|
| profiles list page 1 | $lo | **$la** | $(ratio "$la" "$lo") |
| \`SELECT daznode_crm.is_admin_user()\` against \`SELECT true\` (both as the admin) | $le | $li | $is_admin_cost µs |
| same, on Supabase (its \`auth.uid()\` recognized: the id kept with the JWT settings) | $le | $ls | $supa_cost µs |
| same, with an \`auth.uid()\` of another body (called at every request) | $le | $lx | $other_cost µs |

Where the admin's extra server time goes: the page-1 request as the admin, with the profiles
read policy replaced in turn by simpler ones (same run, median of $rounds rounds):

| profiles read policy | µs per request | against the owner ($lo µs) |
|---|---|---|
$variant_rows
| segment refresh, $members members, 1% changed ($diff) | ms | ratio |
|---|---|---|
| \`refresh_segment()\` (by difference) | **$ours_seg** | $(ratio "$ours_seg" "$reinsert_seg") |
| baseline: delete every member and re-insert | $reinsert_seg | 1 |

| profile INSERT, µs per row | with auto_update segments | without | ratio |
|---|---|---|---|
| kept current by the 15-minute job (no trigger) | $with_auto | $without_auto | $(ratio "$with_auto" "$without_auto") |
EOF
