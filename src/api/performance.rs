//! `diagnose_crm_performance()`: the guide's post-migration check. Catalog and statistics views
//! are read here; `daznode_crm_core::diagnostics` holds the thresholds (documented in the README).

use crate::api::spi::{count, flag, records, text};
use daznode_crm_core::catalog::{BlockCounts, IndexFacts, MatviewFacts, Named, PolicyFacts, SlowStatement, TableStats, UnindexedForeignKey};
use daznode_crm_core::diagnostics::{self, Status};
use daznode_crm_core::schema::CRM_TABLES;
use pgrx::prelude::*;

/// (area, object, metric, value, status, recommendation), sorted by status (most severe first)
/// before the status becomes text.
type PerfRow = (String, String, String, String, Status, Option<String>);

fn row(area: &str, object: impl Into<String>, metric: &str, value: impl Into<String>, status: Status, rec: Option<String>) -> PerfRow {
    (area.to_string(), object.into(), metric.to_string(), value.into(), status, rec)
}

/// `SELECT * FROM daznode_crm.diagnose_crm_performance() WHERE status <> 'OK';`
#[pg_extern(stable, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn diagnose_crm_performance() -> TableIterator<
    'static,
    (name!(area, String), name!(object, String), name!(metric, String), name!(value, String), name!(status, String), name!(recommendation, Option<String>)),
> {
    let mut out = perf_rows(CRM_TABLES);
    out.sort_by_key(|r| r.4);
    TableIterator::new(out.into_iter().map(|(a, o, m, v, s, r)| (a, o, m, v, s.as_str().to_string(), r)).collect::<Vec<_>>())
}

/// Every finding, area by area.
fn perf_rows(tables: &[&str]) -> Vec<PerfRow> {
    let mut out: Vec<PerfRow> = Vec::new();
    if crate::api::server::on_standby() {
        out.push(row(
            "server",
            "hot standby",
            "in recovery",
            "yes",
            Status::Info,
            Some("read-only here: these figures are the standby's; refresh and cleanup run on the primary".into()),
        ));
    }
    cache(&mut out, tables);
    tables_health(&mut out, tables);
    indexes(&mut out, tables);
    foreign_keys(&mut out, tables);
    matviews(&mut out);
    live_counts(&mut out);
    partitions(&mut out);
    policies(&mut out, tables);
    statements(&mut out);
    out
}

/// The live campaign counts (step 0011): every trigger of the counter in place, and how far
/// behind the fold is.
fn live_counts(out: &mut Vec<PerfRow>) {
    let Some(facts) = crate::api::analytics::live_counts() else { return };
    let missing = facts.missing_triggers();
    let (value, status, rec) = if missing.is_empty() {
        ("in place".to_string(), Status::Ok, None)
    } else {
        let rec = "SELECT daznode_crm.install_send_counter() as the CRM owner (the counts then drift from the rows: see README \"Live campaign analytics\")";
        (format!("missing or disabled: {}", missing.join(", ")), Status::Error, Some(rec.to_string()))
    };
    out.push(row("analytics", "public.crm_email_sends", "live campaign counter", value, status, rec));
    if let Some(p) = crate::api::analytics::pending_deltas(&facts) {
        let (status, value, rec) = p.verdict();
        out.push(row("analytics", daznode_crm_core::analytics::DELTAS_TABLE, "deltas waiting for the fold", value, status, rec));
    }
}

fn hit_ratio(b: &BlockCounts) -> (String, Status) {
    let (ratio, status) = diagnostics::cache_hit(b.hit, b.read);
    (ratio.map_or("no reads yet".into(), |v| format!("{:.2}%", v * 100.0)), status)
}

fn cache(out: &mut Vec<PerfRow>, tables: &[&str]) {
    let db: Vec<BlockCounts> =
        records("SELECT NULL::text AS name, blks_hit AS hit, blks_read AS read FROM pg_stat_database WHERE datname = current_database()", &[]);
    if let Some(b) = db.first() {
        let (ratio, status) = hit_ratio(b);
        out.push(row(
            "cache",
            "database",
            "cache hit ratio",
            ratio,
            status,
            (status == Status::Warning).then(|| "Raise shared_buffers, or find the queries that read the most (pg_stat_statements)".to_string()),
        ));
    }
    let per_table: Vec<BlockCounts> = records(
        "SELECT relname::text AS name, coalesce(heap_blks_hit, 0) AS hit, coalesce(heap_blks_read, 0) AS read FROM pg_statio_user_tables
         WHERE relid IN (SELECT to_regclass('public.' || quote_ident(t)) FROM unnest($1::text[]) t) ORDER BY relname",
        &[tables.to_vec().into()],
    );
    for b in per_table {
        let (ratio, status) = hit_ratio(&b);
        out.push(row("cache", format!("public.{}", b.name.unwrap_or_default()), "cache hit ratio", ratio, status, None));
    }
}

