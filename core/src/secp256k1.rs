//! Just enough secp256k1 arithmetic to tell whether an x coordinate is on the curve
//! y² = x³ + 7 over F_p: field multiplication and a fast Jacobi symbol.
//!
//! The Jacobi symbol uses "positive divsteps" batched 62 at a time, after Bernstein and Yang,
//! "Fast constant-time gcd computation and modular inversion" (2019), in the variable-time form
//! where runs of zero bits are shifted out at once and several low bits of g are cancelled by
//! adding a multiple of f. Only additions are used (g ← g + w·f), so f and g stay non-negative
//! and the symbol can be tracked from their low bits alone: a shift of g by one bit multiplies
//! the symbol by (2|f), a swap applies quadratic reciprocity, and adding multiples of f leaves
//! it unchanged. The decisions of 62 steps depend only on the low 64 bits of f and g, so they
//! are made on machine words and applied to the 256-bit values as one 2×2 matrix.
//! If the steps have not converged after a generous bound (never seen in testing), the caller
//! falls back to Euler's criterion.

/// 256-bit unsigned integer, little-endian 64-bit limbs.
pub type U256 = [u64; 4];

/// The field prime p = 2^256 − 2^32 − 977.
pub const P: U256 = [0xFFFF_FFFE_FFFF_FC2F, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF];

/// 2^256 mod p.
const TWO_256_MOD_P: u64 = 0x1_0000_03D1;

const ONE: U256 = [1, 0, 0, 0];

/// Steps per batch: the decisions of step k need bits k..k+2 of the words, so 62 fit in 64.
const BATCH: u32 = 62;
/// Batches before giving up; random inputs need about 13 (≈ 753 steps).
const MAX_BATCHES: usize = 32;

pub fn lt(a: &U256, b: &U256) -> bool {
    for i in (0..4).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

fn sub(a: &U256, b: &U256) -> U256 {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d1, b1) = a[i].overflowing_sub(b[i]);
        let (d2, b2) = d1.overflowing_sub(borrow as u64);
        out[i] = d2;
        borrow = b1 | b2;
    }
    out
}

/// Adds a small value, reducing mod p. `a` must be below p.
pub fn add_small_mod_p(a: &U256, small: u64) -> U256 {
    let mut out = *a;
    let mut carry = small;
    for limb in out.iter_mut() {
        let (s, c) = limb.overflowing_add(carry);
        *limb = s;
        carry = c as u64;
        if carry == 0 {
            break;
        }
    }
    if carry != 0 {
        // Wrapped past 2^256: add 2^256 mod p back (cannot wrap again, out is tiny).
        let mut c = TWO_256_MOD_P as u128;
        for limb in out.iter_mut() {
            let s = *limb as u128 + c;
            *limb = s as u64;
            c = s >> 64;
        }
    }
    if !lt(&out, &P) {
        out = sub(&out, &P);
    }
    out
}

/// a·b mod p, for a, b below p.
pub fn mul_mod_p(a: &U256, b: &U256) -> U256 {
    let mut wide = [0u64; 8];
    for i in 0..4 {
        let mut carry: u128 = 0;
        for j in 0..4 {
            let t = a[i] as u128 * b[j] as u128 + wide[i + j] as u128 + carry;
            wide[i + j] = t as u64;
            carry = t >> 64;
        }
        wide[i + 4] = carry as u64;
    }
    reduce_wide(&wide)
}

/// Reduces a 512-bit value mod p, using 2^256 ≡ 0x1000003D1.
fn reduce_wide(w: &[u64; 8]) -> U256 {
    let c = TWO_256_MOD_P as u128;
    let mut out = [0u64; 4];
    let mut carry: u128 = 0;
    for i in 0..4 {
        let t = w[i] as u128 + w[i + 4] as u128 * c + carry;
        out[i] = t as u64;
        carry = t >> 64;
    }
    // carry < 2^34: fold it in once more.
    let mut t = carry * c;
    for limb in out.iter_mut() {
        let s = *limb as u128 + (t as u64) as u128;
        *limb = s as u64;
        t = (t >> 64) + (s >> 64);
    }
    if t != 0 {
        // A final wrap past 2^256 leaves out tiny, so adding c cannot wrap again.
        let mut k = c;
        for limb in out.iter_mut() {
            let s = *limb as u128 + k;
            *limb = s as u64;
            k = s >> 64;
        }
    }
    if !lt(&out, &P) {
        out = sub(&out, &P);
    }
    out
}

