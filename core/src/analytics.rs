//! Live campaign counts: the SQL that keeps each campaign's funnel current without a refresh.
//!
//! Three tables' worth of state, all in schema `crm_private` (the CRM owner's, not exposed):
//! - `campaign_send_deltas`: appended by a statement-level trigger on `crm_email_sends` (one row
//!   per statement and campaign whose counts moved, from its transition tables). Writers only
//!   ever insert, so eight webhooks updating one campaign never queue on a counter row. The
//!   trigger is native (`daznode_crm.count_send_changes()`): it reads the transition tables,
//!   counts each send with [`send_flags`] and sums per campaign with [`StatementDeltas`], then
//!   runs [`delta_insert`] once per campaign whose counts moved, and no SQL at all otherwise.
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

/// How many counters (the columns of both tables besides campaign_id).
pub const N_COUNTERS: usize = 7;

/// The counters, in the order of the analytics view's columns.
pub const COUNTERS: &[Counter; N_COUNTERS] = &[
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
/// tables on one event per trigger), and their function (the extension's, native).
pub const TRIGGERS: &[&str] = &["daznode_count_sends_ins", "daznode_count_sends", "daznode_count_sends_del"];
pub const TRIGGER_FUNCTION: &str = "daznode_crm.count_send_changes()";

/// What the counters read of one send: which timestamps are set, and its status as text (None
/// when NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendFacts<'a> {
    pub sent_at: bool,
    pub opened_at: bool,
    pub clicked_at: bool,
    pub bounced_at: bool,
    pub status: Option<&'a [u8]>,
}

/// Whether each counter counts this send (1 or 0), in the order of [`COUNTERS`]: sql/rates.sql's
/// `send_is_*` predicates, evaluated as SQL does. A NULL status is neither `= 'failed'` nor
/// `<> 'failed'` (unknown: not counted), so it is neither delivered nor failed. The pg_regress
/// file `analytics` checks it against the SQL functions over every combination.
pub fn send_flags(f: &SendFacts) -> [i64; N_COUNTERS] {
    let failed = f.status.map(|s| s == b"failed");
    let delivered = f.sent_at && !f.bounced_at && failed == Some(false);
    let opened = !f.bounced_at && (f.opened_at || f.clicked_at);
    let clicked = !f.bounced_at && f.clicked_at;
    [true, f.sent_at, delivered, opened, clicked, f.bounced_at, failed == Some(true)].map(i64::from)
}

/// One statement's deltas: per campaign (a uuid's 16 bytes), the sum of its sends' signed flags
/// (new rows +1, old rows -1), in the order campaigns first appear.
#[derive(Debug, Default)]
pub struct StatementDeltas {
    rows: Vec<([u8; 16], [i64; N_COUNTERS])>,
    index: std::collections::HashMap<[u8; 16], usize>,
}

impl StatementDeltas {
    /// Adds one send of `campaign`, counted with `sign` (1 for a new row, -1 for an old one).
    pub fn add(&mut self, campaign: [u8; 16], facts: &SendFacts, sign: i64) {
        let flags = send_flags(facts);
        let i = *self.index.entry(campaign).or_insert_with(|| {
            self.rows.push((campaign, [0; N_COUNTERS]));
            self.rows.len() - 1
        });
        for (sum, flag) in self.rows[i].1.iter_mut().zip(flags) {
            *sum += sign * flag;
        }
    }

    /// The campaigns whose counts moved: an UPDATE that changes no counter (a re-click, an
    /// updated_at) leaves none, and then the trigger runs no SQL at all.
    pub fn nonzero(&self) -> impl Iterator<Item = &([u8; 16], [i64; N_COUNTERS])> {
        self.rows.iter().filter(|(_, sums)| sums.iter().any(|n| *n != 0))
    }
}

/// The one statement the trigger runs, once per campaign whose counts moved: $1 the campaign,
/// $2.. the counters in the order of [`COUNTERS`].
pub fn delta_insert() -> String {
    let params = (2..=N_COUNTERS + 1).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    format!("{} VALUES ($1, {params})", insert_deltas_head())
}

/// The rates of the analytics view, each from sql/rates.sql: (column, function, numerator, divisor).
const RATES: &[(&str, &str, &str)] =
    &[("open_rate", "opened", "delivered"), ("click_rate", "clicked", "delivered"), ("bounce_rate", "bounced", "sent"), ("delivery_rate", "delivered", "sent")];

