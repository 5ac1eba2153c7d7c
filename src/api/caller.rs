//! Who calls, and which admin role `public.admin_roles` gives them: what `is_admin_user()` and
//! `current_user_id()` answer from. Policies call them in every query, so the answers are kept:
//!
//! - the caller's id, as long as the JWT settings are the same strings (for the whole session
//!   when it comes from the claims or from Supabase's own `auth.uid()`, which reads nothing else;
//!   for one transaction when another trusted `auth.uid()` gives it, since that may read
//!   anything);
//! - the catalog facts (is there a trusted `auth.uid()`, is there an `admin_roles` table, is the
//!   invalidation trigger in place), until the system caches say pg_proc, pg_namespace,
//!   pg_authid or admin_roles changed;
//! - the roles, by user, across transactions, until a relcache invalidation of admin_roles: its
//!   statement trigger `daznode_admin_roles_changed` (ENABLE ALWAYS, so replica-mode writes fire
//!   it too) sends one at every INSERT, UPDATE, DELETE or TRUNCATE, and PostgreSQL delivers it to
//!   every session at its next transaction (and to the writing session at its next command).
//!   Without that trigger (disabled, dropped, not migrated yet) roles are kept for one
//!   transaction only.
//!
//! A role is looked up with a snapshot taken at lookup time, after every invalidation already
//! received, so what is stored is never older than the invalidations seen; a lookup overtaken by
//! an invalidation is not stored (`RoleCache::store`).

use super::pg_version::local_transaction_id;
use daznode_crm_core::caller::{caller_from_claims, is_jwt_only_uid_body, RoleCache, UserId};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;

/// How many users' roles one session keeps (a PostgREST connection serves many users).
const ROLE_CACHE_USERS: usize = 4096;

/// The trigger whose relcache invalidations keep the role cache honest, and its function.
pub const TRIGGER_NAME: &CStr = c"daznode_admin_roles_changed";
const TRIGGER_FUNCTION: &CStr = c"admin_roles_changed";
const EXTENSION_SCHEMA: &CStr = c"daznode_crm";

#[derive(Clone, Copy, PartialEq, Eq)]
struct Facts {
    /// A trusted `auth.uid()` returning uuid: schema and function owned by a superuser, so that no
    /// other role can plant one.
    auth_uid: Option<pg_sys::Oid>,
    /// That auth.uid() is Supabase's, which reads only the two JWT settings: its answer may be
    /// kept for as long as they are the same strings.
    auth_uid_jwt_only: bool,
    /// `ONLY public.admin_roles`, when it is a plain table (relkind r) whose `user_id` is a
    /// uuid, and its owner, as whom the lookup runs (`security::as_role`). Anything else (a
    /// view, a partitioned or foreign table, another shape) counts as no table: nobody is admin.
    admin_roles: Option<pg_sys::Oid>,
    admin_roles_owner: pg_sys::Oid,
    /// The invalidation trigger is in place and enabled ALWAYS, the table has no inheritance
    /// children and belongs to no subscription (a logical-replication apply worker fires no
    /// statement trigger): roles may outlive a transaction.
    trigger_in_place: bool,
}

struct Identity {
    claims: Option<Vec<u8>>,
    claim_sub: Option<Vec<u8>>,
    /// Set when the id came from auth.uid(): valid in that transaction only.
    lxid: Option<u32>,
    id: Option<UserId>,
}