/// a^e mod p by square-and-multiply; used for Euler's criterion (slow, simple, independent).
pub fn pow_mod_p(a: &U256, e: &U256) -> U256 {
    let mut result = ONE;
    for i in (0..256).rev() {
        result = mul_mod_p(&result, &result);
        if (e[i / 64] >> (i % 64)) & 1 == 1 {
            result = mul_mod_p(&result, a);
        }
    }
    result
}

/// Legendre symbol of a (below p) by Euler's criterion: a^((p−1)/2).
pub fn legendre_euler(a: &U256) -> i8 {
    let mut e = sub(&P, &ONE);
    for i in 0..4 {
        e[i] = (e[i] >> 1) | if i < 3 { e[i + 1] << 63 } else { 0 };
    }
    let r = pow_mod_p(a, &e);
    if r == [0; 4] {
        0
    } else if r == ONE {
        1
    } else {
        -1
    }
}

/// Whether `a` (below p) is a square mod p (zero counts as a square).
pub fn is_square_mod_p(a: &U256) -> bool {
    match jacobi_var(a, &P) {
        Some(j) => j >= 0,
        None => legendre_euler(a) >= 0,
    }
}

/// Jacobi symbol (a | n) for odd n > 0, or None if the steps did not converge in time
/// (never observed; callers fall back to a slower method).
pub fn jacobi_var(a: &U256, n: &U256) -> Option<i8> {
    debug_assert!(n[0] & 1 == 1, "modulus must be odd");
    let mut f = *n;
    let mut g = *a;
    let mut eta: i64 = -1;
    let mut sign: u64 = 0; // 1 when the symbol is negated
    for _ in 0..MAX_BATCHES {
        if g == [0; 4] {
            return Some(if f == ONE { 1 - 2 * sign as i8 } else { 0 });
        }
        if f == ONE || g == ONE {
            return Some(1 - 2 * sign as i8);
        }
        if f == g {
            return Some(0); // gcd(a, n) = f > 1
        }
        let m = batch(&mut eta, f[0], g[0], &mut sign);
        let nf = lincomb_shift(&f, m.u, &g, m.v);
        let ng = lincomb_shift(&f, m.q, &g, m.r);
        f = nf;
        g = ng;
    }
    None
}

/// Transition matrix of one batch, scaled by 2^BATCH: [f', g']·2^BATCH = [[u, v], [q, r]]·[f, g].
struct Matrix {
    u: u64,
    v: u64,
    q: u64,
    r: u64,
}

/// Runs BATCH positive divsteps on the low words of f and g.
#[inline(never)]
fn batch(eta: &mut i64, mut f: u64, mut g: u64, sign: &mut u64) -> Matrix {
    let (mut u, mut v, mut q, mut r) = (1u64, 0u64, 0u64, 1u64);
    let mut left = BATCH;
    loop {
        let zeros = g.trailing_zeros().min(left);
        g >>= zeros;
        u <<= zeros;
        v <<= zeros;
        *eta -= zeros as i64;
        left -= zeros;
        // Each halving multiplies the symbol by (2|f) = −1 iff f ≡ 3, 5 (mod 8).
        *sign ^= (zeros as u64) & ((f >> 1) ^ (f >> 2)) & 1;
        if left == 0 {
            break;
        }
        // g is odd here. The swap is done with masks: its branch would be unpredictable.
        let swap = (*eta >> 63) as u64; // all ones when eta < 0
        *eta = (*eta ^ swap as i64) - swap as i64;
        // Quadratic reciprocity: (g|f) = −(f|g) iff both are 3 mod 4.
        *sign ^= swap & ((f & g) >> 1) & 1;
        let t = (f ^ g) & swap;
        f ^= t;
        g ^= t;
        let t = (u ^ q) & swap;
        u ^= t;
        q ^= t;
        let t = (v ^ r) & swap;
        v ^= t;
        r ^= t;
        let limit = ((*eta + 1) as u32).min(left).min(6);
        // −1/f mod 2^6 (Hacker's Delight style), enough for up to 6 cancelled bits.
        let neg_inv = f.wrapping_mul(f.wrapping_mul(f).wrapping_sub(2));
        let w = g.wrapping_mul(neg_inv) & ((1u64 << limit) - 1);
        g = g.wrapping_add(w.wrapping_mul(f));
        q += w * u;
        r += w * v;
    }
    Matrix { u, v, q, r }
}

