-- Load the reference schema and a small deterministic data set.  The
-- extension already exists (pg_regress --load-extension ran before any table
-- existed, which is what a restore does): attach.sql attaches it.
\set ECHO none
SET client_min_messages = warning;
\set scale 0.002
\i test/fixtures/schema.sql
\i test/fixtures/generate.sql
RESET client_min_messages;
\set ECHO all
SELECT count(*) AS routes FROM core.routes;
SELECT count(*) AS bins FROM core.bins;
SELECT count(*) AS customers FROM operations.customers;
SELECT count(*) AS service_events FROM core.service_events;
SELECT role FROM wm_perf_config ORDER BY role COLLATE "C";
-- A helper for the tests: the SQLSTATE and message of a statement's error.
CREATE FUNCTION public.regress_error(q text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
