# Helpers shared by the benchmark parts; sourced by bench/run before any part.

# Milliseconds since a `date +%s%N` reading.
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# a ÷ b to 3 significant digits, "-" when b is not positive.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3g", a / b; else print "-" }'; }
# Field N of a "a|b|c" record: f RECORD N.
f() { cut -d'|' -f"$2" <<<"$1"; }

# pgbench per-transaction logs (files given) → "transactions|p50|p95|p99|max" in ms.
latencies() {
    cat "$@" 2>/dev/null | awk '{print $3 / 1000.0}' | sort -n | awk '
        function at(q,   k) { k = int(NR * q + 0.999999); if (k < 1) k = 1; if (k > NR) k = NR; return v[k] }
        { v[NR] = $1 }
        END { if (NR == 0) { print "0|-|-|-|-"; exit } printf "%d|%.3f|%.3f|%.3f|%.3f\n", NR, at(0.5), at(0.95), at(0.99), v[NR] }'
}
