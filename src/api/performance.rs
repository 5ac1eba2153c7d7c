//! `diagnose_crm_performance()`: the guide's post-migration check. Catalog and statistics views
//! are read here; `daznode_crm_core::diagnostics` holds the thresholds (documented in the README).

use crate::api::spi::{flag, rows, text};
use daznode_crm_core::diagnostics::{self, Status};
use daznode_crm_core::schema::CRM_TABLES;
use pgrx::prelude::*;

/// (area, object, metric, value, status, recommendation), sorted by status (most severe first)
/// before the status becomes text.
type PerfRow = (String, String, String, String, Status, Option<String>);

fn row(
    area: &str,
    object: impl Into<String>,
    metric: &str,
    value: impl Into<String>,
    status: Status,
    rec: Option<String>,
) -> PerfRow {
    (
        area.to_string(),
        object.into(),
        metric.to_string(),
        value.into(),
        status,
        rec,
    )
}

fn num(v: &Option<String>) -> f64 {
    v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0.0)
}

/// `SELECT * FROM daznode_crm.diagnose_crm_performance() WHERE status <> 'OK';`
#[pg_extern(stable, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn diagnose_crm_performance() -> TableIterator<
    'static,
    (
        name!(area, String),
        name!(object, String),
        name!(metric, String),
        name!(value, String),
        name!(status, String),
        name!(recommendation, Option<String>),
    ),
> {
    let mut out = perf_rows(CRM_TABLES);
    out.sort_by_key(|r| r.4);
    TableIterator::new(
        out.into_iter()
            .map(|(a, o, m, v, s, r)| (a, o, m, v, s.as_str().to_string(), r))
            .collect::<Vec<_>>(),
    )
}

/// Every finding, area by area.
fn perf_rows(tables: &[&str]) -> Vec<PerfRow> {
    let mut out: Vec<PerfRow> = Vec::new();
    if crate::api::server::on_standby() {
        out.push(row("server", "hot standby", "in recovery", "yes", Status::Info,
                     Some("read-only here: these figures are the standby's; refresh and cleanup run on the primary".into())));
    }
    cache(&mut out, tables);
    tables_health(&mut out, tables);
    indexes(&mut out, tables);
    foreign_keys(&mut out, tables);
    matviews(&mut out);
    partitions(&mut out);
    policies(&mut out, tables);
    statements(&mut out);
    out
}

const TABLE_OIDS: &str =
    "(SELECT to_regclass('public.' || quote_ident(t)) FROM unnest($1::text[]) t)";

fn cache(out: &mut Vec<PerfRow>, tables: &[&str]) {
    let db = rows("SELECT blks_hit::text, blks_read::text FROM pg_stat_database WHERE datname = current_database()", &[], 2);
    if let Some(r) = db.first() {
        let (ratio, status) = diagnostics::cache_hit(num(&r[0]) as i64, num(&r[1]) as i64);
        out.push(row("cache", "database", "cache hit ratio", ratio.map_or("no reads yet".into(), |v| format!("{:.2}%", v * 100.0)), status,
            (status == Status::Warning).then(|| "Raise shared_buffers, or find the queries that read the most (pg_stat_statements)".to_string())));
    }
    for r in rows(
        &format!("SELECT relname::text, heap_blks_hit::text, heap_blks_read::text FROM pg_statio_user_tables WHERE relid IN {TABLE_OIDS} ORDER BY relname"),
        &[tables.to_vec().into()],
        3,
    ) {
        let (ratio, status) = diagnostics::cache_hit(num(&r[1]) as i64, num(&r[2]) as i64);
        out.push(row("cache", format!("public.{}", r[0].clone().unwrap_or_default()), "cache hit ratio",
            ratio.map_or("no reads yet".into(), |v| format!("{:.2}%", v * 100.0)), status, None));
    }
}

