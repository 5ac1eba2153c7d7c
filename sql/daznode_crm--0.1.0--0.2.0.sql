-- daznode_crm 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION daznode_crm UPDATE TO '0.2.0'" to load this file. \quit

-- src/api/mod.rs:25
-- The one definition of each count and rate of an email campaign (README "Rates"). Every view
-- that counts sends (crm_campaign_stats, crm_campaigns_analytics_mv) is written with these, and
-- nothing else defines them. Counts come from the *_at timestamps, since webhooks overwrite
-- status: a clicked send counts as opened, a bounced one as neither.
--
--   sent       sent_at is set
--   delivered  sent, not bounced, not failed
--   opened     not bounced, and opened_at or clicked_at set (a click implies an open)
--   clicked    not bounced, and clicked_at set
--   bounced    bounced_at set
--   failed     status 'failed'
--   open_rate = opened / delivered, click_rate = clicked / delivered,
--   bounce_rate = bounced / sent, delivery_rate = delivered / sent; in percent, 2 decimals,
--   NULL when the divisor is 0.
--
-- SQL functions with a plain RETURN body, IMMUTABLE, no SET clause: the planner inlines them, so
-- an aggregate over 10M sends costs what the bare expressions cost.
CREATE FUNCTION @extschema@.send_is_sent(sent_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN sent_at IS NOT NULL;
CREATE FUNCTION @extschema@.send_is_delivered(sent_at timestamptz, bounced_at timestamptz, status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN sent_at IS NOT NULL AND bounced_at IS NULL AND status <> 'failed';
CREATE FUNCTION @extschema@.send_is_opened(opened_at timestamptz, clicked_at timestamptz, bounced_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN bounced_at IS NULL AND (opened_at IS NOT NULL OR clicked_at IS NOT NULL);
CREATE FUNCTION @extschema@.send_is_clicked(clicked_at timestamptz, bounced_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN bounced_at IS NULL AND clicked_at IS NOT NULL;
CREATE FUNCTION @extschema@.send_is_bounced(bounced_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN bounced_at IS NOT NULL;
CREATE FUNCTION @extschema@.send_is_failed(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN status = 'failed';

CREATE FUNCTION @extschema@.percent_of(part bigint, whole bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN round(100.0 * part / nullif(whole, 0), 2);
CREATE FUNCTION @extschema@.open_rate(opened bigint, delivered bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN @extschema@.percent_of(opened, delivered);
CREATE FUNCTION @extschema@.click_rate(clicked bigint, delivered bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN @extschema@.percent_of(clicked, delivered);
CREATE FUNCTION @extschema@.bounce_rate(bounced bigint, sent bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN @extschema@.percent_of(bounced, sent);
CREATE FUNCTION @extschema@.delivery_rate(delivered bigint, sent bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN @extschema@.percent_of(delivered, sent);
-- Pure arithmetic on the caller's own values: for everyone (the views' readers call them),
-- granted here explicitly rather than left to the default.
GRANT EXECUTE ON FUNCTION @extschema@.send_is_sent(timestamptz), @extschema@.send_is_delivered(timestamptz, timestamptz, text),
    @extschema@.send_is_opened(timestamptz, timestamptz, timestamptz), @extschema@.send_is_clicked(timestamptz, timestamptz),
    @extschema@.send_is_bounced(timestamptz), @extschema@.send_is_failed(text), @extschema@.percent_of(bigint, bigint),
    @extschema@.open_rate(bigint, bigint), @extschema@.click_rate(bigint, bigint), @extschema@.bounce_rate(bigint, bigint),
    @extschema@.delivery_rate(bigint, bigint) TO PUBLIC;

-- src/api/security.rs:182
-- daznode_crm::api::security::app_search_path
CREATE  FUNCTION "app_search_path"() RETURNS TEXT /* String */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'app_search_path_wrapper';

-- src/api/analytics.rs:15
-- daznode_crm::api::analytics::campaign_counts_sql
CREATE  FUNCTION "campaign_counts_sql"(
	"part" TEXT /* & str */
) RETURNS TEXT /* Result < String > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'campaign_counts_sql_wrapper';

-- src/api/migrations.rs:175
-- daznode_crm::api::migrations::check_concurrent_indexes_status
CREATE  FUNCTION "check_concurrent_indexes_status"() RETURNS TABLE (
	"index_name" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"status" TEXT,  /* String */
	"detail" TEXT,  /* Option < String > */
	"definition" TEXT  /* String */
)
STRICT STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'check_concurrent_indexes_status_wrapper';

-- src/api/partitions.rs:14
-- daznode_crm::api::partitions::cleanup_old_email_partitions
CREATE  FUNCTION "cleanup_old_email_partitions"(
	"retention" interval DEFAULT '12 months', /* Option < Interval > */
	"premake" INT DEFAULT 3, /* Option < i32 > */
	"dry_run" bool DEFAULT false, /* Option < bool > */
	"archive" bool DEFAULT false, /* Option < bool > */
	"force" bool DEFAULT false /* Option < bool > */
) RETURNS TABLE (
	"partition_name" TEXT,  /* Option < String > */
	"range_start" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"range_end" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"action" TEXT,  /* String */
	"rows" bigint  /* Option < i64 > */
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cleanup_old_email_partitions_wrapper';

-- src/api/cleanup.rs:17
-- daznode_crm::api::cleanup::cleanup_orphaned_records
CREATE  FUNCTION "cleanup_orphaned_records"(
	"dry_run" bool DEFAULT false /* bool */
) RETURNS TABLE (
	"table_name" TEXT,  /* String */
	"column_name" TEXT,  /* String */
	"action" TEXT,  /* String */
	"rows" bigint  /* i64 */
)
STRICT VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cleanup_orphaned_records_wrapper';

-- src/api/migrations.rs:167
-- daznode_crm::api::migrations::concurrent_index_plan
CREATE  FUNCTION "concurrent_index_plan"() RETURNS SETOF TEXT /* String */
STRICT STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'concurrent_index_plan_wrapper';

-- src/api/security.rs:69
-- daznode_crm::api::security::crm_owner
CREATE  FUNCTION "crm_owner"() RETURNS oid /* Option < pg_sys :: Oid > */
STRICT STABLE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'crm_owner_sql_wrapper';

-- src/api/security.rs:119
-- daznode_crm::api::security::crm_table_oid
CREATE  FUNCTION "crm_table_oid"(
	"name" TEXT /* & str */
) RETURNS oid /* Option < pg_sys :: Oid > */
STRICT STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'crm_table_oid_wrapper';

-- src/api/migrations.rs:89
-- daznode_crm::api::migrations::crm_tables
CREATE  FUNCTION "crm_tables"() RETURNS TEXT[] /* Vec < String > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'crm_tables_wrapper';

-- src/api/access.rs:18
-- daznode_crm::api::access::current_user_id
CREATE  FUNCTION "current_user_id"() RETURNS uuid /* Option < pgrx :: Uuid > */
STRICT STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'current_user_id_wrapper';

-- src/api/performance.rs:19
-- daznode_crm::api::performance::diagnose_crm_performance
CREATE  FUNCTION "diagnose_crm_performance"() RETURNS TABLE (
	"area" TEXT,  /* String */
	"object" TEXT,  /* String */
	"metric" TEXT,  /* String */
	"value" TEXT,  /* String */
	"status" TEXT,  /* String */
	"recommendation" TEXT  /* Option < String > */
)
STRICT STABLE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'diagnose_crm_performance_wrapper';

-- src/api/partitions.rs:44
-- daznode_crm::api::partitions::email_sends_partition_months
CREATE  FUNCTION "email_sends_partition_months"(
	"first" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"now" timestamp with time zone /* TimestampWithTimeZone */
) RETURNS TABLE (
	"partition_name" TEXT,  /* String */
	"range_start" timestamp with time zone,  /* TimestampWithTimeZone */
	"range_end" timestamp with time zone  /* TimestampWithTimeZone */
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'email_sends_partition_months_wrapper';

-- src/api/analytics.rs:24
-- daznode_crm::api::analytics::fold_campaign_counts
CREATE  FUNCTION "fold_campaign_counts"() RETURNS bigint /* Result < i64 > */
STRICT VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fold_campaign_counts_wrapper';

-- src/api/diagnostic.rs:30
-- daznode_crm::api::diagnostic::guide_api
CREATE  FUNCTION "guide_api"() RETURNS TABLE (
	"name" TEXT,  /* & '_ str */
	"target" TEXT,  /* & '_ str */
	"callable_by" TEXT  /* & '_ str */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'guide_api_wrapper';

-- src/api/diagnostic.rs:23
-- daznode_crm::api::diagnostic::guide_function_names
CREATE  FUNCTION "guide_function_names"() RETURNS TEXT[] /* Vec < & '_ str > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'guide_function_names_wrapper';

-- src/api/migrations.rs:135
-- daznode_crm::api::migrations::interim_index_sql
CREATE  FUNCTION "interim_index_sql"(
	"index_name" TEXT, /* & str */
	"concurrently" bool /* bool */
) RETURNS TEXT /* Result < Option < String > > */
STRICT STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'interim_index_sql_wrapper';

-- src/api/access.rs:34
-- daznode_crm::api::access::is_admin_user
CREATE  FUNCTION "is_admin_user"(
	"allowed_roles" TEXT[] DEFAULT NULL /* :: std :: option :: Option < pgrx :: Array < '_, & '_ str > > */
) RETURNS bool /* bool */
STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'is_admin_user_wrapper';

-- src/api/access.rs:47
-- daznode_crm::api::access::is_admin_user_about
CREATE  FUNCTION "is_admin_user_about"(
	"user_id" uuid DEFAULT NULL /* Option < pgrx :: Uuid > */
) RETURNS bool /* Option < bool > */
STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'is_admin_user_about_wrapper';

-- src/api/throttle.rs:54
-- daznode_crm::api::throttle::maintenance_runs
CREATE  FUNCTION "maintenance_runs"() RETURNS INT /* i32 */
STRICT VOLATILE PARALLEL RESTRICTED
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'maintenance_runs_wrapper';

-- src/api/throttle.rs:45
-- daznode_crm::api::throttle::maintenance_yield
CREATE  FUNCTION "maintenance_yield"() RETURNS double precision /* Result < f64 > */
STRICT STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'maintenance_yield_wrapper';

-- src/api/security.rs:98
-- daznode_crm::api::security::matrix_expectation
CREATE  FUNCTION "matrix_expectation"(
	"table_name" TEXT, /* & str */
	"requester" TEXT /* & str */
) RETURNS TEXT /* Option < String > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'matrix_expectation_wrapper';

-- src/api/migrations.rs:12
-- daznode_crm::api::migrations::migration_steps
CREATE  FUNCTION "migration_steps"() RETURNS TABLE (
	"step" TEXT,  /* String */
	"target" TEXT,  /* String */
	"since" TEXT,  /* String */
	"function_name" TEXT,  /* String */
	"summary" TEXT,  /* String */
	"is_procedure" bool  /* bool */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migration_steps_wrapper';

-- src/api/validators.rs:63
-- requires:
--   is_valid_email
--   email_validation_error
--   normalize_email
--   is_valid_lightning_pubkey
--   lightning_pubkey_validation_error
--   normalize_lightning_pubkey


ALTER FUNCTION @extschema@.is_valid_email(text) LEAKPROOF;
ALTER FUNCTION @extschema@.email_validation_error(text) LEAKPROOF;
ALTER FUNCTION @extschema@.normalize_email(text) LEAKPROOF;
ALTER FUNCTION @extschema@.is_valid_lightning_pubkey(text) LEAKPROOF;
ALTER FUNCTION @extschema@.lightning_pubkey_validation_error(text) LEAKPROOF;
ALTER FUNCTION @extschema@.normalize_lightning_pubkey(text) LEAKPROOF;

-- src/api/server.rs:63
-- daznode_crm::api::server::partition_disk_verdict
CREATE  FUNCTION "partition_disk_verdict"() RETURNS TEXT /* Option < String > */
STRICT VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'partition_disk_verdict_wrapper';

-- src/api/migrations.rs:26
-- daznode_crm::api::migrations::pending_migrations
CREATE  FUNCTION "pending_migrations"(
	"target" TEXT DEFAULT 'latest' /* Option < & str > */
) RETURNS TABLE (
	"step" TEXT,  /* String */
	"target" TEXT,  /* String */
	"since" TEXT,  /* String */
	"function_name" TEXT,  /* String */
	"summary" TEXT,  /* String */
	"is_procedure" bool  /* bool */
)
STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pending_migrations_wrapper';

-- src/api/migrations.rs:54
-- daznode_crm::api::migrations::planned_indexes
CREATE  FUNCTION "planned_indexes"() RETURNS TABLE (
	"index_name" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"is_unique" bool,  /* bool */
	"definition" TEXT,  /* String */
	"purpose" TEXT,  /* String */
	"create_sql" TEXT,  /* String */
	"blocker_sql" TEXT,  /* Option < String > */
	"duplicates_sql" TEXT  /* Option < String > */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'planned_indexes_wrapper';

-- src/api/access.rs:26
-- daznode_crm::api::access::profile_owner_columns
CREATE  FUNCTION "profile_owner_columns"() RETURNS TEXT[] /* Vec < & '_ str > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'profile_owner_columns_wrapper';

-- src/api/server.rs:80
-- daznode_crm::api::server::progress_name
CREATE  FUNCTION "progress_name"(
	"operation" TEXT, /* & str */
	"phase" TEXT, /* & str */
	"done" bigint, /* i64 */
	"estimated" bigint, /* i64 */
	"started_epoch" bigint /* i64 */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'progress_name_wrapper';

-- src/api/server.rs:88
-- daznode_crm::api::server::progress_of
CREATE  FUNCTION "progress_of"(
	"application_name" TEXT /* Option < & str > */
) RETURNS TABLE (
	"operation" TEXT,  /* String */
	"phase" TEXT,  /* String */
	"rows_done" bigint,  /* i64 */
	"rows_estimated" bigint,  /* Option < i64 > */
	"started_epoch" bigint,  /* i64 */
	"end_epoch" bigint  /* Option < i64 > */
)
VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'progress_of_wrapper';

-- src/api/access.rs:138
-- daznode_crm::api::access::refresh_auto_update_segments
CREATE  FUNCTION "refresh_auto_update_segments"() RETURNS TABLE (
	"segment_id" uuid,  /* pgrx :: Uuid */
	"name" TEXT,  /* String */
	"added" bigint,  /* i64 */
	"removed" bigint,  /* i64 */
	"members" bigint,  /* i64 */
	"problem" TEXT  /* Option < String > */
)
STRICT VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'refresh_auto_update_segments_wrapper';

-- src/api/refresh.rs:14
-- daznode_crm::api::refresh::refresh_crm_materialized_views
CREATE  FUNCTION "refresh_crm_materialized_views"(
	"concurrently" bool DEFAULT true /* bool */
) RETURNS TABLE (
	"view_name" TEXT,  /* String */
	"mode" TEXT,  /* String */
	"duration_ms" double precision,  /* f64 */
	"rows" bigint,  /* Option < i64 > */
	"skipped_reason" TEXT  /* Option < String > */
)
STRICT VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'refresh_crm_materialized_views_wrapper';

-- src/api/access.rs:61
-- daznode_crm::api::access::refresh_segment
CREATE  FUNCTION "refresh_segment"(
	"segment_id" uuid /* pgrx :: Uuid */
) RETURNS TABLE (
	"added" bigint,  /* i64 */
	"removed" bigint,  /* i64 */
	"members" bigint  /* i64 */
)
STRICT VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'refresh_segment_wrapper';

-- src/api/server.rs:29
-- daznode_crm::api::server::refuse_on_standby
CREATE  FUNCTION "refuse_on_standby"(
	"what" TEXT /* & str */
) RETURNS VOID /* Result < () > */
STRICT VOLATILE PARALLEL SAFE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'refuse_on_standby_sql_wrapper';

-- src/api/refresh.rs:109
-- daznode_crm::api::refresh::register_crm_materialized_view

CREATE FUNCTION @extschema@.register_crm_materialized_view(view regclass) RETURNS text
VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'register_crm_materialized_view_wrapper';

-- src/api/security.rs:77
-- daznode_crm::api::security::rows_seen_as
CREATE  FUNCTION "rows_seen_as"(
	"role" oid, /* pg_sys :: Oid */
	"table_name" TEXT, /* & str */
	"claims" TEXT, /* Option < & str > */
	"cap" bigint /* i64 */
) RETURNS bigint /* Result < i64 > */
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rows_seen_as_wrapper';

-- src/api/steps.rs:29
-- daznode_crm::api::steps::run_in_steps_begin
CREATE  FUNCTION "run_in_steps_begin"(
	"job_name" TEXT /* Option < & str > */
) RETURNS TABLE (
	"units" TEXT[],  /* Vec < String > */
	"progress" TEXT,  /* String */
	"run_started" timestamp with time zone  /* TimestampWithTimeZone */
)
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'run_in_steps_begin_wrapper';

-- src/api/steps.rs:101
-- daznode_crm::api::steps::run_in_steps_pause
CREATE  FUNCTION "run_in_steps_pause"(
	"unit_started" timestamp with time zone, /* TimestampWithTimeZone */
	"factor" double precision /* f64 */
) RETURNS VOID /* Result < () > */
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'run_in_steps_pause_wrapper';

-- src/api/steps.rs:69
-- daznode_crm::api::steps::run_in_steps_unit
CREATE  FUNCTION "run_in_steps_unit"(
	"job_name" TEXT, /* & str */
	"unit" TEXT, /* & str */
	"run_started" timestamp with time zone /* TimestampWithTimeZone */
) RETURNS bigint /* Result < i64 > */
STRICT VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'run_in_steps_unit_wrapper';

-- src/api/diagnostic.rs:38
-- daznode_crm::api::diagnostic::run_pre_migration_diagnostic
CREATE  FUNCTION "run_pre_migration_diagnostic"() RETURNS TABLE (
	"check_name" TEXT,  /* String */
	"status" TEXT,  /* String */
	"details" TEXT,  /* String */
	"affected_rows" bigint,  /* Option < i64 > */
	"recommendation" TEXT  /* Option < String > */
)
STRICT STABLE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'run_pre_migration_diagnostic_wrapper';

-- src/api/refresh.rs:160
-- daznode_crm::api::refresh::schedule_crm_maintenance
CREATE  FUNCTION "schedule_crm_maintenance"() RETURNS TABLE (
	"job_name" TEXT,  /* String */
	"schedule" TEXT,  /* String */
	"command" TEXT,  /* String */
	"action" TEXT  /* String */
)
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'schedule_crm_maintenance_wrapper';

-- src/api/migrations.rs:83
-- daznode_crm::api::migrations::small_table_rows
CREATE  FUNCTION "small_table_rows"() RETURNS double precision /* f64 */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'small_table_rows_wrapper';

-- src/api/migrations.rs:193
-- requires:
--   rates
--   migration_steps
--   pending_migrations
--   planned_indexes
--   small_table_rows
--   crm_tables
--   interim_index_sql
--   concurrent_index_plan
--   check_concurrent_indexes_status

-- Schema migrations of the DazNode CRM: the ledger, one function per step, and the
-- procedure that applies pending steps, one transaction per step.
-- The steps change application tables in schema public; they run only when a DBA calls
-- daznode_crm.migrate(): CREATE EXTENSION itself never creates or alters application tables.

-- The ledger: which steps ran, when, and what they reported. An extension config table, so
-- pg_dump keeps its rows and a restored database knows what was applied.
CREATE TABLE @extschema@.schema_migrations (
    step text PRIMARY KEY,
    target text NOT NULL,
    extension_version text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration_ms numeric NOT NULL,
    applied_by text NOT NULL DEFAULT current_user,
    result jsonb NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.schema_migrations', '');

-- What the steps found and left for a human: case collisions, invalid values, users rows that
-- conflict with their profile, constraints that could not be validated. Never deleted by us.
CREATE TABLE @extschema@.migration_findings (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step text NOT NULL,
    table_name text NOT NULL,
    row_id text,
    kind text NOT NULL,
    detail text NOT NULL,
    found_at timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.migration_findings', '');
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('@extschema@.migration_findings', 'id'), '');
CREATE INDEX migration_findings_step_kind ON @extschema@.migration_findings (step, kind);

REVOKE ALL ON @extschema@.schema_migrations, @extschema@.migration_findings FROM PUBLIC;

-- The trust model (README "Security"): whatever the extension creates in public gets explicit
-- privileges, never the defaults (Supabase's default privileges give anon, authenticated and
-- service_role ALL on every new table). lock_down() revokes every grant on `rel` but its
-- owner's, and enables row-level security on a table with no policy, so that only its owner
-- and roles that bypass RLS read it; callers then grant what the role matrix says.
CREATE FUNCTION @extschema@.lock_down(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    g record;
BEGIN
    EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', rel);
    FOR g IN
        SELECT DISTINCT a.grantee::regrole::text AS grantee
        FROM pg_class c, aclexplode(c.relacl) AS a
        WHERE c.oid = rel AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %s', rel, g.grantee);
    END LOOP;
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = rel) IN ('r', 'p') THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', rel);
    END IF;
END
$fn$;

-- Statements that change application tables run as their owner, so that the owner's triggers,
-- defaults and casts run with the owner's rights and nobody else's: a superuser (or any other
-- role) calling migrate() or the partition maintenance on tables a non-superuser owns is
-- refused with 42501 and told to SET ROLE to the owner.
CREATE FUNCTION @extschema@.require_crm_owner(what text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    owner oid := @extschema@.crm_owner();
BEGIN
    IF owner IS NOT NULL AND owner <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)
       AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = owner) THEN
        RAISE EXCEPTION 'daznode_crm: % runs as the owner of the CRM tables, %, not as %', what, owner::regrole, current_user
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The owner''s triggers and defaults run with the rights of whoever changes its tables; daznode_crm never lends them more.',
                  HINT = format('SET ROLE %s; (a member of daznode_crm_maintenance), then again.', owner::regrole);
    END IF;
END
$fn$;

-- An object the extension means to create, found already made by another role than the CRM
-- owner, stops the step: it is never adopted (its owner could redefine it later).
CREATE FUNCTION @extschema@.refuse_foreign_object(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rel regclass := to_regclass('public.' || quote_ident(name));
    owner oid;
BEGIN
    IF rel IS NULL THEN
        RETURN;
    END IF;
    SELECT c.relowner INTO owner FROM pg_class c WHERE c.oid = rel;
    IF owner IS DISTINCT FROM coalesce(@extschema@.crm_owner(), (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)) THEN
        RAISE EXCEPTION 'daznode_crm: % already exists and belongs to %, not to the CRM owner; daznode_crm never adopts an object it did not create', rel, owner::regrole
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Find out who made it and why; drop or rename it (ALTER ... %s RENAME TO ...), then CALL daznode_crm.migrate() again.', rel);
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.lock_down(regclass), @extschema@.require_crm_owner(text), @extschema@.refuse_foreign_object(text) FROM PUBLIC;

-- Progress of a long operation into this session's application_name (progress_name(), the
-- one format; operation_progress reads it back from any session).
CREATE FUNCTION @extschema@.report_progress(operation text, phase text, done bigint, estimated bigint, started timestamptz) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pg_catalog.set_config('application_name',
        @extschema@.progress_name(operation, phase, done, estimated, floor(EXTRACT(epoch FROM started))::bigint), false);
END
$fn$;

-- For the crash tests only: with daznode_crm.pause_at set to `phase` (PGOPTIONS of the test),
-- the operation sleeps there, so that a test can crash the server at that exact point. A no-op
-- otherwise.
CREATE FUNCTION @extschema@.pause_for_tests(phase text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF pg_catalog.current_setting('daznode_crm.pause_at', true) = phase THEN
        RAISE NOTICE 'daznode_crm: pausing at % (daznode_crm.pause_at)', phase;
        PERFORM pg_catalog.pg_sleep(300);
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.report_progress(text, text, bigint, bigint, timestamptz), @extschema@.pause_for_tests(text) FROM PUBLIC;

-- 0001: the CRM tables that do not exist yet, in the shape the app uses. On an empty database
-- that is all of them; on a legacy one, none. Later steps bring both to the same final shape.
CREATE FUNCTION @extschema@.step_base_schema() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    created text[] := '{}';
    t text;
BEGIN
    IF to_regclass('public.profiles') IS NULL THEN
        CREATE TABLE public.profiles (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            email text NOT NULL UNIQUE,
            nom text NOT NULL,
            prenom text NOT NULL,
            pubkey text,
            compte_x text,
            compte_nostr text,
            compte_telegram text,
            t4g_tokens int DEFAULT 1,
            node_id text,
            lightning_pubkey text,
            node_alias text,
            node_network text,
            dazbox_serial text,
            last_node_sync timestamptz,
            node_stats jsonb DEFAULT '{}',
            auth_method text DEFAULT 'password',
            phone text,
            phone_verified bool DEFAULT false,
            address text,
            ville text,
            code_postal text,
            pays text DEFAULT 'France',
            profile_score int DEFAULT 0,
            settings jsonb DEFAULT '{}',
            email_verified bool DEFAULT false,
            verified_at timestamptz,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        );
        created := created || 'profiles'::text;
    END IF;
    IF to_regclass('public.admin_roles') IS NULL THEN
        CREATE TABLE public.admin_roles (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid NOT NULL UNIQUE REFERENCES public.profiles (id) ON DELETE CASCADE,
            role text CHECK (role IN ('super_admin', 'admin', 'moderator', 'support')),
            permissions jsonb DEFAULT '[]',
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        );
        created := created || 'admin_roles'::text;
    END IF;
    IF to_regclass('public.orders') IS NULL THEN
        CREATE TABLE public.orders (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid REFERENCES public.profiles (id),
            product_type text,
            plan text,
            amount bigint,
            payment_method text,
            payment_status text,
            payment_hash text,
            metadata jsonb,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        );
        created := created || 'orders'::text;
    END IF;
    IF to_regclass('public.subscriptions') IS NULL THEN
        CREATE TABLE public.subscriptions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid REFERENCES public.profiles (id),
            plan_id text,
            status text,
            start_date timestamptz,
            end_date timestamptz,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        );
        created := created || 'subscriptions'::text;
    END IF;
    IF to_regclass('public.crm_customer_segments') IS NULL THEN
        CREATE TABLE public.crm_customer_segments (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name varchar(255) NOT NULL,
            description text,
            criteria jsonb NOT NULL,
            auto_update bool DEFAULT true,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        );
        created := created || 'crm_customer_segments'::text;
    END IF;
    IF to_regclass('public.crm_customer_segment_members') IS NULL THEN
        CREATE TABLE public.crm_customer_segment_members (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            segment_id uuid REFERENCES public.crm_customer_segments (id) ON DELETE CASCADE,
            customer_id uuid REFERENCES public.profiles (id) ON DELETE CASCADE,
            added_at timestamptz DEFAULT now(),
            UNIQUE (segment_id, customer_id)
        );
        created := created || 'crm_customer_segment_members'::text;
    END IF;
    IF to_regclass('public.crm_email_templates') IS NULL THEN
        CREATE TABLE public.crm_email_templates (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name varchar(255) NOT NULL,
            subject varchar(255),
            content text NOT NULL,
            variables jsonb DEFAULT '{}',
            category varchar(100),
            is_active bool DEFAULT true,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        );
        created := created || 'crm_email_templates'::text;
    END IF;
    IF to_regclass('public.crm_email_campaigns') IS NULL THEN
        CREATE TABLE public.crm_email_campaigns (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name varchar(255) NOT NULL,
            subject varchar(255) NOT NULL,
            template_id uuid REFERENCES public.crm_email_templates (id) ON DELETE SET NULL,
            content text NOT NULL,
            segment_ids uuid[] DEFAULT '{}',
            status varchar(50) DEFAULT 'draft' CHECK (status IN ('draft', 'scheduled', 'sending', 'sent', 'cancelled')),
            scheduled_at timestamptz,
            sent_at timestamptz,
            stats jsonb DEFAULT '{}',
            created_by uuid REFERENCES public.profiles (id),
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        );
        created := created || 'crm_email_campaigns'::text;
    END IF;
    IF to_regclass('public.crm_email_sends') IS NULL THEN
        CREATE TABLE public.crm_email_sends (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            campaign_id uuid REFERENCES public.crm_email_campaigns (id) ON DELETE CASCADE,
            customer_id uuid REFERENCES public.profiles (id) ON DELETE CASCADE,
            email varchar(255) NOT NULL,
            status varchar(50) DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'delivered', 'opened', 'clicked', 'bounced', 'failed')),
            sent_at timestamptz,
            opened_at timestamptz,
            clicked_at timestamptz,
            bounced_at timestamptz,
            error_message text,
            metadata jsonb DEFAULT '{}'
        );
        created := created || 'crm_email_sends'::text;
    END IF;

    IF to_regprocedure('public.update_updated_at_column()') IS NULL THEN
        -- The body is the app's, byte for byte, so that both paths dump the same function.
        CREATE FUNCTION public.update_updated_at_column() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END $fn$;
        created := created || 'update_updated_at_column()'::text;
    END IF;
    -- The guide's updated_at triggers, unless the table already has one of its own (real
    -- databases name theirs otherwise): a second trigger would only do the same work twice.
    FOR t IN SELECT * FROM unnest(ARRAY['crm_customer_segments', 'crm_email_templates', 'crm_email_campaigns']) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger g
                       WHERE g.tgrelid = format('public.%I', t)::regclass AND NOT g.tgisinternal
                         AND (g.tgname = format('update_%s_updated_at', t) OR g.tgfoid = 'public.update_updated_at_column()'::regprocedure)) THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON public.%I FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column()',
                           format('update_%s_updated_at', t), t);
        END IF;
    END LOOP;

    RETURN jsonb_build_object('created', to_jsonb(created), 'created_count', cardinality(created));
END
$step$;

-- 0002: canonical values before constraints. Emails are trimmed and lower-cased unless the
-- result is shared with another profile (those are reported for a human, never merged); pubkeys
-- are lower-cased and '' becomes NULL. A value that would still be invalid is left as it is and
-- reported with its id. Only rows that change are touched (row locks, no table lock).
CREATE FUNCTION @extschema@.step_normalize_profiles() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    n_email_collisions bigint;
    n_emails bigint;
    n_empty_pubkeys bigint;
    n_pubkeys bigint;
    n_invalid_emails bigint;
    n_invalid_pubkeys bigint;
    n_pubkey_duplicates bigint;
BEGIN
    -- The app's triggers fire on the rows changed here: they see the app's search_path (behind
    -- pg_catalog), not ours, so that their unqualified calls resolve as in the app.
    PERFORM pg_catalog.set_config('search_path', @extschema@.app_search_path(), true);
    -- Duplicates are those of the unique planned index on the normalized email (one definition,
    -- in Rust: PlannedIndex::duplicate_groups_sql, which the diagnostic counts too).
    EXECUTE format('CREATE TEMP TABLE email_groups ON COMMIT DROP AS SELECT key AS normalized, n, ids FROM (%s) AS d',
                   (SELECT p.duplicates_sql FROM @extschema@.planned_indexes() AS p WHERE p.index_name = 'profiles_email_normalized_key'));

    INSERT INTO @extschema@.migration_findings (step, table_name, row_id, kind, detail)
    SELECT '0002_normalize_profiles', 'public.profiles', id::text, 'email_case_collision',
           format('email %s normalizes to %s, like %s other profile(s): merge or change them, then run the constraint and index steps again',
                  p.email, g.normalized, g.n - 1)
    FROM email_groups g JOIN public.profiles p ON p.id = ANY (g.ids);
    GET DIAGNOSTICS n_email_collisions = ROW_COUNT;
    RAISE NOTICE 'daznode_crm: % profiles share an email once normalized (reported, not changed)', n_email_collisions;

    UPDATE public.profiles p
    SET email = @extschema@.normalize_email(p.email)
    WHERE p.email IS DISTINCT FROM @extschema@.normalize_email(p.email)
      AND @extschema@.is_valid_email(@extschema@.normalize_email(p.email))
      AND NOT EXISTS (SELECT 1 FROM email_groups g WHERE g.normalized = @extschema@.normalize_email(p.email));
    GET DIAGNOSTICS n_emails = ROW_COUNT;
    RAISE NOTICE 'daznode_crm: % emails normalized', n_emails;

    UPDATE public.profiles SET pubkey = NULL WHERE btrim(pubkey) = '';
    GET DIAGNOSTICS n_empty_pubkeys = ROW_COUNT;
    -- Only keys that stay well-formed hex: an update must satisfy the legacy CHECK still in place.
    UPDATE public.profiles
    SET pubkey = @extschema@.normalize_lightning_pubkey(pubkey)
    WHERE pubkey IS DISTINCT FROM @extschema@.normalize_lightning_pubkey(pubkey)
      AND @extschema@.normalize_lightning_pubkey(pubkey) ~ '^[0-9a-f]{66}$';
    GET DIAGNOSTICS n_pubkeys = ROW_COUNT;
    RAISE NOTICE 'daznode_crm: % empty pubkeys set to NULL, % pubkeys lower-cased', n_empty_pubkeys, n_pubkeys;

    -- Each finding gives the one statement that fixes its row. Step 0003's NOT VALID checks
    -- apply to every row an UPDATE writes, so a row whose email and pubkey are both invalid is
    -- fixed in one statement, both columns at once, whichever finding is followed first.
    INSERT INTO @extschema@.migration_findings (step, table_name, row_id, kind, detail)
    SELECT '0002_normalize_profiles', 'public.profiles', id::text, 'invalid_email',
           format('email %s: %s. Fix: UPDATE public.profiles SET email = <a valid address>%s WHERE id = %L;%s',
                  email, @extschema@.email_validation_error(email),
                  CASE WHEN NOT @extschema@.is_valid_lightning_pubkey(pubkey) THEN ', pubkey = NULL' ELSE '' END, id,
                  CASE WHEN NOT @extschema@.is_valid_lightning_pubkey(pubkey)
                       THEN ' (its pubkey is invalid too: both in one statement, or the constraint on the other refuses the update)' ELSE '' END)
    FROM public.profiles
    WHERE NOT @extschema@.is_valid_email(email);
    GET DIAGNOSTICS n_invalid_emails = ROW_COUNT;

    INSERT INTO @extschema@.migration_findings (step, table_name, row_id, kind, detail)
    SELECT '0002_normalize_profiles', 'public.profiles', id::text, 'invalid_pubkey',
           format('pubkey %s: %s. Fix: UPDATE public.profiles SET pubkey = <the node''s key, or NULL>%s WHERE id = %L;%s',
                  pubkey, @extschema@.lightning_pubkey_validation_error(pubkey),
                  CASE WHEN NOT @extschema@.is_valid_email(email) THEN ', email = <a valid address>' ELSE '' END, id,
                  CASE WHEN NOT @extschema@.is_valid_email(email)
                       THEN ' (its email is invalid too: both in one statement, or the constraint on the other refuses the update)' ELSE '' END)
    FROM public.profiles
    WHERE NOT @extschema@.is_valid_lightning_pubkey(pubkey);
    GET DIAGNOSTICS n_invalid_pubkeys = ROW_COUNT;

    EXECUTE format(
        $q$INSERT INTO @extschema@.migration_findings (step, table_name, row_id, kind, detail)
           SELECT '0002_normalize_profiles', 'public.profiles', p.id::text, 'pubkey_duplicate',
                  format('pubkey %%s is also the key of %%s other profile(s)', p.pubkey, d.n - 1)
           FROM (%s) AS d JOIN public.profiles p ON p.id = ANY (d.ids)$q$,
        (SELECT p.duplicates_sql FROM @extschema@.planned_indexes() AS p WHERE p.index_name = 'profiles_pubkey_normalized_key'));
    GET DIAGNOSTICS n_pubkey_duplicates = ROW_COUNT;
    RAISE NOTICE 'daznode_crm: reported % invalid emails, % invalid pubkeys, % profiles sharing a pubkey',
        n_invalid_emails, n_invalid_pubkeys, n_pubkey_duplicates;

    RETURN jsonb_build_object(
        'emails_normalized', n_emails, 'email_case_collisions', n_email_collisions,
        'empty_pubkeys_to_null', n_empty_pubkeys, 'pubkeys_lowercased', n_pubkeys,
        'invalid_emails_reported', n_invalid_emails, 'invalid_pubkeys_reported', n_invalid_pubkeys,
        'pubkey_duplicates_reported', n_pubkey_duplicates);
END
$step$;

-- The legacy regex CHECKs of public.profiles (the guide's email and pubkey patterns), whatever
-- their names: step 0003 replaces them, the diagnostic counts them.
CREATE FUNCTION @extschema@.legacy_profile_checks() RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT coalesce(pg_catalog.array_agg(conname::text ORDER BY conname), '{}')
    FROM pg_catalog.pg_constraint
    WHERE conrelid = pg_catalog.to_regclass('public.profiles') AND contype = 'c'
      AND (pg_catalog.pg_get_constraintdef(oid) LIKE '%^[a-zA-Z0-9._\%+-]+@%'
           OR pg_catalog.pg_get_constraintdef(oid) LIKE '%[0-9a-fA-F]{66}%')
$fn$;
REVOKE ALL ON FUNCTION @extschema@.legacy_profile_checks() FROM PUBLIC;

-- 0003: the native validators replace the legacy regex CHECKs (both copies, whatever their
-- names), and created_by gets ON DELETE SET NULL. Everything is added NOT VALID: new rows are
-- checked at once, old ones are validated by step 0005 without blocking writes. One ALTER TABLE
-- per table, so each lock is taken once and held for milliseconds.
CREATE FUNCTION @extschema@.step_native_constraints() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    legacy text[];
    actions text[] := '{}';
    fk record;
BEGIN
    legacy := @extschema@.legacy_profile_checks();
    actions := actions || ARRAY(SELECT format('DROP CONSTRAINT %I', c) FROM unnest(legacy) AS c);
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'public.profiles'::regclass AND conname = 'profiles_email_valid') THEN
        actions := actions || 'ADD CONSTRAINT profiles_email_valid CHECK (daznode_crm.is_valid_email(email)) NOT VALID'::text;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'public.profiles'::regclass AND conname = 'profiles_pubkey_valid') THEN
        actions := actions || 'ADD CONSTRAINT profiles_pubkey_valid CHECK (daznode_crm.is_valid_lightning_pubkey(pubkey)) NOT VALID'::text;
    END IF;
    IF cardinality(actions) > 0 THEN
        EXECUTE 'ALTER TABLE public.profiles ' || array_to_string(actions, ', ');
    END IF;

    -- created_by: a deleted profile leaves the campaign, with no author (the orphan rule).
    SELECT conname, confdeltype INTO fk FROM pg_constraint
    WHERE conrelid = 'public.crm_email_campaigns'::regclass AND contype = 'f'
      AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'public.crm_email_campaigns'::regclass AND attname = 'created_by')];
    IF fk.conname IS NULL OR fk.confdeltype <> 'n' THEN
        EXECUTE format('ALTER TABLE public.crm_email_campaigns %s ADD CONSTRAINT crm_email_campaigns_created_by_fkey '
                       'FOREIGN KEY (created_by) REFERENCES public.profiles (id) ON DELETE SET NULL NOT VALID',
                       CASE WHEN fk.conname IS NOT NULL THEN format('DROP CONSTRAINT %I,', fk.conname) ELSE '' END);
    END IF;

    RETURN jsonb_build_object('legacy_checks_dropped', to_jsonb(legacy),
                              'profiles_changes', cardinality(actions),
                              'created_by_on_delete_set_null', fk.conname IS NULL OR fk.confdeltype <> 'n');
END
$step$;

-- 0004: users → profiles. Rows of users whose id is not a profile are copied (name split into
-- prenom and nom), unless their email is taken by another profile or invalid: those, and
-- users rows that disagree with their profile, are reported and never overwrite anything.
-- Foreign keys to users are re-pointed to profiles (NOT VALID; validated by 0005), and users is
-- renamed users_backup with its indexes, so nothing is lost and no name is left to collide.
CREATE FUNCTION @extschema@.step_consolidate_users() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    n_users bigint;
    n_copied bigint;
    n_conflicts bigint;
    n_not_copied bigint;
    fk record;
    repointed text[] := '{}';
    con record;
BEGIN
    -- The app's triggers fire on the rows changed here: they see the app's search_path (behind
    -- pg_catalog), not ours, so that their unqualified calls resolve as in the app.
    PERFORM pg_catalog.set_config('search_path', @extschema@.app_search_path(), true);
    IF to_regclass('public.users') IS NULL THEN
        RETURN jsonb_build_object('skipped', 'no public.users table');
    END IF;
    IF to_regclass('public.users_backup') IS NOT NULL THEN
        RAISE EXCEPTION 'public.users_backup already exists, so public.users cannot be renamed to it'
            USING ERRCODE = 'duplicate_table',
                  HINT = 'Rename or drop the old public.users_backup, then CALL daznode_crm.migrate() again.';
    END IF;
    SELECT count(*) INTO n_users FROM public.users;

    CREATE TEMP TABLE users_to_copy ON COMMIT DROP AS
    SELECT DISTINCT ON (@extschema@.normalize_email(u.email))
           u.*, @extschema@.normalize_email(u.email) AS normalized_email,
           @extschema@.normalize_lightning_pubkey(u.pubkey) AS normalized_pubkey
    FROM public.users u
    WHERE NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = u.id)
      AND u.email IS NOT NULL
      AND @extschema@.is_valid_email(@extschema@.normalize_email(u.email))
      AND NOT EXISTS (SELECT 1 FROM public.profiles p
                      WHERE @extschema@.normalize_email(p.email) = @extschema@.normalize_email(u.email))
    ORDER BY @extschema@.normalize_email(u.email), u.created_at NULLS LAST, u.id;

    INSERT INTO public.profiles (id, email, prenom, nom, pubkey, compte_x, compte_nostr, t4g_tokens, node_id, created_at, updated_at)
    SELECT id, normalized_email,
           coalesce(split_part(btrim(name), ' ', 1), ''),
           coalesce(btrim(substr(btrim(name), length(split_part(btrim(name), ' ', 1)) + 1)), ''),
           CASE WHEN @extschema@.is_valid_lightning_pubkey(normalized_pubkey) THEN normalized_pubkey END,
           compte_x, compte_nostr, coalesce(t4g_tokens, 0), node_id,
           coalesce(created_at, now()), coalesce(updated_at, now())
    FROM users_to_copy;
    GET DIAGNOSTICS n_copied = ROW_COUNT;
    RAISE NOTICE 'daznode_crm: copied % of % users rows into profiles', n_copied, n_users;

    INSERT INTO @extschema@.migration_findings (step, table_name, row_id, kind, detail)
    SELECT '0004_consolidate_users', 'public.users_backup', u.id::text, 'users_not_copied',
           CASE WHEN u.email IS NULL THEN 'no email'
                WHEN NOT @extschema@.is_valid_email(@extschema@.normalize_email(u.email))
                    THEN format('email %s: %s', u.email, @extschema@.email_validation_error(@extschema@.normalize_email(u.email)))
                ELSE format('email %s already belongs to another profile', u.email) END
    FROM public.users u
    WHERE NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = u.id);
    GET DIAGNOSTICS n_not_copied = ROW_COUNT;

    INSERT INTO @extschema@.migration_findings (step, table_name, row_id, kind, detail)
    SELECT '0004_consolidate_users', 'public.users_backup', u.id::text, 'users_conflict',
           concat_ws('; ',
               CASE WHEN @extschema@.normalize_email(u.email) IS DISTINCT FROM @extschema@.normalize_email(p.email)
                    THEN format('email: users %s, profiles %s', u.email, p.email) END,
               CASE WHEN u.pubkey IS NOT NULL AND u.pubkey <> ''
                         AND @extschema@.normalize_lightning_pubkey(u.pubkey) IS DISTINCT FROM p.pubkey
                    THEN format('pubkey: users %s, profiles %s', u.pubkey, coalesce(p.pubkey, 'NULL')) END)
    FROM public.users u
    JOIN public.profiles p ON p.id = u.id
    WHERE (@extschema@.normalize_email(u.email) IS DISTINCT FROM @extschema@.normalize_email(p.email)
           OR (u.pubkey IS NOT NULL AND u.pubkey <> ''
               AND @extschema@.normalize_lightning_pubkey(u.pubkey) IS DISTINCT FROM p.pubkey));
    GET DIAGNOSTICS n_conflicts = ROW_COUNT;
    RAISE NOTICE 'daznode_crm: % users rows not copied, % conflicting with their profile (reported in daznode_crm.migration_findings)',
        n_not_copied, n_conflicts;

    FOR fk IN
        SELECT c.conname, c.conrelid::regclass AS tbl, c.confdeltype, c.confupdtype,
               (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
                FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS cols
        FROM pg_constraint c
        WHERE c.contype = 'f' AND c.confrelid = 'public.users'::regclass
        ORDER BY c.conrelid::regclass::text, c.conname
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I FOREIGN KEY (%s) REFERENCES public.profiles (id) ON DELETE %s ON UPDATE %s NOT VALID',
                       fk.tbl, fk.conname, fk.conname, fk.cols,
                       CASE fk.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT'
                                           WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END,
                       CASE fk.confupdtype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT'
                                           WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END);
        repointed := repointed || format('%s.%s', fk.tbl, fk.conname);
    END LOOP;

    ALTER TABLE public.users RENAME TO users_backup;
    FOR con IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'public.users_backup'::regclass AND conname LIKE 'users\_%' AND contype IN ('p', 'u', 'c', 'f')
    LOOP
        EXECUTE format('ALTER TABLE public.users_backup RENAME CONSTRAINT %I TO %I', con.conname, 'users_backup' || substr(con.conname, 6));
    END LOOP;
    COMMENT ON TABLE public.users_backup IS 'The legacy users table, kept by daznode_crm step 0004_consolidate_users; its rows now live in public.profiles.';
    -- It holds the legacy password column: its owner only, never the API roles.
    PERFORM @extschema@.lock_down('public.users_backup'::regclass);

    RETURN jsonb_build_object('users_rows', n_users, 'copied_to_profiles', n_copied,
                              'not_copied', n_not_copied, 'conflicts_reported', n_conflicts,
                              'foreign_keys_repointed', to_jsonb(repointed), 'renamed_to', 'public.users_backup');
END
$step$;

-- 0005: validate the constraints added NOT VALID (ours, and foreign keys to profiles). VALIDATE
-- takes SHARE UPDATE EXCLUSIVE: reads and writes go on. A constraint some rows still break stays
-- NOT VALID, is reported, and is validated by running this step's function again later.
CREATE FUNCTION @extschema@.step_validate_constraints() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    con record;
    validated text[] := '{}';
    pending text[] := '{}';
BEGIN
    FOR con IN
        SELECT c.conname, c.conrelid::regclass AS tbl
        FROM pg_constraint c
        WHERE NOT c.convalidated
          AND (c.conname IN ('profiles_email_valid', 'profiles_pubkey_valid')
               OR (c.contype = 'f' AND c.confrelid = 'public.profiles'::regclass))
        ORDER BY 2::text, 1
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', con.tbl, con.conname);
            validated := validated || format('%s.%s', con.tbl, con.conname);
        EXCEPTION WHEN check_violation OR foreign_key_violation THEN
            pending := pending || format('%s.%s', con.tbl, con.conname);
            INSERT INTO @extschema@.migration_findings (step, table_name, row_id, kind, detail)
            VALUES ('0005_validate_constraints', con.tbl::text, NULL, 'constraint_not_validated',
                    format('%s stays NOT VALID: %s. Fix the rows listed by the other findings, then: ALTER TABLE %s VALIDATE CONSTRAINT %I',
                           con.conname, SQLERRM, con.tbl, con.conname));
        END;
    END LOOP;
    IF cardinality(pending) > 0 THEN
        RAISE NOTICE 'daznode_crm: % constraint(s) stay NOT VALID until their rows are fixed: %', cardinality(pending), pending;
    END IF;
    RETURN jsonb_build_object('validated', to_jsonb(validated), 'still_not_valid', to_jsonb(pending));
END
$step$;

-- 0006: the planned indexes (daznode_crm.planned_indexes(), defined once in Rust). Small tables
-- get them here; big ones only through CREATE INDEX CONCURRENTLY, which cannot run inside a
-- transaction: see daznode_crm.concurrent_index_plan(). Exact duplicates of a planned or
-- constraint index are dropped; other look-alikes are only reported.
CREATE FUNCTION @extschema@.step_indexes() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    idx record;
    created text[] := '{}';
    deferred text[] := '{}';
    dropped text[] := '{}';
    blocked bigint;
    dup record;
    interim text;
BEGIN
    FOR idx IN
        SELECT p.*, c.reltuples
        FROM @extschema@.planned_indexes() AS p
        JOIN pg_class c ON c.oid = to_regclass('public.' || quote_ident(p.table_name))
    LOOP
        -- A table restored but never analyzed has reltuples = -1: estimate from its size.
        IF idx.reltuples < 0 THEN
            idx.reltuples := pg_relation_size(to_regclass('public.' || quote_ident(idx.table_name))) / 100.0;
        END IF;
        CONTINUE WHEN to_regclass('public.' || quote_ident(idx.index_name)) IS NOT NULL;
        blocked := 0;
        IF idx.blocker_sql IS NOT NULL THEN
            EXECUTE idx.blocker_sql INTO blocked;
        END IF;
        IF idx.reltuples < @extschema@.small_table_rows() AND blocked = 0 THEN
            EXECUTE idx.create_sql;
            created := created || idx.index_name::text;
        ELSE
            deferred := deferred || idx.index_name::text;
            -- Legacy duplicates wait for a human; new rows are held to the uniqueness at once by
            -- an interim index that leaves only the listed duplicates out (replaced by the full
            -- index through concurrent_index_plan() once they are resolved).
            IF blocked > 0 AND idx.reltuples < @extschema@.small_table_rows() THEN
                interim := @extschema@.interim_index_sql(idx.index_name, false);
                IF interim IS NOT NULL THEN
                    EXECUTE interim;
                    created := created || (idx.index_name || '_interim');
                END IF;
            END IF;
        END IF;
    END LOOP;

    -- Exact duplicates: same table, same definition but the name; never one backing a constraint.
    FOR dup IN
        WITH defs AS (
            SELECT i.indexrelid, i.indrelid, c.relname,
                   regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON', 'CREATE \1INDEX ON') AS def,
                   EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint,
                   c.relname IN (SELECT index_name FROM @extschema@.planned_indexes()
                                 UNION ALL SELECT index_name || '_interim' FROM @extschema@.planned_indexes()) AS planned
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid IN (SELECT to_regclass('public.' || quote_ident(t)) FROM unnest(@extschema@.crm_tables()) AS t)
        )
        SELECT d.relname
        FROM defs d
        WHERE NOT d.backs_constraint AND NOT d.planned
          AND EXISTS (SELECT 1 FROM defs o WHERE o.indrelid = d.indrelid AND o.def = d.def
                      AND o.indexrelid <> d.indexrelid AND (o.backs_constraint OR o.planned OR o.relname < d.relname))
    LOOP
        EXECUTE format('DROP INDEX public.%I', dup.relname);
        dropped := dropped || dup.relname::text;
    END LOOP;

    IF cardinality(deferred) > 0 THEN
        RAISE NOTICE 'daznode_crm: % index(es) left for CREATE INDEX CONCURRENTLY (big table or duplicates to fix): run SELECT * FROM daznode_crm.concurrent_index_plan() \gexec',
            cardinality(deferred);
    END IF;
    RETURN jsonb_build_object('created', to_jsonb(created), 'left_for_concurrent_plan', to_jsonb(deferred),
                              'duplicates_dropped', to_jsonb(dropped));
END
$step$;

-- A legacy relation where step 0007 puts a view of another shape: a view nothing depends on is
-- dropped (it is rebuilt in our shape right after); anything else (a view other views read, a
-- table, a materialized view) is renamed <name>_legacy, never dropped. Reported either way.
CREATE FUNCTION @extschema@.make_room_for_view(step text, name text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rel regclass := to_regclass('public.' || quote_ident(name));
    kind "char";
    dependents text;
    action text;
BEGIN
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = rel;
    SELECT string_agg(DISTINCT r.ev_class::regclass::text, ', ') INTO dependents
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = rel AND r.ev_class <> rel;
    IF kind = 'v' AND dependents IS NULL THEN
        EXECUTE format('DROP VIEW %s', rel);
        action := format('public.%s had another shape and nothing read it: replaced', name);
    ELSE
        IF to_regclass('public.' || quote_ident(name || '_legacy')) IS NOT NULL THEN
            RAISE EXCEPTION 'daznode_crm: public.% has another shape and public.%_legacy is taken', name, name
                USING ERRCODE = 'duplicate_table', HINT = format('Rename or drop public.%I, then CALL daznode_crm.migrate() again.', name || '_legacy');
        END IF;
        EXECUTE format('ALTER %s %s RENAME TO %I', CASE kind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, rel, name || '_legacy');
        action := format('public.%s had another shape%s: renamed public.%s_legacy', name,
                         coalesce(' and ' || dependents || ' read it', ''), name);
    END IF;
    INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
    VALUES (step, 'public.' || name, 'legacy_view_moved', action);
    RETURN action;
END
$fn$;

-- What stands where a step will write, for the diagnostic ("in the way:" rows): what the step
-- does about it, or why it will stop. Catalog reads only.
CREATE FUNCTION @extschema@.objects_in_the_way() RETURNS TABLE (object text, step text, status text, detail text, recommendation text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    owner oid := @extschema@.crm_owner();
    v record;
    ours text[];
    have text[];
BEGIN
    FOR v IN
        SELECT x.name, x.ours, c.oid, c.relkind, c.relowner
        FROM (VALUES
            ('crm_campaign_stats', ARRAY['id', 'name', 'status', 'total_sends', 'sent', 'delivered', 'opened', 'clicked', 'bounced', 'open_rate', 'click_rate']),
            ('crm_segment_stats', ARRAY(SELECT a.attname::text FROM pg_attribute a
                                        WHERE a.attrelid = to_regclass('public.crm_customer_segments') AND a.attnum > 0 AND NOT a.attisdropped
                                        ORDER BY a.attnum) || 'member_count'::text)) AS x(name, ours)
        JOIN pg_class c ON c.oid = to_regclass('public.' || x.name)
    LOOP
        object := 'public.' || v.name;
        step := '0007_stats_views';
        have := ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum);
        IF v.relowner IS DISTINCT FROM owner THEN
            status := 'ERROR';
            detail := format('%s belongs to %s, not to the CRM owner: step 0007 will stop (42501)', object, v.relowner::regrole);
            recommendation := format('Find out who made it; drop it or rename it: ALTER VIEW %s RENAME TO %I;', object, v.name || '_legacy');
        ELSIF v.relkind <> 'v' THEN
            status := 'WARNING';
            detail := format('%s is not a view: step 0007 will rename it %s_legacy and create the view', object, v.name);
            recommendation := format('Nothing to do before; afterwards point its readers at %s or drop %s_legacy', object, object);
        ELSIF have <> v.ours[1:cardinality(have)] OR cardinality(have) > cardinality(v.ours)
              OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = v.oid AND a.attname = 'member_count' AND a.atttypid <> 'bigint'::regtype) THEN
            status := 'WARNING';
            detail := format('%s has other columns or types (%s): step 0007 will replace it, or rename it %s_legacy if other views read it',
                             object, (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                                      FROM pg_attribute a WHERE a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped), v.name);
            recommendation := format('Check what reads it: SELECT DISTINCT ev_class::regclass FROM pg_rewrite r JOIN pg_depend d ON d.objid = r.oid WHERE d.refobjid = %L::regclass;', object);
        ELSE
            CONTINUE;
        END IF;
        RETURN NEXT;
    END LOOP;
    FOR v IN
        SELECT c.oid::regclass AS rel, c.relowner
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace
          AND c.relname IN ('crm_segments_stats_mv', 'crm_campaigns_analytics_mv', 'crm_performance_monitor')
          AND c.relowner IS DISTINCT FROM owner
    LOOP
        object := v.rel::text;
        step := '0009_analytics_views';
        status := 'ERROR';
        detail := format('%s belongs to %s, not to the CRM owner: step 0009 will stop (42501)', v.rel, v.relowner::regrole);
        recommendation := format('Drop or rename it (ALTER ... %s RENAME TO ...), then CALL daznode_crm.migrate() again', v.rel);
        RETURN NEXT;
    END LOOP;
    IF to_regclass('public.users') IS NOT NULL AND to_regclass('public.users_backup') IS NOT NULL THEN
        object := 'public.users_backup';
        step := '0004_consolidate_users';
        status := 'ERROR';
        detail := 'public.users_backup exists next to public.users: step 0004 will stop (42P07), it renames users to that name';
        recommendation := 'ALTER TABLE public.users_backup RENAME TO users_backup_old;  -- or drop it if it is really unused';
        RETURN NEXT;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass('public.crm_email_sends') AND a.attname = 'created_at' AND NOT a.attisdropped)
       AND (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass('public.crm_email_sends')) = 'r' THEN
        object := 'public.crm_email_sends.created_at';
        step := '0010_partition_email_sends';
        status := 'ERROR';
        detail := 'public.crm_email_sends already has a created_at column, which step 0010 adds as its partition key: it will stop (42701)';
        recommendation := 'ALTER TABLE public.crm_email_sends RENAME COLUMN created_at TO created_at_legacy;  -- after checking what the app writes there';
        RETURN NEXT;
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.objects_in_the_way() FROM PUBLIC;

-- 0007: the app's two statistics views, created or replaced with correct counts: the counts
-- and rates of sql/rates.sql, the same as crm_campaigns_analytics_mv's. The legacy view
-- (which counted status = 'opened') missed every clicked email among the opened ones. The fixture's legacy
-- views have the same columns, so CREATE OR REPLACE keeps the app's queries working; a legacy
-- view of another shape is moved out of the way (make_room_for_view) and reported.
CREATE FUNCTION @extschema@.step_stats_views() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    replaced text[] := ARRAY(SELECT v FROM unnest(ARRAY['crm_segment_stats', 'crm_campaign_stats']) AS v
                             WHERE to_regclass('public.' || v) IS NOT NULL);
    moved text[] := '{}';
    v record;
BEGIN
    FOR v IN SELECT * FROM (VALUES
        ('crm_segment_stats', $v$
    CREATE OR REPLACE VIEW public.crm_segment_stats AS
    SELECT s.*, (SELECT count(*) FROM public.crm_customer_segment_members m WHERE m.segment_id = s.id) AS member_count
    FROM public.crm_customer_segments s$v$),
        ('crm_campaign_stats', $v$
    CREATE OR REPLACE VIEW public.crm_campaign_stats AS
    SELECT k.id, k.name, k.status, k.total_sends, k.sent, k.delivered, k.opened, k.clicked, k.bounced,
           @extschema@.open_rate(k.opened, k.delivered) AS open_rate,
           @extschema@.click_rate(k.clicked, k.delivered) AS click_rate
    FROM (SELECT c.id, c.name, c.status,
                 count(e.id) AS total_sends,
                 count(e.id) FILTER (WHERE @extschema@.send_is_sent(e.sent_at)) AS sent,
                 count(e.id) FILTER (WHERE @extschema@.send_is_delivered(e.sent_at, e.bounced_at, e.status)) AS delivered,
                 count(e.id) FILTER (WHERE @extschema@.send_is_opened(e.opened_at, e.clicked_at, e.bounced_at)) AS opened,
                 count(e.id) FILTER (WHERE @extschema@.send_is_clicked(e.clicked_at, e.bounced_at)) AS clicked,
                 count(e.id) FILTER (WHERE @extschema@.send_is_bounced(e.bounced_at)) AS bounced
          FROM public.crm_email_campaigns c
          LEFT JOIN public.crm_email_sends e ON e.campaign_id = c.id
          GROUP BY c.id, c.name, c.status) k$v$)) AS t(name, ddl)
    LOOP
        PERFORM @extschema@.refuse_foreign_object(v.name);
        BEGIN
            EXECUTE v.ddl;
        EXCEPTION WHEN invalid_table_definition OR wrong_object_type THEN
            -- Columns of other names or types (CREATE OR REPLACE cannot change them), or not a view.
            moved := moved || @extschema@.make_room_for_view('0007_stats_views', v.name);
            EXECUTE v.ddl;
        END;
    END LOOP;

    RETURN jsonb_build_object('replaced', to_jsonb(replaced), 'created', 2 - cardinality(replaced), 'legacy_moved', to_jsonb(moved));
END
$step$;

REVOKE ALL ON FUNCTION @extschema@.step_base_schema(), @extschema@.step_normalize_profiles(),
    @extschema@.step_native_constraints(), @extschema@.step_consolidate_users(),
    @extschema@.step_validate_constraints(), @extschema@.step_indexes(), @extschema@.step_stats_views(),
    @extschema@.make_room_for_view(text, text) FROM PUBLIC;

-- How long a step waits for a lock before it gives up and retries: 500ms unless the session
-- sets daznode_crm.lock_timeout (SET daznode_crm.lock_timeout = '2s').
CREATE FUNCTION @extschema@.migration_lock_timeout() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN coalesce(nullif(current_setting('daznode_crm.lock_timeout', true), ''), '500ms');

-- Whether an autovacuum worker holds a lock on a table in public of this database. SECURITY
-- DEFINER, owned by the superuser who installed the extension: pg_stat_activity hides the
-- backend_type of every session not of the caller's roles, autovacuum workers included, from a
-- role without pg_read_all_stats, such as Supabase's postgres. It reads only system views and
-- catalogs (no application code runs) and returns one boolean.
CREATE FUNCTION @extschema@.autovacuum_holds_lock_in_public() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN EXISTS (
    SELECT 1 FROM pg_catalog.pg_locks l
    JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid AND a.backend_type = 'autovacuum worker'
    JOIN pg_catalog.pg_class c ON c.oid = l.relation
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
    WHERE l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()));
