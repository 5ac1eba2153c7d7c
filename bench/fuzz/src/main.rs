//! Differential fuzz of `daznode_crm_core`'s two validators.
//!
//! `pubkey::is_valid_lightning_pubkey` is compared with a reference built on k256's SEC1 point
//! decompression, `email::is_valid_email` with a second implementation of the README's email
//! policy, written from its text. Inputs come from a seeded generator (valid values, their
//! mutations, garbage); every core call runs under `catch_unwind`. The markdown report goes to
//! stdout, progress to stderr; the exit code is 1 when the core panicked or disagreed.
//!
//! ```text
//! cargo run --release --manifest-path bench/fuzz/Cargo.toml -- [--n N] [--seed S]
//! ```

mod email;
mod harness;
mod pubkey;
mod report;
mod rng;
mod unicode;

use harness::Subject;
use rng::Rng;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: daznode_crm_fuzz [--n N] [--seed S]
  --n N     inputs per validator (default 10_000_000; underscores allowed)
  --seed S  seed of the input generator (default: from the clock; printed in the report)";

const DEFAULT_N: u64 = 10_000_000;
/// Mixed into the seed so that each validator gets its own stream of inputs.
const PUBKEY_STREAM: u64 = 0x7075_626B_6579_0001;
const EMAIL_STREAM: u64 = 0x656D_6169_6C00_0002;

struct Args {
    n: u64,
    seed: u64,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    harness::install_panic_hook();

    let pubkeys = Subject {
        name: "lightning pubkey",
        core: daznode_crm_core::pubkey::is_valid_lightning_pubkey,
        core_reason: |s| daznode_crm_core::pubkey::validate_lightning_pubkey(s).err().map(|e| e.to_string()),
        reference: pubkey::reference,
    };
    let mut rng = Rng::new(args.seed ^ PUBKEY_STREAM);
    let mut keys = pubkey::KeyGen::new(&mut rng);
    let pubkey_outcome = harness::run(&pubkeys, args.n, || keys.next(&mut rng));

    let emails = Subject {
        name: "email",
        core: daznode_crm_core::email::is_valid_email,
        core_reason: |s| daznode_crm_core::email::validate_email(s).err().map(|e| e.to_string()),
        reference: email::reference,
    };
    let mut rng = Rng::new(args.seed ^ EMAIL_STREAM);
    let email_outcome = harness::run(&emails, args.n, || email::generate(&mut rng));

    let outcomes = [pubkey_outcome, email_outcome];
    report::print(
        args.seed,
        &outcomes,
        &[("Lightning node public key", pubkey::DIFFERENCES), ("Email", email::DIFFERENCES)],
    );
    if outcomes.iter().any(|o| o.disagree > 0 || o.panics > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { n: DEFAULT_N, seed: clock_seed() };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        match flag.as_str() {
            "--n" => args.n = number(argv.next(), "--n")?,
            "--seed" => args.seed = number(argv.next(), "--seed")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// The value of `flag`, a decimal integer that may hold underscores (10_000_000).
fn number(value: Option<String>, flag: &str) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value.replace('_', "").parse().map_err(|_| format!("{flag}: not a number: {value:?}"))
}

fn clock_seed() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
