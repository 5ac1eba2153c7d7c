//! Email addresses: the reference validator, written again from the README's "Email policy"
//! (not from the core's code), and the input generator.

use crate::rng::Rng;
use crate::unicode::{self, is_cc, is_non_ascii_text, is_white_space};
use unicode_normalization::UnicodeNormalization;

/// DIFFERENCES: how this reference reads the README where it leaves room, which readings
/// deliberately mirror a choice of the core, and where it departs from the core. Printed in the
/// report.
pub const DIFFERENCES: &[&str] = &[
    "Mirrors the core: \"whitespace\" is Unicode's White_Space property and \"control \
     characters\" general category Cc only. Format characters (Cf) outside \
     Default_Ignorable_Code_Point, such as U+0600 ARABIC NUMBER SIGN or U+FFF9 INTERLINEAR \
     ANNOTATION ANCHOR, count as text.",
    "Mirrors the core: \"any non-ASCII text character\" is every non-ASCII scalar value that is \
     not White_Space, Cc, Default_Ignorable_Code_Point, U+2028/U+2029 or an IDNA full stop. \
     Unassigned, private-use and noncharacter code points (U+FFFF), lone combining marks, \
     symbols, emoji and look-alikes such as U+FF20 FULLWIDTH COMMERCIAL AT are text, in the \
     local part and in domain labels.",
    "Mirrors the core: the full stops IDNA maps to `.` are U+3002, U+FF0E and U+FF61 (RFC 3490, \
     section 3.1); other dot-like characters (U+00B7, U+2024, U+FE52) are text.",
    "Mirrors the core: a top-level label of \"at least 2 letters (ASCII or not)\" is 2 or more \
     code points, each an ASCII letter or a non-ASCII text character (the core's comment: \"no \
     digits or hyphens\"). So emoji and non-ASCII digits count as letters (`a@x.😀😀`, \
     `a@x.\\u{660}\\u{661}` are valid), and code points are counted, not letters: \
     `a@x.e\\u{301}` is valid while its NFC form `a@x.\\u{e9}` is not.",
    "Reading: the normalized form of the length rule is the README's `normalize_email` (trim, \
     NFC, lower-case, NFC), taken on the local part and on each label alone for the 64- and \
     63-octet limits; that is the matching piece of the normalized address, since NFC and \
     lower-casing never create or remove an `@` or a `.`.",
    "Departed from the core (a core bug, by the README; fixed in core/src/email.rs after this fuzz found it): Default_Ignorable_Code_Point is the \
     whole Unicode property, as the README says (\"every invisible character\"), so \
     U+FFF0..U+FFF8 (reserved, default ignorable) are rejected; the core's list lacks them and \
     accepts e.g. `a\\u{fff0}b@x.io`.",
    "Departed from the core (a core bug, by the README; fixed in core/src/email.rs after this fuzz found it): a punycode top-level label is `xn--` \
     (any case) followed by ASCII letters, digits and hyphens only, as punycode is ASCII; the \
     core accepts any label character after `xn--` (its comment assumes only letters, digits \
     and hyphens get there, but non-ASCII text passes the label check), e.g. \
     `a@x.xn--b\\u{fc}cher`.",
    "Not compared (both sides agree, but the README's promise that normalizing a valid address \
     never makes it invalid fails through rules other than the lengths): U+037E GREEK QUESTION \
     MARK is text but composes to `;` (`a\\u{37e}b@x.io`), U+1FEF GREEK VARIA composes to a \
     grave accent, which a domain may not hold, and the top-level label `e\\u{301}` composes \
     to one code point.",
];

const LOCAL_MAX: usize = 64;
const LABEL_MAX: usize = 63;
const ADDRESS_MAX: usize = 254;
/// RFC 5322 atext besides letters and digits, as the README lists it.
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// `Ok` when `addr` follows the README's email policy, else the rule it breaks.
pub fn reference(addr: &str) -> Result<(), &'static str> {
    if addr.is_empty() {
        return Err("empty");
    }
    if addr.chars().any(|c| is_white_space(c) || is_cc(c)) {
        return Err("whitespace or control character");
    }
    let (local, domain) = split_at_sole_at(addr)?;
    check_local(local)?;
    check_domain(domain)?;
    check_lengths(addr, local, domain)
}

