-- Stable names of the failure classes; rows are kept in step with the proto
-- enum by the coordinator at start-up, so SQL can read class names.
CREATE TABLE failure_classes (
  id   smallint PRIMARY KEY,
  name text NOT NULL UNIQUE
);

CREATE TABLE probes (
  id             serial PRIMARY KEY,
  name           text NOT NULL UNIQUE,
  -- Only the SHA-256 of the bearer token is stored.
  token_sha256   text NOT NULL UNIQUE,
  region         text NOT NULL DEFAULT '',
  version        text NOT NULL DEFAULT '',
  -- Highest sequence number of this probe durably stored in results.
  last_sequence  bigint NOT NULL DEFAULT 0,
  create_time    timestamptz NOT NULL DEFAULT now(),
  last_seen_time timestamptz
);

CREATE TABLE checks (
  id          bigserial PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  version     bigint NOT NULL DEFAULT 1,
  source      smallint NOT NULL,      -- vantage.v1.CheckSource
  spec        jsonb NOT NULL,         -- vantage.v1.Check as proto JSON
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now()
);

-- One row per attempt. Compact columns for the common queries; the full
-- evidence (vantage.v1.CheckResult, binary proto) only for failures.
CREATE TABLE results (
  probe_id     integer NOT NULL,
  seq          bigint NOT NULL,
  check_id     bigint NOT NULL,
  start_time   timestamptz NOT NULL,
  receive_time timestamptz NOT NULL DEFAULT now(),
  region       text NOT NULL,
  class        smallint NOT NULL,     -- edge leg's vantage.v1.FailureClass
  origin_class smallint,              -- origin leg's, when it ran
  status       smallint,
  edge_code    smallint,
  colo         text,
  ttfb_us      integer,
  total_us     integer,
  detail       bytea,
  -- A replayed result is stored once.
  PRIMARY KEY (probe_id, seq)
);
CREATE INDEX results_check_time ON results (check_id, start_time);
