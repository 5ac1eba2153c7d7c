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