/// The two sides of the one `@`.
fn split_at_sole_at(addr: &str) -> Result<(&str, &str), &'static str> {
    let mut sides = addr.split('@');
    let local = sides.next().unwrap_or("");
    let domain = sides.next().ok_or("no @")?;
    if sides.next().is_some() {
        return Err("more than one @");
    }
    Ok((local, domain))
}

/// A dot-atom: one or more atoms of atext, joined by single dots.
fn check_local(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("empty local part");
    }
    for atom in local.split('.') {
        if atom.is_empty() {
            return Err("empty atom in local part (leading, trailing or double dot)");
        }
        if !atom.chars().all(is_atext) {
            return Err("character not allowed in local part");
        }
    }
    Ok(())
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c) || is_non_ascii_text(c)
}

/// Two labels or more, each well formed, the last a top-level label.
fn check_domain(domain: &str) -> Result<(), &'static str> {
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("fewer than two labels");
    }
    for label in &labels {
        check_label(label)?;
    }
    check_top_level(labels[labels.len() - 1])
}

fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("empty label");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("label starts or ends with a hyphen");
    }
    if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || is_non_ascii_text(c)) {
        return Err("character not allowed in a label");
    }
    Ok(())
}

/// Punycode (`xn--` and ASCII letters, digits, hyphens), or two letters or more.
fn check_top_level(tld: &str) -> Result<(), &'static str> {
    if let Some(rest) = tld.get(..4).filter(|p| p.eq_ignore_ascii_case("xn--")).map(|_| &tld[4..]) {
        let punycode = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        return if punycode { Ok(()) } else { Err("xn-- top-level label that is not punycode") };
    }
    let letters = tld.chars().all(|c| c.is_ascii_alphabetic() || is_non_ascii_text(c));
    if !letters || tld.chars().count() < 2 {
        return Err("top-level label is not 2 letters or more");
    }
    Ok(())
}

/// Every limit, on the longer of each part and its normalized form.
fn check_lengths(addr: &str, local: &str, domain: &str) -> Result<(), &'static str> {
    if octets(local) > LOCAL_MAX {
        return Err("local part over 64 octets");
    }
    if domain.split('.').any(|label| octets(label) > LABEL_MAX) {
        return Err("label over 63 octets");
    }
    if octets(addr) > ADDRESS_MAX {
        return Err("address over 254 octets");
    }
    Ok(())
}

/// The octet length of `s` or of its normalized form, whichever is longer.
fn octets(s: &str) -> usize {
    if s.is_ascii() {
        return s.len(); // NFC and ASCII lower-casing leave ASCII as long as it is
    }
    s.len().max(normalized(s).len())
}

/// The README's `normalize_email`: trimmed, composed (NFC), lower-cased, composed again.
fn normalized(s: &str) -> String {
    let composed: String = s.trim().nfc().collect();
    composed.to_lowercase().nfc().collect()
}

// ---- Generator ----

const LOWER_DIGITS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ATEXT_ASCII: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~";
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

