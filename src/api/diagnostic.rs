//! `run_pre_migration_diagnostic()`: the guide's step 1, read-only, on an empty, legacy,
//! half-migrated or migrated database. It measures here and judges with
//! `daznode_crm_core::diagnostics`; missing objects are reported, never an error.

use crate::api::errors::{invalid, Result};
use crate::api::security::{app_count, column_exists, crm_owner, relation, table_exists};
use crate::api::spi::{count, flag, records, text};
use daznode_crm_core::catalog::{self, ExposedColumns, HeldLock, LegacyFunction, Named, ObjectInTheWay, OpenTransaction, PolicyReadError};
use daznode_crm_core::diagnostics::{self, count_status, sort_checks, Check, Status, TableShape};
use daznode_crm_core::indexes::{self, EMAIL_KEY_INDEX, PLANNED_INDEXES, PUBKEY_KEY_INDEX};
use daznode_crm_core::migrations;
use daznode_crm_core::orphans::{rule_by_key, Inapplicable, OrphanAction, OrphanRule, ORPHAN_RULES};
use daznode_crm_core::schema::CRM_TABLES;
use daznode_crm_core::sql::quote_ident;
use pgrx::prelude::*;

type DiagnosticRow =
    (name!(check_name, String), name!(status, String), name!(details, String), name!(affected_rows, Option<i64>), name!(recommendation, Option<String>));

/// The names the guide gives its functions (`core::diagnostics::GUIDE_API`): a legacy function of
/// public carrying one shadows ours in unqualified calls, so step 0008 moves it.
/// `SELECT daznode_crm.guide_function_names();`
#[pg_extern(immutable, parallel_safe)]
fn guide_function_names() -> Vec<&'static str> {
    diagnostics::guide_function_names()
}

/// The guide's functions and what their wrappers in public call, and who may call them: what
/// step 0000 installs. `SELECT * FROM daznode_crm.guide_api();`
#[pg_extern(immutable, parallel_safe)]
fn guide_api() -> TableIterator<'static, (name!(name, &'static str), name!(target, &'static str), name!(callable_by, &'static str))> {
    TableIterator::new(diagnostics::GUIDE_API.iter().map(|g| (g.name, g.target, g.callable_by.grantee())))
}

/// Runs every pre-migration check; rows come most severe first. Read-only: it runs on a hot
/// standby too, and says so in a row.
/// `SELECT * FROM daznode_crm.run_pre_migration_diagnostic();`
#[pg_extern(stable, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn run_pre_migration_diagnostic() -> Result<
    TableIterator<
        'static,
        (name!(check_name, String), name!(status, String), name!(details, String), name!(affected_rows, Option<i64>), name!(recommendation, Option<String>)),
    >,
> {
    let rows: Vec<DiagnosticRow> =
        all_checks()?.into_iter().map(|c| (c.name, c.status.as_str().to_string(), c.details, c.affected_rows, c.recommendation)).collect();
    Ok(TableIterator::new(rows))
}

/// Every check, most severe first. Paced (`throttle`): a pause before each unit of work.
fn all_checks() -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let mut pace = crate::api::throttle::Yielder::new()?;
    for unit in step_units() {
        pace.pause()?;
        checks.extend(run_unit(&unit)?);
    }
    sort_checks(&mut checks);
    Ok(checks)
}

/// The checks that are not an orphan rule, each group one unit of work, after `FIRST` and the
/// orphan rules (whose units are `orphans: <rule key>`).
const GROUPS: [(&str, fn(&mut Vec<Check>)); 7] = [
    ("profile_values", profile_values),
    ("users_vs_profiles", users_vs_profiles),
    ("constraints_indexes_collisions", constraints_indexes_collisions),
    ("sizes", sizes),
    ("blockers", blockers),
    ("live_app", live_app),
    ("extensions", extensions),
];
/// The quick checks of the server and the schema, which come first.
const FIRST: &str = "server_and_schema";
const ORPHANS: &str = "orphans: ";

/// The diagnostic's units of work, in order: what `all_checks` pauses between, and what
/// `run_in_steps('run_pre_migration_diagnostic')` runs one per transaction.
pub fn step_units() -> Vec<String> {
    std::iter::once(FIRST.to_string())
        .chain(ORPHAN_RULES.iter().map(|r| format!("{ORPHANS}{}", r.key())))
        .chain(GROUPS.iter().map(|(name, _)| name.to_string()))
        .collect()
}

