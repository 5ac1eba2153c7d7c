-- What in public already carries the planned index name $1, other than an index of that name
-- on table $2: "<relname> on <table>", no row when the name is free.
SELECT c.relname || ' on ' || coalesce(t.relname, '?') FROM pg_class c
LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid
WHERE c.relnamespace = 'public'::regnamespace AND c.relname = $1
  AND (c.relkind <> 'i' OR t.relname IS DISTINCT FROM $2)
