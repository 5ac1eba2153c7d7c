//! Monthly partitions of crm_email_sends: their names, bounds and the retention arithmetic of
//! `cleanup_old_email_partitions()`. Bounds are midnight UTC on the 1st of each month, so a
//! partition covers the same instants whatever the server's or the session's time zone.
//! Instants are microseconds since the Unix epoch.

use crate::CrmError;

pub const PARTITION_PREFIX: &str = "crm_email_sends_p";
pub const MAX_PREMAKE: i32 = 120;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A calendar month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    /// 1..=12
    pub month: u32,
}

impl Month {
    /// The month containing `micros` (UTC).
    pub fn containing(micros: i64) -> Month {
        let (year, month, _) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
        Month { year, month }
    }

    pub fn start_micros(self) -> i64 {
        days_from_civil(self.year, self.month, 1) * MICROS_PER_DAY
    }

    pub fn end_micros(self) -> i64 {
        self.plus(1).start_micros()
    }

    pub fn plus(self, months: i32) -> Month {
        let index = self.year as i64 * 12 + (self.month as i64 - 1) + months as i64;
        Month { year: index.div_euclid(12) as i32, month: (index.rem_euclid(12) + 1) as u32 }
    }

    /// Its first instant as an SQL timestamptz literal's text, `YYYY-MM-01 00:00:00+00` (digits
    /// only besides the separators, so it can stand inside quotes in a partition bound).
    pub fn start_literal(self) -> String {
        format!("{:04}-{:02}-01 00:00:00+00", self.year, self.month)
    }

    /// `crm_email_sends_pYYYYMM`
    pub fn partition_name(self) -> String {
        format!("{PARTITION_PREFIX}{:04}{:02}", self.year, self.month)
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y as i64 - 1 } else { y as i64 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// Checks the arguments of cleanup_old_email_partitions(). `retention_micros` is the
/// retention interval's length measured back from now (so '12 months' counts real months), and
/// `month_micros` the length of '1 month' measured the same way: a retention shorter than a
/// month (a typo such as '1 microsecond' would drop every past partition) needs `force`.
pub fn validate(retention_micros: i64, month_micros: i64, premake: i32, force: bool) -> Result<(), CrmError> {
    if retention_micros <= 0 {
        return Err(CrmError::InvalidArgument("retention must be a positive interval, e.g. '12 months'".into()));
    }
    if retention_micros < month_micros && !force {
        return Err(CrmError::InvalidArgument(
            "retention must be at least '1 month' (it decides which partitions are dropped); pass force => true to keep less".into(),
        ));
    }
    if !(0..=MAX_PREMAKE).contains(&premake) {
        return Err(CrmError::InvalidArgument(format!("premake must be between 0 and {MAX_PREMAKE} months, got {premake}")));
    }
    Ok(())
}

/// A partition as the catalog shows it: name and bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub start: i64,
    pub end: i64,
}

/// What to do: drop (or archive) the partitions lying entirely before the cutoff
/// (`end <= cutoff`), never one that overlaps the window (the default partition is not passed
/// in); and create the months from the current one to `premake` months ahead of now that no
/// partition covers, based on now and not on the newest data, so that a table quiet for months
/// still gets them.
pub fn plan(partitions: &[Partition], now: i64, cutoff: i64, premake: i32) -> (Vec<Partition>, Vec<Month>) {
    let expired: Vec<Partition> = partitions.iter().filter(|p| p.end <= cutoff).cloned().collect();
    let current = Month::containing(now);
    let missing: Vec<Month> = (0..=premake)
        .map(|k| current.plus(k))
        .filter(|m| {
            let (s, e) = (m.start_micros(), m.end_micros());
            !partitions.iter().any(|p| p.start < e && s < p.end)
        })
        .collect();
    (expired, missing)
}

/// The premake `cleanup_old_email_partitions()` and step 0010 use unless told otherwise: the
/// current month and the next three.
pub const DEFAULT_PREMAKE: i32 = 3;

/// What `daznode_crm.email_sends_partitions()` says a partition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKind {
    /// `public.crm_email_sends_pYYYYMM`, bounded by exactly that UTC month.
    Monthly,
    /// `public.crm_email_sends_default`, the extension's default partition.
    Default,
    /// Anything else (another schema, name or bound, or someone else's default partition): left alone.
    Unexpected,
}

