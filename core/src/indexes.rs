//! The indexes the migration wants, defined once: the `0006_indexes` step builds those on small
//! tables, `concurrent_index_plan()` emits CREATE INDEX CONCURRENTLY for the rest, and
//! `check_concurrent_indexes_status()` reports each one.
//!
//! None contains `now()` or a non-immutable `date_trunc`: every expression is IMMUTABLE, which
//! six of the guide's nineteen indexes were not.

use crate::sql::quote_ident;

/// Tables with fewer estimated rows get their indexes inside the migration step (a brief
/// SHARE lock); bigger ones only through CREATE INDEX CONCURRENTLY.
pub const SMALL_TABLE_ROWS: f64 = 50_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedIndex {
    pub name: &'static str,
    /// In schema public.
    pub table: &'static str,
    pub unique: bool,
    /// What follows `ON public.<table>`.
    pub definition: &'static str,
    /// Why the planner wants it.
    pub purpose: &'static str,
}

impl PlannedIndex {
    pub fn create_sql(&self, concurrently: bool) -> String {
        format!(
            "CREATE {}INDEX {}IF NOT EXISTS {} ON public.{} {}",
            if self.unique { "UNIQUE " } else { "" },
            if concurrently { "CONCURRENTLY " } else { "" },
            quote_ident(self.name),
            quote_ident(self.table),
            self.definition
        )
    }

    /// While legacy duplicates of a unique index wait for a human, new rows are held to it at
    /// once by `<name>_interim`: the same unique index, leaving out all rows of each duplicate
    /// group but one (`left_out_sql`), so that a new row colliding with any group, or with any
    /// other row, is refused. The plan drops it once the full index is valid.
    pub fn interim_name(&self) -> String {
        format!("{}_interim", self.name)
    }

    /// The groups of rows that share this unique index's key, the one definition of "duplicate
    /// emails" and "duplicate pubkeys" (the diagnostic counts them, step 0002 reports them, the
    /// interim index leaves them out): columns key, n, ids (uuid[], smallest first). NULL keys
    /// never collide. None for a non-unique index.
    pub fn duplicate_groups_sql(&self) -> Option<String> {
        self.unique.then(|| {
            let key = &self.definition[1..self.definition.len() - 1];
            format!(
                "SELECT {key} AS key, count(*) AS n, array_agg(t.id ORDER BY t.id) AS ids FROM public.{} t WHERE {key} IS NOT NULL GROUP BY 1 HAVING count(*) > 1",
                quote_ident(self.table)
            )
        })
    }

    /// A query counting the duplicate groups: while it is non-zero the index is not planned (a
    /// failed concurrent build leaves an invalid index). None for a non-unique index.
    pub fn blocker_sql(&self) -> Option<String> {
        self.duplicate_groups_sql().map(|groups| format!("SELECT count(*) FROM ({groups}) AS d"))
    }

    /// The ids (text) of the rows the interim index leaves out: every row of a duplicate group
    /// but the one with the smallest id. None for a non-unique index.
    pub fn left_out_sql(&self) -> Option<String> {
        self.duplicate_groups_sql()
            .map(|groups| format!("SELECT coalesce(array_agg(id::text ORDER BY id), '{{}}') FROM ({groups}) AS d, unnest(d.ids[2:]) AS id"))
    }

    /// The interim index leaving out `left_out` (uuids, checked here since DDL takes no
    /// parameters), or an error naming the first value that is not a uuid.
    pub fn interim_create_sql(&self, left_out: &[String], concurrently: bool) -> Result<String, String> {
        if let Some(bad) = left_out.iter().find(|id| !is_uuid(id)) {
            return Err(format!("not a uuid: {:?}", crate::sql::excerpt(bad, 64)));
        }
        Ok(format!(
            "CREATE UNIQUE INDEX {}IF NOT EXISTS {} ON public.{} {} WHERE id <> ALL ('{{{}}}'::uuid[])",
            if concurrently { "CONCURRENTLY " } else { "" },
            quote_ident(&self.interim_name()),
            quote_ident(self.table),
            self.definition,
            left_out.join(",")
        ))
    }

    pub fn interim_drop_sql(&self) -> String {
        format!("DROP INDEX CONCURRENTLY IF EXISTS public.{}", quote_ident(&self.interim_name()))
    }

    pub fn drop_sql(&self, concurrently: bool) -> String {
        format!("DROP INDEX {}IF EXISTS public.{}", if concurrently { "CONCURRENTLY " } else { "" }, quote_ident(self.name))
    }
}

