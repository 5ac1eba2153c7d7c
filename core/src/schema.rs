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

/// The columns of `public.profiles` a user may change in their own profile (the owner's UPDATE
/// policy of step 0008, enforced by the trigger `daznode_guard_profile_columns`). Every other
/// column (id, email, t4g_tokens, auth_method, profile_score, email_verified, verified_at,
/// phone_verified, node_stats, last_node_sync, dazbox_serial, created_at, and any column the app
/// adds later) is changed by admins, service_role and the table owner only.
pub const PROFILE_OWNER_COLUMNS: &[&str] = &[
    "nom",
    "prenom",
    "pubkey",
    "compte_x",
    "compte_nostr",
    "compte_telegram",
    "node_id",
    "lightning_pubkey",
    "node_alias",
    "node_network",
    "phone",
    "address",
    "ville",
    "code_postal",
    "pays",
    "settings",
    "updated_at",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indexes::PLANNED_INDEXES;

    #[test]
    fn privileged_profile_columns_are_not_editable() {
        for c in ["id", "email", "t4g_tokens", "auth_method", "profile_score", "email_verified", "verified_at", "phone_verified", "created_at"] {
            assert!(!PROFILE_OWNER_COLUMNS.contains(&c), "{c}");
        }
    }

    #[test]
    fn planned_indexes_are_on_known_tables() {
        for idx in PLANNED_INDEXES {
            assert!(CRM_TABLES.contains(&idx.table), "{} on unknown table {}", idx.name, idx.table);
        }
    }
}
