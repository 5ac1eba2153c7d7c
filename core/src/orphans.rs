//! The orphan rules, defined once: `run_pre_migration_diagnostic()` counts with them and
//! `cleanup_orphaned_records()` applies them. A row is an orphan when it points at a parent row
//! that does not exist, whether or not a foreign key is declared (arrays cannot have one, and
//! restored or legacy databases may have lost theirs).

use crate::sql::quote_ident;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanAction {
    /// Delete the orphan row.
    Delete,
    /// Keep the row, set the dangling reference to NULL.
    SetNull,
    /// Keep the row, remove the dangling elements from the array.
    RemoveFromArray,
    /// Never changed automatically: counted and reported only.
    Report,
}

impl OrphanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanAction::Delete => "delete",
            OrphanAction::SetNull => "set null",
            OrphanAction::RemoveFromArray => "remove from array",
            OrphanAction::Report => "report only",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanRule {
    pub child_table: &'static str,
    pub child_column: &'static str,
    /// The column holds an array of parent ids (no foreign key is possible).
    pub array: bool,
    /// Candidate parents, `(table, column)`: the row is an orphan when no candidate that exists
    /// has the id. Before consolidation, ids of `users` count as parents too.
    pub parents: &'static [(&'static str, &'static str)],
    /// A NULL reference is an orphan too (a membership of nobody means nothing).
    pub null_is_orphan: bool,
    pub action: OrphanAction,
    pub why: &'static str,
}

const PROFILES: (&str, &str) = ("profiles", "id");

pub const ORPHAN_RULES: &[OrphanRule] = &[
    OrphanRule {
        child_table: "crm_customer_segment_members",
        child_column: "segment_id",
        array: false,
        parents: &[("crm_customer_segments", "id")],
        null_is_orphan: true,
        action: OrphanAction::Delete,
        why: "a membership of no segment means nothing (the foreign key cascades the same way)",
    },
    OrphanRule {
        child_table: "crm_customer_segment_members",
        child_column: "customer_id",
        array: false,
        parents: &[PROFILES],
        null_is_orphan: true,
        action: OrphanAction::Delete,
        why: "a membership of no customer means nothing (the foreign key cascades the same way)",
    },
    OrphanRule {
        child_table: "admin_roles",
        child_column: "user_id",
        array: false,
        parents: &[PROFILES],
        null_is_orphan: false,
        action: OrphanAction::Delete,
        why: "a role held by nobody is a risk: a profile created later with that id would inherit it",
    },
    OrphanRule {
        child_table: "crm_email_campaigns",
        child_column: "created_by",
        array: false,
        parents: &[PROFILES],
        null_is_orphan: false,
        action: OrphanAction::SetNull,
        why: "the campaign stays; only its author is gone",
    },
    OrphanRule {
        child_table: "crm_email_campaigns",
        child_column: "template_id",
        array: false,
        parents: &[("crm_email_templates", "id")],
        null_is_orphan: false,
        action: OrphanAction::SetNull,
        why: "the campaign keeps its own content; its foreign key says ON DELETE SET NULL",
    },
    OrphanRule {
        child_table: "crm_email_campaigns",
        child_column: "segment_ids",
        array: true,
        parents: &[("crm_customer_segments", "id")],
        null_is_orphan: false,
        action: OrphanAction::RemoveFromArray,
        why: "an array cannot have a foreign key; ids of deleted segments are dropped from it",
    },
    OrphanRule {
        child_table: "crm_email_sends",
        child_column: "customer_id",
        array: false,
        parents: &[PROFILES],
        null_is_orphan: false,
        action: OrphanAction::SetNull,
        why: "sends are history: the row (and the address it went to) stays so that campaign counts and rates do not change; only the link to the deleted profile goes",
    },
    OrphanRule {
        child_table: "crm_email_sends",
        child_column: "campaign_id",
        array: false,
        parents: &[("crm_email_campaigns", "id")],
        null_is_orphan: false,
        action: OrphanAction::Report,
        why: "sends are history and proof of delivery: never deleted automatically; delete them by hand if the campaign is really gone",
    },
    OrphanRule {
        child_table: "orders",
        child_column: "user_id",
        array: false,
        parents: &[PROFILES, ("users", "id")],
        null_is_orphan: false,
        action: OrphanAction::Report,
        why: "financial records are never changed automatically",
    },
    OrphanRule {
        child_table: "subscriptions",
        child_column: "user_id",
        array: false,
        parents: &[PROFILES, ("users", "id")],
        null_is_orphan: false,
        action: OrphanAction::Report,
        why: "billing records are never changed automatically",
    },
];

impl OrphanRule {
    /// The parents to test against, given which `(table, column)` exist: the first parent is
    /// required (without it, "no parent row" would mean every row), the others (the legacy
    /// `users`) count when present. `Err` names the missing required parent: the rule is skipped
    /// and reported, never applied as if every reference dangled.
    pub fn parents_present(&self, exists: impl Fn(&str, &str) -> bool) -> Result<Vec<(&'static str, &'static str)>, String> {
        let (t, c) = self.parents[0];
        if !exists(t, c) {
            return Err(format!("public.{t}.{c} does not exist (or is not a table of the CRM owner)"));
        }
        Ok(self.parents.iter().copied().filter(|(t, c)| exists(t, c)).collect())
    }

