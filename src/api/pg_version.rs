//! Everything that differs between the PostgreSQL majors we build (Cargo features pg15 to
//! pg18), in one place. The SQL side needs no per-major code: every catalog and statistics
//! column it reads exists with the same meaning in 15 to 18 (UPDATING.md lists what we checked).

use pgrx::pg_sys;

/// The backend's local transaction id: a counter that changes at every top-level transaction,
/// which the caller caches compare to know a new transaction has begun.
///
/// PostgreSQL 17 moved it from `PGPROC.lxid` into `PGPROC.vxid.lxid`.
pub(crate) fn local_transaction_id() -> u32 {
    // SAFETY: MyProc is set for every backend that runs SQL.
    unsafe {
        #[cfg(any(feature = "pg15", feature = "pg16"))]
        {
            (*pg_sys::MyProc).lxid
        }
        #[cfg(any(feature = "pg17", feature = "pg18"))]
        {
            (*pg_sys::MyProc).vxid.lxid
        }
    }
}
