//! Segment criteria (jsonb, as the app stores them) compiled to a parameterized SQL predicate
//! over `public.profiles p`. Values never enter the SQL text: each becomes a `$n` parameter.
//! Several keys in one criteria object are ANDed; an unknown key is an error that lists the
//! known ones.

use crate::CrmError;
use serde_json::Value;

/// A parameter of the compiled predicate, in `$n` order.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Bool(bool),
    Int(i64),
    TextArray(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// A boolean SQL expression over `p` (a row of public.profiles).
    pub predicate: String,
    pub params: Vec<Param>,
    /// The tables of public the predicate reads besides profiles, so that the caller can check
    /// they are what it expects before running it.
    pub tables: Vec<&'static str>,
}

pub const KNOWN_KEYS: &[&str] = &[
    "profile.email_verified",
    "profile.has_pubkey",
    "profile.created_days_ago.min",
    "profile.created_days_ago.max",
    "activity.last_login_days",
    "subscription.plan",
    "subscription.status",
    "orders.total_amount.min",
    "orders.count.min",
    "orders.last_order_days",
];

struct Builder {
    first_param: usize,
    tables: Vec<&'static str>,
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Builder {
    /// Adds a parameter and returns its placeholder.
    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.first_param + self.params.len() - 1)
    }
}

fn invalid(msg: String) -> CrmError {
    CrmError::InvalidArgument(msg)
}

/// The largest criteria document compiled, in bytes of its text form; the app's are a few
/// hundred bytes.
pub const MAX_CRITERIA_BYTES: usize = 64 * 1024;
/// The deepest nesting of arrays and objects compiled; the known keys need 3.
pub const MAX_CRITERIA_DEPTH: usize = 16;

/// A value as an error message shows it: at most about 200 characters of it.
fn shown(v: &Value) -> String {
    crate::sql::excerpt(&v.to_string(), 200)
}

/// Reads criteria from their text form (jsonb's output), checking size and depth before any
/// conversion, so that a deep or huge document gets a 22023 and never a parser's limit.
pub fn parse(text: &str) -> Result<Value, CrmError> {
    if text.len() > MAX_CRITERIA_BYTES {
        return Err(invalid(format!("segment criteria are {} bytes; at most {MAX_CRITERIA_BYTES} are compiled", text.len())));
    }
    let depth = nesting_depth(text);
    if depth > MAX_CRITERIA_DEPTH {
        return Err(invalid(format!("segment criteria are nested {depth} levels deep; at most {MAX_CRITERIA_DEPTH} are compiled")));
    }
    serde_json::from_str(text).map_err(|e| invalid(format!("segment criteria cannot be read: {}", crate::sql::excerpt(&e.to_string(), 200))))
}

/// The deepest nesting of `[` and `{` outside strings, in one pass over the bytes.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn unknown(path: &str) -> CrmError {
    invalid(format!("unknown segment criteria key {:?}: known keys are {}", crate::sql::excerpt(path, 200), KNOWN_KEYS.join(", ")))
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a serde_json::Map<String, Value>, CrmError> {
    v.as_object().ok_or_else(|| invalid(format!("segment criteria {path:?} must be an object, got {}", shown(v))))
}

fn boolean(v: &Value, path: &str) -> Result<bool, CrmError> {
    v.as_bool().ok_or_else(|| invalid(format!("segment criteria {path:?} must be true or false, got {}", shown(v))))
}

fn days(v: &Value, path: &str) -> Result<i64, CrmError> {
    match v.as_i64() {
        Some(n) if (0..=36_500).contains(&n) => Ok(n),
        _ => Err(invalid(format!("segment criteria {path:?} must be a whole number of days between 0 and 36500, got {}", shown(v)))),
    }
}

fn non_negative(v: &Value, path: &str) -> Result<i64, CrmError> {
    match v.as_i64() {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(invalid(format!("segment criteria {path:?} must be a non-negative integer, got {}", shown(v)))),
    }
}

fn strings(v: &Value, path: &str) -> Result<Vec<String>, CrmError> {
    let arr = v.as_array().ok_or_else(|| invalid(format!("segment criteria {path:?} must be an array of strings, got {}", shown(v))))?;
    arr.iter()
        .map(|x| x.as_str().map(str::to_string).ok_or_else(|| invalid(format!("segment criteria {path:?} must contain strings only, got {}", shown(x)))))
        .collect()
}

/// Compiles `criteria`; placeholders start at `$first_param` (the caller's own come first).
pub fn compile(criteria: &Value, first_param: usize) -> Result<Compiled, CrmError> {
    let mut b = Builder { first_param, tables: Vec::new(), conditions: Vec::new(), params: Vec::new() };
    for (group, body) in object(criteria, "criteria")? {
        let body = object(body, group)?;
        match group.as_str() {
            "profile" => profile(&mut b, body)?,
            "activity" => activity(&mut b, body)?,
            "subscription" => subscription(&mut b, body)?,
            "orders" => orders(&mut b, body)?,
            other => return Err(unknown(other)),
        }
    }
    let predicate = if b.conditions.is_empty() { "true".to_string() } else { b.conditions.join(" AND ") };
    Ok(Compiled { predicate, params: b.params, tables: b.tables })
}

