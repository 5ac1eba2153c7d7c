//! The retention run of `cleanup_old_email_partitions()`: reads the catalog, asks
//! `core::retention::cleanup_plan` what to do, and does it one partition at a time, each in its
//! own subtransaction under the migration lock_timeout with retries
//! (`daznode_crm.run_with_lock_retries`, sql/partitioning.sql). A partition that cannot be locked
//! in time is skipped and reported and never undoes the others. Identifiers reach SQL as
//! `regclass` text or through `quote_ident`, values as `$n`.

use crate::api::errors::report;
use daznode_crm_core::retention::{self, CatalogPartition, CleanupStep, Month, PartitionKind};
use daznode_crm_core::CrmError;
use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// A result row: partition, range start and end, action, rows.
pub type Row = (Option<String>, Option<TimestampWithTimeZone>, Option<TimestampWithTimeZone>, String, Option<i64>);

const WHAT: &str = "cleanup_old_email_partitions()";
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

pub struct Options {
    pub retention: Interval,
    pub premake: i32,
    pub dry_run: bool,
    pub archive: bool,
    pub force: bool,
}

pub fn run(o: Options) -> Result<Vec<Row>, ErrorReport> {
    // The instants of this transaction, as now() gives them (the interval counts real months).
    let (now, cutoff, retention_len, month_len) = Spi::connect(|c| {
        let row = c.select(
            "SELECT (extract(epoch FROM now()) * 1e6)::bigint, (extract(epoch FROM now() - $1) * 1e6)::bigint,
                    (extract(epoch FROM now() - (now() - $1)) * 1e6)::bigint,
                    (extract(epoch FROM now() - (now() - interval '1 month')) * 1e6)::bigint",
            Some(1),
            &[o.retention.into()],
        )?;
        let row = row.first();
        Ok::<_, pgrx::spi::Error>((row.get::<i64>(1)?, row.get::<i64>(2)?, row.get::<i64>(3)?, row.get::<i64>(4)?))
    })
    .map_err(internal)?;
    let (Some(now), Some(cutoff), Some(retention_len), Some(month_len)) = (now, cutoff, retention_len, month_len) else {
        return Err(report(CrmError::InvalidArgument("retention must be a positive interval, e.g. '12 months'".into())));
    };
    retention::validate(retention_len, month_len, o.premake, o.force).map_err(report)?;
    let app_name = text("SELECT pg_catalog.current_setting('application_name')", &[])?;
    if !o.dry_run && crate::api::server::on_standby() {
        return Err(report(CrmError::OnStandby(WHAT.into())));
    }
    if !email_sends_partitioned() {
        return Err(ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "daznode_crm: public.crm_email_sends is not partitioned",
            "daznode_crm",
        )
        .set_hint("Partition it first: CALL daznode_crm.migrate('complete'); (the guide's complete migration)."));
    }
    // Read-only SPI until the first write: a dry run takes no transaction id, so it runs on a
    // hot standby (advisory locks work there) and writes no commit record on a primary.
    read_flag("SELECT daznode_crm.require_crm_owner($1) IS NULL", &[WHAT.into()])?;
    if !read_flag("SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('daznode_crm.cleanup_old_email_partitions'))", &[])? {
        return Ok(vec![(None, None, None, "skipped: already running".into(), Some(0))]);
    }

    // Every partition by oid, with what it is, read from the catalog each time (never kept in
    // a temporary table, so that the dry run works on a hot standby).
    let partitions = catalog_partitions()?;
    let mut default_rel = partitions.iter().find(|p| p.kind == PartitionKind::Default).map(|p| p.qualified.clone());
    // Rows outside every partition land in the default one; the months they belong to get a
    // partition too, when still within retention (creating it moves them). Only from the
    // extension's own default partition: one that is not ours is never emptied.
    let stuck = match &default_rel {
        Some(rel) => micros_column(&format!(
            "SELECT (extract(epoch FROM m AT TIME ZONE 'UTC') * 1e6)::bigint
             FROM (SELECT DISTINCT pg_catalog.date_trunc('month', created_at AT TIME ZONE 'UTC') AS m FROM {rel}) s
             WHERE m IS NOT NULL"
        ))?
        .into_iter()
        .map(Month::containing)
        .collect(),
        None => Vec::new(),
    };
    let steps = retention::cleanup_plan(&partitions, &stuck, now, cutoff, o.premake);
    let n_expired = steps.iter().filter(|s| matches!(s, CleanupStep::Expire(_))).count() as i64;
    let mut n_done = 0i64;
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        out.push(match step {
            CleanupStep::LeaveUnexpected(p) => {
                (Some(p.qualified.clone()), p.start.map(timestamp), p.end.map(timestamp), format!("unexpected partition, left alone: {}", p.bound), None)
            }
            CleanupStep::CreateDefault if o.dry_run => (Some(DEFAULT.into()), None, None, "would create (default partition)".into(), Some(0)),
            CleanupStep::CreateDefault => {
                sql("SELECT daznode_crm.refuse_foreign_object($1)", &[DEFAULT.into()])?;
                sql("CREATE TABLE public.crm_email_sends_default PARTITION OF public.crm_email_sends DEFAULT", &[])?;
                sql("SELECT daznode_crm.lock_down('public.crm_email_sends_default'::regclass)", &[])?;
                default_rel = Some(format!("public.{DEFAULT}"));
                (Some(DEFAULT.into()), None, None, "created (default partition)".into(), Some(0))
            }
            CleanupStep::Create(month) => create_month(month, default_rel.as_deref(), o.dry_run)?,
            CleanupStep::Expire(p) => {
                // Rows from the statistics (counting would read the partition the drop never
                // reads); NULL when the partition was never analyzed.
                let rows = first_i64(
                    "SELECT CASE WHEN reltuples >= 0 THEN reltuples::bigint END FROM pg_catalog.pg_class WHERE oid = $1",
                    &[pg_sys::Oid::from(p.oid).into()],
                )?;
                let range = (Some(p.name.clone()), p.start.map(timestamp), p.end.map(timestamp));
                if o.dry_run {
                    (range.0, range.1, range.2, if o.archive { "would archive" } else { "would drop" }.into(), rows)
                } else {
                    let phase = if o.archive { "archiving" } else { "dropping" };
                    sql("SELECT daznode_crm.report_progress('cleanup', $1, $2, $3, now())", &[phase.into(), n_done.into(), n_expired.into()])?;
                    if n_done > 0 {
                        sql("SELECT daznode_crm.pause_for_tests('between partitions')", &[])?;
                    }
                    n_done += 1;
                    let statements = if o.archive {
                        vec![
                            "CREATE SCHEMA IF NOT EXISTS crm_archive".to_string(),
                            format!("ALTER TABLE public.crm_email_sends DETACH PARTITION {}", p.qualified),
                            format!("ALTER TABLE {} SET SCHEMA crm_archive", p.qualified),
                            format!("SELECT daznode_crm.lock_down({}::oid::regclass)", p.oid),
                        ]
                    } else {
                        vec![format!("DROP TABLE {}", p.qualified)]
                    };
                    if with_lock_retries(statements, None)? {
                        (range.0, range.1, range.2, if o.archive { "archived to crm_archive" } else { "dropped" }.into(), rows)
                    } else {
                        (range.0, range.1, range.2, "skipped: lock not available".into(), Some(0))
                    }
                }
            }
        });
    }
    if n_done > 0 {
        sql("SELECT pg_catalog.set_config('application_name', $1, false)", &[app_name.into()])?;
    }
    Ok(out)
}

