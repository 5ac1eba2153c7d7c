//! Who the extension's statements run as (the trust model, README "Security" and
//! ARCHITECTURE.md). A statement that reads or writes an application table runs with the rights
//! of that table's owner, in a security-restricted operation, as PostgreSQL's own VACUUM,
//! ANALYZE, CREATE INDEX and REFRESH MATERIALIZED VIEW do: whatever code the owner attached
//! (triggers, a view's functions, casts, defaults, policies) runs as the owner, never as the
//! superuser our SECURITY DEFINER functions belong to. Tables are found by oid and checked to be
//! tables (no view, foreign table or other relation kind), owned by the CRM owner.

use crate::api::errors::{invalid, Result};
use crate::api::spi::{count, flag};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CString;

/// `public.<name>` as the catalog has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relation {
    pub oid: pg_sys::Oid,
    pub owner: pg_sys::Oid,
    /// pg_class.relkind: b'r' table, b'p' partitioned table, b'v' view, …
    pub kind: u8,
}

impl Relation {
    pub fn is_table(&self) -> bool {
        matches!(self.kind, b'r' | b'p')
    }
}

/// `public.<name>` whatever its kind, None when there is no relation of that name.
pub fn relation(name: &str) -> Option<Relation> {
    Spi::connect(|client| {
        let t = client.select(
            "SELECT c.oid, c.relowner, c.relkind::text FROM pg_catalog.pg_class c
             WHERE c.oid = pg_catalog.to_regclass('public.' || pg_catalog.quote_ident($1))",
            Some(1),
            &[name.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let row = t.first();
        Ok::<_, pgrx::spi::Error>(match (row.get::<pg_sys::Oid>(1)?, row.get::<pg_sys::Oid>(2)?, row.get::<String>(3)?) {
            (Some(oid), Some(owner), Some(kind)) => Some(Relation { oid, owner, kind: kind.as_bytes()[0] }),
            _ => None,
        })
    })
    .unwrap_or_else(|e| error!("daznode_crm: catalog lookup of public.{name} failed: {e}"))
}

/// The role the CRM tables belong to: the owner of `public.profiles` when it is a table, else
/// of the first CRM table that is one (one catalog query). Every statement on application
/// tables runs as this role.
pub fn crm_owner() -> Option<pg_sys::Oid> {
    // Read-only SPI (spi::first): it runs on a hot standby too, where a read-write one would ask
    // for a transaction id.
    crate::api::spi::first::<pg_sys::Oid>(
        "SELECT (SELECT c.relowner FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n)
                 JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(t.name))
                 WHERE c.relkind IN ('r', 'p') ORDER BY t.n LIMIT 1)",
        &[daznode_crm_core::schema::CRM_TABLES.to_vec().into()],
    )
}

/// The role the CRM tables belong to, NULL before any exists: who the steps and the partition
/// maintenance must run as. `SELECT daznode_crm.crm_owner()::regrole;` Not parallel safe: it
/// reads the catalog through SPI, which a parallel plan's leader may not.
#[pg_extern(stable, name = "crm_owner")]
fn crm_owner_sql() -> Option<pg_sys::Oid> {
    crm_owner()
}

/// Up to `cap` rows of CRM table `table_name` as a request of `role` (no superuser, no
/// BYPASSRLS) with the JWT `claims` sees them through its policies: step 0008's self-check of
/// the role matrix. Only a count comes out. `SELECT daznode_crm.rows_seen_as('anon', 'profiles', NULL, 100);`
#[pg_extern(volatile)]
fn rows_seen_as(role: pg_sys::Oid, table_name: &str, claims: Option<&str>, cap: i64) -> Result<i64> {
    let table = crm_table(table_name).ok_or_else(|| invalid(format!("daznode_crm: public.{table_name} is not a table of the CRM owner")))?;
    if !subject_to_rls(role) {
        return Err(invalid("daznode_crm: rows_seen_as() reads only as roles subject to row-level security"));
    }
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT $1) AS x",
        crate::api::spi::text("SELECT $1::pg_catalog.regclass::text", &[table.oid.into()]).unwrap_or_default()
    );
    Ok(as_role_with(role, &[(c"request.jwt.claims", claims.unwrap_or(""))], || crate::api::spi::count(&sql, &[cap.into()])))
}

