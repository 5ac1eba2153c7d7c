# pgbench runs that report latency percentiles: -M prepared, 2 clients (PGBENCH_CLIENTS), a fixed duration, every
# transaction logged. Sourced by parts.

# pgbench_pct DB USER SECONDS SCRIPT [pgbench args...] → "transactions|p50|p95|p99" in ms.
# Fails, with pgbench's output, if a client hit an error: a broken script never looks fast.
# PGOPTIONS of the caller pass through (the JWT claim of the admin, for instance).
pgbench_pct() {
    local db=$1 user=$2 secs=$3 script=$4; shift 4
    local dir
    dir=$(mktemp -d "$BENCH_DIR/pgbench.XXXXXX")
    if ! "$PG_BIN/pgbench" -n -h "$BENCH_DIR" -p "$BENCH_PORT" -U "$user" -M prepared -c "${PGBENCH_CLIENTS:-2}" -j "${PGBENCH_CLIENTS:-2}" -T "$secs" \
            -f "$script" -l --log-prefix="$dir/log" "$@" "$db" >"$dir/out" 2>&1 \
       || grep -qE "aborted|error" "$dir/out"; then
        echo "pgbench failed on $script:" >&2
        cat "$dir/out" >&2
        return 1
    fi
    latencies "$dir"/log* | cut -d'|' -f1-4
    rm -rf "$dir"
}
