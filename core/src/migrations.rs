//! The catalog of schema migration steps and the planning of which ones to apply.
//!
//! A step is applied by the SQL function `daznode_crm.<function>()` (sql/migrations.sql), in its
//! own transaction, by the procedure `daznode_crm.migrate(target)`. This module decides the
//! order and what is pending; it is the one list of steps that everything else reads.

use crate::CrmError;

/// Which of the guide's migrations a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The guide's "safe" migration: no table rewrite, no partitioning.
    Safe,
    /// The guide's "complete" migration: safe, then partitioning of crm_email_sends.
    Complete,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Safe => "safe",
            Target::Complete => "complete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Ordered, unique, never renamed once released: the ledger stores it.
    pub name: &'static str,
    pub target: Target,
    /// A procedure step commits several transactions of its own (an online copy); a function
    /// step is one transaction.
    pub procedure: bool,
    /// The extension version that introduced the step.
    pub since: &'static str,
    pub summary: &'static str,
}

impl Step {
    /// The SQL function that applies the step, in schema daznode_crm.
    pub fn function(&self) -> String {
        format!("step_{}", self.name.split_once('_').map_or(self.name, |(_, rest)| rest))
    }
}

/// Every step, in the order they apply.
pub const STEPS: &[Step] = &[
    Step {
        name: "0000_guide_api",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "the guide's function names in public, thin wrappers of the native functions, so that its bare calls work from the first (opt out: SET daznode_crm.guide_api = off)",
    },
    Step {
        name: "0001_base_schema",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "create the CRM tables that do not exist yet (all of them on an empty database)",
    },
    Step {
        name: "0002_normalize_profiles",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "trim and lower-case emails (unless that would collide), lower-case pubkeys, '' pubkeys to NULL",
    },
    Step {
        name: "0003_native_constraints",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "replace the legacy regex CHECKs by the native validators, NOT VALID",
    },
    Step {
        name: "0004_consolidate_users",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "copy users missing from profiles, re-point foreign keys to profiles, rename users to users_backup",
    },
    Step {
        name: "0005_validate_constraints",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "validate the NOT VALID constraints whose rows are all clean; report the others",
    },
    Step {
        name: "0006_indexes",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "create the planned indexes on small tables, drop exact duplicates; big tables go to concurrent_index_plan()",
    },
    Step {
        name: "0007_stats_views",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "create or replace crm_segment_stats and crm_campaign_stats, with rates from the *_at timestamps",
    },
    Step {
        name: "0008_access_control",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "row-level security on every CRM table with the guide's role matrix; recursive legacy policies dropped",
    },
    Step {
        name: "0009_analytics_views",
        target: Target::Safe,
        procedure: false,
        since: "0.2.0",
        summary: "the guide's materialized views (correct rates, unique indexes, admin-only) and crm_performance_monitor",
    },
    Step {
        name: "0010_partition_email_sends",
        target: Target::Complete,
        procedure: true,
        since: "0.2.0",
        summary: "crm_email_sends partitioned by month on created_at, copied online; the old table kept in sync as crm_email_sends_backup",
    },
    Step {
        name: "0011_live_campaign_counts",
        target: Target::Safe,
        procedure: true,
        since: "0.2.0",
        summary: "campaign analytics always current: statement triggers append per-campaign deltas, folded by a job; the admins' source reads both, and the campaigns materialized view goes",
    },
];

/// The steps to apply, in order, for `target`: `'latest'` and `'safe'` mean every safe step,
/// `'complete'` every step, and a step name means every step up to and including it.
pub fn plan<'a>(target: &str, applied: &[&str]) -> Result<Vec<&'a Step>, CrmError> {
    plan_from(STEPS, target, applied)
}

fn plan_from<'a>(steps: &'a [Step], target: &str, applied: &[&str]) -> Result<Vec<&'a Step>, CrmError> {
    let wanted: Vec<&Step> = match target {
        "latest" | "safe" => steps.iter().filter(|s| s.target == Target::Safe).collect(),
        "complete" => steps.iter().collect(),
        name => {
            let end = steps.iter().position(|s| s.name == name).ok_or_else(|| {
                CrmError::InvalidArgument(format!(
                    "unknown migration target {name:?}: use 'latest', 'safe', 'complete' or a step name ({})",
                    steps.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                ))
            })?;
            steps[..=end].iter().collect()
        }
    };
    if let Some(unknown) = applied.iter().find(|a| !steps.iter().any(|s| s.name == **a)) {
        return Err(CrmError::UnknownAppliedStep(unknown.to_string()));
    }
    Ok(wanted.into_iter().filter(|s| !applied.contains(&s.name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_ordered_unique_and_map_to_functions() {
        for pair in STEPS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} before {}", pair[0].name, pair[1].name);
        }
        for step in STEPS {
            let f = step.function();
            assert!(f.starts_with("step_") && f.len() < 63, "{f}");
            assert!(f.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{f}");
        }
        assert_eq!(STEPS[0].function(), "step_guide_api");
        assert_eq!(STEPS[1].function(), "step_base_schema");
    }

    #[test]
    fn targets() {
        let all: Vec<_> = STEPS.iter().map(|s| s.name).collect();
        let safe: Vec<_> = STEPS.iter().filter(|s| s.target == Target::Safe).map(|s| s.name).collect();
        let names = |v: Vec<&Step>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names(plan("latest", &[]).unwrap()), safe);
        assert_eq!(names(plan("safe", &[]).unwrap()), safe);
        assert_eq!(names(plan("complete", &[]).unwrap()), all);
        assert_eq!(names(plan("0002_normalize_profiles", &[]).unwrap()), all[..3].to_vec());
    }

    #[test]
    fn applied_steps_are_skipped_and_rerun_is_empty() {
        let applied: Vec<&str> = STEPS.iter().take(3).map(|s| s.name).collect();
        let pending = plan("latest", &applied).unwrap();
        assert!(pending.iter().all(|s| !applied.contains(&s.name)));
        let all: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
        assert!(plan("complete", &all).unwrap().is_empty());
    }

    #[test]
    fn bad_targets_are_invalid_arguments() {
        let err = plan("everything", &[]).unwrap_err();
        assert!(matches!(err, CrmError::InvalidArgument(_)));
        assert!(err.to_string().contains("'latest', 'safe', 'complete'"), "{err}");
        assert!(matches!(plan("latest", &["9999_from_the_future"]), Err(CrmError::UnknownAppliedStep(_))));
    }

    #[test]
    fn complete_only_steps_are_not_in_safe() {
        let steps = [
            Step { name: "a", target: Target::Safe, procedure: false, since: "0", summary: "" },
            Step { name: "b", target: Target::Complete, procedure: true, since: "0", summary: "" },
        ];
        assert_eq!(plan_from(&steps, "safe", &[]).unwrap().len(), 1);
        assert_eq!(plan_from(&steps, "complete", &[]).unwrap().len(), 2);
        assert_eq!(plan_from(&steps, "complete", &["a"]).unwrap()[0].name, "b");
    }
}