#[rustfmt::skip]
const LOCAL_WORDS: &[&str] = &[
    "alice", "bob", "john.doe", "first.last", "o'brien", "x_y-z", "a+tag", "info", "contact",
    "user123", "1", "{weird}~!#$%&*=?^`|", "jörg", "josé", "élodie", "пользователь", "李雷",
    "müller", "søren", "zoë", "straße", "ΣΊΣΥΦΟΣ", "İpek", "देवनागरी", "مرحبا", "😀", "ǅemal",
];
#[rustfmt::skip]
const LABELS: &[&str] = &[
    "example", "mail", "gmail", "sub", "my-site", "a1", "x", "b-c", "mx01", "2", "daznode",
    "lightning-network", "bücher", "пример", "xn--80ak6aa92e", "münchen", "日本", "ÉCOLE",
    "κόσμος",
];
#[rustfmt::skip]
const TLDS: &[&str] = &[
    "com", "io", "de", "fr", "uk", "org", "net", "museum", "co", "COM", "Io", "рф", "xn--p1ai",
    "XN--P1AI", "中国", "한국", "ไทย", "भारत", "भारतम्", "ελ", "онлайн", "zw",
];
/// Top-level labels that are invalid, or valid only by a reading listed in DIFFERENCES.
#[rustfmt::skip]
const ODD_TLDS: &[&str] = &[
    "c", "c0m", "123", "x-y", "xn--", "xn--é", "xn--bücher", "Xn--1a", "xn---", "é", "e\u{301}",
    "ab1", "1a", "_io", "x\u{200b}y", "\u{fff0}io", "io\u{fff8}", "😀😀", "\u{660}\u{661}",
    "io\u{37e}", "\u{ff49}\u{ff4f}", "i\u{ff0e}o",
];
/// Units that pad a part to a limit: ASCII, two- to four-octet characters, ones that grow
/// (İ, Ⱥ) or shrink (Kelvin sign, ẞ, e + U+0301) when normalized.
#[rustfmt::skip]
const FILLERS: &[&str] = &["a", "Z", "9", "é", "İ", "Ⱥ", "日", "😀", "\u{212a}", "ẞ", "e\u{301}", "ß", "x."];
#[rustfmt::skip]
const LABEL_FILLERS: &[&str] = &["a", "Z", "7", "-", "ü", "İ", "Ⱥ", "日", "\u{212a}", "e\u{301}"];
/// Characters inserted by mutations: whitespace and controls, ASCII specials, letters that
/// change under case mapping or NFC, dot and at look-alikes, format and odd code points.
#[rustfmt::skip]
const SPECIALS: &[char] = &[
    ' ', '\t', '\n', '\r', '\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}',
    '\u{a0}', '\u{1680}', '\u{2000}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}',
    '\u{3000}', '.', '@', '"', '(', ')', ',', ':', ';', '<', '>', '[', ']', '\\', '-', '_', '+',
    '=', '!', '#', '$', '%', '&', '\'', '*', '/', '?', '^', '`', '{', '|', '}', '~', 'A', 'Z',
    '0', '9', 'é', 'ß', 'İ', 'ı', 'Σ', 'ς', '\u{212a}', '\u{2126}', '\u{212b}', '\u{37e}',
    '\u{387}', '\u{1fef}', '\u{301}', '\u{308}', '\u{3002}', '\u{ff0e}', '\u{ff61}', '\u{2024}',
    '\u{fe52}', '\u{b7}', '\u{ff20}', '\u{fe6b}', '\u{600}', '\u{6dd}', '\u{fff9}', '\u{fffb}',
    '\u{fffd}', '\u{fffe}', '\u{ffff}', '\u{e000}', '\u{f8ff}', '\u{10ffff}', '\u{1f600}',
    '\u{660}', '\u{ff10}', '\u{ff41}', '日', 'п', 'ü', 'ñ', '\u{ad}', '\u{200b}', '\u{200d}',
    '\u{feff}', '\u{2066}', '\u{fe0f}', '\u{e0041}', '\u{fff0}', '\u{fff8}', '\u{180e}',
    '\u{115f}', '\u{3164}', '\u{ffa0}',
];
#[rustfmt::skip]
const COMBINING: &[char] = &['\u{301}', '\u{308}', '\u{327}', '\u{345}', '\u{20dd}', '\u{94d}', '\u{3099}'];
#[rustfmt::skip]
const SURROUNDINGS: &[&str] = &[" ", "\t", "\n", "\r\n", "\u{a0}", "\u{3000}", "\u{feff}", "\u{200b}", "\u{85}", "<", ">", "\""];

