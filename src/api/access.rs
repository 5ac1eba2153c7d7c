//! Access and segments: `is_admin_user()` (who the caller is, and whether admin_roles gives them
//! one of the allowed roles) and `refresh_segment()` (membership by difference, from criteria
//! compiled by `daznode_crm_core::segments`).

use crate::api::caller::{caller_id, caller_role_is, role_of};
use crate::api::errors::{internal, invalid, OrReport, Result};
use crate::api::security::{as_role, crm_owner, table_exists};
use daznode_crm_core::segments::{self, Param};
use daznode_crm_core::CrmError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

use daznode_crm_core::matrix::{ADMIN_ROLES, LEGACY_ADMIN_ROLES};

/// The caller's user id (see `caller_id`), NULL when there is none or it is not a uuid. The
/// owner policies compare with it: `USING (id = (SELECT daznode_crm.current_user_id()))`.
#[pg_extern(stable, parallel_restricted, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn current_user_id() -> Option<pgrx::Uuid> {
    caller_id().map(pgrx::Uuid::from_bytes)
}

/// The columns a user may change in their own profile (`core::schema::PROFILE_OWNER_COLUMNS`);
/// the trigger of step 0008 refuses changes to the others. `SELECT daznode_crm.profile_owner_columns();`
#[pg_extern(immutable, parallel_safe)]
fn profile_owner_columns() -> Vec<&'static str> {
    daznode_crm_core::schema::PROFILE_OWNER_COLUMNS.to_vec()
}

/// Is the caller an admin, with one of `allowed_roles` (any admin role when NULL)? It answers
/// only for the caller: there is no user parameter. RLS policies call it as
/// `USING ((SELECT daznode_crm.is_admin_user('{admin,super_admin}')))`, once per query.
#[pg_extern(stable, parallel_restricted, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn is_admin_user<'a>(allowed_roles: default!(Option<pgrx::Array<'a, &'a str>>, "NULL")) -> bool {
    caller_role_is(|role| match &allowed_roles {
        None => ADMIN_ROLES.contains(&role),
        Some(allowed) => allowed.iter().flatten().any(|a| a == role),
    })
}

/// The legacy `is_admin_user(user_id)`, without its leak: about the caller (NULL or their own
/// id) it answers as the legacy function did; about someone else only when the caller is an
/// admin, and NULL (unknown) otherwise. Step 0008's `public.is_admin_user(user_id uuid)` calls it.
/// `SELECT daznode_crm.is_admin_user_about(NULL);`
#[pg_extern(stable, parallel_restricted, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn is_admin_user_about(user_id: default!(Option<pgrx::Uuid>, "NULL")) -> Option<bool> {
    let legacy = |role: &str| LEGACY_ADMIN_ROLES.contains(&role);
    match user_id.map(|u| *u.as_bytes()) {
        None => Some(caller_role_is(legacy)),
        Some(u) if Some(u) == caller_id() => Some(caller_role_is(legacy)),
        Some(u) => caller_role_is(|role| ADMIN_ROLES.contains(&role)).then(|| role_of(&u).as_deref().is_some_and(legacy)),
    }
}

/// Brings one segment's membership in line with its criteria, by difference: inserts the new
/// members, deletes the gone ones, leaves the rest. Returns (added, removed, members).
/// `SELECT * FROM daznode_crm.refresh_segment('…segment id…');`
#[pg_extern(volatile, strict, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn refresh_segment(segment_id: pgrx::Uuid) -> Result<TableIterator<'static, (name!(added, i64), name!(removed, i64), name!(members, i64))>> {
    crate::api::server::refuse_on_standby("refresh_segment()")?;
    let owner = segment_tables_owner().map_err(invalid)?;
    let criteria = segment_criteria(owner, segment_id)?.ok_or_else(|| invalid(format!("no segment with id {segment_id}")))?.or_report()?;
    let compiled = segments::compile(&criteria, 2).or_report()?;
    if let Some(t) = compiled.tables.iter().find(|t| !table_exists(t)) {
        return Err(invalid(format!("segment {segment_id} reads public.{t}, which is not a table of the CRM owner")));
    }
    Ok(TableIterator::new(vec![as_role(owner, || refresh_by_difference(segment_id, &compiled))?]))
}

