//! Lightning node public keys: the reference validator, written from the README's "Lightning
//! node public key policy" on k256's SEC1 decoding (not on the core), and the input generator.

use crate::rng::Rng;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::{PublicKey, SecretKey};

/// DIFFERENCES: how this reference reads the README, and where it departs from the core.
/// Printed in the report.
pub const DIFFERENCES: &[&str] = &[
    "Reading: exactly 66 characters, each an ASCII hex digit of either case (mixed case too); \
     prefix `02` or `03`; x below p (compared here on the bytes, and again inside k256); the \
     point must decompress with k256 (`PublicKey::from_sec1_bytes`), i.e. x³ + 7 is a square \
     mod p. No trimming: a key with a space around it is invalid (only \
     `normalize_lightning_pubkey` trims).",
    "No difference from the core is known from reading it; this run is the test.",
];

const HEX_DIGITS: usize = 66;

/// The field prime p = 2^256 − 2^32 − 977, big-endian.
const P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[27] = 0xfe;
    p[30] = 0xfc;
    p[31] = 0x2f;
    p
};

/// `Ok` when `input` is a valid node id by the README, else why not.
pub fn reference(input: &str) -> Result<(), &'static str> {
    let key = decode_hex(input)?;
    if key[0] != 0x02 && key[0] != 0x03 {
        return Err("prefix is not 02 or 03");
    }
    if &key[1..] >= &P[..] {
        return Err("x is not below p");
    }
    PublicKey::from_sec1_bytes(&key)
        .map(|_| ())
        .map_err(|_| "k256 cannot decompress it (x^3 + 7 is not a square)")
}

/// The 33 bytes spelt by exactly 66 hex digits of either case, or why not.
fn decode_hex(input: &str) -> Result<[u8; 33], &'static str> {
    let mut key = [0u8; 33];
    let mut count = 0;
    for c in input.chars() {
        let digit = c.to_digit(16).ok_or("a character is not a hex digit")?;
        if count == HEX_DIGITS {
            return Err("more than 66 hex digits");
        }
        key[count / 2] = (key[count / 2] << 4) | digit as u8;
        count += 1;
    }
    if count < HEX_DIGITS {
        return Err("fewer than 66 hex digits");
    }
    Ok(key)
}

/// The kinds of generated input.
#[derive(Clone, Copy)]
enum Kind {
    /// A key of a random secret, random case.
    Valid,
    /// A key with its prefix swapped (02 ↔ 03): the other y, still valid.
    OtherY,
    /// One hex digit replaced by another (the prefix included).
    Flipped,
    /// 02/03 and a random x: on the curve about half of the time.
    RandomX,
    /// x at p, above p, just below p, near 2^256, or small.
    EdgeX,
    WrongPrefix,
    WrongLength,
    /// 04 (or hybrid 06/07) and both coordinates of a real point.
    Uncompressed,
    NonHex,
    Whitespace,
    Blank,
    Garbage,
}

/// The mix, in percent.
const MIX: &[(Kind, usize)] = &[
    (Kind::Valid, 14),
    (Kind::OtherY, 4),
    (Kind::Flipped, 12),
    (Kind::RandomX, 12),
    (Kind::EdgeX, 4),
    (Kind::WrongPrefix, 8),
    (Kind::WrongLength, 8),
    (Kind::Uncompressed, 5),
    (Kind::NonHex, 8),
    (Kind::Whitespace, 6),
    (Kind::Blank, 5),
    (Kind::Garbage, 14),
];

/// Keys kept to be mutated; a fresh key costs a scalar multiplication.
const POOL: usize = 256;

#[rustfmt::skip]
const HEX_CHARS: &[char] = &[
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f', 'A', 'B',
    'C', 'D', 'E', 'F',
];
#[rustfmt::skip]
const BAD_PREFIXES: &[&str] = &[
    "00", "01", "04", "05", "06", "07", "08", "0a", "0A", "0f", "12", "13", "20", "22", "30",
    "42", "82", "ff", "FF", "0x", "x0", "2", "3", "002", "0 2",
];
/// Replacements for a digit: ASCII look-alikes, controls, and non-ASCII digits and letters.
#[rustfmt::skip]
const NON_HEX: &[char] = &[
    'g', 'G', 'x', 'X', 'z', 'o', 'O', 'l', ' ', '-', '_', '+', ':', '\0', '\t', '\n', '\u{7f}',
    'é', 'ß', '\u{ff10}', '\u{663}', '\u{ff41}', '\u{ff21}', '\u{200b}', '\u{feff}', '\u{a0}',
    '\u{1f600}', '\u{301}',
];
#[rustfmt::skip]
const SPACES: &[&str] = &[" ", "  ", "\t", "\n", "\r\n", "\u{a0}", "\u{3000}", "\u{feff}", "\u{200b}"];
#[rustfmt::skip]
const BLANKS: &[&str] = &["", " ", "  ", "\t", "\n", "\0", "0", "02", "03", "04", "0x", "null", "NULL"];

