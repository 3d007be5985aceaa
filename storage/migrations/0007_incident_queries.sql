-- What IncidentService reads (storage/pg_incident_queries.cc):
-- the list of every incident, newest first by (first_failure_time, id), whose
-- page token holds the last row's key: one index scan from that key.
-- (By check: incidents_check_time; by widest scope: incidents_widest_scope.)
CREATE INDEX incidents_newest ON incidents (first_failure_time DESC, id DESC);
-- WatchIncidents with `since`: events from a time on (then by event id).
CREATE INDEX incident_events_time ON incident_events (time);
