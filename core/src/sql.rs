//! Building blocks for SQL text: identifiers are quoted here, values never reach SQL text
//! (they go as `$n` parameters).

/// Quotes an identifier the way PostgreSQL's quote_ident() does for plain names: bare when it is
/// a lower-case identifier that needs no quoting, double-quoted otherwise. Reserved words are
/// not detected, so callers use it for names checked against a known list or from the catalog.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("profiles"), "profiles");
        assert_eq!(quote_ident("Profiles"), "\"Profiles\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1abc"), "\"1abc\"");
        assert_eq!(quote_ident(""), "\"\"");
    }
}
