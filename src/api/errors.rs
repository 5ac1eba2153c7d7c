//! The boundary where core errors become PostgreSQL errors: the SQLSTATE is the core's
//! (`CrmError::sqlstate()`), the only table of them.

use daznode_crm_core::CrmError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

/// What a function that can fail returns: pgrx raises the report, with its SQLSTATE, at the
/// boundary (a `#[pg_extern]` returning `Result<_, ErrorReport>`).
pub type Result<T> = std::result::Result<T, ErrorReport>;

/// `CrmError` as a PostgreSQL error report. (`From<CrmError> for ErrorReport` cannot be written
/// here: both types belong to other crates; `.map_err(report)` or `.or_report()` converts.)
pub fn report(err: CrmError) -> ErrorReport {
    ErrorReport::new(error_code(err.sqlstate()), err.to_string(), "daznode_crm")
}

/// An invalid argument (22023).
pub fn invalid(msg: impl Into<String>) -> ErrorReport {
    report(CrmError::InvalidArgument(msg.into()))
}

/// A failure that is ours, not the caller's (XX000): an internal query, or what it returned.
pub fn internal(what: impl std::fmt::Display) -> ErrorReport {
    ErrorReport::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("daznode_crm: {what}"), "daznode_crm")
}

/// Core results as reports.
pub trait OrReport<T> {
    fn or_report(self) -> Result<T>;
}

impl<T> OrReport<T> for std::result::Result<T, CrmError> {
    fn or_report(self) -> Result<T> {
        self.map_err(report)
    }
}

/// PostgreSQL's encoding of a five-character SQLSTATE (MAKE_SQLSTATE in utils/elog.h).
fn error_code(sqlstate: &str) -> PgSqlErrorCode {
    let code = sqlstate.bytes().take(5).enumerate().fold(0i32, |acc, (i, c)| acc + ((((c as i32) - ('0' as i32)) & 0x3F) << (6 * i)));
    let code = PgSqlErrorCode::from(code);
    debug_assert!(code != PgSqlErrorCode::ERRCODE_INTERNAL_ERROR || sqlstate == "XX000", "SQLSTATE {sqlstate} unknown to pgrx");
    code
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    #[pgrx::pg_test]
    fn every_core_sqlstate_maps_to_its_error_code() {
        for (e, code) in [
            (CrmError::InvalidArgument(String::new()), PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE),
            (CrmError::UnknownAppliedStep(String::new()), PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
            (CrmError::OnStandby(String::new()), PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION),
        ] {
            assert_eq!(error_code(e.sqlstate()), code, "{}", e.sqlstate());
        }
    }
}
