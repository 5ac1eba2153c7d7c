//! The boundary where core errors become PostgreSQL errors: the SQLSTATE is the core's
//! (`CrmError::sqlstate()`), the only table of them.

use daznode_crm_core::CrmError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// `CrmError` as a PostgreSQL error report, for functions that return `Result<_, ErrorReport>`
/// (pgrx raises it with its own SQLSTATE).
pub fn report(err: CrmError) -> ErrorReport {
    ErrorReport::new(error_code(err.sqlstate()), err.to_string(), "daznode_crm")
}

/// Raises `err` at once.
pub fn raise(err: CrmError) -> ! {
    report(err).report(PgLogLevel::ERROR);
    unreachable!("an ERROR does not return")
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
