SELECT b.status::text, b.bin_type::text, b.material::text, count(*),
       count(*) FILTER (WHERE b.gps_enabled), count(*) FILTER (WHERE b.sensor_enabled),
       count(*) FILTER (WHERE b.gps_enabled OR b.sensor_enabled),
       round(avg(b.fill_level_percent), 2),
       count(*) FILTER (WHERE b.status = 'active' AND (b.fill_level_percent >= 80 OR b.next_service_date < current_date)),
       round(avg(b.capacity_cubic_yards), 2)
  FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
 WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL
 GROUP BY GROUPING SETS ((b.status), (b.bin_type), (b.material), ());
SELECT e.event_type::text, count(*)
  FROM core.service_events e JOIN operations.customers c ON c.id = e.customer_id
 WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL AND e.created_at >= current_date - 30
 GROUP BY 1;
