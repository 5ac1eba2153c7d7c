//! The live counter's trigger (step 0011): `daznode_crm.count_send_changes()`, native.
//!
//! It fires once per statement on public.crm_email_sends (three triggers: INSERT, UPDATE and
//! DELETE, each with its transition tables). It reads those tables directly, counts each send
//! with `core::analytics::send_flags`, sums new minus old per campaign, and inserts one delta
//! row per campaign whose counts moved, through one kept plan. A webhook that changes no
//! counter (a re-click, an updated_at) runs no SQL at all; the PL/pgSQL body it replaces planned
//! and ran an aggregate over both transition tables for every statement.
//!
//! Who runs what: the function runs as the writer, with no SECURITY DEFINER and no SET clause
//! (the app's own triggers on crm_email_sends keep the app's search_path). Only the insert into
//! crm_private.campaign_send_deltas runs as that table's owner (a local user switch, as
//! PostgreSQL's foreign-key triggers do), restricted (SECURITY_RESTRICTED_OPERATION) and with
//! search_path pinned to pg_catalog, pg_temp: whatever the owner put on its own table runs with
//! the owner's rights, no more, and resolves no name where the writer chose. It counts only as
//! one of the step's three triggers (each for its event, no WHEN clause) on the table named
//! public.crm_email_sends: on any other table or trigger it counts nothing and stops the write
//! (42501).

use crate::api::security::as_role_with;
use daznode_crm_core::analytics::{self, SendFacts, StatementDeltas, N_COUNTERS};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::Cell;
use std::ffi::{CStr, CString};

thread_local! {
    /// The delta insert, prepared once per session and kept (SPI_keepplan): the plan cache
    /// re-plans it after DDL on the deltas table.
    static INSERT_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// Where each column the counters read sits in the rows of the transition tables.
struct Columns {
    campaign_id: usize,
    sent_at: usize,
    opened_at: usize,
    clicked_at: usize,
    bounced_at: usize,
    status: usize,
    status_type: pg_sys::Oid,
    last: usize,
}

fn refuse(code: PgSqlErrorCode, msg: &str) -> ! {
    ereport!(ERROR, code, msg.to_string());
}

/// The trigger function of the live counts: one delta row per statement and campaign whose
/// counts moved. Created by the extension; step 0011 puts it on public.crm_email_sends as
/// `daznode_count_sends_ins`, `daznode_count_sends` and `daznode_count_sends_del`.
/// `SELECT daznode_crm.campaign_counts_sql('trigger_insert');` shows the one statement it runs.
#[pg_trigger]
fn count_send_changes<'a>(trigger: &'a pgrx::PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let data = trigger.trigger_data();
    let event = data.tg_event;
    if event & pg_sys::TRIGGER_EVENT_ROW != 0 || event & pg_sys::TRIGGER_EVENT_TIMINGMASK != pg_sys::TRIGGER_EVENT_AFTER {
        refuse(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            "daznode_crm: count_send_changes() runs as an AFTER ... FOR EACH STATEMENT trigger only",
        );
    }
    // SAFETY: a trigger call: tg_relation and tg_trigger are valid for its duration.
    let (relid, tgname) = unsafe { ((*data.tg_relation).rd_id, CStr::from_ptr((*data.tg_trigger).tgname)) };
    // Each of the step's triggers for its own event (TRIGGERS: INSERT, UPDATE, DELETE), with no
    // WHEN clause: a same-named trigger of another shape would count some writes twice or never.
    let (expected, old, new) = match event & pg_sys::TRIGGER_EVENT_OPMASK {
        pg_sys::TRIGGER_EVENT_INSERT => (analytics::TRIGGERS[0], None, Some(data.tg_newtable)),
        pg_sys::TRIGGER_EVENT_UPDATE => (analytics::TRIGGERS[1], Some(data.tg_oldtable), Some(data.tg_newtable)),
        pg_sys::TRIGGER_EVENT_DELETE => (analytics::TRIGGERS[2], Some(data.tg_oldtable), None),
        _ => refuse(PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "daznode_crm: count_send_changes() counts INSERT, UPDATE and DELETE only"),
    };
    // SAFETY: as above.
    let has_when = unsafe { !(*data.tg_trigger).tgqual.is_null() };
    if expected.as_bytes() != tgname.to_bytes() || has_when || relid != sends_table() {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "daznode_crm: count_send_changes() counts only as the live counter's triggers on public.crm_email_sends, as install_send_counter() creates them; nothing was counted",
        );
    }
    if old.is_some_and(|t| t.is_null()) || new.is_some_and(|t| t.is_null()) {
        refuse(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            "daznode_crm: count_send_changes() needs its transition tables (REFERENCING OLD TABLE / NEW TABLE); install_send_counter() creates the triggers",
        );
    }
    // SAFETY: the relation's descriptor is valid for the trigger call; the transition tables
    // hold rows of that descriptor (a partitioned table's rows are converted to the parent's).
    unsafe {
        let desc = (*data.tg_relation).rd_att;
        let cols = columns(desc);
        let mut deltas = StatementDeltas::default();
        for (store, sign) in [(old, -1), (new, 1)] {
            if let Some(store) = store {
                read_sends(store, desc, &cols, sign, &mut deltas);
            }
        }
        insert_deltas(&deltas);
    }
    Ok(None)
}

