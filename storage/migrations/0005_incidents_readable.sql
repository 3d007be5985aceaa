-- Incidents readable in SQL: kind, state, scope and event type as the names
-- the code uses everywhere (common/incident_names.h: the proto enum value
-- without its prefix, lower case), and the widest scope an incident reached
-- as a column, so that past global outages can be found:
--   SELECT id, first_failure_time FROM incidents WHERE widest_scope = 'global';
-- 'unspecified' stands for a value the proto leaves unset (never written by
-- the correlator; allowed so that no stored row can make this migration fail).

-- The widest scope of existing rows: the widest the incident or any event on
-- its timeline shows (scope numbers grow with the width, probe 1 to global 4).
ALTER TABLE incidents ADD COLUMN widest_scope smallint;
UPDATE incidents i SET widest_scope = greatest(
  i.scope, coalesce((SELECT max(e.scope) FROM incident_events e WHERE e.incident_id = i.id), 0));

-- Its predicate compares a number; recreated below.
DROP INDEX incidents_open;

ALTER TABLE incidents
  ALTER COLUMN kind TYPE text USING CASE kind
    WHEN 1 THEN 'outage' WHEN 2 THEN 'intermittent' ELSE 'unspecified' END,
  ALTER COLUMN state TYPE text USING CASE state
    WHEN 1 THEN 'open' WHEN 2 THEN 'resolved' ELSE 'unspecified' END,
  ALTER COLUMN scope TYPE text USING CASE scope
    WHEN 1 THEN 'probe' WHEN 2 THEN 'colo' WHEN 3 THEN 'region' WHEN 4 THEN 'global' ELSE 'unspecified' END,
  ALTER COLUMN widest_scope TYPE text USING CASE widest_scope
    WHEN 1 THEN 'probe' WHEN 2 THEN 'colo' WHEN 3 THEN 'region' WHEN 4 THEN 'global' ELSE 'unspecified' END,
  ALTER COLUMN widest_scope SET NOT NULL,
  ADD CONSTRAINT incidents_kind_known CHECK (kind IN ('unspecified', 'outage', 'intermittent')),
  ADD CONSTRAINT incidents_state_known CHECK (state IN ('unspecified', 'open', 'resolved')),
  ADD CONSTRAINT incidents_scope_known CHECK (scope IN ('unspecified', 'probe', 'colo', 'region', 'global')),
  ADD CONSTRAINT incidents_widest_scope_known
    CHECK (widest_scope IN ('unspecified', 'probe', 'colo', 'region', 'global'));

COMMENT ON COLUMN incidents.kind IS 'vantage.v1.IncidentKind: outage, intermittent';
COMMENT ON COLUMN incidents.state IS 'vantage.v1.IncidentState: open, resolved';
COMMENT ON COLUMN incidents.scope IS 'vantage.v1.Scope now: probe, colo, region, global';
COMMENT ON COLUMN incidents.widest_scope IS 'the widest vantage.v1.Scope the incident reached';

CREATE INDEX incidents_open ON incidents (check_id) WHERE state = 'open';
CREATE INDEX incidents_widest_scope ON incidents (widest_scope, first_failure_time DESC);

-- The UNIQUE (incident_id, type, time, scope) that de-duplicates replayed
-- events follows the columns to their new type.
ALTER TABLE incident_events
  ALTER COLUMN type TYPE text USING CASE type
    WHEN 1 THEN 'opened' WHEN 2 THEN 'scope_changed' WHEN 3 THEN 'cause_changed' WHEN 4 THEN 'reopened'
    WHEN 5 THEN 'resolved' WHEN 6 THEN 'flapping_changed' ELSE 'unspecified' END,
  ALTER COLUMN scope TYPE text USING CASE scope
    WHEN 1 THEN 'probe' WHEN 2 THEN 'colo' WHEN 3 THEN 'region' WHEN 4 THEN 'global' ELSE 'unspecified' END,
  ADD CONSTRAINT incident_events_type_known CHECK (
    type IN ('unspecified', 'opened', 'scope_changed', 'cause_changed', 'reopened', 'resolved', 'flapping_changed')),
  ADD CONSTRAINT incident_events_scope_known CHECK (scope IN ('unspecified', 'probe', 'colo', 'region', 'global'));

COMMENT ON COLUMN incident_events.type IS
  'vantage.v1.IncidentEventType: opened, scope_changed, cause_changed, reopened, resolved, flapping_changed';
COMMENT ON COLUMN incident_events.scope IS 'vantage.v1.Scope of the incident at the event';
