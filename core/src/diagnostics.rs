//! The rules of the two diagnostics: statuses, their order, and the thresholds that turn a
//! measurement into OK, INFO, WARNING or ERROR. The SQL layer measures; this module judges.
//!
//! Thresholds are anchored on the Supabase CLI's `inspect db` commands and on pghero's
//! defaults, as documented in the README:
//! - cache hit ratio below 99% (both tools) is a WARNING, once there were 10,000 block accesses;
//! - a table with more than 10,000 live rows scanned sequentially more often than by index is a
//!   WARNING (pghero's "seq scans", Supabase `inspect db seq-scans`);
//! - dead tuples above 10% of live rows, and at least 1,000, is a WARNING (autovacuum's own
//!   default scale factor is 20%; pghero flags tables autovacuum has not caught up with);
//! - no analyze for 7 days on a table that changed is INFO;
//! - an unused index (no scan since the statistics were reset) on a table with writes is INFO,
//!   never dropped automatically (replicas and rare reports may use it);
//! - transactions open for more than 5 minutes block a migration's locks: WARNING.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Error,
    Warning,
    Info,
    Ok,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Error => "ERROR",
            Status::Warning => "WARNING",
            Status::Info => "INFO",
            Status::Ok => "OK",
        }
    }
}

pub const CACHE_HIT_MIN: f64 = 0.99;
/// Below this many block accesses the ratio says nothing yet (a freshly loaded table).
pub const CACHE_MIN_BLOCKS: i64 = 10_000;
pub const SEQ_SCAN_MIN_ROWS: f64 = 10_000.0;
pub const DEAD_TUPLE_RATIO: f64 = 0.10;
pub const DEAD_TUPLE_MIN: i64 = 1_000;
pub const ANALYZE_STALE_DAYS: f64 = 7.0;
pub const LONG_TRANSACTION_SECS: f64 = 300.0;
/// A CRM materialized view refreshed longer ago than this is stale (the guide refreshes hourly).
pub const MATVIEW_STALE_SECS: f64 = 2.0 * 3600.0;
/// PostgreSQL 15 is the oldest major the extension is built and tested for (Cargo.toml features).
/// The live campaign counts' oldest pending delta: older than this, the fold job has missed ten
/// runs (reads stay exact, but each one sums more deltas).
pub const FOLD_BEHIND_SECS: f64 = 600.0;

/// The fold is behind when its oldest pending delta is older than `FOLD_BEHIND_SECS`.
pub fn fold_status(oldest_delta_secs: Option<f64>) -> Status {
    match oldest_delta_secs {
        Some(s) if s > FOLD_BEHIND_SECS => Status::Warning,
        _ => Status::Ok,
    }
}

pub const MIN_SERVER_VERSION_NUM: i64 = 150_000;

/// One row of a diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub details: String,
    pub affected_rows: Option<i64>,
    pub recommendation: Option<String>,
}

impl Check {
    pub fn new(name: impl Into<String>, status: Status, details: impl Into<String>) -> Check {
        Check { name: name.into(), status, details: details.into(), affected_rows: None, recommendation: None }
    }

    pub fn rows(mut self, n: i64) -> Check {
        self.affected_rows = Some(n);
        self
    }

    pub fn recommend(mut self, sql: impl Into<String>) -> Check {
        self.recommendation = Some(sql.into());
        self
    }
}

/// Most severe first, then by name; stable, so checks of one name keep their order.
pub fn sort_checks(checks: &mut [Check]) {
    checks.sort_by(|a, b| a.status.cmp(&b.status).then_with(|| a.name.cmp(&b.name)));
}

/// Status of a count where any row is a problem of the given severity.
pub fn count_status(n: i64, when_nonzero: Status) -> Status {
    if n > 0 {
        when_nonzero
    } else {
        Status::Ok
    }
}

/// Cache hit ratio from block hits and reads; None when nothing was read yet. Too few
/// accesses to judge is INFO.
pub fn cache_hit(hits: i64, reads: i64) -> (Option<f64>, Status) {
    let total = hits + reads;
    if total == 0 {
        return (None, Status::Info);
    }
    let ratio = hits as f64 / total as f64;
    let status = if total < CACHE_MIN_BLOCKS {
        Status::Info
    } else if ratio < CACHE_HIT_MIN {
        Status::Warning
    } else {
        Status::Ok
    };
    (Some(ratio), status)
}