    /// The orphan predicate over `c` (the child row), given the parents that exist.
    fn predicate(&self, existing_parents: &[(&str, &str)]) -> String {
        let col = format!("c.{}", quote_ident(self.child_column));
        let value = if self.array { "x.v".to_string() } else { col.clone() };
        let missing: Vec<String> = existing_parents
            .iter()
            .map(|(t, k)| format!("NOT EXISTS (SELECT 1 FROM public.{} p WHERE p.{} = {value})", quote_ident(t), quote_ident(k)))
            .collect();
        // parents_present() never gives an empty list; should one come anyway, nothing dangles.
        let missing = if missing.is_empty() { "false".to_string() } else { missing.join(" AND ") };
        if self.array {
            format!("EXISTS (SELECT 1 FROM unnest({col}) AS x(v) WHERE x.v IS NULL OR ({missing}))")
        } else if self.null_is_orphan {
            format!("({col} IS NULL OR ({missing}))")
        } else {
            format!("({col} IS NOT NULL AND {missing})")
        }
    }

    /// Counts the orphans; returns one bigint.
    pub fn count_sql(&self, existing_parents: &[(&str, &str)]) -> String {
        format!("SELECT count(*) FROM public.{} c WHERE {}", quote_ident(self.child_table), self.predicate(existing_parents))
    }

    /// The statement that applies the rule, or None for report-only rules. Row locks only.
    pub fn cleanup_sql(&self, existing_parents: &[(&str, &str)]) -> Option<String> {
        let table = format!("public.{}", quote_ident(self.child_table));
        let col = quote_ident(self.child_column);
        let pred = self.predicate(existing_parents);
        match self.action {
            OrphanAction::Report => None,
            OrphanAction::Delete => Some(format!("DELETE FROM {table} c WHERE {pred}")),
            OrphanAction::SetNull => Some(format!("UPDATE {table} c SET {col} = NULL WHERE {pred}")),
            OrphanAction::RemoveFromArray => {
                let keep: Vec<String> = existing_parents
                    .iter()
                    .map(|(t, k)| format!("EXISTS (SELECT 1 FROM public.{} p WHERE p.{} = x.v)", quote_ident(t), quote_ident(k)))
                    .collect();
                let keep = if keep.is_empty() { "false".to_string() } else { keep.join(" OR ") };
                Some(format!(
                    "UPDATE {table} c SET {col} = ARRAY(SELECT x.v FROM unnest(c.{col}) WITH ORDINALITY AS x(v, n) \
                     WHERE x.v IS NOT NULL AND ({keep}) ORDER BY x.n) WHERE {pred}"
                ))
            }
        }
    }
}

/// Why a rule cannot be applied to this database (it is reported, never applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inapplicable {
    /// `child_table.child_column` does not exist (or is not a column of a CRM table).
    ChildColumnMissing,
    /// The required parent does not exist: the message names it.
    ParentMissing(String),
}

impl OrphanRule {
    /// The one guard both the diagnostic and the cleanup apply: the child column must exist,
    /// then the parents that exist (`parents_present`).
    pub fn applicable(&self, exists: impl Fn(&str, &str) -> bool) -> Result<Vec<(&'static str, &'static str)>, Inapplicable> {
        if !exists(self.child_table, self.child_column) {
            return Err(Inapplicable::ChildColumnMissing);
        }
        self.parents_present(&exists).map_err(Inapplicable::ParentMissing)
    }
}

impl OrphanRule {
    /// `table.column`: the rule's name in the diagnostic and its unit in `run_in_steps`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.child_table, self.child_column)
    }
}

/// The rule whose `key()` is `key`.
pub fn rule_by_key(key: &str) -> Option<&'static OrphanRule> {
    ORPHAN_RULES.iter().find(|r| r.key() == key)
}

/// What one run of `cleanup_orphaned_records()` does with a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleRun {
    /// Run `sql`; report the rows it changed as `label`.
    Apply { sql: String, label: &'static str },
    /// Count the orphans with `sql`; report them as `label`.
    Count { sql: String, label: String },
}

