//! The guide's role matrix for reads, defined once: what each kind of requester sees of each CRM
//! table. Step 0008's policies implement it (`sql/access.sql`); its self-check reads every table
//! as every kind of requester and compares with [`expected_read`].

/// Every admin role (`admin_roles.role`), in decreasing power: `is_admin_user()` with no list
/// accepts any of them.
pub const ADMIN_ROLES: &[&str] = &["super_admin", "admin", "moderator", "support"];

/// The roles the legacy `public.is_admin_user(user_id)` counted as admin (support was not one).
pub const LEGACY_ADMIN_ROLES: &[&str] = &["super_admin", "admin", "moderator"];

/// Who asks: a request without JWT, a signed-in user with no admin role, or one with a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    NoJwt,
    Customer,
    Support,
    Moderator,
    Admin,
    SuperAdmin,
}

impl Requester {
    pub const ALL: [Requester; 6] = [Requester::NoJwt, Requester::Customer, Requester::Support, Requester::Moderator, Requester::Admin, Requester::SuperAdmin];

    /// The `admin_roles.role` value of this requester, None for the first two.
    pub fn admin_role(self) -> Option<&'static str> {
        match self {
            Requester::NoJwt | Requester::Customer => None,
            Requester::Support => Some("support"),
            Requester::Moderator => Some("moderator"),
            Requester::Admin => Some("admin"),
            Requester::SuperAdmin => Some("super_admin"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Requester::NoJwt => "no JWT",
            Requester::Customer => "a customer",
            Requester::Support => "support",
            Requester::Moderator => "moderator",
            Requester::Admin => "admin",
            Requester::SuperAdmin => "super_admin",
        }
    }
}

/// What a requester reads of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visible {
    Nothing,
    /// The rows whose `column` is the requester's own id.
    Own(&'static str),
    Everything,
}

/// The matrix (README "Policies"): segments and members for super_admin and admin; templates
/// and campaigns for moderator too; sends for support too; profiles, orders and subscriptions
/// for every admin role, and their own to the user; admin_roles: one's own row, all of it for
/// super_admin. None for a table the matrix does not govern.
pub fn expected_read(table: &str, who: Requester) -> Option<Visible> {
    use Requester::*;
    let rank = match who {
        NoJwt => return crate::schema::CRM_TABLES.contains(&table).then_some(Visible::Nothing),
        Customer => 0,
        Support => 1,
        Moderator => 2,
        Admin => 3,
        SuperAdmin => 4,
    };
    let from = |min: i32| {
        if rank >= min {
            Visible::Everything
        } else {
            Visible::Nothing
        }
    };
    let own_or = |column: &'static str, min: i32| {
        if rank >= min {
            Visible::Everything
        } else {
            Visible::Own(column)
        }
    };
    Some(match table {
        "crm_customer_segments" | "crm_customer_segment_members" => from(3),
        "crm_email_templates" | "crm_email_campaigns" => from(2),
        "crm_email_sends" => from(1),
        "profiles" => own_or("id", 1),
        "orders" | "subscriptions" => own_or("user_id", 1),
        "admin_roles" => own_or("user_id", 4),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_roles_are_the_requesters_with_a_role() {
        let with_role: Vec<&str> = Requester::ALL.iter().rev().filter_map(|r| r.admin_role()).collect();
        assert_eq!(with_role, ADMIN_ROLES);
        assert!(LEGACY_ADMIN_ROLES.iter().all(|r| ADMIN_ROLES.contains(r)) && !LEGACY_ADMIN_ROLES.contains(&"support"));
    }
    use crate::schema::CRM_TABLES;

    #[test]
    fn every_crm_table_is_in_the_matrix() {
        for t in CRM_TABLES {
            for who in Requester::ALL {
                assert!(expected_read(t, who).is_some(), "{t} {who:?}");
            }
        }
        assert_eq!(expected_read("payments", Requester::Admin), None);
    }

    #[test]
    fn the_guide_matrix() {
        use Requester::*;
        use Visible::*;
        let row = |who| CRM_TABLES.iter().map(|t| expected_read(t, who).unwrap()).collect::<Vec<_>>();
        // profiles, admin_roles, orders, subscriptions, segments, members, templates, campaigns, sends
        assert_eq!(row(NoJwt), vec![Nothing; 9]);
        assert_eq!(row(Customer), vec![Own("id"), Own("user_id"), Own("user_id"), Own("user_id"), Nothing, Nothing, Nothing, Nothing, Nothing]);
        assert_eq!(row(Support), vec![Everything, Own("user_id"), Everything, Everything, Nothing, Nothing, Nothing, Nothing, Everything]);
        assert_eq!(row(Moderator), vec![Everything, Own("user_id"), Everything, Everything, Nothing, Nothing, Everything, Everything, Everything]);
        assert_eq!(row(Admin), vec![Everything, Own("user_id"), Everything, Everything, Everything, Everything, Everything, Everything, Everything]);
        assert_eq!(row(SuperAdmin), vec![Everything; 9]);
    }
}
