//! Live campaign counts (step 0011, sql/analytics.sql): the SQL that `core::analytics` plans,
//! handed to the step, and the fold that keeps the pending deltas few.

use crate::api::errors::{invalid, report, Result};
use crate::api::security::{as_role, crm_owner};
use crate::api::server::refuse_on_standby;
use daznode_crm_core::analytics;
use daznode_crm_core::catalog::{LiveCounts, PendingDeltas};
use daznode_crm_core::CrmError;
use pgrx::prelude::*;

/// The SQL of one part of the live counts (`tables`, `trigger_body`, `rebase`, `fold`, `live`,
/// `analytics_from_rows`, `analytics_live`), for step 0011 and for a DBA who wants to read it.
/// `SELECT daznode_crm.campaign_counts_sql('live');`
#[pg_extern(immutable, parallel_safe, strict)]
fn campaign_counts_sql(part: &str) -> Result<String> {
    analytics::part(part).ok_or_else(|| invalid(format!("daznode_crm: unknown part {part:?}: one of {}", analytics::PARTS.join(", "))))
}

/// Moves the pending deltas into the per-campaign counts, in one statement run as the CRM owner;
/// returns how many campaigns' counts moved (0 before step 0011). Reads are exact either way:
/// the fold only keeps them fast. A pg_cron job runs it every minute.
/// `SELECT daznode_crm.fold_campaign_counts();`
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn fold_campaign_counts() -> Result<i64> {
    refuse_on_standby("fold_campaign_counts()")?;
    let Some(owner) = counts_owner()? else { return Ok(0) };
    let folded = as_role(owner, || Spi::connect_mut(|c| c.update(&analytics::part("fold").unwrap_or_default(), Some(1), &[])?.first().get_one::<i64>()));
    folded.map(|n| n.unwrap_or(0)).map_err(|e| crate::api::errors::internal(format!("the fold failed: {e}")))
}

/// The owner of the live counts' tables, None before step 0011; refused (42501) when they
/// belong to anyone but the CRM owner.
fn counts_owner() -> Result<Option<pg_sys::Oid>> {
    live_counts().map(|f| owner_of(&f)).transpose()
}

fn owner_of(f: &LiveCounts) -> Result<pg_sys::Oid> {
    if Some(f.owner) != crm_owner().map(|o| i64::from(o.to_u32())) {
        return Err(report(CrmError::ForeignObject(format!(
            "daznode_crm: {} belongs to another role than the CRM owner; not folded",
            analytics::DELTAS_TABLE
        ))));
    }
    Ok(pg_sys::Oid::from(f.owner as u32))
}

/// The live counts' catalog facts: None before step 0011.
pub fn live_counts() -> Option<LiveCounts> {
    crate::api::spi::records::<LiveCounts>(include_str!("../../sql/catalog/live_counts.sql"), &[analytics::TRIGGERS.to_vec().into()]).into_iter().next()
}

/// What waits for the fold, read as the CRM owner: None when the tables (`facts`, as
/// `live_counts()` read them) are another role's.
pub fn pending_deltas(facts: &LiveCounts) -> Option<PendingDeltas> {
    let owner = owner_of(facts).ok()?;
    as_role(owner, || crate::api::spi::records::<PendingDeltas>(include_str!("../../sql/catalog/pending_deltas.sql"), &[])).into_iter().next()
}
