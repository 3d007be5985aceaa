#pragma once
// What the correlator remembers of one check: its probes and their failure
// episodes, the isolated episodes of the recurring window, its two incidents.
// Plain data shared by the units of coordinator/correlation/; the questions
// asked of it are answered in scope.h, outage.h, recurrence.h,
// diagnosis_text.h and restart.h, and announced by events.h.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/failure_class.h"
#include "coordinator/correlator.h"

namespace vantage::correlation {

// Bounds on what one check keeps, whatever the failure pattern.
constexpr size_t kMaxSampleRays = 5;
constexpr size_t kMaxListed = 64;    // affected regions, probes, colos of one incident
constexpr size_t kMaxEpisodes = 64;  // isolated episodes remembered per check
constexpr size_t kMaxStarts = 64;    // openings and reopenings remembered per check
constexpr size_t kMaxSpans = 64;     // restored outage spans per check
constexpr size_t kMaxTallied = 16;   // distinct keys in one intermittent incident's tallies
constexpr auto kRecurrenceWindow = std::chrono::hours(24);

// headers_near_limit is a warning, not a failure.
inline bool ok_class(v1::FailureClass c) {
  return c == v1::FAILURE_CLASS_OK || c == v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT;
}

inline bool is_52x(uint32_t code) { return code >= 520 && code <= 529; }

// Adds `item` unless empty, present or the list is full; whether it was added.
inline bool add_unique(std::vector<std::string>& list, const std::string& item, size_t cap = kMaxListed) {
  if (item.empty() || list.size() >= cap) return false;
  if (std::find(list.begin(), list.end(), item) != list.end()) return false;
  list.push_back(item);
  return true;
}

// What one failing result showed, kept per probe (its latest failure) and
// per isolated episode.
struct Failure {
  TimePoint time{};
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;
  uint32_t edge_code = 0;
  std::string colo;
  std::string ray_id;
  std::chrono::microseconds time_to_error{0};
  std::optional<v1::FailureClass> origin_class;
  std::string cause_id, cause, advice;

