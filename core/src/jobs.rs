//! The guide's pg_cron jobs, defined once: `schedule_crm_maintenance()` creates or updates them,
//! `unschedule_crm_maintenance()` removes them. Each command is one top-level statement.
//!
//! No nightly orphan dry-run: pg_cron keeps only "SELECT n" of a job's output, so a dry-run's
//! counts would be lost; `run_pre_migration_diagnostic()` reports orphans when someone looks.

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
        command: "SELECT count(*) FROM daznode_crm.refresh_auto_update_segments()",
        requires: "daznode_crm.refresh_auto_update_segments()",
        requires_partitioned_sends: false,
        why: "keeps auto_update segments current by difference; a job, not a trigger, so profile writes pay nothing",
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

#[cfg(test)]
mod tests {
    use super::*;

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
            assert!(job.command.starts_with("SELECT ") && job.command.contains(" daznode_crm."), "{}", job.name);
            assert_eq!(job.schedule.split_whitespace().count(), 5, "{}", job.name);
            assert!(job.name.starts_with("daznode-crm-"), "{}", job.name);
            assert!(job.command.contains(job.requires.split('(').next().unwrap()), "{}", job.name);
        }
    }
}
