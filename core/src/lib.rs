//! The pure core of daznode_crm: no pgrx, no PostgreSQL. Everything here is unit-tested with
//! plain `cargo test -p daznode_crm_core`; the extension's `api` layer only adapts it to SQL.

pub mod analytics;
pub mod caller;
pub mod catalog;
pub mod diagnostics;
pub mod disk;
pub mod email;
pub mod error;
pub mod indexes;
pub mod jobs;
pub mod matrix;
pub mod migrations;
pub mod orphans;
pub mod progress;
pub mod pubkey;
pub mod retention;
pub mod schema;
pub mod secp256k1;
pub mod segments;
pub mod sql;
pub mod throttle;

pub use error::CrmError;