REVOKE ALL ON FUNCTION @extschema@.autovacuum_holds_lock_in_public() FROM PUBLIC;

-- The lock_timeout of attempt number `attempt` (from 1) at a step's locks, set for the current
-- transaction, and the pause before the next attempt. PostgreSQL cancels an autovacuum that
-- blocks a lock request only when the waiter has waited deadlock_timeout (1s by default), so a
-- 500ms lock_timeout alone never gets past an autovacuum of a CRM table, and one VACUUM of a
-- 100M-row table can last an hour. From the second attempt on, while an autovacuum worker holds
-- a lock on a table in public, the attempt waits deadlock_timeout more, so that PostgreSQL
-- cancels that autovacuum (which runs again later). An anti-wraparound autovacuum is never
-- cancelled: then the attempts run out and migrate() says so.
CREATE FUNCTION @extschema@.set_lock_timeout_for_attempt(attempt int) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    base interval := @extschema@.migration_lock_timeout()::interval;
    wait interval := base;
BEGIN
    IF attempt >= 2 AND @extschema@.autovacuum_holds_lock_in_public() THEN
        wait := base + current_setting('deadlock_timeout')::interval;
        RAISE NOTICE 'daznode_crm: an autovacuum holds a lock in public: attempt % waits %ms (deadlock_timeout + lock_timeout), so that PostgreSQL cancels it',
            attempt, ceil(extract(epoch FROM wait) * 1000);
    END IF;
    RETURN set_config('lock_timeout', ceil(extract(epoch FROM wait) * 1000)::bigint || 'ms', true);
