//! daznode_crm: the DazNode CRM migration guide as a PostgreSQL extension.
//!
//! Layers (see ARCHITECTURE.md): `daznode_crm_core` (the `core/` crate) holds the rules, the
//! plans and the arithmetic in plain Rust; `api` holds the `#[pg_extern]` functions, one module
//! per SQL area, which read the catalog (queries in `sql/catalog/`, rows typed as
//! `daznode_crm_core::catalog` records) and run what the core decides, returning its errors as
//! `api::errors::Result` with the core's SQLSTATE; `sql/` holds hand-written
//! SQL (the migration steps, `migrate()`, step 0010's online copy and its rollback, in PL/pgSQL)
//! and the versioned upgrade scripts.

::pgrx::pg_module_magic!(name, version);

mod api;

/// Loaded once per backend. In a release build, a Rust panic's backtrace never reaches a user's
/// error DETAIL, whatever RUST_BACKTRACE the server was started with: the error says what went
/// wrong, the stack stays ours. (Debug builds keep it, for developers.)
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    #[cfg(not(debug_assertions))]
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