/// Generates pubkey test inputs. The mutated kinds start from a pool of keys, renewed slowly.
pub struct KeyGen {
    pool: Vec<[u8; 33]>,
}

impl KeyGen {
    pub fn new(rng: &mut Rng) -> Self {
        KeyGen { pool: (0..POOL).map(|_| fresh_key(rng)).collect() }
    }

    /// The next input.
    pub fn next(&mut self, rng: &mut Rng) -> String {
        match *rng.weighted(MIX) {
            Kind::Valid => {
                let key = if rng.one_in(2) { fresh_key(rng) } else { self.pooled(rng) };
                with_case(rng, &hex(&key))
            }
            Kind::OtherY => {
                let mut key = self.pooled(rng);
                key[0] ^= 1;
                with_case(rng, &hex(&key))
            }
            Kind::Flipped => {
                let key = hex(&self.pooled(rng));
                flip_digit(rng, &key)
            }
            Kind::RandomX => {
                let key = random_x_key(rng);
                with_case(rng, &hex(&key))
            }
            Kind::EdgeX => {
                let key = edge_x_key(rng);
                with_case(rng, &hex(&key))
            }
            Kind::WrongPrefix => {
                let key = hex(&self.pooled(rng));
                wrong_prefix(rng, &key)
            }
            Kind::WrongLength => {
                let key = hex(&self.pooled(rng));
                wrong_length(rng, &key)
            }
            Kind::Uncompressed => uncompressed(rng),
            Kind::NonHex => {
                let key = hex(&self.pooled(rng));
                non_hex(rng, &key)
            }
            Kind::Whitespace => {
                let key = hex(&self.pooled(rng));
                whitespace(rng, &key)
            }
            Kind::Blank => rng.pick(BLANKS).to_string(),
            Kind::Garbage => garbage(rng),
        }
    }

    /// A key from the pool, one time in eight replaced by a fresh one first.
    fn pooled(&mut self, rng: &mut Rng) -> [u8; 33] {
        let i = rng.below(self.pool.len());
        if rng.one_in(8) {
            self.pool[i] = fresh_key(rng);
        }
        self.pool[i]
    }
}

/// The public key of a random secret scalar.
fn fresh_public_key(rng: &mut Rng) -> PublicKey {
    loop {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        // Fails only for 0 and for values at or above the group order: draw again.
        if let Ok(secret) = SecretKey::from_slice(&secret) {
            return secret.public_key();
        }
    }
}

/// A compressed key (33 bytes) of a random secret.
fn fresh_key(rng: &mut Rng) -> [u8; 33] {
    let point = fresh_public_key(rng).to_encoded_point(true);
    let mut key = [0u8; 33];
    key.copy_from_slice(point.as_bytes());
    key
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Lower case mostly, else upper case or a random mix of both.
fn with_case(rng: &mut Rng, hex: &str) -> String {
    match rng.below(10) {
        0 | 1 => hex.to_ascii_uppercase(),
        2 => hex.chars().map(|c| if rng.one_in(2) { c.to_ascii_uppercase() } else { c }).collect(),
        _ => hex.to_string(),
    }
}

fn random_hex_char(rng: &mut Rng) -> char {
    *rng.pick(HEX_CHARS)
}

/// One digit replaced by a different one.
fn flip_digit(rng: &mut Rng, hex: &str) -> String {
    let mut chars: Vec<char> = with_case(rng, hex).chars().collect();
    let i = rng.below(chars.len());
    let old = chars[i].to_ascii_lowercase();
    chars[i] = loop {
        let new = random_hex_char(rng);
        if new.to_ascii_lowercase() != old {
            break new;
        }
    };
    chars.into_iter().collect()
}

/// 02/03 and 32 random bytes, sometimes with leading zero bytes.
fn random_x_key(rng: &mut Rng) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = 2 + rng.below(2) as u8;
    rng.fill(&mut key[1..]);
    if rng.one_in(8) {
        let zeros = rng.range(1, 31);
        key[1..1 + zeros].fill(0);
    }
    key
}