pub fn seq_scan_status(seq_scan: i64, idx_scan: i64, live_rows: f64) -> Status {
    if live_rows > SEQ_SCAN_MIN_ROWS && seq_scan > idx_scan {
        Status::Warning
    } else {
        Status::Ok
    }
}

pub fn dead_tuples_status(live: i64, dead: i64) -> Status {
    if dead >= DEAD_TUPLE_MIN && dead as f64 > DEAD_TUPLE_RATIO * live.max(1) as f64 {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// Days since the last (auto)analyze; None when the table was never analyzed.
pub fn analyze_status(days_since: Option<f64>, modified_since_analyze: i64) -> Status {
    match days_since {
        None if modified_since_analyze > 0 => Status::Warning,
        Some(d) if d > ANALYZE_STALE_DAYS && modified_since_analyze > 0 => Status::Info,
        _ => Status::Ok,
    }
}

pub fn long_transaction_status(age_secs: f64) -> Status {
    if age_secs > LONG_TRANSACTION_SECS {
        Status::Warning
    } else {
        Status::Ok
    }
}

pub fn matview_status(seconds_since_refresh: Option<f64>, populated: bool) -> Status {
    match (populated, seconds_since_refresh) {
        (false, _) => Status::Warning,
        (true, None) => Status::Info,
        (true, Some(s)) if s > MATVIEW_STALE_SECS => Status::Warning,
        _ => Status::Ok,
    }
}

/// An index whose key columns are a leading prefix of (or equal to) another index's, with the
/// same method, no expression and no predicate, is redundant (pghero's "duplicate indexes").
/// Unique indexes are never redundant: they enforce something. Of two identical indexes, the
/// caller reports one.
pub fn is_redundant(candidate: &[i16], candidate_unique: bool, other: &[i16]) -> bool {
    !candidate_unique && !candidate.is_empty() && other.starts_with(candidate)
}

/// Does an RLS expression call a function per row? A call wrapped in a scalar sub-SELECT is
/// evaluated once per query (an InitPlan); a bare call is evaluated for every row.
pub fn policy_calls_function_per_row(expr: &str) -> bool {
    let lower = expr.to_lowercase();
    let bytes = lower.as_bytes();
    let mut depth_in_select: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => {
                let rest = lower[i + 1..].trim_start();
                depth_in_select.push(rest.starts_with("select ") || depth_in_select.last().copied().unwrap_or(false));
                // A '(' right after an identifier is a call.
                let before = lower[..i].trim_end();
                let ident_before = before.chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"');
                let keyword_before = ["and", "or", "not", "in", "exists", "any", "all", "array", "select", "where", "using", "check"]
                    .iter()
                    .any(|k| before.ends_with(k) && before[..before.len() - k.len()].chars().last().is_none_or(|c| !c.is_alphanumeric() && c != '_'));
                let inside_select = depth_in_select.len() >= 2 && depth_in_select[depth_in_select.len() - 2];
                if ident_before && !keyword_before && !inside_select {
                    return true;
                }
            }
            b')' => {
                depth_in_select.pop();
            }
            b'\'' => {
                // Skip string literals.
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// Who may call one of the guide's functions through its name in public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallableBy {
    /// The maintenance role (diagnostics, cleanup, refresh, retention): anon and authenticated
    /// get 42501 through PostgREST.
    Maintenance,
    /// Every role: it answers only about the caller, or only computes on its arguments.
    Everyone,
}

impl CallableBy {
    /// The grantee of EXECUTE on the wrapper.
    pub fn grantee(self) -> &'static str {
        match self {
            CallableBy::Maintenance => "daznode_crm_maintenance",
            CallableBy::Everyone => "PUBLIC",
        }
    }
}

/// One function the guide (or the DazNode app, as an RPC) calls by its bare name, and the native
/// function of schema daznode_crm its wrapper in public calls, with the same arguments.
#[derive(Debug, Clone, Copy)]
pub struct GuideFunction {
    pub name: &'static str,
    pub target: &'static str,
    pub callable_by: CallableBy,
}

/// The guide's function names (its SQL calls them unqualified): a function of public with one
/// of them shadows daznode_crm's for the guide's calls and the app's RPCs, so step 0008 moves a
/// legacy one and step 0011 puts the wrapper there. `is_admin_user` keeps the legacy signature
/// `(user_id uuid DEFAULT NULL)`, answered by `is_admin_user_about` without the legacy leak.
pub const GUIDE_API: &[GuideFunction] = &[
    GuideFunction { name: "run_pre_migration_diagnostic", target: "run_pre_migration_diagnostic", callable_by: CallableBy::Maintenance },
    GuideFunction { name: "cleanup_orphaned_records", target: "cleanup_orphaned_records", callable_by: CallableBy::Maintenance },
    GuideFunction { name: "diagnose_crm_performance", target: "diagnose_crm_performance", callable_by: CallableBy::Maintenance },
    GuideFunction { name: "refresh_crm_materialized_views", target: "refresh_crm_materialized_views", callable_by: CallableBy::Maintenance },
    GuideFunction { name: "cleanup_old_email_partitions", target: "cleanup_old_email_partitions", callable_by: CallableBy::Maintenance },
    GuideFunction { name: "is_admin_user", target: "is_admin_user_about", callable_by: CallableBy::Everyone },
    GuideFunction { name: "is_valid_email", target: "is_valid_email", callable_by: CallableBy::Everyone },
    GuideFunction { name: "is_valid_lightning_pubkey", target: "is_valid_lightning_pubkey", callable_by: CallableBy::Everyone },
];

/// The names of `GUIDE_API`.
pub fn guide_function_names() -> Vec<&'static str> {
    GUIDE_API.iter().map(|g| g.name).collect()
}

/// Column names that hold secrets (as Supabase's linter counts them): a table exposing one to
/// the API roles without row-level security is an ERROR.
pub const SENSITIVE_COLUMNS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "password_hash",
    "secret",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "token",
    "private_key",
    "ssn",
    "credit_card",
    "card_number",
    "cvv",
];

