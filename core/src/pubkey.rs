//! Lightning node public keys (BOLT #7 `node_id`): 33-byte compressed secp256k1 points,
//! written as 66 hex digits.

use crate::secp256k1::{add_small_mod_p, is_square_mod_p, lt, mul_mod_p, P, U256};

pub const PUBKEY_HEX_LEN: usize = 66;

/// Why a string is not a valid node public key. `Display` gives the short reason shown in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubkeyError {
    Empty,
    WrongLength,
    NotHex,
    Uncompressed,
    BadPrefix,
    XNotBelowP,
    NotOnCurve,
}

impl PubkeyError {
    pub fn reason(self) -> &'static str {
        use PubkeyError::*;
        match self {
            Empty => "empty public key",
            WrongLength => "must be exactly 66 hex digits",
            NotHex => "contains a character that is not a hex digit",
            Uncompressed => "uncompressed keys (04...) are not accepted: use the 33-byte compressed form",
            BadPrefix => "prefix must be 02 or 03 (compressed key)",
            XNotBelowP => "x coordinate is not below the field prime",
            NotOnCurve => "not a point on secp256k1 (x^3+7 is not a square)",
        }
    }
}

impl std::fmt::Display for PubkeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for PubkeyError {}

/// The canonical form: trimmed and lower-cased. `None` for an empty or blank string, which
/// the DazNode app stores to mean "no key".
pub fn normalize_lightning_pubkey(input: &str) -> Option<String> {
    let trimmed = input.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_ascii_lowercase())
}

pub fn is_valid_lightning_pubkey(input: &str) -> bool {
    validate_lightning_pubkey(input).is_ok()
}

pub fn validate_lightning_pubkey(input: &str) -> Result<(), PubkeyError> {
    let bytes = input.as_bytes();
    if bytes.is_empty() {
        return Err(PubkeyError::Empty);
    }
    if bytes.len() != PUBKEY_HEX_LEN {
        // Tell "04 + 128 hex digits" apart from a plain wrong length.
        if bytes.len() == 130 && bytes.starts_with(b"04") && bytes.iter().all(u8::is_ascii_hexdigit) {
            return Err(PubkeyError::Uncompressed);
        }
        return Err(PubkeyError::WrongLength);
    }
    let mut x: U256 = [0; 4];
    for (i, &b) in bytes[2..].iter().enumerate() {
        let nibble = hex_value(b).ok_or(PubkeyError::NotHex)?;
        let limb = 3 - i / 16;
        x[limb] = (x[limb] << 4) | nibble as u64;
    }
    match (hex_value(bytes[0]), hex_value(bytes[1])) {
        (Some(0), Some(2 | 3)) => {}
        (Some(0), Some(4)) => return Err(PubkeyError::Uncompressed),
        (Some(_), Some(_)) => return Err(PubkeyError::BadPrefix),
        _ => return Err(PubkeyError::NotHex),
    }
    if !lt(&x, &P) {
        return Err(PubkeyError::XNotBelowP);
    }
    let x2 = mul_mod_p(&x, &x);
    let y2 = add_small_mod_p(&mul_mod_p(&x2, &x), 7);
    if !is_square_mod_p(&y2) {
        return Err(PubkeyError::NotOnCurve);
    }
    Ok(())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PubkeyError::*;

    /// Multiples of the generator (SEC 2) and node ids of public Lightning nodes.
    const ON_CURVE: &[&str] = &[
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", // G
        "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5", // 2G
        "02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9", // 3G
        "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f", // ACINQ
        "035e4ff418fc8b5554c5d9eea66396c227bd429a3251c8cbc711002ba215bfc226", // Wallet of Satoshi
        "02f1a8c87607f415c8f22c00593002775941dea48869ce23096af27b0cfdcc0b69", // Kraken
        "030c3f19d742ca294a55c00376b3b355c3c90d61c6b6b39554dbc7ac19b141c14f", // Bitrefill
    ];

    #[test]
    fn accepted_keys() {
        for key in ON_CURVE {
            assert_eq!(validate_lightning_pubkey(key), Ok(()), "{key}");
            assert_eq!(validate_lightning_pubkey(&key.to_ascii_uppercase()), Ok(()), "{key}");
            // The other prefix names the other y of the same x: still on the curve.
            let flipped = if key.starts_with("02") { key.replacen("02", "03", 1) } else { key.replacen("03", "02", 1) };
            assert_eq!(validate_lightning_pubkey(&flipped), Ok(()), "{flipped}");
        }
    }

    #[test]
    fn rejected_keys() {
        let g = ON_CURVE[0];
        let cases: Vec<(String, PubkeyError)> = vec![
            (String::new(), Empty),
            ("02".into(), WrongLength),
            (format!("{g}0"), WrongLength),
            (g[..65].into(), WrongLength),
            (format!(" {}", &g[1..]), NotHex),
            (g.replacen('7', "g", 1), NotHex),
            (g.replacen("02", "04", 1), Uncompressed),
            (format!("04{}", "ab".repeat(64)), Uncompressed),
            (g.replacen("02", "05", 1), BadPrefix),
            (g.replacen("02", "12", 1), BadPrefix),
            (format!("02{}", "f".repeat(64)), XNotBelowP),
            // x = p exactly
            (format!("02{}", "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f"), XNotBelowP),
            // x = 5: 5³ + 7 = 132 is not a square mod p
            (format!("02{:064x}", 5), NotOnCurve),
        ];
        for (input, expected) in &cases {
            assert_eq!(validate_lightning_pubkey(input), Err(*expected), "{input:?}");
        }
    }

    #[test]
    fn about_half_of_prefixed_hex_is_off_curve() {
        // A deterministic xorshift stream of x coordinates.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut on = 0;
        let total = 4000;
        for _ in 0..total {
            let mut key = String::from("03");
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                key.push_str(&format!("{state:016x}"));
            }
            if is_valid_lightning_pubkey(&key) {
                on += 1;
            }
        }
        assert!((1800..2200).contains(&on), "{on} of {total} on the curve");
    }

    #[test]
    fn normalization() {
        let g = ON_CURVE[0];
        assert_eq!(normalize_lightning_pubkey(&g.to_uppercase()).as_deref(), Some(g));
        assert_eq!(normalize_lightning_pubkey(""), None);
        assert_eq!(normalize_lightning_pubkey("   "), None);
        assert_eq!(normalize_lightning_pubkey(&format!(" {g} ")).as_deref(), Some(g));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]
            #[test]
            fn never_panics(s in any::<String>()) {
                let _ = validate_lightning_pubkey(&s);
                let _ = normalize_lightning_pubkey(&s);
            }

            #[test]
            fn hexish_never_panics(s in "0[2-4][0-9a-fA-F]{62,66}") {
                let _ = validate_lightning_pubkey(&s);
            }

            #[test]
            fn normalize_is_idempotent(s in any::<String>()) {
                if let Some(once) = normalize_lightning_pubkey(&s) {
                    prop_assert_eq!(normalize_lightning_pubkey(&once), Some(once));
                }
            }

            #[test]
            fn valid_stays_valid_after_normalize(s in "0[23][0-9a-fA-F]{64}") {
                if is_valid_lightning_pubkey(&s) {
                    let n = normalize_lightning_pubkey(&s).unwrap();
                    prop_assert!(is_valid_lightning_pubkey(&n));
                }
            }
        }
    }
}