fn profile(b: &mut Builder, body: &serde_json::Map<String, Value>) -> Result<(), CrmError> {
    for (key, v) in body {
        match key.as_str() {
            "email_verified" => {
                let p = b.param(Param::Bool(boolean(v, "profile.email_verified")?));
                b.conditions.push(format!("coalesce(p.email_verified, false) = {p}"));
            }
            "has_pubkey" => {
                let p = b.param(Param::Bool(boolean(v, "profile.has_pubkey")?));
                b.conditions.push(format!("(p.pubkey IS NOT NULL AND p.pubkey <> '') = {p}"));
            }
            "created_days_ago" => {
                for (bound, n) in object(v, "profile.created_days_ago")? {
                    let path = format!("profile.created_days_ago.{bound}");
                    let p = b.param(Param::Int(days(n, &path)?));
                    match bound.as_str() {
                        // At least min days ago: created on or before now() - min days.
                        "min" => b.conditions.push(format!("p.created_at <= now() - make_interval(days => ({p})::int)")),
                        "max" => b.conditions.push(format!("p.created_at >= now() - make_interval(days => ({p})::int)")),
                        _ => return Err(unknown(&path)),
                    }
                }
            }
            other => return Err(unknown(&format!("profile.{other}"))),
        }
    }
    Ok(())
}

fn activity(b: &mut Builder, body: &serde_json::Map<String, Value>) -> Result<(), CrmError> {
    for (key, v) in body {
        match key.as_str() {
            // The app's rule: activity is profiles.updated_at.
            "last_login_days" => {
                let p = b.param(Param::Int(days(v, "activity.last_login_days")?));
                b.conditions.push(format!("p.updated_at >= now() - make_interval(days => ({p})::int)"));
            }
            other => return Err(unknown(&format!("activity.{other}"))),
        }
    }
    Ok(())
}

fn subscription(b: &mut Builder, body: &serde_json::Map<String, Value>) -> Result<(), CrmError> {
    let mut conds = Vec::new();
    for (key, v) in body {
        match key.as_str() {
            "plan" => {
                let p = b.param(Param::TextArray(strings(v, "subscription.plan")?));
                conds.push(format!("s.plan_id = ANY (({p})::text[])"));
            }
            "status" => {
                let p = b.param(Param::TextArray(strings(v, "subscription.status")?));
                conds.push(format!("s.status = ANY (({p})::text[])"));
            }
            other => return Err(unknown(&format!("subscription.{other}"))),
        }
    }
    // One subscription must match every condition (plan and status of the same row).
    let extra = if conds.is_empty() { String::new() } else { format!(" AND {}", conds.join(" AND ")) };
    b.tables.push("subscriptions");
    b.conditions.push(format!("EXISTS (SELECT 1 FROM public.subscriptions s WHERE s.user_id = p.id{extra})"));
    Ok(())
}

