//! `refresh_crm_materialized_views(concurrently)` and the registry of the views it refreshes,
//! and the pg_cron scheduling of the guide's jobs.

use crate::api::errors::{internal, invalid, Result};
use crate::api::spi::{count, flag, records, text};
use daznode_crm_core::catalog::{Named, RelationKind};
use daznode_crm_core::jobs::{Job, JOBS};
use pgrx::prelude::*;

/// Refreshes every registered CRM materialized view whose base tables changed since its last
/// refresh: CONCURRENTLY when it can (populated, with a unique index), a plain REFRESH
/// otherwise, saying why. Logs each run. A second call while one runs returns at once with
/// `skipped: already running`. `SELECT * FROM daznode_crm.refresh_crm_materialized_views();`
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn refresh_crm_materialized_views(
    concurrently: default!(bool, true),
) -> Result<
    TableIterator<
        'static,
        (name!(view_name, String), name!(mode, String), name!(duration_ms, f64), name!(rows, Option<i64>), name!(skipped_reason, Option<String>)),
    >,
> {
    crate::api::server::refuse_on_standby("refresh_crm_materialized_views()")?;
    Ok(TableIterator::new(refresh_all(concurrently)?))
}

/// (view, mode, ms, rows, skipped_reason): one row per registered view.
type RefreshRow = (String, String, f64, Option<i64>, Option<String>);

/// Every registered view, one at a time and paced, unless another run holds the lock; then the
/// log's rows older than 30 days go.
fn refresh_all(concurrently: bool) -> Result<Vec<RefreshRow>> {
    let mut pace = crate::api::throttle::Yielder::new()?;
    let views: Vec<String> =
        records::<Named>("SELECT view_name AS name FROM daznode_crm.materialized_view_registry ORDER BY view_name", &[]).into_iter().map(|v| v.name).collect();
    if !flag("SELECT pg_try_advisory_xact_lock(hashtext('daznode_crm.refresh_crm_materialized_views'))", &[]) {
        return Ok(views.into_iter().map(|v| (v, "skipped".into(), 0.0, None, Some("already running".into()))).collect());
    }
    let out = views
        .into_iter()
        .map(|view| {
            pace.pause()?;
            refresh_and_log(view, concurrently)
        })
        .collect::<Result<Vec<_>>>()?;
    Spi::run("DELETE FROM daznode_crm.materialized_view_refresh_log WHERE started_at < now() - interval '30 days'")
        .map_err(|e| internal(format!("cannot prune the refresh log: {e}")))?;
    Ok(out)
}