END
$fn$;

-- The pause between two attempts at a step's locks: 0.2 s, 0.4 s, 0.6 s...
CREATE FUNCTION @extschema@.lock_retry_pause(attempt int) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
RETURN pg_sleep(0.2 * attempt);
REVOKE ALL ON FUNCTION @extschema@.set_lock_timeout_for_attempt(int), @extschema@.lock_retry_pause(int) FROM PUBLIC;

-- The ledger row of a step that returned `result`, started at `t0`: the one INSERT into
-- schema_migrations. Its arguments are evaluated first, so called as
-- record_step(..., step_fn()) it measures the step's whole duration, in the step's transaction.
CREATE FUNCTION @extschema@.record_step(step text, target text, t0 timestamptz, result jsonb) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $fn$
INSERT INTO @extschema@.schema_migrations (step, target, extension_version, duration_ms, result)
VALUES (step, target, (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'daznode_crm'),
        pg_catalog.round(EXTRACT(epoch FROM pg_catalog.clock_timestamp() - t0) * 1000, 1), result);
$fn$;
REVOKE ALL ON FUNCTION @extschema@.record_step(text, text, timestamptz, jsonb) FROM PUBLIC;

-- Applies the pending steps of `target` ('latest', 'safe', 'complete' or a step name), each in
-- its own transaction: a failed or cancelled step leaves the database as it was before that
-- step, and the next CALL resumes. A procedure, not a function, because only a procedure can
-- commit between steps; call it outside a transaction block: CALL daznode_crm.migrate();
-- (No SET search_path clause: PostgreSQL forbids COMMIT in a procedure that has one. Every name
-- below is qualified, and each step function pins its own search_path.)
CREATE PROCEDURE @extschema@.migrate(target text DEFAULT 'latest', force boolean DEFAULT false)
LANGUAGE plpgsql AS $proc$
DECLARE
    s record;
    result jsonb;
    t0 timestamptz;
    locked boolean;
    max_attempts constant int := 5;
    applied int := 0;
    refused text;
    refused_hint text;
    refused_state text;
    refused_context text;