struct State {
    facts: Option<Facts>,
    facts_epoch: u64,
    /// When admin_roles does not exist the facts are kept for one transaction (its creation is
    /// not an invalidation we listen to).
    facts_lxid: u32,
    identity: Option<Identity>,
    roles: RoleCache,
    /// Without the trigger, roles are kept for one transaction: this one.
    roles_lxid: u32,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        facts: None,
        facts_epoch: 0,
        facts_lxid: 0,
        identity: None,
        roles: RoleCache::new(ROLE_CACHE_USERS),
        roles_lxid: 0,
    });
    /// Bumped by the invalidation callbacks, which may run in the middle of a lookup (any lock
    /// taken accepts invalidations): plain counters, never a borrow of STATE.
    static FACTS_INVALIDATIONS: Cell<u64> = const { Cell::new(0) };
    static ROLES_INVALIDATIONS: Cell<u64> = const { Cell::new(0) };
    static ADMIN_ROLES_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static CALLBACKS_REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// The role lookup, prepared once per session and kept (SPI_keepplan): the plan cache
    /// re-plans it after DDL on admin_roles.
    static ROLE_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// ONLY: rows of an inheritance child never make anyone admin. `role` is read through its
/// type's output function (no cast the table owner could define).
const ROLE_SQL: &CStr = c"SELECT role FROM ONLY public.admin_roles WHERE user_id = $1";

fn bump(counter: &'static std::thread::LocalKey<Cell<u64>>) {
    counter.with(|c| c.set(c.get().wrapping_add(1)));
}

unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // InvalidOid: the whole relcache was reset (the invalidation queue overflowed).
    if relid == pg_sys::InvalidOid || relid == ADMIN_ROLES_OID.with(Cell::get) {
        bump(&ROLES_INVALIDATIONS);
        bump(&FACTS_INVALIDATIONS);
    }
}

unsafe extern "C-unwind" fn syscache_changed(_arg: pg_sys::Datum, _cache: std::ffi::c_int, _hash: u32) {
    bump(&FACTS_INVALIDATIONS);
}

fn register_callbacks() {
    if CALLBACKS_REGISTERED.with(Cell::get) {
        return;
    }
    // SAFETY: registration is per backend and permanent; the callbacks only bump counters.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0));
        for cache in [
            pg_sys::SysCacheIdentifier::PROCOID,
            pg_sys::SysCacheIdentifier::NAMESPACEOID,
            pg_sys::SysCacheIdentifier::AUTHOID,
            pg_sys::SysCacheIdentifier::SUBSCRIPTIONRELMAP,
        ] {
            pg_sys::CacheRegisterSyscacheCallback(cache as i32, Some(syscache_changed), pg_sys::Datum::from(0));
        }
    }
    CALLBACKS_REGISTERED.with(|c| c.set(true));
}

/// A setting's bytes, None when unset or empty (custom settings such as request.jwt.claims
/// included), read without SPI. Valid until the setting changes: compare or copy at once.
fn setting(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: GetConfigOption returns NULL or a NUL-terminated string owned by the GUC machinery.
    let value = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    if value.is_null() {
        return None;
    }
    let bytes = unsafe { CStr::from_ptr(value) }.to_bytes();
    (!bytes.is_empty()).then_some(bytes)
}

fn owned_by_superuser(owner: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup of pg_authid.
    unsafe { pg_sys::superuser_arg(owner) }
}

/// The catalog facts, from the system caches (no SQL).
fn compute_facts() -> Facts {
    // SAFETY: catalog lookups inside a SQL function call; every syscache tuple found is released
    // before returning, the relation opened is closed (its lock kept to the end of the
    // transaction, as usual), names are NUL-terminated.
    unsafe {
        let mut auth_uid = None;
        let mut auth_uid_jwt_only = false;
        let auth = pg_sys::get_namespace_oid(c"auth".as_ptr(), true);
        if auth != pg_sys::InvalidOid {
            let nsp = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::NAMESPACEOID as i32, pg_sys::Datum::from(auth));
            if !nsp.is_null() {
                let nsp_trusted = owned_by_superuser((*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_namespace>(nsp)).nspowner);
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
                        let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_proc>(proc);
                        if owned_by_superuser((*form).proowner) && (*form).prorettype == pg_sys::UUIDOID && !(*form).proretset {
                            auth_uid = Some((*form).oid);
                            auth_uid_jwt_only = reads_only_jwt_settings(proc, &*form);
                        }
                        pg_sys::ReleaseSysCache(proc);
                    }
                    pg_sys::pfree(no_args.cast());
                }
            }
        }
        let public = pg_sys::get_namespace_oid(c"public".as_ptr(), true);
        let admin_roles = if public == pg_sys::InvalidOid {
            None
        } else {
            Some(pg_sys::get_relname_relid(c"admin_roles".as_ptr(), public)).filter(|o| *o != pg_sys::InvalidOid)
        };
        let shape = admin_roles.and_then(|relid| admin_roles_shape(relid));
        let admin_roles = admin_roles.filter(|_| shape.is_some());
        let (admin_roles_owner, cacheable) = shape.unwrap_or((pg_sys::InvalidOid, false));
        let trigger_in_place = cacheable && admin_roles.is_some_and(|relid| invalidation_trigger_in_place(relid) && !subscribed(relid));
        Facts { auth_uid, auth_uid_jwt_only, admin_roles, admin_roles_owner, trigger_in_place }
    }
}

