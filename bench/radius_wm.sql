\set c random(0, 17)
\set dlat random(-900, 900)
\set dlon random(-900, 900)
SELECT count(*) FROM bench_centres b, wm_bins_within_radius(b.lat + :dlat / 10000.0, b.lon + :dlon / 10000.0, :r, 100) w WHERE b.i = :c;
