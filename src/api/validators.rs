//! Email and Lightning node public key validators, and the domains built on them.
//! The rules live in `daznode_crm_core::{email, pubkey}`; these are SQL shims.

use daznode_crm_core::{email, pubkey};
use pgrx::prelude::*;

/// `SELECT daznode_crm.is_valid_email('alice@example.com')` → true
#[pg_extern(immutable, strict, parallel_safe)]
fn is_valid_email(address: &str) -> bool {
    email::is_valid_email(address)
}

/// NULL when valid, else the first rule broken:
/// `SELECT daznode_crm.email_validation_error('a..b@x.io')` → 'consecutive dots in local part'
#[pg_extern(immutable, strict, parallel_safe)]
fn email_validation_error(address: &str) -> Option<&'static str> {
    email::validate_email(address).err().map(|e| e.reason())
}

/// Trimmed and lower-cased: the form that UNIQUE indexes use.
#[pg_extern(immutable, strict, parallel_safe)]
fn normalize_email(address: &str) -> String {
    email::normalize_email(address)
}

/// `SELECT daznode_crm.is_valid_lightning_pubkey('0279be66…1798')` → true (on the curve)
#[pg_extern(immutable, strict, parallel_safe)]
fn is_valid_lightning_pubkey(pubkey: &str) -> bool {
    pubkey::is_valid_lightning_pubkey(pubkey)
}

/// NULL when valid, else why not: `'not a point on secp256k1 (x^3+7 is not a square)'`, …
#[pg_extern(immutable, strict, parallel_safe)]
fn lightning_pubkey_validation_error(pubkey: &str) -> Option<&'static str> {
    pubkey::validate_lightning_pubkey(pubkey).err().map(|e| e.reason())
}

/// Lower-case hex, trimmed; NULL for '' (the app's "no key").
#[pg_extern(immutable, strict, parallel_safe)]
fn normalize_lightning_pubkey(pubkey: &str) -> Option<String> {
    pubkey::normalize_lightning_pubkey(pubkey)
}

extension_sql!(
    r#"
CREATE DOMAIN @extschema@.email AS text
    CONSTRAINT is_valid_email CHECK (@extschema@.is_valid_email(VALUE));
COMMENT ON DOMAIN @extschema@.email IS
    'An email address accepted by daznode_crm.is_valid_email(); see email_validation_error() for why one is not.';

CREATE DOMAIN @extschema@.lightning_pubkey AS text
    CONSTRAINT is_valid_lightning_pubkey CHECK (@extschema@.is_valid_lightning_pubkey(VALUE));
COMMENT ON DOMAIN @extschema@.lightning_pubkey IS
    'A Lightning node id: 66 hex digits, a compressed secp256k1 point (02/03 prefix, on the curve).';
"#,
    name = "validator_domains",
    requires = [is_valid_email, is_valid_lightning_pubkey],
);

// The validators never raise an error and have no side effect: whatever the input, they only
// return a value. LEAKPROOF lets the planner use them below row-level security, so that a
// search on normalize_email(email) through RLS uses the unique index on that expression.
extension_sql!(
    r#"
ALTER FUNCTION @extschema@.is_valid_email(text) LEAKPROOF;
ALTER FUNCTION @extschema@.email_validation_error(text) LEAKPROOF;
ALTER FUNCTION @extschema@.normalize_email(text) LEAKPROOF;
ALTER FUNCTION @extschema@.is_valid_lightning_pubkey(text) LEAKPROOF;
ALTER FUNCTION @extschema@.lightning_pubkey_validation_error(text) LEAKPROOF;
ALTER FUNCTION @extschema@.normalize_lightning_pubkey(text) LEAKPROOF;
"#,
    name = "validators_leakproof",
    requires =
        [is_valid_email, email_validation_error, normalize_email, is_valid_lightning_pubkey, lightning_pubkey_validation_error, normalize_lightning_pubkey],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    const G: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    fn one_bool(sql: &str) -> bool {
        Spi::get_one::<bool>(sql).unwrap().unwrap()
    }

    #[pg_test]
    fn validators_answer_in_sql() {
        assert!(one_bool("SELECT daznode_crm.is_valid_email('Alice@Example.com')"));
        assert!(!one_bool("SELECT daznode_crm.is_valid_email('a..b@x.io')"));
        assert_eq!(Spi::get_one::<String>("SELECT daznode_crm.email_validation_error('.a@-x..fr')").unwrap(), Some("leading dot in local part".to_string()));
        assert!(one_bool(&format!("SELECT daznode_crm.is_valid_lightning_pubkey(upper('{G}'))")));
        assert_eq!(Spi::get_one::<String>(&format!("SELECT daznode_crm.normalize_lightning_pubkey(upper('{G}'))")).unwrap(), Some(G.to_string()));
        assert_eq!(Spi::get_one::<String>("SELECT daznode_crm.normalize_lightning_pubkey('')").unwrap(), None);
    }

    #[pg_test]
    fn strict_functions_return_null_on_null() {
        assert_eq!(Spi::get_one::<bool>("SELECT daznode_crm.is_valid_email(NULL)").unwrap(), None);
        assert_eq!(Spi::get_one::<bool>("SELECT daznode_crm.is_valid_lightning_pubkey(NULL)").unwrap(), None);
    }

    #[pg_test]
    fn declared_immutable_parallel_safe_strict_and_leakproof() {
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'daznode_crm'
               AND p.proname IN ('is_valid_email', 'email_validation_error', 'normalize_email', 'is_valid_lightning_pubkey',
                                 'lightning_pubkey_validation_error', 'normalize_lightning_pubkey')
               AND p.provolatile = 'i' AND p.proparallel = 's' AND p.proisstrict AND p.proleakproof",
        )
        .unwrap()
        .unwrap();
        assert_eq!(n, 6);
    }

    #[pg_test(error = "value for domain daznode_crm.email violates check constraint \"is_valid_email\"")]
    fn email_domain_rejects_bad_address() {
        Spi::run("CREATE TEMP TABLE t (e daznode_crm.email); INSERT INTO t VALUES ('a@b')").unwrap();
    }

    #[pg_test(error = "value for domain daznode_crm.lightning_pubkey violates check constraint \"is_valid_lightning_pubkey\"")]
    fn pubkey_domain_rejects_off_curve_key() {
        Spi::run(&format!("CREATE TEMP TABLE t (k daznode_crm.lightning_pubkey); INSERT INTO t VALUES ('02{:064x}')", 5)).unwrap();
    }

    #[pg_test]
    fn domains_accept_valid_values() {
        Spi::run(&format!(
            "CREATE TEMP TABLE t (e daznode_crm.email, k daznode_crm.lightning_pubkey);
             INSERT INTO t VALUES ('jörg@bücher.de', '{G}'), (NULL, NULL)"
        ))
        .unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM t").unwrap(), Some(2));
    }

    #[pg_test]
    fn huge_input_is_an_answer_not_an_error() {
        assert!(!one_bool("SELECT daznode_crm.is_valid_email(repeat('a', 10 * 1024 * 1024))"));
        assert!(!one_bool("SELECT daznode_crm.is_valid_lightning_pubkey(repeat('f', 10 * 1024 * 1024))"));
        assert!(!one_bool("SELECT daznode_crm.is_valid_email(E'a\\x01b@x.io')"));
    }
}
