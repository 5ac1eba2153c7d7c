-- Maintenance: the materialized views the refresh job knows, its log, and the
-- maintenance role the maintenance functions are granted to.

-- The role that may run the maintenance functions (diagnostics, cleanup, refresh, scheduling).
-- NOLOGIN: grant it to the login that runs them, e.g. GRANT daznode_crm_maintenance TO dba;
-- Roles are cluster-wide, so it survives DROP EXTENSION and is created only if missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'daznode_crm_maintenance') THEN
        CREATE ROLE daznode_crm_maintenance NOLOGIN;
    END IF;
END $$;
GRANT USAGE ON SCHEMA @extschema@ TO daznode_crm_maintenance;

-- Materialized views refresh_crm_materialized_views() refreshes. The two of the guide are
-- built in; more can be registered. builtin rows are created by the extension script, so only
-- the others are dumped (a restore would otherwise insert the built-in ones twice).
CREATE TABLE @extschema@.materialized_view_registry (
    view_name text PRIMARY KEY,
    builtin boolean NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO @extschema@.materialized_view_registry (view_name, builtin) VALUES
    ('crm_private.crm_segments_stats_mv', true),
    ('crm_private.crm_campaigns_analytics_mv', true);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.materialized_view_registry', 'WHERE NOT builtin');

-- Every refresh and every skip, pruned to 30 days; diagnose_crm_performance() reads staleness
-- here. signature: the base tables' change counters when the view was refreshed.
CREATE TABLE @extschema@.materialized_view_refresh_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    view_name text NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms numeric NOT NULL,
    rows bigint,
    mode text NOT NULL,
    skipped_reason text,
    signature text
);
CREATE INDEX materialized_view_refresh_log_view ON @extschema@.materialized_view_refresh_log (view_name, id DESC);

REVOKE ALL ON @extschema@.materialized_view_registry, @extschema@.materialized_view_refresh_log FROM PUBLIC;
GRANT SELECT ON @extschema@.materialized_view_registry, @extschema@.materialized_view_refresh_log TO daznode_crm_maintenance;

-- The maintenance functions: not for PUBLIC (so not for Supabase's anon or authenticated),
-- granted to the maintenance role.
REVOKE ALL ON FUNCTION @extschema@.run_pre_migration_diagnostic(), @extschema@.cleanup_orphaned_records(boolean),
    @extschema@.diagnose_crm_performance(), @extschema@.refresh_crm_materialized_views(boolean),
    @extschema@.register_crm_materialized_view(regclass), @extschema@.unregister_crm_materialized_view(regclass),
    @extschema@.schedule_crm_maintenance(), @extschema@.unschedule_crm_maintenance() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.run_pre_migration_diagnostic(), @extschema@.cleanup_orphaned_records(boolean),
    @extschema@.diagnose_crm_performance(), @extschema@.refresh_crm_materialized_views(boolean),
    @extschema@.register_crm_materialized_view(regclass), @extschema@.unregister_crm_materialized_view(regclass),
    @extschema@.schedule_crm_maintenance(), @extschema@.unschedule_crm_maintenance() TO daznode_crm_maintenance;
REVOKE ALL ON FUNCTION @extschema@.maintenance_yield(), @extschema@.maintenance_runs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.maintenance_yield(), @extschema@.maintenance_runs() TO daznode_crm_maintenance;
GRANT EXECUTE ON FUNCTION @extschema@.migration_lock_timeout(), @extschema@.autovacuum_holds_lock_in_public(),
    @extschema@.set_lock_timeout_for_attempt(int),
    @extschema@.lock_retry_pause(int) TO daznode_crm_maintenance;
-- migrate() and its steps, for the CRM owner (a maintenance member; it refuses anyone else, see
-- require_crm_owner()). The steps are SECURITY INVOKER: these grants add no right on a table.
GRANT EXECUTE ON PROCEDURE @extschema@.migrate(text, boolean) TO daznode_crm_maintenance;
GRANT EXECUTE ON FUNCTION @extschema@.report_progress(text, text, bigint, bigint, timestamptz), @extschema@.pause_for_tests(text) TO daznode_crm_maintenance;
GRANT EXECUTE ON FUNCTION @extschema@.pending_migrations(text), @extschema@.concurrent_index_plan(),
    @extschema@.check_concurrent_indexes_status(), @extschema@.interim_index_sql(text, boolean), @extschema@.step_base_schema(), @extschema@.step_normalize_profiles(),
    @extschema@.step_native_constraints(), @extschema@.step_consolidate_users(),
    @extschema@.step_validate_constraints(), @extschema@.step_indexes(), @extschema@.step_stats_views(),
    @extschema@.lock_down(regclass), @extschema@.require_crm_owner(text), @extschema@.refuse_foreign_object(text),
    @extschema@.make_room_for_view(text, text), @extschema@.legacy_profile_checks(),
    @extschema@.record_step(text, text, timestamptz, jsonb) TO daznode_crm_maintenance;
GRANT SELECT, INSERT, DELETE ON @extschema@.schema_migrations TO daznode_crm_maintenance;
GRANT SELECT, INSERT ON @extschema@.migration_findings TO daznode_crm_maintenance;
GRANT SELECT ON @extschema@.migration_status TO daznode_crm_maintenance;

-- The long maintenance functions, one unit of work per transaction, for pg_cron
-- (core::jobs::STEPPED_JOBS; the units are in src/api/steps.rs). As one SELECT, a paced run of
-- minutes holds one snapshot, and vacuum removes nothing that died meanwhile; in steps no snapshot
-- outlives one unit or one pause. Each unit commits on its own: a cancel or a crash loses the unit
-- it was in, never one already done. No SET clause and SECURITY INVOKER, since a procedure with
-- either may not COMMIT; every name it uses is qualified, and the units it calls are the
-- definer functions, granted like the functions they run.
CREATE TABLE @extschema@.run_in_steps_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job text NOT NULL,
    run_started timestamptz NOT NULL,
    unit text NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    result jsonb
);
CREATE INDEX run_in_steps_log_job ON @extschema@.run_in_steps_log (job, run_started DESC);
REVOKE ALL ON @extschema@.run_in_steps_log FROM PUBLIC;
GRANT SELECT ON @extschema@.run_in_steps_log TO daznode_crm_maintenance;

