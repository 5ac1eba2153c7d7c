//! Email address validation and normalization.
//!
//! Policy: an addr-spec as mail systems accept it in practice (RFC 5321/5322, RFC 6531 for
//! UTF-8). The rules are listed in the README; each rejection has one short reason, so that
//! `email_validation_error()` can tell a DBA why a row fails.

use unicode_normalization::UnicodeNormalization;

/// Longest local part, in octets (RFC 5321 4.5.3.1.1).
pub const MAX_LOCAL_OCTETS: usize = 64;
/// Longest address, in octets (RFC 5321 path limit of 256 minus the angle brackets).
pub const MAX_ADDRESS_OCTETS: usize = 254;
/// Longest domain label, in octets (RFC 1035).
pub const MAX_LABEL_OCTETS: usize = 63;

/// Why an address is not accepted. `Display` gives the short reason shown in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailError {
    Empty,
    Whitespace,
    MissingAt,
    QuotedLocalPart,
    MoreThanOneAt,
    EmptyLocalPart,
    LocalPartTooLong,
    AddressTooLong,
    LeadingDotInLocalPart,
    TrailingDotInLocalPart,
    ConsecutiveDotsInLocalPart,
    InvalidCharInLocalPart,
    EmptyDomain,
    IpLiteralDomain,
    SingleLabelDomain,
    EmptyDomainLabel,
    LabelTooLong,
    LabelHyphen,
    InvalidCharInDomain,
    InvalidTopLevelDomain,
}

impl EmailError {
    pub fn reason(self) -> &'static str {
        use EmailError::*;
        match self {
            Empty => "empty address",
            Whitespace => "contains whitespace or control characters",
            MissingAt => "missing @",
            QuotedLocalPart => "quoted local parts are not accepted",
            MoreThanOneAt => "more than one @",
            EmptyLocalPart => "empty local part",
            LocalPartTooLong => "local part longer than 64 octets",
            AddressTooLong => "address longer than 254 octets",
            LeadingDotInLocalPart => "leading dot in local part",
            TrailingDotInLocalPart => "trailing dot in local part",
            ConsecutiveDotsInLocalPart => "consecutive dots in local part",
            InvalidCharInLocalPart => "invalid character in local part",
            EmptyDomain => "empty domain",
            IpLiteralDomain => "IP-literal domains are not accepted",
            SingleLabelDomain => "domain needs at least two labels",
            EmptyDomainLabel => "empty label in domain (leading, trailing or consecutive dots)",
            LabelTooLong => "domain label longer than 63 octets",
            LabelHyphen => "domain label starts or ends with a hyphen",
            InvalidCharInDomain => "invalid character in domain",
            InvalidTopLevelDomain => "top-level domain must be alphabetic (2+ letters) or punycode (xn--)",
        }
    }
}

impl std::fmt::Display for EmailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for EmailError {}

/// The canonical form used for uniqueness: trimmed, composed (Unicode NFC, so that the
/// decomposed spelling of an address is the same address), then lower-cased and composed again.
pub fn normalize_email(input: &str) -> String {
    let trimmed = input.trim();
    if trimmed.is_ascii() {
        return trimmed.to_ascii_lowercase();
    }
    let composed: String = trimmed.nfc().collect();
    composed.to_lowercase().nfc().collect()
}

pub fn is_valid_email(input: &str) -> bool {
    validate_email(input).is_ok()
}

