# The writer probe: pgbench in 5-second rounds, every 10 ms, until probe_stop. Sourced.
probe_start() { # probe_start DB LABEL
    probe_dir="$BENCH_DIR/probe-$2"
    rm -rf "$probe_dir" && mkdir -p "$probe_dir"
    (
        i=0
        while [ ! -f "$probe_dir/stop" ]; do
            "$PG_BIN/pgbench" -n -h "$BENCH_DIR" -p "$BENCH_PORT" -U postgres -R 100 -T 5 -c 1 \
                -f bench/sql/probe.sql -l --log-prefix="$probe_dir/log$i" "$1" >"$probe_dir/out$i" 2>&1
            i=$((i + 1))
        done
        touch "$probe_dir/done"
    ) &
    sleep 1
}

# Prints "transactions|p50 ms|p99 ms|max ms" of the probe since probe_start.
probe_stop() {
    touch "$probe_dir/stop"
    # probe_stop runs in $(…), a subshell that cannot `wait` for the probe: wait for its last
    # pgbench round to end and write its log.
    # A round lasts 5 s: 60 s at the most.
    local waited=0
    while [ ! -f "$probe_dir/done" ] && [ "$waited" -lt 300 ]; do sleep 0.2; waited=$((waited + 1)); done
    [ -f "$probe_dir/done" ] || echo "probe ($probe_dir): its last round did not end within 60 s" >&2
    local l
    # A probe transaction that failed is a write the app would have lost: say so.
    if grep -hE "aborted|ERROR" "$probe_dir"/out* >&2; then
        echo "probe ($probe_dir): writes failed during the measured operation" >&2
    fi
    l=$(latencies "$probe_dir"/log*)
    echo "$(f "$l" 1)|$(f "$l" 2)|$(f "$l" 4)|$(f "$l" 5)"
}
