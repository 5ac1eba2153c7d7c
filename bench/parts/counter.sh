# The live counter's webhook overhead, measured one way for every part that reports it. Sourced.
source bench/parts/pgbench.sh

# send_counter DB DISABLE|"ENABLE ALWAYS": the three triggers of step 0011 off or on.
send_counter() {
    psql_at "$BENCH_DIR" "$BENCH_PORT" "$1" -q -c "ALTER TABLE public.crm_email_sends $2 TRIGGER daznode_count_sends, $2 TRIGGER daznode_count_sends_ins, $2 TRIGGER daznode_count_sends_del"
}

# counter_overhead DB USER SECS CLIENTS SCRIPT [pgbench args...]
#   → "p95 off|p95 on|tx off|tx on|p95s off|p95s on" (ms; the p95s of each run, space-separated)
# A warm-up run, then eight runs of SECS seconds, the counter off (the baseline) or on, in the order
# off on on off off on on off: every webhook leaves dead rows and index entries behind, so each
# run starts a little slower than the one before; that order puts the same drift on both sides,
# where plain alternation would put it all on "on". Before each run, a VACUUM of the sends and a
# CHECKPOINT (2026-12-08: without them the runs of one side spread from 1.9 to 3.7 ms at 2 clients,
# growing with each run). Each side's p95 is the median of its four
# runs' p95s (the mean of the middle two); the runs' own p95s are kept to show the spread.
counter_overhead() {
    local db=$1 user=$2 secs=$3 clients=$4 script=$5; shift 5
    local side r p95_off=() p95_on=() tx_off=0 tx_on=0
    # A first run, not counted, warms the cache for both sides.
    PGBENCH_CLIENTS=$clients pgbench_pct "$db" "$user" "$secs" "$script" "$@" >/dev/null
    for side in off on on off off on on off; do
        send_counter "$db" "$([ $side = on ] && echo "ENABLE ALWAYS" || echo DISABLE)"
        # Each run starts from the same state: the dead rows of the runs before it vacuumed (or
        # autovacuum, taking one of the two cores, would land in some runs and not others), and a
        # checkpoint just taken (so that every run pays the same full-page writes).
        psql_at "$BENCH_DIR" "$BENCH_PORT" "$db" -q -c "VACUUM public.crm_email_sends" -c "CHECKPOINT"
        r=$(PGBENCH_CLIENTS=$clients pgbench_pct "$db" "$user" "$secs" "$script" "$@")
        if [ $side = on ]; then p95_on+=("$(f "$r" 3)"); tx_on=$((tx_on + $(f "$r" 1)));
        else p95_off+=("$(f "$r" 3)"); tx_off=$((tx_off + $(f "$r" 1))); fi
    done
    send_counter "$db" "ENABLE ALWAYS"
    median4() { printf '%s\n' "$@" | sort -n | awk 'NR == 2 || NR == 3 { s += $1 } END { printf "%.3f", s / 2 }'; }
    echo "$(median4 "${p95_off[@]}")|$(median4 "${p95_on[@]}")|$tx_off|$tx_on|${p95_off[*]}|${p95_on[*]}"
}
