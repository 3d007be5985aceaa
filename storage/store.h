#pragma once
// What the coordinator needs from storage, as interfaces: the coordinator's
// logic is tested with fakes, and SQL lives only in the implementation.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::storage {

// Database errors mapped to what a caller can do about them.
class StorageError : public std::runtime_error {
 public:
  enum class Kind {
    kUnavailable,  // cannot reach the database or lost the connection: retry later
    kConflict,     // the request contradicts stored state
    kInternal,     // a bug or an unexpected schema
  };
  StorageError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct ProbeRecord {
  int32_t key = 0;       // surrogate key used in results
  std::string name;      // the probe id as probes call themselves
  std::string region;
  uint64_t last_sequence = 0;
};

class ProbeRegistry {
 public:
  virtual ~ProbeRegistry() = default;
  // The probe whose token hashes to `token_sha256_hex`, if any.
  virtual std::optional<ProbeRecord> find_probe_by_token(std::string_view token_sha256_hex) = 0;
  // Records a hello: version, last seen. Returns the probe as stored. The
  // region is the one it was registered with (add_probe), never a hello's.
  virtual ProbeRecord record_hello(int32_t key, std::string_view version) = 0;
};

// A caller of the public API (migration 0004). The token itself is never
// stored, only its SHA-256.
struct ApiTokenRecord {
  int32_t id = 0;
  std::string name;
  std::string role;  // "read", "write" or "admin" (coordinator/api_auth.h)
  std::chrono::system_clock::time_point create_time;
  std::optional<std::chrono::system_clock::time_point> last_used_time;
  std::optional<std::chrono::system_clock::time_point> revoke_time;
  bool revoked() const { return revoke_time.has_value(); }
};

class ApiTokenStore {
 public:
  virtual ~ApiTokenStore() = default;
  // The token (revoked or not) whose token hashes to `token_sha256_hex`.
  virtual std::optional<ApiTokenRecord> find_api_token(std::string_view token_sha256_hex) = 0;
  // Sets last_used_time to now, unless it was set less than a minute ago.
  virtual void record_api_token_use(int32_t id) = 0;
};

// A registered probe as the fleet API shows it.
struct ProbeListing {
  std::string name;
  std::string region;
  std::string version;  // from its last hello; empty before the first
  uint64_t last_sequence = 0;
  std::optional<std::chrono::system_clock::time_point> last_seen_time;
};

class ProbeDirectory {
 public:
  virtual ~ProbeDirectory() = default;
  // Up to `limit` probes named after `after_name` (empty: from the first), in
  // name order; only `region`'s unless it is empty.
  virtual std::vector<ProbeListing> list_probes(std::string_view after_name, std::string_view region,
                                                size_t limit) = 0;
};

class CheckRepository {
 public:
  virtual ~CheckRepository() = default;
  // Makes the stored file-sourced checks equal to `checks` (insert, update
  // with a new version, delete the ones gone). Returns every stored check.
  virtual std::vector<v1::Check> sync_file_checks(const std::vector<v1::Check>& checks) = 0;
  virtual std::vector<v1::Check> list_checks() = 0;
};

// The checks the API owns (source api). Every write and its checks (name
// free, owner, version) happen in one transaction.
struct ApiCheckWrite {
  enum class Outcome { kOk, kNotFound, kNameTaken, kFileOwned, kVersionMismatch };
  Outcome outcome = Outcome::kOk;
  v1::Check check;             // kOk: as stored now (absent after a delete)
  int64_t stored_version = 0;  // kVersionMismatch: the version stored
};

class ApiCheckStore {
 public:
  virtual ~ApiCheckStore() = default;
  // Inserts with source api and version 1.
  virtual ApiCheckWrite create_api_check(const v1::Check& check) = 0;
  // Replaces the user-given fields of the api-owned check named like `check`
  // and bumps its version, if its version is `expected_version`.
  virtual ApiCheckWrite update_api_check(const v1::Check& check, int64_t expected_version) = 0;
  // expected_version 0: whatever the version.
  virtual ApiCheckWrite delete_api_check(const std::string& name, int64_t expected_version) = 0;
};

struct WriteOutcome {
  size_t inserted = 0;
  size_t duplicates = 0;    // already stored (a replay)
  uint64_t acked_sequence = 0;  // every sequence <= this is stored
};

// What one probe sent in one message.
struct ResultBatch {
  ProbeRecord probe;
  std::vector<v1::CheckResult> results;  // strictly increasing sequence numbers
  // The highest sequence number the message carried, refused results
  // included (0: the last result's). A refused result is acknowledged with
  // the batch, so that the probe does not send it again; the results stored
  // around it stay exactly-once.
  uint64_t last_sequence = 0;
  uint64_t acknowledged_through() const {
    return std::max(last_sequence, results.empty() ? 0 : results.back().sequence());
  }
};

class ResultSink {
 public:
  virtual ~ResultSink() = default;
  // Stores the batches (of one or many probes) in one transaction and returns
  // only after the commit: one outcome per batch, in order. Throws
  // StorageError: kUnavailable when a retry may succeed, otherwise the data
  // were refused (then each batch may be tried alone).
  virtual std::vector<WriteOutcome> write_results(const std::vector<const ResultBatch*>& batches) = 0;
};

// Incidents and their timelines (correlation.md).
class IncidentStore {
 public:
  virtual ~IncidentStore() = default;
  // In one transaction: upserts `changed` (full snapshots, timelines ignored)
  // and inserts `events`, skipping events already stored. Returns the events
  // that were new, with their event_id: what to announce. Kind, state, scope,
  // widest scope and event type are stored by name (common/incident_names.h),
  // so SQL can read and filter them.
  virtual std::vector<v1::IncidentEvent> save_incidents(const std::vector<v1::Incident>& changed,
                                                        const std::vector<v1::IncidentEvent>& events) = 0;
  // Open incidents and those resolved at or after `resolved_since`, oldest
  // first, with their timelines.
  virtual std::vector<v1::Incident> load_incidents(std::chrono::system_clock::time_point resolved_since) = 0;
  // One incident with its timeline.
  virtual std::optional<v1::Incident> get_incident(const std::string& id) = 0;
};

// What the public API reads of incidents (IncidentService).
struct IncidentFilter {
  std::string check;                                          // the check's name; empty: any
  v1::IncidentState state = v1::INCIDENT_STATE_UNSPECIFIED;   // unspecified: any
  v1::IncidentKind kind = v1::INCIDENT_KIND_UNSPECIFIED;
  v1::Scope widest_scope = v1::SCOPE_UNSPECIFIED;
  std::optional<std::chrono::system_clock::time_point> opened_from;   // first failure at or after
  std::optional<std::chrono::system_clock::time_point> opened_until;  // first failure before
};

// An incident's place in the list's order: newest first by first failure
// time (microseconds since the epoch, as stored), then id.
struct IncidentKey {
  int64_t first_failure_us = 0;
  std::string id;
};

struct ListedIncident {
  v1::Incident incident;  // without its timeline
  IncidentKey key;
};

// A stored event with its incident as stored now.
struct StoredIncidentEvent {
  v1::IncidentEvent event;  // event_id set
  v1::Incident incident;    // without its timeline
};

class IncidentQueries {
 public:
  virtual ~IncidentQueries() = default;
  // Up to `limit` incidents matching `filter` that come after `after` (none:
  // from the newest), newest first. A key, not an offset: incidents stored
  // meanwhile neither repeat nor shift the next page.
  virtual std::vector<ListedIncident> list_incidents(const IncidentFilter& filter,
                                                     const std::optional<IncidentKey>& after, size_t limit) = 0;
  // Up to `limit` events with an event_id above `after_event_id`, in
  // event_id order; only those at or after `since` when given, and only the
  // check named `check` unless it is empty.
  virtual std::vector<StoredIncidentEvent> incident_events_after(
      int64_t after_event_id, std::optional<std::chrono::system_clock::time_point> since, std::string_view check,
      size_t limit) = 0;
  // The failing results (edge class not ok) of the incident's check from its
  // first failure to its resolution (or `now`), newest first, at most `limit`.
  virtual std::vector<v1::StoredResult> incident_evidence(const v1::Incident& incident,
                                                          std::chrono::system_clock::time_point now,
                                                          size_t limit) = 0;
};

// A stored result with the probe that produced it, for the correlator's
// replay after a restart.
struct StoredResult {
  std::string probe;
  std::string region;
  v1::CheckResult result;  // the columns, or the full detail when stored
};

class ResultHistory {
 public:
  virtual ~ResultHistory() = default;
  // Calls `fn` for each result that started at or after `since`, in
  // start-time order, reading in chunks (an hour of results can be millions).
  virtual void for_each_result_since(std::chrono::system_clock::time_point since,
                                     const std::function<void(StoredResult&&)>& fn) = 0;
};

// The public API's reads of stored results (ResultService).
struct ResultCheck {
  int64_t id = 0;
  std::chrono::microseconds interval{0};  // the check's period, for uptime
};

// Where a newest-first list of results stands: the last row's key.
struct ResultKey {
  std::chrono::sys_time<std::chrono::microseconds> start_time{};
  int32_t probe_key = 0;
  int64_t sequence = 0;
};

// Filters of a list; empty strings and UNSPECIFIED match everything. Times
// are [start_time, end_time).
struct ResultFilter {
  int64_t check_id = 0;
  std::string region;
  std::string probe;                  // the probe's name
  v1::FailureClass failure_class{};   // the edge leg's class
  bool failures_only = false;         // a leg failed (the rows stored with their detail)
  std::optional<std::chrono::sys_time<std::chrono::microseconds>> start_time;
  std::optional<std::chrono::sys_time<std::chrono::microseconds>> end_time;
};

struct ListedResult {
  StoredResult stored;
  ResultKey key;
};

// Latency percentiles (percentile_disc: a latency that was observed) of the
// successful attempts' edge total time; zero without any success.
struct LatencyPercentiles {
  std::chrono::microseconds p50{0}, p90{0}, p95{0}, p99{0};
};

struct RegionTotals {
  std::string region;
  uint64_t attempts = 0;
  uint64_t successes = 0;
  LatencyPercentiles latency;
};

struct ResultSummary {
  uint64_t attempts = 0;
  uint64_t successes = 0;
  LatencyPercentiles latency;
  std::vector<RegionTotals> by_region;                     // by region name
  std::vector<std::pair<v1::FailureClass, uint64_t>> by_class;  // by class number
  struct EdgeCodes {
    std::string region, colo;
    uint32_t edge_code = 0;
    uint64_t count = 0;
  };
  std::vector<EdgeCodes> edge_codes;  // 520..530, by region, colo, code
  uint64_t periods = 0;     // periods of the check's interval with an attempt
  uint64_t periods_up = 0;  // of those, periods with a success in any region
};

class ResultQueries {
 public:
  virtual ~ResultQueries() = default;
  // The stored check named `name`, if any.
  virtual std::optional<ResultCheck> find_result_check(std::string_view name) = 0;
  // Up to `limit` results matching `filter`, newest first by (start_time,
  // probe, sequence), after `after` when given.
  virtual std::vector<ListedResult> list_results(const ResultFilter& filter, const std::optional<ResultKey>& after,
                                                 size_t limit) = 0;
  // The check's results that started in [start, end). Periods are `period`
  // long, counted from the Unix epoch (so they do not move with the window).
  virtual ResultSummary summarize_results(const ResultCheck& check,
                                          std::chrono::sys_time<std::chrono::microseconds> start,
                                          std::chrono::sys_time<std::chrono::microseconds> end) = 0;
};

}  // namespace vantage::storage
