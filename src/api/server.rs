//! The server the functions run on: a hot standby refuses what writes (25006), the filesystems
//! under the data and the WAL have to hold the partitioning copy (`core::disk`), and long
//! operations report their progress where any session sees it (`core::progress`).

use crate::api::errors::{report, Result};
use crate::api::spi::{count, text};
use daznode_crm_core::disk;
use daznode_crm_core::progress::{self, Progress};
use daznode_crm_core::CrmError;
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

/// Is this server in recovery (a hot standby)?
pub fn on_standby() -> bool {
    // SAFETY: reads shared memory state; callable in any backend.
    unsafe { pg_sys::RecoveryInProgress() }
}

/// Stops a function that writes, at once, on a hot standby: SQLSTATE 25006, naming it.
pub fn refuse_on_standby(what: &str) -> Result<()> {
    if on_standby() {
        return Err(report(CrmError::OnStandby(what.to_string())));
    }
    Ok(())
}

/// The SQL face of `refuse_on_standby`, for the PL/pgSQL procedures (migrate(), the partition
/// maintenance). `SELECT daznode_crm.refuse_on_standby('migrate()');`
#[pg_extern(volatile, parallel_safe, strict, name = "refuse_on_standby")]
#[search_path(pg_catalog, pg_temp)]
fn refuse_on_standby_sql(what: &str) -> Result<()> {
    refuse_on_standby(what)
}

/// Free bytes (for an unprivileged writer) and the filesystem id under `path`.
fn statvfs(path: &str) -> Option<(u64, u64)> {
    let c = CString::new(path).ok()?;
    // SAFETY: statvfs fills the zeroed struct from a NUL-terminated path; no other effect.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(((st.f_bavail as u64).saturating_mul(st.f_frsize as u64), st.f_fsid as u64))
}

/// Where crm_email_sends' copy goes (its tablespace, or the database's) and where the WAL goes.
fn data_and_wal_dirs() -> Option<(String, String)> {
    // SAFETY: DataDir is set once at startup and never freed.
    let data_dir = unsafe { CStr::from_ptr(pg_sys::DataDir) }.to_str().ok()?.to_string();
    let tablespace = text(
        "SELECT nullif(pg_catalog.pg_tablespace_location(coalesce(nullif(c.reltablespace, 0),
                   (SELECT d.dattablespace FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()))), '')
         FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass('public.crm_email_sends')",
        &[],
    );
    Some((tablespace.unwrap_or_else(|| data_dir.clone()), format!("{data_dir}/pg_wal")))
}

/// The disk preflight of step 0010: NULL when the filesystems hold the copy of crm_email_sends
/// (table, TOAST and indexes again, plus as much WAL) with the 1.2× margin, otherwise why not,
/// with both numbers. `daznode_crm.disk_need_inflate` (tests only) makes the need look larger.
/// `SELECT daznode_crm.partition_disk_verdict();`
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn partition_disk_verdict() -> Option<String> {
    let table = count("SELECT coalesce(pg_catalog.pg_total_relation_size(pg_catalog.to_regclass('public.crm_email_sends')), 0)", &[]);
    let inflate = text("SELECT pg_catalog.current_setting('daznode_crm.disk_need_inflate', true)", &[])
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .unwrap_or(1.0)
        .max(1.0);
    let (data, wal) = data_and_wal_dirs()?;
    let (data_free, data_fs) = statvfs(&data)?;
    let (wal_free, wal_fs) = statvfs(&wal).unwrap_or((data_free, data_fs));
    disk::verdict(disk::need(table.max(0) as u64, inflate), data_free, wal_free, data_fs == wal_fs).map(|why| format!("{why} ({data})"))
}

/// The application_name that carries a long operation's progress (`core::progress::encode`);
/// `daznode_crm.report_progress()` sets it. `SELECT daznode_crm.progress_name('0010', 'copying', 10, 100, 1764650000);`
#[pg_extern(immutable, parallel_safe, strict)]
fn progress_name(operation: &str, phase: &str, done: i64, estimated: i64, started_epoch: i64) -> String {
    progress::encode(&Progress { operation: operation.into(), phase: phase.into(), done, estimated, started: started_epoch })
}

/// The progress an application_name carries (no row for any other name), times as Unix
/// epochs, the end expected at the pace so far; `daznode_crm.operation_progress` shows it.
/// `SELECT * FROM daznode_crm.progress_of('daznode_crm 0010:copying 10/100 @1764650000');`
#[pg_extern(volatile, parallel_safe)]
fn progress_of(
    application_name: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(operation, String),
        name!(phase, String),
        name!(rows_done, i64),
        name!(rows_estimated, Option<i64>),
        name!(started_epoch, i64),
        name!(end_epoch, Option<i64>),
    ),
> {
    let Some(p) = application_name.and_then(progress::decode) else {
        return TableIterator::new(Vec::new());
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let end = progress::estimated_end(&p, now);
    TableIterator::new(vec![(p.operation, p.phase, p.done, (p.estimated > 0).then_some(p.estimated), p.started, end)])
}