/// The next input: one in ten is garbage, the rest a realistic address with 0 to 3 mutations.
pub fn generate(rng: &mut Rng) -> String {
    if rng.one_in(10) {
        return garbage(rng);
    }
    let mut addr = realistic(rng);
    let mutations = *rng.pick(&[0, 0, 0, 1, 1, 1, 1, 2, 2, 3]);
    for _ in 0..mutations {
        mutate(rng, &mut addr);
    }
    addr
}

fn realistic(rng: &mut Rng) -> String {
    format!("{}@{}", local_part(rng), domain(rng))
}

/// One to three atoms, some from a word list (Unicode ones included), maybe a +tag.
fn local_part(rng: &mut Rng) -> String {
    let atoms: Vec<String> = (0..rng.range(1, 3))
        .map(|_| match rng.below(10) {
            0..=2 => rng.pick(LOCAL_WORDS).to_string(),
            3 => ascii_word(rng, ATEXT_ASCII, 1, 10),
            _ => ascii_word(rng, LOWER_DIGITS, 1, 10),
        })
        .collect();
    let mut local = atoms.join(".");
    if rng.one_in(5) {
        local.push('+');
        local.push_str(&ascii_word(rng, LOWER_DIGITS, 1, 8));
    }
    local
}

/// One to three labels and a top-level label.
fn domain(rng: &mut Rng) -> String {
    let mut labels: Vec<String> = (0..rng.range(1, 3)).map(|_| label(rng)).collect();
    labels.push(match rng.below(20) {
        0..=12 => rng.pick(TLDS).to_string(),
        13..=18 => ascii_word(rng, LETTERS, 2, 8),
        _ => rng.pick(ODD_TLDS).to_string(),
    });
    labels.join(".")
}

/// A label from the list, or letters and digits with maybe a hyphen inside.
fn label(rng: &mut Rng) -> String {
    if rng.one_in(3) {
        return rng.pick(LABELS).to_string();
    }
    let mut label = ascii_word(rng, LOWER_DIGITS, 1, 12);
    if label.len() >= 3 && rng.one_in(4) {
        let at = rng.range(1, label.len() - 1);
        label.insert(at, '-');
    }
    label
}

fn ascii_word(rng: &mut Rng, alphabet: &[u8], min: usize, max: usize) -> String {
    let len = rng.range(min, max);
    (0..len).map(|_| *rng.pick(alphabet) as char).collect()
}

/// One random mutation of `s`.
fn mutate(rng: &mut Rng, s: &mut String) {
    match rng.below(19) {
        0 => {
            let c = *rng.pick(SPECIALS);
            insert_char(rng, s, c);
        }
        1 => {
            if let Some(at) = remove_char(rng, s) {
                s.insert(at, *rng.pick(SPECIALS));
            }
        }
        2 => {
            remove_char(rng, s);
        }
        3 => {
            let c = unicode::random_default_ignorable(rng);
            insert_char(rng, s, c);
        }
        4 => double_dot(rng, s),
        5 => edge_dot(rng, s),
        6 => at_signs(rng, s),
        7 => edge_hyphen(rng, s),
        8 => pad_local(rng, s),
        9 => pad_label(rng, s),
        10 => pad_address(rng, s),
        11 => inflate(rng, s),
        12 => change_case(rng, s),
        13 => renormalize(rng, s),
        14 => rejected_form(rng, s),
        15 => replace_tld(rng, s),
        16 => surround(rng, s),
        17 => {
            let c = unicode::random_scalar(rng);
            insert_char(rng, s, c);
        }
        _ => {
            let c = *rng.pick(COMBINING);
            insert_char(rng, s, c);
        }
    }
}

/// A random char boundary of `s`, both ends included.
fn boundary(rng: &mut Rng, s: &str) -> usize {
    let k = rng.below(s.chars().count() + 1);
    s.char_indices().nth(k).map_or(s.len(), |(i, _)| i)
}

fn insert_char(rng: &mut Rng, s: &mut String, c: char) {
    let at = boundary(rng, s);
    s.insert(at, c);
}

