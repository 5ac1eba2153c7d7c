//! Facts read from the catalog and the statistics views, as typed records. The queries live in
//! `sql/catalog/*.sql`; the extension reads each row as one `to_jsonb` record and serde turns it
//! into the struct of the same column names (NULL is `None`, numbers stay numbers, arrays are
//! `Vec`s). The verdicts on them live here too, with their tests: the wrappers only read and
//! push.

use crate::diagnostics::{count_status, long_transaction_status, Check, Status, LONG_TRANSACTION_SECS};
use serde::Deserialize;

/// One name (a constraint, an index, a table): `sql/catalog/not_valid_constraints.sql` and
/// `invalid_indexes.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Named {
    pub name: String,
}

/// A relation's kind (`pg_class.relkind`) and its quoted, qualified name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RelationKind {
    pub kind: String,
    pub name: String,
}

/// An open transaction of another client backend: `sql/catalog/open_transactions.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OpenTransaction {
    pub pid: i32,
    pub usename: Option<String>,
    pub application_name: Option<String>,
    pub open_secs: f64,
}

/// A relation lock another session holds on a CRM table: `sql/catalog/held_locks.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HeldLock {
    pub pid: i32,
    pub mode: String,
    pub relation: String,
}

/// Lock modes that stop the app's writes (ROW EXCLUSIVE) on the table: a migration step waiting
/// behind them would queue every writer behind itself.
pub const WRITE_BLOCKING_MODES: &[&str] = &["ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"];

/// Seconds as PostgreSQL prints an interval truncated to the second: `01:02:03`, `00:05:00`.
pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `long_transactions`: the transactions open for more than `LONG_TRANSACTION_SECS`, oldest first.
pub fn long_transactions(open: &[OpenTransaction]) -> Check {
    let mut long: Vec<&OpenTransaction> = open.iter().filter(|t| long_transaction_status(t.open_secs) != Status::Ok).collect();
    long.sort_by(|a, b| b.open_secs.total_cmp(&a.open_secs));
    let list: Vec<String> = long
        .iter()
        .map(|t| {
            format!(
                "pid {} ({}, {}) open for {}",
                t.pid,
                t.usename.as_deref().unwrap_or("?"),
                t.application_name.as_deref().filter(|a| !a.is_empty()).unwrap_or("no application_name"),
                clock(t.open_secs)
            )
        })
        .collect();
    let details = if list.is_empty() { format!("none open for more than {LONG_TRANSACTION_SECS} s") } else { list.join("; ") };
    let check = Check::new("long_transactions", count_status(list.len() as i64, Status::Warning), details).rows(list.len() as i64);
    if list.is_empty() {
        check
    } else {
        check.recommend("Let them finish, or SELECT pg_cancel_backend(<pid>); a migration step would wait for their locks")
    }
}

/// `blocking_locks`: the locks held on CRM tables that stop writes, by pid.
pub fn blocking_locks(held: &[HeldLock]) -> Check {
    let mut blocking: Vec<&HeldLock> = held.iter().filter(|l| WRITE_BLOCKING_MODES.contains(&l.mode.as_str())).collect();
    blocking.sort_by_key(|l| l.pid);
    let list: Vec<String> = blocking.iter().map(|l| format!("pid {} holds {} on {}", l.pid, l.mode, l.relation)).collect();
    let check = Check::new("blocking_locks", count_status(list.len() as i64, Status::Warning), none_or(&list, "; ")).rows(list.len() as i64);
    if list.is_empty() {
        check
    } else {
        check.recommend("Wait for those sessions, or stop them; see pg_stat_activity for what they run")
    }
}

/// A check listing names: OK (or `status` when there are some), "none" when empty.
pub fn listing(check: &str, names: &[Named], status: Status, recommendation: &str) -> Check {
    let names: Vec<String> = names.iter().map(|n| n.name.clone()).collect();
    let c = Check::new(check, count_status(names.len() as i64, status), none_or(&names, ", ")).rows(names.len() as i64);
    if names.is_empty() && status != Status::Info {
        c
    } else {
        c.recommend(recommendation)
    }
}

fn none_or(list: &[String], sep: &str) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list.join(sep)
    }
}

/// A policy read that failed for an API role: `daznode_crm.policy_read_errors()`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PolicyReadError {
    pub table_name: String,
    pub role_name: String,
    pub error: String,
}

/// A function of public carrying one of the guide's names: `sql/catalog/legacy_functions.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LegacyFunction {
    pub signature: String,
    pub name: String,
    pub security_definer: bool,
    pub api_executable: bool,
}

impl LegacyFunction {
    /// SECURITY DEFINER and executable by anon or authenticated: an ERROR, else a WARNING.
    pub fn status(&self) -> Status {
        if self.security_definer && self.api_executable {
            Status::Error
        } else {
            Status::Warning
        }
    }
}

