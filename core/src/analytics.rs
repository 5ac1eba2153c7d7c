//! Live campaign counts: the SQL that keeps each campaign's funnel current without a refresh.
//!
//! Three tables' worth of state, all in schema `crm_private` (the CRM owner's, not exposed):
//! - `campaign_send_deltas`: appended by a statement-level trigger on `crm_email_sends` (one row
//!   per statement and campaign, from its transition tables). Writers only ever insert, so eight
//!   webhooks updating one campaign never queue on a counter row.
//! - `campaign_send_counts`: one row per campaign, the folded sum; only the fold writes it.
//! - a read sums both, in one statement, hence in one snapshot: what it shows is exactly the
//!   recount of the rows that snapshot sees (plus the history of dropped partitions, which no
//!   trigger subtracts).
//!
//! Every count is one of sql/rates.sql's `send_is_*` predicates: the definition stays there.
//! This module plans the SQL; `daznode_crm.campaign_counts_sql(part)` hands it to the steps.

/// A counter of a campaign: its column name and the predicate on a send that it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    pub predicate: &'static str,
}

/// The counters, in the order of the analytics view's columns.
pub const COUNTERS: &[Counter] = &[
    Counter { name: "recipients", predicate: "true" },
    Counter { name: "sent", predicate: "daznode_crm.send_is_sent(sent_at)" },
    Counter { name: "delivered", predicate: "daznode_crm.send_is_delivered(sent_at, bounced_at, status)" },
    Counter { name: "opened", predicate: "daznode_crm.send_is_opened(opened_at, clicked_at, bounced_at)" },
    Counter { name: "clicked", predicate: "daznode_crm.send_is_clicked(clicked_at, bounced_at)" },
    Counter { name: "bounced", predicate: "daznode_crm.send_is_bounced(bounced_at)" },
    Counter { name: "failed", predicate: "daznode_crm.send_is_failed(status)" },
];

pub const COUNTS_TABLE: &str = "crm_private.campaign_send_counts";
pub const DELTAS_TABLE: &str = "crm_private.campaign_send_deltas";
/// The triggers on public.crm_email_sends (INSERT, UPDATE, DELETE: PostgreSQL allows transition
/// tables on one event per trigger), and their function (owned by the CRM owner).
pub const TRIGGERS: &[&str] = &["daznode_count_sends_ins", "daznode_count_sends", "daznode_count_sends_del"];
pub const TRIGGER_FUNCTION: &str = "crm_private.count_send_changes()";

/// The rates of the analytics view, each from sql/rates.sql: (column, function, numerator, divisor).
const RATES: &[(&str, &str, &str)] = &[
    ("open_rate", "opened", "delivered"),
    ("click_rate", "clicked", "delivered"),
    ("bounce_rate", "bounced", "sent"),
    ("delivery_rate", "delivered", "sent"),
];

/// A part of the SQL, by the name `campaign_counts_sql(part)` takes.
pub fn part(name: &str) -> Option<String> {
    Some(match name {
        "tables" => tables(),
        "trigger_body" => trigger_body(),
        "rebase" => rebase(),
        "drift" => drift(),
        "fold" => fold(),
        "live" => live(),
        "analytics_from_rows" => analytics(&counts_of("public.crm_email_sends", Sign::Plus)),
        "analytics_live" => analytics(&live()),
        _ => return None,
    })
}

pub const PARTS: &[&str] = &["tables", "trigger_body", "rebase", "drift", "fold", "live", "analytics_from_rows", "analytics_live"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    Plus,
    Minus,
}

fn columns(f: impl Fn(&Counter) -> String) -> String {
    COUNTERS.iter().map(f).collect::<Vec<_>>().join(", ")
}

