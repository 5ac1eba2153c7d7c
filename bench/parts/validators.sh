# Part "validators": native validators against the legacy regex CHECKs.
# Sourced by bench/run, which provides bpsql, rows, reps, out (the .md to write), meta.
rows_md=$(bpsql -v rows="$rows" -v reps="$reps" -f bench/sql/validators.sql)
cat >"$out" <<EOF
## Validators: native against the legacy regex CHECKs

$meta

\`SELECT count(*) FROM t WHERE <check>\` over a realistic mix (emails: 86% plain, 5% case
variants, 2% UTF-8, 7% typos; pubkeys: 80% valid, 5% upper case, 7% off the curve, 3% \`''\`,
3% \`04…\`, 2% junk). Per-row cost is the query time minus a bare scan of the same table
(\`WHERE col IS NOT NULL\`), divided by the rows. The legacy regexes are the ones in
../shared/legacy-schema.md; they accept more (off-curve and \`04\` keys, \`a..b@x.io\`), as the
"accepted" column shows.

| check | rows | legacy regex ns/row | native ns/row | scan ns/row | accepted legacy / native | native ÷ legacy (per row) | native ÷ legacy (whole query) |
|---|---|---|---|---|---|---|---|
$rows_md

Goals: email ≤ 0.7×, pubkey ≤ 0.6× the legacy regex, per row.
EOF