/// An object a step would meet: `daznode_crm.objects_in_the_way()`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ObjectInTheWay {
    pub object: String,
    pub step: String,
    pub status: String,
    pub detail: String,
    pub recommendation: String,
}

/// A relation of public that anon or authenticated may read without RLS, with the sensitive
/// columns it holds: `sql/catalog/sensitive_columns.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExposedColumns {
    pub relation: String,
    pub columns: String,
}

/// Block hits and reads (of the database, or of one table): `pg_stat_database`, `pg_statio_user_tables`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BlockCounts {
    pub name: Option<String>,
    pub hit: i64,
    pub read: i64,
}

/// The live campaign counts of step 0011: `sql/catalog/live_counts.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LiveCounts {
    pub owner: i64,
    /// The counter's triggers public.crm_email_sends carries, enabled always.
    pub triggers: Vec<String>,
}

impl LiveCounts {
    /// The counter's triggers that are missing or not enabled always: writes they would have
    /// counted are not (an ERROR: the counts drift from the rows).
    pub fn missing_triggers(&self) -> Vec<&'static str> {
        crate::analytics::TRIGGERS.iter().copied().filter(|t| !self.triggers.iter().any(|h| h == t)).collect()
    }
}

/// What waits for the fold: `sql/catalog/pending_deltas.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PendingDeltas {
    pub pending: i64,
    pub oldest_secs: Option<f64>,
}

impl PendingDeltas {
    /// (status, value, recommendation): behind when the oldest delta waited past
    /// `FOLD_BEHIND_SECS` (the fold job is not running).
    pub fn verdict(&self) -> (Status, String, Option<String>) {
        let status = crate::diagnostics::fold_status(self.oldest_secs);
        let value = match self.oldest_secs {
            Some(s) => format!("{} deltas, the oldest {:.0} s old", self.pending, s),
            None => "0 deltas".to_string(),
        };
        let rec = (status != Status::Ok).then(|| {
            "SELECT daznode_crm.fold_campaign_counts(); then SELECT daznode_crm.schedule_crm_maintenance() (job daznode-crm-fold-campaign-counts)".to_string()
        });
        (status, value, rec)
    }
}

/// One CRM table's statistics: `sql/catalog/table_stats.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TableStats {
    pub relation: String,
    pub seq_scan: i64,
    pub idx_scan: i64,
    pub live: i64,
    pub dead: i64,
    pub days_since_analyze: Option<f64>,
    pub modified_since_analyze: i64,
    pub total_size: String,
    pub indexes_size: String,
}

/// One index of a CRM table: `sql/catalog/indexes.sql`. `columns` are the key attribute numbers
/// (0 for an expression).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IndexFacts {
    pub name: String,
    pub table_oid: i64,
    pub unique: bool,
    pub valid: bool,
    pub columns: Vec<i16>,
    pub partial_or_expression: bool,
    pub scans: i64,
    pub size: String,
    pub access_method: Option<String>,
    pub backs_constraint: bool,
}

impl IndexFacts {
    /// A plain index: key columns only, no expression, no predicate.
    pub fn plain(&self) -> bool {
        !self.partial_or_expression && !self.columns.contains(&0)
    }

    /// The index of `all` whose lookups already serve this one's, if any (of two identical
    /// ones, the name that sorts first serves the other).
    pub fn covered_by<'a>(&self, all: &'a [IndexFacts]) -> Option<&'a IndexFacts> {
        if !self.plain() {
            return None;
        }
        all.iter().find(|o| {
            o.name != self.name
                && o.table_oid == self.table_oid
                && o.access_method == self.access_method
                && !o.partial_or_expression
                && crate::diagnostics::is_redundant(&self.columns, self.unique, &o.columns)
                && (o.columns != self.columns || o.name < self.name)
        })
    }
}

/// A foreign key no index leads with: `sql/catalog/unindexed_foreign_keys.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UnindexedForeignKey {
    pub relation: String,
    pub constraint_name: String,
    pub columns: String,
}

/// A registered materialized view: `sql/catalog/matviews.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MatviewFacts {
    pub view_name: String,
    pub is_matview: bool,
    pub populated: Option<bool>,
    pub secs_since_refresh: Option<f64>,
    pub unique_index: bool,
}

/// A row-level security policy of a CRM table, with its expressions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PolicyFacts {
    pub name: String,
    pub using_expr: String,
    pub check_expr: String,
}