/// The oid of the table named public.crm_email_sends now (InvalidOid when there is none).
fn sends_table() -> pg_sys::Oid {
    relation_oid(c"public", c"crm_email_sends")
}

/// The oid of relation `schema.name` by the system caches (no SQL: this runs in every counted
/// statement); InvalidOid when either is missing.
fn relation_oid(schema: &CStr, name: &CStr) -> pg_sys::Oid {
    // SAFETY: catalog lookups by NUL-terminated names.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(schema.as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return pg_sys::InvalidOid;
        }
        pg_sys::get_relname_relid(name.as_ptr(), nsp)
    }
}

/// The attribute numbers (0-based) of the columns the counters read; a missing column or a
/// campaign_id that is not uuid stops the write with the reason (the step checks the shape first).
unsafe fn columns(desc: pg_sys::TupleDesc) -> Columns {
    let tupdesc = pgrx::PgTupleDesc::from_pg_unchecked(desc);
    let find = |name: &str| -> (usize, pg_sys::Oid) {
        for (i, att) in tupdesc.iter().enumerate() {
            if !att.attisdropped && CStr::from_ptr(att.attname.data.as_ptr()).to_bytes() == name.as_bytes() {
                // A virtual generated column (PostgreSQL 18) is NULL in the stored row, where a
                // recount computes it: the counts would drift.
                if att.attgenerated == b'v' as std::ffi::c_char {
                    refuse(
                        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                        &format!("daznode_crm: public.crm_email_sends.{name} is a virtual generated column; the live counter cannot count it"),
                    );
                }
                return (i, att.atttypid);
            }
        }
        refuse(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, &format!("daznode_crm: public.crm_email_sends has no column {name}; the live counter cannot count"));
    };
    let (campaign_id, campaign_type) = find("campaign_id");
    if campaign_type != pg_sys::UUIDOID {
        refuse(PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH, "daznode_crm: public.crm_email_sends.campaign_id is not uuid; the live counter cannot count");
    }
    let (status, status_type) = find("status");
    let cols = [campaign_id, find("sent_at").0, find("opened_at").0, find("clicked_at").0, find("bounced_at").0, status];
    Columns {
        campaign_id,
        sent_at: cols[1],
        opened_at: cols[2],
        clicked_at: cols[3],
        bounced_at: cols[4],
        status,
        status_type,
        last: cols.iter().copied().max().unwrap_or(0),
    }
}

/// Adds every row of a transition table to `deltas`, with `sign`. Reads through a read pointer
/// of its own (as a scan of the table by name would), so other readers are not disturbed.
unsafe fn read_sends(store: *mut pg_sys::Tuplestorestate, desc: pg_sys::TupleDesc, cols: &Columns, sign: i64, deltas: &mut StatementDeltas) {
    let ptr = pg_sys::tuplestore_alloc_read_pointer(store, pg_sys::EXEC_FLAG_REWIND as i32);
    pg_sys::tuplestore_select_read_pointer(store, ptr);
    pg_sys::tuplestore_rescan(store);
    let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
    let mut status_out: Option<(pg_sys::Oid, bool)> = None;
    while pg_sys::tuplestore_gettupleslot(store, true, false, slot) {
        pg_sys::slot_getsomeattrs_int(slot, (cols.last + 1) as i32);
        let values = std::slice::from_raw_parts((*slot).tts_values, cols.last + 1);
        let nulls = std::slice::from_raw_parts((*slot).tts_isnull, cols.last + 1);
        if nulls[cols.campaign_id] {
            continue;
        }
        let mut campaign = [0u8; 16];
        // A uuid Datum points at its 16 bytes (typalign 'c').
        campaign.copy_from_slice(&*values[cols.campaign_id].cast_mut_ptr::<[u8; 16]>());
        let status_text;
        let status = if nulls[cols.status] {
            None
        } else {
            status_text = status_bytes(values[cols.status], cols.status_type, &mut status_out);
            Some(status_text.as_slice())
        };
        let facts = SendFacts {
            sent_at: !nulls[cols.sent_at],
            opened_at: !nulls[cols.opened_at],
            clicked_at: !nulls[cols.clicked_at],
            bounced_at: !nulls[cols.bounced_at],
            status,
        };
        deltas.add(campaign, &facts, sign);
    }
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    pg_sys::tuplestore_select_read_pointer(store, 0);
}