/// The checks of one unit (unsorted).
fn run_unit(unit: &str) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    if unit == FIRST {
        standby_and_disk(&mut checks);
        server_and_privileges(&mut checks);
        schema_shape(&mut checks);
        pending_steps(&mut checks)?;
    } else if let Some(rule) = unit.strip_prefix(ORPHANS).and_then(rule_by_key) {
        orphans(&mut checks, rule);
    } else if let Some((_, group)) = GROUPS.iter().find(|(name, _)| *name == unit) {
        group(&mut checks);
    } else {
        return Err(invalid(format!("no diagnostic unit {:?}", unit.chars().take(80).collect::<String>())));
    }
    Ok(checks)
}

/// One unit of `run_in_steps`: its checks as rows of `run_pre_migration_diagnostic()` in jsonb.
pub fn run_step(unit: &str) -> Result<Vec<serde_json::Value>> {
    Ok(run_unit(unit)?
        .into_iter()
        .map(|c| {
            serde_json::json!({ "check_name": c.name, "status": c.status.as_str(), "details": c.details,
                                "affected_rows": c.affected_rows, "recommendation": c.recommendation })
        })
        .collect())
}

fn server_and_privileges(checks: &mut Vec<Check>) {
    let version_num = count("SELECT current_setting('server_version_num')::bigint", &[]);
    let version = text("SELECT current_setting('server_version')", &[]).unwrap_or_default();
    let status = if version_num >= diagnostics::MIN_SERVER_VERSION_NUM { Status::Ok } else { Status::Error };
    checks.push(Check::new("server_version", status, format!("PostgreSQL {version}")));

    // SECURITY DEFINER: current_user is the extension owner; the caller is the outer user (the
    // login, or the role it SET ROLE to).
    // SAFETY: reads a backend global.
    let caller = unsafe { pgrx::pg_sys::GetOuterUserId() };
    let caller_name = role_name(caller);
    let is_super = |r: pgrx::pg_sys::Oid| flag("SELECT rolsuper FROM pg_roles WHERE oid = $1", &[r.into()]);
    let other_owners = count(include_str!("../../sql/catalog/other_owners.sql"), &[CRM_TABLES.to_vec().into(), crm_owner().unwrap_or(caller).into()]);
    let check = match crm_owner() {
        None => Check::new("privileges", Status::Ok, format!("no CRM table yet: {caller_name} will own what migrate() creates")),
        Some(owner) if owner == caller || (is_super(owner) && is_super(caller)) => Check::new(
            "privileges",
            if other_owners > 0 { Status::Warning } else { Status::Ok },
            if other_owners > 0 {
                format!("{caller_name} owns public.profiles, but some CRM tables belong to other roles: the extension does not read those")
            } else {
                format!("{caller_name} owns the CRM tables (or both are superusers): migrate() may run as {caller_name}")
            },
        ),
        Some(owner) => Check::new(
            "privileges",
            Status::Error,
            format!(
                "the CRM tables belong to {}, not to {caller_name}: migrate() and the partition maintenance run as their owner only (42501 otherwise)",
                role_name(owner)
            ),
        )
        .recommend(format!("GRANT daznode_crm_maintenance TO {0}; SET ROLE {0}; CALL daznode_crm.migrate();", role_name(owner))),
    };
    checks.push(check);
}

fn role_name(oid: pgrx::pg_sys::Oid) -> String {
    text("SELECT $1::pg_catalog.regrole::text", &[oid.into()]).unwrap_or_default()
}