fn tables_health(out: &mut Vec<PerfRow>, tables: &[&str]) {
    for r in rows(
        &format!(
            "SELECT s.relid::regclass::text, s.seq_scan::text, coalesce(s.idx_scan, 0)::text, s.n_live_tup::text, s.n_dead_tup::text,
                    (extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze)) / 86400)::text,
                    s.n_mod_since_analyze::text, pg_size_pretty(pg_total_relation_size(s.relid)),
                    pg_size_pretty(pg_indexes_size(s.relid))
             FROM pg_stat_user_tables s WHERE s.relid IN {TABLE_OIDS} ORDER BY s.relname"
        ),
        &[tables.to_vec().into()],
        9,
    ) {
        let t = r[0].clone().unwrap_or_default();
        let (seq, idx, live, dead) = (num(&r[1]) as i64, num(&r[2]) as i64, num(&r[3]), num(&r[4]) as i64);
        let status = diagnostics::seq_scan_status(seq, idx, live);
        out.push(row("scans", &t, "sequential / index scans", format!("{seq} / {idx} ({} live rows)", live as i64), status,
            (status == Status::Warning).then(|| format!("Find the queries scanning {t} (EXPLAIN); see concurrent_index_plan() for the planned indexes"))));
        let status = diagnostics::dead_tuples_status(live as i64, dead);
        out.push(row("vacuum", &t, "dead tuples", format!("{dead} dead / {} live", live as i64), status,
            (status == Status::Warning).then(|| format!("VACUUM (ANALYZE) {t};  -- and check autovacuum settings for it"))));
        let days = r[5].as_deref().and_then(|s| s.parse::<f64>().ok());
        let status = diagnostics::analyze_status(days, num(&r[6]) as i64);
        out.push(row("vacuum", &t, "days since last analyze", days.map_or("never".into(), |d| format!("{d:.1}")), status,
            (status != Status::Ok).then(|| format!("ANALYZE {t};"))));
        out.push(row("size", &t, "total size (indexes)", format!("{} ({})", r[7].clone().unwrap_or_default(), r[8].clone().unwrap_or_default()), Status::Info, None));
    }
}

fn indexes(out: &mut Vec<PerfRow>, tables: &[&str]) {
    // Every index of the CRM tables, with its key columns (0 for an expression).
    let all = rows(
        &format!(
            "SELECT i.indexrelid::regclass::text, i.indrelid::text, i.indisunique::text, i.indisvalid::text,
                    array_to_string(i.indkey::int2[], ','), (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL)::text,
                    coalesce(s.idx_scan, 0)::text, pg_size_pretty(pg_relation_size(i.indexrelid)),
                    (SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.oid = i.indexrelid)::text,
                    EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)::text
             FROM pg_index i LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
             WHERE i.indrelid IN {TABLE_OIDS} ORDER BY 1"
        ),
        &[tables.to_vec().into()],
        10,
    );
    let cols = |s: &Option<String>| -> Vec<i16> {
        s.as_deref()
            .unwrap_or("")
            .split(',')
            .filter_map(|c| c.parse().ok())
            .collect()
    };
    for (n, r) in all.iter().enumerate() {
        let name = r[0].clone().unwrap_or_default();
        let unique = r[2].as_deref() == Some("true");
        if r[3].as_deref() == Some("false") {
            out.push(row("indexes", &name, "invalid index", "left by a failed CREATE INDEX CONCURRENTLY", Status::Warning,
                Some(format!("DROP INDEX CONCURRENTLY {name};  -- or SELECT * FROM daznode_crm.concurrent_index_plan() \\gexec if it is planned"))));
            continue;
        }
        let scans = num(&r[6]) as i64;
        if scans == 0 && !unique && r[9].as_deref() != Some("true") {
            out.push(row("indexes", &name, "scans since statistics reset", format!("0 ({})", r[7].clone().unwrap_or_default()), Status::Info,
                Some(format!("Unused here; check replicas and monthly reports before DROP INDEX CONCURRENTLY {name};"))));
        }
        let my_cols = cols(&r[4]);
        let plain = r[5].as_deref() == Some("false") && !my_cols.contains(&0);
        if !plain {
            continue;
        }
        let covered_by = all.iter().enumerate().find(|(m, o)| {
            *m != n && o[1] == r[1] && o[8] == r[8] && o[5].as_deref() == Some("false")
                && diagnostics::is_redundant(&my_cols, unique, &cols(&o[4]))
                // Of two identical indexes, report the one whose name sorts last.
                && (cols(&o[4]) != my_cols || o[0] < r[0])
        });
        if let Some((_, other)) = covered_by {
            let other = other[0].clone().unwrap_or_default();
            out.push(row(
                "indexes",
                &name,
                "redundant index",
                format!("its columns lead {other}"),
                Status::Warning,
                Some(format!(
                    "DROP INDEX CONCURRENTLY {name};  -- {other} serves the same lookups"
                )),
            ));
        }
    }
}