/// A part of the SQL, by the name `campaign_counts_sql(part)` takes.
pub fn part(name: &str) -> Option<String> {
    Some(match name {
        "tables" => tables(),
        "trigger_insert" => delta_insert(),
        "rebase" => rebase(),
        "drift" => drift(),
        "fold" => fold(),
        "live" => live(),
        "analytics_from_rows" => analytics(&counts_of("public.crm_email_sends", Sign::Plus)),
        "analytics_live" => analytics(&live()),
        _ => return None,
    })
}

pub const PARTS: &[&str] = &["tables", "trigger_insert", "rebase", "drift", "fold", "live", "analytics_from_rows", "analytics_live"];

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

fn insert_deltas_head() -> String {
    format!("INSERT INTO {DELTAS_TABLE} (campaign_id, {})", columns(|c| c.name.to_string()))
}

fn insert_deltas(select: &str) -> String {
    format!("{} {select}", insert_deltas_head())
}

/// The sum per campaign of `union` (rows of campaign_id and the counters), only where some
/// counter is not zero (an UPDATE of updated_at leaves no delta).
fn sum_nonzero(union: &str) -> String {
    let sums = columns(|c| format!("sum({0})::bigint AS {0}", c.name));
    let nonzero = COUNTERS.iter().map(|c| format!("sum({}) <> 0", c.name)).collect::<Vec<_>>().join(" OR ");
    format!("SELECT campaign_id, {sums} FROM ({union}) AS d GROUP BY campaign_id HAVING {nonzero}")
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
    fn the_flags_follow_the_documented_definitions() {
        let f = |sent, opened, clicked, bounced, status: Option<&'static str>| {
            send_flags(&SendFacts { sent_at: sent, opened_at: opened, clicked_at: clicked, bounced_at: bounced, status: status.map(str::as_bytes) })
        };
        //                         recipients sent delivered opened clicked bounced failed
        assert_eq!(f(false, false, false, false, None), [1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(f(true, false, false, false, Some("sent")), [1, 1, 1, 0, 0, 0, 0]);
        // A NULL status: SQL's `status <> 'failed'` is unknown, so not delivered; not failed either.
        assert_eq!(f(true, false, false, false, None), [1, 1, 0, 0, 0, 0, 0]);
        // A click implies an open; a bounce cancels delivery, opens and clicks.
        assert_eq!(f(true, false, true, false, Some("clicked")), [1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(f(true, true, true, true, Some("bounced")), [1, 1, 0, 0, 0, 1, 0]);
        assert_eq!(f(true, false, false, false, Some("failed")), [1, 1, 0, 0, 0, 0, 1]);
        assert_eq!(f(false, false, false, false, Some("failed")), [1, 0, 0, 0, 0, 0, 1]);
        // Bytes, not case-folded: 'FAILED' is not 'failed' in SQL either.
        assert_eq!(f(true, false, false, false, Some("FAILED")), [1, 1, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn a_statement_sums_new_minus_old_and_drops_what_did_not_move() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let opened = SendFacts { sent_at: true, opened_at: true, status: Some(b"opened"), ..Default::default() };
        let reclicked = SendFacts { clicked_at: true, ..opened };
        let mut d = StatementDeltas::default();
        // A re-click of an already clicked send: old and new count alike.
        d.add(a, &reclicked, -1);
        d.add(a, &reclicked, 1);
        assert_eq!(d.nonzero().count(), 0);
        // A first click on campaign b, and a send moved from a to b.
        d.add(b, &opened, -1);
        d.add(b, &reclicked, 1);
        d.add(a, &opened, -1);
        d.add(b, &opened, 1);
        let rows: Vec<_> = d.nonzero().cloned().collect();
        assert_eq!(rows, vec![(a, [-1, -1, -1, -1, 0, 0, 0]), (b, [1, 1, 1, 1, 1, 0, 0])]);
    }

    #[test]
    fn the_trigger_statement_inserts_every_counter_as_a_parameter() {
        let sql = delta_insert();
        assert_eq!(sql, format!("INSERT INTO {DELTAS_TABLE} (campaign_id, recipients, sent, delivered, opened, clicked, bounced, failed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"));
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