-- The progress, as report_progress() writes it, but local to each transaction: a run cancelled
-- or failed leaves the session's own application_name, never a progress that is over.
CREATE PROCEDURE @extschema@.run_in_steps(job pg_catalog.text)
LANGUAGE plpgsql AS $fn$
DECLARE
    -- Read before the session is renamed: the factor depends on pg_cron's application_name.
    factor pg_catalog.float8 := @extschema@.maintenance_yield();
    run_started pg_catalog.timestamptz;
    units pg_catalog.text[];
    n pg_catalog.int4;
    progress pg_catalog.text;
    unit_started pg_catalog.timestamptz;
BEGIN
    SELECT b.units, b.progress, b.run_started INTO units, progress, run_started FROM @extschema@.run_in_steps_begin(job) AS b;
    COMMIT;
    n := pg_catalog.cardinality(units);
    FOR i IN 1 .. n LOOP
        unit_started := pg_catalog.clock_timestamp();
        PERFORM pg_catalog.set_config('application_name',
            @extschema@.progress_name(progress, units[i], i OPERATOR(pg_catalog.-) 1, n,
                                      pg_catalog.floor(pg_catalog.date_part('epoch', run_started))::pg_catalog.int8), true);
        PERFORM @extschema@.run_in_steps_unit(job, units[i], run_started);
        COMMIT;
        IF i OPERATOR(pg_catalog.<) n THEN
            PERFORM pg_catalog.set_config('application_name',
                @extschema@.progress_name(progress, 'pause', i, n, pg_catalog.floor(pg_catalog.date_part('epoch', run_started))::pg_catalog.int8), true);
            PERFORM @extschema@.run_in_steps_pause(unit_started, factor);
        END IF;
    END LOOP;
END
$fn$;
REVOKE ALL ON PROCEDURE @extschema@.run_in_steps(pg_catalog.text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.run_in_steps_begin(text), @extschema@.run_in_steps_unit(text, text, timestamptz),
    @extschema@.run_in_steps_pause(timestamptz, float8) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE @extschema@.run_in_steps(pg_catalog.text) TO daznode_crm_maintenance;
GRANT EXECUTE ON FUNCTION @extschema@.run_in_steps_begin(text), @extschema@.run_in_steps_unit(text, text, timestamptz),
    @extschema@.run_in_steps_pause(timestamptz, float8) TO daznode_crm_maintenance;