/// The unique planned index whose key defines duplicate emails, and the one for node public keys.
pub const EMAIL_KEY_INDEX: &str = "profiles_email_normalized_key";
pub const PUBKEY_KEY_INDEX: &str = "profiles_pubkey_normalized_key";

/// The planned index named `name`.
pub fn planned(name: &str) -> Option<&'static PlannedIndex> {
    PLANNED_INDEXES.iter().find(|i| i.name == name)
}

pub const PLANNED_INDEXES: &[PlannedIndex] = &[
    PlannedIndex {
        name: "profiles_email_normalized_key",
        table: "profiles",
        unique: true,
        definition: "(daznode_crm.normalize_email(email))",
        purpose: "emails unique whatever their case; case-insensitive lookup by email",
    },
    PlannedIndex {
        name: "profiles_pubkey_normalized_key",
        table: "profiles",
        unique: true,
        definition: "(daznode_crm.normalize_lightning_pubkey(pubkey))",
        purpose: "node public keys unique whatever their case ('' and NULL excluded)",
    },
    PlannedIndex {
        name: "idx_profiles_created_at",
        table: "profiles",
        unique: false,
        definition: "(created_at DESC, id)",
        purpose: "React Admin profile list sorted by created_at DESC, id (id breaks the ties of rows copied at one instant)",
    },
    PlannedIndex {
        name: "idx_profiles_segmentation",
        table: "profiles",
        unique: false,
        definition: "(email_verified, created_at DESC, id)",
        purpose: "segments on email_verified and created_days_ago; admin lists sorted by created_at DESC, id and counts by index-only scan (RLS reads id)",
    },
    PlannedIndex {
        name: "idx_profiles_updated_at",
        table: "profiles",
        unique: false,
        definition: "(updated_at DESC)",
        purpose: "segments on recent activity (last_login_days)",
    },
    PlannedIndex {
        name: "idx_segment_members_customer",
        table: "crm_customer_segment_members",
        unique: false,
        definition: "(customer_id)",
        purpose: "foreign key to profiles (ON DELETE CASCADE) and a customer's segments",
    },
    PlannedIndex {
        name: "idx_segment_members_segment_added",
        table: "crm_customer_segment_members",
        unique: false,
        definition: "(segment_id, added_at DESC)",
        purpose: "a segment's members newest first (the admin list), without sorting the whole segment",
    },
    PlannedIndex {
        name: "idx_campaigns_status_created",
        table: "crm_email_campaigns",
        unique: false,
        definition: "(status, created_at DESC, id)",
        purpose: "campaign list filtered by status, newest first (id breaks ties)",
    },
    PlannedIndex {
        name: "idx_campaigns_created_by",
        table: "crm_email_campaigns",
        unique: false,
        definition: "(created_by)",
        purpose: "foreign key to profiles",
    },
    PlannedIndex {
        name: "idx_campaigns_template",
        table: "crm_email_campaigns",
        unique: false,
        definition: "(template_id)",
        purpose: "foreign key to templates (ON DELETE SET NULL)",
    },
    PlannedIndex {
        name: "idx_email_sends_campaign_customer",
        table: "crm_email_sends",
        unique: false,
        definition: "(campaign_id, customer_id)",
        purpose: "delivery webhooks update by (campaign_id, customer_id); foreign key to campaigns",
    },
    PlannedIndex {
        name: "idx_email_sends_customer",
        table: "crm_email_sends",
        unique: false,
        definition: "(customer_id)",
        purpose: "foreign key to profiles (ON DELETE CASCADE) and a customer's history",
    },
    PlannedIndex {
        name: "idx_email_sends_campaign_stats",
        table: "crm_email_sends",
        unique: false,
        definition: "(campaign_id) INCLUDE (status, sent_at, opened_at, clicked_at, bounced_at)",
        purpose: "campaign statistics from the *_at timestamps by index-only scan",
    },
    PlannedIndex {
        name: "idx_orders_user_created",
        table: "orders",
        unique: false,
        definition: "(user_id, created_at DESC)",
        purpose: "foreign key to profiles; segments on orders (count, total, last order)",
    },
    PlannedIndex {
        name: "idx_subscriptions_user_status",
        table: "subscriptions",
        unique: false,
        definition: "(user_id, status)",
        purpose: "foreign key to profiles; segments on subscription plan and status",
    },
];

/// The state of a planned index, as `check_concurrent_indexes_status()` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexStatus {
    Missing,
    Building,
    Invalid,
    Valid,
}

