# Shared by the integration tests: sourced, never run. Each test file sets DIR and PORT (its own
# throwaway cluster) before using these.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO_ROOT"

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; [ -z "${2:-}" ] || printf '%s\n' "$2" | head -40 | sed 's/^/    /'; failed=$((failed + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $3"$'\n'"got:      $2"; fi; }
q() { local db=$1; shift; psql_at "$DIR" "$PORT" "$db" -At "$@" 2>&1; }
quiet() { local db=$1; shift; psql_at "$DIR" "$PORT" "$db" "$@" >/dev/null 2>&1; }
checksums() { q "$1" -f tests/integration/checksums.sql; }
# legacy_db NAME PROFILES [SENDS]: a database with the extension and a legacy DazNode schema.
legacy_db() {
    quiet postgres -c "CREATE DATABASE $1"
    quiet "$1" -c "CREATE EXTENSION daznode_crm" -f fixtures/legacy/schema.sql
    quiet "$1" -v profiles="$2" -v sends="${3:-$(($2 * 10))}" -f fixtures/legacy/generate.sql -f fixtures/legacy/late_constraints.sql
}
# What a DBA does with the migration's findings: the demo's step, quietly.
resolve_findings() { quiet "$1" -f demo/30-resolve-findings.sql; }
summary() {
    echo
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
