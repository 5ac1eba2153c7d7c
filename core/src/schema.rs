//! The application tables daznode_crm knows, defined once. Diagnostics, cleanup, migrations
//! and tests read this list; all of them live in schema public.

/// Every CRM application table, parents before children.
pub const CRM_TABLES: &[&str] = &[
    "profiles",
    "admin_roles",
    "orders",
    "subscriptions",
    "crm_customer_segments",
    "crm_customer_segment_members",
    "crm_email_templates",
    "crm_email_campaigns",
    "crm_email_sends",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indexes::PLANNED_INDEXES;

    #[test]
    fn planned_indexes_are_on_known_tables() {
        for idx in PLANNED_INDEXES {
            assert!(CRM_TABLES.contains(&idx.table), "{} on unknown table {}", idx.name, idx.table);
        }
    }
}