/// Is this pg_proc row a SQL function, not volatile, without SET clauses, whose body is one of
/// Supabase's auth.uid() bodies?
unsafe fn reads_only_jwt_settings(proc: pg_sys::HeapTuple, form: &pg_sys::FormData_pg_proc) -> bool {
    let sql_language = pg_sys::Oid::from(14u32); // pg_language 'sql'
    if form.prolang != sql_language || form.provolatile == b'v' as std::ffi::c_char {
        return false;
    }
    let cache = pg_sys::SysCacheIdentifier::PROCOID as i32;
    let mut isnull = false;
    pg_sys::SysCacheGetAttr(cache, proc, pg_sys::Anum_pg_proc_proconfig as i16, &mut isnull);
    if !isnull {
        return false;
    }
    let src = pg_sys::SysCacheGetAttr(cache, proc, pg_sys::Anum_pg_proc_prosrc as i16, &mut isnull);
    if isnull {
        return false;
    }
    let body = pg_sys::text_to_cstring(src.cast_mut_ptr());
    let jwt_only = is_jwt_only_uid_body(&CStr::from_ptr(body).to_string_lossy());
    pg_sys::pfree(body.cast());
    jwt_only
}

/// (owner, no inheritance children) of admin_roles when it is a plain table with a uuid
/// `user_id` and a `role` column; None otherwise.
unsafe fn admin_roles_shape(relid: pg_sys::Oid) -> Option<(pg_sys::Oid, bool)> {
    let rel = pg_sys::try_relation_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    if rel.is_null() {
        return None;
    }
    let form = &*(*rel).rd_rel;
    // PgTupleDesc reads the attributes whatever the major's layout (18 moved them behind
    // compact_attrs); unchecked: the relcache owns the descriptor.
    let desc = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att);
    let mut user_id_is_uuid = false;
    let mut has_role = false;
    for att in desc.iter() {
        if att.attisdropped {
            continue;
        }
        let name = CStr::from_ptr(att.attname.data.as_ptr());
        if name == c"user_id" {
            user_id_is_uuid = att.atttypid == pg_sys::UUIDOID;
        } else if name == c"role" {
            has_role = true;
        }
    }
    let plain = form.relkind == pg_sys::RELKIND_RELATION as std::ffi::c_char && user_id_is_uuid && has_role;
    // relhassubclass stays set after the last child goes (until VACUUM): ask pg_inherits then.
    let children = form.relhassubclass && has_children(relid);
    let owner = form.relowner;
    drop(desc);
    pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    plain.then_some((owner, !children))
}

fn has_children(relid: pg_sys::Oid) -> bool {
    catalog_flag(c"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhparent = $1)", relid)
}

