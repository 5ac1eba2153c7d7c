//! The migration API: the step catalog and planning (from `daznode_crm_core::migrations`), the
//! planned indexes (`daznode_crm_core::indexes`) and their online build plan. The steps
//! themselves and the `migrate()` procedure are SQL, in sql/migrations.sql.

use crate::api::errors::{internal, invalid, OrReport, Result};
use daznode_crm_core::indexes::{self, IndexState, IndexStatus, PlannedIndex, PLANNED_INDEXES};
use daznode_crm_core::{migrations, schema};
use pgrx::prelude::*;

/// Every migration step this version knows, in the order they apply.
/// `SELECT * FROM daznode_crm.migration_steps();`
#[pg_extern(immutable, parallel_safe)]
fn migration_steps() -> TableIterator<
    'static,
    (name!(step, String), name!(target, String), name!(since, String), name!(function_name, String), name!(summary, String), name!(is_procedure, bool)),
> {
    TableIterator::new(migrations::STEPS.iter().map(step_row))
}

fn step_row(s: &migrations::Step) -> (String, String, String, String, String, bool) {
    (s.name.to_string(), s.target.as_str().to_string(), s.since.to_string(), s.function(), s.summary.to_string(), s.procedure)
}

/// The steps `CALL daznode_crm.migrate(target)` would apply now, in order.
/// `SELECT * FROM daznode_crm.pending_migrations('safe');`
#[pg_extern(stable)]
fn pending_migrations(
    target: default!(Option<&str>, "'latest'"),
) -> Result<
    TableIterator<
        'static,
        (name!(step, String), name!(target, String), name!(since, String), name!(function_name, String), name!(summary, String), name!(is_procedure, bool)),
    >,
> {
    let target = target.ok_or_else(|| invalid("migration target must not be NULL: use 'latest', 'safe', 'complete' or a step name"))?;
    let applied = applied_steps()?;
    let applied: Vec<&str> = applied.iter().map(String::as_str).collect();
    let steps = migrations::plan(target, &applied).or_report()?;
    Ok(TableIterator::new(steps.into_iter().map(step_row).collect::<Vec<_>>()))
}

/// The steps the ledger (daznode_crm.schema_migrations) records, in order.
pub fn applied_steps() -> Result<Vec<String>> {
    Spi::connect(|client| {
        client
            .select("SELECT step FROM daznode_crm.schema_migrations ORDER BY step", None, &[])?
            .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
            .collect::<std::result::Result<Vec<_>, _>>()
    })
    .map_err(|e| internal(format!("cannot read the migration ledger: {e}")))
}

/// The indexes the migration wants, with the SQL that creates each.
#[pg_extern(immutable, parallel_safe)]
fn planned_indexes() -> TableIterator<
    'static,
    (
        name!(index_name, String),
        name!(table_name, String),
        name!(is_unique, bool),
        name!(definition, String),
        name!(purpose, String),
        name!(create_sql, String),
        name!(blocker_sql, Option<String>),
        name!(duplicates_sql, Option<String>),
    ),
> {
    TableIterator::new(PLANNED_INDEXES.iter().map(|i| {
        (
            i.name.to_string(),
            i.table.to_string(),
            i.unique,
            i.definition.to_string(),
            i.purpose.to_string(),
            i.create_sql(false),
            i.blocker_sql(),
            i.duplicate_groups_sql(),
        )
    }))
}

/// Tables with fewer estimated rows get their indexes inside the migration step.
#[pg_extern(immutable, parallel_safe)]
fn small_table_rows() -> f64 {
    indexes::SMALL_TABLE_ROWS
}

/// The CRM application tables (schema public), parents before children.
#[pg_extern(immutable, parallel_safe)]
fn crm_tables() -> Vec<String> {
    schema::CRM_TABLES.iter().map(|t| t.to_string()).collect()
}

