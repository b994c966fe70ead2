-- pg_temp.fields(q): runs q and returns the fields of its PT400's field
-- errors (DETAIL), sorted; NULL when q raises nothing.  Included with \ir by
-- the tests that check which fields a call refuses.
CREATE FUNCTION pg_temp.fields(q text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	EXECUTE q;
	RETURN NULL;
EXCEPTION WHEN SQLSTATE 'PT400' THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN (SELECT array_agg(e ->> 'field' ORDER BY e ->> 'field') FROM jsonb_array_elements(d::jsonb) e);
END $$;
