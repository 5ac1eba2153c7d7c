//! The Unicode classes the README's email policy names, written out from the Unicode Character
//! Database (PropList.txt White_Space, general category Cc, DerivedCoreProperties.txt
//! Default_Ignorable_Code_Point) rather than taken from std or from the core.

use crate::rng::Rng;

/// White_Space (PropList.txt).
pub fn is_white_space(c: char) -> bool {
    matches!(c,
        '\u{9}'..='\u{d}' | '\u{20}' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}'
        | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

/// General category Cc (the C0 and C1 controls and DEL).
pub fn is_cc(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Default_Ignorable_Code_Point, every range (DerivedCoreProperties.txt, Unicode 15.1 and 16.0).
#[rustfmt::skip]
pub const DEFAULT_IGNORABLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark
    ('\u{115F}', '\u{1160}'),   // Hangul choseong and jungseong fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180B}', '\u{180F}'),   // Mongolian variation selectors and vowel separator
    ('\u{200B}', '\u{200F}'),   // zero-width space, joiners, LRM, RLM
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides
    ('\u{2060}', '\u{206F}'),   // word joiner, invisible operators, isolates, deprecated formats
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{FE00}', '\u{FE0F}'),   // variation selectors 1-16
    ('\u{FEFF}', '\u{FEFF}'),   // zero-width no-break space (BOM)
    ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
    ('\u{FFF0}', '\u{FFF8}'),   // reserved, default ignorable
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0000}', '\u{E0FFF}'), // tags, variation selectors 17-256, reserved
];

pub fn is_default_ignorable(c: char) -> bool {
    DEFAULT_IGNORABLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// The full stops IDNA recognizes as dots besides '.' (RFC 3490, section 3.1).
pub fn is_idna_dot(c: char) -> bool {
    matches!(c, '\u{3002}' | '\u{FF0E}' | '\u{FF61}')
}

/// The README's "non-ASCII text character": not ASCII, not whitespace or a control, not
/// invisible (Default_Ignorable_Code_Point), not a line or paragraph separator, not an IDNA dot.
pub fn is_non_ascii_text(c: char) -> bool {
    !c.is_ascii()
        && !is_white_space(c)
        && !is_cc(c)
        && !is_default_ignorable(c)
        && !matches!(c, '\u{2028}' | '\u{2029}')
        && !is_idna_dot(c)
}

/// A default-ignorable character: a range first (each equally likely), then a code point in it.
pub fn random_default_ignorable(rng: &mut Rng) -> char {
    let &(lo, hi) = rng.pick(DEFAULT_IGNORABLE);
    let span = (hi as u32 - lo as u32 + 1) as usize;
    char::from_u32(lo as u32 + rng.below(span) as u32).unwrap_or(lo)
}

/// Any scalar value, half of the time from the BMP.
pub fn random_scalar(rng: &mut Rng) -> char {
    loop {
        let limit = if rng.one_in(2) { 0x1_0000 } else { 0x11_0000 };
        if let Some(c) = char::from_u32(rng.below(limit) as u32) {
            return c;
        }
    }
}
