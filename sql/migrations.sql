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