impl IndexStatus {
    /// From the catalog: does an index of that name exist on the table, is it `indisvalid`,
    /// and is a CREATE INDEX (CONCURRENTLY) on it in progress (pg_stat_progress_create_index).
    pub fn classify(exists: bool, indisvalid: bool, build_in_progress: bool) -> IndexStatus {
        match (exists, indisvalid, build_in_progress) {
            (false, _, _) => IndexStatus::Missing,
            (true, true, _) => IndexStatus::Valid,
            (true, false, true) => IndexStatus::Building,
            (true, false, false) => IndexStatus::Invalid,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IndexStatus::Missing => "missing",
            IndexStatus::Building => "building",
            IndexStatus::Invalid => "invalid",
            IndexStatus::Valid => "valid",
        }
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// The interim index of a unique planned index (`PlannedIndex::interim_name`) as the catalog
/// has it, and the create statement for it when one is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interim {
    pub status: IndexStatus,
    /// `interim_create_sql(…, true)` with the current duplicates, when `blocked > 0`.
    pub create_sql: Option<String>,
}

/// A planned index as the catalog has it now: what `check_concurrent_indexes_status()` and
/// `concurrent_index_plan()` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexState {
    pub index: &'static PlannedIndex,
    pub table_exists: bool,
    pub status: IndexStatus,
    /// Groups of rows that would violate it (unique indexes), 0 otherwise.
    pub blocked: i64,
    /// The phase of a CREATE INDEX in progress on it.
    pub phase: Option<String>,
    pub interim: Interim,
}

impl IndexState {
    /// What keeps it from being valid, for a human; None when it is valid.
    pub fn detail(&self) -> Option<String> {
        if !self.table_exists {
            return Some(format!("table public.{} does not exist", self.index.table));
        }
        if self.blocked > 0 {
            return Some(format!(
                "blocked: {} value(s) shared by several rows would violate this unique index; see daznode_crm.migration_findings. \
                 Meanwhile {} ({}) holds every new row to it",
                self.blocked,
                self.index.interim_name(),
                self.interim.status.as_str()
            ));
        }
        match self.status {
            IndexStatus::Building => self.phase.clone().map(|p| format!("CREATE INDEX in progress: {p}")),
            IndexStatus::Invalid => Some("left by a failed or cancelled concurrent build: concurrent_index_plan() drops and rebuilds it".into()),
            IndexStatus::Missing => Some("not built yet: run concurrent_index_plan()".into()),
            IndexStatus::Valid => None,
        }
    }
}