fn orders(b: &mut Builder, body: &serde_json::Map<String, Value>) -> Result<(), CrmError> {
    let mut having = Vec::new();
    for (key, v) in body {
        match key.as_str() {
            "total_amount" => {
                for (bound, n) in object(v, "orders.total_amount")? {
                    let path = format!("orders.total_amount.{bound}");
                    match bound.as_str() {
                        "min" => {
                            let p = b.param(Param::Int(non_negative(n, &path)?));
                            having.push(format!("coalesce(sum(o.amount), 0) >= ({p})::bigint"));
                        }
                        _ => return Err(unknown(&path)),
                    }
                }
            }
            "count" => {
                for (bound, n) in object(v, "orders.count")? {
                    let path = format!("orders.count.{bound}");
                    match bound.as_str() {
                        "min" => {
                            let p = b.param(Param::Int(non_negative(n, &path)?));
                            having.push(format!("count(*) >= ({p})::bigint"));
                        }
                        _ => return Err(unknown(&path)),
                    }
                }
            }
            "last_order_days" => {
                let p = b.param(Param::Int(days(v, "orders.last_order_days")?));
                having.push(format!("max(o.created_at) >= now() - make_interval(days => ({p})::int)"));
            }
            other => return Err(unknown(&format!("orders.{other}"))),
        }
    }
    if !having.is_empty() {
        b.tables.push("orders");
        b.conditions.push(format!("EXISTS (SELECT 1 FROM public.orders o WHERE o.user_id = p.id HAVING {})", having.join(" AND ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_compiles_to_placeholders() {
        let c = compile(&json!({"profile": {"email_verified": true}}), 2).unwrap();
        assert_eq!(c.predicate, "coalesce(p.email_verified, false) = $2");
        assert_eq!(c.params, vec![Param::Bool(true)]);

        let c = compile(&json!({"profile": {"has_pubkey": true}}), 1).unwrap();
        assert_eq!(c.predicate, "(p.pubkey IS NOT NULL AND p.pubkey <> '') = $1");

        let c = compile(&json!({"profile": {"created_days_ago": {"min": 0, "max": 30}}}), 2).unwrap();
        assert!(c.params.contains(&Param::Int(0)) && c.params.contains(&Param::Int(30)) && c.params.len() == 2);
        assert!(c.predicate.contains("$2") && c.predicate.contains("$3"));

        let c = compile(&json!({"activity": {"last_login_days": 7}}), 2).unwrap();
        assert_eq!(c.predicate, "p.updated_at >= now() - make_interval(days => ($2)::int)");

        let c = compile(&json!({"subscription": {"plan": ["premium", "enterprise"], "status": ["active"]}}), 2).unwrap();
        assert_eq!(
            c.predicate,
            "EXISTS (SELECT 1 FROM public.subscriptions s WHERE s.user_id = p.id AND s.plan_id = ANY (($2)::text[]) AND s.status = ANY (($3)::text[]))"
        );

        let c = compile(&json!({"orders": {"total_amount": {"min": 50000}, "count": {"min": 1}, "last_order_days": 365}}), 2).unwrap();
        assert!(c.predicate.starts_with("EXISTS (SELECT 1 FROM public.orders o WHERE o.user_id = p.id HAVING "));
        for v in [1, 365, 50000] {
            assert!(c.params.contains(&Param::Int(v)), "{v}");
        }
    }

    #[test]
    fn keys_are_anded() {
        let c = compile(&json!({"profile": {"email_verified": true, "has_pubkey": false}, "activity": {"last_login_days": 3}}), 2).unwrap();
        assert_eq!(c.predicate.matches(" AND ").count(), 3); // two ANDs between conditions, one inside has_pubkey
        assert_eq!(c.params.len(), 3);
        assert_eq!(compile(&json!({}), 2).unwrap().predicate, "true");
    }

    #[test]
    fn values_never_reach_the_sql_text() {
        let evil = "premium'); DROP TABLE profiles; --";
        let c = compile(&json!({"subscription": {"plan": [evil]}}), 2).unwrap();
        assert!(!c.predicate.contains("DROP"));
        assert_eq!(c.params, vec![Param::TextArray(vec![evil.to_string()])]);
    }

    #[test]
    fn bad_criteria_are_invalid_arguments() {
        for bad in [
            json!({"profile": {"vip": true}}),
            json!({"profiles": {}}),
            json!({"profile": {"email_verified": "yes"}}),
            json!({"profile": {"created_days_ago": {"min": -1}}}),
            json!({"profile": {"created_days_ago": {"around": 3}}}),
            json!({"orders": {"count": {"max": 3}}}),
            json!({"subscription": {"plan": "premium"}}),
            json!({"subscription": {"plan": [1]}}),
            json!([1, 2]),
            json!({"activity": {"last_login_days": 1.5}}),
        ] {
            let err = compile(&bad, 2).unwrap_err();
            assert!(matches!(err, CrmError::InvalidArgument(_)), "{bad}");
        }
        let err = compile(&json!({"profile": {"vip": true}}), 2).unwrap_err().to_string();
        assert!(err.contains("\"profile.vip\"") && err.contains("profile.email_verified"), "{err}");
    }

    #[test]
    fn deep_huge_or_out_of_range_criteria_are_invalid_arguments() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(parse(&deep), Err(CrmError::InvalidArgument(m)) if m.contains("nested 200 levels")));
        let brackets_in_strings = format!("{{\"profile\": {{\"email_verified\": true}}, \"x\": \"{}\"}}", "[".repeat(500));
        assert_eq!(nesting_depth(&brackets_in_strings), 2);
        let huge = format!("{{\"profile\": {{\"email_verified\": \"{}\"}}}}", "x".repeat(100_000));
        assert!(matches!(parse(&huge), Err(CrmError::InvalidArgument(m)) if m.len() < 300));
        let big_number = format!("{{\"orders\": {{\"count\": {{\"min\": 1{}}}}}}}", "0".repeat(400));
        assert!(matches!(parse(&big_number), Err(CrmError::InvalidArgument(_))));
        assert!(parse("{\"profile\": {\"email_verified\": true}}").is_ok());
    }

    #[test]
    fn error_messages_are_bounded() {
        let long = "y".repeat(50_000);
        let wrong_type: Value = serde_json::json!({"profile": {"email_verified": long}});
        let unknown_key: Value = serde_json::json!({"profile": {long.clone(): true}});
        for c in [wrong_type, unknown_key] {
            let msg = compile(&c, 1).unwrap_err().to_string();
            assert!(msg.len() < 800, "{} bytes", msg.len());
        }
    }
}