/// Checks `input` against the policy; returns the first rule it breaks.
pub fn validate_email(input: &str) -> Result<(), EmailError> {
    if input.is_empty() {
        return Err(EmailError::Empty);
    }
    // Lengths are checked on the longer of the address and its normalized form, so that
    // normalizing a valid address (lower-casing can grow a few non-ASCII characters) never
    // makes it invalid. The cheap octet length is tried first so that a 10 MB input is
    // rejected without being copied.
    if input.len() > 4 * MAX_ADDRESS_OCTETS {
        return Err(first_structural_error(input).unwrap_or(EmailError::AddressTooLong));
    }
    if let Some(err) = first_structural_error(input) {
        return Err(err);
    }
    let at = input.rfind('@').expect("structure checked");
    let (local, domain) = (&input[..at], &input[at + 1..]);
    if normalized_octets(local) > MAX_LOCAL_OCTETS {
        return Err(EmailError::LocalPartTooLong);
    }
    if normalized_octets(input) > MAX_ADDRESS_OCTETS {
        return Err(EmailError::AddressTooLong);
    }
    for label in domain.split('.') {
        if normalized_octets(label) > MAX_LABEL_OCTETS {
            return Err(EmailError::LabelTooLong);
        }
    }
    Ok(())
}

fn normalized_octets(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.len().max(normalize_email(s).len())
    }
}

/// Every rule but the length limits, in one pass over the characters.
fn first_structural_error(input: &str) -> Option<EmailError> {
    if input.chars().any(is_space_or_control) {
        return Some(EmailError::Whitespace);
    }
    let Some(at) = input.rfind('@') else {
        return Some(EmailError::MissingAt);
    };
    let (local, domain) = (&input[..at], &input[at + 1..]);
    if local.starts_with('"') {
        return Some(EmailError::QuotedLocalPart);
    }
    if local.contains('@') {
        return Some(EmailError::MoreThanOneAt);
    }
    local_part_error(local).or_else(|| domain_error(domain))
}

fn local_part_error(local: &str) -> Option<EmailError> {
    if local.is_empty() {
        return Some(EmailError::EmptyLocalPart);
    }
    if local.starts_with('.') {
        return Some(EmailError::LeadingDotInLocalPart);
    }
    if local.ends_with('.') {
        return Some(EmailError::TrailingDotInLocalPart);
    }
    if local.contains("..") {
        return Some(EmailError::ConsecutiveDotsInLocalPart);
    }
    if !local.chars().all(|c| c == '.' || is_atext(c)) {
        return Some(EmailError::InvalidCharInLocalPart);
    }
    None
}

fn domain_error(domain: &str) -> Option<EmailError> {
    if domain.is_empty() {
        return Some(EmailError::EmptyDomain);
    }
    if domain.starts_with('[') {
        return Some(EmailError::IpLiteralDomain);
    }
    let mut labels = 0usize;
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() {
            return Some(EmailError::EmptyDomainLabel);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(EmailError::LabelHyphen);
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || is_utf8_text(c)) {
            return Some(EmailError::InvalidCharInDomain);
        }
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Some(EmailError::SingleLabelDomain);
    }
    if !is_valid_tld(last) {
        return Some(EmailError::InvalidTopLevelDomain);
    }
    None
}

fn is_valid_tld(label: &str) -> bool {
    let b = label.as_bytes();
    if b.len() > 4 && b[..4].eq_ignore_ascii_case(b"xn--") {
        // Punycode is ASCII: letters, digits and hyphens only (a non-ASCII character after
        // `xn--` is no A-label; found by the differential fuzz, bench/fuzz).
        return b[4..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
    }
    if label.is_ascii() {
        return b.len() >= 2 && b.iter().all(u8::is_ascii_alphabetic);
    }
    // A U-label TLD (e.g. .рф): no digits or hyphens, at least two characters.
    label.chars().count() >= 2 && label.chars().all(|c| c.is_ascii_alphabetic() || !c.is_ascii())
}

/// RFC 5322 atext, extended by RFC 6531 to every non-ASCII character that is text.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || is_utf8_text(c)
}

fn is_utf8_text(c: char) -> bool {
    !c.is_ascii() && !is_space_or_control(c) && !is_invisible_or_dot_like(c)
}