BEGIN
    PERFORM @extschema@.refuse_on_standby('migrate()');
    PERFORM @extschema@.require_crm_owner('migrate()');
    FOR s IN SELECT * FROM @extschema@.pending_migrations(target) LOOP
        -- One migrate() at a time; the lock is re-taken in each step's transaction.
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('daznode_crm.migrate'));
        CONTINUE WHEN EXISTS (SELECT 1 FROM @extschema@.schema_migrations m WHERE m.step = s.step);
        RAISE NOTICE 'daznode_crm: applying % (%)', s.step, s.summary;
        t0 := pg_catalog.clock_timestamp();
        locked := NULL;
        IF s.is_procedure THEN
            -- A procedure step commits its own transactions (an online copy): called directly,
            -- outside any exception block, which would forbid its COMMITs. It takes its locks
            -- with lock_timeout and retries itself. A session lock keeps a second migrate() out.
            PERFORM pg_catalog.pg_advisory_lock(pg_catalog.hashtext('daznode_crm.migrate procedure step'));
            result := NULL;
            IF s.function_name = 'step_partition_email_sends' THEN
                CALL @extschema@.step_partition_email_sends(result, force);
            ELSIF s.function_name = 'step_live_campaign_counts' THEN
                CALL @extschema@.step_live_campaign_counts(result);
            ELSE
                RAISE EXCEPTION 'daznode_crm: no way to call procedure step %', s.step;
            END IF;
            PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('daznode_crm.migrate procedure step'));
            CONTINUE WHEN EXISTS (SELECT 1 FROM @extschema@.schema_migrations m WHERE m.step = s.step);
        ELSE
            -- The step and its ledger row, in one subtransaction of run_with_lock_retries() (the
            -- one lock-retry loop): both or neither. Whatever else stops the step (an object of
            -- another role in the way, a right the owner lacks, a legacy shape no step expects, an
            -- app trigger that fails) undoes it, and the reason is kept as a finding below. A
            -- cancel is not caught.
            BEGIN
                locked := @extschema@.run_with_lock_retries(ARRAY[pg_catalog.format(
                    'SELECT @extschema@.record_step(%L, %L, %L, @extschema@.%I())', s.step, s.target, t0, s.function_name)], max_attempts);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS refused = MESSAGE_TEXT, refused_hint = PG_EXCEPTION_HINT,
                    refused_state = RETURNED_SQLSTATE, refused_context = PG_EXCEPTION_CONTEXT;
            END;
            IF locked IS FALSE THEN
                RAISE EXCEPTION 'daznode_crm: % could not take its locks in % attempts', s.step, max_attempts
                    USING ERRCODE = 'lock_not_available',
                          HINT = 'A long transaction (or an anti-wraparound autovacuum) holds a lock on a CRM table: see SELECT * FROM daznode_crm.run_pre_migration_diagnostic() or pg_locks, then CALL daznode_crm.migrate() again.';
            END IF;
        IF refused IS NOT NULL THEN
            -- Never a raw PostgreSQL error: ours say what to do; any other is named as the step's,
            -- with where it came from (an app trigger, a legacy function) and its SQLSTATE kept.
            IF refused NOT LIKE 'daznode\_crm:%' THEN
                refused := pg_catalog.format('daznode_crm: step %s stopped: %s (%s)', s.step, refused,
                    pg_catalog.left(pg_catalog.split_part(refused_context, E'\n', 1), 200));
                refused_hint := coalesce(nullif(refused_hint, ''),
                    'SELECT * FROM daznode_crm.run_pre_migration_diagnostic() names what is in the way; fix it, then CALL daznode_crm.migrate() again.');
            END IF;
            INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
            VALUES (s.step, 'public', CASE WHEN refused_state = '42501' THEN 'refused' ELSE 'step_failed' END,
                    pg_catalog.format('ERROR %s: %s%s', refused_state, refused, coalesce(' (' || nullif(refused_hint, '') || ')', '')));
            COMMIT;
            RAISE EXCEPTION '%', refused USING ERRCODE = refused_state, HINT = refused_hint,
                DETAIL = pg_catalog.format('The step changed nothing; the reason is kept in daznode_crm.migration_findings (kind ''%s'').',
                                           CASE WHEN refused_state = '42501' THEN 'refused' ELSE 'step_failed' END);
        END IF;
        END IF;
        IF s.is_procedure THEN
            PERFORM @extschema@.record_step(s.step, s.target, t0, result);
        ELSE
            -- The ledger is append-only (the maintenance role may not UPDATE it): the row was
            -- written with the step, its duration measured once the step had returned.
            SELECT m.result INTO result FROM @extschema@.schema_migrations m WHERE m.step = s.step;
        END IF;
        RAISE NOTICE 'daznode_crm: % done in % ms: %', s.step,
            pg_catalog.round(EXTRACT(epoch FROM pg_catalog.clock_timestamp() - t0) * 1000, 1), result;
        applied := applied + 1;
        COMMIT;
    END LOOP;
    RAISE NOTICE 'daznode_crm: % step(s) applied; see SELECT * FROM daznode_crm.migration_status', applied;
END
$proc$;
REVOKE ALL ON PROCEDURE @extschema@.migrate(text, boolean) FROM PUBLIC;

-- Every step this version knows, applied or pending, with what it reported.
CREATE VIEW @extschema@.migration_status AS
SELECT s.step, s.target, s.summary, m.applied_at IS NOT NULL AS applied, m.applied_at, m.duration_ms, m.result
FROM @extschema@.migration_steps() AS s
LEFT JOIN @extschema@.schema_migrations m ON m.step = s.step
ORDER BY s.step;
REVOKE ALL ON @extschema@.migration_status FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.pending_migrations(text), @extschema@.concurrent_index_plan(), @extschema@.interim_index_sql(text, boolean),
    @extschema@.check_concurrent_indexes_status() FROM PUBLIC;

-- src/api/refresh.rs:126
-- daznode_crm::api::refresh::unregister_crm_materialized_view

CREATE FUNCTION @extschema@.unregister_crm_materialized_view(view regclass) RETURNS boolean
VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'unregister_crm_materialized_view_wrapper';

-- src/api/refresh.rs:206
-- daznode_crm::api::refresh::unschedule_crm_maintenance
CREATE  FUNCTION "unschedule_crm_maintenance"() RETURNS TABLE (
	"job_name" TEXT,  /* String */
	"action" TEXT  /* String */
)
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'unschedule_crm_maintenance_wrapper';

-- src/api/mod.rs:27
-- requires:
--   migrations
--   diagnostic::run_pre_migration_diagnostic
--   cleanup::cleanup_orphaned_records
--   performance::diagnose_crm_performance
--   refresh::refresh_crm_materialized_views
--   refresh::register_crm_materialized_view
--   refresh::unregister_crm_materialized_view
--   refresh::schedule_crm_maintenance
--   refresh::unschedule_crm_maintenance
--   throttle::maintenance_yield
--   throttle::maintenance_runs
--   steps::run_in_steps_begin
--   steps::run_in_steps_unit
--   steps::run_in_steps_pause
--   server::progress_name

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

-- src/api/caller.rs:518
-- daznode_crm::api::caller::admin_roles_changed
CREATE FUNCTION "admin_roles_changed"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'admin_roles_changed_wrapper';

-- src/api/mod.rs:49
-- requires:
--   migrations
--   maintenance
--   access::is_admin_user
--   access::is_admin_user_about
--   diagnostic::guide_function_names
--   access::current_user_id
--   access::refresh_segment
--   access::refresh_auto_update_segments
--   caller::admin_roles_changed
--   security::rows_seen_as
--   security::matrix_expectation
--   security::crm_owner_sql
--   security::crm_table_oid
--   security::app_search_path

-- Access control and analytics: two more migration steps, applied by the same
-- CALL daznode_crm.migrate() on empty and legacy databases.

-- The guide's role matrix, one source of truth for the policies below.
--   segments, segment members:   super_admin, admin
--   templates, campaigns:        super_admin, admin, moderator
--   email sends:                 super_admin, admin, moderator; support reads
--   profiles, orders, subscriptions: the owner reads (and updates their profile); every admin
--                                reads; super_admin and admin write
--   admin_roles:                 a user reads their own row; super_admin manages
-- Every policy calls is_admin_user() / current_user_id() inside a sub-SELECT, so it runs once
-- per query, and none reads the table it protects (the legacy recursion bug).