/// One boolean from a catalog query with one oid argument, read-only: it also runs in the leader
/// of a parallel plan, where nothing may take a transaction id or a new command id. True when the
/// query gives no answer (the safe side: roles not kept).
fn catalog_flag(sql: &CStr, oid: pg_sys::Oid) -> bool {
    // SAFETY: one SPI connection, finished before returning (an ERROR unwinds through pgrx's
    // guard and the abort cleans SPI up); the argument is an oid datum; the tuple read belongs
    // to SPI_tuptable.
    unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            error!("daznode_crm: SPI_connect failed");
        }
        let mut types = [pg_sys::OIDOID];
        let mut args = [pg_sys::Datum::from(oid)];
        let rc = pg_sys::SPI_execute_with_args(sql.as_ptr(), 1, types.as_mut_ptr(), args.as_mut_ptr(), std::ptr::null(), true, 1);
        let mut answer = true;
        if rc == pg_sys::SPI_OK_SELECT as i32 && pg_sys::SPI_processed > 0 {
            let table = pg_sys::SPI_tuptable;
            let mut isnull = false;
            let d = pg_sys::SPI_getbinval(*(*table).vals, (*table).tupdesc, 1, &mut isnull);
            if !isnull {
                answer = d.value() != 0;
            }
        }
        pg_sys::SPI_finish();
        answer
    }
}

/// Does a subscription replicate into this table? Its apply worker fires row triggers only, so
/// the statement trigger never tells the sessions: roles are then kept for one transaction.
fn subscribed(relid: pg_sys::Oid) -> bool {
    catalog_flag(c"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel WHERE srrelid = $1)", relid)
}

/// Is `daznode_admin_roles_changed` on admin_roles, as step 0008 creates it: AFTER INSERT OR
/// UPDATE OR DELETE OR TRUNCATE, FOR EACH STATEMENT, no column list, no WHEN, enabled ALWAYS,
/// calling daznode_crm.admin_roles_changed()?
unsafe fn invalidation_trigger_in_place(relid: pg_sys::Oid) -> bool {
    const ROW: i16 = 1 << 0;
    const BEFORE: i16 = 1 << 1;
    const EVENTS: i16 = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5); // INSERT, DELETE, UPDATE, TRUNCATE
    const INSTEAD: i16 = 1 << 6;
    let rel = pg_sys::try_relation_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    if rel.is_null() {
        return false;
    }
    let desc = (*rel).trigdesc;
    let mut found = false;
    if !desc.is_null() {
        for i in 0..(*desc).numtriggers as usize {
            let t = &*(*desc).triggers.add(i);
            if CStr::from_ptr(t.tgname) != TRIGGER_NAME {
                continue;
            }
            let function_ok = {
                let name = pg_sys::get_func_name(t.tgfoid);
                let nsp = pg_sys::get_namespace_name(pg_sys::get_func_namespace(t.tgfoid));
                !name.is_null() && !nsp.is_null() && CStr::from_ptr(name) == TRIGGER_FUNCTION && CStr::from_ptr(nsp) == EXTENSION_SCHEMA
            };
            found = function_ok
                && t.tgenabled == b'A' as std::ffi::c_char
                && t.tgtype & (ROW | BEFORE | INSTEAD) == 0
                && t.tgtype & EVENTS == EVENTS
                && t.tgnattr == 0
                && t.tgqual.is_null();
        }
    }
    pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    found
}

fn current_facts(lxid: u32) -> Facts {
    let seen = FACTS_INVALIDATIONS.with(Cell::get);
    let kept = STATE.with(|s| {
        let s = s.borrow();
        s.facts.filter(|f| s.facts_epoch == seen && (f.admin_roles.is_some() || s.facts_lxid == lxid))
    });
    if let Some(f) = kept {
        return f;
    }
    let facts = compute_facts();
    ADMIN_ROLES_OID.with(|c| c.set(facts.admin_roles.unwrap_or(pg_sys::InvalidOid)));
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.facts != Some(facts) {
            // Another table, another auth.uid(), a trigger gone: nothing kept still holds.
            s.identity = None;
            bump(&ROLES_INVALIDATIONS);
        }
        // Kept only if no invalidation arrived while computing (opening admin_roles takes a lock,
        // which accepts them); otherwise recomputed at the next call.
        if FACTS_INVALIDATIONS.with(Cell::get) == seen {
            s.facts = Some(facts);
            s.facts_epoch = seen;
            s.facts_lxid = lxid;
        } else {
            s.facts = None;
        }
    });
    facts
}

