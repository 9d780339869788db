-- Share of (centre, radius) samples where the plain KNN query's 100 rows
-- differ from the exact 100 nearest by spheroid distance, and the same for
-- wm_bins_within_radius.
WITH samples AS (
    SELECT b.i, b.lat + (g % 37 - 18) / 200.0 AS lat, b.lon + (g % 41 - 20) / 200.0 AS lon, r
      FROM bench_centres b, generate_series(1, 10) g, unnest(ARRAY[2.0, 10.0]) r
), truth AS (
    SELECT s.*, ARRAY(SELECT x.id FROM core.bins x
                        WHERE x.status = 'active' AND x.deleted_at IS NULL
                          AND ST_DWithin(x.location::geography, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326)::geography, s.r * 1000.0)
                        ORDER BY ST_Distance(x.location::geography, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326)::geography), x.id
                        LIMIT 100) AS exact,
           ARRAY(SELECT x.id FROM core.bins x
                        WHERE x.status = 'active' AND x.deleted_at IS NULL
                          AND ST_DWithin(x.location::geography, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326)::geography, s.r * 1000.0)
                        ORDER BY x.location::geography <-> ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326)::geography
                        LIMIT 100) AS knn,
           ARRAY(SELECT w.id FROM wm_bins_within_radius(s.lat, s.lon, s.r, 100) w) AS wm
      FROM samples s
)
SELECT count(*) AS samples,
       count(*) FILTER (WHERE (SELECT array_agg(u ORDER BY u) FROM unnest(knn) u) IS DISTINCT FROM (SELECT array_agg(u ORDER BY u) FROM unnest(exact) u)) AS knn_wrong_set,
       count(*) FILTER (WHERE knn IS DISTINCT FROM exact) AS knn_wrong_order,
       count(*) FILTER (WHERE wm IS DISTINCT FROM exact) AS wm_wrong
  FROM truth;
