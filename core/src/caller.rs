//! Who the caller of `is_admin_user()` is, and what is known of their admin role: the pure part.
//!
//! The caller's id comes from the JWT claims PostgREST sets (`request.jwt.claims ->> 'sub'`, or
//! the older `request.jwt.claim.sub`). Roles are kept across transactions in a [`RoleCache`]
//! that the extension empties whenever `admin_roles` changes (a relcache invalidation sent by a
//! statement trigger on the table). The stamp guards against the one race such a cache has: a
//! lookup that started before an invalidation and finishes after it must not be stored.

use std::collections::HashMap;

/// A user id: the 16 bytes of a uuid.
pub type UserId = [u8; 16];

/// The caller's id from the JWT settings: `sub` of the claims JSON first, then the single claim
/// setting. None when neither holds a uuid (no JWT, an anonymous request, a malformed value).
pub fn caller_from_claims(claims: Option<&str>, claim_sub: Option<&str>) -> Option<UserId> {
    let from_claims =
        claims.and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()).and_then(|v| v.get("sub").and_then(|s| s.as_str()).map(str::to_string));
    match from_claims {
        Some(sub) => parse_uuid(&sub),
        None => claim_sub.and_then(parse_uuid),
    }
}

/// The bytes of a uuid written in the canonical 8-4-4-4-12 hex form (either case).
pub fn parse_uuid(s: &str) -> Option<UserId> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibbles = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let v = (c as char).to_digit(16)? as u8;
        out[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
        nibbles += 1;
    }
    Some(out)
}

/// The bodies of Supabase's `auth.uid()` (the current one and the one before it), which read
/// nothing but the two JWT settings: where `auth.uid()` is one of them, its answer for the same
/// settings is the same in every transaction and may be kept with them.
const JWT_ONLY_UID_BODIES: &[&str] = &[
    "select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid",
    "select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid",
];

/// Is this SQL body one of Supabase's `auth.uid()` bodies, but for spacing, letter case outside
/// quotes and a final semicolon?
pub fn is_jwt_only_uid_body(body: &str) -> bool {
    let body = sql_shape(body);
    JWT_ONLY_UID_BODIES.iter().any(|known| sql_shape(known) == body)
}

/// SQL text without whitespace and in lower case outside single-quoted literals (kept as they
/// are), without trailing semicolons.
fn sql_shape(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        if c == '\'' {
            quoted = !quoted;
            out.push(c);
        } else if quoted {
            out.push(c);
        } else if !c.is_whitespace() {
            out.extend(c.to_lowercase());
        }
    }
    while out.ends_with(';') {
        out.pop();
    }
    out
}

/// Admin roles by user id, kept across transactions until the next invalidation. The caller
/// counts the invalidations it receives and hands that count (the stamp) to [`RoleCache::sync`]
/// and [`RoleCache::store`].
#[derive(Debug)]
pub struct RoleCache {
    stamp: u64,
    roles: HashMap<UserId, Option<String>>,
    capacity: usize,
}

impl RoleCache {
    /// A cache of at most `capacity` users (it starts over when full: a connection pool that
    /// serves more users than that pays one lookup per user and round).
    pub fn new(capacity: usize) -> Self {
        RoleCache { stamp: 0, roles: HashMap::new(), capacity: capacity.max(1) }
    }

    /// Forgets everything when invalidations arrived since the last sync (`stamp` moved):
    /// `admin_roles`, or the facts the answers depend on, changed.
    pub fn sync(&mut self, stamp: u64) {
        if stamp != self.stamp {
            self.stamp = stamp;
            self.roles.clear();
        }
    }

    /// Some(role) when known (Some(None): the user has no admin role), None when not cached.
    pub fn get(&self, id: &UserId) -> Option<Option<&str>> {
        self.roles.get(id).map(|r| r.as_deref())
    }

    /// Keeps the result of a lookup that began at stamp `stamp_before`, once synced again after
    /// it; drops it (returns false) when an invalidation arrived meanwhile, since the lookup may
    /// have read the old rows.
    pub fn store(&mut self, id: UserId, role: Option<String>, stamp_before: u64) -> bool {
        if stamp_before != self.stamp {
            return false;
        }
        if self.roles.len() >= self.capacity && !self.roles.contains_key(&id) {
            self.roles.clear();
        }
        self.roles.insert(id, role);
        true
    }