impl PartitionKind {
    pub fn parse(kind: &str) -> PartitionKind {
        match kind {
            "monthly" => PartitionKind::Monthly,
            "default" => PartitionKind::Default,
            _ => PartitionKind::Unexpected,
        }
    }
}

/// A partition of crm_email_sends as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPartition {
    /// The relation's oid, opaque here.
    pub oid: u32,
    /// Its name without the schema.
    pub name: String,
    /// Schema-qualified and quoted, as `regclass` prints it.
    pub qualified: String,
    pub bound: String,
    /// Range bounds, None for a default partition or a bound that is not a plain range.
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub kind: PartitionKind,
}

impl CatalogPartition {
    fn is_default_bound(&self) -> bool {
        self.bound == "DEFAULT"
    }

    /// A partition of its own range (not a default), whose months no new partition may overlap.
    fn range(&self) -> Option<(i64, i64)> {
        match (self.kind, self.start, self.end) {
            (PartitionKind::Default, _, _) => None,
            (_, Some(s), Some(e)) => Some((s, e)),
            _ => None,
        }
    }
}

/// One step of `cleanup_old_email_partitions()`, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupStep {
    /// Reported, never touched.
    LeaveUnexpected(CatalogPartition),
    /// There is no default partition at all: create the extension's.
    CreateDefault,
    /// Create this month's partition (moving its rows out of the default partition).
    Create(Month),
    /// Drop (or archive) this monthly partition: it lies entirely before the cutoff.
    Expire(CatalogPartition),
}

/// The whole plan of a retention run: the unexpected partitions (in the order given: the caller
/// sorts them by name, in the database's collation), the default
/// partition if none exists, the months to create (from now to `premake` months ahead, plus the
/// months of rows stuck in the default partition that are still within retention; never one
/// that an existing partition overlaps), then the expired monthly partitions (oldest first).
/// `stuck` are the months of the rows in the extension's default partition.
pub fn cleanup_plan(partitions: &[CatalogPartition], stuck: &[Month], now: i64, cutoff: i64, premake: i32) -> Vec<CleanupStep> {
    let mut steps: Vec<CleanupStep> = partitions.iter().filter(|p| p.kind == PartitionKind::Unexpected).cloned().map(CleanupStep::LeaveUnexpected).collect();
    if !partitions.iter().any(CatalogPartition::is_default_bound) {
        steps.push(CleanupStep::CreateDefault);
    }
    let ranges: Vec<Partition> = partitions.iter().filter_map(|p| p.range().map(|(start, end)| Partition { name: p.qualified.clone(), start, end })).collect();
    let (_, missing) = plan(&ranges, now, cutoff, premake);
    let mut create: Vec<Month> = missing
        .into_iter()
        .chain(stuck.iter().copied().filter(|m| m.end_micros() > cutoff))
        .filter(|m| !ranges.iter().any(|p| p.start < m.end_micros() && m.start_micros() < p.end))
        .collect();
    create.sort();
    create.dedup();
    steps.extend(create.into_iter().map(CleanupStep::Create));
    let mut expired: Vec<&CatalogPartition> = partitions.iter().filter(|p| p.kind == PartitionKind::Monthly && p.end.is_some_and(|e| e <= cutoff)).collect();
    expired.sort_by_key(|p| p.start);
    steps.extend(expired.into_iter().cloned().map(CleanupStep::Expire));
    steps
}