const DEFAULT: &str = "crm_email_sends_default";

/// Creates one month's partition; the rows of that month in the default partition move into it,
/// the lock on the default partition keeping new ones from landing there meanwhile.
fn create_month(month: Month, default_rel: Option<&str>, dry_run: bool) -> Result<Row, ErrorReport> {
    let name = month.partition_name();
    let (s, e) = (timestamp(month.start_micros()), timestamp(month.end_micros()));
    let range_args = || -> [DatumWithOid<'static>; 2] { [s.into(), e.into()] };
    if dry_run {
        let moved = match default_rel {
            Some(rel) => first_i64(&format!("SELECT count(*) FROM {rel} WHERE created_at >= $1 AND created_at < $2"), &range_args())?.unwrap_or(0),
            None => 0,
        };
        let action = if moved > 0 { "would create, moving rows from the default partition" } else { "would create" };
        return Ok((Some(name), Some(s), Some(e), action.into(), Some(moved)));
    }
    sql("SELECT daznode_crm.refuse_foreign_object($1)", &[name.as_str().into()])?;
    let quoted = text("SELECT pg_catalog.quote_ident($1)", &[name.as_str().into()])?;
    let create = vec![
        format!(
            "CREATE TABLE public.{quoted} PARTITION OF public.crm_email_sends FOR VALUES FROM ('{}') TO ('{}')",
            month.start_literal(),
            month.plus(1).start_literal()
        ),
        format!("SELECT daznode_crm.lock_down({}::regclass)", text("SELECT pg_catalog.quote_literal($1)", &[format!("public.{quoted}").into()])?),
    ];
    let statements = match default_rel {
        Some(rel) => [
            format!("LOCK TABLE {rel} IN ACCESS EXCLUSIVE MODE"),
            format!("CREATE TEMP TABLE daznode_moving ON COMMIT DROP AS SELECT * FROM {rel} WHERE created_at >= $1 AND created_at < $2"),
            format!("DELETE FROM {rel} WHERE created_at >= $1 AND created_at < $2"),
        ]
        .into_iter()
        .chain(create)
        .chain([
            // The app's triggers see the app's search_path while the rows move (pg_temp stays
            // reachable by its qualified name).
            "SELECT pg_catalog.set_config('search_path', daznode_crm.app_search_path(), true)".to_string(),
            "INSERT INTO public.crm_email_sends SELECT * FROM pg_temp.daznode_moving".to_string(),
            "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)".to_string(),
            "DROP TABLE pg_temp.daznode_moving".to_string(),
        ])
        .collect(),
        None => create,
    };
    if !with_lock_retries(statements, Some(range_args()))? {
        return Ok((Some(name), Some(s), Some(e), "skipped: lock not available".into(), Some(0)));
    }
    // Only the moved rows are in the new partition until this transaction commits.
    let moved = first_i64(&format!("SELECT count(*) FROM public.{quoted}"), &[])?.unwrap_or(0);
    let action = if moved > 0 { "created, rows moved from the default partition" } else { "created" };
    Ok((Some(name), Some(s), Some(e), action.into(), Some(moved)))
}

/// `daznode_crm.run_with_lock_retries(statements, 3, lo, hi)`: false when it never got its locks
/// (then nothing of it was done).
fn with_lock_retries(statements: Vec<String>, range: Option<[DatumWithOid<'static>; 2]>) -> Result<bool, ErrorReport> {
    let [lo, hi] = range.unwrap_or_else(|| [DatumWithOid::null::<TimestampWithTimeZone>(), DatumWithOid::null::<TimestampWithTimeZone>()]);
    flag("SELECT daznode_crm.run_with_lock_retries($1, 3, $2, $3)", &[statements.into(), lo, hi])
}

/// The partitions, from `daznode_crm.email_sends_partitions()`.
fn catalog_partitions() -> Result<Vec<CatalogPartition>, ErrorReport> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT rel::oid, format('%I.%I', nspname, relname), bound, range_start, range_end, kind, relname
             FROM daznode_crm.email_sends_partitions() ORDER BY 2",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(CatalogPartition {
                oid: row.get::<pg_sys::Oid>(1)?.map(u32::from).unwrap_or(0),
                name: row.get::<String>(7)?.unwrap_or_default(),
                qualified: row.get::<String>(2)?.unwrap_or_default(),
                bound: row.get::<String>(3)?.unwrap_or_default(),
                // Bounds may be infinite (an unexpected partition): they saturate.
                start: row.get::<TimestampWithTimeZone>(4)?.map(unix_micros),
                end: row.get::<TimestampWithTimeZone>(5)?.map(unix_micros),
                kind: PartitionKind::parse(&row.get::<String>(6)?.unwrap_or_default()),
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(internal)
}

fn micros_column(query: &str) -> Result<Vec<i64>, ErrorReport> {
    Spi::connect(|c| c.select(query, None, &[])?.map(|r| r.get::<i64>(1)).collect::<Result<Vec<_>, _>>())
        .map(|v| v.into_iter().flatten().collect())
        .map_err(internal)
}

/// An instant given as microseconds since the Unix epoch; beyond PostgreSQL's range, the
/// infinity on its side (what `unix_micros` of an infinite bound gives back).
pub fn timestamp(unix_micros: i64) -> TimestampWithTimeZone {
    let finite = match unix_micros {
        i64::MIN | i64::MAX => None,
        t => TimestampWithTimeZone::try_from(t - PG_EPOCH_MICROS).ok().filter(TimestampWithTimeZone::is_finite),
    };
    finite.unwrap_or_else(|| if unix_micros < 0 { TimestampWithTimeZone::negative_infinity() } else { TimestampWithTimeZone::positive_infinity() })
}

/// Microseconds since the Unix epoch of an instant; the infinities as i64::MIN and i64::MAX (a
/// finite timestamptz is never that far from either epoch).
pub fn unix_micros(t: TimestampWithTimeZone) -> i64 {
    if t.is_infinity() {
        i64::MAX
    } else if t.is_neg_infinity() {
        i64::MIN
    } else {
        t.into_inner() + PG_EPOCH_MICROS
    }
}

fn sql(query: &str, args: &[DatumWithOid]) -> Result<(), ErrorReport> {
    Spi::connect_mut(|c| c.update(query, None, args).map(|_| ())).map_err(internal)
}

/// A boolean from a query that writes nothing (read-only SPI).
fn read_flag(query: &str, args: &[DatumWithOid]) -> Result<bool, ErrorReport> {
    Spi::connect(|c| c.select(query, Some(1), args)?.first().get_one::<bool>()).map(|b| b.unwrap_or(false)).map_err(internal)
}

fn flag(query: &str, args: &[DatumWithOid]) -> Result<bool, ErrorReport> {
    Spi::connect_mut(|c| c.update(query, Some(1), args)?.first().get_one::<bool>()).map(|b| b.unwrap_or(false)).map_err(internal)
}

fn first_i64(query: &str, args: &[DatumWithOid]) -> Result<Option<i64>, ErrorReport> {
    Spi::connect(|c| {
        let t = c.select(query, Some(1), args)?;
        if t.is_empty() {
            return Ok(None);
        }
        t.first().get_one::<i64>()
    })
    .map_err(internal)
}

fn text(query: &str, args: &[DatumWithOid]) -> Result<String, ErrorReport> {
    Spi::connect(|c| c.select(query, Some(1), args)?.first().get_one::<String>()).map(|s| s.unwrap_or_default()).map_err(internal)
}

fn internal(e: pgrx::spi::Error) -> ErrorReport {
    crate::api::errors::internal(format!("{WHAT}: internal query failed: {e}"))
}

/// Whether public.crm_email_sends is partitioned, asked of the one SQL helper every caller uses
/// (`daznode_crm.email_sends_partitioned()`, sql/partitioning.sql).
pub fn email_sends_partitioned() -> bool {
    crate::api::spi::flag("SELECT daznode_crm.email_sends_partitioned()", &[])
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    #[pgrx::pg_test]
    fn instants_cross_the_boundary_as_unix_microseconds() {
        let epoch = Spi::get_one::<TimestampWithTimeZone>("SELECT '1970-01-01 00:00:00+00'::timestamptz").unwrap().unwrap();
        assert_eq!(unix_micros(epoch), 0);
        assert_eq!(timestamp(0), epoch);
        let month = Month { year: 2026, month: 12 };
        let literal = Spi::get_one_with_args::<TimestampWithTimeZone>("SELECT $1::text::timestamptz", &[month.start_literal().into()]).unwrap().unwrap();
        assert_eq!(unix_micros(literal), month.start_micros());
        for inf in [TimestampWithTimeZone::negative_infinity(), TimestampWithTimeZone::positive_infinity()] {
            assert_eq!(timestamp(unix_micros(inf)), inf);
        }
    }

    #[pgrx::pg_test]
    fn step_0010_months_are_whole_utc_months_up_to_premake() {
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM daznode_crm.email_sends_partition_months('2026-01-31 23:30:00-05', '2026-03-10 00:00:00+00')
             WHERE range_end = ((range_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'",
        );
        // February (the first instant is 1 February in UTC) to June (March + 3): five months.
        assert_eq!(n, Ok(Some(5)));
    }
}
