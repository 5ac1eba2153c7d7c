# The writer probe: pgbench in 5-second rounds, every 10 ms, until probe_stop. Sourced.
probe_start() { # probe_start DB LABEL
    probe_dir="$BENCH_DIR/probe-$2"
    rm -rf "$probe_dir" && mkdir -p "$probe_dir"
    (
        i=0
        while [ ! -f "$probe_dir/stop" ]; do
            "$PG_BIN/pgbench" -n -h "$BENCH_DIR" -p "$BENCH_PORT" -U postgres -R 100 -T 5 -c 1 \
                -f bench/sql/probe.sql -l --log-prefix="$probe_dir/log$i" "$1" >/dev/null 2>&1
            i=$((i + 1))
        done
    ) &
    probe_pid=$!
    sleep 1
}

# Prints "transactions|p50 ms|p99 ms|max ms" of the probe since probe_start.
probe_stop() {
    touch "$probe_dir/stop"
    wait "$probe_pid" 2>/dev/null || true
    local l
    l=$(latencies "$probe_dir"/log*)
    echo "$(f "$l" 1)|$(f "$l" 2)|$(f "$l" 4)|$(f "$l" 5)"
}
