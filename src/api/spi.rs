//! Small read helpers over SPI. Values always travel as `$n` arguments; identifiers in the SQL
//! text come from the core's checked lists, quoted by `quote_ident`. Their queries are ours: one
//! that fails is a bug, not a caller's mistake, and stops at once as XX000 naming the query
//! (every caller-facing error is an `errors::Result` with its own SQLSTATE).

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use serde::de::DeserializeOwned;

/// The first column of the first row, None when there is no row or it is NULL.
pub fn first<T: IntoDatum + FromDatum>(sql: &str, args: &[DatumWithOid]) -> Option<T> {
    Spi::connect(|client| {
        let table = client.select(sql, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<T>()
    })
    .unwrap_or_else(|e| error!("daznode_crm: internal query failed: {e}: {sql}"))
}

/// One bigint (no row or NULL as 0).
pub fn count(sql: &str, args: &[DatumWithOid]) -> i64 {
    first::<i64>(sql, args).unwrap_or(0)
}

pub fn text(sql: &str, args: &[DatumWithOid]) -> Option<String> {
    first::<String>(sql, args)
}

pub fn flag(sql: &str, args: &[DatumWithOid]) -> bool {
    first::<bool>(sql, args).unwrap_or(false)
}

/// Rows as typed records: each row of `sql` becomes one `T` (a `daznode_crm_core::catalog`
/// struct), its columns matched to `T`'s fields by name through `to_jsonb`: NULL is `None`,
/// numbers stay numbers, arrays become `Vec`s. A column `T` lacks or has of another type is
/// an internal error naming the query, never a silent default.
pub fn records<T: DeserializeOwned>(sql: &str, args: &[DatumWithOid]) -> Vec<T> {
    let wrapped = format!("SELECT pg_catalog.to_jsonb(q) FROM ({sql}) AS q");
    let values = Spi::connect(|client| client.select(&wrapped, None, args)?.map(|row| row.get::<pgrx::JsonB>(1)).collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| error!("daznode_crm: internal query failed: {e}: {sql}"));
    values
        .into_iter()
        .map(|v| serde_json::from_value(v.map_or(serde_json::Value::Null, |j| j.0)))
        .collect::<Result<Vec<T>, _>>()
        .unwrap_or_else(|e| error!("daznode_crm: internal query returned an unexpected row: {e}: {sql}"))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use daznode_crm_core::catalog::{IndexFacts, Named};

    #[pgrx::pg_test]
    fn records_keep_the_query_order_and_the_types() {
        let names: Vec<Named> = records("SELECT g::text AS name FROM generate_series(1, 50) g ORDER BY g DESC", &[]);
        assert_eq!(names.len(), 50);
        assert_eq!((names[0].name.as_str(), names[49].name.as_str()), ("50", "1"));
        // An index of the catalog, read by the shipped query: int2vector keys as a Vec.
        Spi::run("CREATE TABLE public.crm_email_templates (a int, b int); CREATE INDEX ON public.crm_email_templates (b, a)").unwrap();
        let all: Vec<IndexFacts> = records(include_str!("../../sql/catalog/indexes.sql"), &[vec!["crm_email_templates"].into()]);
        assert_eq!((all.len(), all[0].columns.clone(), all[0].valid, all[0].scans), (1, vec![2, 1], true, 0));
    }

    #[pgrx::pg_test(error = "daznode_crm: internal query returned an unexpected row: missing field `name`: SELECT 1 AS nom")]
    fn a_missing_column_is_an_error_not_a_default() {
        let _: Vec<Named> = records("SELECT 1 AS nom", &[]);
    }
}