/// A status as the bytes SQL compares with 'failed': text and varchar as they are, char(n)
/// without its padding, any other type (an enum) through its output function.
unsafe fn status_bytes(value: pg_sys::Datum, typ: pg_sys::Oid, out: &mut Option<(pg_sys::Oid, bool)>) -> Vec<u8> {
    if typ == pg_sys::TEXTOID || typ == pg_sys::VARCHAROID || typ == pg_sys::BPCHAROID {
        let raw: *mut pg_sys::varlena = value.cast_mut_ptr();
        let v = pg_sys::pg_detoast_datum_packed(raw);
        let mut bytes = pgrx::varlena::varlena_to_byte_slice(v);
        if typ == pg_sys::BPCHAROID {
            // char(n) to text drops the padding spaces, and only those.
            while let [rest @ .., b' '] = bytes {
                bytes = rest;
            }
        }
        let bytes = bytes.to_vec();
        if v != raw {
            pg_sys::pfree(v.cast());
        }
        return bytes;
    }
    let (func, _) = *out.get_or_insert_with(|| {
        let (mut func, mut varlena) = (pg_sys::InvalidOid, false);
        pg_sys::getTypeOutputInfo(typ, &mut func, &mut varlena);
        (func, varlena)
    });
    let text = pg_sys::OidOutputFunctionCall(func, value);
    let bytes = CStr::from_ptr(text).to_bytes().to_vec();
    pg_sys::pfree(text.cast());
    bytes
}

/// One insert per campaign whose counts moved, as the deltas table's owner, through the kept plan.
unsafe fn insert_deltas(deltas: &StatementDeltas) {
    let mut rows = deltas.nonzero().peekable();
    if rows.peek().is_none() {
        return;
    }
    // As the owner, restricted, with search_path pinned: whatever the owner put on its own table
    // never resolves a name in a path the writer chose. An error aborts the (sub)transaction,
    // which puts the saved user and settings back.
    as_role_with(deltas_owner(), &[(c"search_path", "pg_catalog, pg_temp")], || insert_rows(rows));
}

unsafe fn insert_rows<'a>(rows: impl Iterator<Item = &'a ([u8; 16], [i64; N_COUNTERS])>) {
    if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
        refuse(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "daznode_crm: the live counter could not connect to SPI");
    }
    let plan = insert_plan();
    let mut uuid: [u8; 16];
    let mut values = [pg_sys::Datum::from(0); N_COUNTERS + 1];
    let nulls = [b' ' as std::ffi::c_char; N_COUNTERS + 1];
    for (campaign, sums) in rows {
        uuid = *campaign;
        values[0] = pg_sys::Datum::from(std::ptr::addr_of_mut!(uuid));
        for (v, n) in values[1..].iter_mut().zip(sums) {
            *v = pg_sys::Datum::from(*n);
        }
        let rc = pg_sys::SPI_execute_plan(plan, values.as_mut_ptr(), nulls.as_ptr(), false, 0);
        if rc != pg_sys::SPI_OK_INSERT as i32 {
            refuse(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, &format!("daznode_crm: the live counter's insert returned SPI code {rc}"));
        }
    }
    pg_sys::SPI_finish();
}

/// The owner of crm_private.campaign_send_deltas: who the insert runs as.
unsafe fn deltas_owner() -> pg_sys::Oid {
    let relid = relation_oid(c"crm_private", c"campaign_send_deltas");
    let tuple = if relid == pg_sys::InvalidOid {
        std::ptr::null_mut()
    } else {
        pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as i32, pg_sys::Datum::from(relid))
    };
    if tuple.is_null() {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "daznode_crm: crm_private.campaign_send_deltas is missing, so the live counter cannot count this write",
            "CALL daznode_crm.migrate() puts the live counts back (step 0011)."
        );
    }
    let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
    pg_sys::ReleaseSysCache(tuple);
    owner
}

/// The kept plan of `analytics::delta_insert()`, prepared on first use in this session.
unsafe fn insert_plan() -> pg_sys::SPIPlanPtr {
    let kept = INSERT_PLAN.with(Cell::get);
    if !kept.is_null() {
        return kept;
    }
    let sql = CString::new(analytics::delta_insert()).expect("no NUL in our SQL");
    let mut types = [pg_sys::INT8OID; N_COUNTERS + 1];
    types[0] = pg_sys::UUIDOID;
    let plan = pg_sys::SPI_prepare(sql.as_ptr(), types.len() as i32, types.as_mut_ptr());
    if plan.is_null() || pg_sys::SPI_keepplan(plan) != 0 {
        refuse(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "daznode_crm: the live counter could not prepare its insert");
    }
    INSERT_PLAN.with(|p| p.set(plan));
    plan
}
