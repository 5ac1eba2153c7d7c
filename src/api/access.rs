//! Access and segments: `is_admin_user()` (who the caller is, and whether admin_roles gives them
//! one of the allowed roles) and `refresh_segment()` (membership by difference, from criteria
//! compiled by `daznode_crm_core::segments`).

use crate::api::errors::raise;
use crate::api::spi::{first, flag, text};
use daznode_crm_core::segments::{self, Param};
use daznode_crm_core::CrmError;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use std::cell::RefCell;

/// All admin roles, in decreasing power.
const ADMIN_ROLES: &[&str] = &["super_admin", "admin", "moderator", "support"];

/// What one transaction learned about its caller. Policies call is_admin_user() and
/// current_user_id() in every query; after the first call of a transaction they cost two
/// setting reads and a comparison, no SPI.
struct Caller {
    lxid: u32,
    /// The JWT settings the identity was derived from: a SET LOCAL of another JWT mid-transaction
    /// is a new caller.
    claims: Option<String>,
    claim_sub: Option<String>,
    id: Option<String>,
    admin_roles_exists: bool,
    /// None until looked up; Some(None) when the caller has no admin role.
    role: Option<Option<String>>,
}

thread_local! {
    static CALLER: RefCell<Option<Caller>> = const { RefCell::new(None) };
}

fn local_transaction_id() -> u32 {
    // SAFETY: MyProc is set for every backend that runs SQL.
    unsafe {
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16"))]
        {
            (*pg_sys::MyProc).lxid
        }
        #[cfg(feature = "pg17")]
        {
            (*pg_sys::MyProc).vxid.lxid
        }
    }
}