/// Calls the trusted auth.uid() directly (fmgr, no SQL), NULL as None.
fn call_auth_uid(oid: pg_sys::Oid) -> Option<UserId> {
    // SAFETY: `oid` is a zero-argument function returning uuid (checked in compute_facts); the
    // call goes through the fmgr with a zeroed call frame, under pgrx's error guard so that an
    // ERROR it raises becomes ours; a uuid datum points at 16 bytes.
    unsafe {
        let mut flinfo: pg_sys::FmgrInfo = std::mem::zeroed();
        pg_sys::fmgr_info(oid, &mut flinfo);
        let mut fcinfo: pg_sys::FunctionCallInfoBaseData = std::mem::zeroed();
        fcinfo.flinfo = &mut flinfo;
        fcinfo.nargs = 0;
        fcinfo.fncollation = pg_sys::InvalidOid;
        let f = flinfo.fn_addr?;
        let result = pg_sys::ffi::pg_guard_ffi_boundary(|| f(&mut fcinfo));
        if fcinfo.isnull {
            return None;
        }
        let mut id = [0u8; 16];
        std::ptr::copy_nonoverlapping(result.cast_mut_ptr::<u8>(), id.as_mut_ptr(), 16);
        Some(id)
    }
}

/// The caller's user id: `auth.uid()` where a trusted one exists, otherwise the JWT claims.
pub fn caller_id() -> Option<UserId> {
    caller().2
}

/// What every call starts from: this transaction, the catalog facts, the caller's id.
fn caller() -> (u32, Facts, Option<UserId>) {
    register_callbacks();
    let lxid = local_transaction_id();
    let facts = current_facts(lxid);
    (lxid, facts, resolve_identity(lxid, &facts))
}

fn resolve_identity(lxid: u32, facts: &Facts) -> Option<UserId> {
    let claims = setting(c"request.jwt.claims");
    let claim_sub = setting(c"request.jwt.claim.sub");
    let kept = STATE.with(|s| {
        let s = s.borrow();
        s.identity
            .as_ref()
            .and_then(|i| (i.claims.as_deref() == claims && i.claim_sub.as_deref() == claim_sub && i.lxid.is_none_or(|l| l == lxid)).then_some(i.id))
    });
    if let Some(id) = kept {
        return id;
    }
    let (id, per_transaction) = match facts.auth_uid {
        Some(oid) => (call_auth_uid(oid), (!facts.auth_uid_jwt_only).then_some(lxid)),
        None => (caller_from_claims(claims.and_then(|c| std::str::from_utf8(c).ok()), claim_sub.and_then(|c| std::str::from_utf8(c).ok())), None),
    };
    // auth.uid() may have changed the settings it reads: read them again for the key.
    let identity = Identity {
        claims: setting(c"request.jwt.claims").map(<[u8]>::to_vec),
        claim_sub: setting(c"request.jwt.claim.sub").map(<[u8]>::to_vec),
        lxid: per_transaction,
        id,
    };
    STATE.with(|s| s.borrow_mut().identity = Some(identity));
    id
}