/// One view refreshed (or skipped) and its run logged: (view, mode, ms, rows, skipped_reason).
fn refresh_and_log(view: String, concurrently: bool) -> Result<RefreshRow> {
    let started = std::time::Instant::now();
    let (mode, n, reason, signature) = refresh_one(&view, concurrently)?;
    let ms = (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    Spi::run_with_args(
        "INSERT INTO daznode_crm.materialized_view_refresh_log (view_name, started_at, duration_ms, rows, mode, skipped_reason, signature)
         VALUES ($1, clock_timestamp() - make_interval(secs => $2 / 1000.0), $2, $3, $4, $5, $6)",
        &[view.as_str().into(), ms.into(), n.into(), mode.as_str().into(), reason.clone().into(), signature.into()],
    )
    .map_err(|e| internal(format!("cannot log the refresh of {view}: {e}")))?;
    Ok((view, mode, ms, n, reason))
}

/// (mode, rows, skipped_reason, signature of the base tables' counters)
fn refresh_one(view: &str, concurrently: bool) -> Result<(String, Option<i64>, Option<String>, Option<String>)> {
    let kind = text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", &[view.into()]);
    match kind.as_deref() {
        None => return Ok(("skipped".into(), None, Some("does not exist (yet)".into()), None)),
        Some("m") => {}
        Some(_) => return Ok(("skipped".into(), None, Some("not a materialized view".into()), None)),
    }
    // Insert, update, delete and live-row counters of every table the view reads (TRUNCATE
    // resets the live count), and when statistics were last reset. The tables are found through
    // the views it reads, and a partitioned table counts by its partitions (it has no counters
    // of its own: without them a refresh after the partitioning would be skipped for ever).
    // No table found (a view that reads only through functions): no signature, always refreshed.
    let signature = text(include_str!("../../sql/catalog/matview_signature.sql"), &[view.into()]);
    let populated = flag("SELECT relispopulated FROM pg_class WHERE oid = to_regclass($1)", &[view.into()]);
    let last = text(
        "SELECT signature FROM daznode_crm.materialized_view_refresh_log
         WHERE view_name = $1 AND mode IN ('concurrently', 'full') ORDER BY id DESC LIMIT 1",
        &[view.into()],
    );
    if populated && last.is_some() && last == signature {
        return Ok(("skipped".into(), None, Some("base tables unchanged since the last refresh".into()), signature));
    }
    let has_unique = flag(
        "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisunique AND indisvalid
                        AND indpred IS NULL AND indexprs IS NULL)",
        &[view.into()],
    );
    let (mode, reason) = match (concurrently, populated, has_unique) {
        (true, true, true) => ("concurrently", None),
        (false, _, _) => ("full", Some("concurrently => false")),
        (true, false, _) => ("full", Some("not populated yet: the first refresh cannot be concurrent")),
        (true, true, false) => ("full", Some("no unique index on plain columns: REFRESH CONCURRENTLY needs one")),
    };
    let quoted = text("SELECT to_regclass($1)::text", &[view.into()]).unwrap_or_default();
    Spi::run(&format!("REFRESH MATERIALIZED VIEW {}{quoted}", if mode == "concurrently" { "CONCURRENTLY " } else { "" }))
        .map_err(|e| internal(format!("refresh of {view} failed: {e}")))?;
    let n = count(&format!("SELECT count(*) FROM {quoted}"), &[]);
    Ok((mode.to_string(), Some(n), reason.map(str::to_string), signature))
}

/// Adds a materialized view to those refresh_crm_materialized_views() refreshes; returns its
/// name. `SELECT daznode_crm.register_crm_materialized_view('public.my_mv');`
#[pg_extern(sql = r#"
CREATE FUNCTION @extschema@.register_crm_materialized_view(view regclass) RETURNS text
VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn register_crm_materialized_view(view: pg_sys::Oid) -> Result<String> {
    crate::api::server::refuse_on_standby("register_crm_materialized_view()")?;
    let name = checked_matview(view)?;
    Spi::run_with_args(
        "INSERT INTO daznode_crm.materialized_view_registry (view_name) VALUES ($1) ON CONFLICT (view_name) DO NOTHING",
        &[name.as_str().into()],
    )
    .map_err(|e| internal(format!("cannot register {name}: {e}")))?;
    Ok(name)
}

/// Removes a registered view (a built-in one too: it is re-added by a reinstall only).
#[pg_extern(sql = r#"
CREATE FUNCTION @extschema@.unregister_crm_materialized_view(view regclass) RETURNS boolean
VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn unregister_crm_materialized_view(view: pg_sys::Oid) -> Result<bool> {
    crate::api::server::refuse_on_standby("unregister_crm_materialized_view()")?;
    let name = text("SELECT $1::regclass::text", &[view.into()]).unwrap_or_default();
    let qualified = text(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[view.into()],
    )
    .unwrap_or(name);
    Ok(count(
        "WITH d AS (DELETE FROM daznode_crm.materialized_view_registry WHERE view_name = $1 RETURNING 1) SELECT count(*) FROM d",
        &[qualified.as_str().into()],
    ) > 0)
}