/// Both tables: bigint counters, a campaign id; the deltas' `at` says how far behind the fold is.
fn tables() -> String {
    let cols = columns(|c| format!("{} bigint NOT NULL", c.name));
    // No index on the deltas: every read and the fold take all of them, and each index would
    // cost every counted statement an insertion. Every read scans the deltas' heap, dead rows
    // included: autovacuum cleans up after each fold (a few thousand rows), not after 20% of
    // the table as by default; the counts, rewritten by each fold, likewise.
    format!(
        "CREATE TABLE IF NOT EXISTS {COUNTS_TABLE} (campaign_id uuid PRIMARY KEY, {cols});\n\
         CREATE TABLE IF NOT EXISTS {DELTAS_TABLE} (campaign_id uuid NOT NULL, {cols}, at timestamptz NOT NULL DEFAULT now());\n\
         ALTER TABLE {DELTAS_TABLE} SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);\n\
         ALTER TABLE {COUNTS_TABLE} SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500);"
    )
}

/// The signed counts per campaign of the sends in `rows` (a table or a transition table).
fn counts_of(rows: &str, sign: Sign) -> String {
    let s = if sign == Sign::Minus { "-" } else { "" };
    let cols = columns(|c| format!("{s}count(*) FILTER (WHERE {}) AS {}", c.predicate, c.name));
    format!("SELECT campaign_id, {cols} FROM {rows} WHERE campaign_id IS NOT NULL GROUP BY campaign_id")
}

/// Per send in `rows`, its signed contribution to each counter (1, -1 or 0), not aggregated: the
/// UPDATE trigger sums new and old rows in one aggregate, where a count per side would take three.
fn flags_of(rows: &str, sign: Sign) -> String {
    let s = if sign == Sign::Minus { "-" } else { "" };
    let cols = columns(|c| format!("CASE WHEN {} THEN {s}1 ELSE 0 END AS {}", c.predicate, c.name));
    format!("SELECT campaign_id, {cols} FROM {rows} WHERE campaign_id IS NOT NULL")
}

fn insert_deltas(select: &str) -> String {
    format!("INSERT INTO {DELTAS_TABLE} (campaign_id, {}) {select}", columns(|c| c.name.to_string()))
}

/// The sum per campaign of `union` (rows of campaign_id and the counters), only where some
/// counter is not zero (an UPDATE of updated_at leaves no delta).
fn sum_nonzero(union: &str) -> String {
    let sums = columns(|c| format!("sum({0})::bigint AS {0}", c.name));
    let nonzero = COUNTERS.iter().map(|c| format!("sum({}) <> 0", c.name)).collect::<Vec<_>>().join(" OR ");
    format!("SELECT campaign_id, {sums} FROM ({union}) AS d GROUP BY campaign_id HAVING {nonzero}")
}

/// The body of the statement trigger (PL/pgSQL): the transition tables' counts, new minus old.
fn trigger_body() -> String {
    let ins = insert_deltas(&counts_of("new_rows", Sign::Plus));
    let del = insert_deltas(&counts_of("old_rows", Sign::Minus));
    let upd = insert_deltas(&sum_nonzero(&format!("{} UNION ALL {}", flags_of("new_rows", Sign::Plus), flags_of("old_rows", Sign::Minus))));
    format!(
        "BEGIN\n    IF TG_OP = 'INSERT' THEN\n        {ins};\n    ELSIF TG_OP = 'DELETE' THEN\n        {del};\n    ELSE\n        {upd};\n    END IF;\n    RETURN NULL;\nEND"
    )
}

/// What the counters say now, per campaign: folded counts plus pending deltas.
fn live() -> String {
    let cols = columns(|c| c.name.to_string());
    let sums = columns(|c| format!("sum({0})::bigint AS {0}", c.name));
    format!(
        "SELECT campaign_id, {sums} FROM (SELECT campaign_id, {cols} FROM {COUNTS_TABLE} UNION ALL SELECT campaign_id, {cols} FROM {DELTAS_TABLE}) AS l GROUP BY campaign_id"
    )
}

/// Per campaign, the recount of the rows minus what the counters say, where they differ: in one
/// statement, so in one snapshot. No row at all is the invariant (until a retention drop, whose
/// history the counters keep and the rows no longer have).
fn drift() -> String {
    let neg = columns(|c| format!("-{}", c.name));
    sum_nonzero(&format!(
        "{} UNION ALL SELECT campaign_id, {neg} FROM {COUNTS_TABLE} UNION ALL SELECT campaign_id, {neg} FROM {DELTAS_TABLE}",
        counts_of("public.crm_email_sends", Sign::Plus)
    ))
}

