-- Centres for the radius benchmark: the fixture's US city centres.
DROP TABLE IF EXISTS bench_centres;
CREATE TABLE bench_centres (i int PRIMARY KEY, lat float8, lon float8);
INSERT INTO bench_centres VALUES
    (0, 29.7604, -95.3698), (1, 33.4484, -112.0740), (2, 41.8781, -87.6298),
    (3, 39.7392, -104.9903), (4, 33.7490, -84.3880), (5, 47.6062, -122.3321),
    (6, 32.7767, -96.7970), (7, 25.7617, -80.1918), (8, 34.0522, -118.2437),
    (9, 40.7128, -74.0060), (10, 42.3601, -71.0589), (11, 29.4241, -98.4936),
    (12, 45.5152, -122.6784), (13, 44.9778, -93.2650), (14, 36.1699, -115.1398),
    (15, 36.1627, -86.7816), (16, 39.9526, -75.1652), (17, 42.3314, -83.0458);
ANALYZE bench_centres;
