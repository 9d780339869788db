SELECT status::text, route_type::text, service_day::text, count(*),
       count(*) FILTER (WHERE ai_optimized), round(avg(optimization_score), 2),
       round(avg(estimated_distance_miles), 2), round(avg(estimated_duration_minutes), 2)
  FROM core.routes WHERE deleted_at IS NULL
 GROUP BY GROUPING SETS ((status), (route_type), (service_day), ());