fn is_space_or_control(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// Characters that render as nothing, so that an address holding one looks like another: every
/// Unicode Default_Ignorable_Code_Point (soft hyphen, combining grapheme joiner, Arabic letter
/// mark, Hangul fillers, zero-width and bidi controls, word joiner and invisible operators,
/// variation selectors, the BOM, tag characters), the line and paragraph separators, and the
/// dots that IDNA maps to '.'.
fn is_invisible_or_dot_like(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}'
        | '\u{3002}' | '\u{FF0E}' | '\u{FF61}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use EmailError::*;

    #[test]
    fn fuzz_findings_are_refused() {
        // Reserved default-ignorable code points, and a non-ASCII character in a punycode TLD.
        assert!(!is_valid_email("a\u{fff0}b@x.io"));
        assert!(!is_valid_email("a@x.\u{fff8}io"));
        assert!(!is_valid_email("a@x.xn--b\u{fc}cher"));
        assert!(is_valid_email("user@example.xn--p1ai"));
    }

    #[test]
    fn accepted_addresses() {
        let local64 = "a".repeat(64);
        let label63 = "b".repeat(63);
        // 254 octets: 64 + 1 + 63 + 1 + 63 + 1 + 58 + 1 + 2
        let addr254 = format!("{local64}@{label63}.{label63}.{}.io", "c".repeat(58));
        assert_eq!(addr254.len(), 254);
        let cases: &[&str] = &[
            "alice@example.com",
            "Alice.Smith@Example.COM",
            "a+tag@x.io",
            "o'brien@irish.ie",
            "x_y-z@sub.domain.co.uk",
            "{weird}~!#$%&*=?^`|@x.io",
            "user@xn--80ak6aa92e.com",
            "user@example.xn--p1ai",
            "jörg@bücher.de",
            "пользователь@пример.рф",
            "a@b-c.io",
            "1@2.io",
            &local64,
        ];
        for case in &cases[..cases.len() - 1] {
            assert_eq!(validate_email(case), Ok(()), "{case}");
        }
        assert_eq!(validate_email(&format!("{local64}@x.io")), Ok(()));
        assert_eq!(validate_email(&format!("a@{label63}.io")), Ok(()));
        assert_eq!(validate_email(&addr254), Ok(()));
    }

    #[test]
    fn rejected_addresses() {
        let cases: &[(&str, EmailError)] = &[
            ("", Empty),
            ("a..b@x.io", ConsecutiveDotsInLocalPart),
            (".a@-x..fr", LeadingDotInLocalPart),
            ("a.@x.io", TrailingDotInLocalPart),
            ("a@b", SingleLabelDomain),
            ("a b@x.io", Whitespace),
            (" a@x.io", Whitespace),
            ("a@x.io\n", Whitespace),
            ("a\u{0}@x.io", Whitespace),
            ("a@x.c", InvalidTopLevelDomain),
            ("a@x.c0m", InvalidTopLevelDomain),
            ("a@x.123", InvalidTopLevelDomain),
            ("a@x..io", EmptyDomainLabel),
            ("a@.x.io", EmptyDomainLabel),
            ("a@x.io.", EmptyDomainLabel),
            ("@x.io", EmptyLocalPart),
            ("a@", EmptyDomain),
            ("@", EmptyLocalPart),
            ("plainaddress", MissingAt),
            ("a@b@x.io", MoreThanOneAt),
            ("\"ab\"@x.io", QuotedLocalPart),
            ("a@[127.0.0.1]", IpLiteralDomain),
            ("a@-x.io", LabelHyphen),
            ("a@x-.io", LabelHyphen),
            ("a@x_y.io", InvalidCharInDomain),
            ("a(comment)@x.io", InvalidCharInLocalPart),
            ("a,b@x.io", InvalidCharInLocalPart),
            ("a@x\u{3002}io", InvalidCharInDomain),
            ("a\u{200B}b@x.io", InvalidCharInLocalPart),
        ];
        for (input, expected) in cases {
            assert_eq!(validate_email(input), Err(*expected), "{input:?}");
        }
    }

    #[test]
    fn length_boundaries() {
        let local65 = "a".repeat(65);
        assert_eq!(validate_email(&format!("{local65}@x.io")), Err(LocalPartTooLong));
        let label64 = "b".repeat(64);
        assert_eq!(validate_email(&format!("a@{label64}.io")), Err(LabelTooLong));
        let label63 = "b".repeat(63);
        let addr255 = format!("{}@{label63}.{label63}.{}.io", "a".repeat(64), "c".repeat(59));
        assert_eq!(addr255.len(), 255);
        assert_eq!(validate_email(&addr255), Err(AddressTooLong));
        // Two-octet characters count as two octets.
        assert_eq!(validate_email(&format!("{}@x.io", "é".repeat(32))), Ok(()));
        assert_eq!(validate_email(&format!("{}a@x.io", "é".repeat(32))), Err(LocalPartTooLong));
    }

    #[test]
    fn huge_input_is_rejected_cheaply() {
        let big = "a".repeat(10 << 20);
        assert_eq!(validate_email(&big), Err(MissingAt));
        let big_at = format!("{big}@x.io");
        assert_eq!(validate_email(&big_at), Err(AddressTooLong));
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize_email("  Alice.Smith@Example.COM "), "alice.smith@example.com");
        assert_eq!(normalize_email("JÖRG@BÜCHER.DE"), "jörg@bücher.de");
        // Growth under lower-casing (U+0130 is 2 octets, its lower case 3) is counted.
        let dotted_i = "\u{130}".repeat(32);
        assert_eq!(validate_email(&format!("{dotted_i}@x.io")), Err(LocalPartTooLong));
        let dotted_i = "\u{130}".repeat(21);
        let addr = format!("{dotted_i}@x.io");
        assert!(is_valid_email(&addr));
        assert!(is_valid_email(&normalize_email(&addr)));
    }

    #[test]
    fn look_alikes() {
        // The decomposed spelling is the same address once normalized, so the unique index on
        // normalize_email(email) refuses the twin.
        let composed = "jos\u{E9}@caf\u{E9}.fr";
        let decomposed = "jose\u{301}@cafe\u{301}.fr";
        assert!(is_valid_email(decomposed));
        assert_eq!(normalize_email(decomposed), normalize_email(composed));
        assert_eq!(normalize_email("JOSE\u{301}@X.IO"), "jos\u{E9}@x.io");
        for invisible in ['\u{AD}', '\u{34F}', '\u{61C}', '\u{2066}', '\u{2069}', '\u{FE0F}', '\u{E0041}', '\u{E007F}', '\u{200D}', '\u{3164}'] {
            let local = format!("al{invisible}ice@x.io");
            assert_eq!(validate_email(&local), Err(InvalidCharInLocalPart), "{:?}", invisible);
            let domain = format!("alice@exa{invisible}mple.io");
            assert_eq!(validate_email(&domain), Err(InvalidCharInDomain), "{:?}", invisible);
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn emailish() -> impl Strategy<Value = String> {
            prop_oneof![any::<String>(), "[a-zA-Z0-9.+_-]{0,70}@[a-zA-Z0-9.-]{0,70}", "[a-zA-Z0-9éÉİΣß]{1,30}@[a-zA-Z0-9éİ-]{1,20}\\.[a-zA-ZΣéİ]{1,5}",]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]
            #[test]
            fn never_panics(s in any::<String>()) {
                let _ = validate_email(&s);
                let _ = normalize_email(&s);
            }

            #[test]
            fn normalize_is_idempotent(s in emailish()) {
                let once = normalize_email(&s);
                prop_assert_eq!(normalize_email(&once), once);
            }

            #[test]
            fn valid_stays_valid_after_normalize(s in emailish()) {
                if is_valid_email(&s) {
                    let n = normalize_email(&s);
                    prop_assert!(is_valid_email(&n), "{:?} -> {:?}: {:?}", s, n, validate_email(&n));
                }
            }
        }
    }
}
