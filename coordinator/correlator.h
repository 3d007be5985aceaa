#pragma once
// The correlator: per-attempt results and the current time in, incident
// events out (docs/correlation.md: what scope and time mean, how incidents
// open, widen and resolve, and every decision the specification leaves open).
//
// For each check it keeps the latest result of each probe and decides where
// the check fails (scope), whether a failure is an outage (persistent) or
// isolated, whether isolated failures recur (intermittent), and what the
// incident says (cause, advice, evidence); coordinator/correlation/ holds one
// unit per question, this class turns their answers into events. Results
// older than a probe's latest are ignored, so replaying a spool changes
// nothing. Incident ids are "{check_id}-{unix_ms of the first failure}".
//
// Pure logic: no I/O, no threads, no clock reads; every time it stamps comes
// from a result or from tick(now). Not thread-safe: the coordinator owns one
// and calls it from one thread (or under one mutex).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::correlation {

using TimePoint = std::chrono::system_clock::time_point;

// Thresholds of correlation.md; a check's CorrelationSettings override them.
struct Settings {
  uint32_t confirm_consecutive = 2;
  uint32_t resolve_consecutive = 2;
  std::chrono::milliseconds stale_after{0};  // zero: 2.5 x the check's interval
  uint32_t global_quorum = 0;                // zero: max(2, ceil(reporting regions / 2))
  std::chrono::milliseconds reopen_within = std::chrono::minutes(10);
  uint32_t recurring_min = 3;
  std::chrono::milliseconds recurring_window = std::chrono::hours(1);
  std::chrono::milliseconds recheck_min_interval = std::chrono::seconds(30);
  // Outage returns within flapping_window that mark flapping (3: the 4th outage).
  uint32_t flapping_outages = 3;
  std::chrono::milliseconds flapping_window = std::chrono::hours(24);
  // The edge's reuse of idle origin connections (diagnosis.md section 5),
  // compared with the origin's idle-close time in the keep-alive diagnosis.
  std::chrono::milliseconds edge_keepalive_reuse = std::chrono::seconds(900);
};

// The check's CorrelationSettings over `defaults`; unset and zero values keep
// the default.
Settings settings_for(const v1::Check& check, const Settings& defaults);

struct KeepAlive {
  std::chrono::milliseconds idle_close_after{0};  // zero: not closed within the probe window
  uint32_t requests_per_connection = 0;           // zero: not limited within the probe window
  bool operator==(const KeepAlive&) const = default;
};

// What the correlator needs from one stored result.
struct Observation {
  int64_t check_id = 0;
  std::string probe_id;
  std::string region;
  TimePoint time;  // the result's start_time
  bool ok = false;  // edge leg ok (or headers_near_limit, a warning)
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;  // edge leg
  uint32_t edge_code = 0;  // 0 if none
  std::string colo;        // from cf-ray, else from /cdn-cgi/trace
  std::string ray_id;      // from_result fills it for failures only (all that is sampled)
  std::chrono::microseconds time_to_error{0};
  std::optional<v1::FailureClass> origin_class;  // when the origin leg ran
  std::string cause_id, cause, advice;           // the probe's diagnosis
  bool recheck = false;                          // answered a RecheckRequest
  std::optional<KeepAlive> keep_alive;
};

Observation from_result(const v1::CheckResult& result, std::string probe_id, std::string region);

struct RecheckWanted {
  int64_t check_id = 0;
  std::vector<std::string> regions;  // every other region that has reported this check, sorted
  std::string reason_probe;
};

struct Output {
  std::vector<v1::IncidentEvent> events;  // event_id left 0 (storage assigns it)
  std::vector<v1::Incident> changed;      // full snapshot of each incident touched
  std::vector<RecheckWanted> rechecks;
  bool empty() const { return events.empty() && changed.empty() && rechecks.empty(); }
};

struct Stats {
  uint64_t observed = 0;          // results taken into account
  uint64_t late_results = 0;      // not newer than the probe's latest: ignored
  uint64_t unknown_check = 0;     // for a check not (or no longer) upserted
  uint64_t isolated_episodes = 0;
  uint64_t rechecks_wanted = 0;
  uint64_t rechecks_rate_limited = 0;
};

class Correlator {
 public:
  Correlator();
  ~Correlator();
  Correlator(Correlator&&) noexcept;
  Correlator& operator=(Correlator&&) noexcept;

  // Adds or updates a check; its state (probes, incidents) is kept on update.
  void upsert_check(int64_t check_id, std::string name, std::chrono::milliseconds interval, Settings settings);
  // Forgets the check and its incidents (open ones stay as stored).
  void remove_check(int64_t check_id);

  Output observe(const Observation& observation);  // a batch of one
  // Results in the order they were committed; an opening decided in the batch is
  // announced once, at the end, with what the whole batch shows (docs/correlation.md, "Opening").
  Output observe(std::span<const Observation> batch);
  // Time-driven transitions: staleness of probes' latest results (scope),
  // resolution of intermittent incidents, end of flapping.
  Output tick(TimePoint now);

  // Rebuilds incident state after a restart from the incidents loaded from
  // storage: open ones and those resolved within the last 24 h (timelines,
  // when present, give every opening and reopening for the flapping and
  // recurrence counts, and the newest time already announced). Call before
  // any observe(). `seen_until` (the restart time): results up to it were
  // processed by the previous run, so the scope, cause and failure-count
  // changes they make to a restored incident are applied without events.
  // Returns how many incidents were taken (one whose check cannot be told
  // from its check_id or id is skipped).
  size_t restore(const std::vector<v1::Incident>& incidents, std::optional<TimePoint> seen_until = std::nullopt);

  std::vector<v1::Incident> open_incidents() const;  // sorted by id
  // Region -> up, from the latest result of each probe not stale as of the
  // last observe()/tick(): a region is down when all its probes fail.
  std::map<std::string, bool> check_up(int64_t check_id) const;
  const Stats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vantage::correlation
