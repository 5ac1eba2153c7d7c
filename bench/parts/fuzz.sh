# Part "fuzz": a differential fuzz of the two validators of daznode_crm_core (pure Rust, no
# PostgreSQL) against references written again from the README, in bench/fuzz. Sourced by
# bench/run, which provides out (the .md to write), meta and smoke. Returns non-zero when an
# input made the core panic or disagree with its reference (or the fuzz did not build).
# FUZZ_SEED=S repeats a run's inputs (the seed is in the command line of the section).
fuzz_n=$([ "$smoke" = true ] && echo 20000 || echo 10000000)
fuzz_seed=${FUZZ_SEED:-$(date +%s)}
fuzz_cmd=(cargo run --release --manifest-path bench/fuzz/Cargo.toml -- --n "$fuzz_n" --seed "$fuzz_seed")
fuzz_rc=0
fuzz_md=$("${fuzz_cmd[@]}") || fuzz_rc=$?
[ -n "$fuzz_md" ] || fuzz_md="The fuzz did not run (exit $fuzz_rc): see the cargo output above."
cat >"$out" <<EOF
## Validators: differential fuzz

$meta

\`${fuzz_cmd[*]}\`: $fuzz_n generated inputs per validator, each given to the core
(\`daznode_crm_core\`, built with debug assertions and overflow checks, every call under
\`catch_unwind\`) and to a reference written separately from the README, and the two verdicts
compared. \`is_valid_lightning_pubkey\` against the README's length, hex and prefix rules on
k256's SEC1 point decompression (\`PublicKey::from_sec1_bytes\`); \`is_valid_email\` against a
second implementation of "Email policy" (with Unicode's White_Space and
Default_Ignorable_Code_Point written out from the UCD). Inputs: valid keys of random secrets
and realistic addresses (ASCII and UTF-8), their mutations (digit flips, x at and above p,
wrong prefixes and lengths, uncompressed keys, dots, \`@\`s, hyphens, parts at and over the
length limits, NFC/NFD/NFKC forms, case changes, invisible, control and look-alike characters)
and random garbage.

$fuzz_md
EOF
if [ "$fuzz_rc" -ne 0 ]; then
    cat "$out" >&2
    echo "fuzz: exit $fuzz_rc: the core panicked or disagreed with a reference (or the fuzz did not build); see $out" >&2
    return 1
fi