fn foreign_keys(out: &mut Vec<PerfRow>, tables: &[&str]) {
    for r in rows(
        &format!(
            "SELECT c.conrelid::regclass::text, quote_ident(c.conname),
                    (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(att, n)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att)
             FROM pg_constraint c
             WHERE c.contype = 'f' AND c.conrelid IN {TABLE_OIDS}
               AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indpred IS NULL
                               AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                               AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
             ORDER BY 1, 2"
        ),
        &[tables.to_vec().into()],
        3,
    ) {
        let t = r[0].clone().unwrap_or_default();
        let c = r[2].clone().unwrap_or_default();
        out.push(row("foreign keys", format!("{t}.{}", r[1].clone().unwrap_or_default()), "foreign key without index", format!("({c})"), Status::Warning,
            Some(format!("CREATE INDEX CONCURRENTLY ON {t} ({c});  -- deletes of the parent scan {t} otherwise"))));
    }
}

fn matviews(out: &mut Vec<PerfRow>) {
    for r in rows(
        "SELECT r.view_name, c.relispopulated::text,
                (SELECT extract(epoch FROM now() - l.started_at)::text FROM daznode_crm.materialized_view_refresh_log l
                 WHERE l.view_name = r.view_name AND l.mode IN ('concurrently', 'full') ORDER BY l.id DESC LIMIT 1),
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL)::text,
                (c.oid IS NOT NULL AND c.relkind = 'm')::text
         FROM daznode_crm.materialized_view_registry r LEFT JOIN pg_class c ON c.oid = to_regclass(r.view_name)
         ORDER BY 1",
        &[],
        5,
    ) {
        let name = r[0].clone().unwrap_or_default();
        if r[4].as_deref() != Some("true") {
            out.push(row("materialized views", &name, "exists", "no (registered, not created yet)", Status::Info, None));
            continue;
        }
        let secs = r[2].as_deref().and_then(|s| s.parse::<f64>().ok());
        let status = diagnostics::matview_status(secs, r[1].as_deref() == Some("true"));
        out.push(row("materialized views", &name, "seconds since last refresh", secs.map_or("never refreshed by daznode_crm".into(), |s| format!("{s:.0}")), status,
            (status != Status::Ok).then(|| "SELECT * FROM daznode_crm.refresh_crm_materialized_views();".to_string())));
        let concurrent = r[3].as_deref() == Some("true");
        out.push(row("materialized views", &name, "can refresh concurrently", if concurrent { "yes" } else { "no: no unique index on plain columns" },
            if concurrent { Status::Ok } else { Status::Warning }, None));
    }
}

