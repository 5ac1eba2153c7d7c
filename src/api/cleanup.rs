//! `cleanup_orphaned_records(dry_run)`: the guide's step 2. Applies `ORPHAN_RULES` (shared with
//! the diagnostic) with row locks only, under a short lock_timeout, in the caller's transaction:
//! all of it or none of it.

use crate::api::errors::{internal, invalid, Result};
use crate::api::security::{as_role, column_exists, crm_owner};
use crate::api::server::refuse_on_standby;
use crate::api::spi::count;
use daznode_crm_core::orphans::{rule_by_key, Inapplicable, OrphanRule, RuleRun, ORPHAN_RULES};
use pgrx::prelude::*;

/// One result row: table, column, action, rows.
type Row = (String, String, String, i64);

/// `SELECT * FROM daznode_crm.cleanup_orphaned_records(dry_run => true);` reports, changes nothing.
/// `SELECT daznode_crm.cleanup_orphaned_records();` applies the rules (see the README).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn cleanup_orphaned_records(
    dry_run: default!(bool, false),
) -> Result<TableIterator<'static, (name!(table_name, String), name!(column_name, String), name!(action, String), name!(rows, i64))>> {
    if !dry_run {
        refuse_on_standby("cleanup_orphaned_records()")?;
    }
    Ok(TableIterator::new(run_rules(dry_run)?))
}

/// Every rule, paced, one run at a time (a second waits for the first), waiting at most
/// lock_timeout for row and table locks. Read-only SPI until a rule deletes: a dry run works on
/// a hot standby, which has no transaction id to give.
fn run_rules(dry_run: bool) -> Result<Vec<Row>> {
    let mut pace = crate::api::throttle::Yielder::new()?;
    let owner = start_run();
    ORPHAN_RULES
        .iter()
        .map(|rule| {
            pace.pause()?;
            apply(rule, owner, dry_run)
        })
        .collect()
}

/// What each transaction of a run does first: waits for any other run, sets the lock timeout.
/// Returns the CRM owner.
fn start_run() -> Option<pg_sys::Oid> {
    crate::api::spi::text("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('daznode_crm.cleanup_orphaned_records'))::text", &[]);
    crate::api::spi::text("SELECT pg_catalog.set_config('lock_timeout', daznode_crm.migration_lock_timeout(), true)", &[]);
    crm_owner()
}

/// The units of `run_in_steps('cleanup_orphaned_records')`: the rules' keys, in order.
pub fn step_units() -> Vec<String> {
    ORPHAN_RULES.iter().map(|r| r.key()).collect()
}

/// One unit of `run_in_steps`: the rule `key`, applied in the caller's transaction, as one row of
/// `cleanup_orphaned_records()` in jsonb.
pub fn run_step(key: &str) -> Result<Vec<serde_json::Value>> {
    refuse_on_standby("cleanup_orphaned_records()")?;
    let rule = rule_by_key(key).ok_or_else(|| invalid(format!("no orphan rule {:?}", key.chars().take(80).collect::<String>())))?;
    let (table_name, column_name, action, rows) = apply(rule, start_run(), false)?;
    Ok(vec![serde_json::json!({ "table_name": table_name, "column_name": column_name, "action": action, "rows": rows })])
}

/// One rule, as `OrphanRule::run` says. Its statement runs as the tables' owner
/// (`security::as_role`): their triggers run with the rights they were written for, never ours.
fn apply(rule: &OrphanRule, owner: Option<pg_sys::Oid>, dry_run: bool) -> Result<Row> {
    let table = format!("public.{}", rule.child_table);
    let skip = |why: String| (table.clone(), rule.child_column.to_string(), format!("skipped: {why}"), 0);
    let Some(owner) = owner else {
        return Ok(skip("column does not exist".to_string()));
    };
    let parents = match rule.applicable(column_exists) {
        Ok(p) => p,
        Err(Inapplicable::ChildColumnMissing) => return Ok(skip("column does not exist".to_string())),
        Err(Inapplicable::ParentMissing(why)) => {
            warning!("daznode_crm: {table}.{}: rule skipped: {why}", rule.child_column);
            return Ok(skip(why));
        }
    };
    let (action, n) = as_role(owner, || match rule.run(dry_run, &parents) {
        RuleRun::Apply { sql, label } => {
            let n = Spi::connect_mut(|client| client.update(&sql, None, &[]).map(|t| t.len() as i64))
                .map_err(|e| internal(format!("cleanup of {table}.{} failed: {e}", rule.child_column)))?;
            Ok((label.to_string(), n))
        }
        RuleRun::Count { sql, label } => Ok((label, count(&sql, &[]))),
    })?;
    if n > 0 {
        notice!("daznode_crm: {table}.{}: {action}: {n} row(s)", rule.child_column);
    }
    Ok((table, rule.child_column.to_string(), action, n))
}
