SELECT status, bin_type, material, sum(bins), sum(gps_enabled), sum(sensor_enabled), sum(smart),
       sum(fill_level_sum) / nullif(sum(fill_level_count), 0), sum(needing_service),
       sum(capacity_sum) / nullif(sum(capacity_count), 0)
  FROM mv_bin_statistics GROUP BY GROUPING SETS ((status), (bin_type), (material), ());
SELECT event_type, sum(events) FROM mv_service_event_statistics WHERE last_30_days GROUP BY 1;