/// The owner of the segment tables and profiles, which the refresh reads and writes as them
/// (`security::as_role`); an error when one is missing or is not a table of the CRM owner.
fn segment_tables_owner() -> std::result::Result<pg_sys::Oid, String> {
    for t in ["crm_customer_segments", "crm_customer_segment_members", "profiles"] {
        if !table_exists(t) {
            return Err(format!("public.{t} is missing or is not a table of the CRM owner: segments cannot be refreshed"));
        }
    }
    crm_owner().ok_or_else(|| "no CRM table".to_string())
}

/// A segment's criteria, read as text and checked for size and depth before conversion
/// (`segments::parse`); None when there is no such segment.
fn segment_criteria(owner: pg_sys::Oid, segment_id: pgrx::Uuid) -> Result<Option<std::result::Result<serde_json::Value, CrmError>>> {
    let text = segment_text(owner, segment_id, "SELECT coalesce(criteria::text, 'null') FROM public.crm_customer_segments WHERE id = $1")?;
    Ok(text.map(|text| segments::parse(&text)))
}

/// The text `sql` reads from segment `segment_id` ($1), as the tables' owner; None when no row.
fn segment_text(owner: pg_sys::Oid, segment_id: pgrx::Uuid, sql: &str) -> Result<Option<String>> {
    as_role(owner, || {
        Spi::connect(|client| {
            let t = client.select(sql, Some(1), &[segment_id.into()])?;
            if t.is_empty() {
                return Ok(None);
            }
            t.first().get_one::<String>()
        })
        .map_err(|e| internal(format!("reading segment {segment_id} failed: {e}")))
    })
}

/// (added, removed, members) after bringing the membership in line with `compiled`.
fn refresh_by_difference(segment_id: pgrx::Uuid, compiled: &segments::Compiled) -> Result<(i64, i64, i64)> {
    let sql = format!(
        "WITH target AS (SELECT p.id FROM public.profiles p WHERE {pred}),
              added AS (INSERT INTO public.crm_customer_segment_members (segment_id, customer_id)
                        SELECT $1, t.id FROM target t
                        WHERE NOT EXISTS (SELECT 1 FROM public.crm_customer_segment_members m WHERE m.segment_id = $1 AND m.customer_id = t.id)
                        ON CONFLICT (segment_id, customer_id) DO NOTHING RETURNING 1),
              removed AS (DELETE FROM public.crm_customer_segment_members m
                          WHERE m.segment_id = $1 AND (m.customer_id IS NULL OR NOT EXISTS (SELECT 1 FROM target t WHERE t.id = m.customer_id))
                          RETURNING 1)
         SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM removed), (SELECT count(*) FROM target)",
        pred = compiled.predicate
    );
    let mut args: Vec<DatumWithOid> = vec![segment_id.into()];
    for p in &compiled.params {
        args.push(match p {
            Param::Bool(b) => (*b).into(),
            Param::Int(i) => (*i).into(),
            Param::TextArray(v) => v.clone().into(),
        });
    }
    Spi::connect_mut(|client| {
        let t = client.update(&sql, Some(1), &args)?.first();
        Ok::<_, pgrx::spi::Error>((t.get::<i64>(1)?.unwrap_or(0), t.get::<i64>(2)?.unwrap_or(0), t.get::<i64>(3)?.unwrap_or(0)))
    })
    .map_err(|e| internal(format!("refresh of segment {segment_id} failed: {e}")))
}

/// Refreshes every segment with auto_update, by difference; what the refresh job runs. A segment
/// whose criteria do not compile is skipped and reported in `problem`, so one bad segment never
/// stops the others.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn refresh_auto_update_segments() -> Result<
    TableIterator<
        'static,
        (name!(segment_id, pgrx::Uuid), name!(name, String), name!(added, i64), name!(removed, i64), name!(members, i64), name!(problem, Option<String>)),
    >,
