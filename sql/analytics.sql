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
