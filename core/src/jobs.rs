//! The guide's pg_cron jobs, defined once: `schedule_crm_maintenance()` creates or updates them,
//! `unschedule_crm_maintenance()` removes them. Each command is one top-level statement.
//!
//! The jobs that run for minutes go through `run_in_steps` (`STEPPED_JOBS`): one transaction per
//! unit of work.
//!
//! No nightly orphan dry-run: pg_cron keeps only "SELECT n" of a job's output, so a dry-run's
//! counts would be lost; `run_pre_migration_diagnostic()` reports orphans when someone looks.

use crate::CrmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub name: &'static str,
    pub schedule: &'static str,
    pub command: &'static str,
    /// The function the command calls, as `to_regprocedure()` takes it: the job is only
    /// scheduled when it exists in this version.
    pub requires: &'static str,
    /// Only scheduled once crm_email_sends is partitioned (the job would fail every run before).
    pub requires_partitioned_sends: bool,
    pub why: &'static str,
}

pub const JOBS: &[Job] = &[
    Job {
        name: "daznode-crm-refresh-materialized-views",
        schedule: "0 * * * *",
        command: "SELECT daznode_crm.refresh_crm_materialized_views()",
        requires: "daznode_crm.refresh_crm_materialized_views(boolean)",
        requires_partitioned_sends: false,
        why: "hourly, as the guide says; unchanged views are skipped, so the hourly run is cheap",
    },
    Job {
        name: "daznode-crm-refresh-segments",
        schedule: "*/15 * * * *",
        command: "CALL daznode_crm.run_in_steps('refresh_auto_update_segments')",
        requires: "daznode_crm.run_in_steps(text)",
        requires_partitioned_sends: false,
        why:
            "keeps auto_update segments current by difference, one segment per transaction (run_in_steps); a job, not a trigger, so profile writes pay nothing",
    },
    Job {
        name: "daznode-crm-cleanup-email-partitions",
        schedule: "0 2 1 * *",
        command: "SELECT daznode_crm.cleanup_old_email_partitions()",
        requires: "daznode_crm.cleanup_old_email_partitions(interval,integer,boolean,boolean,boolean)",
        requires_partitioned_sends: true,
        why: "monthly, at 02:00 on the 1st, as the guide says",
    },
    Job {
        name: "daznode-crm-fold-campaign-counts",
        schedule: "* * * * *",
        command: "SELECT daznode_crm.fold_campaign_counts()",
        requires: "daznode_crm.fold_campaign_counts()",
        requires_partitioned_sends: false,
        why: "every minute: keeps the pending deltas of the live campaign counts few, so that reads stay fast (a read is exact whenever it runs)",
    },
];

impl Job {
    /// Whether to schedule the job on this database: `Err` says why not (reported as
    /// `skipped: …`, nothing changed). `available`: its function exists in this version;
    /// `partitioned`: crm_email_sends is partitioned.
    pub fn verdict(&self, available: bool, partitioned: bool) -> Result<(), String> {
        if !available {
            Err(format!("{} is not in this version of daznode_crm", self.requires))
        } else if self.requires_partitioned_sends && !partitioned {
            Err("public.crm_email_sends is not partitioned yet (CALL daznode_crm.migrate('complete'))".into())
        } else {
            Ok(())
        }
    }
}

/// A maintenance function that `CALL daznode_crm.run_in_steps(name)` runs one unit of work per
/// transaction, for pg_cron. As one `SELECT f()`, a paced run of minutes holds one snapshot all
/// along, and vacuum can then remove no row that died meanwhile anywhere in the database (the
/// live counts' folded deltas first: every read sums them). In steps, no snapshot lives longer
/// than one unit (or one pause, at most `throttle::MAX_PAUSE`), and what each unit returned is
/// kept in `daznode_crm.run_in_steps_log`, which pg_cron's "SELECT n" never was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteppedJob {
    /// The function's SQL name, which is also the job's name.
    pub name: &'static str,
    /// What one unit (one transaction) is.
    pub unit: &'static str,
    /// Its name in `operation_progress` (`progress::encode` keeps 12 characters).
    pub progress: &'static str,
}

pub const STEPPED_JOBS: &[SteppedJob] = &[
    SteppedJob { name: "cleanup_orphaned_records", unit: "one orphan rule", progress: "orphans" },
    SteppedJob { name: "refresh_auto_update_segments", unit: "one auto_update segment", progress: "segments" },
    SteppedJob { name: "run_pre_migration_diagnostic", unit: "one group of checks (each orphan rule is one)", progress: "diagnostic" },
];

/// Runs of each job kept in the log (the oldest go when a run starts).
pub const KEEP_RUNS: i64 = 10;

/// The job named `name`; anything else is an invalid argument (22023) that lists the names,
/// quoting at most 40 characters of what was given.
pub fn stepped_job(name: &str) -> Result<&'static SteppedJob, CrmError> {
    STEPPED_JOBS.iter().find(|j| j.name == name).ok_or_else(|| {
        CrmError::InvalidArgument(format!(
            "run_in_steps() runs {}, not {:?}",
            STEPPED_JOBS.iter().map(|j| j.name).collect::<Vec<_>>().join(", "),
            name.chars().take(40).collect::<String>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_jobs_are_found_by_name_and_anything_else_is_refused_briefly() {
        for job in STEPPED_JOBS {
            assert_eq!(stepped_job(job.name), Ok(job));
            assert!(job.progress.len() <= 12 && !job.progress.contains([' ', ':']), "{}", job.name);
        }
        let e = stepped_job("refresh_crm_materialized_views").unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        assert!(e.to_string().contains("cleanup_orphaned_records, refresh_auto_update_segments, run_pre_migration_diagnostic"));
        let long = stepped_job(&"x".repeat(1_000_000)).unwrap_err().to_string();
        assert!(long.len() < 200, "{}", long.len());
    }

    #[test]
    fn which_jobs_are_scheduled() {
        let cleanup = JOBS.iter().find(|j| j.requires_partitioned_sends).unwrap();
        let refresh = JOBS.iter().find(|j| !j.requires_partitioned_sends).unwrap();
        assert_eq!(refresh.verdict(true, false), Ok(()));
        assert_eq!(cleanup.verdict(true, true), Ok(()));
        assert!(cleanup.verdict(true, false).unwrap_err().contains("not partitioned yet"));
        // A function missing from this version wins over every other reason.
        assert!(cleanup.verdict(false, false).unwrap_err().starts_with("daznode_crm.cleanup_old_email_partitions("));
    }

    #[test]
    fn commands_are_single_statements_and_schedules_have_five_fields() {
        for job in JOBS {
            assert!(!job.command.contains(';'), "{}", job.name);
            assert!((job.command.starts_with("SELECT ") || job.command.starts_with("CALL ")) && job.command.contains(" daznode_crm."), "{}", job.name);
            assert_eq!(job.schedule.split_whitespace().count(), 5, "{}", job.name);
            assert!(job.name.starts_with("daznode-crm-"), "{}", job.name);
            assert!(job.command.contains(job.requires.split('(').next().unwrap()), "{}", job.name);
        }
    }
}
