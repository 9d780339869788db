-- Documented errors and their SQLSTATEs.
SELECT regress_error($$SELECT wm_cache_flush('everything')$$);
SELECT regress_error($$SELECT wm_invalidate_cache()$$);
CREATE TABLE regress_t (id int);
-- A trigger on a table that is not the attached one does nothing: no error
-- for its writers, no invalidation recorded.
CREATE TRIGGER regress_row AFTER INSERT ON regress_t FOR EACH ROW
	EXECUTE FUNCTION wm_invalidate_cache('routes');
SELECT invalidations_recorded AS recorded_before FROM wm_perf_metrics
 WHERE function_name = 'invalidation' \gset
SELECT regress_error('INSERT INTO regress_t VALUES (1)');
SELECT invalidations_recorded = :recorded_before AS nothing_recorded FROM wm_perf_metrics
 WHERE function_name = 'invalidation';
DROP TRIGGER regress_row ON regress_t;
CREATE TRIGGER regress_before BEFORE INSERT ON regress_t FOR EACH ROW
	EXECUTE FUNCTION wm_invalidate_cache('routes');
SELECT regress_error('INSERT INTO regress_t VALUES (1)');
DROP TRIGGER regress_before ON regress_t;
CREATE TRIGGER regress_noarg AFTER INSERT ON regress_t FOR EACH STATEMENT
	EXECUTE FUNCTION wm_invalidate_cache();
SELECT regress_error('INSERT INTO regress_t VALUES (1)');
DROP TRIGGER regress_noarg ON regress_t;
CREATE TRIGGER regress_badarg AFTER INSERT ON regress_t FOR EACH STATEMENT
	EXECUTE FUNCTION wm_invalidate_cache('trucks');
SELECT regress_error('INSERT INTO regress_t VALUES (1)');
DROP TABLE regress_t;
-- Rules must name a known table role.
SELECT regress_error($$INSERT INTO wm_cache_rules VALUES ('x', 'trucks', 'k')$$);
SELECT regress_error($$INSERT INTO wm_cache_rules VALUES ('x', 'bins', '')$$);