fn schema_shape(checks: &mut Vec<Check>) {
    let present: Vec<&str> = CRM_TABLES.iter().copied().filter(|t| table_exists(t)).collect();
    let owner = crm_owner();
    for table in CRM_TABLES {
        let shape = match relation(table) {
            None => TableShape::Missing,
            Some(r) if r.is_table() && Some(r.owner) != owner => {
                TableShape::ForeignTable { owner: role_name(r.owner), crm_owner: owner.map(role_name).unwrap_or_default() }
            }
            Some(r) => match text("SELECT relkind::text FROM pg_class WHERE oid = $1", &[r.oid.into()]).unwrap_or_default().as_str() {
                "p" => TableShape::Partitioned { partitions: count("SELECT count(*) FROM pg_inherits WHERE inhparent = $1", &[r.oid.into()]) },
                "r" => TableShape::Table,
                kind => TableShape::NotATable { relkind: kind.chars().next().unwrap_or('?') },
            },
        };
        let (status, details, in_the_way) = shape.verdict();
        let mut check = Check::new(format!("object: public.{table}"), status, details);
        if let Some(what) = in_the_way {
            check = check
                .recommend(format!("public.{table} must be a table of the CRM owner: rename the {what} (ALTER ... RENAME), then run the diagnostic again"));
        }
        checks.push(check);
    }
    let legacy_checks = if table_exists("profiles") { count("SELECT cardinality(daznode_crm.legacy_profile_checks())", &[]) } else { 0 };
    let native = table_exists("profiles")
        && flag("SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'public.profiles'::regclass AND conname = 'profiles_email_valid')", &[]);
    let partitioned = crate::api::retention::email_sends_partitioned();
    let (status, shape) = match (present.len(), legacy_checks > 0 || table_exists("users"), native, partitioned) {
        (0, _, _, _) => (Status::Info, "empty: migrate() will create the whole schema"),
        (n, _, _, _) if n < CRM_TABLES.len() => (Status::Warning, "partial: some CRM tables are missing; migrate() creates them"),
        (_, true, false, _) => (Status::Info, "legacy: regex CHECKs or the users table are still there"),
        (_, true, true, _) => (Status::Warning, "half-migrated: native constraints and legacy objects side by side"),
        (_, false, true, true) => (Status::Ok, "migrated and partitioned"),
        (_, false, true, false) => (Status::Ok, "migrated"),
        (_, false, false, _) => (Status::Info, "CRM tables without the legacy CHECKs or the native ones"),
    };
    checks.push(Check::new("schema_shape", status, shape).rows(present.len() as i64));
}

fn pending_steps(checks: &mut Vec<Check>) -> Result<()> {
    let applied = crate::api::migrations::applied_steps()?;
    let applied_refs: Vec<&str> = applied.iter().map(String::as_str).collect();
    match migrations::plan("latest", &applied_refs) {
        Ok(pending) if pending.is_empty() => checks.push(Check::new("pending_migrations", Status::Ok, "every step is applied")),
        Ok(pending) => checks.push(
            Check::new("pending_migrations", Status::Info, pending.iter().map(|s| s.name).collect::<Vec<_>>().join(", "))
                .rows(pending.len() as i64)
                .recommend("After a backup (pg_dump): CALL daznode_crm.migrate();"),
        ),
        Err(e) => checks.push(Check::new("pending_migrations", Status::Error, e.to_string())),
    }
    Ok(())
}

/// One orphan rule: how many rows it finds, counted as the tables' owner.
fn orphans(checks: &mut Vec<Check>, rule: &OrphanRule) {
    let name = format!("{ORPHANS}{}", rule.key());
    let parents = match rule.applicable(column_exists) {
        Ok(p) => p,
        Err(Inapplicable::ChildColumnMissing) => {
            checks.push(Check::new(name, Status::Info, format!("skipped: public.{}.{} does not exist", rule.child_table, rule.child_column)));
            return;
        }
        Err(Inapplicable::ParentMissing(why)) => {
            checks.push(Check::new(name, Status::Info, format!("skipped: {why}")));
            return;
        }
    };
    let n = app_count(&rule.count_sql(&parents), &[]);
    let status = if n == 0 { Status::Ok } else { Status::Warning };
    let parent_names = parents.iter().map(|(t, c)| format!("{t}.{c}")).collect::<Vec<_>>().join(" or ");
    let mut check = Check::new(name, status, format!("{n} row(s) point at no {parent_names}; rule: {} ({})", rule.action.as_str(), rule.why)).rows(n);
    if n > 0 {
        check = check.recommend(match rule.action {
            OrphanAction::Report => format!("Review by hand: {}", rule.count_sql(&parents).replacen("SELECT count(*)", "SELECT c.*", 1)),
            _ => "SELECT * FROM daznode_crm.cleanup_orphaned_records(dry_run => true); then without dry_run".to_string(),
        });
    }
    checks.push(check);
}

/// The groups of profiles sharing the key of a unique planned index (`PlannedIndex::duplicate_groups_sql`,
/// the definition step 0002 reports and the interim index leaves out).
fn duplicate_keys(index: &str, name: &str, what: &str) -> Check {
    let index = indexes::planned(index).expect("a unique planned index");
    let (Some(count), Some(groups)) = (index.blocker_sql(), index.duplicate_groups_sql()) else { unreachable!("a unique planned index") };
    let n = app_count(&count, &[]);
    Check::new(name, count_status(n, Status::Warning), format!("{n} {what}")).rows(n).recommend(format!("{groups};"))
}

