\set c random(0, 17)
\set dlat random(-900, 900)
\set dlon random(-900, 900)
SELECT count(*) FROM bench_centres b, LATERAL (
    SELECT x.id, ST_Distance(x.location::geography, ST_SetSRID(ST_MakePoint(b.lon + :dlon / 10000.0, b.lat + :dlat / 10000.0), 4326)::geography) AS d
      FROM core.bins x
     WHERE x.status = 'active' AND x.deleted_at IS NULL
       AND ST_DWithin(x.location::geography, ST_SetSRID(ST_MakePoint(b.lon + :dlon / 10000.0, b.lat + :dlat / 10000.0), 4326)::geography, :r * 1000.0)
     ORDER BY 2, 1
     LIMIT 100) k WHERE b.i = :c;
