// IncidentQueries on PostgreSQL: what the public API reads of incidents
// (coordinator/incident_service.h). Indexes: storage/migrations/0007.

#include <fmt/format.h>

#include <pqxx/pqxx>

#include "common/incident_names.h"
#include "common/proto_time.h"
#include "storage/pg_internal.h"

namespace vantage::storage {

namespace {

std::optional<std::string> optional_time_text(const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) return std::nullopt;
  return timestamptz_text(std::chrono::floor<std::chrono::microseconds>(*t));
}

// Unspecified filters match everything; the others compare the stored name.
std::string name_or_any(bool specified, std::string name) { return specified ? std::move(name) : std::string(); }

// The checks named $n: an incident keeps the id of its check, names live in checks.
constexpr const char* kCheckNamed = "i.check_id IN (SELECT c.id FROM checks c WHERE c.name = {})";

}  // namespace

std::vector<ListedIncident> PgStore::list_incidents(const IncidentFilter& filter,
                                                    const std::optional<IncidentKey>& after, size_t limit) {
  std::vector<ListedIncident> out;
  with_connection("listing incidents", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    // Each condition is off when its parameter is empty or NULL; the plan is
    // made for the values given (unnamed statement), so those fold away.
    const auto sql = fmt::format(
        "SELECT i.id, i.detail, (extract(epoch FROM i.first_failure_time) * 1000000)::bigint AS first_us "
        "FROM incidents i "
        "WHERE ($1::text = '' OR {}) "
        "AND ($2::text = '' OR i.state = $2::text) "
        "AND ($3::text = '' OR i.kind = $3::text) "
        "AND ($4::text = '' OR i.widest_scope = $4::text) "
        "AND ($5::timestamptz IS NULL OR i.first_failure_time >= $5::timestamptz) "
        "AND ($6::timestamptz IS NULL OR i.first_failure_time < $6::timestamptz) "
        "AND ($7::timestamptz IS NULL OR (i.first_failure_time, i.id) < ($7::timestamptz, $8::text)) "
        "ORDER BY i.first_failure_time DESC, i.id DESC LIMIT $9",
        fmt::format(kCheckNamed, "$1::text"));
    const auto rows = tx.exec_params(
        sql, filter.check,
        name_or_any(filter.state != v1::INCIDENT_STATE_UNSPECIFIED, incident_state_name(filter.state)),
        name_or_any(filter.kind != v1::INCIDENT_KIND_UNSPECIFIED, incident_kind_name(filter.kind)),
        name_or_any(filter.widest_scope != v1::SCOPE_UNSPECIFIED, scope_name(filter.widest_scope)),
        optional_time_text(filter.opened_from), optional_time_text(filter.opened_until),
        after ? std::optional(timestamptz_text(Micros(std::chrono::microseconds(after->first_failure_us))))
              : std::nullopt,
        after ? after->id : std::string(), static_cast<int64_t>(limit));
    out.reserve(rows.size());
    for (const auto& row : rows) {
      ListedIncident listed;
      listed.incident = parsed<v1::Incident>(row["detail"], "incident");
      listed.key = IncidentKey{row["first_us"].as<int64_t>(), row["id"].as<std::string>()};
      out.push_back(std::move(listed));
    }
  });
  return out;
}

std::vector<StoredIncidentEvent> PgStore::incident_events_after(
    int64_t after_event_id, std::optional<std::chrono::system_clock::time_point> since, std::string_view check,
    size_t limit) {
  std::vector<StoredIncidentEvent> out;
  with_connection("reading incident events", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const auto sql = fmt::format(
        "SELECT e.id, e.detail AS event, i.detail AS incident FROM incident_events e "
        "JOIN incidents i ON i.id = e.incident_id "
        "WHERE e.id > $1 AND ($2::timestamptz IS NULL OR e.time >= $2::timestamptz) "
        "AND ($3::text = '' OR {}) ORDER BY e.id LIMIT $4",
        fmt::format(kCheckNamed, "$3::text"));
    const auto rows = tx.exec_params(sql, after_event_id, optional_time_text(since), std::string(check),
                                     static_cast<int64_t>(limit));
    out.reserve(rows.size());
    for (const auto& row : rows) {
      StoredIncidentEvent stored;
      stored.event = parsed<v1::IncidentEvent>(row["event"], "incident event");
      stored.event.set_event_id(row["id"].as<int64_t>());
      stored.incident = parsed<v1::Incident>(row["incident"], "incident");
      out.push_back(std::move(stored));
    }
  });
  return out;
}

std::vector<v1::StoredResult> PgStore::incident_evidence(const v1::Incident& incident,
                                                         std::chrono::system_clock::time_point now, size_t limit) {
  std::vector<v1::StoredResult> out;
  const auto until = incident.has_resolve_time() ? from_timestamp(incident.resolve_time()) : now;
  with_connection("reading an incident's evidence", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    // results_check_time (check_id, start_time) and the day partitions keep
    // this to the incident's days. Failing results carry their full detail.
    const auto rows = tx.exec_params(
        "SELECT p.name AS probe, r.region, r.detail FROM results r JOIN probes p ON p.id = r.probe_id "
        "WHERE r.check_id = $1 AND r.start_time >= $2::timestamptz AND r.start_time <= $3::timestamptz "
        "AND r.class <> $4 AND r.detail IS NOT NULL "
        "ORDER BY r.start_time DESC, r.probe_id, r.seq LIMIT $5",
        incident.check_id(), timestamptz_text(incident.first_failure_time()),
        timestamptz_text(std::chrono::floor<std::chrono::microseconds>(until)), static_cast<int>(v1::FAILURE_CLASS_OK),
        static_cast<int64_t>(limit));
    out.reserve(rows.size());
    for (const auto& row : rows) {
      v1::StoredResult stored;
      stored.set_probe_id(row["probe"].as<std::string>());
      stored.set_region(row["region"].as<std::string>());
      stored.set_check(incident.check());
      *stored.mutable_result() = parsed<v1::CheckResult>(row["detail"], "result");
      out.push_back(std::move(stored));
    }
  });
  return out;
}

}  // namespace vantage::storage