fn profile_values(checks: &mut Vec<Check>) {
    if !column_exists("profiles", "email") {
        return;
    }
    checks.push(duplicate_keys(
        EMAIL_KEY_INDEX,
        "duplicate_emails",
        "email(s) shared by several profiles once trimmed and lower-cased; migrate() reports them and leaves them for you",
    ));
    let invalid = app_count("SELECT count(*) FROM public.profiles WHERE NOT daznode_crm.is_valid_email(email)", &[]);
    checks.push(
        Check::new("invalid_emails", count_status(invalid, Status::Warning), format!("{invalid} profile email(s) rejected by daznode_crm.is_valid_email()"))
            .rows(invalid)
            .recommend("SELECT id, email, daznode_crm.email_validation_error(email) FROM public.profiles WHERE NOT daznode_crm.is_valid_email(email);"),
    );
    if column_exists("profiles", "pubkey") {
        checks.push(duplicate_keys(PUBKEY_KEY_INDEX, "duplicate_pubkeys", "node public key(s) shared by several profiles, case ignored"));
        let empty = app_count("SELECT count(*) FROM public.profiles WHERE btrim(pubkey) = ''", &[]);
        checks.push(
            Check::new(
                "empty_pubkeys",
                count_status(empty, Status::Info),
                format!("{empty} pubkey(s) stored as '' (the app's \"no key\"); migrate() sets them to NULL"),
            )
            .rows(empty),
        );
        let invalid = app_count(
            "SELECT count(*) FROM public.profiles WHERE btrim(pubkey) <> '' AND NOT daznode_crm.is_valid_lightning_pubkey(daznode_crm.normalize_lightning_pubkey(pubkey))",
            &[],
        );
        checks.push(
            Check::new("invalid_pubkeys", count_status(invalid, Status::Warning), format!("{invalid} pubkey(s) that are not a compressed secp256k1 point, case ignored"))
                .rows(invalid)
                .recommend("SELECT id, pubkey, daznode_crm.lightning_pubkey_validation_error(pubkey) FROM public.profiles WHERE btrim(pubkey) <> '' AND NOT daznode_crm.is_valid_lightning_pubkey(daznode_crm.normalize_lightning_pubkey(pubkey));"),
        );
    }
}

fn users_vs_profiles(checks: &mut Vec<Check>) {
    if relation("users").is_some() && !table_exists("users") {
        checks.push(
            Check::new("object: public.users", Status::Error, "public.users is not a table of the CRM owner (a view, or another role's table): not read")
                .recommend("Find out who created it: SELECT relkind, relowner::regrole FROM pg_class WHERE oid = 'public.users'::regclass;"),
        );
        return;
    }
    if !column_exists("users", "id") || !column_exists("profiles", "id") {
        let status = if table_exists("users_backup") { "users was consolidated (public.users_backup exists)" } else { "no public.users table" };
        checks.push(Check::new("users_vs_profiles", Status::Ok, status));
        return;
    }
    let absent = app_count("SELECT count(*) FROM public.users u WHERE NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = u.id)", &[]);
    checks.push(
        Check::new(
            "users_absent_from_profiles",
            count_status(absent, Status::Info),
            format!("{absent} users row(s) have no profile; migrate() copies those with a valid, free email"),
        )
        .rows(absent),
    );
    let conflicts = app_count(
        "SELECT count(*) FROM public.users u JOIN public.profiles p ON p.id = u.id
         WHERE daznode_crm.normalize_email(u.email) IS DISTINCT FROM daznode_crm.normalize_email(p.email)",
        &[],
    );
    checks.push(
        Check::new("users_conflicting_with_profiles", count_status(conflicts, Status::Warning), format!("{conflicts} users row(s) whose email differs from their profile's; migrate() keeps the profile's and reports them"))
            .rows(conflicts)
            .recommend("SELECT u.id, u.email AS users_email, p.email AS profiles_email FROM public.users u JOIN public.profiles p USING (id) WHERE daznode_crm.normalize_email(u.email) IS DISTINCT FROM daznode_crm.normalize_email(p.email);"),
    );
}