/// A setting's value, or None when unset or empty (custom settings such as request.jwt.claims
/// included), read without SPI.
fn setting(name: &str) -> Option<String> {
    let name = std::ffi::CString::new(name).expect("no NUL in setting names");
    // SAFETY: GetConfigOption returns NULL or a NUL-terminated string owned by the GUC machinery.
    let value = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    if value.is_null() {
        return None;
    }
    let value = unsafe { std::ffi::CStr::from_ptr(value) }
        .to_string_lossy()
        .into_owned();
    (!value.is_empty()).then_some(value)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

fn parse_uuid(s: &str) -> Option<pgrx::Uuid> {
    if !is_uuid(s) {
        return None;
    }
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    let mut bytes = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        bytes[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(pgrx::Uuid::from_bytes(bytes))
}

const ROLE_SQL: &str = "SELECT role::text FROM public.admin_roles WHERE user_id = $1::uuid";

thread_local! {
    /// ROLE_SQL, prepared on first use and kept for the session (SPI_keepplan): the plan cache
    /// re-plans it after DDL on admin_roles, like any prepared statement.
    static ROLE_PLAN: RefCell<Option<OwnedPreparedStatement>> = const { RefCell::new(None) };
}

/// The admin role of user `id` (a uuid in text form), None when it has none.
fn admin_role_of(id: &str) -> Option<String> {
    Spi::connect(|client| {
        ROLE_PLAN.with(|cell| {
            let mut plan = cell.borrow_mut();
            if plan.is_none() {
                *plan = Some(client.prepare(ROLE_SQL, &[PgOid::BuiltIn(PgBuiltInOids::TEXTOID)])?.keep());
            }
            let table = client.select(plan.as_ref().expect("prepared above"), Some(1), &[id.into()])?;
            if table.is_empty() {
                return Ok(None);
            }
            table.first().get::<String>(1)
        })
    })
    .unwrap_or_else(|e: pgrx::spi::Error| error!("daznode_crm: internal query failed: {e}: {ROLE_SQL}"))
}

/// The two catalog facts the caller's resolution needs, read from the system caches (no SQL):
/// whether a trusted `auth.uid()` exists (a zero-argument function `uid` in schema `auth`, both
/// owned by a superuser, so that no other role can plant one), and whether `public.admin_roles`
/// exists. Returns (trusted auth.uid(), admin_roles exists).
fn catalog_facts() -> (bool, bool) {
    // SAFETY: plain catalog lookups in a transaction (we are inside a SQL function call);
    // every syscache tuple found is released before returning, names are NUL-terminated.
    unsafe {
        let owned_by_superuser = |cache: pg_sys::SysCacheIdentifier::Type, tuple: pg_sys::HeapTuple| -> bool {
            let owner = if cache == pg_sys::SysCacheIdentifier::NAMESPACEOID {
                (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_namespace>(tuple)).nspowner
            } else {
                (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_proc>(tuple)).proowner
            };
            pg_sys::superuser_arg(owner)
        };
        let auth = pg_sys::get_namespace_oid(c"auth".as_ptr(), true);
        let mut trusted = false;
        if auth != pg_sys::InvalidOid {
            let nsp = pg_sys::SearchSysCache1(
                pg_sys::SysCacheIdentifier::NAMESPACEOID as i32,
                pg_sys::Datum::from(auth),
            );
            if !nsp.is_null() {
                let nsp_trusted = owned_by_superuser(pg_sys::SysCacheIdentifier::NAMESPACEOID, nsp);
                pg_sys::ReleaseSysCache(nsp);
                if nsp_trusted {
                    let no_args = pg_sys::buildoidvector(std::ptr::null(), 0);
                    let proc = pg_sys::SearchSysCache3(
                        pg_sys::SysCacheIdentifier::PROCNAMEARGSNSP as i32,
                        pg_sys::Datum::from(c"uid".as_ptr()),
                        pg_sys::Datum::from(no_args),
                        pg_sys::Datum::from(auth),
                    );
                    if !proc.is_null() {
                        trusted = owned_by_superuser(pg_sys::SysCacheIdentifier::PROCOID, proc);
                        pg_sys::ReleaseSysCache(proc);
                    }
                    pg_sys::pfree(no_args.cast());
                }
            }
        }
        let public = pg_sys::get_namespace_oid(c"public".as_ptr(), true);
        let admin_roles =
            public != pg_sys::InvalidOid && pg_sys::get_relname_relid(c"admin_roles".as_ptr(), public) != pg_sys::InvalidOid;
        (trusted, admin_roles)
    }
}

/// The caller's user id: `auth.uid()` where a trusted Supabase `auth` schema provides it (owned
/// by a superuser, so no other role can plant one), otherwise the JWT claim PostgREST sets,
/// `request.jwt.claims ->> 'sub'` or `request.jwt.claim.sub`.
fn resolve_caller_id(claims: &Option<String>, claim_sub: &Option<String>, trusted_auth_uid: bool) -> Option<String> {
    if trusted_auth_uid {
        return text("SELECT auth.uid()::text", &[]);
    }
    claims
        .as_deref()
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .and_then(|v| v.get("sub").and_then(|s| s.as_str()).map(str::to_string))
        .or_else(|| claim_sub.clone())
}

fn with_caller<R>(f: impl FnOnce(&mut Caller) -> R) -> R {
    let lxid = local_transaction_id();
    let claims = setting("request.jwt.claims");
    let claim_sub = setting("request.jwt.claim.sub");
    let fresh = CALLER.with(
        |c| !matches!(c.borrow().as_ref(), Some(k) if k.lxid == lxid && k.claims == claims && k.claim_sub == claim_sub),
    );
    if fresh {
        let (trusted_auth_uid, admin_roles_exists) = catalog_facts();
        let id = resolve_caller_id(&claims, &claim_sub, trusted_auth_uid);
        CALLER.with(|c| {
            *c.borrow_mut() = Some(Caller {
                lxid,
                claims,
                claim_sub,
                id,
                admin_roles_exists,
                role: None,
            })
        });
    }
    CALLER.with(|c| f(c.borrow_mut().as_mut().expect("set above")))
}

fn caller_role() -> Option<String> {
    if let Some(role) = with_caller(|c| c.role.clone()) {
        return role;
    }
    let (id, table_exists) = with_caller(|c| (c.id.clone(), c.admin_roles_exists));
    let role = match id {
        Some(id) if is_uuid(&id) && table_exists => admin_role_of(&id),
        _ => None,
    };
    with_caller(|c| c.role = Some(role.clone()));
    role
}

/// The caller's user id (see `caller_id`), NULL when there is none or it is not a uuid. The
/// owner policies compare with it: `USING (id = (SELECT daznode_crm.current_user_id()))`.
#[pg_extern(sql = r#"
CREATE FUNCTION @extschema@.current_user_id() RETURNS uuid
STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn current_user_id() -> Option<pgrx::Uuid> {
    with_caller(|c| c.id.clone()).and_then(|id| parse_uuid(&id))
}

/// Is the caller an admin, with one of `allowed_roles` (any admin role when NULL)? It answers
/// only for the caller: there is no user parameter. RLS policies call it as
/// `USING ((SELECT daznode_crm.is_admin_user('{admin,super_admin}')))`, once per query.
#[pg_extern(sql = r#"
CREATE FUNCTION @extschema@.is_admin_user(allowed_roles text[] DEFAULT NULL) RETURNS boolean
STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn is_admin_user(allowed_roles: Option<Vec<Option<String>>>) -> bool {
    match (caller_role(), allowed_roles) {
        (None, _) => false,
        (Some(role), None) => ADMIN_ROLES.contains(&role.as_str()),
        (Some(role), Some(allowed)) => allowed.iter().flatten().any(|a| *a == role),
    }
}

/// Brings one segment's membership in line with its criteria, by difference: inserts the new
/// members, deletes the gone ones, leaves the rest. Returns (added, removed, members).
/// `SELECT * FROM daznode_crm.refresh_segment('…segment id…');`
#[pg_extern(sql = r#"
CREATE FUNCTION @extschema@.refresh_segment(segment_id uuid) RETURNS TABLE (added bigint, removed bigint, members bigint)
VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn refresh_segment(
    segment_id: pgrx::Uuid,
) -> TableIterator<'static, (name!(added, i64), name!(removed, i64), name!(members, i64))> {
    let criteria = segment_criteria(segment_id)
        .unwrap_or_else(|| raise(CrmError::InvalidArgument(format!("no segment with id {segment_id}"))));
    let compiled = segments::compile(&criteria, 2).unwrap_or_else(|e| raise(e));
    TableIterator::new(vec![refresh_by_difference(segment_id, &compiled)])
}

fn segment_criteria(segment_id: pgrx::Uuid) -> Option<serde_json::Value> {
    first::<pgrx::JsonB>(
        "SELECT criteria FROM public.crm_customer_segments WHERE id = $1",
        &[segment_id.into()],
    )
    .map(|j| j.0)
}

/// (added, removed, members) after bringing the membership in line with `compiled`.
fn refresh_by_difference(segment_id: pgrx::Uuid, compiled: &segments::Compiled) -> (i64, i64, i64) {
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
        Ok::<_, pgrx::spi::Error>((
            t.get::<i64>(1)?.unwrap_or(0),
            t.get::<i64>(2)?.unwrap_or(0),
            t.get::<i64>(3)?.unwrap_or(0),
        ))
    })
    .unwrap_or_else(|e| error!("daznode_crm: refresh of segment {segment_id} failed: {e}"))
}

