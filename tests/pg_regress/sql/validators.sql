-- The validators' SQL contract: each function on the cases the README lists.
BEGIN;
SET search_path = pg_catalog;

-- Emails: the known-bad legacy cases, with the reason each is rejected.
SELECT address,
       daznode_crm.is_valid_email(address) AS valid,
       daznode_crm.email_validation_error(address) AS reason
FROM (VALUES
    ('alice@example.com'), ('Alice.Smith+crm@Example.COM'), ('jörg@bücher.de'),
    ('user@example.xn--p1ai'), ('a..b@x.io'), ('.a@-x..fr'), ('a@b'), ('a b@x.io'),
    ('a@x.c'), ('a@x..io'), ('@x.io'), ('a@'), ('"quoted"@x.io'), ('a@[127.0.0.1]'),
    ('a@-x.io'), (''), (repeat('a', 64) || '@x.io'), (repeat('a', 65) || '@x.io')
) AS t(address);

SELECT daznode_crm.normalize_email('  Alice.Smith@Example.COM ') AS normalized,
       daznode_crm.normalize_email('ÉLODIE@Exemple.FR') AS normalized_utf8;

-- Pubkeys: generator, a public node id, upper case, off-curve, uncompressed, empty, junk.
SELECT left(k, 12) || '…' AS key_start, length(k) AS len,
       daznode_crm.is_valid_lightning_pubkey(k) AS valid,
       daznode_crm.lightning_pubkey_validation_error(k) AS reason
FROM (VALUES
    ('0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'),
    ('03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f'),
    ('03864EF025FDE8FB587D989186CE6A4A186895EE44A926BFC370E2C366597A3F8F'),
    ('020000000000000000000000000000000000000000000000000000000000000005'),
    ('0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'),
    ('02ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'),
    (''), ('not a key'), (repeat('0', 66))
) AS t(k);

SELECT daznode_crm.normalize_lightning_pubkey('03864EF025FDE8FB587D989186CE6A4A186895EE44A926BFC370E2C366597A3F8F') AS lower_hex,
       daznode_crm.normalize_lightning_pubkey('') IS NULL AS empty_is_null;

-- NULL in, NULL out (STRICT), and no error on hostile input.
SELECT daznode_crm.is_valid_email(NULL) AS null_email,
       daznode_crm.is_valid_email(repeat('x', 10485760)) AS ten_mb,
       daznode_crm.is_valid_email(E'a\x01@x.io') AS control_char,
       daznode_crm.is_valid_lightning_pubkey('@') AS lone_at;

-- The domains, in a table: valid rows go in, a bad one fails naming the domain.
CREATE TEMP TABLE contacts (
    email  daznode_crm.email NOT NULL,
    pubkey daznode_crm.lightning_pubkey
);
INSERT INTO contacts VALUES
    ('alice@example.com', '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'),
    ('bob@example.org', NULL);
SELECT count(*) AS accepted FROM contacts;
SAVEPOINT s1;
INSERT INTO contacts VALUES ('a..b@x.io', NULL);
ROLLBACK TO s1;
INSERT INTO contacts VALUES ('carol@example.com', '020000000000000000000000000000000000000000000000000000000000000005');
ROLLBACK;