fn constraints_indexes_collisions(checks: &mut Vec<Check>) {
    let tables = || CRM_TABLES.to_vec().into();
    let not_valid: Vec<Named> = records(include_str!("../../sql/catalog/not_valid_constraints.sql"), &[tables()]);
    checks.push(catalog::listing(
        "not_valid_constraints",
        &not_valid,
        Status::Info,
        "Fix the rows they reject, then SELECT daznode_crm.step_validate_constraints();",
    ));
    let invalid: Vec<Named> = records(include_str!("../../sql/catalog/invalid_indexes.sql"), &[tables()]);
    checks.push(catalog::listing(
        "invalid_indexes",
        &invalid,
        Status::Warning,
        "SELECT * FROM daznode_crm.concurrent_index_plan() \\gexec  -- drops and rebuilds planned ones; DROP INDEX CONCURRENTLY the others",
    ));

    let mut collisions = Vec::new();
    // A users_backup next to users is objects_in_the_way()'s ("in the way of 0004"), not repeated here.
    for idx in PLANNED_INDEXES {
        let other = text(include_str!("../../sql/catalog/name_taken.sql"), &[idx.name.into(), idx.table.into()]);
        if let Some(other) = other {
            collisions.push(format!("the planned index name {} is taken by {other}", quote_ident(idx.name)));
        }
    }
    let status = if collisions.is_empty() { Status::Ok } else { Status::Error };
    let n = collisions.len() as i64;
    let mut check = Check::new("name_collisions", status, if collisions.is_empty() { "none".into() } else { collisions.join("; ") }).rows(n);
    if n > 0 {
        check = check.recommend("Rename the objects named above (ALTER TABLE/INDEX … RENAME TO …), then run the diagnostic again");
    }
    checks.push(check);
}

fn sizes(checks: &mut Vec<Check>) {
    let db = text("SELECT pg_size_pretty(pg_database_size(current_database()))", &[]).unwrap_or_default();
    checks.push(Check::new("database_size", Status::Info, db));
    let per_table = text(include_str!("../../sql/catalog/table_sizes.sql"), &[CRM_TABLES.to_vec().into()]);
    checks.push(Check::new("table_sizes", Status::Info, per_table.unwrap_or_else(|| "no CRM table".into())));
}

fn blockers(checks: &mut Vec<Check>) {
    let open: Vec<OpenTransaction> = records(include_str!("../../sql/catalog/open_transactions.sql"), &[]);
    checks.push(catalog::long_transactions(&open));
    let held: Vec<HeldLock> = records(include_str!("../../sql/catalog/held_locks.sql"), &[CRM_TABLES.to_vec().into()]);
    checks.push(catalog::blocking_locks(&held));
}