/// Does the caller have an admin role that `accepts`? False without an id, without an
/// admin_roles table, or without a role.
pub fn caller_role_is(accepts: impl Fn(&str) -> bool) -> bool {
    let (lxid, facts, id) = caller();
    let (Some(id), Some(_)) = (id, facts.admin_roles) else {
        return false;
    };
    // The invalidations received so far, counting a new transaction as one when the trigger is
    // not there to send them.
    let stamp = |s: &mut State| {
        if !facts.trigger_in_place && s.roles_lxid != lxid {
            s.roles_lxid = lxid;
            bump(&ROLES_INVALIDATIONS);
        }
        ROLES_INVALIDATIONS.with(Cell::get)
    };
    let (before, kept) = STATE.with(|s| {
        let mut s = s.borrow_mut();
        let now = stamp(&mut s);
        s.roles.sync(now);
        (now, s.roles.get(&id).map(|role| role.is_some_and(&accepts)))
    });
    if let Some(answer) = kept {
        return answer;
    }
    let role = crate::api::security::as_role(facts.admin_roles_owner, || lookup_role(&id));
    let answer = role.as_deref().is_some_and(&accepts);
    // SAFETY: reads a backend global.
    if unsafe { pg_sys::IsInParallelMode() } {
        // Read with the statement's snapshot, which may be older than an invalidation already
        // received: good for this answer, not for keeping.
        return answer;
    }
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let now = stamp(&mut s);
        s.roles.sync(now);
        s.roles.store(id, role, before);
    });
    answer
}

/// The admin role of another user, for a caller already known to be an admin (the legacy
/// `is_admin_user(user_id)`): read now, as admin_roles' owner, never kept.
pub fn role_of(id: &UserId) -> Option<String> {
    let (lxid, ..) = caller();
    let facts = current_facts(lxid);
    facts.admin_roles?;
    crate::api::security::as_role(facts.admin_roles_owner, || lookup_role(id))
}

/// The admin role of `id` in admin_roles, read with a snapshot taken now.
fn lookup_role(id: &UserId) -> Option<String> {
    // SAFETY: one SPI connection, finished before returning (an ERROR inside unwinds through
    // pgrx's guard, and the transaction's abort closes the connection and releases the
    // snapshot); the kept plan takes one uuid argument; the tuple read belongs to SPI_tuptable.
    unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            error!("daznode_crm: SPI_connect failed");
        }
        let mut plan = ROLE_PLAN.with(Cell::get);
        if plan.is_null() {
            let mut types = [pg_sys::UUIDOID];
            plan = pg_sys::SPI_prepare(ROLE_SQL.as_ptr(), 1, types.as_mut_ptr());
            if plan.is_null() || pg_sys::SPI_keepplan(plan) != 0 {
                error!("daznode_crm: could not prepare {ROLE_SQL:?}");
            }
            ROLE_PLAN.with(|c| c.set(plan));
        }
        let mut args = [pgrx::Uuid::from_bytes(*id).into_datum().expect("a uuid is never NULL")];
        // In parallel mode (a parallel plan's leader: policies run there) no new snapshot may be
        // taken: the statement's own is used, and the answer is not kept (caller_role_is).
        let snapshot = pg_sys::RegisterSnapshot(if pg_sys::IsInParallelMode() { pg_sys::GetActiveSnapshot() } else { pg_sys::GetLatestSnapshot() });
        let rc = pg_sys::SPI_execute_snapshot(plan, args.as_mut_ptr(), std::ptr::null(), snapshot, std::ptr::null_mut(), true, false, 1);
        pg_sys::UnregisterSnapshot(snapshot);
        if rc != pg_sys::SPI_OK_SELECT as i32 {
            error!("daznode_crm: role lookup failed ({rc}): {ROLE_SQL:?}");
        }
        let mut role = None;
        if pg_sys::SPI_processed > 0 {
            let table = pg_sys::SPI_tuptable;
            let value = pg_sys::SPI_getvalue(*(*table).vals, (*table).tupdesc, 1);
            if !value.is_null() {
                role = Some(CStr::from_ptr(value).to_string_lossy().into_owned());
            }
        }
        pg_sys::SPI_finish();
        role
    }
}

/// The statement trigger on admin_roles: every change of the table invalidates its relcache
/// entry, which tells every session (at its next transaction) to forget the roles it kept.
#[pg_trigger]
fn admin_roles_changed<'a>(trigger: &'a pgrx::PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let relid = trigger.relid()?;
    // SAFETY: queues a relcache invalidation, sent at commit (and applied locally at the next
    // command), like any ALTER TABLE does.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    Ok(None)
}
