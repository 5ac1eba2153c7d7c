//! The partitions of crm_email_sends: the monthly retention cleanup (`api::retention`, planned by
//! `daznode_crm_core::retention`) and the months step 0010 creates (sql/partitioning.sql).

use crate::api::errors::{invalid, Result};
use crate::api::retention::{self, Options, Row};
use daznode_crm_core::retention::{months_from, DEFAULT_PREMAKE};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;

/// The monthly maintenance, for pg_cron (README "Retention"): drops (or, with `archive`, moves to
/// `crm_archive`) the partitions older than `retention`, creates the next `premake` months and
/// the months of rows stuck in the default partition. Run by the CRM owner.
/// `SELECT * FROM daznode_crm.cleanup_old_email_partitions(dry_run => true);`
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn cleanup_old_email_partitions(
    retention: default!(Option<Interval>, "'12 months'"),
    premake: default!(Option<i32>, 3),
    dry_run: default!(Option<bool>, false),
    archive: default!(Option<bool>, false),
    force: default!(Option<bool>, false),
) -> Result<
    TableIterator<
        'static,
        (
            name!(partition_name, Option<String>),
            name!(range_start, Option<TimestampWithTimeZone>),
            name!(range_end, Option<TimestampWithTimeZone>),
            name!(action, String),
            name!(rows, Option<i64>),
        ),
    >,
> {
    let (Some(retention), Some(premake), Some(dry_run), Some(archive), Some(force)) = (retention, premake, dry_run, archive, force) else {
        return Err(invalid("daznode_crm: arguments of cleanup_old_email_partitions() must not be NULL"));
    };
    let rows: Vec<Row> = retention::run(Options { retention, premake, dry_run, archive, force })?;
    Ok(TableIterator::new(rows))
}

/// The monthly partitions step 0010 creates: from the month of `first` (the oldest send, or now)
/// to `DEFAULT_PREMAKE` months after the month of `now`, as UTC month bounds.
/// `SELECT * FROM daznode_crm.email_sends_partition_months(now() - interval '2 months', now());`
#[pg_extern(immutable, parallel_safe)]
fn email_sends_partition_months(
    first: Option<TimestampWithTimeZone>,
    now: TimestampWithTimeZone,
) -> TableIterator<'static, (name!(partition_name, String), name!(range_start, TimestampWithTimeZone), name!(range_end, TimestampWithTimeZone))> {
    let months = months_from(first.map(retention::unix_micros), retention::unix_micros(now), DEFAULT_PREMAKE);
    TableIterator::new(months.into_iter().map(|m| (m.partition_name(), retention::timestamp(m.start_micros()), retention::timestamp(m.end_micros()))))
}
