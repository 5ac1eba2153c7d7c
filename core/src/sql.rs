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

/// At most `max_chars` characters of `s`, with how much was left out: what an error message
/// shows of a value, so that a 10 MB value never becomes a 10 MB message.
pub fn excerpt(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &s[..cut], s.len()),
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

    #[test]
    fn excerpts() {
        assert_eq!(excerpt("abc", 5), "abc");
        assert_eq!(excerpt("abcdef", 3), "abc… (6 bytes in all)");
        assert_eq!(excerpt("éééé", 2), "éé… (8 bytes in all)");
    }
}