/// (a·x + b·y) / 2^BATCH, exact by construction of the matrix.
#[inline(never)]
fn lincomb_shift(a: &U256, x: u64, b: &U256, y: u64) -> U256 {
    let mut wide = [0u64; 5];
    let mut acc: u128 = 0;
    for i in 0..4 {
        acc += a[i] as u128 * x as u128 + b[i] as u128 * y as u128;
        wide[i] = acc as u64;
        acc >>= 64;
    }
    wide[4] = acc as u64;
    debug_assert_eq!(wide[0] & ((1u64 << BATCH) - 1), 0, "batch not exact");
    let mut out = [0u64; 4];
    for i in 0..4 {
        out[i] = (wide[i] >> BATCH) | (wide[i + 1] << (64 - BATCH));
    }
    debug_assert_eq!(wide[4] >> BATCH, 0, "values grew");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn from_hex(s: &str) -> U256 {
        let s = format!("{s:0>64}");
        let mut out = [0u64; 4];
        for i in 0..4 {
            out[3 - i] = u64::from_str_radix(&s[i * 16..i * 16 + 16], 16).unwrap();
        }
        out
    }

    /// Classic Jacobi symbol on u128, the textbook algorithm, for small moduli.
    fn jacobi_small(mut a: u128, mut n: u128) -> i8 {
        let mut t = 1i8;
        a %= n;
        while a != 0 {
            while a % 2 == 0 {
                a /= 2;
                if n % 8 == 3 || n % 8 == 5 {
                    t = -t;
                }
            }
            std::mem::swap(&mut a, &mut n);
            if a % 4 == 3 && n % 4 == 3 {
                t = -t;
            }
            a %= n;
        }
        if n == 1 {
            t
        } else {
            0
        }
    }

    #[test]
    fn field_mul_known_values() {
        let pm1 = sub(&P, &ONE);
        // (p−1)² = 1 mod p
        assert_eq!(mul_mod_p(&pm1, &pm1), ONE);
        let two = [2, 0, 0, 0];
        let half = from_hex("7fffffffffffffffffffffffffffffffffffffffffffffffffffffff7ffffe18");
        assert_eq!(mul_mod_p(&half, &two), ONE);
        assert_eq!(add_small_mod_p(&pm1, 7), [6, 0, 0, 0]);
    }

    #[test]
    fn small_squares_and_non_squares() {
        // 7 is not a square mod p? Check by both methods, and the squares 1, 4, 9.
        for k in 1u64..200 {
            let a = [k, 0, 0, 0];
            assert_eq!(jacobi_var(&a, &P), Some(legendre_euler(&a)), "k={k}");
            let sq = mul_mod_p(&a, &a);
            assert_eq!(jacobi_var(&sq, &P), Some(1));
        }
        assert_eq!(jacobi_var(&[0; 4], &P), Some(0));
    }

    #[test]
    fn small_moduli_match_textbook() {
        for n in (3u64..400).step_by(2) {
            for a in 0u64..n + 5 {
                let expected = jacobi_small(a as u128, n as u128);
                let got = jacobi_var(&[a, 0, 0, 0], &[n, 0, 0, 0]);
                assert_eq!(got, Some(expected), "({a}|{n})");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn matches_euler_mod_p(limbs in any::<[u64; 4]>()) {
            let a = if lt(&limbs, &P) { limbs } else { sub(&limbs, &P) };
            prop_assert_eq!(jacobi_var(&a, &P), Some(legendre_euler(&a)));
        }

        #[test]
        fn matches_textbook_on_u128(a in any::<u128>(), n in any::<u128>()) {
            let n = n | 1;
            prop_assume!(n > 1);
            let a256 = [a as u64, (a >> 64) as u64, 0, 0];
            let n256 = [n as u64, (n >> 64) as u64, 0, 0];
            prop_assert_eq!(jacobi_var(&a256, &n256), Some(jacobi_small(a, n)));
        }

        #[test]
        fn squares_are_squares(limbs in any::<[u64; 4]>()) {
            let a = if lt(&limbs, &P) { limbs } else { sub(&limbs, &P) };
            let sq = mul_mod_p(&a, &a);
            prop_assert!(is_square_mod_p(&sq));
        }
    }
}