impl OrphanRule {
    /// The dry-run and action matrix: a real run applies a rule that has a cleanup statement; a
    /// report-only rule is counted ("report only"), and so is every rule in a dry run
    /// ("would <action>").
    pub fn run(&self, dry_run: bool, existing_parents: &[(&str, &str)]) -> RuleRun {
        let count = || self.count_sql(existing_parents);
        match (dry_run, self.action, self.cleanup_sql(existing_parents)) {
            (false, _, Some(sql)) => RuleRun::Apply { sql, label: self.action.as_str() },
            (true, OrphanAction::Report, _) | (false, _, None) => RuleRun::Count { sql: count(), label: OrphanAction::Report.as_str().into() },
            (true, action, _) => RuleRun::Count { sql: count(), label: format!("would {}", action.as_str()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::CRM_TABLES;

    #[test]
    fn a_rule_applies_only_with_its_column_and_its_required_parent() {
        let members = &ORPHAN_RULES[1];
        assert_eq!(members.applicable(|_, _| false), Err(Inapplicable::ChildColumnMissing));
        let no_parent = members.applicable(|t, _| t == members.child_table);
        assert!(matches!(no_parent, Err(Inapplicable::ParentMissing(m)) if m.contains("does not exist")));
        assert_eq!(members.applicable(|_, _| true).unwrap()[0], members.parents[0]);
    }

    #[test]
    fn rules_are_found_by_their_unique_key() {
        for rule in ORPHAN_RULES {
            assert_eq!(rule_by_key(&rule.key()), Some(rule));
            assert_eq!(ORPHAN_RULES.iter().filter(|r| r.key() == rule.key()).count(), 1);
        }
        assert_eq!(rule_by_key("profiles.id"), None);
    }

    #[test]
    fn dry_run_and_action_matrix() {
        let parents = [("profiles", "id")];
        for rule in ORPHAN_RULES {
            let label = |r: RuleRun| match r {
                RuleRun::Apply { label, .. } => format!("apply {label}"),
                RuleRun::Count { label, .. } => format!("count {label}"),
            };
            let (real, dry) = (label(rule.run(false, &parents)), label(rule.run(true, &parents)));
            match rule.action {
                OrphanAction::Report => assert_eq!((real.as_str(), dry.as_str()), ("count report only", "count report only")),
                a => assert_eq!((real, dry), (format!("apply {}", a.as_str()), format!("count would {}", a.as_str()))),
            }
        }
        let members = &ORPHAN_RULES[1];
        assert_eq!(members.run(true, &parents), RuleRun::Count { sql: members.count_sql(&parents), label: "would delete".into() });
    }

    #[test]
    fn rules_name_known_tables() {
        for r in ORPHAN_RULES {
            assert!(CRM_TABLES.contains(&r.child_table), "{}", r.child_table);
            for (t, _) in r.parents {
                assert!(CRM_TABLES.contains(t) || *t == "users", "{t}");
            }
            assert!(!r.why.is_empty());
        }
    }

    #[test]
    fn scalar_rules() {
        let members = &ORPHAN_RULES[1];
        assert_eq!(
            members.count_sql(&[("profiles", "id")]),
            "SELECT count(*) FROM public.crm_customer_segment_members c WHERE (c.customer_id IS NULL OR (NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = c.customer_id)))"
        );
        assert!(members.cleanup_sql(&[("profiles", "id")]).unwrap().starts_with("DELETE FROM public.crm_customer_segment_members c WHERE"));
        let sends = ORPHAN_RULES.iter().find(|r| r.child_table == "crm_email_sends" && r.child_column == "customer_id").unwrap();
        assert!(sends
            .cleanup_sql(&[("profiles", "id")])
            .unwrap()
            .starts_with("UPDATE public.crm_email_sends c SET customer_id = NULL WHERE (c.customer_id IS NOT NULL AND"));
    }

    #[test]
    fn several_parents_must_all_miss() {
        let orders = ORPHAN_RULES.iter().find(|r| r.child_table == "orders").unwrap();
        let sql = orders.count_sql(&[("profiles", "id"), ("users", "id")]);
        assert!(sql.contains("public.profiles p WHERE p.id = c.user_id) AND NOT EXISTS (SELECT 1 FROM public.users p"), "{sql}");
        assert_eq!(orders.cleanup_sql(&[("profiles", "id")]), None);
    }

    #[test]
    fn array_rule_keeps_order_and_valid_ids() {
        let arr = ORPHAN_RULES.iter().find(|r| r.array).unwrap();
        let sql = arr.cleanup_sql(&[("crm_customer_segments", "id")]).unwrap();
        assert!(sql.contains("WITH ORDINALITY") && sql.contains("ORDER BY x.n"), "{sql}");
        assert!(arr.count_sql(&[("crm_customer_segments", "id")]).contains("unnest(c.segment_ids)"));
    }

    #[test]
    fn a_missing_parent_table_skips_the_rule() {
        for r in ORPHAN_RULES {
            assert!(r.parents_present(|_, _| false).is_err(), "{}.{}", r.child_table, r.child_column);
        }
        let orders = ORPHAN_RULES.iter().find(|r| r.child_table == "orders").unwrap();
        assert_eq!(orders.parents_present(|t, _| t == "profiles").unwrap(), vec![("profiles", "id")]);
        assert!(orders.parents_present(|t, _| t == "users").is_err(), "users alone is not enough");
        let r = &ORPHAN_RULES[0];
        assert!(r.count_sql(&[]).ends_with("(c.segment_id IS NULL OR (false))"));
    }
}