> {
    crate::api::server::refuse_on_standby("refresh_auto_update_segments()")?;
    let mut pace = crate::api::throttle::Yielder::new()?;
    let Ok(owner) = segment_tables_owner() else {
        return Ok(TableIterator::new(Vec::new()));
    };
    let mut out = Vec::new();
    for (id, name) in auto_update_segments(owner)? {
        pace.pause()?;
        out.extend(refresh_auto_segment(owner, id, name)?);
    }
    Ok(TableIterator::new(out))
}

/// The units of `run_in_steps('refresh_auto_update_segments')`: the ids of the auto_update
/// segments, by name (none when the segment tables are not the CRM owner's).
pub fn step_units() -> Result<Vec<String>> {
    let Ok(owner) = segment_tables_owner() else {
        return Ok(Vec::new());
    };
    Ok(auto_update_segments(owner)?.into_iter().map(|(id, _)| id.to_string()).collect())
}

/// One unit of `run_in_steps`: the segment `id`, refreshed in the caller's transaction if it
/// still has auto_update, as the row of `refresh_auto_update_segments()` in jsonb (none when it
/// is gone or no longer auto_update).
pub fn run_step(id: &str) -> Result<Vec<serde_json::Value>> {
    crate::api::server::refuse_on_standby("refresh_auto_update_segments()")?;
    let id = daznode_crm_core::caller::parse_uuid(id)
        .map(pgrx::Uuid::from_bytes)
        .ok_or_else(|| invalid(format!("not a segment id: {:?}", id.chars().take(40).collect::<String>())))?;
    let Ok(owner) = segment_tables_owner() else {
        return Ok(Vec::new());
    };
    let name = segment_text(owner, id, "SELECT name::text FROM public.crm_customer_segments WHERE id = $1 AND auto_update")?;
    let Some(name) = name else {
        return Ok(Vec::new());
    };
    Ok(refresh_auto_segment(owner, id, name)?
        .into_iter()
        .map(|(id, name, added, removed, members, problem)| {
            serde_json::json!({ "segment_id": id.to_string(), "name": name, "added": added, "removed": removed, "members": members, "problem": problem })
        })
        .collect())
}

/// The segments with `auto_update`, by name, read as their owner.
fn auto_update_segments(owner: pg_sys::Oid) -> Result<Vec<(pgrx::Uuid, String)>> {
    as_role(owner, || {
        Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select("SELECT id, name::text FROM public.crm_customer_segments WHERE auto_update ORDER BY name, id", None, &[])? {
                if let (Some(id), Some(name)) = (row.get::<pgrx::Uuid>(1)?, row.get::<String>(2)?) {
                    out.push((id, name));
                }
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
        .map_err(|e| internal(format!("reading the auto_update segments failed: {e}")))
    })
}

/// One segment refreshed by difference; its criteria that do not compile, or read a table that
/// is not the CRM owner's, are reported in `problem` and change nothing. None when the segment
/// is gone.
fn refresh_auto_segment(owner: pg_sys::Oid, id: pgrx::Uuid, name: String) -> Result<Option<(pgrx::Uuid, String, i64, i64, i64, Option<String>)>> {
    let Some(criteria) = segment_criteria(owner, id)? else {
        return Ok(None);
    };
    let compiled = criteria.and_then(|c| segments::compile(&c, 2)).and_then(|compiled| match compiled.tables.iter().find(|t| !table_exists(t)) {
        Some(t) => Err(CrmError::InvalidArgument(format!("reads public.{t}, which is not a table of the CRM owner"))),
        None => Ok(compiled),
    });
    Ok(Some(match compiled {
        Ok(compiled) => {
            let (added, removed, members) = as_role(owner, || refresh_by_difference(id, &compiled))?;
            if added + removed > 0 {
                notice!("daznode_crm: segment {name}: +{added} -{removed} ({members} members)");
            }
            (id, name, added, removed, members, None)
        }
        Err(e) => {
            warning!("daznode_crm: segment {name} skipped: {e}");
            (id, name, 0, 0, 0, Some(e.to_string()))
        }
    }))
}
