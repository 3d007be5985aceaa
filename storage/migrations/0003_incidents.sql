-- Incidents (correlation.md) and their timelines. An incident's id is chosen
-- by the correlator from the check and the time of the failure that opened
-- it, so a coordinator that replays stored results after a restart arrives at
-- the same ids: upserts and ON CONFLICT DO NOTHING make that replay harmless.
CREATE TABLE incidents (
  id                 text PRIMARY KEY,
  check_id           bigint NOT NULL,
  kind               smallint NOT NULL,   -- vantage.v1.IncidentKind
  state              smallint NOT NULL,   -- vantage.v1.IncidentState
  scope              smallint NOT NULL,   -- vantage.v1.Scope, current
  first_failure_time timestamptz NOT NULL,
  resolve_time       timestamptz,
  update_time        timestamptz NOT NULL DEFAULT now(),
  detail             bytea NOT NULL       -- vantage.v1.Incident without its timeline
);
CREATE INDEX incidents_open ON incidents (check_id) WHERE state = 1;
CREATE INDEX incidents_recent ON incidents (coalesce(resolve_time, 'infinity'::timestamptz));
CREATE INDEX incidents_check_time ON incidents (check_id, first_failure_time DESC);

CREATE TABLE incident_events (
  id          bigserial PRIMARY KEY,
  incident_id text NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
  type        smallint NOT NULL,          -- vantage.v1.IncidentEventType
  time        timestamptz NOT NULL,
  scope       smallint NOT NULL,
  detail      bytea NOT NULL,             -- vantage.v1.IncidentEvent
  -- The same event derived twice (a replay after a restart) is stored once.
  UNIQUE (incident_id, type, time, scope)
);
