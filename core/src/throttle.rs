//! Maintenance that yields to the application. On a small server one maintenance job that scans
//! 10M rows takes a whole CPU for seconds, and the app's short reads queue behind it (measured in
//! BENCHMARKS.md, "Soak"). So after each unit of work (an orphan rule, a diagnostic check, a
//! segment, a view) a job pauses `factor` times as long as that unit took: its share of a CPU is
//! then at most 1 / (1 + factor), and its work is spread over the minutes the schedule gives it
//! instead of landing on the app all at once.
//!
//! The factor is the setting `daznode_crm.maintenance_yield` (0 to 20). Unset, it is
//! `IN_JOBS` in a pg_cron job and 0 (full speed) in any other session, as PostgreSQL does with
//! autovacuum_vacuum_cost_delay against a manual VACUUM.
//!
//! The share is the jobs' together, not each job's: when n maintenance runs are going at once
//! (pg_cron starts every job of a minute together), each pauses as if the factor were
//! [`shared_factor`], so that all of them take at most 1 / (1 + factor) of a CPU, like one alone.

use crate::CrmError;
use std::time::Duration;

/// The factor of a pg_cron job when the setting is unset: at most a quarter of a CPU.
pub const IN_JOBS: f64 = 3.0;
/// The largest factor accepted.
pub const MAX_FACTOR: f64 = 20.0;
/// No single pause is longer, whatever the unit of work took.
pub const MAX_PAUSE: Duration = Duration::from_secs(30);
/// Shorter pauses are not taken (a sleep costs more than it gives back).
pub const MIN_PAUSE: Duration = Duration::from_millis(1);

/// The factor in effect, from the setting's text (None or '' when unset) and whether this session
/// is a pg_cron job. A value that is not a number from 0 to MAX_FACTOR is an error (22023),
/// quoted at most 40 characters long.
pub fn effective_factor(setting: Option<&str>, in_pg_cron: bool) -> Result<f64, CrmError> {
    match setting.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(if in_pg_cron { IN_JOBS } else { 0.0 }),
        Some(text) => match text.parse::<f64>() {
            Ok(f) if f.is_finite() && (0.0..=MAX_FACTOR).contains(&f) => Ok(f),
            _ => Err(CrmError::InvalidArgument(format!(
                "daznode_crm.maintenance_yield must be a number from 0 to {MAX_FACTOR}, not {:?}",
                text.chars().take(40).collect::<String>()
            ))),
        },
    }
}

/// The factor each of `runs` maintenance runs going at once applies, so that together they take
/// at most the share one run alone takes: (1 + factor) × runs − 1. Unpaced (factor 0) stays 0.
pub fn shared_factor(factor: f64, runs: u32) -> f64 {
    if !(factor > 0.0) {
        return 0.0;
    }
    (1.0 + factor) * f64::from(runs.max(1)) - 1.0
}

/// The pause after a unit of work that took `work`: `factor` times as long, at most MAX_PAUSE,
/// and none under MIN_PAUSE.
pub fn pause_after(work: Duration, factor: f64) -> Duration {
    if !(factor > 0.0) {
        return Duration::ZERO;
    }
    let pause = Duration::try_from_secs_f64(work.as_secs_f64() * factor).unwrap_or(MAX_PAUSE).min(MAX_PAUSE);
    if pause < MIN_PAUSE {
        Duration::ZERO
    } else {
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_means_gentle_in_pg_cron_and_full_speed_elsewhere() {
        assert_eq!(effective_factor(None, true), Ok(IN_JOBS));
        assert_eq!(effective_factor(None, false), Ok(0.0));
        assert_eq!(effective_factor(Some(""), true), Ok(IN_JOBS));
        assert_eq!(effective_factor(Some("  "), false), Ok(0.0));
    }

    #[test]
    fn runs_at_once_share_one_budget() {
        assert_eq!(shared_factor(3.0, 1), 3.0);
        assert_eq!(shared_factor(3.0, 0), 3.0);
        // Three jobs at once: each takes 1/12 of a CPU, together the quarter one job takes.
        assert_eq!(shared_factor(3.0, 3), 11.0);
        assert!((3.0 / (1.0 + shared_factor(3.0, 3)) - 1.0 / (1.0 + 3.0)).abs() < 1e-12);
        assert_eq!(shared_factor(0.0, 5), 0.0);
        assert_eq!(shared_factor(1.5, 2), 4.0);
    }

    #[test]
    fn a_set_value_wins_everywhere() {
        assert_eq!(effective_factor(Some("0"), true), Ok(0.0));
        assert_eq!(effective_factor(Some(" 1.5 "), false), Ok(1.5));
        assert_eq!(effective_factor(Some("20"), true), Ok(20.0));
    }

    #[test]
    fn bad_values_are_invalid_arguments_with_a_short_message() {
        for bad in ["-1", "20.5", "NaN", "inf", "fast", "1e400"] {
            let e = effective_factor(Some(bad), false).unwrap_err();
            assert_eq!(e.sqlstate(), "22023", "{bad}");
        }
        let long = "x".repeat(10_000_000);
        let msg = effective_factor(Some(&long), false).unwrap_err().to_string();
        assert!(msg.len() < 160, "{}", msg.len());
    }

    #[test]
    fn pauses_scale_with_the_work_and_are_bounded() {
        assert_eq!(pause_after(Duration::from_millis(200), 3.0), Duration::from_millis(600));
        assert_eq!(pause_after(Duration::from_secs(60), 3.0), MAX_PAUSE);
        assert_eq!(pause_after(Duration::from_secs(5), 0.0), Duration::ZERO);
        assert_eq!(pause_after(Duration::from_micros(100), 3.0), Duration::ZERO);
        assert_eq!(pause_after(Duration::MAX, 20.0), MAX_PAUSE);
        assert_eq!(pause_after(Duration::from_secs(1), f64::NAN), Duration::ZERO);
    }
}