fn tables_health(out: &mut Vec<PerfRow>, tables: &[&str]) {
    let stats: Vec<TableStats> = records(include_str!("../../sql/catalog/table_stats.sql"), &[tables.to_vec().into()]);
    for s in stats {
        let t = &s.relation;
        let status = diagnostics::seq_scan_status(s.seq_scan, s.idx_scan, s.live as f64);
        out.push(row(
            "scans",
            t,
            "sequential / index scans",
            format!("{} / {} ({} live rows)", s.seq_scan, s.idx_scan, s.live),
            status,
            (status == Status::Warning).then(|| format!("Find the queries scanning {t} (EXPLAIN); see concurrent_index_plan() for the planned indexes")),
        ));
        let status = diagnostics::dead_tuples_status(s.live, s.dead);
        out.push(row(
            "vacuum",
            t,
            "dead tuples",
            format!("{} dead / {} live", s.dead, s.live),
            status,
            (status == Status::Warning).then(|| format!("VACUUM (ANALYZE) {t};  -- and check autovacuum settings for it")),
        ));
        let status = diagnostics::analyze_status(s.days_since_analyze, s.modified_since_analyze);
        out.push(row(
            "vacuum",
            t,
            "days since last analyze",
            s.days_since_analyze.map_or("never".into(), |d| format!("{d:.1}")),
            status,
            (status != Status::Ok).then(|| format!("ANALYZE {t};")),
        ));
        out.push(row("size", t, "total size (indexes)", format!("{} ({})", s.total_size, s.indexes_size), Status::Info, None));
    }
}

fn indexes(out: &mut Vec<PerfRow>, tables: &[&str]) {
    let all: Vec<IndexFacts> = records(include_str!("../../sql/catalog/indexes.sql"), &[tables.to_vec().into()]);
    for i in &all {
        let name = &i.name;
        if !i.valid {
            out.push(row(
                "indexes",
                name,
                "invalid index",
                "left by a failed CREATE INDEX CONCURRENTLY",
                Status::Warning,
                Some(format!("DROP INDEX CONCURRENTLY {name};  -- or SELECT * FROM daznode_crm.concurrent_index_plan() \\gexec if it is planned")),
            ));
            continue;
        }
        if i.scans == 0 && !i.unique && !i.backs_constraint {
            out.push(row(
                "indexes",
                name,
                "scans since statistics reset",
                format!("0 ({})", i.size),
                Status::Info,
                Some(format!("Unused here; check replicas and monthly reports before DROP INDEX CONCURRENTLY {name};")),
            ));
        }
        if let Some(other) = i.covered_by(&all) {
            let other = &other.name;
            out.push(row(
                "indexes",
                name,
                "redundant index",
                format!("its columns lead {other}"),
                Status::Warning,
                Some(format!("DROP INDEX CONCURRENTLY {name};  -- {other} serves the same lookups")),
            ));
        }
    }
}

fn foreign_keys(out: &mut Vec<PerfRow>, tables: &[&str]) {
    let fks: Vec<UnindexedForeignKey> = records(include_str!("../../sql/catalog/unindexed_foreign_keys.sql"), &[tables.to_vec().into()]);
    for UnindexedForeignKey { relation: t, constraint_name, columns: c } in fks {
        out.push(row(
            "foreign keys",
            format!("{t}.{constraint_name}"),
            "foreign key without index",
            format!("({c})"),
            Status::Warning,
            Some(format!("CREATE INDEX CONCURRENTLY ON {t} ({c});  -- deletes of the parent scan {t} otherwise")),
        ));
    }
}

fn matviews(out: &mut Vec<PerfRow>) {
    let views: Vec<MatviewFacts> = records(include_str!("../../sql/catalog/matviews.sql"), &[]);
    for v in views {
        let name = &v.view_name;
        if !v.is_matview {
            out.push(row("materialized views", name, "exists", "no (registered, not created yet)", Status::Info, None));
            continue;
        }
        let secs = v.secs_since_refresh;
        let status = diagnostics::matview_status(secs, v.populated == Some(true));
        out.push(row(
            "materialized views",
            name,
            "seconds since last refresh",
            secs.map_or("never refreshed by daznode_crm".into(), |s| format!("{s:.0}")),
            status,
            (status != Status::Ok).then(|| "SELECT * FROM daznode_crm.refresh_crm_materialized_views();".to_string()),
        ));
        out.push(row(
            "materialized views",
            name,
            "can refresh concurrently",
            if v.unique_index { "yes" } else { "no: no unique index on plain columns" },
            if v.unique_index { Status::Ok } else { Status::Warning },
            None,
        ));
    }
}

