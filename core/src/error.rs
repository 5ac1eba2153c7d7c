//! Errors of the core, as values. The SQL layer maps each to an SQLSTATE (see `sqlstate`).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrmError {
    /// A caller passed an argument outside what is allowed (SQLSTATE 22023).
    InvalidArgument(String),
    /// The ledger records a step this version does not know (SQLSTATE 55000).
    UnknownAppliedStep(String),
    /// A function that writes was called on a hot standby (SQLSTATE 25006); it names itself.
    OnStandby(String),
    /// An object the extension would use belongs to another role than the CRM owner (SQLSTATE
    /// 42501); the message names it.
    ForeignObject(String),
}

impl CrmError {
    /// The SQLSTATE the SQL layer reports.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            CrmError::InvalidArgument(_) => "22023",
            CrmError::UnknownAppliedStep(_) => "55000",
            CrmError::OnStandby(_) => "25006",
            CrmError::ForeignObject(_) => "42501",
        }
    }
}

impl std::fmt::Display for CrmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrmError::InvalidArgument(msg) | CrmError::ForeignObject(msg) => f.write_str(msg),
            CrmError::UnknownAppliedStep(step) => write!(
                f,
                "daznode_crm.schema_migrations records step {step:?}, which this version of daznode_crm does not know: \
                 install the version that applied it (ALTER EXTENSION daznode_crm UPDATE)"
            ),
            CrmError::OnStandby(what) => write!(
                f,
                "daznode_crm: {what} writes, and this server is a hot standby (in recovery): run it on the primary; \
                 a standby runs only the read-only diagnostics"
            ),
        }
    }
}

impl std::error::Error for CrmError {}