/// The drift appended as deltas. Run once the trigger is committed, it adds exactly the sends the
/// trigger never saw; run again, it adds nothing. Never run after a retention drop (it would
/// erase that history).
fn rebase() -> String {
    insert_deltas(&drift())
}

/// Moves every committed delta into the counts, in one statement (its result: how many
/// campaigns' counts moved): a reader sees the deltas or
/// their sum, never both or neither. A concurrent fold waits on the rows, then finds them gone.
fn fold() -> String {
    let cols = columns(|c| c.name.to_string());
    let sums = columns(|c| format!("sum({0})::bigint", c.name));
    let add = columns(|c| format!("{0} = t.{0} + excluded.{0}", c.name));
    format!(
        "WITH moved AS (DELETE FROM {DELTAS_TABLE} RETURNING campaign_id, {cols}), \
         folded AS (INSERT INTO {COUNTS_TABLE} AS t (campaign_id, {cols}) SELECT campaign_id, {sums} FROM moved GROUP BY campaign_id \
         ON CONFLICT (campaign_id) DO UPDATE SET {add} RETURNING 1) SELECT count(*) FROM folded"
    )
}

/// The analytics rows (the guide's crm_campaigns_analytics_mv columns) over `counts`, a query of
/// campaign_id and the counters: every campaign, with zeros where nothing was sent.
fn analytics(counts: &str) -> String {
    let cols = columns(|c| format!("coalesce(k.{0}, 0)::bigint AS {0}", c.name));
    let rates = RATES.iter().map(|(col, num, div)| format!("daznode_crm.{col}(k.{num}, k.{div}) AS {col}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT c.id, c.name, c.subject, c.status, c.scheduled_at, c.sent_at, c.created_at, {cols}, {rates} \
         FROM public.crm_email_campaigns c LEFT JOIN ({counts}) AS k ON k.campaign_id = c.id"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_known_and_names_every_counter() {
        for p in PARTS {
            let sql = part(p).unwrap();
            for c in COUNTERS {
                assert!(sql.contains(c.name), "{p} lacks {}", c.name);
            }
        }
        assert!(part("drop everything").is_none());
    }

    #[test]
    fn the_trigger_reads_only_the_transition_tables_it_has() {
        let body = trigger_body();
        let (ins, rest) = body.split_once("ELSIF TG_OP = 'DELETE'").unwrap();
        let (del, upd) = rest.split_once("ELSE").unwrap();
        assert!(ins.contains("new_rows") && !ins.contains("old_rows"));
        assert!(del.contains("old_rows") && !del.contains("new_rows"));
        assert!(upd.contains("old_rows") && upd.contains("new_rows") && upd.contains("HAVING"));
        assert!(del.contains("-count(*) FILTER"));
        // One aggregate for an UPDATE (its cost is per statement: a webhook updates one row).
        assert_eq!(upd.matches("GROUP BY").count(), 1, "{upd}");
        assert!(upd.contains("THEN -1 ELSE 0 END AS sent") && upd.contains("THEN 1 ELSE 0 END AS sent"));
    }

    #[test]
    fn predicates_come_from_rates_sql() {
        for c in &COUNTERS[1..] {
            assert!(c.predicate.starts_with(&format!("daznode_crm.send_is_{}(", c.name)), "{}", c.name);
        }
    }

    #[test]
    fn rebase_subtracts_both_tables_and_fold_moves_all() {
        let r = rebase();
        assert_eq!(r.matches(&format!("FROM {COUNTS_TABLE}")).count() + r.matches(&format!("FROM {DELTAS_TABLE}")).count(), 2);
        assert!(r.contains("-recipients") && r.contains("FROM public.crm_email_sends"));
        let f = fold();
        assert!(f.starts_with(&format!("WITH moved AS (DELETE FROM {DELTAS_TABLE} RETURNING")));
        assert!(f.contains("recipients = t.recipients + excluded.recipients"));
    }

    #[test]
    fn both_analytics_have_the_same_columns() {
        let cols = |s: String| s.split(" FROM ").next().unwrap().to_string();
        assert_eq!(cols(part("analytics_from_rows").unwrap()), cols(part("analytics_live").unwrap()));
    }
}
