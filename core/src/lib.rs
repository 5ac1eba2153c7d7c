//! The pure core of daznode_crm: no pgrx, no PostgreSQL. Everything here is unit-tested with
//! plain `cargo test -p daznode_crm_core`; the extension's `api` layer only adapts it to SQL.

pub mod email;
pub mod pubkey;
pub mod secp256k1;
