//! Helpers of the partitioning of crm_email_sends (sql/partitioning.sql): argument checks and
//! the retention plan, from `daznode_crm_core::retention`. Instants cross the boundary as
//! microseconds since the Unix epoch.

use crate::api::errors::raise;
use daznode_crm_core::retention::{self, Partition};
use pgrx::prelude::*;

/// Raises 22023 unless the retention is at least a month (or positive, with `force`) and
/// premake is in 0..=120.
#[pg_extern(immutable, parallel_safe)]
fn check_partition_cleanup_arguments(retention_micros: i64, month_micros: i64, premake: i32, force: bool) -> bool {
    retention::validate(retention_micros, month_micros, premake, force).unwrap_or_else(|e| raise(e));
    true
}

/// Which partitions lie entirely before the cutoff ('expired') and which months from now to
/// premake months ahead no partition covers ('missing').
#[pg_extern(immutable, parallel_safe)]
fn email_partition_plan(
    now_micros: i64,
    cutoff_micros: i64,
    premake: i32,
    names: Vec<String>,
    starts: Vec<i64>,
    ends: Vec<i64>,
) -> TableIterator<'static, (name!(partition_name, String), name!(start_micros, i64), name!(end_micros, i64), name!(action, String))> {
    let partitions: Vec<Partition> = names
        .into_iter()
        .zip(starts.into_iter().zip(ends))
        .map(|(name, (start, end))| Partition { name, start, end })
        .collect();
    let (expired, missing) = retention::plan(&partitions, now_micros, cutoff_micros, premake);
    let rows: Vec<_> = expired
        .into_iter()
        .map(|p| (p.name, p.start, p.end, "expired".to_string()))
        .chain(missing.into_iter().map(|m| (m.partition_name(), m.start_micros(), m.end_micros(), "missing".to_string())))
        .collect();
    TableIterator::new(rows)
}

/// Whether public.crm_email_sends is partitioned, asked of the one SQL helper every caller uses
/// (`daznode_crm.email_sends_partitioned()`, sql/partitioning.sql).
pub fn email_sends_partitioned() -> bool {
    crate::api::spi::flag("SELECT daznode_crm.email_sends_partitioned()", &[])
}
