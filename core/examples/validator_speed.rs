//! In-process speed of the validators, without PostgreSQL: `cargo run --release -p
//! daznode_crm_core --example validator_speed`. The SQL-level figures are in bench/.
use daznode_crm_core::{email, pubkey, secp256k1};
use std::time::Instant;

fn main() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let keys: Vec<String> = (0..200_000).map(|_| format!("03{:016x}{:016x}{:016x}{:016x}", next(), next(), next(), next())).collect();
    let start = Instant::now();
    let valid = keys.iter().filter(|k| pubkey::is_valid_lightning_pubkey(k)).count();
    let per = start.elapsed().as_nanos() as f64 / keys.len() as f64;
    println!("pubkey: {per:.0} ns/key ({valid} of {} on the curve)", keys.len());

    let xs: Vec<[u64; 4]> = (0..20_000).map(|_| [next(), next(), next(), next() >> 1]).collect();
    let start = Instant::now();
    let squares = xs.iter().filter(|x| secp256k1::is_square_mod_p(x)).count();
    let fast = start.elapsed().as_nanos() as f64 / xs.len() as f64;
    let start = Instant::now();
    let squares_euler = xs.iter().filter(|x| secp256k1::legendre_euler(x) >= 0).count();
    let euler = start.elapsed().as_nanos() as f64 / xs.len() as f64;
    assert_eq!(squares, squares_euler);
    println!("squareness: jacobi {fast:.0} ns, euler {euler:.0} ns ({:.2}x)", fast / euler);

    let emails: Vec<String> = (0..200_000).map(|i| format!("user.{i}+tag@Example{}.com", i % 97)).collect();
    let start = Instant::now();
    let ok = emails.iter().filter(|e| email::is_valid_email(e)).count();
    let per = start.elapsed().as_nanos() as f64 / emails.len() as f64;
    println!("email: {per:.0} ns/address ({ok} valid)");
}