-- The INSERT, UPDATE and DELETE policies of one table, for the roles `allowed` (an expression);
-- `update_allowed` widens UPDATE (a profile's owner), in the same policy: one permissive policy
-- per action, as Supabase's linter asks (multiple_permissive_policies).
CREATE FUNCTION @extschema@.create_write_policies(table_name text, allowed text, update_allowed text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    EXECUTE format('CREATE POLICY daznode_insert ON public.%I FOR INSERT WITH CHECK (%s)', table_name, allowed);
    EXECUTE format('CREATE POLICY daznode_update ON public.%I FOR UPDATE USING (%s) WITH CHECK (%s)', table_name,
                   coalesce(update_allowed, allowed), coalesce(update_allowed, allowed));
    EXECUTE format('CREATE POLICY daznode_delete ON public.%I FOR DELETE USING (%s)', table_name, allowed);
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.create_write_policies(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.admin_roles_changed() FROM PUBLIC;

-- The policies of crm_email_sends alone: the partitioning swap puts them on the new table without
-- touching (and locking) any other table.
CREATE FUNCTION @extschema@.create_email_sends_policies() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    EXECUTE format('CREATE POLICY daznode_read ON public.crm_email_sends FOR SELECT USING (%s)',
                   '(SELECT daznode_crm.is_admin_user(''{super_admin,admin,moderator,support}''))');
    PERFORM @extschema@.create_write_policies('crm_email_sends', '(SELECT daznode_crm.is_admin_user(''{super_admin,admin,moderator}''))');
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.create_email_sends_policies() FROM PUBLIC;

-- A user may change only some columns of their own profile (core::schema::PROFILE_OWNER_COLUMNS,
-- read through profile_owner_columns()); the others (tokens, verification, score, auth method,
-- email…) stay for admins, service_role and the owner. An allow-list, so a column the app adds
-- later is privileged until it is listed. A BEFORE UPDATE trigger, since a policy cannot
-- compare the old row with the new.
CREATE FUNCTION @extschema@.guard_profile_columns() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    editable constant text[] := @extschema@.profile_owner_columns();
BEGIN
    IF pg_catalog.row_security_active(TG_RELID)
       AND (pg_catalog.to_jsonb(NEW) OPERATOR(pg_catalog.-) editable) IS DISTINCT FROM (pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.-) editable)
       AND NOT (SELECT @extschema@.is_admin_user('{super_admin,admin}')) THEN
        RAISE EXCEPTION 'daznode_crm: only these columns of a profile may be changed by its user: %', pg_catalog.array_to_string(editable, ', ')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The other columns (tokens, verification, score, auth method, email) are changed by an admin or service_role.';
    END IF;
    RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.guard_profile_columns() FROM PUBLIC;

-- The API roles of a table: the roles granted SELECT on it that row-level security applies to (no
-- superuser, no BYPASSRLS, not its owner). Supabase's anon and authenticated; any app role on plain
-- PostgreSQL. The self-check and the diagnostic read as them.
CREATE FUNCTION @extschema@.api_roles(rel regclass) RETURNS TABLE (role oid, rolname text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT DISTINCT a.grantee, ro.rolname::text
    FROM pg_class c, aclexplode(c.relacl) a, pg_roles ro
    WHERE c.oid = rel AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner
      AND ro.oid = a.grantee AND NOT ro.rolsuper AND NOT ro.rolbypassrls
    ORDER BY 2
$fn$;
REVOKE ALL ON FUNCTION @extschema@.api_roles(regclass) FROM PUBLIC;

-- Every governed table read as every API role (the roles granted SELECT on profiles that RLS
-- applies to), as each kind of requester the database has a user for (no JWT, a customer, each
-- admin role): one row a read, with what it saw, what the role matrix says (core::matrix; up to
-- 100 rows compared for "everything", exactly one's own rows otherwise) and the error, if any.
-- only_table limits it to one table.
CREATE FUNCTION @extschema@.matrix_reads(only_table text DEFAULT NULL)
RETURNS TABLE (table_name text, requester text, role_name text, seen bigint, expected bigint, error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    cap constant bigint := 100;
    r record;
    who text;
    uid uuid;
    t text;
    expect text;
BEGIN
    FOR r IN SELECT * FROM @extschema@.api_roles('public.profiles') LOOP
        FOREACH who IN ARRAY ARRAY['no JWT', 'a customer', 'support', 'moderator', 'admin', 'super_admin'] LOOP
            uid := CASE who
                WHEN 'no JWT' THEN NULL
                WHEN 'a customer' THEN (SELECT p.id FROM public.profiles p
                                        WHERE NOT EXISTS (SELECT 1 FROM ONLY public.admin_roles a WHERE a.user_id = p.id) ORDER BY p.id LIMIT 1)
                ELSE (SELECT a.user_id FROM ONLY public.admin_roles a WHERE a.role::text = who
                        AND EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = a.user_id) ORDER BY a.user_id LIMIT 1) END;
            CONTINUE WHEN who <> 'no JWT' AND uid IS NULL;
            FOREACH t IN ARRAY @extschema@.crm_tables() LOOP
                CONTINUE WHEN only_table IS NOT NULL AND t <> only_table;
                expect := @extschema@.matrix_expectation(t, who);
                IF expect = 'nothing' THEN
                    expected := 0;
                ELSIF expect = 'everything' THEN
                    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM public.%I LIMIT $1) x', t) INTO expected USING cap;
                ELSE
                    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM public.%I WHERE %I = $1 LIMIT $2) x', t, substr(expect, 5)) INTO expected USING uid, cap;
                END IF;
                table_name := t;
                requester := who;
                role_name := r.rolname;
                seen := NULL;
                error := NULL;
                BEGIN
                    seen := @extschema@.rows_seen_as(r.role, t,
                        CASE WHEN uid IS NULL THEN NULL ELSE jsonb_build_object('sub', uid, 'role', r.rolname)::text END, cap);
                EXCEPTION WHEN OTHERS THEN
                    error := left(SQLERRM, 300);
                END;
                RETURN NEXT;
            END LOOP;
        END LOOP;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.matrix_reads(text) FROM PUBLIC;

-- Step 0008's self-check: every read of matrix_reads() must run without error and show what the
-- role matrix says. Anything else stops the step, naming the table, the requester and the policies.
CREATE FUNCTION @extschema@.check_role_matrix() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    m record;
    checked int := 0;
BEGIN
    FOR m IN SELECT * FROM @extschema@.matrix_reads() LOOP
        IF m.error IS NOT NULL THEN
            RAISE EXCEPTION 'daznode_crm: step 0008 self-check: % as % cannot read public.%: %', m.requester, m.role_name, m.table_name, m.error
                USING ERRCODE = 'invalid_object_definition',
                      HINT = format('A policy on public.%s fails for %s: %s', m.table_name, m.role_name,
                                    (SELECT string_agg(polname, ', ') FROM pg_policy WHERE polrelid = format('public.%I', m.table_name)::regclass));
        END IF;
        IF m.seen <> m.expected THEN
            RAISE EXCEPTION 'daznode_crm: step 0008 self-check: % as % sees % row(s) of public.%, the role matrix says %', m.requester, m.role_name, m.seen, m.table_name, m.expected
                USING ERRCODE = 'invalid_object_definition',
                      HINT = format('Policies on public.%s: %s. A restrictive policy may hide rows the matrix shows, or a policy no test of step 0008 could attribute grants more; change it, or the matrix on purpose.',
                                    m.table_name, (SELECT string_agg(polname, ', ') FROM pg_policy WHERE polrelid = format('public.%I', m.table_name)::regclass));
        END IF;
        checked := checked + 1;
    END LOOP;
    RETURN jsonb_build_object('reads_checked', checked);
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.check_role_matrix() FROM PUBLIC;

-- The legacy permissive policies of `rel` that widen reads (FOR SELECT or ALL) and grant more
-- than the role matrix: each is tried alone with the matrix's policies (the others dropped in a
-- subtransaction that is then rolled back), and kept in the answer when some requester then sees
-- more rows than the matrix says. Permissive policies are OR-ed, so a set that grants more has a
-- member that does.
CREATE FUNCTION @extschema@.policies_granting_more(rel regclass)
RETURNS TABLE (policy_name text, excess text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    pol record;
    other record;
    found text;
BEGIN
    FOR pol IN SELECT p.oid, p.polname::text AS polname FROM pg_policy p
               WHERE p.polrelid = rel AND p.polpermissive AND p.polcmd IN ('r', '*') AND p.polname NOT LIKE 'daznode\_%'
               ORDER BY p.polname LOOP
        found := NULL;
        BEGIN
            FOR other IN SELECT p.polname FROM pg_policy p
                         WHERE p.polrelid = rel AND p.polpermissive AND p.polcmd IN ('r', '*') AND p.polname NOT LIKE 'daznode\_%' AND p.oid <> pol.oid LOOP
                EXECUTE format('DROP POLICY %I ON %s', other.polname, rel);
            END LOOP;
            SELECT string_agg(format('%s as %s sees %s row(s), the matrix says %s', m.requester, m.role_name, m.seen, m.expected), '; ')
            INTO found
            FROM @extschema@.matrix_reads((SELECT c.relname::text FROM pg_class c WHERE c.oid = rel)) m
            WHERE m.seen > m.expected;
            RAISE EXCEPTION USING ERRCODE = 'DZ001';  -- undo the drops
        EXCEPTION WHEN SQLSTATE 'DZ001' THEN
            NULL;
        END;
        IF found IS NOT NULL THEN
            policy_name := pol.polname;
            excess := found;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.policies_granting_more(regclass) FROM PUBLIC;

-- Reads of every CRM table as every API role with no JWT, for real and in a subtransaction each,
-- LIMIT 1: the policies that recurse or read what the role may not read show up as the error a
-- request would get, and a row seen is a policy granting more than the role matrix (which shows
-- nothing to anyone unidentified). The diagnostic reports both ("policies:" rows).
CREATE FUNCTION @extschema@.policy_read_errors() RETURNS TABLE (table_name text, role_name text, error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    seen bigint;
    t text;
    rel regclass;
    r record;
BEGIN
    FOREACH t IN ARRAY @extschema@.crm_tables() LOOP
        rel := @extschema@.crm_table_oid(t);
        CONTINUE WHEN rel IS NULL;
        FOR r IN SELECT * FROM @extschema@.api_roles(rel) LOOP
            BEGIN
                -- With no JWT the role matrix shows nothing: a row seen is a policy granting more.
                seen := @extschema@.rows_seen_as(r.role, t, NULL, 1);
                -- (With row-level security off there is no policy to blame: the diagnostic
                -- reports those tables on their own.)
                IF seen > 0 AND @extschema@.matrix_expectation(t, 'no JWT') = 'nothing'
                   AND (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = rel) THEN
                    table_name := 'public.' || t;
                    role_name := r.rolname;
                    error := 'with no JWT it reads rows, which the role matrix keeps from anyone unidentified: a policy grants more (step 0008 drops it, keeping its definition)';
                    RETURN NEXT;
                END IF;
            EXCEPTION WHEN OTHERS THEN
                table_name := 'public.' || t;
                role_name := r.rolname;
                error := left(SQLERRM, 300);
                RETURN NEXT;
            END;
        END LOOP;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.policy_read_errors() FROM PUBLIC;

-- The wrapper in public that makes one of the guide's bare names reach the native function
-- @extschema@.<target>: the same arguments (defaults included) and result, read from the
-- target's own catalog entry, so that the two never drift; LANGUAGE sql with a SQL-standard body
-- (its dependency on the target is recorded: DROP EXTENSION asks for CASCADE), SECURITY INVOKER
-- (the target keeps its own checks), search_path pinned, EXECUTE for `grantee` only. A function
-- of that name and arguments that is not ours stays, and the answer says so: step 0008 moves the
-- CRM owner's own legacy ones first.
CREATE FUNCTION @extschema@.install_guide_wrapper(name text, target text, grantee text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t record;
    existing oid;
    call text;
BEGIN
    SELECT p.oid, p.proname, p.proretset, p.pronargs, pg_get_function_arguments(p.oid) AS args,
           pg_get_function_identity_arguments(p.oid) AS ident, oidvectortypes(p.proargtypes) AS types, pg_get_function_result(p.oid) AS result,
           CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END AS volatility,
           CASE p.proparallel WHEN 's' THEN 'PARALLEL SAFE' WHEN 'r' THEN 'PARALLEL RESTRICTED' ELSE 'PARALLEL UNSAFE' END AS parallel
    INTO STRICT t
    FROM pg_proc p WHERE p.pronamespace = '@extschema@'::regnamespace AND p.proname = target AND p.prokind = 'f';
    existing := to_regprocedure(format('public.%I(%s)', name, t.types));
    IF existing IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = existing
                                            AND d.refclassid = 'pg_proc'::regclass AND d.refobjid = t.oid) THEN
        RETURN format('public.%s(%s) exists and is not daznode_crm''s (owner %s): left alone', name, t.ident,
                      (SELECT p.proowner::regrole FROM pg_proc p WHERE p.oid = existing));
    END IF;
    IF existing IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION %s', existing::regprocedure);
    END IF;
    call := format('@extschema@.%I(%s)', target, (SELECT string_agg('$' || i, ', ') FROM generate_series(1, t.pronargs) AS i));
    EXECUTE format('CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE sql %s %s SET search_path = pg_catalog, pg_temp %s',
                   name, t.args, t.result, t.volatility, t.parallel,
                   CASE WHEN t.proretset THEN format('BEGIN ATOMIC SELECT * FROM %s; END', call) ELSE format('RETURN %s', call) END);
    existing := to_regprocedure(format('public.%I(%s)', name, t.types));
    PERFORM @extschema@.lock_down_function(existing::regprocedure);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', existing::regprocedure, grantee);
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', existing::regprocedure,
                   format('daznode_crm: the guide''s %s(), calling @extschema@.%s()', name, target));
    RETURN format('public.%s(%s) -> @extschema@.%s (EXECUTE: %s)', name, t.ident, target, grantee);
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.install_guide_wrapper(text, text, text) FROM PUBLIC;

-- Legacy objects of public that expose the CRM past its policies or shadow the guide's names,
-- sorted out by step 0008 (each reported in migration_findings with how to undo it):
-- - functions carrying a guide name (guide_function_names()) are renamed <name>_legacy, their
--   definition kept; nobody but their owner may call them, unless something still depends on
--   them (a policy, a view: then they keep their grants and the finding says so). The legacy
--   is_admin_user(uuid) gets a successor, public.is_admin_user(user_id uuid), which answers
--   about the caller and, for admins only, about someone else (is_admin_user_about());
-- - materialized views reading CRM tables (no RLS applies to them) lose the API roles' grants;
-- - views reading CRM tables with their owner's rights become security_invoker (PostgreSQL 15+),
--   so that the CRM's policies apply to whoever reads them.
CREATE FUNCTION @extschema@.sort_out_legacy_objects(step text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    f record;
    v record;
    owner oid := @extschema@.crm_owner();
    api text := (SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) FROM pg_roles
                 WHERE rolname IN ('anon', 'authenticated', 'service_role'));
    moved text[] := '{}';
    locked text[] := '{}';
    invoker text[] := '{}';
    users text;
    new_name text;
BEGIN
    FOR f IN
        SELECT p.oid, p.oid::regprocedure AS sig, p.proname::text AS name, pg_get_function_identity_arguments(p.oid) AS args,
               pg_get_functiondef(p.oid) AS def
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY (@extschema@.guide_function_names())
          AND p.proowner = owner AND p.prokind = 'f'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
          -- Ours (a successor made by an earlier run) stay.
          -- Ours (the wrappers of guide_api(), made by an earlier run) call a function of this
          -- schema through a SQL-standard body, a dependency a legacy function never has.
          AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_proc t ON t.oid = d.refobjid
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                            AND d.refclassid = 'pg_proc'::regclass AND t.pronamespace = '@extschema@'::regnamespace)
        ORDER BY 1
    LOOP
        new_name := f.name || '_legacy';
        WHILE EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.proname = new_name
                      AND pg_get_function_identity_arguments(p.oid) = f.args) LOOP
            new_name := new_name || '_';
        END LOOP;
        SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), ', ') INTO users
        FROM pg_depend d WHERE d.refclassid = 'pg_proc'::regclass AND d.refobjid = f.oid AND d.deptype = 'n';
        EXECUTE format('ALTER FUNCTION %s RENAME TO %I', f.sig, new_name);
        IF users IS NULL THEN
            EXECUTE format('REVOKE ALL ON FUNCTION public.%I(%s) FROM PUBLIC%s', new_name, f.args, coalesce(', ' || api, ''));
        END IF;
        INSERT INTO @extschema@.migration_findings (step, table_name, row_id, kind, detail)
        VALUES (step, format('public.%s(%s)', f.name, f.args), f.oid::regprocedure::text, 'legacy_function_moved',
                format('public.%s(%s) carried a name of the guide and would shadow daznode_crm''s: renamed public.%s%s. Its definition was: %s',
                       f.name, f.args, new_name,
                       CASE WHEN users IS NULL THEN ', executable by its owner only (GRANT EXECUTE to give it back)'
                            ELSE format(' with its grants, since %s still use(s) it', users) END,
                       left(f.def, 4000)));
        moved := moved || format('public.%s(%s) -> %s', f.name, f.args, new_name);
    END LOOP;
    -- Legacy functions moved earlier (this run or step 0000's) while a policy or view still used
    -- them: once nothing does, their owner's only.
    FOR f IN
        SELECT DISTINCT p.oid::regprocedure AS sig, m.table_name
        FROM @extschema@.migration_findings m
        JOIN pg_proc p ON p.oid = to_regprocedure(m.row_id)
        WHERE m.kind = 'legacy_function_moved' AND m.detail LIKE '%with its grants%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid AND d.deptype = 'n')
          AND (has_function_privilege('public', p.oid, 'EXECUTE')
               OR EXISTS (SELECT 1 FROM pg_roles ro WHERE ro.rolname IN ('anon', 'authenticated') AND has_function_privilege(ro.oid, p.oid, 'EXECUTE')))
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC%s', f.sig, coalesce(', ' || api, ''));
        INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
        VALUES (step, f.table_name, 'legacy_function_locked',
                format('%s: nothing uses it any more, executable by its owner only now (GRANT EXECUTE to give it back)', f.sig));
    END LOOP;

    -- The successor of the legacy is_admin_user(uuid), whatever daznode_crm.guide_api says: the
    -- app's rpc('is_admin_user') goes on, without the leak. Callable by everyone, like
    -- is_admin_user() itself, since it tells a non-admin nothing about anyone else.
    IF EXISTS (SELECT 1 FROM unnest(moved) m WHERE m LIKE 'public.is\_admin\_user(%') THEN
        PERFORM @extschema@.install_guide_wrapper(g.name, g.target, g.callable_by)
        FROM @extschema@.guide_api() g WHERE g.name = 'is_admin_user';
    END IF;

    FOR v IN
        SELECT DISTINCT c.oid::regclass AS rel, c.relkind
        FROM pg_class c
        JOIN pg_rewrite r ON r.ev_class = c.oid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm') AND c.relowner = owner
          AND d.refobjid IN (SELECT @extschema@.crm_table_oid(t) FROM unnest(@extschema@.crm_tables()) t)
          AND c.relname NOT IN ('crm_segments_stats_mv', 'crm_campaigns_analytics_mv', 'crm_performance_monitor')
          AND EXISTS (SELECT 1 FROM pg_roles ro WHERE ro.rolname IN ('anon', 'authenticated') AND has_table_privilege(ro.oid, c.oid, 'SELECT'))
        ORDER BY 1
    LOOP
        IF v.relkind = 'm' THEN
            EXECUTE format('REVOKE ALL ON %s FROM PUBLIC, %s', v.rel, (SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles WHERE rolname IN ('anon', 'authenticated')));
            INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
            VALUES (step, v.rel::text, 'legacy_matview_locked',
                    format('%s is a materialized view of CRM tables (no row-level security applies to it) that anon and authenticated could read: their grants were revoked. GRANT SELECT ON %s TO ... gives them back.', v.rel, v.rel));
            locked := locked || v.rel::text;
        ELSIF current_setting('server_version_num')::int >= 150000
              AND NOT coalesce((SELECT option_value::boolean FROM pg_options_to_table((SELECT reloptions FROM pg_class WHERE oid = v.rel))
                                WHERE option_name = 'security_invoker'), false) THEN
            EXECUTE format('ALTER VIEW %s SET (security_invoker = true)', v.rel);
            INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
            VALUES (step, v.rel::text, 'legacy_view_invoker',
                    format('%s read CRM tables with its owner''s rights, past their policies: it is now security_invoker, so each reader sees what the role matrix shows them. ALTER VIEW %s RESET (security_invoker) undoes it.', v.rel, v.rel));
            invoker := invoker || v.rel::text;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('functions_moved', to_jsonb(moved), 'matviews_locked', to_jsonb(locked), 'views_made_invoker', to_jsonb(invoker));
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.sort_out_legacy_objects(text) FROM PUBLIC;

-- 0008: row-level security on every CRM table, with the policies above. Legacy policies that
-- read admin_roles or call the legacy is_admin_user (the recursive ones) are dropped and
-- reported; other policies are kept and reported. The app's statistics views become
-- security_invoker, so RLS applies to whoever reads them (as the view owner they saw all).
CREATE FUNCTION @extschema@.step_access_control() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    pol record;
    dropped text[] := '{}';
    kept text[] := '{}';
    t text;
    g record;
    revoked text[] := '{}';
    admins constant text := '(SELECT daznode_crm.is_admin_user(''{super_admin,admin}''))';
    editors constant text := '(SELECT daznode_crm.is_admin_user(''{super_admin,admin,moderator}''))';
    anyone_admin constant text := '(SELECT daznode_crm.is_admin_user())';
    me constant text := '(SELECT daznode_crm.current_user_id())';
    legacy jsonb;
BEGIN
    FOR pol IN
        SELECT p.polname, p.polrelid::regclass AS tbl, p.polpermissive, p.polcmd,
               coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') AS expr,
               pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck,
               CASE WHEN p.polroles = '{0}' THEN 'PUBLIC' ELSE (SELECT string_agg(x::regrole::text, ', ') FROM unnest(p.polroles) x) END AS roles,
               api.names AS api_roles,
               format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, p.polrelid::regclass,
                      CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                      CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                      CASE WHEN p.polroles = '{0}' THEN 'PUBLIC' ELSE (SELECT string_agg(x::regrole::text, ', ') FROM unnest(p.polroles) x) END,
                      coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', ''),
                      coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '')) AS definition,
               CASE WHEN regexp_replace(regexp_replace(coalesce(pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)),
                                                       '\((auth\.uid\(\)|[a-z_]+)\)::text', '\1', 'g'), '::text', '', 'g') ~
                         ('^\(*\s*(\(\s*SELECT auth\.uid\(\) AS uid\)|auth\.uid\(\))\s*=\s*' || owner_col.c || '\s*\)*$|^\(*\s*' || owner_col.c
                          || '\s*=\s*(\(\s*SELECT auth\.uid\(\) AS uid\)|auth\.uid\(\))\s*\)*$')
                     AND (p.polwithcheck IS NULL OR p.polqual IS NULL OR pg_get_expr(p.polqual, p.polrelid) = pg_get_expr(p.polwithcheck, p.polrelid))
                    THEN owner_col.c || ' = auth.uid()' END AS owner_test,
               (SELECT string_agg(DISTINCT d.refobjid::regclass::text, ', ')
                FROM pg_depend d
                WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid AND d.refclassid = 'pg_class'::regclass
                  AND d.refobjid <> p.polrelid
                  AND EXISTS (SELECT 1 FROM pg_roles ro WHERE ro.rolname = ANY (api.list)
                              AND NOT has_table_privilege(ro.oid, d.refobjid, 'SELECT'))) AS unreadable
        FROM pg_policy p
        CROSS JOIN LATERAL (SELECT array_agg(rolname::text) AS list, string_agg(rolname, ', ') AS names
                            FROM pg_roles WHERE rolname IN ('anon', 'authenticated')) api
        CROSS JOIN LATERAL (SELECT CASE WHEN p.polrelid = to_regclass('public.profiles') THEN 'id'
                                        WHEN p.polrelid IN (to_regclass('public.orders'), to_regclass('public.subscriptions'), to_regclass('public.admin_roles'))
                                        THEN 'user_id' END AS c) owner_col
        WHERE p.polrelid IN (SELECT to_regclass('public.' || quote_ident(x)) FROM unnest(@extschema@.crm_tables()) AS x)
        ORDER BY 2::text, 1
    LOOP
        IF pol.polname LIKE 'daznode\_%' OR pol.expr ~ 'admin_roles' OR pol.expr ~ '(^|[^.])is_admin_user(_legacy_*)?\(' OR pol.expr ~ 'public\.is_admin_user' THEN
            EXECUTE format('DROP POLICY %I ON %s', pol.polname, pol.tbl);
            dropped := dropped || format('%s: %s', pol.tbl, pol.polname);
        ELSIF pol.owner_test IS NOT NULL AND pol.polcmd IN ('r', 'w') AND pol.polpermissive THEN
            -- `auth.uid() = id` (user_id on orders, subscriptions, admin_roles) FOR SELECT or
            -- UPDATE: the matrix's owner arm again, OR-ed with ours, one function call per row.
            INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
            VALUES ('0008_access_control', pol.tbl::text, 'policy_dropped_duplicate',
                    format('policy %I (%s) repeats the role matrix''s owner rule; it was: %s', pol.polname, pol.owner_test, pol.definition));
            EXECUTE format('DROP POLICY %I ON %s', pol.polname, pol.tbl);
            dropped := dropped || format('%s: %s (duplicates the matrix)', pol.tbl, pol.polname);
        ELSIF pol.owner_test IS NOT NULL THEN
            -- The same test for INSERT, DELETE or ALL: the owner may write what the matrix
            -- keeps for admins. Kept (the app may rely on it), reported as an error to decide.
            INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
            VALUES ('0008_access_control', pol.tbl::text, 'policy_grants_more',
                    format('ERROR: policy %I lets a user %s their own rows, which the role matrix keeps for admins; DROP POLICY %I ON %s; unless the app needs it. It is: %s',
                           pol.polname, CASE pol.polcmd WHEN 'a' THEN 'insert' WHEN 'd' THEN 'delete' ELSE 'insert, update and delete' END,
                           pol.polname, pol.tbl, pol.definition));
            kept := kept || format('%s: %s (grants more than the matrix: see migration_findings)', pol.tbl, pol.polname);
        ELSIF pol.unreadable IS NOT NULL THEN
            -- It reads a relation the API roles may not read (Supabase's auth.users, say): every
            -- read of the table would fail for them. Dropped; its definition kept for a human.
            INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
            VALUES ('0008_access_control', pol.tbl::text, 'policy_dropped_would_error',
                    format('policy %I reads %s, which %s may not read; it was: CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s',
                           pol.polname, pol.unreadable, pol.api_roles, pol.polname, pol.tbl,
                           CASE WHEN pol.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                           CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                           pol.roles, coalesce(' USING (' || pol.qual || ')', ''), coalesce(' WITH CHECK (' || pol.withcheck || ')', '')));
            EXECUTE format('DROP POLICY %I ON %s', pol.polname, pol.tbl);
            dropped := dropped || format('%s: %s (would error: reads %s)', pol.tbl, pol.polname, pol.unreadable);
        ELSE
            kept := kept || format('%s: %s', pol.tbl, pol.polname);
        END IF;
    END LOOP;

    FOREACH t IN ARRAY @extschema@.crm_tables() LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        -- TRUNCATE ignores RLS, TRIGGER runs the grantee's code as whoever writes, REFERENCES
        -- lets another table lock this one: the owner's alone (Supabase's default privileges
        -- give them to anon, authenticated and service_role).
        FOR g IN
            SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee
            FROM pg_class c, aclexplode(c.relacl) AS a
            WHERE c.oid = format('public.%I', t)::regclass AND a.grantee <> c.relowner
              AND a.privilege_type IN ('TRUNCATE', 'TRIGGER', 'REFERENCES')
        LOOP
            EXECUTE format('REVOKE TRUNCATE, TRIGGER, REFERENCES ON public.%I FROM %s', t, g.grantee);
            revoked := revoked || format('public.%s: %s', t, g.grantee);
        END LOOP;
    END LOOP;
    -- The renamed legacy users table holds passwords: its owner's only (also on databases
    -- consolidated by an earlier version, before step 0004 did this itself).
    IF to_regclass('public.users_backup') IS NOT NULL
       AND (SELECT c.relowner FROM pg_class c WHERE c.oid = to_regclass('public.users_backup')) = @extschema@.crm_owner() THEN
        PERFORM @extschema@.lock_down('public.users_backup'::regclass);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
               WHERE tgrelid = 'public.profiles'::regclass AND tgname = 'daznode_guard_profile_columns') THEN
        DROP TRIGGER daznode_guard_profile_columns ON public.profiles;
    END IF;
    CREATE TRIGGER daznode_guard_profile_columns BEFORE UPDATE ON public.profiles
        FOR EACH ROW EXECUTE FUNCTION @extschema@.guard_profile_columns();

    -- One SELECT policy per table, the admin test first: PostgreSQL ORs permissive policies and
    -- evaluates left to right, so for an admin the per-row part is a constant. Writes get their
    -- own policies (FOR INSERT / UPDATE / DELETE), so they add nothing to reads.
    EXECUTE format('CREATE POLICY daznode_admin_all ON public.crm_customer_segments USING (%s) WITH CHECK (%s)', admins, admins);
    EXECUTE format('CREATE POLICY daznode_admin_all ON public.crm_customer_segment_members USING (%s) WITH CHECK (%s)', admins, admins);
    EXECUTE format('CREATE POLICY daznode_editor_all ON public.crm_email_templates USING (%s) WITH CHECK (%s)', editors, editors);
    EXECUTE format('CREATE POLICY daznode_editor_all ON public.crm_email_campaigns USING (%s) WITH CHECK (%s)', editors, editors);
    PERFORM @extschema@.create_email_sends_policies();

    EXECUTE format('CREATE POLICY daznode_read ON public.profiles FOR SELECT USING (%s OR id = %s)', anyone_admin, me);
    PERFORM @extschema@.create_write_policies('profiles', admins, format('%s OR id = %s', admins, me));
    FOREACH t IN ARRAY ARRAY['orders', 'subscriptions'] LOOP
        EXECUTE format('CREATE POLICY daznode_read ON public.%I FOR SELECT USING (%s OR user_id = %s)', t, anyone_admin, me);
        PERFORM @extschema@.create_write_policies(t, admins);
    END LOOP;
    -- Sessions keep the roles they looked up across transactions; this trigger tells them when
    -- admin_roles changes (a relcache invalidation, delivered at their next transaction).
    -- ENABLE ALWAYS: writes in replica mode (a subscriber, a restore) count too.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
               WHERE tgrelid = 'public.admin_roles'::regclass AND tgname = 'daznode_admin_roles_changed') THEN
        DROP TRIGGER daznode_admin_roles_changed ON public.admin_roles;
    END IF;
    CREATE TRIGGER daznode_admin_roles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.admin_roles
        FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.admin_roles_changed();
    ALTER TABLE public.admin_roles ENABLE ALWAYS TRIGGER daznode_admin_roles_changed;
    EXECUTE format('CREATE POLICY daznode_read ON public.admin_roles FOR SELECT USING (%s OR user_id = %s)',
                   '(SELECT daznode_crm.is_admin_user(''{super_admin}''))', me);
    PERFORM @extschema@.create_write_policies('admin_roles', '(SELECT daznode_crm.is_admin_user(''{super_admin}''))');

    IF current_setting('server_version_num')::int >= 150000 THEN
        ALTER VIEW IF EXISTS public.crm_segment_stats SET (security_invoker = true);
        ALTER VIEW IF EXISTS public.crm_campaign_stats SET (security_invoker = true);
    END IF;

    legacy := @extschema@.sort_out_legacy_objects('0008_access_control');

    -- Legacy policies that widen reads beyond the matrix (USING (true), user_id IS NULL, ...):
    -- tried one by one with ours, dropped when they show a requester more rows than the matrix
    -- says, and kept as ERROR findings with their definition, for a human to recreate on purpose.
    FOR pol IN
        SELECT p.polrelid::regclass AS tbl, gm.policy_name, gm.excess,
               format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, p.polrelid::regclass,
                      CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                      CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                      CASE WHEN p.polroles = '{0}' THEN 'PUBLIC' ELSE (SELECT string_agg(x::regrole::text, ', ') FROM unnest(p.polroles) x) END,
                      coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', ''),
                      coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '')) AS definition
        FROM unnest(@extschema@.crm_tables()) AS x(t)
        CROSS JOIN LATERAL @extschema@.policies_granting_more(format('public.%I', x.t)::regclass) AS gm
        JOIN pg_policy p ON p.polrelid = format('public.%I', x.t)::regclass AND p.polname = gm.policy_name
    LOOP
        INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
        VALUES ('0008_access_control', pol.tbl::text, 'policy_dropped_grants_more',
                format('ERROR: policy %I showed more than the role matrix (%s); dropped. Recreate it only if the app must: %s',
                       pol.policy_name, pol.excess, pol.definition));
        EXECUTE format('DROP POLICY %I ON %s', pol.policy_name, pol.tbl);
        dropped := dropped || format('%s: %s (grants more reads than the matrix)', pol.tbl, pol.policy_name);
        kept := array_remove(kept, format('%s: %s', pol.tbl, pol.policy_name));
    END LOOP;
    -- The rest stay (they add nothing the matrix does not show, on today's rows): reported.
    INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
    SELECT '0008_access_control', split_part(k, ': ', 1), 'policy_kept',
           format('policy %s was kept: OR-ed with the matrix''s, it showed no requester more rows today; review it', split_part(k, ': ', 2))
    FROM unnest(kept) AS k
    WHERE k NOT LIKE '%(grants more than the matrix%';

    RETURN jsonb_build_object('self_check', @extschema@.check_role_matrix(),
                              'rls_enabled_on', to_jsonb(@extschema@.crm_tables()),
                              'policies_dropped', to_jsonb(dropped), 'other_policies_kept', to_jsonb(kept),
                              'role_cache_trigger', 'public.admin_roles: daznode_admin_roles_changed',
                              'privileges_revoked', to_jsonb(revoked), 'legacy_objects', legacy,
                              'profile_columns_guard', 'public.profiles: daznode_guard_profile_columns');
END
$step$;

-- 0009: the guide's materialized views, with the rates of rates.sql, and its monitor view.
-- PostgREST exposes public, and no row-level security applies to a materialized view: the views
-- themselves live in schema crm_private (the CRM owner's, not exposed), readable by their owner
-- only, and public gets, under the guide's names, views that admins read and nobody else:
--   public.crm_segments_stats_mv      (super_admin, admin)
--   public.crm_campaigns_analytics_mv (super_admin, admin, moderator)
-- Each is security_invoker (Supabase's linter: no security_definer_view) and reads a SECURITY
-- DEFINER function of crm_private owned by the CRM owner, which returns the rows only when
-- is_admin_user() says so: it reads the owner's own materialized view and runs nothing else.
CREATE FUNCTION @extschema@.step_analytics_views(populate boolean DEFAULT true) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    created text[] := '{}';
    o text;
    v text;
    schema_owner oid := (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'crm_private');
BEGIN
    FOREACH o IN ARRAY ARRAY['crm_segments_stats_mv', 'crm_campaigns_analytics_mv', 'crm_performance_monitor'] LOOP
        PERFORM @extschema@.refuse_foreign_object(o);
    END LOOP;
    IF schema_owner IS NULL THEN
        CREATE SCHEMA crm_private;
        created := created || 'schema crm_private'::text;
    ELSIF schema_owner IS DISTINCT FROM (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'daznode_crm: schema crm_private already exists and belongs to %, not to the CRM owner', schema_owner::regrole
            USING ERRCODE = 'insufficient_privilege', HINT = 'Rename it (ALTER SCHEMA crm_private RENAME TO ...), then CALL daznode_crm.migrate() again.';
    END IF;
    -- Usage only: the invoker views call its functions; its materialized views stay the owner's.
    REVOKE ALL ON SCHEMA crm_private FROM PUBLIC;
    GRANT USAGE ON SCHEMA crm_private TO PUBLIC;
    COMMENT ON SCHEMA crm_private IS 'daznode_crm: the CRM''s materialized views, out of PostgREST''s reach (its owner''s only); admins read them through public.crm_segments_stats_mv and public.crm_campaigns_analytics_mv.';

    IF to_regclass('crm_private.crm_segments_stats_mv') IS NULL THEN
        CREATE MATERIALIZED VIEW crm_private.crm_segments_stats_mv AS
        SELECT s.id, s.name, s.description, s.criteria, s.auto_update, s.created_at, s.updated_at,
               count(m.customer_id) AS member_count
        FROM public.crm_customer_segments s
        LEFT JOIN public.crm_customer_segment_members m ON m.segment_id = s.id
        GROUP BY s.id;
        CREATE UNIQUE INDEX crm_segments_stats_mv_id ON crm_private.crm_segments_stats_mv (id);
        created := created || 'crm_private.crm_segments_stats_mv'::text;
    END IF;
    IF to_regclass('crm_private.crm_campaigns_analytics_mv') IS NULL THEN
        -- populate => false when the partitioning swap rebuilds it: filled after the swap commits.
        -- The columns and counts of core/src/analytics.rs (the live counts of step 0011 have the same).
        EXECUTE 'CREATE MATERIALIZED VIEW crm_private.crm_campaigns_analytics_mv AS ' || @extschema@.campaign_counts_sql('analytics_from_rows')
            || CASE WHEN populate THEN '' ELSE ' WITH NO DATA' END;
        CREATE UNIQUE INDEX crm_campaigns_analytics_mv_id ON crm_private.crm_campaigns_analytics_mv (id);
        CREATE INDEX crm_campaigns_analytics_mv_created ON crm_private.crm_campaigns_analytics_mv (created_at DESC, id);
        created := created || 'crm_private.crm_campaigns_analytics_mv'::text;
    END IF;
    PERFORM @extschema@.lock_down('crm_private.crm_segments_stats_mv'::regclass);
    PERFORM @extschema@.lock_down('crm_private.crm_campaigns_analytics_mv'::regclass);

    -- PL/pgSQL returning the materialized view's columns (read from its catalog entry): no
    -- recorded dependency on it, so that pg_dump orders its sections cleanly and the swap can
    -- rebuild the view under the function.
    FOR o, v IN SELECT * FROM (VALUES ('crm_segments_stats', '{super_admin,admin}'), ('crm_campaigns_analytics', '{super_admin,admin,moderator}')) AS x LOOP
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION crm_private.%1$I() RETURNS TABLE (%2$s)
            LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
            BEGIN
                IF (SELECT @extschema@.is_admin_user(%3$L)) THEN
                    RETURN QUERY SELECT * FROM crm_private.%4$I;
                END IF;
            END $body$$f$,
            o || '_for_admins',
            (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
             FROM pg_attribute a WHERE a.attrelid = format('crm_private.%I', o || '_mv')::regclass AND a.attnum > 0 AND NOT a.attisdropped),
            v, o || '_mv');
    END LOOP;
    PERFORM @extschema@.lock_down_function('crm_private.crm_segments_stats_for_admins()'::regprocedure);
    PERFORM @extschema@.lock_down_function('crm_private.crm_campaigns_analytics_for_admins()'::regprocedure);
    GRANT EXECUTE ON FUNCTION crm_private.crm_segments_stats_for_admins(), crm_private.crm_campaigns_analytics_for_admins() TO PUBLIC;

    CREATE OR REPLACE VIEW public.crm_segments_stats_mv WITH (security_invoker = true) AS
    SELECT * FROM crm_private.crm_segments_stats_for_admins();
    CREATE OR REPLACE VIEW public.crm_campaigns_analytics_mv WITH (security_invoker = true) AS
    SELECT * FROM crm_private.crm_campaigns_analytics_for_admins();
    -- Readable by everyone (the rows come only for admins); nothing else (no TRIGGER, no writes).
    PERFORM @extschema@.lock_down('public.crm_segments_stats_mv'::regclass);
    PERFORM @extschema@.lock_down('public.crm_campaigns_analytics_mv'::regclass);
    GRANT SELECT ON public.crm_segments_stats_mv, public.crm_campaigns_analytics_mv TO PUBLIC;

    -- The guide's monitor: what diagnose_crm_performance() judges, as raw figures. It reads
    -- statistics views every role may read: security_invoker, for the maintenance role.
    CREATE OR REPLACE VIEW public.crm_performance_monitor WITH (security_invoker = true) AS
    SELECT s.relname AS table_name, pg_size_pretty(pg_total_relation_size(s.relid)) AS total_size,
           s.n_live_tup AS live_rows, s.n_dead_tup AS dead_rows, s.seq_scan, s.idx_scan,
           s.last_autovacuum, s.last_autoanalyze,
           round(100.0 * io.heap_blks_hit / nullif(io.heap_blks_hit + io.heap_blks_read, 0), 2) AS cache_hit_pct
    FROM pg_stat_user_tables s JOIN pg_statio_user_tables io USING (relid)
    WHERE s.schemaname = 'public' AND s.relname = ANY (@extschema@.crm_tables());
    PERFORM @extschema@.lock_down('public.crm_performance_monitor'::regclass);
    GRANT SELECT ON public.crm_performance_monitor TO daznode_crm_maintenance;

    RETURN jsonb_build_object('created', to_jsonb(created),
                              'admin_sources', jsonb_build_array('public.crm_segments_stats_mv', 'public.crm_campaigns_analytics_mv'),
                              'monitor', 'public.crm_performance_monitor');
END
$step$;

-- 0000: the guide's names reach the native functions. The guide and the DazNode app call
-- run_pre_migration_diagnostic(), cleanup_orphaned_records(), diagnose_crm_performance(),
-- refresh_crm_materialized_views(), cleanup_old_email_partitions(), is_admin_user(), the
-- validators, bare: from the SQL Editor (search_path "$user", public, extensions), from pg_cron
-- and as PostgREST RPCs (public only). Each gets its wrapper in public (guide_api(),
-- install_guide_wrapper()); a legacy function of the same name was moved by step 0008 (again
-- here, for one made since). SET daznode_crm.guide_api = off (before migrate(), or in the
-- database's settings) leaves public alone: the step then records that it skipped.
CREATE FUNCTION @extschema@.step_guide_api() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $step$
DECLARE
    installed text[] := '{}';
    legacy jsonb;
BEGIN
    IF lower(coalesce(current_setting('daznode_crm.guide_api', true), 'on')) IN ('off', 'false', '0', 'no') THEN
        RETURN jsonb_build_object('skipped', 'daznode_crm.guide_api is off: the guide''s names are not installed in public; SELECT daznode_crm.step_guide_api() installs them later');
    END IF;
    legacy := @extschema@.sort_out_legacy_objects('0000_guide_api');
    SELECT coalesce(array_agg(@extschema@.install_guide_wrapper(g.name, g.target, g.callable_by) ORDER BY g.name), '{}')
    INTO installed FROM @extschema@.guide_api() g;
    INSERT INTO @extschema@.migration_findings (step, table_name, kind, detail)
    SELECT '0000_guide_api', split_part(i, ' ', 1), 'guide_name_taken',
           'ERROR: ' || i || '; the guide''s bare call of that name does not reach daznode_crm: rename or drop it, then SELECT daznode_crm.step_guide_api()'
    FROM unnest(installed) AS i WHERE i LIKE '%left alone';
    RETURN jsonb_build_object('wrappers', to_jsonb(installed), 'legacy_objects', legacy);
END
$step$;
REVOKE ALL ON FUNCTION @extschema@.step_guide_api() FROM PUBLIC;

-- Policies run with the caller's privileges: every role may call is_admin_user() and
-- current_user_id() (they answer only about the caller). The schema's other objects keep their
-- own grants (maintenance functions and tables are not PUBLIC).
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.step_access_control(), @extschema@.step_analytics_views(boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.refresh_segment(uuid), @extschema@.refresh_auto_update_segments() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.refresh_segment(uuid), @extschema@.refresh_auto_update_segments() TO daznode_crm_maintenance;
-- What CALL daznode_crm.migrate() needs when the CRM owner runs it (a maintenance member).
GRANT EXECUTE ON FUNCTION @extschema@.step_access_control(), @extschema@.step_analytics_views(boolean),
    @extschema@.create_write_policies(text, text, text), @extschema@.create_email_sends_policies(),
    @extschema@.admin_roles_changed(), @extschema@.guard_profile_columns(), @extschema@.check_role_matrix(), @extschema@.matrix_reads(text), @extschema@.policies_granting_more(regclass),
    @extschema@.sort_out_legacy_objects(text), @extschema@.is_admin_user_about(uuid), @extschema@.guide_function_names(),
    @extschema@.guide_api(), @extschema@.install_guide_wrapper(text, text, text), @extschema@.step_guide_api(),
    @extschema@.policy_read_errors(), @extschema@.api_roles(regclass),
    @extschema@.rows_seen_as(oid, text, text, bigint) TO daznode_crm_maintenance;
REVOKE ALL ON FUNCTION @extschema@.rows_seen_as(oid, text, text, bigint) FROM PUBLIC;

-- src/api/mod.rs:70
-- requires:
--   access
--   partitions::cleanup_old_email_partitions
--   partitions::email_sends_partition_months
--   server::refuse_on_standby_sql
--   server::partition_disk_verdict
--   server::progress_name
--   server::progress_of

-- Partitioning of crm_email_sends: the guide's "complete" migration, its rollback, and
-- the monthly maintenance of the partitions.
--
-- Layout: public.crm_email_sends PARTITION BY RANGE (created_at), one partition a month named
-- crm_email_sends_pYYYYMM from midnight UTC on the 1st to the next (the same instants whatever
-- the time zone), and crm_email_sends_default. created_at is new: the legacy table has none,
-- and sent_at is NULL for pending and failed sends, so it is backfilled with the first
-- timestamp a row has, coalesce(sent_at, opened_at, clicked_at, bounced_at), or the time the
-- migration started. Primary key (id, created_at).
--
-- The copy is online and takes no row lock: a trigger logs the id of every write on the old
-- table while its rows are copied in committed batches into the new one (no indexes yet); the
-- log is replayed (each logged row deleted from the copy and copied again in its current
-- version), the indexes are built in bulk, the log replayed until short, both tables compared
-- (count and a content hash, in one snapshot) and swapped in one short transaction that replays
-- the last few ids under the lock (the pg_repack approach; writers wait only for that). After
-- the swap a reverse trigger keeps the old table, crm_email_sends_backup, in sync, so
-- rollback_email_sends_partitioning() loses nothing; finish_email_sends_partitioning() ends
-- that once you are sure.

-- Whether public.crm_email_sends is partitioned: the one test every caller (SQL and Rust) uses.
CREATE FUNCTION @extschema@.email_sends_partitioned() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT coalesce((SELECT c.relkind = 'p' FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass('public.crm_email_sends')), false)
$fn$;

-- The partitions of public.crm_email_sends, by oid, with their bounds parsed once: kind is
-- 'monthly' (public.crm_email_sends_pYYYYMM bounded by exactly that UTC month), 'default'
-- (public.crm_email_sends_default) or 'unexpected' (another schema, name or bound). Reads only
-- the catalog, so it runs on a hot standby too.
CREATE FUNCTION @extschema@.email_sends_partitions()
RETURNS TABLE (rel regclass, nspname text, relname text, bound text, range_start timestamptz, range_end timestamptz, kind text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT c.oid::regclass, n.nspname::text, c.relname::text, b.bound, b.s, b.e,
           CASE WHEN b.bound = 'DEFAULT' THEN
                    CASE WHEN n.nspname = 'public' AND c.relname = 'crm_email_sends_default' THEN 'default' ELSE 'unexpected' END
                WHEN n.nspname = 'public' AND c.relname ~ '^crm_email_sends_p[0-9]{6}$' AND b.s IS NOT NULL AND b.e IS NOT NULL
                     AND b.s = (to_timestamp(substr(c.relname, 18), 'YYYYMM')::timestamp AT TIME ZONE 'UTC')
                     AND b.e = ((to_timestamp(substr(c.relname, 18), 'YYYYMM')::timestamp + interval '1 month') AT TIME ZONE 'UTC')
                    THEN 'monthly'
                ELSE 'unexpected' END
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) g
    CROSS JOIN LATERAL (
        SELECT g.bound,
               CASE WHEN g.bound ~ '^FOR VALUES FROM \(''[^'']+''\) TO \(''[^'']+''\)$'
                    THEN substring(g.bound FROM 'FROM \(''([^'']+)''')::timestamptz END AS s,
               CASE WHEN g.bound ~ '^FOR VALUES FROM \(''[^'']+''\) TO \(''[^'']+''\)$'
                    THEN substring(g.bound FROM 'TO \(''([^'']+)''')::timestamptz END AS e) b
    WHERE i.inhparent = pg_catalog.to_regclass('public.crm_email_sends')
$fn$;
REVOKE ALL ON FUNCTION @extschema@.email_sends_partitioned(), @extschema@.email_sends_partitions() FROM PUBLIC;
-- They read only what pg_catalog shows everyone.
GRANT EXECUTE ON FUNCTION @extschema@.email_sends_partitioned(), @extschema@.email_sends_partitions() TO PUBLIC;

-- Column list helpers: the old table's columns, in order, as the mirror triggers need them.
CREATE FUNCTION @extschema@.email_sends_column_lists(rel regclass, OUT cols text, OUT new_values text, OUT assignments text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum),
           string_agg('NEW.' || quote_ident(attname), ', ' ORDER BY attnum),
           string_agg(format('%I = NEW.%I', attname, attname), ', ' ORDER BY attnum)
    FROM pg_attribute
    WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped AND attname <> 'created_at'
$$;

-- A SECURITY DEFINER trigger function in public that applies every row write of the
-- partitioned table to the backup, by id (the reverse mirror that keeps a rollback lossless).
CREATE FUNCTION @extschema@.create_email_sends_mirror(fn_name text, target regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    l record;
BEGIN
    SELECT * INTO l FROM @extschema@.email_sends_column_lists(target);
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION public.%1$I() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
        BEGIN
            -- The target dropped by hand (the guide's own "DROP TABLE IF EXISTS
            -- crm_email_sends_backup CASCADE"): the app's writes go on, unmirrored.
            IF to_regclass(%6$L) IS NULL THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'INSERT' THEN
                INSERT INTO %2$s (%3$s) VALUES (%4$s);
            ELSIF TG_OP = 'UPDATE' THEN
                UPDATE %2$s SET %5$s WHERE id = OLD.id;
            ELSE
                DELETE FROM %2$s WHERE id = OLD.id;
            END IF;
            RETURN NULL;
        END $body$$f$,
        fn_name, target, l.cols, l.new_values, l.assignments, target::text);
    PERFORM @extschema@.lock_down_function(format('public.%I()', fn_name)::regprocedure);
    -- It writes the backup as the backup's owner, so that the owner's triggers there run with
    -- the owner's rights, never with those of whoever ran the step.
    IF (SELECT c.relowner FROM pg_class c WHERE c.oid = target) <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
        EXECUTE format('ALTER FUNCTION public.%I() OWNER TO %s', fn_name, (SELECT c.relowner::regrole FROM pg_class c WHERE c.oid = target));
    END IF;
END
$fn$;

-- A function the extension creates in public: executable by nobody but its owner (Supabase's
-- default privileges grant EXECUTE on new functions to the API roles, and PostgREST exposes
-- public's functions). Trigger functions need no EXECUTE to fire.
CREATE FUNCTION @extschema@.lock_down_function(fn regprocedure) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    g record;
BEGIN
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    FOR g IN
        SELECT DISTINCT a.grantee::regrole::text AS grantee
        FROM pg_proc p, aclexplode(p.proacl) AS a
        WHERE p.oid = fn AND a.grantee <> p.proowner AND a.grantee <> 0
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %s', fn, g.grantee);
    END LOOP;
END
$fn$;

-- Renames a table's constraints and its other indexes from one prefix to another.
CREATE FUNCTION @extschema@.rename_email_sends_objects(rel regclass, from_prefix text, to_prefix text, index_suffix text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = rel AND conname LIKE from_prefix || '%' LOOP
        EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', rel, r.conname, to_prefix || substr(r.conname, length(from_prefix) + 1));
    END LOOP;
    FOR r IN
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = rel AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
    LOOP
        CONTINUE WHEN index_suffix = '' AND r.relname !~ '_backup$';
        EXECUTE format('ALTER INDEX public.%I RENAME TO %I', r.relname,
                       CASE WHEN index_suffix = '' THEN regexp_replace(r.relname, '_backup$', '') ELSE r.relname || index_suffix END);
    END LOOP;
END
$fn$;

-- The app's views, materialized views and triggers on crm_email_sends (not the guide's), kept
-- across the swap: their definitions are read while `rel` still carries the name
-- crm_email_sends, so that, run again after the renames, they resolve to the table that carries
-- it then. Kept in a session temp table until restore_app_dependents() (in the swap's
-- transaction) and refresh_app_matviews() (after its commit).
CREATE FUNCTION @extschema@.save_app_dependents(rel regclass) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    n int;
BEGIN
    IF to_regclass('pg_temp.daznode_app_dependents') IS NOT NULL THEN
        DROP TABLE pg_temp.daznode_app_dependents;
    END IF;
    CREATE TEMP TABLE daznode_app_dependents (ord int, kind "char", name text, def text, acl aclitem[], opts text[],
                                              indexes text[], note text, populated boolean DEFAULT false);
    INSERT INTO pg_temp.daznode_app_dependents (ord, kind, name, def, acl, opts, indexes, note)
    SELECT row_number() OVER (ORDER BY c.oid), c.relkind, c.oid::regclass::text, pg_get_viewdef(c.oid), c.relacl, c.reloptions,
           ARRAY(SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = c.oid ORDER BY i.indexrelid),
           obj_description(c.oid, 'pg_class')
    FROM pg_class c
    WHERE c.oid IN (SELECT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = rel AND r.ev_class <> rel)
      AND c.oid <> ALL (array_remove(ARRAY[to_regclass('crm_private.crm_campaigns_analytics_mv'), to_regclass('public.crm_campaign_stats'),
                                          to_regclass('public.crm_segment_stats')]::oid[], NULL));
    INSERT INTO pg_temp.daznode_app_dependents (ord, kind, name, def)
    SELECT 100000 + row_number() OVER (ORDER BY t.tgname), 't', t.tgname, pg_get_triggerdef(t.oid)
    FROM pg_trigger t
    WHERE t.tgrelid = rel AND NOT t.tgisinternal AND t.tgname NOT LIKE 'daznode\_%';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

-- After the renames: the app's views run again on the table now named crm_email_sends (CREATE OR
-- REPLACE VIEW, their options put back), its materialized views rebuilt there WITH NO DATA with
-- their indexes, grants and comment (refreshed by refresh_app_matviews() once the swap commits),
-- and its triggers moved from `old` to it. A materialized view that other views read stops the
-- swap (42P10 would be a lie: 2BP01, nothing changed).
CREATE FUNCTION @extschema@.restore_app_dependents(old regclass) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    d record;
    g record;
    i text;
    done text[] := '{}';
BEGIN
    IF to_regclass('pg_temp.daznode_app_dependents') IS NULL THEN
        RETURN done;
    END IF;
    FOR d IN SELECT * FROM pg_temp.daznode_app_dependents ORDER BY ord LOOP
        IF d.kind = 'v' THEN
            EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', d.name, d.def);
            IF d.opts IS NOT NULL THEN
                EXECUTE format('ALTER VIEW %s SET (%s)', d.name, array_to_string(d.opts, ', '));
            END IF;
        ELSIF d.kind = 'm' THEN
            EXECUTE format('DROP MATERIALIZED VIEW %s', d.name);
            EXECUTE format('CREATE MATERIALIZED VIEW %s AS %s WITH NO DATA', d.name, rtrim(d.def, '; '));
            FOREACH i IN ARRAY d.indexes LOOP
                EXECUTE i;
            END LOOP;
            -- Exactly the grants it had: none of the default privileges a new relation gets.
            PERFORM @extschema@.lock_down(d.name::regclass);
            FOR g IN SELECT a.grantee, a.privilege_type FROM aclexplode(d.acl) a
                     WHERE a.grantee <> (SELECT c.relowner FROM pg_class c WHERE c.oid = d.name::regclass) LOOP
                EXECUTE format('GRANT %s ON %s TO %s', g.privilege_type, d.name, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END);
            END LOOP;
            IF d.note IS NOT NULL THEN
                EXECUTE format('COMMENT ON MATERIALIZED VIEW %s IS %L', d.name, d.note);
            END IF;
        ELSE
            EXECUTE format('DROP TRIGGER %I ON %s', d.name, old);
            EXECUTE d.def;
        END IF;
        done := done || format('%s %s', CASE d.kind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'trigger' END, d.name);
    END LOOP;
    RETURN done;
END
$fn$;

-- Once the swap has committed: the app's materialized views rebuilt WITH NO DATA are filled.
CREATE FUNCTION @extschema@.refresh_app_matviews() RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    d record;
    n int := 0;
BEGIN
    IF to_regclass('pg_temp.daznode_app_dependents') IS NULL THEN
        RETURN 0;
    END IF;
    FOR d IN SELECT * FROM pg_temp.daznode_app_dependents WHERE kind = 'm' ORDER BY ord LOOP
        EXECUTE format('REFRESH MATERIALIZED VIEW %s', d.name);
        n := n + 1;
    END LOOP;
    DROP TABLE pg_temp.daznode_app_dependents;
    RETURN n;
END
$fn$;

-- The views on crm_email_sends, rebuilt on whatever table has that name now (the stats view is
-- replaced, the materialized view recreated WITH NO DATA and filled by the caller once
-- committed). Anything else still reading `old` stops the caller's transaction.
CREATE FUNCTION @extschema@.repoint_email_sends_views(old regclass) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    had_mv boolean := to_regclass('crm_private.crm_campaigns_analytics_mv') IS NOT NULL;
    others text;
    moved text[];
BEGIN
    IF had_mv THEN
        DROP MATERIALIZED VIEW crm_private.crm_campaigns_analytics_mv CASCADE;
    END IF;
    IF to_regclass('public.crm_campaign_stats') IS NOT NULL THEN
        PERFORM @extschema@.step_stats_views();
        -- CREATE OR REPLACE VIEW resets the options: the views read as their reader again
        -- (step 0008), or they would show every send to whoever may read them.
        IF current_setting('server_version_num')::int >= 150000 THEN
            ALTER VIEW IF EXISTS public.crm_segment_stats SET (security_invoker = true);
            ALTER VIEW IF EXISTS public.crm_campaign_stats SET (security_invoker = true);
        END IF;
    END IF;
    IF had_mv THEN
        PERFORM @extschema@.step_analytics_views(false);
    END IF;
    -- The live campaign counter (step 0011) follows the name: the copy never fired it.
    PERFORM @extschema@.move_send_counter(old);
    -- The app's own (saved by save_app_dependents() before the renames) follow the table.
    moved := @extschema@.restore_app_dependents(old);
    IF cardinality(moved) > 0 THEN
        RAISE NOTICE 'daznode_crm: the app''s % follow public.crm_email_sends', array_to_string(moved, ', ');
    END IF;
    SELECT string_agg(DISTINCT r.ev_class::regclass::text, ', ') INTO others
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = old AND r.ev_class <> old;
    IF others IS NOT NULL THEN
        RAISE EXCEPTION 'daznode_crm: views other than the guide''s read % : %', old, others
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Drop or recreate them on public.crm_email_sends after the swap; nothing was changed.';
    END IF;
    RETURN had_mv;
END
$fn$;

-- The one lock-retry loop (migrate()'s steps, the swap, the retention cleanup): runs
-- `statements` in one subtransaction under the short migration lock_timeout, each with `lo` and
-- `hi` as $1 and $2 (unused by most), retrying up to `attempts` times when a lock is not
-- available. False when it never got its locks: then nothing of it was done. Any other error
-- undoes the subtransaction and goes to the caller. The locks taken stay held until the caller's
-- transaction ends.
CREATE FUNCTION @extschema@.run_with_lock_retries(statements text[], attempts int,
    lo timestamptz DEFAULT NULL, hi timestamptz DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    stmt text;
BEGIN
    FOR attempt IN 1..attempts LOOP
        BEGIN
            PERFORM @extschema@.set_lock_timeout_for_attempt(attempt);
            FOREACH stmt IN ARRAY statements LOOP
                EXECUTE stmt USING lo, hi;
            END LOOP;
            RETURN true;
        EXCEPTION WHEN lock_not_available THEN
            IF attempt < attempts THEN
                RAISE NOTICE 'daznode_crm: waited % for a lock (attempt %/%), retrying', @extschema@.migration_lock_timeout(), attempt, attempts;
                PERFORM @extschema@.lock_retry_pause(attempt);
            END IF;
        END;
    END LOOP;
    RETURN false;
END
$fn$;

-- Takes an ACCESS EXCLUSIVE lock on `rel` for the swap, or stops the caller's transaction cleanly.
CREATE FUNCTION @extschema@.lock_for_swap(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF NOT @extschema@.run_with_lock_retries(ARRAY[format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', rel)], 5) THEN
        RAISE EXCEPTION 'daznode_crm: could not lock % for the swap in 5 attempts', rel
            USING ERRCODE = 'lock_not_available', HINT = 'A long transaction uses it; run again when it is done. Nothing was changed.';
    END IF;
END
$fn$;

-- Applies the change log of the copy: takes every id the log holds (committed writes only; the
-- ids of writes still in flight stay for the next call), deletes their rows from the copy and
-- copies their current version from crm_email_sends. A row's latest write is always either
-- replayed here or still in the log. Leaves the ids in pg_temp.daznode_replayed until commit.
CREATE FUNCTION @extschema@.replay_email_sends_changes(cols text, copy_started timestamptz, skip_fk_checks boolean) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $fn$
DECLARE
    n bigint;
BEGIN
    IF to_regclass('pg_temp.daznode_replayed') IS NOT NULL THEN
        DROP TABLE pg_temp.daznode_replayed;
    END IF;
    CREATE TEMP TABLE daznode_replayed (id uuid PRIMARY KEY) ON COMMIT DROP;
    WITH l AS (DELETE FROM public.crm_email_sends_changes RETURNING id)
    INSERT INTO pg_temp.daznode_replayed SELECT DISTINCT l.id FROM l;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    ANALYZE pg_temp.daznode_replayed;
    IF skip_fk_checks THEN
        -- Reverted when this function returns (its SET clause scopes every setting).
        PERFORM set_config('session_replication_role', 'replica', true);
    END IF;
    DELETE FROM public.crm_email_sends_partitioned p USING pg_temp.daznode_replayed r WHERE p.id = r.id;
    EXECUTE format($q$
        INSERT INTO public.crm_email_sends_partitioned (%1$s, created_at)
        SELECT %1$s, coalesce(o.sent_at, o.opened_at, o.clicked_at, o.bounced_at, $1) FROM public.crm_email_sends o
        WHERE o.id IN (SELECT r.id FROM pg_temp.daznode_replayed r)$q$, cols) USING copy_started;
    RETURN n;
END
$fn$;

-- Compares crm_email_sends with its copy in one snapshot: row count and an order-independent
-- sum of per-row hashes (hash_record over every column but created_at). Rows whose id is in the
-- change log are left out (the next replay copies them again); with only_replayed, only the ids
-- of the last replay (pg_temp.daznode_replayed) are compared.
CREATE FUNCTION @extschema@.compare_email_sends(cols text, only_replayed boolean,
    OUT old_rows bigint, OUT new_rows bigint, OUT old_sum bigint, OUT new_sum bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    scope text := CASE WHEN only_replayed THEN 'AND t.id IN (SELECT r.id FROM pg_temp.daznode_replayed r)' ELSE '' END;
BEGIN
    IF only_replayed THEN
        -- A few ids: index lookups, no JIT (compiling would cost more than the lookups).
        PERFORM set_config('jit', 'off', true);
        IF to_regclass('pg_temp.daznode_replayed') IS NULL THEN
            old_rows := 0; new_rows := 0; old_sum := 0; new_sum := 0;
            RETURN;
        END IF;
    END IF;
    -- One scan of each table (in one statement, so one snapshot): its count and its hash sum.
    EXECUTE format($q$
        WITH o AS (SELECT count(*) AS n, coalesce(sum(hash_record(ROW(%1$s))), 0) AS h FROM public.crm_email_sends t
                   WHERE NOT EXISTS (SELECT 1 FROM public.crm_email_sends_changes c WHERE c.id = t.id) %2$s),
             p AS (SELECT count(*) AS n, coalesce(sum(hash_record(ROW(%1$s))), 0) AS h FROM public.crm_email_sends_partitioned t
                   WHERE NOT EXISTS (SELECT 1 FROM public.crm_email_sends_changes c WHERE c.id = t.id) %2$s)
        SELECT o.n, p.n, o.h, p.h FROM o, p$q$,
        cols, scope) INTO old_rows, new_rows, old_sum, new_sum;
END
$fn$;

-- 0010 (target 'complete'): a procedure, because the copy commits batch by batch.
CREATE PROCEDURE @extschema@.step_partition_email_sends(INOUT result jsonb DEFAULT NULL, force boolean DEFAULT false)
LANGUAGE plpgsql AS $proc$
DECLARE
    started timestamptz := pg_catalog.clock_timestamp();
    l record;
    first_month timestamp;
    has_orphans boolean;
    m record;
    n_partitions int := 0;
    n_blocks bigint;
    block bigint;
    blocks_per_batch constant int := 8000;
    inserted bigint;
    replayed bigint;
    verified bigint;
    copied bigint := 0;
    estimate bigint;
    v record;
    had_mv boolean;
    g record;
    is_superuser boolean;
    attempt int;
    no_room text;
    app_name text := pg_catalog.current_setting('application_name');
BEGIN
    PERFORM @extschema@.refuse_on_standby('migrate(''complete'')');
    IF pg_catalog.to_regclass('public.crm_email_sends') IS NULL THEN
        RAISE EXCEPTION 'daznode_crm: there is no public.crm_email_sends to partition' USING HINT = 'Run the safe steps first: CALL daznode_crm.migrate();';
    END IF;
    IF @extschema@.email_sends_partitioned() THEN
        result := pg_catalog.jsonb_build_object('skipped', 'public.crm_email_sends is already partitioned');
        RETURN;
    END IF;
    IF pg_catalog.to_regclass('public.crm_email_sends_backup') IS NOT NULL THEN
        RAISE EXCEPTION 'daznode_crm: public.crm_email_sends_backup already exists' USING ERRCODE = 'duplicate_table',
            HINT = 'Rename or drop it (a previous backup?), then CALL daznode_crm.migrate(''complete'') again.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = 'public.crm_email_sends'::regclass AND attname = 'created_at' AND NOT attisdropped) THEN
        RAISE EXCEPTION 'daznode_crm: public.crm_email_sends already has a created_at column, which this step would add' USING ERRCODE = 'duplicate_column';
    END IF;
    -- One scan of the sends, before any lock is taken: the first month, and the orphans, which the
    -- new table's foreign keys would reject (the cleanup handles them first).
    SELECT pg_catalog.date_trunc('month', pg_catalog.min(coalesce(e.sent_at, e.opened_at, e.clicked_at, e.bounced_at)) AT TIME ZONE 'UTC'),
           coalesce(pg_catalog.bool_or((e.campaign_id IS NOT NULL AND c.id IS NULL) OR (e.customer_id IS NOT NULL AND p.id IS NULL)), false)
    INTO first_month, has_orphans
    FROM public.crm_email_sends e
    LEFT JOIN public.crm_email_campaigns c ON c.id = e.campaign_id
    LEFT JOIN public.profiles p ON p.id = e.customer_id;
    IF has_orphans THEN
        RAISE EXCEPTION 'daznode_crm: some email sends point at a missing campaign or profile' USING ERRCODE = 'foreign_key_violation',
            HINT = 'SELECT * FROM daznode_crm.cleanup_orphaned_records(); sends of missing campaigns are report-only: delete them by hand if they are gone.';
    END IF;
    SELECT r.rolsuper INTO is_superuser FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
    PERFORM @extschema@.require_crm_owner('migrate(''complete'')');
    -- The copy writes the table and its indexes again, and as much WAL: refused below 1.2x that.
    no_room := @extschema@.partition_disk_verdict();
    IF no_room IS NOT NULL AND NOT force THEN
        RAISE EXCEPTION 'daznode_crm: not enough free disk for step 0010: %', no_room
            USING ERRCODE = 'disk_full',
                  HINT = 'Free space (or move the table to a larger tablespace), then CALL daznode_crm.migrate(''complete''); CALL daznode_crm.migrate(''complete'', force => true) skips this check.';
    END IF;
    PERFORM @extschema@.report_progress('0010', 'starting', 0, 0, started);
    -- Names this step creates: a leftover of an interrupted run is dropped below, but only when
    -- it is the CRM owner's; anything else stops the step.
    PERFORM @extschema@.refuse_foreign_object('crm_email_sends_partitioned');
    PERFORM @extschema@.refuse_foreign_object('crm_email_sends_changes');
    PERFORM @extschema@.refuse_foreign_object('crm_email_sends_default');

    -- Leftovers of an interrupted run: the old table was never touched but for the trigger.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = 'public.crm_email_sends'::regclass AND tgname = 'daznode_capture_email_sends') THEN
        DROP TRIGGER daznode_capture_email_sends ON public.crm_email_sends;
    END IF;
    IF pg_catalog.to_regprocedure('public.daznode_capture_email_sends()') IS NOT NULL THEN
        DROP FUNCTION public.daznode_capture_email_sends();
    END IF;
    IF pg_catalog.to_regclass('public.crm_email_sends_partitioned') IS NOT NULL THEN
        DROP TABLE public.crm_email_sends_partitioned;
        RAISE NOTICE 'daznode_crm: 0010_partition_email_sends: dropped the copy left by an interrupted run; starting over';
    END IF;
    IF pg_catalog.to_regclass('public.crm_email_sends_changes') IS NOT NULL THEN
        DROP TABLE public.crm_email_sends_changes;
    END IF;
    COMMIT;

    -- 1. The new table and its partitions, without indexes yet (bulk-built after the copy), and
    --    the capture trigger: from its commit on, every write on the old table logs the id it
    --    touched in crm_email_sends_changes (one short transaction).
    PERFORM pg_catalog.set_config('lock_timeout', @extschema@.migration_lock_timeout(), true);
    CREATE TABLE public.crm_email_sends_partitioned (
        LIKE public.crm_email_sends INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT crm_email_sends_partitioned_campaign_id_fkey FOREIGN KEY (campaign_id)
            REFERENCES public.crm_email_campaigns (id) ON DELETE CASCADE,
        CONSTRAINT crm_email_sends_partitioned_customer_id_fkey FOREIGN KEY (customer_id)
            REFERENCES public.profiles (id) ON DELETE CASCADE
    ) PARTITION BY RANGE (created_at);
    FOR m IN SELECT * FROM @extschema@.email_sends_partition_months(first_month AT TIME ZONE 'UTC', started) LOOP
        EXECUTE pg_catalog.format('CREATE TABLE public.%I PARTITION OF public.crm_email_sends_partitioned FOR VALUES FROM (%L) TO (%L)',
                                  m.partition_name, m.range_start, m.range_end);
        n_partitions := n_partitions + 1;
    END LOOP;
    CREATE TABLE public.crm_email_sends_default PARTITION OF public.crm_email_sends_partitioned DEFAULT;
    -- Unlogged: after a crash the run starts over anyway (the leftovers above).
    CREATE UNLOGGED TABLE public.crm_email_sends_changes (id uuid NOT NULL);
    -- None of them is reachable by the API roles: the copy gets the old table's grants and
    -- policies at the swap; the partitions and the log stay their owner's (RLS on, no policy:
    -- read through the parent, whose policies apply).
    PERFORM @extschema@.lock_down(c.oid::regclass)
    FROM pg_catalog.pg_class c
    WHERE c.oid = 'public.crm_email_sends_partitioned'::regclass OR c.oid = 'public.crm_email_sends_changes'::regclass
       OR c.oid IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = 'public.crm_email_sends_partitioned'::regclass);
    CREATE FUNCTION public.daznode_capture_email_sends() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO public.crm_email_sends_changes (id) VALUES (OLD.id);
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
            INSERT INTO public.crm_email_sends_changes (id) VALUES (NEW.id);
        END IF;
        RETURN NULL;
    END $body$;
    PERFORM @extschema@.lock_down_function('public.daznode_capture_email_sends()'::regprocedure);
    CREATE TRIGGER daznode_capture_email_sends AFTER INSERT OR UPDATE OR DELETE ON public.crm_email_sends
        FOR EACH ROW EXECUTE FUNCTION public.daznode_capture_email_sends();
    -- ALWAYS: writes made with session_replication_role = replica (a logical replication
    -- subscriber, a bulk load) are captured too.
    ALTER TABLE public.crm_email_sends ENABLE ALWAYS TRIGGER daznode_capture_email_sends;
    SELECT c.reltuples::bigint INTO estimate FROM pg_catalog.pg_class c WHERE c.oid = 'public.crm_email_sends'::regclass;
    RAISE NOTICE 'daznode_crm: 0010_partition_email_sends: % partitions created, copying about % rows', n_partitions + 1, greatest(estimate, 0);
    COMMIT;

    -- 2. The copy, in committed batches of pages, in physical order (a TID range scan: sequential
    --    reads), without locking a row: a row written meanwhile is in the change log, and the
    --    replay below copies its latest version again. Pages added after this point only hold
    --    rows written since, which the log has.
    SELECT * INTO l FROM @extschema@.email_sends_column_lists('public.crm_email_sends'::regclass);
    n_blocks := pg_catalog.pg_relation_size('public.crm_email_sends'::regclass) / pg_catalog.current_setting('block_size')::int;
    block := 0;
    WHILE block < n_blocks LOOP
        IF is_superuser THEN
            -- Foreign keys were checked above for every row; skip the per-row checks.
            PERFORM pg_catalog.set_config('session_replication_role', 'replica', true);
        END IF;
        EXECUTE pg_catalog.format($q$
            INSERT INTO public.crm_email_sends_partitioned (%1$s, created_at)
            SELECT %1$s, coalesce(o.sent_at, o.opened_at, o.clicked_at, o.bounced_at, $3) FROM public.crm_email_sends o
            WHERE o.ctid >= $1 AND o.ctid < $2$q$, l.cols)
        USING pg_catalog.format('(%s,0)', block)::tid, pg_catalog.format('(%s,0)', block + blocks_per_batch)::tid, started;
        GET DIAGNOSTICS inserted = ROW_COUNT;
        block := block + blocks_per_batch;
        copied := copied + inserted;
        PERFORM @extschema@.report_progress('0010', 'copying', copied, greatest(estimate, copied), started);
        RAISE NOTICE 'daznode_crm: 0010_partition_email_sends: copied % of about % rows (%s)', copied, greatest(estimate, copied),
            pg_catalog.round(EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started)::numeric, 1);
        COMMIT;
    END LOOP;

    -- 3. Replay the log once (the copy may hold an old version of a row, or two), then build the
    --    indexes on the copy (nothing else writes it: no writer waits), then replay again.
    replayed := @extschema@.replay_email_sends_changes(l.cols, started, is_superuser);
    COMMIT;
    PERFORM @extschema@.pause_for_tests('copied');
    PERFORM @extschema@.report_progress('0010', 'indexing', copied, copied, started);
    RAISE NOTICE 'daznode_crm: 0010_partition_email_sends: replayed % rows written during the copy; building indexes', replayed;
    ALTER TABLE public.crm_email_sends_partitioned ADD CONSTRAINT crm_email_sends_partitioned_pkey PRIMARY KEY (id, created_at);
    COMMIT;
    CREATE INDEX crm_email_sends_partitioned_campaign_customer ON public.crm_email_sends_partitioned (campaign_id, customer_id);
    COMMIT;
    CREATE INDEX crm_email_sends_partitioned_customer ON public.crm_email_sends_partitioned (customer_id);
    COMMIT;
    CREATE INDEX crm_email_sends_partitioned_campaign_stats ON public.crm_email_sends_partitioned (campaign_id)
        INCLUDE (status, sent_at, opened_at, clicked_at, bounced_at);
    COMMIT;
    RAISE NOTICE 'daznode_crm: 0010_partition_email_sends: indexes built (%s)', pg_catalog.round(EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started)::numeric, 1);
    PERFORM @extschema@.pause_for_tests('indexes built');
    PERFORM @extschema@.report_progress('0010', 'verifying', copied, copied, started);

    -- The copy's statistics, before the replays below plan their joins on it (and kept after
    -- the swap: no ANALYZE of the live table is needed then).
    ANALYZE public.crm_email_sends_partitioned;
    COMMIT;

    -- 4. Replay until the log is short, then compare both tables in one snapshot: the same
    --    rows with the same content (count and an order-independent sum of per-row hashes),
    --    leaving out the ids still in the log. From then on every replayed id is compared
    --    again right after its replay, so that every row is verified after its last write.
    FOR attempt IN 1..10 LOOP
        replayed := @extschema@.replay_email_sends_changes(l.cols, started, is_superuser);
        COMMIT;
        EXIT WHEN replayed < 1000;
    END LOOP;
    FOR attempt IN 1..3 LOOP
        SELECT * INTO v FROM @extschema@.compare_email_sends(l.cols, false);
        EXIT WHEN v.old_rows = v.new_rows AND v.old_sum = v.new_sum;
        RAISE NOTICE 'daznode_crm: 0010_partition_email_sends: % rows against %, replaying again (attempt %)', v.new_rows, v.old_rows, attempt;
        COMMIT;
        replayed := @extschema@.replay_email_sends_changes(l.cols, started, is_superuser);
        COMMIT;
    END LOOP;
    IF v.old_rows <> v.new_rows OR v.old_sum <> v.new_sum THEN
        RAISE EXCEPTION 'daznode_crm: the copy differs from crm_email_sends (% rows against %); nothing was swapped', v.new_rows, v.old_rows
            USING HINT = 'CALL daznode_crm.migrate(''complete'') again starts over; the old table is untouched.';
    END IF;
    verified := v.old_rows;
    RAISE NOTICE 'daznode_crm: 0010_partition_email_sends: % rows verified (count and content hash) (%s)', verified,
        pg_catalog.round(EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started)::numeric, 1);
    COMMIT;
    PERFORM @extschema@.pause_for_tests('verified');
    PERFORM @extschema@.report_progress('0010', 'swapping', verified, verified, started);
    -- Shorten the log as much as the writers allow, so that the swap replays only a few ids.
    FOR attempt IN 1..20 LOOP
        replayed := @extschema@.replay_email_sends_changes(l.cols, started, is_superuser);
        SELECT * INTO v FROM @extschema@.compare_email_sends(l.cols, true);
        IF v.old_rows <> v.new_rows OR v.old_sum <> v.new_sum THEN
            RAISE EXCEPTION 'daznode_crm: % replayed rows differ from crm_email_sends; nothing was swapped', replayed
                USING HINT = 'CALL daznode_crm.migrate(''complete'') again starts over; the old table is untouched.';
        END IF;
        COMMIT;
        EXIT WHEN replayed < 100;
    END LOOP;

    -- 5. The swap, one short transaction: writes wait only for the last replay and the renames.
    PERFORM @extschema@.lock_for_swap('public.crm_email_sends'::regclass);
    replayed := @extschema@.replay_email_sends_changes(l.cols, started, is_superuser);
    -- The rows replayed under the lock are compared too; nothing can change them now.
    SELECT * INTO v FROM @extschema@.compare_email_sends(l.cols, true);
    IF v.old_rows <> v.new_rows OR v.old_sum <> v.new_sum THEN
        RAISE EXCEPTION 'daznode_crm: the % rows replayed under the lock differ from crm_email_sends; nothing was swapped', replayed
            USING HINT = 'CALL daznode_crm.migrate(''complete'') again starts over; the old table is untouched.';
    END IF;
    DROP TRIGGER daznode_capture_email_sends ON public.crm_email_sends;
    DROP FUNCTION public.daznode_capture_email_sends();
    DROP TABLE public.crm_email_sends_changes;
    PERFORM @extschema@.save_app_dependents('public.crm_email_sends'::regclass);
    PERFORM @extschema@.rename_email_sends_objects('public.crm_email_sends'::regclass, 'crm_email_sends_', 'crm_email_sends_backup_', '_backup');
    ALTER TABLE public.crm_email_sends RENAME TO crm_email_sends_backup;
    ALTER TABLE public.crm_email_sends_partitioned RENAME TO crm_email_sends;
    PERFORM @extschema@.rename_email_sends_objects('public.crm_email_sends'::regclass, 'crm_email_sends_partitioned_', 'crm_email_sends_', '');
    ALTER INDEX public.crm_email_sends_partitioned_campaign_customer RENAME TO idx_email_sends_campaign_customer;
    ALTER INDEX public.crm_email_sends_partitioned_customer RENAME TO idx_email_sends_customer;
    ALTER INDEX public.crm_email_sends_partitioned_campaign_stats RENAME TO idx_email_sends_campaign_stats;
    FOR g IN
        SELECT a.grantee, a.privilege_type FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = 'public.crm_email_sends_backup'::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE pg_catalog.format('GRANT %s ON public.crm_email_sends TO %s', g.privilege_type,
                                  CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END);
    END LOOP;
    -- RLS is on since lock_down(); the old table's policies (step 0008) go with it.
    PERFORM @extschema@.create_email_sends_policies();
    had_mv := @extschema@.repoint_email_sends_views('public.crm_email_sends_backup'::regclass);
    -- From now on the backup follows every write, so that a rollback loses nothing.
    PERFORM @extschema@.create_email_sends_mirror('daznode_mirror_to_backup', 'public.crm_email_sends_backup'::regclass);
    CREATE TRIGGER daznode_mirror_to_backup AFTER INSERT OR UPDATE OR DELETE ON public.crm_email_sends
        FOR EACH ROW EXECUTE FUNCTION public.daznode_mirror_to_backup();
    ALTER TABLE public.crm_email_sends ENABLE ALWAYS TRIGGER daznode_mirror_to_backup;
    COMMIT;

    IF had_mv THEN
        REFRESH MATERIALIZED VIEW crm_private.crm_campaigns_analytics_mv;
        COMMIT;
    END IF;
    IF @extschema@.refresh_app_matviews() > 0 THEN
        COMMIT;
    END IF;
    PERFORM pg_catalog.set_config('application_name', app_name, false);
    result := pg_catalog.jsonb_build_object(
        'rows_copied', copied, 'rows_verified', verified, 'rows_replayed_at_swap', replayed, 'partitions', n_partitions + 1,
        'backup', 'public.crm_email_sends_backup, kept in sync until daznode_crm.finish_email_sends_partitioning()',
        'seconds', pg_catalog.round(EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started)::numeric, 1));
END
$proc$;

-- Back to the unpartitioned table: the backup (kept in sync by the reverse mirror since the
-- swap) becomes crm_email_sends again, in one short transaction; the partitioned table is kept
-- as crm_email_sends_partitioned until the next migrate('complete') or a DROP.
CREATE FUNCTION @extschema@.rollback_email_sends_partitioning() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    n_current bigint;
    n_backup bigint;
    had_mv boolean;
    app_name text := pg_catalog.current_setting('application_name');
BEGIN
    PERFORM @extschema@.refuse_on_standby('rollback_email_sends_partitioning()');
    PERFORM @extschema@.require_crm_owner('rollback_email_sends_partitioning()');
    PERFORM @extschema@.report_progress('rollback', 'swapping-back', 0, 0, pg_catalog.clock_timestamp());
    IF NOT @extschema@.email_sends_partitioned()
       OR to_regclass('public.crm_email_sends_backup') IS NULL
       OR NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.crm_email_sends'::regclass AND tgname = 'daznode_mirror_to_backup') THEN
        RAISE EXCEPTION 'daznode_crm: nothing to roll back: crm_email_sends is not partitioned, or its backup is gone or no longer in sync'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM @extschema@.lock_for_swap('public.crm_email_sends'::regclass);
    PERFORM @extschema@.lock_for_swap('public.crm_email_sends_backup'::regclass);
    PERFORM @extschema@.pause_for_tests('rollback');
    -- Every row of the partitioned table must be in the backup (the reverse mirror saw every
    -- write). The backup may hold more: rows of partitions dropped by the retention cleanup.
    SELECT count(*) INTO n_current FROM public.crm_email_sends c
    WHERE NOT EXISTS (SELECT 1 FROM public.crm_email_sends_backup b WHERE b.id = c.id);
    IF n_current > 0 THEN
        RAISE EXCEPTION 'daznode_crm: % rows of crm_email_sends are missing from the backup; nothing was changed', n_current;
    END IF;
    SELECT count(*) INTO n_current FROM public.crm_email_sends;
    SELECT count(*) INTO n_backup FROM public.crm_email_sends_backup;
    DROP TRIGGER daznode_mirror_to_backup ON public.crm_email_sends;
    DROP FUNCTION public.daznode_mirror_to_backup();
    PERFORM @extschema@.save_app_dependents('public.crm_email_sends'::regclass);
    PERFORM @extschema@.rename_email_sends_objects('public.crm_email_sends'::regclass, 'crm_email_sends_', 'crm_email_sends_partitioned_', '_unused');
    ALTER TABLE public.crm_email_sends RENAME TO crm_email_sends_partitioned;
    ALTER TABLE public.crm_email_sends_backup RENAME TO crm_email_sends;
    PERFORM @extschema@.rename_email_sends_objects('public.crm_email_sends'::regclass, 'crm_email_sends_backup_', 'crm_email_sends_', '');
    -- Out of service: its owner's only, like its partitions.
    PERFORM @extschema@.lock_down('public.crm_email_sends_partitioned'::regclass);
    DROP POLICY IF EXISTS daznode_read ON public.crm_email_sends_partitioned;
    DROP POLICY IF EXISTS daznode_insert ON public.crm_email_sends_partitioned;
    DROP POLICY IF EXISTS daznode_update ON public.crm_email_sends_partitioned;
    DROP POLICY IF EXISTS daznode_delete ON public.crm_email_sends_partitioned;
    had_mv := @extschema@.repoint_email_sends_views('public.crm_email_sends_partitioned'::regclass);
    IF had_mv THEN
        REFRESH MATERIALIZED VIEW crm_private.crm_campaigns_analytics_mv;
    END IF;
    PERFORM @extschema@.refresh_app_matviews();
    DELETE FROM @extschema@.schema_migrations WHERE step = '0010_partition_email_sends';
    PERFORM pg_catalog.set_config('application_name', app_name, false);
    RETURN jsonb_build_object('rows', n_backup, 'rows_only_in_backup', n_backup - n_current, 'restored', 'public.crm_email_sends (unpartitioned)',
                              'kept', 'public.crm_email_sends_partitioned (no longer in sync; dropped by the next migrate(''complete''))');
END
$fn$;

-- Ends the rollback window: stops mirroring into the backup and, with drop_backup, drops it.
CREATE FUNCTION @extschema@.finish_email_sends_partitioning(drop_backup boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM @extschema@.refuse_on_standby('finish_email_sends_partitioning()');
    PERFORM @extschema@.require_crm_owner('finish_email_sends_partitioning()');
    IF to_regclass('public.crm_email_sends') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS daznode_mirror_to_backup ON public.crm_email_sends;
    END IF;
    DROP FUNCTION IF EXISTS public.daznode_mirror_to_backup();
    IF drop_backup THEN
        DROP TABLE IF EXISTS public.crm_email_sends_backup;
        RETURN 'backup dropped; rollback_email_sends_partitioning() is no longer possible';
    END IF;
    RETURN 'public.crm_email_sends_backup is no longer kept in sync; rollback_email_sends_partitioning() is no longer possible';
END
$fn$;

-- The monthly maintenance, cleanup_old_email_partitions(), is Rust (src/api/retention.rs, planned
-- by core/src/retention.rs); it runs each partition through run_with_lock_retries() above.

REVOKE ALL ON FUNCTION @extschema@.email_sends_column_lists(regclass), @extschema@.create_email_sends_mirror(text, regclass),
    @extschema@.rename_email_sends_objects(regclass, text, text, text), @extschema@.repoint_email_sends_views(regclass),
    @extschema@.save_app_dependents(regclass), @extschema@.restore_app_dependents(regclass), @extschema@.refresh_app_matviews(),
    @extschema@.lock_for_swap(regclass), @extschema@.run_with_lock_retries(text[], integer, timestamptz, timestamptz), @extschema@.rollback_email_sends_partitioning(),
    @extschema@.replay_email_sends_changes(text, timestamptz, boolean), @extschema@.compare_email_sends(text, boolean),
    @extschema@.finish_email_sends_partitioning(boolean), @extschema@.cleanup_old_email_partitions(interval, integer, boolean, boolean, boolean),
    @extschema@.lock_down_function(regprocedure), @extschema@.email_sends_partition_months(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON PROCEDURE @extschema@.step_partition_email_sends(jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.cleanup_old_email_partitions(interval, integer, boolean, boolean, boolean) TO daznode_crm_maintenance;
-- For the CRM owner running migrate('complete'), the rollback and the cleanup (invoker rights).
GRANT EXECUTE ON PROCEDURE @extschema@.step_partition_email_sends(jsonb, boolean) TO daznode_crm_maintenance;
GRANT EXECUTE ON FUNCTION @extschema@.email_sends_column_lists(regclass), @extschema@.create_email_sends_mirror(text, regclass),
    @extschema@.rename_email_sends_objects(regclass, text, text, text), @extschema@.repoint_email_sends_views(regclass),
    @extschema@.save_app_dependents(regclass), @extschema@.restore_app_dependents(regclass), @extschema@.refresh_app_matviews(),
    @extschema@.lock_for_swap(regclass), @extschema@.run_with_lock_retries(text[], integer, timestamptz, timestamptz),
    @extschema@.rollback_email_sends_partitioning(), @extschema@.replay_email_sends_changes(text, timestamptz, boolean),
    @extschema@.compare_email_sends(text, boolean), @extschema@.finish_email_sends_partitioning(boolean),
    @extschema@.lock_down_function(regprocedure), @extschema@.email_sends_partition_months(timestamptz, timestamptz) TO daznode_crm_maintenance;

-- Long operations, seen from any other session (README "Progress"): step 0010's copy, the
-- rollback and the retention cleanup write their progress into their session's
-- application_name (report_progress()), which pg_stat_activity shows to every role at once, even
-- inside one transaction; CREATE INDEX [CONCURRENTLY] of concurrent_index_plan() comes from
-- pg_stat_progress_create_index.
CREATE VIEW @extschema@.operation_progress AS
SELECT a.pid, p.operation, p.phase, p.rows_done, p.rows_estimated,
       pg_catalog.to_timestamp(p.started_epoch) AS started_at, pg_catalog.to_timestamp(p.end_epoch) AS estimated_end,
       a.usename::text AS run_by
FROM pg_catalog.pg_stat_activity a
CROSS JOIN LATERAL @extschema@.progress_of(a.application_name) p
WHERE a.application_name LIKE 'daznode\_crm %'
UNION ALL
SELECT i.pid, 'create index ' || i.index_relid::regclass::text, i.phase, i.tuples_done, nullif(i.tuples_total, 0),
       a.query_start,
       CASE WHEN i.tuples_done > 0 AND i.tuples_total > 0
            THEN a.query_start + (pg_catalog.clock_timestamp() - a.query_start) * (i.tuples_total::float8 / i.tuples_done) END,
       a.usename::text
FROM pg_catalog.pg_stat_progress_create_index i
JOIN pg_catalog.pg_stat_activity a ON a.pid = i.pid
WHERE i.relid IN (SELECT @extschema@.crm_table_oid(t) FROM unnest(@extschema@.crm_tables()) AS t);
REVOKE ALL ON @extschema@.operation_progress FROM PUBLIC;
GRANT SELECT ON @extschema@.operation_progress TO daznode_crm_maintenance;
REVOKE ALL ON FUNCTION @extschema@.partition_disk_verdict() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.partition_disk_verdict() TO daznode_crm_maintenance;

-- src/api/counter.rs:53
-- daznode_crm::api::counter::count_send_changes
CREATE FUNCTION "count_send_changes"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'count_send_changes_wrapper';

-- src/api/mod.rs:84
-- requires:
--   partitioning
--   analytics::campaign_counts_sql
--   analytics::fold_campaign_counts
--   counter::count_send_changes

-- Step 0011: live campaign counts (README "Live campaign analytics"). The SQL comes from
-- core/src/analytics.rs through campaign_counts_sql(part); this file puts it in place.
--
--   crm_private.campaign_send_deltas  appended by the statement trigger daznode_count_sends on
--                                     public.crm_email_sends (its transition tables, new minus
--                                     old, one row per statement and campaign): writers only
--                                     insert, so concurrent webhooks never wait on each other
--   crm_private.campaign_send_counts  the folded sums (fold_campaign_counts(), a pg_cron job)
--   public.crm_campaigns_analytics_mv the guide's name, still: admins read both, summed in one
--                                     statement, so every read is exact for its snapshot
--
-- Who runs what: the tables belong to the CRM owner (the step runs as the owner). The trigger
-- function is the extension's, native (src/api/counter.rs): it runs as the writer and inserts
-- its deltas as the deltas table's owner (a local user switch, as foreign-key triggers do), so a
-- writer without rights on crm_private still counts its own writes, and nothing else.
-- It may be attached by the members of daznode_crm_maintenance only (the CRM owner, through
-- this step); it counts only as the three triggers of this step on public.crm_email_sends.
REVOKE ALL ON FUNCTION @extschema@.count_send_changes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.count_send_changes() TO daznode_crm_maintenance;

-- Creates the tables, the trigger function and the trigger (or puts back whichever is missing),
-- in the caller's transaction. The trigger takes a brief SHARE ROW EXCLUSIVE lock on
-- crm_email_sends, with the migration lock_timeout and retries.
CREATE FUNCTION @extschema@.create_send_counter() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    schema_owner oid := (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'crm_private');
    created text[] := '{}';
BEGIN
    IF schema_owner IS NULL OR schema_owner <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'daznode_crm: schema crm_private is missing or not the CRM owner''s; step 0009 comes first'
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'CALL daznode_crm.migrate() applies the steps in order.';
    END IF;
    IF to_regclass('crm_private.campaign_send_deltas') IS NULL THEN
        created := created || 'crm_private.campaign_send_counts, crm_private.campaign_send_deltas'::text;
    END IF;
    EXECUTE @extschema@.campaign_counts_sql('tables');
    PERFORM @extschema@.lock_down('crm_private.campaign_send_counts'::regclass);
    PERFORM @extschema@.lock_down('crm_private.campaign_send_deltas'::regclass);
    IF @extschema@.install_send_counter() THEN
        created := created || 'trigger daznode_count_sends on public.crm_email_sends'::text;
    END IF;
    RETURN jsonb_build_object('created', to_jsonb(created));
END
$fn$;

-- The counter on whatever table is public.crm_email_sends now (plain or partitioned), if the
-- live counts are installed: each of its three triggers that is missing is created, each that is
-- not ENABLE ALWAYS (a restore, session_replication_role = replica count too) is set so, in one
-- subtransaction with lock retries. True when it changed anything. What the diagnostic's
-- "missing or disabled" row tells the CRM owner to run.
CREATE FUNCTION @extschema@.install_send_counter() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    fn regprocedure := '@extschema@.count_send_changes()'::regprocedure;
    todo text[];
BEGIN
    IF to_regclass('crm_private.campaign_send_deltas') IS NULL OR to_regclass('public.crm_email_sends') IS NULL THEN
        RETURN false;
    END IF;
    -- A trigger of one of these names but another shape (another event or function, a WHEN
    -- clause, UPDATE OF some columns, other transition tables: it would count some writes twice
    -- or never, and the function refuses to count as it) is dropped and created again.
    SELECT array_agg(u.s ORDER BY t.name, u.k) INTO todo
    FROM (VALUES ('daznode_count_sends_ins', 'INSERT', 'NEW TABLE AS new_rows', 4, NULL, 'new_rows'),
                 ('daznode_count_sends', 'UPDATE', 'OLD TABLE AS old_rows NEW TABLE AS new_rows', 16, 'old_rows', 'new_rows'),
                 ('daznode_count_sends_del', 'DELETE', 'OLD TABLE AS old_rows', 8, 'old_rows', NULL)) AS t(name, event, transition, tgtype, old_name, new_name)
    LEFT JOIN pg_trigger g ON g.tgrelid = 'public.crm_email_sends'::regclass AND g.tgname = t.name
    CROSS JOIN LATERAL (SELECT g.oid IS NOT NULL AND (g.tgfoid <> fn OR g.tgtype <> t.tgtype OR g.tgqual IS NOT NULL
                               OR cardinality(g.tgattr::int2[]) > 0 OR g.tgoldtable IS DISTINCT FROM t.old_name
                               OR g.tgnewtable IS DISTINCT FROM t.new_name) AS misshapen) AS m
    CROSS JOIN LATERAL unnest(ARRAY[
        CASE WHEN m.misshapen THEN format('DROP TRIGGER %I ON public.crm_email_sends', t.name) END,
        CASE WHEN g.oid IS NULL OR m.misshapen THEN format('CREATE TRIGGER %I AFTER %s ON public.crm_email_sends REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %s',
                                            t.name, t.event, t.transition, fn) END,
        CASE WHEN g.tgenabled IS DISTINCT FROM 'A' OR m.misshapen THEN format('ALTER TABLE public.crm_email_sends ENABLE ALWAYS TRIGGER %I', t.name) END])
        WITH ORDINALITY AS u(s, k)
    WHERE u.s IS NOT NULL;
    IF todo IS NULL THEN
        RETURN false;
    END IF;
    IF NOT @extschema@.run_with_lock_retries(todo, 5) THEN
        RAISE EXCEPTION 'daznode_crm: could not lock public.crm_email_sends to add the send counter in 5 attempts'
            USING ERRCODE = 'lock_not_available', HINT = 'A long transaction writes crm_email_sends; run again when it is done. Nothing was changed.';
    END IF;
    RETURN true;
END
$fn$;

-- The swap and the rollback of step 0010 (repoint_email_sends_views(), under their lock): the
-- counter (every trigger of `old` that runs its function) leaves `old` and goes on the table that
-- now carries the name. The copy and its replay never fired it, so nothing is counted twice.
CREATE FUNCTION @extschema@.move_send_counter(old regclass) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT g.tgname FROM pg_trigger g
             WHERE g.tgrelid = old AND g.tgfoid = '@extschema@.count_send_changes()'::regprocedure LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, old);
    END LOOP;
    RETURN @extschema@.install_send_counter();
END
$fn$;

-- The admins' source (public.crm_campaigns_analytics_mv, same name, same columns) reads the
-- live counts; the materialized view it read goes. In the caller's transaction.
CREATE FUNCTION @extschema@.switch_campaigns_analytics_to_live() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    fn regprocedure := to_regprocedure('crm_private.crm_campaigns_analytics_for_admins()');
BEGIN
    IF fn IS NULL THEN
        RAISE EXCEPTION 'daznode_crm: crm_private.crm_campaigns_analytics_for_admins() is missing; step 0009 comes first'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION crm_private.crm_campaigns_analytics_for_admins() RETURNS %1$s
        LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
        #variable_conflict use_column
        BEGIN
            IF (SELECT @extschema@.is_admin_user('{super_admin,admin,moderator}')) THEN
                RETURN QUERY %2$s;
            END IF;
        END $body$$f$,
        pg_get_function_result(fn), @extschema@.campaign_counts_sql('analytics_live'));
    IF to_regclass('crm_private.crm_campaigns_analytics_mv') IS NOT NULL THEN
        PERFORM @extschema@.unregister_crm_materialized_view('crm_private.crm_campaigns_analytics_mv'::regclass);
        DROP MATERIALIZED VIEW crm_private.crm_campaigns_analytics_mv;
    END IF;
    RETURN true;
END
$fn$;

-- The counts of every send the trigger has not seen (all of them, the first time), in one
-- statement's snapshot. Run by the step once the trigger is committed. row_security = off: a
-- recount that policies would filter (FORCE ROW LEVEL SECURITY) stops with an error instead of
-- counting fewer rows.
CREATE FUNCTION @extschema@.rebase_campaign_counts() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET row_security = off AS $fn$
DECLARE
    n bigint;
BEGIN
    EXECUTE @extschema@.campaign_counts_sql('rebase');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

-- The step: 1. the counter, committed (from then on every write is counted); 2. in one
-- transaction, the counts of the rows it never saw, and the admins' source switched to the live
-- counts. Readers see the materialized view until that commit, the live counts after it. A
-- cancel or a crash anywhere leaves either the old source or the new one; running it again
-- completes it (the rebase adds only what is missing).
CREATE PROCEDURE @extschema@.step_live_campaign_counts(INOUT result jsonb DEFAULT NULL)
LANGUAGE plpgsql AS $proc$
DECLARE
    created jsonb;
    rebased bigint;
    t0 timestamptz := pg_catalog.clock_timestamp();
    app_name text := pg_catalog.current_setting('application_name');
BEGIN
    PERFORM @extschema@.refuse_on_standby('migrate()');
    PERFORM @extschema@.require_crm_owner('migrate()');
    PERFORM @extschema@.report_progress('0011', 'counter', 0, 0, t0);
    created := @extschema@.create_send_counter();
    COMMIT;
    PERFORM @extschema@.report_progress('0011', 'counting', 0, 0, t0);
    PERFORM @extschema@.pause_for_tests('counter committed');
    rebased := @extschema@.rebase_campaign_counts();
    PERFORM @extschema@.switch_campaigns_analytics_to_live();
    COMMIT;
    PERFORM pg_catalog.set_config('application_name', app_name, false);
    result := pg_catalog.jsonb_build_object('created', created -> 'created', 'campaigns_counted', rebased,
        'source', 'public.crm_campaigns_analytics_mv reads crm_private.campaign_send_counts + campaign_send_deltas',
        'fold', 'SELECT daznode_crm.fold_campaign_counts() (a pg_cron job of schedule_crm_maintenance())');
END
$proc$;

REVOKE ALL ON FUNCTION @extschema@.create_send_counter(), @extschema@.install_send_counter(), @extschema@.move_send_counter(regclass),
    @extschema@.switch_campaigns_analytics_to_live(), @extschema@.rebase_campaign_counts() FROM PUBLIC;
REVOKE ALL ON PROCEDURE @extschema@.step_live_campaign_counts(jsonb) FROM PUBLIC;
-- For the CRM owner running migrate() (invoker rights: these add no right on a table).
GRANT EXECUTE ON FUNCTION @extschema@.create_send_counter(), @extschema@.install_send_counter(), @extschema@.move_send_counter(regclass),
    @extschema@.switch_campaigns_analytics_to_live(), @extschema@.rebase_campaign_counts() TO daznode_crm_maintenance;
GRANT EXECUTE ON PROCEDURE @extschema@.step_live_campaign_counts(jsonb) TO daznode_crm_maintenance;
-- The fold (SECURITY DEFINER, run as the CRM owner) and the SQL text: the maintenance role's.
REVOKE ALL ON FUNCTION @extschema@.fold_campaign_counts(), @extschema@.campaign_counts_sql(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.fold_campaign_counts(), @extschema@.campaign_counts_sql(text) TO daznode_crm_maintenance;

-- Where the live counts and a full recount of the rows differ, per campaign (recount minus
-- counts): no row at a quiet moment, and none in any single read (one snapshot), until a
-- retention drop (whose history the counts keep). It reads every send: a check for the CRM owner
-- to run when in doubt, not for a cron job. SELECT * FROM daznode_crm.campaign_counts_drift();
-- VOLATILE, not STABLE: its query then takes its snapshot once it holds its lock on
-- crm_email_sends, so a partitioning swap that commits while it waits is seen whole (a STABLE
-- function would read the new table with the caller's older snapshot).
CREATE FUNCTION @extschema@.campaign_counts_drift() RETURNS TABLE (campaign_id uuid, recipients bigint, sent bigint, delivered bigint,
    opened bigint, clicked bigint, bounced bigint, failed bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET row_security = off AS $fn$
BEGIN
    RETURN QUERY EXECUTE @extschema@.campaign_counts_sql('drift');
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.campaign_counts_drift() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.campaign_counts_drift() TO daznode_crm_maintenance;
