//! The SQL API: thin `#[pg_extern]` wrappers over `daznode_crm_core`, one module per area.

mod errors;
mod migrations;
mod validators;