/// Removes a random char; returns where it was (a char boundary now).
fn remove_char(rng: &mut Rng, s: &mut String) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    let k = rng.below(s.chars().count());
    let (at, _) = s.char_indices().nth(k)?;
    s.remove(at);
    Some(at)
}

/// Applies `f` to the local part and the domain (split at the last `@`; with none, all of `s`
/// is the local part and the domain is empty), then puts `s` back together.
fn with_parts(s: &mut String, f: impl FnOnce(&mut String, &mut String)) {
    let at = s.rfind('@');
    let (mut local, mut domain) = match at {
        Some(i) => (s[..i].to_string(), s[i + 1..].to_string()),
        None => (s.clone(), String::new()),
    };
    f(&mut local, &mut domain);
    *s = if at.is_some() { format!("{local}@{domain}") } else { format!("{local}{domain}") };
}

/// Applies `f` to one random label of the domain.
fn with_random_label(rng: &mut Rng, s: &mut String, f: impl FnOnce(&mut String)) {
    with_parts(s, |_, domain| {
        let mut labels: Vec<String> = domain.split('.').map(str::to_string).collect();
        let i = rng.below(labels.len());
        f(&mut labels[i]);
        *domain = labels.join(".");
    });
}

/// A dot doubled (or, without any dot, a `..` inserted).
fn double_dot(rng: &mut Rng, s: &mut String) {
    let dots: Vec<usize> = s.match_indices('.').map(|(i, _)| i).collect();
    if dots.is_empty() {
        let at = boundary(rng, s);
        s.insert_str(at, "..");
    } else {
        let at = *rng.pick(&dots);
        s.insert(at, '.');
    }
}

/// A dot at the start or end of the local part or of the domain.
fn edge_dot(rng: &mut Rng, s: &mut String) {
    let which = rng.below(4);
    with_parts(s, |local, domain| match which {
        0 => local.insert(0, '.'),
        1 => local.push('.'),
        2 => domain.insert(0, '.'),
        _ => domain.push('.'),
    });
}

/// No `@` at all, one more somewhere, or `@@`.
fn at_signs(rng: &mut Rng, s: &mut String) {
    match rng.below(3) {
        0 => s.retain(|c| c != '@'),
        1 => insert_char(rng, s, '@'),
        _ => {
            if let Some(i) = s.rfind('@') {
                s.insert(i, '@');
            }
        }
    }
}

/// A hyphen at the start or end of a label.
fn edge_hyphen(rng: &mut Rng, s: &mut String) {
    let front = rng.one_in(2);
    with_random_label(rng, s, |label| if front { label.insert(0, '-') } else { label.push('-') });
}

fn grow(part: &mut String, unit: &str, target: usize) {
    while part.len() < target {
        part.push_str(unit);
    }
}

/// The local part grown to 40..=70 raw octets: around the 64-octet limit, raw or normalized.
fn pad_local(rng: &mut Rng, s: &mut String) {
    let target = rng.range(40, 70);
    let unit = *rng.pick(FILLERS);
    with_parts(s, |local, _| grow(local, unit, target));
}

/// A label grown to 40..=68 raw octets: around the 63-octet limit, raw or normalized.
fn pad_label(rng: &mut Rng, s: &mut String) {
    let target = rng.range(40, 68);
    let unit = *rng.pick(LABEL_FILLERS);
    with_random_label(rng, s, |label| grow(label, unit, target));
}

/// The address grown to 240..=262 octets by labels inserted after the `@`.
fn pad_address(rng: &mut Rng, s: &mut String) {
    let target = rng.range(240, 262);
    let unit = if rng.one_in(4) { *rng.pick(LABEL_FILLERS) } else { "a" };
    let mut need = target.saturating_sub(s.len());
    let mut padding = String::new();
    while need >= 2 {
        let mut label = String::new();
        while label.len() + unit.len() <= LABEL_MAX.min(need - 1) {
            label.push_str(unit);
        }
        if label.is_empty() {
            break;
        }
        need -= label.len() + 1;
        padding.push_str(&label);
        padding.push('.');
    }
    let at = s.rfind('@').map_or(s.len(), |i| i + 1);
    s.insert_str(at, &padding);
}