fn partitions(out: &mut Vec<PerfRow>) {
    if !crate::api::partitions::email_sends_partitioned() {
        out.push(row("partitions", "public.crm_email_sends", "partitioned", "no", Status::Info,
            Some("CALL daznode_crm.migrate('complete');  -- the guide's complete migration partitions it by month".into())));
        return;
    }
    // Counts read the tables: as their owner (security::as_role). Bounds come parsed from
    // email_sends_partitions(), the helper the retention cleanup reads too. The default
    // partition is counted by its own name (a regclass, quoted by PostgreSQL): a filter on
    // tableoid of the parent would read every partition, 100M rows at s=1000.
    let r = crate::api::security::as_crm_owner(|| {
        let mut r = rows(
            "SELECT count(*)::text, NULL::text, count(*) FILTER (WHERE p.range_end > now() + interval '1 month')::text
             FROM daznode_crm.email_sends_partitions() p",
            &[],
            3,
        );
        let defaults = rows("SELECT d.rel::text FROM daznode_crm.email_sends_partitions() d WHERE d.bound = 'DEFAULT'", &[], 1);
        let stuck: i64 = defaults.iter().flatten().flatten().map(|rel| crate::api::spi::count(&format!("SELECT count(*) FROM {rel}"), &[])).sum();
        if let Some(row) = r.first_mut() {
            row[1] = Some(stuck.to_string());
        }
        r
    })
    .unwrap_or_default();
    if let Some(r) = r.first() {
        out.push(row(
            "partitions",
            "public.crm_email_sends",
            "partitions",
            r[0].clone().unwrap_or_default(),
            Status::Info,
            None,
        ));
        let stuck = num(&r[1]) as i64;
        out.push(row(
            "partitions",
            "public.crm_email_sends",
            "rows in the default partition",
            stuck.to_string(),
            if stuck > 0 {
                Status::Warning
            } else {
                Status::Ok
            },
            (stuck > 0).then(|| {
                "SELECT * FROM daznode_crm.cleanup_old_email_partitions();  -- moves them"
                    .to_string()
            }),
        ));
        let future = num(&r[2]) as i64;
        out.push(row(
            "partitions",
            "public.crm_email_sends",
            "partitions ending after next month",
            future.to_string(),
            if future > 0 {
                Status::Ok
            } else {
                Status::Warning
            },
            (future == 0).then(|| {
                "SELECT * FROM daznode_crm.cleanup_old_email_partitions();  -- creates them"
                    .to_string()
            }),
        ));
    }
}

fn policies(out: &mut Vec<PerfRow>, tables: &[&str]) {
    for r in rows(
        &format!(
            "SELECT p.polrelid::regclass::text || ': ' || quote_ident(p.polname), coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
                    coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
             FROM pg_policy p WHERE p.polrelid IN {TABLE_OIDS} ORDER BY 1"
        ),
        &[tables.to_vec().into()],
        3,
    ) {
        let name = r[0].clone().unwrap_or_default();
        let per_row = [&r[1], &r[2]].iter().any(|e| diagnostics::policy_calls_function_per_row(e.as_deref().unwrap_or("")));
        out.push(row("rls", &name, "function called per row", if per_row { "yes" } else { "no" },
            if per_row { Status::Warning } else { Status::Ok },
            per_row.then(|| "Wrap the call in a sub-select, USING ((SELECT f(...))), so that it runs once per query".to_string())));
    }
}

fn statements(out: &mut Vec<PerfRow>) {
    let installed = flag(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
        &[],
    );
    let loaded = flag("SELECT 'pg_stat_statements' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))", &[]);
    if !installed || !loaded {
        out.push(row("queries", "pg_stat_statements", "installed", if installed { "installed but not preloaded" } else { "no" }, Status::Info,
            Some("shared_preload_libraries = 'pg_stat_statements', then CREATE EXTENSION pg_stat_statements; to list the slowest CRM queries".into())));
        return;
    }
    let schema = text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements'", &[]).unwrap_or_default();
    for r in rows(
        &format!(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 120), round(mean_exec_time::numeric, 2)::text, calls::text
             FROM {schema}.pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query ~* '(crm_|profiles|admin_roles|orders|subscriptions)'
             ORDER BY mean_exec_time DESC LIMIT 5"
        ),
        &[],
        3,
    ) {
        let mean = num(&r[1]);
        out.push(row("queries", r[0].clone().unwrap_or_default(), "mean ms (calls)", format!("{mean} ({})", r[2].clone().unwrap_or_default()),
            if mean > 100.0 { Status::Warning } else { Status::Info },
            (mean > 100.0).then(|| "Over the guide's 100 ms: EXPLAIN (ANALYZE, BUFFERS) it".to_string())));
    }
}