/// Neither a superuser nor BYPASSRLS: the policies apply to it.
fn subject_to_rls(role: pg_sys::Oid) -> bool {
    crate::api::spi::flag("SELECT NOT (r.rolsuper OR r.rolbypassrls) FROM pg_catalog.pg_roles r WHERE r.oid = $1", &[role.into()])
}

/// What the role matrix (`core::matrix`) lets `requester` ('no JWT', 'a customer', 'support',
/// 'moderator', 'admin', 'super_admin') read of `table_name`: 'nothing', 'everything' or
/// 'own:<column>'; NULL for a table the matrix does not govern.
#[pg_extern(immutable, parallel_safe)]
fn matrix_expectation(table_name: &str, requester: &str) -> Option<String> {
    use daznode_crm_core::matrix::{expected_read, Requester, Visible};
    let who = Requester::ALL.into_iter().find(|r| r.as_str() == requester)?;
    expected_read(table_name, who).map(|v| match v {
        Visible::Nothing => "nothing".to_string(),
        Visible::Everything => "everything".to_string(),
        Visible::Own(column) => format!("own:{column}"),
    })
}

/// `public.<name>` when it is a table (or partitioned table) of the CRM owner: the only
/// relations the extension's statements read or write. A view, or a table someone else created
/// under that name, is never read.
pub fn crm_table(name: &str) -> Option<Relation> {
    let owner = crm_owner()?;
    relation(name).filter(|r| r.is_table() && r.owner == owner)
}

/// `crm_table` for SQL: the oid of `public.<name>` when it is a table of the CRM owner, else
/// NULL. `SELECT daznode_crm.crm_table_oid('profiles')::regclass;`
#[pg_extern(stable)]
fn crm_table_oid(name: &str) -> Option<pg_sys::Oid> {
    crm_table(name).map(|r| r.oid)
}

/// Runs `f` with the rights of `role`: current user `role`, in a security-restricted operation
/// (no SET ROLE, no session-level changes), with the session's own search_path (its RESET
/// value: the app's), so that the owner's triggers find their functions as in the app. Restored
/// afterwards; an ERROR inside is restored by the (sub)transaction abort, as PostgreSQL does.
pub fn as_role<T>(role: pg_sys::Oid, f: impl FnOnce() -> T) -> T {
    as_role_with(role, &[], f)
}