/// Far over every limit: about 1 kB (around 4 × 254 octets) or 10 kB.
fn inflate(rng: &mut Rng, s: &mut String) {
    let target = if rng.one_in(8) { 10_000 } else { rng.range(1000, 1040) };
    let unit = *rng.pick(FILLERS);
    let in_local = rng.one_in(2);
    with_parts(s, |local, domain| grow(if in_local { local } else { domain }, unit, target));
}

/// All upper case, all lower case, or one char upper-cased.
fn change_case(rng: &mut Rng, s: &mut String) {
    *s = match rng.below(3) {
        0 => s.to_uppercase(),
        1 => s.to_lowercase(),
        _ => {
            let k = rng.below(s.chars().count().max(1));
            s.chars()
                .enumerate()
                .map(|(i, c)| if i == k { c.to_uppercase().collect::<String>() } else { c.to_string() })
                .collect()
        }
    };
}

/// The same text in NFD, NFC, NFKD or NFKC.
fn renormalize(rng: &mut Rng, s: &mut String) {
    *s = match rng.below(4) {
        0 => s.nfd().collect(),
        1 => s.nfc().collect(),
        2 => s.nfkd().collect(),
        _ => s.nfkc().collect(),
    };
}

/// A form the README rejects on purpose (quoted local part, comment, IP literal, single-label
/// domain, trailing dot).
fn rejected_form(rng: &mut Rng, s: &mut String) {
    let which = rng.below(6);
    with_parts(s, |local, domain| match which {
        0 => *local = format!("\"{local}\""),
        1 => local.push_str("(comment)"),
        2 => *domain = rng.pick(&["[127.0.0.1]", "[IPv6:::1]", "127.0.0.1", "[x.io]"]).to_string(),
        3 => *domain = rng.pick(&["localhost", "io", "xn--p1ai", "рф"]).to_string(),
        4 => *local = "\"a b\"".to_string(),
        _ => domain.push('.'),
    });
}

/// The top-level label replaced by a usual one or an odd one.
fn replace_tld(rng: &mut Rng, s: &mut String) {
    let tld = if rng.one_in(3) { rng.pick(TLDS) } else { rng.pick(ODD_TLDS) };
    with_parts(s, |_, domain| match domain.rfind('.') {
        Some(i) => domain.replace_range(i + 1.., tld),
        None => {
            domain.push('.');
            domain.push_str(tld);
        }
    });
}

/// Whitespace (or brackets, a quote) before, after, or around.
fn surround(rng: &mut Rng, s: &mut String) {
    let piece = *rng.pick(SURROUNDINGS);
    match rng.below(3) {
        0 => s.insert_str(0, piece),
        1 => s.push_str(piece),
        _ => {
            s.insert_str(0, piece);
            s.push_str(piece);
        }
    }
}

/// Random bytes made UTF-8, or a soup of letters, `@`, dots, specials and any code point.
fn garbage(rng: &mut Rng) -> String {
    if rng.one_in(4) {
        let mut bytes = vec![0u8; rng.below(64)];
        rng.fill(&mut bytes);
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let len = rng.below(48);
    (0..len).map(|_| garbage_char(rng)).collect()
}

fn garbage_char(rng: &mut Rng) -> char {
    match rng.below(10) {
        0..=2 => (b'a' + rng.below(26) as u8) as char,
        3 => '@',
        4 => '.',
        5 => (b'0' + rng.below(10) as u8) as char,
        6 => '-',
        7 => *rng.pick(SPECIALS),
        8 => unicode::random_scalar(rng),
        _ => *rng.pick(&['é', 'ü', 'п', '日', 'İ', 'Σ', 'A', 'Z']),
    }
}
