//! Progress of a long operation, visible from any other session: the running session writes it
//! into its own `application_name`, which `pg_stat_activity` shows to every role at once (no
//! commit needed, so it works inside one transaction, a subtransaction loop or a procedure that
//! commits batch by batch); `daznode_crm.operation_progress` reads it back. This module is the
//! one definition of that format: `encode` for the writer, `decode` for the view.

/// What a session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The operation: `0010` (the partitioning copy), `rollback`, `cleanup`, ...
    pub operation: String,
    pub phase: String,
    pub done: i64,
    /// Rows (or partitions) expected in all; 0 when unknown.
    pub estimated: i64,
    /// Unix time the operation started.
    pub started: i64,
}

const PREFIX: &str = "daznode_crm ";
/// PostgreSQL keeps the first NAMEDATALEN - 1 bytes of application_name.
const MAX: usize = 63;

fn word(s: &str, max: usize) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').take(max).collect()
}

/// The application_name that carries `p`: `daznode_crm <op>:<phase> <done>/<estimated> @<started>`,
/// at most 63 bytes (the phase is cut first).
/// Counts up to 10^12 always fit with an operation name of 12 characters.
pub fn encode(p: &Progress) -> String {
    let tail = format!(" {}/{} @{}", p.done.max(0), p.estimated.max(0), p.started.max(0));
    let op = word(&p.operation, 12.min(MAX.saturating_sub(PREFIX.len() + 1 + tail.len())));
    let room = MAX.saturating_sub(PREFIX.len() + op.len() + 1 + tail.len());
    format!("{PREFIX}{op}:{}{tail}", word(&p.phase, room))
}

/// The progress an application_name carries, if it is one of ours.
pub fn decode(name: &str) -> Option<Progress> {
    let rest = name.strip_prefix(PREFIX)?;
    let (head, tail) = rest.split_once(' ')?;
    let (operation, phase) = head.split_once(':')?;
    let (counts, started) = tail.split_once(" @")?;
    let (done, estimated) = counts.split_once('/')?;
    Some(Progress {
        operation: operation.to_string(),
        phase: phase.to_string(),
        done: done.parse().ok()?,
        estimated: estimated.parse().ok()?,
        started: started.parse().ok()?,
    })
}

/// When it should end, at the pace so far (`now` in Unix time); None before the first row or
/// without an estimate.
pub fn estimated_end(p: &Progress, now: i64) -> Option<i64> {
    if p.done <= 0 || p.estimated <= 0 || now <= p.started {
        return None;
    }
    let elapsed = (now - p.started) as f64;
    let total = elapsed * (p.estimated.max(p.done) as f64) / p.done as f64;
    Some(p.started + total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(op: &str, phase: &str, done: i64, est: i64) -> Progress {
        Progress { operation: op.into(), phase: phase.into(), done, estimated: est, started: 1_764_650_000 }
    }

    #[test]
    fn round_trip_and_length() {
        let x = p("0010", "copying", 1_234_567, 100_000_000);
        let name = encode(&x);
        assert_eq!(name, "daznode_crm 0010:copying 1234567/100000000 @1764650000");
        assert_eq!(decode(&name), Some(x));
        let long = encode(&p("cleanup", &"x".repeat(100), 999_999_999_999, 999_999_999_999));
        assert!(long.len() <= 63, "{long}");
        assert!(decode(&long).is_some());
    }

    #[test]
    fn others_names_are_not_ours() {
        assert_eq!(decode("psql"), None);
        assert_eq!(decode("pg_cron"), None);
        assert_eq!(decode("daznode_crm garbage"), None);
    }

    #[test]
    fn end_at_the_pace_so_far() {
        let x = p("0010", "copying", 25, 100);
        assert_eq!(estimated_end(&x, x.started + 10), Some(x.started + 40));
        assert_eq!(estimated_end(&p("0010", "copying", 0, 100), x.started + 10), None);
    }

    proptest! {
        #[test]
        fn any_progress_fits_and_decodes(op in "[a-z0-9_]{0,20}", phase in "\\PC{0,80}", done in 0i64..1_000_000_000_000, est in 0i64..1_000_000_000_000) {
            let name = encode(&p(&op, &phase, done, est));
            prop_assert!(name.len() <= 63);
            let back = decode(&name).unwrap();
            prop_assert_eq!(back.done, done);
            prop_assert_eq!(back.estimated, est);
        }
    }
}