/// `as_role`, with more settings in force for `f` only (as a request's `request.jwt.claims`).
pub fn as_role_with<T>(role: pg_sys::Oid, settings: &[(&std::ffi::CStr, &str)], f: impl FnOnce() -> T) -> T {
    // SAFETY: the same sequence PostgreSQL's maintenance commands use (GetUserIdAndSecContext,
    // NewGUCNestLevel, SetUserIdAndSecContext, set_config_option with GUC_ACTION_SAVE, then
    // AtEOXact_GUC and the saved user back); strings are NUL-terminated and copied by the GUC code.
    unsafe {
        let mut saved_user = pg_sys::InvalidOid;
        let mut saved_context: std::ffi::c_int = 0;
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        let nest = pg_sys::NewGUCNestLevel();
        pg_sys::SetUserIdAndSecContext(
            role,
            saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as std::ffi::c_int | pg_sys::SECURITY_RESTRICTED_OPERATION as std::ffi::c_int,
        );
        let app_path = CString::new(app_search_path()).expect("a setting has no NUL");
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            app_path.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        for (name, value) in settings {
            let value = CString::new(*value).unwrap_or_else(|_| error!("daznode_crm: a setting holds a NUL byte"));
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        let out = f();
        pg_sys::AtEOXact_GUC(true, nest);
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
        out
    }
}

/// The search_path the app's own code sees: the session's RESET value (the role's or the
/// database's setting, else the server's), behind pg_catalog so that the extension's
/// unqualified built-ins stay PostgreSQL's. The steps set it while they change the app's rows, so
/// that the app's triggers find their unqualified functions as in the app.
/// `SELECT daznode_crm.app_search_path();`
#[pg_extern(stable, parallel_safe)]
pub fn app_search_path() -> String {
    // SAFETY: GetConfigOptionResetString returns NULL or a NUL-terminated string of the GUC code.
    let reset = unsafe {
        let p = pg_sys::GetConfigOptionResetString(c"search_path".as_ptr());
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    let reset = reset.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "\"$user\", public".to_string());
    if reset.split(',').any(|p| p.trim() == "pg_catalog") {
        reset
    } else {
        format!("pg_catalog, {reset}")
    }
}

/// Runs `f` as the CRM owner; None (and `f` not run) when there is no CRM table.
pub fn as_crm_owner<T>(f: impl FnOnce() -> T) -> Option<T> {
    crm_owner().map(|owner| as_role(owner, f))
}

/// One bigint from a query on application tables, run as the CRM owner: 0 when
/// there is no CRM table.
pub fn app_count(sql: &str, args: &[DatumWithOid]) -> i64 {
    as_crm_owner(|| count(sql, args)).unwrap_or(0)
}

/// Is `public.<table>` a table of the CRM owner (`crm_table`)? A view or someone
/// else's table of that name counts as absent: the extension never reads it.
pub fn table_exists(table: &str) -> bool {
    crm_table(table).is_some()
}

/// Does the CRM table `public.<table>` (as `table_exists` sees it) have `column`?
pub fn column_exists(table: &str, column: &str) -> bool {
    let Some(rel) = crm_table(table) else {
        return false;
    };
    flag(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                        WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
        &[rel.oid.into(), column.into()],
    )
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn current_user() -> String {
        Spi::get_one::<String>("SELECT current_user::text").unwrap().unwrap()
    }

    #[pg_test]
    fn as_role_runs_as_the_role_and_comes_back() {
        Spi::run("CREATE ROLE daznode_test_owner NOLOGIN").unwrap();
        let role = Spi::get_one::<pg_sys::Oid>("SELECT 'daznode_test_owner'::regrole::oid").unwrap().unwrap();
        let before = current_user();
        let inside = as_role(role, current_user);
        assert_eq!(inside, "daznode_test_owner");
        assert_eq!(current_user(), before);
    }

    #[pg_test(error = "cannot set parameter \"role\" within security-definer function")]
    fn code_run_as_a_role_cannot_set_role_back() {
        Spi::run("CREATE ROLE daznode_test_owner NOLOGIN").unwrap();
        let role = Spi::get_one::<pg_sys::Oid>("SELECT 'daznode_test_owner'::regrole::oid").unwrap().unwrap();
        as_role(role, || Spi::run("SET ROLE NONE").unwrap());
    }

    #[pg_test]
    fn only_tables_of_the_crm_owner_are_crm_tables() {
        assert_eq!(crm_owner(), None);
        Spi::run("CREATE ROLE daznode_test_other NOLOGIN").unwrap();
        Spi::run("CREATE TABLE public.profiles (id uuid PRIMARY KEY)").unwrap();
        Spi::run("CREATE VIEW public.orders AS SELECT id AS user_id FROM public.profiles").unwrap();
        Spi::run("CREATE TABLE public.subscriptions (user_id uuid)").unwrap();
        Spi::run("ALTER TABLE public.subscriptions OWNER TO daznode_test_other").unwrap();
        assert!(crm_owner().is_some());
        assert!(crm_table("profiles").is_some());
        assert_eq!(relation("orders").map(|r| r.kind), Some(b'v'));
        assert!(crm_table("orders").is_none(), "a view is never a CRM table");
        assert!(crm_table("subscriptions").is_none(), "another role's table is never a CRM table");
    }
}