/// 02/03 and an x at the edges of the field.
fn edge_x_key(rng: &mut Rng) -> [u8; 33] {
    let k = rng.below(2048) as u64;
    let x = match rng.below(5) {
        0 => add_small(P, k),          // p ..= p + 2047: not below p
        1 => sub_small([0xff; 32], k), // 2^256 − 1 − k
        2 => sub_small(P, k + 1),      // p − 1 − k: below p
        3 => add_small([0; 32], k),    // small x, 0 included
        _ => {
            // Top 27 bytes as in p, the low 5 random: both sides of p.
            let mut x = [0xff; 32];
            rng.fill(&mut x[27..]);
            x
        }
    };
    let mut key = [0u8; 33];
    key[0] = 2 + rng.below(2) as u8;
    key[1..].copy_from_slice(&x);
    key
}

/// x + k, big-endian (wrapping at 2^256, which the callers never reach).
fn add_small(mut x: [u8; 32], k: u64) -> [u8; 32] {
    let mut carry = k;
    for byte in x.iter_mut().rev() {
        if carry == 0 {
            break;
        }
        let sum = *byte as u64 + (carry & 0xff);
        *byte = sum as u8;
        carry = (carry >> 8) + (sum >> 8);
    }
    x
}

/// x − k, big-endian (x ≥ k at every call).
fn sub_small(mut x: [u8; 32], k: u64) -> [u8; 32] {
    let mut borrow = k;
    for byte in x.iter_mut().rev() {
        if borrow == 0 {
            break;
        }
        let (diff, under) = byte.overflowing_sub((borrow & 0xff) as u8);
        *byte = diff;
        borrow = (borrow >> 8) + under as u64;
    }
    x
}

fn wrong_prefix(rng: &mut Rng, hex: &str) -> String {
    let prefix = *rng.pick(BAD_PREFIXES);
    with_case(rng, &format!("{prefix}{}", &hex[2..]))
}

/// Too short or too long: truncated (down to empty), extended, without prefix, doubled.
fn wrong_length(rng: &mut Rng, hex: &str) -> String {
    let hex = with_case(rng, hex);
    match rng.below(7) {
        0 => {
            let len = rng.below(HEX_DIGITS);
            hex[..len].to_string()
        }
        1 => {
            let mut s = hex;
            for _ in 0..rng.range(1, 4) {
                s.push(random_hex_char(rng));
            }
            s
        }
        2 => format!("0{hex}"),
        3 => hex[2..].to_string(),
        4 => format!("{hex}{}", &hex[2..]), // 130 digits with a 02/03 prefix
        5 => {
            let mut s = String::from("04");
            for _ in 0..128 {
                s.push(random_hex_char(rng));
            }
            s
        }
        _ => hex.repeat(2),
    }
}

/// A real point in the 65-byte uncompressed form, prefix 04 or hybrid 06/07.
fn uncompressed(rng: &mut Rng) -> String {
    let point = fresh_public_key(rng).to_encoded_point(false);
    let mut bytes = point.as_bytes().to_vec();
    if rng.one_in(4) {
        bytes[0] = 6 + rng.below(2) as u8;
    }
    with_case(rng, &hex(&bytes))
}

/// A digit replaced by a non-hex character; half of the time a multi-octet one replaces as
/// many digits, so that the octet length stays 66.
fn non_hex(rng: &mut Rng, hex: &str) -> String {
    let hex = with_case(rng, hex);
    let c = *rng.pick(NON_HEX);
    let width = if rng.one_in(2) { c.len_utf8() } else { 1 };
    let at = rng.below(HEX_DIGITS - width + 1);
    format!("{}{c}{}", &hex[..at], &hex[at + width..])
}

/// Whitespace around a key, or in place of its first or last digit.
fn whitespace(rng: &mut Rng, hex: &str) -> String {
    let hex = with_case(rng, hex);
    let space = *rng.pick(SPACES);
    match rng.below(5) {
        0 => format!("{space}{hex}"),
        1 => format!("{hex}{space}"),
        2 => format!("{space}{hex}{space}"),
        3 => format!(" {}", &hex[1..]),
        _ => format!("{} ", &hex[..HEX_DIGITS - 1]),
    }
}

/// Random bytes made UTF-8, hex runs of lengths near 66 and 130, or a hex-heavy char soup.
fn garbage(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => {
            let mut bytes = vec![0u8; rng.below(140)];
            rng.fill(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        }
        1 => {
            let len = *rng.pick(&[64usize, 65, 66, 66, 66, 67, 68, 130, 132]);
            (0..len).map(|_| random_hex_char(rng)).collect()
        }
        _ => {
            let len = rng.below(140);
            (0..len).map(|_| garbage_char(rng)).collect()
        }
    }
}

fn garbage_char(rng: &mut Rng) -> char {
    match rng.below(10) {
        0..=5 => random_hex_char(rng),
        6 | 7 => (0x20 + rng.below(0x5f) as u8) as char, // printable ASCII
        8 => *rng.pick(NON_HEX),
        _ => crate::unicode::random_scalar(rng),
    }
}
