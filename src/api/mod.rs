//! The SQL API: thin `#[pg_extern]` wrappers over `daznode_crm_core`, one module per area.

mod access;
mod analytics;
mod caller;
mod cleanup;
mod counter;
mod diagnostic;
mod errors;
mod migrations;
mod partitions;
mod performance;
mod pg_version;
mod refresh;
mod retention;
mod security;
mod server;
mod spi;
mod steps;
mod throttle;
mod validators;

use pgrx::prelude::*;

extension_sql_file!("../../sql/rates.sql", name = "rates");

extension_sql_file!(
    "../../sql/maintenance.sql",
    name = "maintenance",
    requires = [
        "migrations",
        diagnostic::run_pre_migration_diagnostic,
        cleanup::cleanup_orphaned_records,
        performance::diagnose_crm_performance,
        refresh::refresh_crm_materialized_views,
        refresh::register_crm_materialized_view,
        refresh::unregister_crm_materialized_view,
        refresh::schedule_crm_maintenance,
        refresh::unschedule_crm_maintenance,
        throttle::maintenance_yield,
        throttle::maintenance_runs,
        steps::run_in_steps_begin,
        steps::run_in_steps_unit,
        steps::run_in_steps_pause,
        server::progress_name,
    ],
);

extension_sql_file!(
    "../../sql/access.sql",
    name = "access",
    requires = [
        "migrations",
        "maintenance",
        access::is_admin_user,
        access::is_admin_user_about,
        diagnostic::guide_function_names,
        access::current_user_id,
        access::refresh_segment,
        access::refresh_auto_update_segments,
        caller::admin_roles_changed,
        security::rows_seen_as,
        security::matrix_expectation,
        security::crm_owner_sql,
        security::crm_table_oid,
        security::app_search_path,
    ],
);

extension_sql_file!(
    "../../sql/partitioning.sql",
    name = "partitioning",
    requires = [
        "access",
        partitions::cleanup_old_email_partitions,
        partitions::email_sends_partition_months,
        server::refuse_on_standby_sql,
        server::partition_disk_verdict,
        server::progress_name,
        server::progress_of,
    ],
);

extension_sql_file!(
    "../../sql/analytics.sql",
    name = "analytics",
    requires = ["partitioning", analytics::campaign_counts_sql, analytics::fold_campaign_counts, counter::count_send_changes],
);
