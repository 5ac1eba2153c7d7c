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
