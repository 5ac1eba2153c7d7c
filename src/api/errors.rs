//! The boundary where core errors become PostgreSQL errors with a precise SQLSTATE.

use daznode_crm_core::CrmError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

pub fn raise(err: CrmError) -> ! {
    let code = match err {
        CrmError::InvalidArgument(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        CrmError::UnknownAppliedStep(_) => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        CrmError::OnStandby(_) => PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
    };
    debug_assert_eq!(err.sqlstate(), sqlstate_of(code));
    ereport!(ERROR, code, err.to_string());
}

fn sqlstate_of(code: PgSqlErrorCode) -> &'static str {
    match code {
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE => "22023",
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE => "55000",
        PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION => "25006",
        _ => "",
    }
}