/// The statements that bring one index to valid, each runnable on its own (outside a
/// transaction block): psql `\gexec` or one pg_cron job per statement. `blocked` is the number
/// of groups that would violate a unique index: then only its interim index is planned; once
/// none is left, the full index, then the interim one's drop.
pub fn statements_for(index: &PlannedIndex, status: IndexStatus, blocked: i64, interim: &Interim) -> Vec<String> {
    if blocked > 0 {
        let create = interim.create_sql.clone().into_iter();
        return match interim.status {
            IndexStatus::Valid | IndexStatus::Building => Vec::new(),
            IndexStatus::Missing => create.collect(),
            IndexStatus::Invalid => std::iter::once(index.interim_drop_sql()).chain(create).collect(),
        };
    }
    let mut out = match status {
        IndexStatus::Valid | IndexStatus::Building => Vec::new(),
        IndexStatus::Missing => vec![index.create_sql(true)],
        IndexStatus::Invalid => vec![index.drop_sql(true), index.create_sql(true)],
    };
    if interim.status != IndexStatus::Missing && status != IndexStatus::Building {
        out.push(index.interim_drop_sql());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_details_say_what_keeps_an_index_from_valid() {
        let index = PLANNED_INDEXES.iter().find(|i| i.unique).unwrap();
        let none = Interim { status: IndexStatus::Missing, create_sql: None };
        let state = |table_exists, status, blocked, phase: Option<&str>| IndexState {
            index,
            table_exists,
            status,
            blocked,
            phase: phase.map(Into::into),
            interim: none.clone(),
        };
        assert_eq!(state(true, IndexStatus::Valid, 0, None).detail(), None);
        assert!(state(false, IndexStatus::Missing, 3, None).detail().unwrap().contains("does not exist"));
        assert!(state(true, IndexStatus::Missing, 3, None).detail().unwrap().starts_with("blocked: 3 value(s)"));
        assert_eq!(state(true, IndexStatus::Building, 0, Some("building index")).detail().unwrap(), "CREATE INDEX in progress: building index");
        assert!(state(true, IndexStatus::Invalid, 0, None).detail().unwrap().contains("drops and rebuilds"));
        assert!(state(true, IndexStatus::Missing, 0, None).detail().unwrap().starts_with("not built yet"));
    }

    #[test]
    fn names_are_plain_identifiers_and_unique() {
        for (i, idx) in PLANNED_INDEXES.iter().enumerate() {
            assert!(idx.name.len() <= 63 && quote_ident(idx.name) == idx.name, "{}", idx.name);
            assert!(PLANNED_INDEXES[..i].iter().all(|o| o.name != idx.name), "duplicate {}", idx.name);
            assert_eq!(idx.unique, idx.blocker_sql().is_some(), "{}: unique indexes need a blocker query", idx.name);
        }
    }

    #[test]
    fn no_volatile_expressions() {
        for idx in PLANNED_INDEXES {
            let def = idx.definition.to_lowercase();
            for banned in ["now()", "date_trunc", "current_", "random("] {
                assert!(!def.contains(banned), "{} uses {banned}", idx.name);
            }
        }
    }

    #[test]
    fn sql_shapes() {
        let idx = &PLANNED_INDEXES[0];
        assert_eq!(
            idx.create_sql(true),
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS profiles_email_normalized_key ON public.profiles (daznode_crm.normalize_email(email))"
        );
        assert_eq!(idx.drop_sql(true), "DROP INDEX CONCURRENTLY IF EXISTS public.profiles_email_normalized_key");
        assert!(!PLANNED_INDEXES[2].create_sql(false).contains("CONCURRENTLY"));
    }

    #[test]
    fn status_and_statements() {
        use IndexStatus::*;
        assert_eq!(IndexStatus::classify(false, false, false), Missing);
        assert_eq!(IndexStatus::classify(true, true, false), Valid);
        assert_eq!(IndexStatus::classify(true, false, true), Building);
        assert_eq!(IndexStatus::classify(true, false, false), Invalid);
        let none = Interim { status: Missing, create_sql: None };
        let idx = &PLANNED_INDEXES[2];
        assert_eq!(statements_for(idx, Missing, 0, &none).len(), 1);
        assert!(statements_for(idx, Invalid, 0, &none)[0].starts_with("DROP INDEX CONCURRENTLY"));
        assert!(statements_for(idx, Valid, 0, &none).is_empty());
        assert!(statements_for(idx, Building, 0, &none).is_empty());
    }

    #[test]
    fn interim_index_while_duplicates_wait() {
        use IndexStatus::*;
        let email = &PLANNED_INDEXES[0];
        let ids = vec!["0f8fad5b-d9cb-469f-a165-70867728950e".to_string(), "7c9e6679-7425-40de-944b-e07fc1f90ae7".to_string()];
        let create = email.interim_create_sql(&ids, true).unwrap();
        assert_eq!(
            create,
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS profiles_email_normalized_key_interim ON public.profiles \
             (daznode_crm.normalize_email(email)) WHERE id <> ALL ('{0f8fad5b-d9cb-469f-a165-70867728950e,7c9e6679-7425-40de-944b-e07fc1f90ae7}'::uuid[])"
        );
        assert!(email.interim_create_sql(&["x'); DROP TABLE t; --".to_string()], true).is_err());
        assert!(email.duplicate_groups_sql().unwrap().contains("GROUP BY 1 HAVING count(*) > 1"));
        assert!(email.left_out_sql().unwrap().contains("FROM public.profiles t WHERE daznode_crm.normalize_email(email) IS NOT NULL"));
        assert!(email.blocker_sql().unwrap().starts_with("SELECT count(*) FROM (SELECT daznode_crm.normalize_email(email) AS key"));
        assert_eq!(PLANNED_INDEXES[2].left_out_sql(), None);
        for name in [EMAIL_KEY_INDEX, PUBKEY_KEY_INDEX] {
            assert!(planned(name).is_some_and(|i| i.unique), "{name}");
        }
        // Blocked: only the interim index, rebuilt when invalid, never the full one.
        let due = Interim { status: Missing, create_sql: Some(create.clone()) };
        assert_eq!(statements_for(email, Missing, 3, &due), vec![create.clone()]);
        let broken = Interim { status: Invalid, create_sql: Some(create.clone()) };
        assert_eq!(statements_for(email, Missing, 3, &broken), vec![email.interim_drop_sql(), create]);
        let built = Interim { status: Valid, create_sql: None };
        assert!(statements_for(email, Missing, 3, &built).is_empty());
        // Resolved: the full index, then the interim one goes.
        assert_eq!(statements_for(email, Missing, 0, &built), vec![email.create_sql(true), email.interim_drop_sql()]);
        assert_eq!(statements_for(email, Valid, 0, &built), vec![email.interim_drop_sql()]);
        assert!(statements_for(email, Building, 0, &built).is_empty());
    }
}