  void assign(const Observation& o) {  // reuses the strings' capacity
    time = o.time;
    failure_class = o.failure_class;
    edge_code = o.edge_code;
    colo = o.colo;
    ray_id = o.ray_id;
    time_to_error = o.time_to_error;
    origin_class = o.origin_class;
    cause_id = o.cause_id;
    cause = o.cause;
    advice = o.advice;
  }
  // The probe's cause id, else the class: the most exact thing known.
  std::string cause_key() const { return cause_id.empty() ? failure_class_name(failure_class) : cause_id; }
  bool same_cause(const Failure& other) const {
    return failure_class == other.failure_class && edge_code == other.edge_code && cause_id == other.cause_id;
  }
};

struct ProbeState {
  std::string id;
  std::string region;  // empty for a probe only known from a restored incident
  bool has_latest = false;
  bool stale = false;  // as of the last observe() or tick()
  TimePoint latest{};
  std::string colo;  // of the latest result
  bool failing = false;
  uint32_t fail_run = 0;  // consecutive failures, while failing
  uint32_t ok_run = 0;    // consecutive successes, while not failing
  TimePoint episode_start{};
  bool episode_confirmed = false;  // part of an outage: not isolated
  bool owes_recovery = false;      // failed in the open outage: must recover before it resolves
  Failure last_failure;
};

struct Episode {  // an isolated failure episode
  TimePoint first{}, last{};
  uint32_t failures = 0;
  std::string probe, region;
  Failure failure;  // its last failure
};

// Counts per key, for at most kMaxTallied keys (later ones are not counted).
template <class Key>
struct Tally {
  std::vector<std::pair<Key, uint32_t>> items;
  void add(const Key& key, uint32_t n = 1) {
    for (auto& [k, count] : items) {
      if (k == key) {
        count += n;
        return;
      }
    }
    if (items.size() < kMaxTallied) items.emplace_back(key, n);
  }
};

struct CauseTally {
  std::string cause_id, cause, advice;
  uint32_t count = 0;
};

struct Incident {
  std::string id;
  v1::IncidentKind kind = v1::INCIDENT_KIND_OUTAGE;
  bool open = true;
  v1::Scope scope = v1::SCOPE_UNSPECIFIED;
  v1::Scope widest = v1::SCOPE_UNSPECIFIED;
  std::vector<std::string> regions, probes, colos, rays;
  v1::FailureClass dominant_class = v1::FAILURE_CLASS_UNSPECIFIED;
  uint32_t dominant_code = 0;
  std::string cause_id, cause, advice;
  bool has_sample = false;  // outage: the dominant failure, for the evidence
  Failure sample;
  std::vector<std::string> restored_evidence;  // until the correlator has its own
  bool restored = false;  // loaded by restore(): the previous run announced its history
  // The newest stamp on its timeline: every later event is stamped no earlier.
  TimePoint last_stamp{};
  // An opening or reopening decided in the current call, announced when the
  // call ends (or before any other event of the incident): changes of scope
  // and cause that results within one interval of its confirmation bring in
  // the same call are folded into it (docs/correlation.md, "Opening").
  struct Opening {
    v1::IncidentEventType type = v1::INCIDENT_EVENT_TYPE_OPENED;
    TimePoint confirmed{};  // the result that confirmed it
    TimePoint stamp{};      // raised by what is folded in
    size_t episodes = 0;    // intermittent: the episodes that make it
  };
  std::optional<Opening> pending_opening;
  // Built when a snapshot or event needs it; reset by whatever it rests on.
  mutable std::optional<v1::Diagnosis> diagnosis_cache;
  TimePoint first_failure{}, confirm{};
  std::optional<TimePoint> resolve;
  uint64_t failures = 0;
  uint32_t recurrence_24h = 0, recurrence_7d = 0;
  bool flapping = false;
  // Intermittent: what its episodes showed.
  uint32_t episodes = 0;
  Tally<std::string> colo_tally;
  Tally<std::pair<v1::FailureClass, uint32_t>> class_tally;  // (class, edge code)
  std::vector<CauseTally> cause_tally;
  uint32_t origin_ok = 0, origin_failed = 0, origin_absent = 0;
};

struct Start {  // an opening or reopening
  TimePoint time;
  v1::IncidentKind kind;
};

using Span = std::pair<TimePoint, TimePoint>;

struct CheckState {
  int64_t id = 0;
  std::string name;
  std::chrono::milliseconds interval{60'000};
  Settings settings;
  bool configured = false;  // upserted (a restored incident alone does not make a check)
  std::vector<ProbeState> probes;
  std::optional<Incident> outage;        // open, or the latest resolved
  std::optional<Incident> intermittent;  // open, or the latest resolved
  std::vector<Episode> episodes;         // isolated, by first failure, within recurring_window
  std::optional<TimePoint> last_isolated;
  std::vector<Start> starts;  // by time
  std::optional<TimePoint> last_recheck;
  std::optional<TimePoint> restored_until;
  // When restored outages were open, up to restored_until (from their
  // timelines): an episode failing then was part of an outage, not isolated.
  std::vector<Span> restored_spans;
  std::optional<KeepAlive> keep_alive;

  std::chrono::milliseconds stale_after() const {
    return settings.stale_after > std::chrono::milliseconds(0) ? settings.stale_after : interval * 5 / 2;
  }
  bool fresh(const ProbeState& p, TimePoint as_of) const {
    return p.has_latest && as_of - p.latest <= stale_after();
  }
  Incident* open_outage() { return outage && outage->open ? &*outage : nullptr; }
  Incident* open_intermittent() { return intermittent && intermittent->open ? &*intermittent : nullptr; }
};

}  // namespace vantage::correlation
