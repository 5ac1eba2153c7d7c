-- Helpers shared by the benchmark parts. Loaded into the bench database, never into the extension.
CREATE SCHEMA IF NOT EXISTS bench;

-- Best of `reps` runs of a query returning one bigint, in nanoseconds.
CREATE OR REPLACE FUNCTION bench.best_ns(query text, reps int) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    best float8 := 'Infinity';
    ignored bigint;
BEGIN
    FOR k IN 1..reps LOOP
        t0 := clock_timestamp();
        EXECUTE query INTO ignored;
        best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1e9);
    END LOOP;
    RETURN best;
END $$;

-- Best of `reps` runs of a statement that changes data, each rolled back, in nanoseconds:
-- every run starts from the same data.
CREATE OR REPLACE FUNCTION bench.rolled_back_ns(query text, reps int) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    best float8 := 'Infinity';
BEGIN
    FOR k IN 1..reps LOOP
        BEGIN
            t0 := clock_timestamp();
            EXECUTE query;
            best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1e9);
            RAISE EXCEPTION 'roll back' USING ERRCODE = 'P0099';
        EXCEPTION WHEN SQLSTATE 'P0099' THEN NULL;
        END;
    END LOOP;
    RETURN best;
END $$;
