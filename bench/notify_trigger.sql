CREATE OR REPLACE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cache_invalidation', TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE OR DELETE ON core.bins
    FOR EACH ROW EXECUTE FUNCTION bench_notify();
CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE OR DELETE ON core.service_events
    FOR EACH ROW EXECUTE FUNCTION bench_notify();