/// One of the slowest statements on CRM tables (pg_stat_statements).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SlowStatement {
    pub query: String,
    pub mean_ms: f64,
    pub calls: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_counts_verdicts() {
        let all = LiveCounts { owner: 10, triggers: crate::analytics::TRIGGERS.iter().map(|t| t.to_string()).collect() };
        assert!(all.missing_triggers().is_empty());
        let one = LiveCounts { owner: 10, triggers: vec!["daznode_count_sends".into()] };
        assert_eq!(one.missing_triggers(), vec!["daznode_count_sends_ins", "daznode_count_sends_del"]);
        let idle = PendingDeltas { pending: 0, oldest_secs: None }.verdict();
        assert_eq!((idle.0, idle.1.as_str(), idle.2), (Status::Ok, "0 deltas", None));
        let behind = PendingDeltas { pending: 4000, oldest_secs: Some(3600.0) }.verdict();
        assert_eq!((behind.0, behind.1.as_str()), (Status::Warning, "4000 deltas, the oldest 3600 s old"));
        assert!(behind.2.unwrap().contains("fold_campaign_counts()"));
    }

    fn tx(pid: i32, secs: f64) -> OpenTransaction {
        OpenTransaction { pid, usename: Some("app".into()), application_name: Some(String::new()), open_secs: secs }
    }

    #[test]
    fn records_come_from_json_by_column_name() {
        let t: OpenTransaction = serde_json::from_str(r#"{"pid": 42, "usename": null, "application_name": "psql", "open_secs": 301.5}"#).unwrap();
        assert_eq!((t.pid, t.usename, t.open_secs), (42, None, 301.5));
        let i: IndexFacts = serde_json::from_str(
            r#"{"name": "i", "table_oid": 16384, "unique": false, "valid": true, "columns": [2, 1], "partial_or_expression": false,
                "scans": 0, "size": "8192 bytes", "access_method": "btree", "backs_constraint": false}"#,
        )
        .unwrap();
        assert_eq!(i.columns, vec![2, 1]);
        assert!(serde_json::from_str::<Named>(r#"{"nom": "x"}"#).is_err(), "a renamed column is an error, not a default");
    }

    #[test]
    fn only_transactions_past_the_limit_are_long_oldest_first() {
        let c = long_transactions(&[tx(1, 10.0), tx(2, 301.0), tx(3, 3723.0)]);
        assert_eq!((c.status, c.affected_rows), (Status::Warning, Some(2)));
        assert_eq!(c.details, "pid 3 (app, no application_name) open for 01:02:03; pid 2 (app, no application_name) open for 00:05:01");
        let quiet = long_transactions(&[tx(1, 299.0)]);
        assert_eq!((quiet.status, quiet.details.as_str(), quiet.recommendation), (Status::Ok, "none open for more than 300 s", None));
    }

    #[test]
    fn only_locks_that_stop_writes_block() {
        let lock = |pid, mode: &str| HeldLock { pid, mode: mode.into(), relation: "public.profiles".into() };
        let c = blocking_locks(&[lock(9, "AccessShareLock"), lock(8, "RowExclusiveLock"), lock(7, "AccessExclusiveLock"), lock(5, "ShareLock")]);
        assert_eq!(c.details, "pid 5 holds ShareLock on public.profiles; pid 7 holds AccessExclusiveLock on public.profiles");
        assert_eq!(blocking_locks(&[lock(9, "AccessShareLock")]).status, Status::Ok);
    }

    #[test]
    fn listings_say_none_or_the_names() {
        let none = listing("invalid_indexes", &[], Status::Warning, "rebuild");
        assert_eq!((none.status, none.details.as_str(), none.recommendation), (Status::Ok, "none", None));
        let some = listing("invalid_indexes", &[Named { name: "a".into() }, Named { name: "b".into() }], Status::Warning, "rebuild");
        assert_eq!((some.status, some.details.as_str(), some.affected_rows), (Status::Warning, "a, b", Some(2)));
        // An informational listing always says what to do next.
        assert!(listing("not_valid_constraints", &[], Status::Info, "validate").recommendation.is_some());
    }

    #[test]
    fn an_index_led_by_another_is_covered_and_of_twins_the_later_name() {
        let idx = |name: &str, columns: Vec<i16>| IndexFacts {
            name: name.into(),
            table_oid: 1,
            unique: false,
            valid: true,
            columns,
            partial_or_expression: false,
            scans: 0,
            size: "8 kB".into(),
            access_method: Some("btree".into()),
            backs_constraint: false,
        };
        let all = vec![idx("a", vec![1, 2]), idx("b", vec![1]), idx("c", vec![1, 2]), idx("d", vec![3])];
        assert_eq!(all[1].covered_by(&all).map(|o| o.name.as_str()), Some("a"));
        assert_eq!(all[2].covered_by(&all).map(|o| o.name.as_str()), Some("a"));
        assert_eq!(all[0].covered_by(&all), None, "of twins, the first name stays");
        assert_eq!(all[3].covered_by(&all), None);
        assert_eq!(clock(59.9), "00:00:59");
    }
}