/// The months step 0010 partitions a table into: from the month of its oldest row (or the
/// current one) to `premake` months after the current one; none when every row lies beyond that
/// (they go to the default partition, and the retention cleanup creates the months it premakes).
pub fn months_from(first: Option<i64>, now: i64, premake: i32) -> Vec<Month> {
    let current = Month::containing(now);
    let mut month = first.map(Month::containing).unwrap_or(current);
    let last = current.plus(premake);
    let mut out = Vec::new();
    while month <= last {
        out.push(month);
        month = month.plus(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(y: i32, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * MICROS_PER_DAY
    }

    fn part(y: i32, m: u32) -> Partition {
        let month = Month { year: y, month: m };
        Partition { name: month.partition_name(), start: month.start_micros(), end: month.end_micros() }
    }

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for d in [-800_000i64, -1, 0, 59, 60, 11_016, 20_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        let feb = Month { year: 2024, month: 2 };
        assert_eq!(feb.end_micros() - feb.start_micros(), 29 * MICROS_PER_DAY);
        assert_eq!(Month { year: 2026, month: 12 }.plus(1), Month { year: 2027, month: 1 });
        assert_eq!(Month { year: 2026, month: 1 }.plus(-1), Month { year: 2025, month: 12 });
        assert_eq!(Month::containing(micros(2026, 12, 1) - 1), Month { year: 2026, month: 11 });
        assert_eq!(Month::containing(micros(2026, 12, 1)), Month { year: 2026, month: 12 });
        assert_eq!(Month::containing(-1), Month { year: 1969, month: 12 });
        assert_eq!(Month { year: 2026, month: 3 }.partition_name(), "crm_email_sends_p202603");
        assert_eq!(Month { year: 812, month: 3 }.start_literal(), "0812-03-01 00:00:00+00");
    }

    #[test]
    fn arguments() {
        let month = 30 * 86_400 * 1_000_000_i64;
        assert!(validate(month, month, 0, false).is_ok());
        assert!(validate(12 * month, month, 120, false).is_ok());
        for (r, p) in [(0, 3), (-5, 3), (month, -1), (month, 121)] {
            assert!(matches!(validate(r, month, p, true), Err(CrmError::InvalidArgument(_))), "{r} {p}");
        }
        // Less than a month: only with force.
        assert!(matches!(validate(1, month, 3, false), Err(CrmError::InvalidArgument(m)) if m.contains("force")));
        assert!(matches!(validate(month - 1, month, 3, false), Err(CrmError::InvalidArgument(_))));
        assert!(validate(1, month, 3, true).is_ok());
    }

    #[test]
    fn retention_on_the_boundary_drops_only_whole_months_before_it() {
        let parts: Vec<Partition> = (1..=12).map(|m| part(2026, m)).collect();
        let now = micros(2026, 11, 24);
        let (expired, _) = plan(&parts, now, micros(2026, 3, 1), 0);
        let names: Vec<&str> = expired.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["crm_email_sends_p202601", "crm_email_sends_p202602"]);
        // A cutoff inside March: March overlaps the window and stays.
        assert_eq!(plan(&parts, now, micros(2026, 3, 15), 0).0.len(), 2);
    }

    #[test]
    fn premake_is_relative_to_now_even_on_a_quiet_table() {
        let now = micros(2026, 11, 24);
        let (_, missing) = plan(&[part(2025, 1), part(2025, 2)], now, micros(2024, 1, 1), 3);
        assert_eq!(
            missing,
            vec![Month { year: 2026, month: 11 }, Month { year: 2026, month: 12 }, Month { year: 2027, month: 1 }, Month { year: 2027, month: 2 },]
        );
        let full: Vec<Partition> = (0..4)
            .map(|k| {
                let m = Month { year: 2026, month: 11 }.plus(k);
                part(m.year, m.month)
            })
            .collect();
        assert!(plan(&full, now, micros(2024, 1, 1), 3).1.is_empty());
        assert_eq!(plan(&[], now, micros(2024, 1, 1), 0).1, vec![Month { year: 2026, month: 11 }]);
    }
    fn catalog(qualified: &str, bound: &str, range: Option<(i64, i64)>, kind: PartitionKind) -> CatalogPartition {
        CatalogPartition {
            oid: 1,
            name: qualified.rsplit('.').next().unwrap().into(),
            qualified: qualified.into(),
            bound: bound.into(),
            start: range.map(|r| r.0),
            end: range.map(|r| r.1),
            kind,
        }
    }

    fn monthly(y: i32, m: u32) -> CatalogPartition {
        let month = Month { year: y, month: m };
        catalog(&format!("public.{}", month.partition_name()), "FOR VALUES ...", Some((month.start_micros(), month.end_micros())), PartitionKind::Monthly)
    }

    fn default_partition() -> CatalogPartition {
        catalog("public.crm_email_sends_default", "DEFAULT", None, PartitionKind::Default)
    }

    #[test]
    fn cleanup_plan_orders_unexpected_default_creates_then_expired() {
        let now = micros(2026, 11, 24);
        let mut parts: Vec<CatalogPartition> = (1..=11).rev().map(|m| monthly(2026, m)).collect();
        parts.insert(3, catalog("archive.aa_odd", "FOR VALUES ...", None, PartitionKind::Unexpected));
        parts.push(catalog("public.zz_odd", "FOR VALUES FROM (x) TO (y)", None, PartitionKind::Unexpected));
        let steps = cleanup_plan(&parts, &[], now, micros(2026, 3, 1), 2);
        let names: Vec<String> = steps
            .iter()
            .map(|s| match s {
                CleanupStep::LeaveUnexpected(p) => format!("leave {}", p.qualified),
                CleanupStep::CreateDefault => "default".into(),
                CleanupStep::Create(m) => format!("create {}", m.partition_name()),
                CleanupStep::Expire(p) => format!("expire {}", p.qualified),
            })
            .collect();
        assert_eq!(
            names,
            vec![
                "leave archive.aa_odd",
                "leave public.zz_odd",
                "default",
                "create crm_email_sends_p202612",
                "create crm_email_sends_p202701",
                "expire public.crm_email_sends_p202601",
                "expire public.crm_email_sends_p202602",
            ]
        );
    }

    #[test]
    fn a_default_partition_of_any_kind_is_never_created_twice() {
        let now = micros(2026, 11, 24);
        let ours = cleanup_plan(&[default_partition()], &[], now, micros(2026, 1, 1), 0);
        assert_eq!(ours, vec![CleanupStep::Create(Month { year: 2026, month: 11 })]);
        let foreign = catalog("public.other_default", "DEFAULT", None, PartitionKind::Unexpected);
        let theirs = cleanup_plan(std::slice::from_ref(&foreign), &[], now, micros(2026, 1, 1), 0);
        assert_eq!(theirs, vec![CleanupStep::LeaveUnexpected(foreign), CleanupStep::Create(Month { year: 2026, month: 11 })]);
    }

    #[test]
    fn stuck_months_within_retention_get_their_partition_once() {
        let now = micros(2026, 11, 24);
        let stuck = [Month { year: 2025, month: 6 }, Month { year: 2026, month: 5 }, Month { year: 2026, month: 11 }, Month { year: 2026, month: 5 }];
        let steps = cleanup_plan(&[default_partition(), monthly(2026, 4)], &stuck, now, micros(2026, 1, 1), 0);
        // June 2025 is past retention (its rows stay in the default partition); November is
        // both stuck and the current month.
        assert_eq!(steps, vec![CleanupStep::Create(Month { year: 2026, month: 5 }), CleanupStep::Create(Month { year: 2026, month: 11 })]);
    }

    #[test]
    fn a_month_an_unexpected_partition_covers_is_left_to_it() {
        let now = micros(2026, 11, 24);
        let (s, e) = (micros(2026, 11, 15), micros(2026, 12, 15));
        let odd = catalog("public.crm_email_sends_odd", "FOR VALUES ...", Some((s, e)), PartitionKind::Unexpected);
        let steps = cleanup_plan(&[default_partition(), odd.clone()], &[Month { year: 2026, month: 12 }], now, micros(2026, 1, 1), 2);
        assert_eq!(steps, vec![CleanupStep::LeaveUnexpected(odd), CleanupStep::Create(Month { year: 2027, month: 1 })]);
    }

    #[test]
    fn step_0010_months_run_from_the_oldest_row_to_premake_ahead() {
        let now = micros(2026, 11, 24);
        let names = |v: Vec<Month>| v.into_iter().map(Month::partition_name).collect::<Vec<_>>();
        assert_eq!(names(months_from(None, now, 1)), vec!["crm_email_sends_p202611", "crm_email_sends_p202612"]);
        assert_eq!(
            names(months_from(Some(micros(2026, 9, 30)), now, 0)),
            vec!["crm_email_sends_p202609", "crm_email_sends_p202610", "crm_email_sends_p202611"]
        );
        assert_eq!(names(months_from(Some(micros(2027, 1, 1)), now, DEFAULT_PREMAKE)), vec!["crm_email_sends_p202701", "crm_email_sends_p202702"]);
        assert!(months_from(Some(micros(2027, 5, 1)), now, DEFAULT_PREMAKE).is_empty());
    }
}
