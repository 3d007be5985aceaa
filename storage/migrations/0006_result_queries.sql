-- ResultService (the public API): a check's results newest first, paged by
-- the key (start_time, probe_id, seq), and its summaries over a window. The
-- INCLUDE columns are all a summary reads, so it is an index-only scan once
-- vacuum has marked the pages all-visible (autovacuum does it for the
-- insert-only day partitions). Its leading columns are those of
-- results_check_time, which it replaces: one index less to write per result.
CREATE INDEX results_check_key ON results (check_id, start_time, probe_id, seq)
  INCLUDE (region, class, origin_class, total_us, edge_code, colo);
DROP INDEX results_check_time;