    pub fn len(&self) -> usize {
        self.roles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "639719a4-d673-a7a9-80c8-b41b4960df51";

    #[test]
    fn uuids_round_trip_and_reject_anything_else() {
        let id = parse_uuid(A).unwrap();
        assert_eq!(id[0], 0x63);
        assert_eq!(id[15], 0x51);
        assert_eq!(id, [0x63, 0x97, 0x19, 0xa4, 0xd6, 0x73, 0xa7, 0xa9, 0x80, 0xc8, 0xb4, 0x1b, 0x49, 0x60, 0xdf, 0x51]);
        assert_eq!(parse_uuid(&A.to_uppercase()), Some(id));
        for bad in [
            "",
            "639719a4d673a7a980c8b41b4960df51",
            "639719a4-d673-a7a9-80c8-b41b4960df5",
            "639719a4-d673-a7a9-80c8-b41b4960df511",
            "639719a4-d673-a7a9-80c8_b41b4960df51",
            "g39719a4-d673-a7a9-80c8-b41b4960df51",
            "' OR 1=1 --------------------------",
            "639719a4-d673-a7a9-80c8-b41b4960df5é",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_caller_comes_from_the_claims_then_the_single_claim() {
        let id = parse_uuid(A);
        let claims = format!(r#"{{"sub": "{A}", "role": "authenticated"}}"#);
        assert_eq!(caller_from_claims(Some(&claims), None), id);
        assert_eq!(caller_from_claims(None, Some(A)), id);
        // The claims JSON wins over the single setting when it names a subject.
        let other = "00000000-0000-0000-0000-000000000001";
        assert_eq!(caller_from_claims(Some(&claims), Some(other)), id);
        assert_eq!(caller_from_claims(Some(r#"{"role": "anon"}"#), Some(other)), parse_uuid(other));
        for (claims, sub) in
            [(None, None), (Some("not json"), None), (Some(r#"{"sub": 42}"#), None), (Some(r#"{"sub": "not-a-uuid"}"#), None), (None, Some("not-a-uuid"))]
        {
            assert_eq!(caller_from_claims(claims, sub), None, "{claims:?} {sub:?}");
        }
    }

    #[test]
    fn the_cache_keeps_answers_until_invalidated() {
        let mut c = RoleCache::new(10);
        let a = parse_uuid(A).unwrap();
        let b = [7u8; 16];
        c.sync(1);
        assert_eq!(c.get(&a), None);
        assert!(c.store(a, Some("admin".into()), 1));
        assert!(c.store(b, None, 1));
        c.sync(1); // nothing arrived: kept
        assert_eq!(c.get(&a), Some(Some("admin")));
        assert_eq!(c.get(&b), Some(None));
        c.sync(2);
        assert_eq!(c.get(&a), None);
        assert!(c.is_empty());
    }

    #[test]
    fn a_lookup_overtaken_by_an_invalidation_is_not_kept() {
        let mut c = RoleCache::new(10);
        let a = parse_uuid(A).unwrap();
        let before = 0;
        c.sync(1); // admin_roles changed while the lookup ran
        assert!(!c.store(a, Some("admin".into()), before));
        assert_eq!(c.get(&a), None);
        assert!(c.store(a, None, 1));
        assert_eq!(c.get(&a), Some(None));
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut c = RoleCache::new(3);
        for i in 0..10u8 {
            assert!(c.store([i; 16], None, 0));
            assert!(c.len() <= 3);
            assert_eq!(c.get(&[i; 16]), Some(None));
        }
        // Re-storing a known user never empties the cache.
        let n = c.len();
        assert!(c.store([9; 16], Some("support".into()), 0));
        assert_eq!(c.len(), n);
    }

    #[test]
    fn supabase_auth_uid_bodies_are_recognized_and_nothing_else() {
        let current = "\n  select\n  \tcoalesce(\n\t\tnullif(current_setting('request.jwt.claim.sub', true), ''),\n\t\t(nullif(current_setting('request.jwt.claims', true), '')::jsonb->>'sub')\n\t)::uuid\n";
        assert!(is_jwt_only_uid_body(current));
        assert!(is_jwt_only_uid_body("SELECT NULLIF(current_setting('request.jwt.claim.sub', true), '')::uuid;"));
        for other in [
            // another setting (inside the quotes, spacing counts)
            "select nullif(current_setting('request.jwt. claim.sub', true), '')::uuid",
            "select nullif(current_setting('request.jwt.claim.SUB', true), '')::uuid",
            // reads something else too
            "select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), (select id::text from auth.users limit 1))::uuid",
            "select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid where now() > '2026-01-01'",
            "",
        ] {
            assert!(!is_jwt_only_uid_body(other), "{other:?}");
        }
    }
}