/// (exists, indisvalid, a build in progress) of index `public.<name>` on `public.<table>`.
fn index_catalog(table: &str, name: &str) -> Result<(bool, bool, bool, Option<String>)> {
    let table = format!("public.{}", daznode_crm_core::sql::quote_ident(table));
    let name = format!("public.{}", daznode_crm_core::sql::quote_ident(name));
    Spi::connect(|client| {
        let row = client
            .select(
                "SELECT x.tbl IS NOT NULL, i.indexrelid IS NOT NULL, coalesce(i.indisvalid, false),
                        (SELECT p.phase FROM pg_catalog.pg_stat_progress_create_index p
                         WHERE p.index_relid = i.indexrelid OR (p.relid = x.tbl AND p.index_relid = 0) LIMIT 1)
                 FROM (SELECT pg_catalog.to_regclass($1) AS tbl, pg_catalog.to_regclass($2) AS idx) AS x
                 LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = x.idx AND i.indrelid = x.tbl",
                None,
                &[table.as_str().into(), name.as_str().into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>((
            row.get::<bool>(1)?.unwrap_or(false),
            row.get::<bool>(2)?.unwrap_or(false),
            row.get::<bool>(3)?.unwrap_or(false),
            row.get::<String>(4)?,
        ))
    })
    .map_err(|e| internal(format!("cannot read the catalog for {name}: {e}")))
}

/// The interim index of `index` with the duplicates there are now (`PlannedIndex::interim_create_sql`).
fn interim_create(index: &PlannedIndex, concurrently: bool) -> Result<Option<String>> {
    let Some(sql) = index.left_out_sql() else {
        return Ok(None);
    };
    let left_out = crate::api::spi::first::<Vec<String>>(&sql, &[]).unwrap_or_default();
    if left_out.is_empty() {
        return Ok(None);
    }
    index.interim_create_sql(&left_out, concurrently).map(Some).map_err(|e| internal(format!("interim index of {}: {e}", index.name)))
}

/// The interim unique index for `index_name` while its duplicates wait: NULL when it is not a
/// unique planned index or has no duplicate. Step 0006 builds it; `concurrent_index_plan()`
/// plans it for big tables. `SELECT daznode_crm.interim_index_sql('profiles_email_normalized_key', true);`
#[pg_extern(stable)]
fn interim_index_sql(index_name: &str, concurrently: bool) -> Result<Option<String>> {
    indexes::planned(index_name).map_or(Ok(None), |i| interim_create(i, concurrently))
}

fn index_states() -> Result<Vec<IndexState>> {
    PLANNED_INDEXES
        .iter()
        .map(|index| {
            let (table_exists, exists, valid, phase) = index_catalog(index.table, index.name)?;
            let status = IndexStatus::classify(exists, valid, phase.is_some());
            let blocked = match (table_exists, status, index.blocker_sql()) {
                (true, IndexStatus::Missing | IndexStatus::Invalid, Some(query)) => crate::api::spi::count(&query, &[]),
                _ => 0,
            };
            let interim = if index.unique && table_exists {
                let (_, exists, valid, building) = index_catalog(index.table, &index.interim_name())?;
                let status = IndexStatus::classify(exists, valid, building.is_some());
                let due = blocked > 0 && matches!(status, IndexStatus::Missing | IndexStatus::Invalid);
                indexes::Interim { status, create_sql: if due { interim_create(index, true)? } else { None } }
            } else {
                indexes::Interim { status: IndexStatus::Missing, create_sql: None }
            };
            Ok(IndexState { index, table_exists, status, blocked, phase, interim })
        })
        .collect()
}

/// One statement per row, each runnable on its own outside a transaction block, that brings
/// every planned index to valid: `SELECT * FROM daznode_crm.concurrent_index_plan() \gexec`,
/// or one pg_cron job per row. Invalid leftovers of a failed build are dropped and rebuilt;
/// unique indexes whose rows still collide are left out until the duplicates are fixed.
#[pg_extern(stable)]
fn concurrent_index_plan() -> Result<SetOfIterator<'static, String>> {
    let statements: Vec<String> =
        index_states()?.into_iter().filter(|s| s.table_exists).flat_map(|s| indexes::statements_for(s.index, s.status, s.blocked, &s.interim)).collect();
    Ok(SetOfIterator::new(statements))
}

/// Each planned index: missing, building, invalid or valid, and why.
#[pg_extern(stable)]
fn check_concurrent_indexes_status() -> Result<
    TableIterator<
        'static,
        (name!(index_name, String), name!(table_name, String), name!(status, String), name!(detail, Option<String>), name!(definition, String)),
    >,
> {
    Ok(TableIterator::new(
        index_states()?
            .into_iter()
            .map(|s| {
                let detail = s.detail();
                (s.index.name.to_string(), s.index.table.to_string(), s.status.as_str().to_string(), detail, s.index.create_sql(true))
            })
            .collect::<Vec<_>>(),
    ))
}

extension_sql_file!(
    "../../sql/migrations.sql",
    name = "migrations",
    requires = [
        "rates",
        migration_steps,
        pending_migrations,
        planned_indexes,
        small_table_rows,
        crm_tables,
        interim_index_sql,
        concurrent_index_plan,
        check_concurrent_indexes_status
    ],
);