/// Refreshes every segment with auto_update, by difference; what the refresh job runs. A segment
/// whose criteria do not compile is skipped and reported in `problem`, so one bad segment never
/// stops the others.
#[pg_extern(sql = r#"
CREATE FUNCTION @extschema@.refresh_auto_update_segments() RETURNS TABLE (segment_id uuid, name text, added bigint, removed bigint, members bigint, problem text)
VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#)]
fn refresh_auto_update_segments() -> TableIterator<
    'static,
    (
        name!(segment_id, pgrx::Uuid),
        name!(name, String),
        name!(added, i64),
        name!(removed, i64),
        name!(members, i64),
        name!(problem, Option<String>),
    ),
> {
    if !flag("SELECT to_regclass('public.crm_customer_segments') IS NOT NULL", &[]) {
        return TableIterator::new(Vec::new());
    }
    let segs: Vec<(pgrx::Uuid, String)> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT id, name::text FROM public.crm_customer_segments WHERE auto_update ORDER BY name, id",
            None,
            &[],
        )? {
            if let (Some(id), Some(name)) = (row.get::<pgrx::Uuid>(1)?, row.get::<String>(2)?) {
                out.push((id, name));
            }
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| error!("daznode_crm: {e}"));
    let mut out = Vec::new();
    for (id, name) in segs {
        let compiled = segment_criteria(id).map(|c| segments::compile(&c, 2));
        match compiled {
            Some(Ok(compiled)) => {
                let (added, removed, members) = refresh_by_difference(id, &compiled);
                if added + removed > 0 {
                    notice!("daznode_crm: segment {name}: +{added} -{removed} ({members} members)");
                }
                out.push((id, name, added, removed, members, None));
            }
            Some(Err(e)) => {
                warning!("daznode_crm: segment {name} skipped: {e}");
                out.push((id, name, 0, 0, 0, Some(e.to_string())));
            }
            None => {}
        }
    }
    TableIterator::new(out)
}