/// What breaks the live app, or would: reads that fail for an API role (tried for real), legacy
/// functions of public carrying the guide's names, and secrets exposed to the API roles.
fn live_app(checks: &mut Vec<Check>) {
    let failing: Vec<PolicyReadError> = records("SELECT table_name, role_name, error FROM daznode_crm.policy_read_errors()", &[]);
    if failing.is_empty() {
        checks.push(Check::new("policies: reads as the API roles", Status::Ok, "every CRM table reads without error as every API role"));
    }
    for PolicyReadError { table_name: table, role_name: role, error } in failing {
        checks.push(
            Check::new(format!("policies: {table} as {role}"), Status::Error, format!("reads of {table} by {role}: {error}"))
                .recommend(format!(
                    "SELECT polname, pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = '{table}'::regclass;  \
                     -- migrate() (step 0008) drops the recursive ones, those reading what {role} may not read and those granting more than the role matrix, keeping their definitions"
                )),
        );
    }
    let open = text(include_str!("../../sql/catalog/tables_without_rls.sql"), &[CRM_TABLES.to_vec().into()]);
    if let Some(tables) = open {
        checks.push(
            Check::new("row-level security: off", Status::Error, format!("API roles may read every row of {tables}: row-level security is off there"))
                .recommend("CALL daznode_crm.migrate();  -- step 0008 turns it on, with the role matrix's policies"),
        );
    }
    let legacy: Vec<LegacyFunction> = records(include_str!("../../sql/catalog/legacy_functions.sql"), &[diagnostics::guide_function_names().into()]);
    for f in legacy {
        let exposed = f.status() == Status::Error;
        checks.push(
            Check::new(
                format!("legacy function: {}", f.signature),
                f.status(),
                format!(
                    "{} carries a name of the guide: its unqualified calls (and PostgREST RPCs) run it, not daznode_crm's{}",
                    f.signature,
                    if exposed { "; it is SECURITY DEFINER and executable by the API roles" } else { "" }
                ),
            )
            .recommend(format!(
                "CALL daznode_crm.migrate();  -- step 0008 renames it {} (definition kept in migration_findings), executable by its owner only{}",
                quote_ident(&format!("{}_legacy", f.name)),
                if f.name == "is_admin_user" { ", and puts a leak-free public.is_admin_user(uuid) in its place" } else { "" }
            )),
        );
    }
    let in_the_way: Vec<ObjectInTheWay> = records("SELECT object, step, status, detail, recommendation FROM daznode_crm.objects_in_the_way()", &[]);
    for o in in_the_way {
        let status = if o.status == "ERROR" { Status::Error } else { Status::Warning };
        checks.push(Check::new(format!("in the way of {}: {}", o.step, o.object), status, o.detail).recommend(o.recommendation));
    }
    // The app's triggers fire on the rows the steps change (0002 and 0004 on profiles, the cleanup
    // and 0010 on the others), under the app's own search_path; one that fails stops its step,
    // which then changes nothing and names it (kind step_failed).
    let triggers = text(include_str!("../../sql/catalog/app_triggers.sql"), &[CRM_TABLES.to_vec().into()]);
    if let Some(list) = triggers {
        checks.push(
            Check::new(
                "app triggers on CRM tables",
                Status::Info,
                format!("{list}: they fire on the rows the steps change, under the app's search_path; one that fails stops its step, which changes nothing"),
            )
            .recommend(
                "Try them as the app would: BEGIN; UPDATE public.profiles SET email = email WHERE id = (SELECT id FROM public.profiles LIMIT 1); ROLLBACK;",
            ),
        );
    }
    let exposed: Vec<ExposedColumns> = records(include_str!("../../sql/catalog/sensitive_columns.sql"), &[diagnostics::SENSITIVE_COLUMNS.to_vec().into()]);
    for ExposedColumns { relation: t, columns } in exposed {
        checks.push(
            Check::new(
                format!("sensitive columns: {t}"),
                Status::Error,
                format!("{t} holds {columns} and anon or authenticated may read it without row-level security"),
            )
            .recommend(format!(
                "REVOKE ALL ON {t} FROM anon, authenticated; ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;  -- or SELECT daznode_crm.lock_down('{t}');"
            )),
        );
    }
}

/// A hot standby reads: this diagnostic runs, what writes does not. On the primary, while
/// crm_email_sends is not partitioned yet, whether the disks hold step 0010's copy.
fn standby_and_disk(checks: &mut Vec<Check>) {
    if crate::api::server::on_standby() {
        checks.push(
            Check::new("server: hot standby", Status::Info, "this server is a hot standby (in recovery): the diagnostics read here; everything that writes (cleanup, refresh, migrate(), the retention cleanup) stops with 25006")
                .recommend("Run the maintenance on the primary; pg_cron runs only there too."),
        );
        return;
    }
    if !table_exists("crm_email_sends") || crate::api::retention::email_sends_partitioned() {
        return;
    }
    match crate::api::server::partition_disk_verdict() {
        None => checks.push(Check::new(
            "disk: room for the partitioning",
            Status::Ok,
            "the filesystems under the data and the WAL hold step 0010's copy of crm_email_sends with the 1.2× margin",
        )),
        Some(why) => checks.push(Check::new("disk: room for the partitioning", Status::Error, format!("step 0010 would refuse to start: {why}")).recommend(
            "Free disk space, or move crm_email_sends to a tablespace with room (ALTER TABLE ... SET TABLESPACE), before CALL daznode_crm.migrate('complete');",
        )),
    }
}

fn extensions(checks: &mut Vec<Check>) {
    for (ext, why) in [
        ("pg_cron", "schedules the guide's jobs: SELECT * FROM daznode_crm.schedule_crm_maintenance();"),
        ("pg_stat_statements", "lets diagnose_crm_performance() list the slowest CRM queries"),
    ] {
        let version = text("SELECT extversion FROM pg_extension WHERE extname = $1", &[ext.into()]);
        checks.push(match version {
            Some(v) => Check::new(format!("extension: {ext}"), Status::Ok, format!("installed, version {v}")),
            None => Check::new(format!("extension: {ext}"), Status::Info, format!("not installed in this database ({why})"))
                .recommend(format!("CREATE EXTENSION {ext};  -- needs shared_preload_libraries = '{ext}'")),
        });
    }
}
