-- Results partitioned by day (UTC), for retention by dropping partitions and
-- for queries that touch only the days they ask about. Each day partition
-- has its own unique index on (probe_id, seq): a replayed result carries its
-- original start_time, lands in the same partition and is stored once.
ALTER TABLE results RENAME TO results_v1;
ALTER INDEX results_check_time RENAME TO results_v1_check_time;
ALTER TABLE results_v1 RENAME CONSTRAINT results_pkey TO results_v1_pkey;

CREATE TABLE results (
  probe_id     integer NOT NULL,
  seq          bigint NOT NULL,
  check_id     integer NOT NULL,
  start_time   timestamptz NOT NULL,
  region       text NOT NULL,
  class        smallint NOT NULL,     -- edge leg's vantage.v1.FailureClass
  origin_class smallint,              -- origin leg's, when it ran
  status       smallint,
  edge_code    smallint,
  colo         text,
  ttfb_us      integer,
  total_us     integer,
  detail       bytea                  -- vantage.v1.CheckResult, failures only
) PARTITION BY RANGE (start_time);
CREATE INDEX results_check_time ON results (check_id, start_time);

-- Catches results of a day without a partition (a probe's clock far off, a
-- very old replay). Its rows move into a day's partition when one is created.
CREATE TABLE results_default PARTITION OF results DEFAULT;
CREATE UNIQUE INDEX results_default_probe_seq ON results_default (probe_id, seq);

INSERT INTO results
  SELECT probe_id, seq, check_id::integer, start_time, region, class, origin_class, status,
         edge_code, colo, ttfb_us, total_us, detail
  FROM results_v1;
DROP TABLE results_v1;

-- Creates the partition of one UTC day if it is missing. Returns whether it did.
CREATE FUNCTION vantage_ensure_results_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  name  text := 'results_' || to_char(day, 'YYYYMMDD');
  lower timestamptz := day::timestamp AT TIME ZONE 'UTC';
  upper timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
  IF to_regclass(name) IS NOT NULL THEN
    RETURN false;
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS vantage_moving (LIKE results) ON COMMIT DROP;
  WITH moved AS (
    DELETE FROM results_default WHERE start_time >= lower AND start_time < upper RETURNING *)
  INSERT INTO vantage_moving SELECT * FROM moved;
  EXECUTE format('CREATE TABLE %I PARTITION OF results FOR VALUES FROM (%L) TO (%L)', name, lower, upper);
  EXECUTE format('CREATE UNIQUE INDEX %I ON %I (probe_id, seq)', name || '_probe_seq', name);
  INSERT INTO results SELECT * FROM vantage_moving;
  DELETE FROM vantage_moving;
  RETURN true;
END $$;

-- Drops the day partitions before `cutoff` (and default rows that old).
-- Returns how many partitions it dropped.
CREATE FUNCTION vantage_drop_results_before(cutoff date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  part    record;
  dropped integer := 0;
BEGIN
  FOR part IN
    SELECT c.relname
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'results'::regclass
      AND c.relname ~ '^results_[0-9]{8}$'
      AND to_date(substr(c.relname, 9), 'YYYYMMDD') < cutoff
  LOOP
    EXECUTE format('DROP TABLE %I', part.relname);
    dropped := dropped + 1;
  END LOOP;
  DELETE FROM results_default WHERE start_time < cutoff::timestamp AT TIME ZONE 'UTC';
  RETURN dropped;
END $$;
