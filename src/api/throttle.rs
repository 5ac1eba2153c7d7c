//! Maintenance that yields to the application (`core::throttle`): after each unit of work a job
//! sleeps in `pg_sleep` (wait event PgSleep, cancellable like any statement) for `factor` times
//! as long as the unit took.

use crate::api::errors::{OrReport, Result};
use crate::api::spi::{count, flag, text};
use daznode_crm_core::throttle;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// Is this session a pg_cron job: its background worker, or its libpq connection?
fn in_pg_cron() -> bool {
    flag(
        "SELECT coalesce(backend_type = 'pg_cron' OR application_name = 'pg_cron', false)
         FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid()",
        &[],
    )
}

/// The factor in effect in this session; a bad setting is an error (22023).
fn factor() -> Result<f64> {
    let setting = text("SELECT pg_catalog.current_setting('daznode_crm.maintenance_yield', true)", &[]);
    throttle::effective_factor(setting.as_deref(), in_pg_cron()).or_report()
}

/// How many maintenance runs share the budget now: this one, and every other session running a
/// daznode_crm statement (its query names the schema) as a pg_cron job (its worker, or its
/// connection) or under one of our progress names (`run_in_steps`, a migration), as far as this
/// role may see their queries (pg_stat_activity hides other roles' from a non-superuser).
fn runs_sharing() -> u32 {
    let others = count(
        r"SELECT count(*) FROM pg_catalog.pg_stat_activity
         WHERE pid <> pg_catalog.pg_backend_pid() AND state = 'active'
           AND (backend_type = 'pg_cron' OR application_name = 'pg_cron' OR application_name LIKE 'daznode\_crm %')
           AND query LIKE '%daznode\_crm.%'",
        &[],
    );
    u32::try_from(others).unwrap_or(u32::MAX - 1).saturating_add(1)
}

/// The yield factor maintenance functions apply in this session: `daznode_crm.maintenance_yield`
/// when set (0 to 20), else 3 in a pg_cron job and 0 (full speed) elsewhere. Each pause shares it
/// with the runs going on (`maintenance_runs()`): (1 + factor) × runs − 1.
/// `SET daznode_crm.maintenance_yield = 1; SELECT daznode_crm.maintenance_yield();` gives 1.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn maintenance_yield() -> Result<f64> {
    factor()
}

/// How many maintenance runs share the pacing budget now, this session counted as one: a pause
/// taken now uses the factor (1 + maintenance_yield()) × maintenance_runs() − 1.
/// `SELECT daznode_crm.maintenance_runs();` gives 1 when no pg_cron job of ours is running.
#[pg_extern(volatile, parallel_restricted)]
#[search_path(pg_catalog, pg_temp)]
fn maintenance_runs() -> i32 {
    i32::try_from(runs_sharing()).unwrap_or(i32::MAX)
}

/// Paces one maintenance run: `pause()` after each unit of work.
pub struct Yielder {
    factor: f64,
    since: Instant,
}

impl Yielder {
    /// Reads the factor once, at the start of the run (a bad setting stops the run before it
    /// does anything).
    pub fn new() -> Result<Self> {
        Ok(Yielder { factor: factor()?, since: Instant::now() })
    }

    /// Sleeps `factor` times as long as the work since the last pause took.
    pub fn pause(&mut self) -> Result<()> {
        sleep_after(self.since.elapsed(), self.factor);
        self.since = Instant::now();
        Ok(())
    }
}

/// The one pause of every paced run (`Yielder`, `run_in_steps`): `factor` times `work`, in
/// `pg_sleep`, the factor shared with the maintenance runs going on now (`runs_sharing`, read
/// at each pause: a job that starts or ends changes the next pause). Read-only SPI: through
/// pgrx's read-write Spi calls the pause was seen to give its transaction an id, held through
/// the sleep (tests/integration/maintenance.sh, "xmin").
pub fn sleep_after(work: Duration, factor: f64) {
    if !(factor > 0.0) {
        return;
    }
    let pause = throttle::pause_after(work, throttle::shared_factor(factor, runs_sharing()));
    if !pause.is_zero() {
        text("SELECT pg_catalog.pg_sleep($1)::text", &[pause.as_secs_f64().into()]);
    }
}