/// What stands at `public.<crm table>`, as the catalog says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableShape {
    Missing,
    Table,
    Partitioned {
        partitions: i64,
    },
    /// A table of another role than the CRM owner: never read.
    ForeignTable {
        owner: String,
        crm_owner: String,
    },
    /// A relation of another kind (`pg_class.relkind`): a view, a materialized view, …
    NotATable {
        relkind: char,
    },
}

impl TableShape {
    /// (status, details, what stands in the way when it must be renamed): a relation that is
    /// not the CRM owner's table is an ERROR, since every step would meet it.
    pub fn verdict(&self) -> (Status, String, Option<String>) {
        let in_the_way = |what: String, why: &str| (Status::Error, format!("a {what}, {why}"), Some(what));
        match self {
            TableShape::Missing => (Status::Info, "missing".into(), None),
            TableShape::Table => (Status::Info, "table".into(), None),
            TableShape::Partitioned { partitions } => (Status::Info, format!("partitioned, {partitions} partitions"), None),
            TableShape::ForeignTable { owner, crm_owner } => {
                in_the_way(format!("table owned by {owner}"), &format!("not by the CRM owner {crm_owner}: not read"))
            }
            TableShape::NotATable { relkind: 'v' } => in_the_way("VIEW".into(), "not a table"),
            TableShape::NotATable { relkind: 'm' } => in_the_way("materialized view".into(), "not a table"),
            TableShape::NotATable { relkind } => in_the_way(format!("relation of kind {relkind}"), "not a table"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fold_ten_minutes_behind_is_a_warning() {
        assert_eq!(fold_status(None), Status::Ok);
        assert_eq!(fold_status(Some(59.0)), Status::Ok);
        assert_eq!(fold_status(Some(FOLD_BEHIND_SECS + 1.0)), Status::Warning);
    }

    #[test]
    fn table_shapes() {
        assert_eq!(TableShape::Table.verdict(), (Status::Info, "table".into(), None));
        assert_eq!(TableShape::Partitioned { partitions: 30 }.verdict().1, "partitioned, 30 partitions");
        let v = TableShape::NotATable { relkind: 'v' }.verdict();
        assert_eq!((v.0, v.2.as_deref()), (Status::Error, Some("VIEW")));
        let f = TableShape::ForeignTable { owner: "mallory".into(), crm_owner: "postgres".into() }.verdict();
        assert_eq!(f, (Status::Error, "a table owned by mallory, not by the CRM owner postgres: not read".into(), Some("table owned by mallory".into())));
        assert_eq!(TableShape::NotATable { relkind: 'f' }.verdict().1, "a relation of kind f, not a table");
    }

    #[test]
    fn maintenance_wrappers_are_not_for_everyone() {
        for g in GUIDE_API {
            let reads_or_writes_tables = !matches!(g.name, "is_admin_user" | "is_valid_email" | "is_valid_lightning_pubkey");
            assert_eq!(g.callable_by == CallableBy::Maintenance, reads_or_writes_tables, "{}", g.name);
        }
        assert_eq!(CallableBy::Everyone.grantee(), "PUBLIC");
        let mut names = guide_function_names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), GUIDE_API.len());
    }

    #[test]
    fn name_lists_are_lower_case_identifiers() {
        for n in guide_function_names().iter().chain(SENSITIVE_COLUMNS) {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
        }
    }

    #[test]
    fn ordering_is_most_severe_first() {
        let mut checks =
            vec![Check::new("b", Status::Ok, ""), Check::new("a", Status::Info, ""), Check::new("c", Status::Error, ""), Check::new("a", Status::Warning, "")];
        sort_checks(&mut checks);
        let got: Vec<_> = checks.iter().map(|c| (c.status, c.name.as_str())).collect();
        assert_eq!(got, vec![(Status::Error, "c"), (Status::Warning, "a"), (Status::Info, "a"), (Status::Ok, "b")]);
    }

    #[test]
    fn thresholds() {
        assert_eq!(cache_hit(99_000, 1_000).1, Status::Ok);
        assert_eq!(cache_hit(98_000, 2_000).1, Status::Warning);
        assert_eq!(cache_hit(98, 2).1, Status::Info);
        assert_eq!(cache_hit(0, 0), (None, Status::Info));
        assert_eq!(seq_scan_status(10, 5, 20_000.0), Status::Warning);
        assert_eq!(seq_scan_status(10, 5, 5_000.0), Status::Ok);
        assert_eq!(dead_tuples_status(100_000, 20_000), Status::Warning);
        assert_eq!(dead_tuples_status(100, 90), Status::Ok); // under the absolute minimum
        assert_eq!(analyze_status(None, 10), Status::Warning);
        assert_eq!(analyze_status(Some(8.0), 10), Status::Info);
        assert_eq!(analyze_status(Some(8.0), 0), Status::Ok);
        assert_eq!(long_transaction_status(301.0), Status::Warning);
        assert_eq!(matview_status(None, false), Status::Warning);
        assert_eq!(matview_status(Some(60.0), true), Status::Ok);
        assert_eq!(matview_status(Some(3.0 * 3600.0), true), Status::Warning);
    }

    #[test]
    fn redundant_indexes() {
        assert!(is_redundant(&[1], false, &[1, 2]));
        assert!(is_redundant(&[1, 2], false, &[1, 2]));
        assert!(!is_redundant(&[1, 2], true, &[1, 2, 3]));
        assert!(!is_redundant(&[2], false, &[1, 2]));
        assert!(!is_redundant(&[1, 2, 3], false, &[1, 2]));
    }

    #[test]
    fn per_row_function_calls_in_policies() {
        assert!(policy_calls_function_per_row("is_admin_user(auth.uid())"));
        assert!(policy_calls_function_per_row("(user_id = auth.uid())"));
        assert!(!policy_calls_function_per_row("( SELECT daznode_crm.is_admin_user() AS is_admin_user)"));
        assert!(!policy_calls_function_per_row("(user_id = ( SELECT auth.uid() AS uid))"));
        assert!(!policy_calls_function_per_row("(status = 'draft(x)'::text)"));
        assert!(!policy_calls_function_per_row("((a = 1) AND (b IN (1, 2)))"));
        assert!(policy_calls_function_per_row("(EXISTS ( SELECT 1 FROM admin_roles WHERE (admin_roles.user_id = auth.uid())))") == false);
    }
}
