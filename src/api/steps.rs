//! The units of `CALL daznode_crm.run_in_steps(job)` (the procedure is in sql/maintenance.sql):
//! a long maintenance function run one unit of work per transaction, for pg_cron
//! (`core::jobs::STEPPED_JOBS` says why). The procedure commits between the calls below; each
//! unit is the same work as in the one-statement function, and leaves its rows in
//! `daznode_crm.run_in_steps_log`.

use crate::api::errors::{internal, invalid, OrReport, Result};
use crate::api::server::refuse_on_standby;
use crate::api::spi::{first, flag};
use crate::api::{access, cleanup, diagnostic};
use daznode_crm_core::jobs::{self, SteppedJob, KEEP_RUNS};
use daznode_crm_core::throttle;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use std::time::Duration;

fn job(name: &str) -> Result<&'static SteppedJob> {
    jobs::stepped_job(name).or_report()
}

/// The row that marks the start of a run in the log: the units of a run are logged only under
/// a start that `run_in_steps_begin` wrote.
const START: &str = "(start)";

/// Starts a run of `job`: refuses on a hot standby (25006), keeps the job's last KEEP_RUNS - 1
/// runs in the log, logs the start of this one, and returns the units to run, the job's name in
/// `operation_progress` and the run's start, which names it in the log.
/// `SELECT * FROM daznode_crm.run_in_steps_begin('cleanup_orphaned_records');`
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn run_in_steps_begin(
    job_name: Option<&str>,
) -> Result<TableIterator<'static, (name!(units, Vec<String>), name!(progress, String), name!(run_started, TimestampWithTimeZone))>> {
    let job = job(job_name.unwrap_or("NULL"))?;
    refuse_on_standby(&format!("run_in_steps('{}')", job.name))?;
    let units = match job.name {
        "cleanup_orphaned_records" => cleanup::step_units(),
        "refresh_auto_update_segments" => access::step_units()?,
        _ => diagnostic::step_units(),
    };
    let started = Spi::connect_mut(|client| {
        client.update(
            "DELETE FROM daznode_crm.run_in_steps_log WHERE job = $1 AND run_started <
                 (SELECT min(run_started) FROM (SELECT run_started FROM daznode_crm.run_in_steps_log
                                                 WHERE job = $1 AND unit = $3 ORDER BY run_started DESC LIMIT $2) kept)",
            None,
            &[job.name.into(), (KEEP_RUNS - 1).into(), START.into()],
        )?;
        client
            .update(
                "INSERT INTO daznode_crm.run_in_steps_log (job, run_started, unit, result)
                 VALUES ($1, pg_catalog.clock_timestamp(), $2, pg_catalog.jsonb_build_object('units', $3::int)) RETURNING run_started",
                Some(1),
                &[job.name.into(), START.into(), (units.len() as i32).into()],
            )?
            .first()
            .get_one::<TimestampWithTimeZone>()
    })
    .map_err(|e| internal(format!("starting a run of {} in the log failed: {e}", job.name)))?
    .ok_or_else(|| internal("no start logged"))?;
    Ok(TableIterator::once((units, job.progress.to_string(), started)))
}

/// Runs one unit of `job` in the caller's transaction, for the run that started at `run_started`
/// (22023 when `run_in_steps_begin` started none then), and logs what it returned (one log row
/// per result row, or one with a NULL result when it returned none); returns the rows logged.
/// `SELECT daznode_crm.run_in_steps_unit('run_pre_migration_diagnostic', 'sizes', run_started)
///  FROM daznode_crm.run_in_steps_begin('run_pre_migration_diagnostic');`
#[pg_extern(volatile, strict, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn run_in_steps_unit(job_name: &str, unit: &str, run_started: TimestampWithTimeZone) -> Result<i64> {
    let job = job(job_name)?;
    if !flag(
        "SELECT EXISTS (SELECT 1 FROM daznode_crm.run_in_steps_log WHERE job = $1 AND run_started = $2 AND unit = $3)",
        &[job.name.into(), run_started.into(), START.into()],
    ) {
        return Err(invalid(format!("no run of {} started at that time: run_in_steps_begin() starts one", job.name)));
    }
    let rows = match job.name {
        "cleanup_orphaned_records" => cleanup::run_step(unit)?,
        "refresh_auto_update_segments" => access::run_step(unit)?,
        _ => diagnostic::run_step(unit)?,
    };
    Spi::connect_mut(|client| {
        client
            .update(
                "INSERT INTO daznode_crm.run_in_steps_log (job, run_started, unit, result)
                 SELECT $1, $2, $3, r FROM pg_catalog.jsonb_array_elements($4) AS r
                 UNION ALL SELECT $1, $2, $3, NULL WHERE pg_catalog.jsonb_array_length($4) = 0",
                None,
                &[job.name.into(), run_started.into(), unit.into(), pgrx::JsonB(serde_json::Value::Array(rows)).into()],
            )
            .map(|t| t.len() as i64)
    })
    .map_err(|e| internal(format!("logging {} unit {unit} failed: {e}", job.name)))
}

/// The pause after a unit that started at `unit_started`: `factor` times as long as it took (as
/// `maintenance_yield()` says), called after the unit's COMMIT.
/// `SELECT daznode_crm.run_in_steps_pause(now() - interval '10 ms', 1);`
#[pg_extern(volatile, strict)]
#[search_path(pg_catalog, pg_temp)]
fn run_in_steps_pause(unit_started: TimestampWithTimeZone, factor: f64) -> Result<()> {
    if !(0.0..=throttle::MAX_FACTOR).contains(&factor) {
        return Err(invalid(format!("the pause factor must be from 0 to {}, not {factor}", throttle::MAX_FACTOR)));
    }
    let elapsed = first::<f64>("SELECT pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - $1)", &[unit_started.into()]).unwrap_or(0.0);
    crate::api::throttle::sleep_after(Duration::try_from_secs_f64(elapsed.max(0.0)).unwrap_or(throttle::MAX_PAUSE), factor);
    Ok(())
}