fn partitions(out: &mut Vec<PerfRow>) {
    if !crate::api::retention::email_sends_partitioned() {
        out.push(row(
            "partitions",
            "public.crm_email_sends",
            "partitioned",
            "no",
            Status::Info,
            Some("CALL daznode_crm.migrate('complete');  -- the guide's complete migration partitions it by month".into()),
        ));
        return;
    }
    // Counts read the tables: as their owner (security::as_role). Bounds come parsed from
    // email_sends_partitions(), the helper the retention cleanup reads too. The default
    // partition is counted by its own name (a regclass, quoted by PostgreSQL): a filter on
    // tableoid of the parent would read every partition, 100M rows at s=1000.
    let counts = crate::api::security::as_crm_owner(|| {
        let (partitions, future) = (
            count("SELECT count(*) FROM daznode_crm.email_sends_partitions()", &[]),
            count("SELECT count(*) FROM daznode_crm.email_sends_partitions() p WHERE p.range_end > now() + interval '1 month'", &[]),
        );
        let defaults: Vec<Named> = records("SELECT d.rel::text AS name FROM daznode_crm.email_sends_partitions() d WHERE d.bound = 'DEFAULT'", &[]);
        let stuck: i64 = defaults.iter().map(|d| count(&format!("SELECT count(*) FROM {}", d.name), &[])).sum();
        (partitions, stuck, future)
    });
    let Some((partitions, stuck, future)) = counts else {
        return;
    };
    let sends = "public.crm_email_sends";
    out.push(row("partitions", sends, "partitions", partitions.to_string(), Status::Info, None));
    out.push(row(
        "partitions",
        sends,
        "rows in the default partition",
        stuck.to_string(),
        if stuck > 0 { Status::Warning } else { Status::Ok },
        (stuck > 0).then(|| "SELECT * FROM daznode_crm.cleanup_old_email_partitions();  -- moves them".to_string()),
    ));
    out.push(row(
        "partitions",
        sends,
        "partitions ending after next month",
        future.to_string(),
        if future > 0 { Status::Ok } else { Status::Warning },
        (future == 0).then(|| "SELECT * FROM daznode_crm.cleanup_old_email_partitions();  -- creates them".to_string()),
    ));
}

fn policies(out: &mut Vec<PerfRow>, tables: &[&str]) {
    let policies: Vec<PolicyFacts> = records(include_str!("../../sql/catalog/policies.sql"), &[tables.to_vec().into()]);
    for p in policies {
        let per_row = [&p.using_expr, &p.check_expr].iter().any(|e| diagnostics::policy_calls_function_per_row(e));
        out.push(row(
            "rls",
            &p.name,
            "function called per row",
            if per_row { "yes" } else { "no" },
            if per_row { Status::Warning } else { Status::Ok },
            per_row.then(|| "Wrap the call in a sub-select, USING ((SELECT f(...))), so that it runs once per query".to_string()),
        ));
    }
}

fn statements(out: &mut Vec<PerfRow>) {
    let installed = flag("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')", &[]);
    let loaded = flag("SELECT 'pg_stat_statements' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))", &[]);
    if !installed || !loaded {
        out.push(row(
            "queries",
            "pg_stat_statements",
            "installed",
            if installed { "installed but not preloaded" } else { "no" },
            Status::Info,
            Some("shared_preload_libraries = 'pg_stat_statements', then CREATE EXTENSION pg_stat_statements; to list the slowest CRM queries".into()),
        ));
        return;
    }
    let schema = text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements'", &[]).unwrap_or_default();
    let slowest: Vec<SlowStatement> = records(
        &format!(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 120) AS query, round(mean_exec_time::numeric, 2)::float8 AS mean_ms, calls
             FROM {schema}.pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query ~* '(crm_|profiles|admin_roles|orders|subscriptions)'
             ORDER BY mean_exec_time DESC LIMIT 5"
        ),
        &[],
    );
    for q in slowest {
        let slow = q.mean_ms > 100.0;
        out.push(row(
            "queries",
            q.query,
            "mean ms (calls)",
            format!("{} ({})", q.mean_ms, q.calls),
            if slow { Status::Warning } else { Status::Info },
            slow.then(|| "Over the guide's 100 ms: EXPLAIN (ANALYZE, BUFFERS) it".to_string()),
        ));
    }
}
