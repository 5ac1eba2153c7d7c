-- Validators: native functions against the legacy regex CHECKs (../shared/legacy-schema.md),
-- on :rows emails and :rows pubkeys with a realistic mix. psql variables: rows, reps.
\set ON_ERROR_STOP 1
SET max_parallel_workers_per_gather = 0;
SET client_min_messages = warning;

DROP TABLE IF EXISTS bench.emails, bench.pubkeys, bench.key_pool;
CREATE TABLE bench.emails AS
SELECT i, CASE
    WHEN i % 100 < 86 THEN 'user' || i || '.' || substr(md5(i::text), 1, 6) || '@example' || (i % 50) || '.com'
    WHEN i % 100 < 91 THEN 'User' || i || '@Example' || (i % 7) || '.COM'        -- case variant, valid
    WHEN i % 100 < 93 THEN 'jörg' || i || '@bücher.de'                           -- UTF-8, valid
    WHEN i % 100 < 95 THEN 'user' || i || '..x@example.com'                      -- consecutive dots
    WHEN i % 100 < 97 THEN 'user' || i || '@example'                             -- no TLD
    WHEN i % 100 < 99 THEN 'user' || i || '@gmail.c'                             -- one-letter TLD
    ELSE 'user ' || i || '@example.com'                                          -- space
END AS email
FROM generate_series(1, :rows) AS i;

-- Candidate x coordinates: about half lie on the curve. Sorting them into pools uses the
-- validator once, outside any timing.
CREATE TABLE bench.key_pool AS
SELECT k, daznode_crm.is_valid_lightning_pubkey(k) AS on_curve,
       row_number() OVER (PARTITION BY daznode_crm.is_valid_lightning_pubkey(k) ORDER BY i) AS n
FROM (SELECT i, '0' || (2 + i % 2) || md5(i::text) || md5((-i)::text) AS k
      FROM generate_series(1, (2.2 * :rows)::bigint + 1000) AS i) AS c;
CREATE INDEX ON bench.key_pool (on_curve, n);

CREATE TABLE bench.pubkeys AS
SELECT i, CASE
    WHEN i % 100 < 80 THEN (SELECT k FROM bench.key_pool WHERE on_curve AND n = i)
    WHEN i % 100 < 85 THEN upper((SELECT k FROM bench.key_pool WHERE on_curve AND n = i))
    WHEN i % 100 < 92 THEN (SELECT k FROM bench.key_pool WHERE NOT on_curve AND n = i)
    WHEN i % 100 < 95 THEN ''                                                    -- the app's "no key"
    WHEN i % 100 < 98 THEN '04' || md5(i::text) || md5((-i)::text)               -- uncompressed prefix
    ELSE left(md5(i::text), 20)                                                  -- junk
END AS pubkey
FROM generate_series(1, :rows) AS i;
VACUUM ANALYZE bench.emails, bench.pubkeys;

-- Warm the cache, then time: a bare scan, the legacy regex, the native validator.
SELECT count(*) FROM bench.emails WHERE email IS NOT NULL \g /dev/null
SELECT count(*) FROM bench.pubkeys WHERE pubkey IS NOT NULL \g /dev/null

CREATE TEMP TABLE results AS
WITH q(subject, method, query) AS (VALUES
    ('email',  'scan',   'SELECT count(*) FROM bench.emails WHERE email IS NOT NULL'),
    ('email',  'legacy', $q$SELECT count(*) FROM bench.emails WHERE email ~ '^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$'$q$),
    ('email',  'native', 'SELECT count(*) FROM bench.emails WHERE daznode_crm.is_valid_email(email)'),
    ('pubkey', 'scan',   'SELECT count(*) FROM bench.pubkeys WHERE pubkey IS NOT NULL'),
    ('pubkey', 'legacy', $q$SELECT count(*) FROM bench.pubkeys WHERE pubkey ~ '^[0-9a-fA-F]{66}$'$q$),
    ('pubkey', 'native', 'SELECT count(*) FROM bench.pubkeys WHERE daznode_crm.is_valid_lightning_pubkey(pubkey)')
)
SELECT subject, method, bench.best_ns(query, :reps) AS ns,
       (SELECT count(*) FROM bench.emails) AS n_rows
FROM q;

CREATE TEMP TABLE accepted AS
SELECT 'email' AS subject,
       count(*) FILTER (WHERE email ~ '^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$') AS legacy,
       count(*) FILTER (WHERE daznode_crm.is_valid_email(email)) AS native
FROM bench.emails
UNION ALL
SELECT 'pubkey',
       count(*) FILTER (WHERE pubkey ~ '^[0-9a-fA-F]{66}$'),
       count(*) FILTER (WHERE daznode_crm.is_valid_lightning_pubkey(pubkey))
FROM bench.pubkeys;

\pset format unaligned
\pset tuples_only on
SELECT format('| %s | %s | %s | %s | %s | %s | **%s×** | %s× |',
    s.subject, r.n_rows,
    round(((l.ns - s.ns) / r.n_rows)::numeric, 0),
    round(((n.ns - s.ns) / r.n_rows)::numeric, 0),
    round((s.ns / r.n_rows)::numeric, 0),
    a.legacy || ' / ' || a.native,
    round(((n.ns - s.ns) / (l.ns - s.ns))::numeric, 2),
    round((n.ns / l.ns)::numeric, 2))
FROM results s
JOIN results l ON l.subject = s.subject AND l.method = 'legacy'
JOIN results n ON n.subject = s.subject AND n.method = 'native'
JOIN (SELECT subject, max(n_rows) AS n_rows FROM results GROUP BY subject) r ON r.subject = s.subject
JOIN accepted a ON a.subject = s.subject
WHERE s.method = 'scan'
ORDER BY s.subject;
