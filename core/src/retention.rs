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
        assert_eq!(missing, vec![
            Month { year: 2026, month: 11 }, Month { year: 2026, month: 12 },
            Month { year: 2027, month: 1 }, Month { year: 2027, month: 2 },
        ]);
        let full: Vec<Partition> = (0..4).map(|k| { let m = Month { year: 2026, month: 11 }.plus(k); part(m.year, m.month) }).collect();
        assert!(plan(&full, now, micros(2024, 1, 1), 3).1.is_empty());
        assert_eq!(plan(&[], now, micros(2024, 1, 1), 0).1, vec![Month { year: 2026, month: 11 }]);
    }
}