fn checked_matview(view: pg_sys::Oid) -> Result<String> {
    let rel: Vec<RelationKind> = records(
        "SELECT c.relkind::text AS kind, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[view.into()],
    );
    match rel.into_iter().next() {
        Some(RelationKind { kind, name }) if kind == "m" => Ok(name),
        Some(RelationKind { name, .. }) => Err(invalid(format!("{name} is not a materialized view: only materialized views can be registered for refresh"))),
        _ => Err(invalid("no such relation")),
    }
}

/// Creates or updates the guide's pg_cron jobs (see `daznode_crm_core::jobs`). Without pg_cron
/// it changes nothing and says so. `SELECT * FROM daznode_crm.schedule_crm_maintenance();`
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn schedule_crm_maintenance(
) -> Result<TableIterator<'static, (name!(job_name, String), name!(schedule, String), name!(command, String), name!(action, String))>> {
    crate::api::server::refuse_on_standby("schedule_crm_maintenance()")?;
    Ok(TableIterator::new(schedule_all()))
}

/// (job_name, schedule, command, action): one row per job, or one saying pg_cron is missing.
fn schedule_all() -> Vec<(String, String, String, String)> {
    if !pg_cron_installed() {
        let why =
            "skipped: pg_cron is not installed in this database (shared_preload_libraries = 'pg_cron', then CREATE EXTENSION pg_cron); nothing was changed";
        return vec![(String::new(), String::new(), String::new(), why.to_string())];
    }
    let partitioned = crate::api::retention::email_sends_partitioned();
    JOBS.iter()
        .map(|job| {
            let available = flag("SELECT to_regprocedure($1) IS NOT NULL", &[job.requires.into()]);
            let action = job.verdict(available, partitioned).map_or_else(|why| format!("skipped: {why}"), |()| schedule(job));
            (job.name.to_string(), job.schedule.to_string(), job.command.to_string(), action)
        })
        .collect()
}

/// Creates or updates one job; "scheduled" or "updated". The jobs run as the CRM owner, whoever
/// schedules them: the maintenance they run changes the owner's tables with the owner's rights
/// (README "Security"). A superuser schedules them for the owner; anyone else, for themselves.
fn schedule(job: &Job) -> String {
    let existed = flag("SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1)", &[job.name.into()]);
    match job_user() {
        Some(user) => {
            count("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1 AND username <> $2", &[job.name.into(), user.as_str().into()]);
            count(
                "SELECT cron.schedule_in_database($1, $2, $3, current_database(), $4)",
                &[job.name.into(), job.schedule.into(), job.command.into(), user.as_str().into()],
            );
        }
        None => {
            count("SELECT cron.schedule($1, $2, $3)", &[job.name.into(), job.schedule.into(), job.command.into()]);
        }
    }
    if existed { "updated" } else { "scheduled" }.to_string()
}

/// Removes the guide's pg_cron jobs, if any.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn unschedule_crm_maintenance() -> Result<TableIterator<'static, (name!(job_name, String), name!(action, String))>> {
    crate::api::server::refuse_on_standby("unschedule_crm_maintenance()")?;
    if !pg_cron_installed() {
        return Ok(TableIterator::new(vec![(String::new(), "skipped: pg_cron is not installed in this database".to_string())]));
    }
    let out: Vec<_> = JOBS
        .iter()
        .map(|job| {
            let existed = flag("SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1)", &[job.name.into()]);
            if existed {
                flag("SELECT cron.unschedule($1)", &[job.name.into()]);
            }
            (job.name.to_string(), if existed { "unscheduled" } else { "not scheduled" }.to_string())
        })
        .collect();
    Ok(TableIterator::new(out))
}

/// The CRM owner's name when a superuser schedules jobs for it; None to schedule as the caller.
fn job_user() -> Option<String> {
    crate::api::spi::text(
        "SELECT r.rolname::text FROM pg_roles r
         WHERE r.oid = daznode_crm.crm_owner() AND r.rolname <> current_user
           AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        &[],
    )
}

fn pg_cron_installed() -> bool {
    flag("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')", &[])
}
