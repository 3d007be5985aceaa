#include "coordinator/correlator.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <unordered_map>
#include <utility>

#include "common/check_config.h"
#include "common/diagnosis.h"
#include "common/failure_class.h"
#include "common/incident_names.h"
#include "common/proto_time.h"

namespace vantage::correlation {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// Bounds on what one check keeps, whatever the failure pattern.
constexpr size_t kMaxSampleRays = 5;
constexpr size_t kMaxListed = 64;     // affected regions, probes, colos of one incident
constexpr size_t kMaxEpisodes = 64;   // isolated episodes remembered per check
constexpr size_t kMaxStarts = 64;     // openings and reopenings remembered per check
constexpr size_t kMaxSpans = 64;      // restored outage spans per check
constexpr size_t kMaxTallied = 16;    // distinct keys in one intermittent incident's tallies
constexpr auto kRecurrenceWindow = std::chrono::hours(24);

bool ok_class(v1::FailureClass c) {
  return c == v1::FAILURE_CLASS_OK || c == v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT;
}

int64_t unix_ms(TimePoint t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

std::string incident_id(int64_t check_id, TimePoint first_failure) {
  return fmt::format("{}-{}", check_id, unix_ms(first_failure));
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string seconds_text(milliseconds d) { return fmt::format("{:g} s", static_cast<double>(d.count()) / 1e3); }

// "10 min", "1 h", "24 h", "90 s".
std::string duration_text(milliseconds d) {
  const auto ms = d.count();
  if (ms > 0 && ms % 3'600'000 == 0) return fmt::format("{} h", ms / 3'600'000);
  if (ms > 0 && ms % 60'000 == 0 && ms < 3'600'000) return fmt::format("{} min", ms / 60'000);
  return fmt::format("{:g} s", static_cast<double>(ms) / 1e3);
}

// What one failing result showed, kept per probe (its latest failure) and
// per isolated episode.
struct Failure {
  TimePoint time{};
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;
  uint32_t edge_code = 0;
  std::string colo;
  std::string ray_id;
  microseconds time_to_error{0};
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
  // the same call are folded into it (correlator.h, "Opening").
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

struct Start {
  TimePoint time;
  v1::IncidentKind kind;
};

struct CheckState {
  int64_t id = 0;
  std::string name;
  milliseconds interval{60'000};
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
  std::vector<std::pair<TimePoint, TimePoint>> restored_spans;
  std::optional<KeepAlive> keep_alive;

  milliseconds stale_after() const {
    return settings.stale_after > milliseconds(0) ? settings.stale_after : interval * 5 / 2;
  }
  bool fresh(const ProbeState& p, TimePoint as_of) const {
    return p.has_latest && as_of - p.latest <= stale_after();
  }
  Incident* open_outage() { return outage && outage->open ? &*outage : nullptr; }
  Incident* open_intermittent() { return intermittent && intermittent->open ? &*intermittent : nullptr; }
};

// Whether it was added.
bool add_unique(std::vector<std::string>& list, const std::string& item, size_t cap = kMaxListed) {
  if (item.empty() || list.size() >= cap) return false;
  if (std::find(list.begin(), list.end(), item) != list.end()) return false;
  list.push_back(item);
  return true;
}

// --- diagnosis of an intermittent incident (diagnosis.md section 5) ---

bool is_52x(uint32_t code) { return code >= 520 && code <= 529; }

}  // namespace

// ---------------------------------------------------------------------------

Settings settings_for(const v1::Check& check, const Settings& defaults) {
  Settings s = defaults;
  if (!check.has_correlation()) return s;
  const auto& c = check.correlation();
  auto count = [](bool has, uint32_t value, uint32_t& field) {
    if (has && value > 0) field = value;
  };
  auto duration = [](bool has, const google::protobuf::Duration& value, milliseconds& field) {
    if (has && to_millis(value) > milliseconds(0)) field = to_millis(value);
  };
  count(c.has_confirm_consecutive(), c.confirm_consecutive(), s.confirm_consecutive);
  count(c.has_resolve_consecutive(), c.resolve_consecutive(), s.resolve_consecutive);
  duration(c.has_stale_after(), c.stale_after(), s.stale_after);
  count(c.has_global_quorum(), c.global_quorum(), s.global_quorum);
  duration(c.has_reopen_within(), c.reopen_within(), s.reopen_within);
  count(c.has_recurring_min(), c.recurring_min(), s.recurring_min);
  duration(c.has_recurring_window(), c.recurring_window(), s.recurring_window);
  duration(c.has_recheck_min_interval(), c.recheck_min_interval(), s.recheck_min_interval);
  return s;
}

Observation from_result(const v1::CheckResult& result, std::string probe_id, std::string region) {
  Observation o;
  o.check_id = result.check_id();
  o.probe_id = std::move(probe_id);
  o.region = std::move(region);
  o.time = from_timestamp(result.start_time());
  const auto& edge = result.edge();
  o.failure_class = edge.failure_class();
  o.ok = ok_class(o.failure_class);
  o.edge_code = edge.edge().edge_code();
  o.colo = !edge.edge().colo().empty() ? edge.edge().colo() : edge.edge().trace_colo();
  o.time_to_error = microseconds(edge.timings().time_to_error_us());
  if (result.has_origin()) o.origin_class = result.origin().failure_class();
  if (!o.ok) {
    o.ray_id = edge.edge().ray_id();
    o.cause_id = result.diagnosis().cause_id();
    o.cause = result.diagnosis().cause();
    o.advice = result.diagnosis().advice();
  }
  o.recheck = !result.recheck_request_id().empty();
  if (result.has_keep_alive() && result.keep_alive().error().empty()) {
    o.keep_alive = KeepAlive{to_millis(result.keep_alive().idle_close_after()),
                             result.keep_alive().requests_per_connection()};
  }
  return o;
}

// ---------------------------------------------------------------------------

struct Correlator::Impl {
  std::unordered_map<int64_t, CheckState> checks;
  Stats stats;
  // Incidents touched by the current call, snapshotted when it returns.
  std::vector<std::pair<const CheckState*, const Incident*>> touched;
  std::vector<size_t> scratch;          // indices of fresh probes
  std::vector<TimePoint> start_times;   // outage starts, in advance()
  std::optional<TimePoint> seen_until;  // restore(): results the previous run processed

  // Incidents given a pending opening in the current call (announced by finish()).
  std::vector<std::pair<CheckState*, Incident*>> openings;

  // A restored incident's scope, cause and count changes up to seen_until
  // were announced by the previous run: applied without events.
  bool quiet(const Incident& inc, TimePoint t) const { return inc.restored && seen_until && t <= *seen_until; }

  // --- output ---

  void touch(const CheckState& cs, const Incident& inc) {
    for (const auto& t : touched) {
      if (t.second == &inc) return;
    }
    touched.emplace_back(&cs, &inc);
  }

  // Before an incident slot is reused: snapshot what the call did to the old one.
  void release(Output& out, CheckState& cs, Incident& inc) {
    if (inc.pending_opening) announce(out, cs, inc);
    for (auto it = touched.begin(); it != touched.end(); ++it) {
      if (it->second == &inc) {
        out.changed.push_back(snapshot(*it->first, inc));
        touched.erase(it);
        return;
      }
    }
  }

  void finish(Output& out) {
    for (auto [cs, inc] : openings) {
      if (inc->pending_opening) announce(out, *cs, *inc);
    }
    openings.clear();
    for (const auto& [cs, inc] : touched) out.changed.push_back(snapshot(*cs, *inc));
    touched.clear();
  }

  void emit(Output& out, CheckState& cs, Incident& inc, v1::IncidentEventType type, TimePoint t,
            std::string message) {
    if (auto& opening = inc.pending_opening) {
      const bool change =
          type == v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED || type == v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED;
      if (change && t - opening->confirmed <= cs.interval) {
        opening->stamp = std::max(opening->stamp, t);  // the opening will show it
        touch(cs, inc);
        return;
      }
      announce(out, cs, inc);
    }
    append(out, cs, inc, type, t, std::move(message));
  }

  void defer_opening(CheckState& cs, Incident& inc, v1::IncidentEventType type, TimePoint t, size_t episodes) {
    inc.pending_opening = Incident::Opening{type, t, t, episodes};
    openings.emplace_back(&cs, &inc);
  }

  // Emits the incident's pending opening with the incident as it is now.
  void announce(Output& out, CheckState& cs, Incident& inc) {
    const Incident::Opening p = *inc.pending_opening;
    inc.pending_opening.reset();
    const TimePoint stamp = std::max(p.stamp, inc.last_stamp);
    const uint32_t outages = record_start(cs, inc, stamp);
    const char* verb = p.type == v1::INCIDENT_EVENT_TYPE_OPENED ? "opened" : "reopened";
    if (inc.kind == v1::INCIDENT_KIND_OUTAGE) {
      append(out, cs, inc, p.type, stamp,
             fmt::format("outage {}, scope {}: {}", verb, scope_name(inc.scope), inc.cause));
      set_flapping(out, cs, inc, outages, stamp);
    } else {
      append(out, cs, inc, p.type, stamp,
             fmt::format("intermittent {}: {} isolated failure episodes within {}: {}", verb, p.episodes,
                         duration_text(cs.settings.recurring_window), inc.cause));
    }
  }

  // Stamped no earlier than the incident's previous event (correlator.h, "Event stamps").
  void append(Output& out, const CheckState& cs, Incident& inc, v1::IncidentEventType type, TimePoint t,
              std::string message) {
    const TimePoint stamp = std::max(t, inc.last_stamp);
    inc.last_stamp = stamp;
    auto& e = out.events.emplace_back();
    e.set_incident_id(inc.id);
    e.set_type(type);
    *e.mutable_time() = to_timestamp(stamp);
    e.set_scope(inc.scope);
    if (type == v1::INCIDENT_EVENT_TYPE_OPENED || type == v1::INCIDENT_EVENT_TYPE_REOPENED ||
        type == v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED) {
      *e.mutable_diagnosis() = diagnosis(cs, inc);
    }
    e.set_message(std::move(message));
    touch(cs, inc);
  }

  const v1::Diagnosis& diagnosis(const CheckState& cs, const Incident& inc) const {
    if (!inc.diagnosis_cache) inc.diagnosis_cache = build_diagnosis(cs, inc);
    return *inc.diagnosis_cache;
  }

  v1::Diagnosis build_diagnosis(const CheckState& cs, const Incident& inc) const {
    v1::Diagnosis d;
    d.set_cause_id(inc.cause_id);
    d.set_cause(inc.cause);
    d.set_advice(inc.advice);
    auto add = [&](std::string text) { d.add_evidence(std::move(text)); };
    if (inc.kind == v1::INCIDENT_KIND_OUTAGE) {
      if (!inc.has_sample) {
        for (const auto& line : inc.restored_evidence) add(line);
        return d;
      }
      add(fmt::format("failing from {} probe{} in {}: {}", inc.probes.size(), inc.probes.size() == 1 ? "" : "s",
                      join(inc.regions), join(inc.probes)));
      const auto& s = inc.sample;
      std::string edge = "edge leg: " + failure_class_name(s.failure_class);
      if (s.edge_code) edge += fmt::format(" ({})", s.edge_code);
      if (!inc.colos.empty()) edge += ", through colo" + std::string(inc.colos.size() == 1 ? " " : "s ") + join(inc.colos);
      add(std::move(edge));
      add(s.origin_class ? "origin leg: " + failure_class_name(*s.origin_class) : std::string("origin leg: not run"));
      if (s.time_to_error.count() > 0) {
        add(fmt::format("time to error: {:.2f} s", static_cast<double>(s.time_to_error.count()) / 1e6));
      }
    } else {
      add(fmt::format("{} isolated failure episode{} ({} failure{}) from {} region{}: {}", inc.episodes,
                      inc.episodes == 1 ? "" : "s", inc.failures, inc.failures == 1 ? "" : "s", inc.regions.size(),
                      inc.regions.size() == 1 ? "" : "s", join(inc.regions)));
      std::string classes;
      for (const auto& [key, n] : inc.class_tally.items) {
        classes += fmt::format("{}{}{} x{}", classes.empty() ? "" : ", ", failure_class_name(key.first),
                               key.second ? fmt::format(" {}", key.second) : "", n);
      }
      if (!classes.empty()) add("failures: " + classes);
      std::string colos;
      for (const auto& [colo, n] : inc.colo_tally.items) colos += fmt::format("{}{} x{}", colos.empty() ? "" : ", ", colo, n);
      if (!colos.empty()) add("colos: " + colos);
      const uint32_t ran = inc.origin_ok + inc.origin_failed;
      if (ran == 0) {
        add("origin leg: not run");
      } else {
        add(fmt::format("origin leg: ok in {} of {} attempt{}", inc.origin_ok, ran, ran == 1 ? "" : "s"));
      }
      if (cs.keep_alive) {
        const auto& ka = *cs.keep_alive;
        const auto reuse = cs.settings.edge_keepalive_reuse;
        if (ka.idle_close_after > milliseconds(0)) {
          add(fmt::format("keep-alive: the origin closes an idle connection after {}, {} the edge's reuse of "
                          "idle connections (about {})",
                          seconds_text(ka.idle_close_after), ka.idle_close_after < reuse ? "shorter than" : "not shorter than",
                          seconds_text(reuse)));
        } else {
          add("keep-alive: the origin kept an idle connection open for the whole measurement");
        }
        if (ka.requests_per_connection > 0) {
          add(fmt::format("keep-alive: the origin closes a connection after {} requests", ka.requests_per_connection));
        }
      }
    }
    if (!inc.rays.empty()) add("sample ray ids: " + join(inc.rays));
    return d;
  }

  v1::Incident snapshot(const CheckState& cs, const Incident& inc) const {
    v1::Incident s;
    s.set_id(inc.id);
    s.set_check(cs.name);
    s.set_check_id(cs.id);
    s.set_kind(inc.kind);
    s.set_state(inc.open ? v1::INCIDENT_STATE_OPEN : v1::INCIDENT_STATE_RESOLVED);
    s.set_scope(inc.scope);
    s.set_widest_scope(inc.widest);
    for (const auto& r : inc.regions) s.add_affected_regions(r);
    for (const auto& p : inc.probes) s.add_affected_probes(p);
    for (const auto& c : inc.colos) s.add_affected_colos(c);
    s.set_dominant_class(inc.dominant_class);
    s.set_dominant_edge_code(inc.dominant_code);
    *s.mutable_diagnosis() = diagnosis(cs, inc);
    for (const auto& r : inc.rays) s.add_sample_ray_ids(r);
    *s.mutable_first_failure_time() = to_timestamp(inc.first_failure);
    *s.mutable_confirm_time() = to_timestamp(inc.confirm);
    if (inc.resolve && !inc.open) *s.mutable_resolve_time() = to_timestamp(*inc.resolve);
    s.set_failure_count(inc.failures);
    s.set_recurrence_24h(inc.recurrence_24h);
    s.set_recurrence_7d(inc.recurrence_7d);
    s.set_flapping(inc.flapping);
    return s;
  }

  // --- space ---

  void fresh_probes(const CheckState& cs, TimePoint as_of) {
    scratch.clear();
    for (size_t i = 0; i < cs.probes.size(); ++i) {
      if (cs.fresh(cs.probes[i], as_of)) scratch.push_back(i);
    }
  }

  uint32_t quorum(const CheckState& cs, size_t reporting_regions) const {
    if (cs.settings.global_quorum > 0) return cs.settings.global_quorum;
    return std::max<uint32_t>(2, static_cast<uint32_t>((reporting_regions + 1) / 2));
  }

  size_t reporting_regions(const CheckState& cs, TimePoint as_of) {
    fresh_probes(cs, as_of);
    size_t n = 0;
    for (size_t a = 0; a < scratch.size(); ++a) {
      const auto& pa = cs.probes[scratch[a]];
      bool first = true;
      for (size_t b = 0; b < a && first; ++b) first = cs.probes[scratch[b]].region != pa.region;
      n += first;
    }
    return n;
  }

  // The rule in correlator.h, over the latest fresh result of each probe.
  v1::Scope compute_scope(const CheckState& cs, TimePoint as_of) {
    fresh_probes(cs, as_of);
    const auto& ps = cs.probes;
    bool any_failing = false;
    for (size_t i : scratch) any_failing |= ps[i].failing;
    if (!any_failing) return v1::SCOPE_UNSPECIFIED;

    size_t reporting = 0, failing_regions = 0;
    for (size_t a = 0; a < scratch.size(); ++a) {
      const auto& pa = ps[scratch[a]];
      bool first = true;
      for (size_t b = 0; b < a && first; ++b) first = ps[scratch[b]].region != pa.region;
      if (!first) continue;
      ++reporting;
      bool all_failing = true;
      for (size_t b = a; b < scratch.size() && all_failing; ++b) {
        const auto& pb = ps[scratch[b]];
        if (pb.region == pa.region) all_failing = pb.failing;
      }
      failing_regions += all_failing;
    }
    if (failing_regions >= quorum(cs, reporting)) return v1::SCOPE_GLOBAL;

    bool colo_explains = true, beyond_region = false, healthy_colo = false;
    for (size_t i : scratch) {
      if (!ps[i].failing && !ps[i].colo.empty()) healthy_colo = true;
    }
    for (size_t a = 0; a < scratch.size() && colo_explains; ++a) {
      const auto& pa = ps[scratch[a]];
      if (!pa.failing) continue;
      if (pa.colo.empty()) {
        colo_explains = false;
        break;
      }
      for (size_t b : scratch) {
        const auto& pb = ps[b];
        if (pb.colo == pa.colo) {
          if (!pb.failing) colo_explains = false;
          else if (pb.region != pa.region) beyond_region = true;
        } else if (pb.region == pa.region && !pb.failing && !pb.colo.empty()) {
          beyond_region = true;  // served fine in the same region through another colo
        }
      }
    }
    if (colo_explains && beyond_region && healthy_colo) return v1::SCOPE_COLO;
    if (failing_regions > 0) return v1::SCOPE_REGION;
    return v1::SCOPE_PROBE;
  }

  // The most common failure among the fresh failing probes; ties keep the
  // incident's current one, else the most recent.
  const Failure* dominant_failure(const CheckState& cs, const Incident& inc, TimePoint as_of) {
    fresh_probes(cs, as_of);
    const auto& ps = cs.probes;
    const Failure* best = nullptr;
    size_t best_count = 0;
    bool best_current = false;
    for (size_t a = 0; a < scratch.size(); ++a) {
      const auto& fa = ps[scratch[a]].last_failure;
      if (!ps[scratch[a]].failing) continue;
      size_t count = 0;
      const Failure* latest = &fa;
      for (size_t b = 0; b < scratch.size(); ++b) {
        const auto& pb = ps[scratch[b]];
        if (!pb.failing || !pb.last_failure.same_cause(fa)) continue;
        if (b < a) {
          count = 0;  // counted from its first probe already
          break;
        }
        ++count;
        if (pb.last_failure.time > latest->time) latest = &pb.last_failure;
      }
      if (count == 0) continue;
      const bool current = fa.failure_class == inc.dominant_class && fa.edge_code == inc.dominant_code &&
                           fa.cause_key() == inc.cause_id;
      if (!best || count > best_count ||
          (count == best_count && !best_current && (current || latest->time > best->time))) {
        best = latest;
        best_count = count;
        best_current = current;
      }
    }
    return best;
  }

  // Recomputes an open outage's scope and cause; events when they change.
  void refresh_outage(CheckState& cs, Incident& inc, TimePoint as_of, TimePoint stamp, Output& out) {
    const bool silent = quiet(inc, as_of);
    const auto scope = compute_scope(cs, as_of);
    if (scope != v1::SCOPE_UNSPECIFIED && scope != inc.scope) {
      const auto old = inc.scope;
      inc.scope = scope;
      inc.widest = std::max(inc.widest, scope);
      touch(cs, inc);
      if (!silent) {
        emit(out, cs, inc, v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED, stamp,
             fmt::format("scope {} -> {}", scope_name(old), scope_name(scope)));
      }
    }
    if (const Failure* f = dominant_failure(cs, inc, as_of)) {
      const auto old_class = inc.dominant_class;
      const auto old_code = inc.dominant_code;
      const std::string old_cause = inc.cause_id;
      set_outage_cause(inc, *f);
      if (silent) {
        touch(cs, inc);  // applied, not announced
      } else if (inc.cause_id != old_cause) {
        emit(out, cs, inc, v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED, stamp,
             fmt::format("cause {} -> {}", old_cause, inc.cause_id));
      } else if (inc.dominant_class != old_class || inc.dominant_code != old_code) {
        emit(out, cs, inc, v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED, stamp,
             fmt::format("dominant failure {} {} -> {} {}", failure_class_name(old_class), old_code,
                         failure_class_name(inc.dominant_class), inc.dominant_code));
      }
    }
  }

  // The first failure of the dominant cause is the sample the evidence shows.
  static void set_outage_cause(Incident& inc, const Failure& f) {
    if (inc.has_sample && inc.sample.same_cause(f)) return;
    inc.diagnosis_cache.reset();
    inc.has_sample = true;
    inc.sample = f;
    inc.dominant_class = f.failure_class;
    inc.dominant_code = f.edge_code;
    if (!f.cause_id.empty()) {
      inc.cause_id = f.cause_id;
      inc.cause = f.cause;
      inc.advice = f.advice;
    } else {  // a probe that sent no diagnosis
      inc.cause_id = f.cause_key();
      inc.cause = fmt::format("the check fails: {}", inc.cause_id);
      inc.advice = "see the evidence";
    }
  }

  static void attach(Incident& inc, ProbeState& p) {
    p.owes_recovery = true;
    p.episode_confirmed = true;
    // Not short-circuited: each list takes what is new to it.
    const bool added = add_unique(inc.regions, p.region) | add_unique(inc.probes, p.id) |
                       add_unique(inc.colos, p.last_failure.colo) |
                       add_unique(inc.rays, p.last_failure.ray_id, kMaxSampleRays);
    if (added) inc.diagnosis_cache.reset();
  }

  // --- time ---

  // Records an opening or reopening; returns the outage count in the flapping window.
  uint32_t record_start(CheckState& cs, Incident& inc, TimePoint t) {
    auto pos = std::upper_bound(cs.starts.begin(), cs.starts.end(), t,
                                [](TimePoint v, const Start& s) { return v < s.time; });
    cs.starts.insert(pos, Start{t, inc.kind});
    const auto keep = std::max<TimePoint::duration>(kRecurrenceWindow, cs.settings.flapping_window);
    const auto newest = cs.starts.back().time;
    while (!cs.starts.empty() && (cs.starts.front().time < newest - keep || cs.starts.size() > kMaxStarts)) {
      cs.starts.erase(cs.starts.begin());
    }
    uint32_t recent = 0, outages = 0;
    for (const auto& s : cs.starts) {
      if (s.time > t) continue;
      if (s.time >= t - kRecurrenceWindow) ++recent;
      if (s.kind == v1::INCIDENT_KIND_OUTAGE && s.time >= t - cs.settings.flapping_window) ++outages;
    }
    inc.recurrence_24h = recent;
    return outages;
  }

  void set_flapping(Output& out, CheckState& cs, Incident& inc, uint32_t outages, TimePoint t) {
    const bool flapping = outages > cs.settings.flapping_outages;
    if (flapping == inc.flapping) return;
    inc.flapping = flapping;
    emit(out, cs, inc, v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED, t,
         flapping ? fmt::format("flapping: {} outages within {}", outages, duration_text(cs.settings.flapping_window))
                  : std::string("no longer flapping"));
  }

  // Opens the check's incident of `kind` in `slot` (first failure `first`,
  // confirmed at `confirm`), or reopens the one resolved no longer than
  // reopen_within before `reopen_at`, or continues it silently when a replay
  // derives the same opening (UNSPECIFIED). Returns the event type.
  v1::IncidentEventType open_slot(CheckState& cs, std::optional<Incident>& slot, v1::IncidentKind kind,
                                  TimePoint first, TimePoint confirm, TimePoint reopen_at, Output& out) {
    const auto id = incident_id(cs.id, first);
    auto type = v1::INCIDENT_EVENT_TYPE_OPENED;
    if (slot && slot->resolve && reopen_at <= *slot->resolve + cs.settings.reopen_within) {
      type = v1::INCIDENT_EVENT_TYPE_REOPENED;
    } else if (slot && slot->id == id) {
      type = v1::INCIDENT_EVENT_TYPE_UNSPECIFIED;
    } else {
      if (slot) release(out, cs, *slot);
      slot.emplace();
      slot->id = id;
      slot->kind = kind;
      slot->first_failure = first;
      slot->confirm = confirm;
    }
    slot->open = true;
    slot->resolve.reset();
    return type;
  }

  void confirm_outage(CheckState& cs, TimePoint t, Output& out) {
    TimePoint first = t;
    uint64_t failures = 0;
    for (const auto& p : cs.probes) {
      if (p.failing && cs.fresh(p, t)) {
        first = std::min(first, p.episode_start);
        failures += p.fail_run;
      }
    }
    const auto type = open_slot(cs, cs.outage, v1::INCIDENT_KIND_OUTAGE, first, t, /*reopen_at=*/first, out);
    Incident& inc = *cs.outage;
    for (auto& p : cs.probes) {
      if (p.failing && cs.fresh(p, t)) attach(inc, p);
    }
    inc.failures += failures;
    inc.scope = compute_scope(cs, t);
    inc.widest = std::max(inc.widest, inc.scope);
    if (const Failure* f = dominant_failure(cs, inc, t)) set_outage_cause(inc, *f);
    touch(cs, inc);
    if (type == v1::INCIDENT_EVENT_TYPE_UNSPECIFIED) return;
    defer_opening(cs, inc, type, t, 0);
  }

  void resolve_outage(CheckState& cs, Incident& inc, TimePoint t, Output& out) {
    if (inc.pending_opening) announce(out, cs, inc);
    inc.open = false;
    inc.resolve = std::max(t, inc.last_stamp);  // as its event is stamped
    for (auto& p : cs.probes) p.owes_recovery = false;
    emit(out, cs, inc, v1::INCIDENT_EVENT_TYPE_RESOLVED, *inc.resolve,
         fmt::format("resolved: {} successes from every probe that failed", cs.settings.resolve_consecutive));
  }

  // An outage resolves when every probe that failed in it has recovered.
  bool outage_recovered(const CheckState& cs, const ProbeState& just_ok, TimePoint t) const {
    bool any_owed = false;
    for (const auto& p : cs.probes) {
      if (!p.owes_recovery) continue;
      any_owed = true;
      if (p.failing || p.ok_run < cs.settings.resolve_consecutive) return false;
    }
    if (any_owed) return true;
    // Nothing owed (a restored incident whose probes never failed since):
    // settle on enough successes and nothing failing.
    if (just_ok.ok_run < cs.settings.resolve_consecutive) return false;
    for (const auto& p : cs.probes) {
      if (p.failing && cs.fresh(p, t)) return false;
    }
    return true;
  }

  // --- intermittent ---

  static void fold(Incident& inc, const Episode& e) {
    inc.diagnosis_cache.reset();
    ++inc.episodes;
    inc.failures += e.failures;
    add_unique(inc.regions, e.region);
    add_unique(inc.probes, e.probe);
    add_unique(inc.colos, e.failure.colo);
    add_unique(inc.rays, e.failure.ray_id, kMaxSampleRays);
    inc.colo_tally.add(e.failure.colo.empty() ? std::string("unknown") : e.failure.colo);
    inc.class_tally.add({e.failure.failure_class, e.failure.edge_code});
    if (!e.failure.origin_class) {
      ++inc.origin_absent;
    } else if (ok_class(*e.failure.origin_class)) {
      ++inc.origin_ok;
    } else {
      ++inc.origin_failed;
    }
    const auto cid = e.failure.cause_key();
    auto it = std::find_if(inc.cause_tally.begin(), inc.cause_tally.end(),
                           [&](const CauseTally& c) { return c.cause_id == cid; });
    if (it == inc.cause_tally.end() && inc.cause_tally.size() < kMaxTallied) {
      it = inc.cause_tally.insert(inc.cause_tally.end(), CauseTally{cid, e.failure.cause, e.failure.advice, 0});
    }
    if (it != inc.cause_tally.end()) {
      ++it->count;
      if (!e.failure.cause.empty()) {
        it->cause = e.failure.cause;
        it->advice = e.failure.advice;
      }
    }
  }

  // A restored intermittent incident keeps its diagnosis until new episodes
  // bring other evidence: its tallies are seeded from the snapshot.
  static void seed_tallies(Incident& inc) {
    const auto n = static_cast<uint32_t>(std::clamp<uint64_t>(inc.failures, 1, 1u << 20));
    inc.episodes = n;  // isolated episodes are short: about one failure each
    for (const auto& colo : inc.colos) inc.colo_tally.add(colo);
    inc.class_tally.add({inc.dominant_class, inc.dominant_code}, n);
    if (inc.cause_id == KeepAliveRace::cause_id) {
      inc.origin_ok = 1;  // no failing origin leg, and a fine one or several colos
    } else {
      inc.cause_tally.push_back(CauseTally{inc.cause_id, inc.cause, inc.advice, n});
      // 52x over several colos that was not the keep-alive race: an origin leg
      // failed (or another class was seen).
      if (is_52x(inc.dominant_code) && inc.colos.size() >= 2) inc.origin_failed = 1;
    }
  }

  // Keep-alive race when every episode is a 52x through the edge and the
  // origin leg, where it ran, was fine, and either it ran or the colos vary.
  static void set_intermittent_cause(Incident& inc) {
    bool all_52x = !inc.class_tally.items.empty();
    for (const auto& [key, n] : inc.class_tally.items) all_52x &= is_52x(key.second);
    size_t colos = 0;
    for (const auto& [colo, n] : inc.colo_tally.items) colos += colo != "unknown";
    uint32_t best_count = 0;
    for (const auto& [key, n] : inc.class_tally.items) {
      if (n > best_count) {
        best_count = n;
        inc.dominant_class = key.first;
        inc.dominant_code = key.second;
      }
    }
    if (all_52x && inc.origin_failed == 0 && (inc.origin_ok > 0 || colos >= 2)) {
      inc.cause_id = KeepAliveRace::cause_id;
      inc.cause = KeepAliveRace::cause;
      inc.advice = KeepAliveRace::advice;
      return;
    }
    const CauseTally* best = nullptr;
    for (const auto& c : inc.cause_tally) {
      if (!best || c.count > best->count) best = &c;
    }
    if (!best) return;
    inc.cause_id = best->cause_id;
    inc.cause = best->cause.empty() ? fmt::format("repeated isolated failures: {}", best->cause_id) : best->cause;
    inc.advice = best->advice.empty() ? "see the evidence" : best->advice;
  }

  v1::Scope intermittent_scope(const CheckState& cs, const Incident& inc, TimePoint t) {
    if (inc.probes.size() <= 1) return v1::SCOPE_PROBE;
    if (inc.regions.size() >= quorum(cs, reporting_regions(cs, t))) return v1::SCOPE_GLOBAL;
    if (inc.regions.size() >= 2 && inc.colo_tally.items.size() == 1 && inc.colo_tally.items[0].first != "unknown") {
      return v1::SCOPE_COLO;
    }
    return v1::SCOPE_REGION;
  }

  // `now`: the result that ended the episode.
  void record_isolated(CheckState& cs, const ProbeState& p, TimePoint now, bool suppressed, Output& out) {
    ++stats.isolated_episodes;
    Episode e{p.episode_start, p.last_failure.time, p.fail_run, p.id, p.region, p.last_failure};
    cs.last_isolated = cs.last_isolated ? std::max(*cs.last_isolated, e.last) : e.last;
    auto pos = std::upper_bound(cs.episodes.begin(), cs.episodes.end(), e.first,
                                [](TimePoint v, const Episode& x) { return v < x.first; });
    cs.episodes.insert(pos, e);
    const auto window = cs.settings.recurring_window;
    const TimePoint newest = cs.episodes.back().first;
    while (cs.episodes.front().first < newest - window || cs.episodes.size() > kMaxEpisodes) {
      cs.episodes.erase(cs.episodes.begin());
    }
    if (suppressed) return;
    if (Incident* open = cs.open_intermittent()) {
      if (quiet(*open, now)) return;  // the restored incident holds it already
      fold(*open, e);
      const std::string old = open->cause_id;
      set_intermittent_cause(*open);
      touch(cs, *open);
      if (open->cause_id != old) {
        emit(out, cs, *open, v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED, e.first,
             fmt::format("cause {} -> {}", old, open->cause_id));
      }
      const auto scope = intermittent_scope(cs, *open, e.first);
      if (scope != open->scope) {
        const auto previous = open->scope;
        open->scope = scope;
        open->widest = std::max(open->widest, scope);
        emit(out, cs, *open, v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED, e.first,
             fmt::format("scope {} -> {}", scope_name(previous), scope_name(scope)));
      }
      return;
    }
    if (cs.episodes.size() < cs.settings.recurring_min) return;
    // Every remembered episode lies within one window ending at the newest.
    const TimePoint t = newest;
    const TimePoint first = cs.episodes.front().first;
    const auto type = open_slot(cs, cs.intermittent, v1::INCIDENT_KIND_INTERMITTENT, first, t, /*reopen_at=*/t, out);
    Incident& inc = *cs.intermittent;
    for (const auto& ep : cs.episodes) fold(inc, ep);
    set_intermittent_cause(inc);
    inc.scope = intermittent_scope(cs, inc, t);
    inc.widest = std::max(inc.widest, inc.scope);
    touch(cs, inc);
    if (type == v1::INCIDENT_EVENT_TYPE_UNSPECIFIED) return;
    defer_opening(cs, inc, type, t, cs.episodes.size());
  }

  // --- time-driven transitions ---

  void advance(CheckState& cs, TimePoint now, bool staleness, Output& out) {
    if (cs.restored_until && now <= *cs.restored_until) return;
    if (staleness) {
      std::optional<TimePoint> became;
      for (auto& p : cs.probes) {
        if (p.has_latest && !p.stale && now - p.latest > cs.stale_after()) {
          p.stale = true;
          const auto at = p.latest + cs.stale_after();
          became = became ? std::max(*became, at) : at;
        }
      }
      if (became) {
        if (Incident* inc = cs.open_outage()) refresh_outage(cs, *inc, now, *became, out);
      }
    }
    if (Incident* inc = cs.open_intermittent()) {
      const TimePoint last = cs.last_isolated ? std::max(*cs.last_isolated, inc->confirm) : inc->confirm;
      const TimePoint due = last + cs.settings.recurring_window;
      if (now >= due) {
        bool unsettled = false;
        for (const auto& p : cs.probes) {
          unsettled |= p.failing && !p.episode_confirmed && cs.fresh(p, now) && p.episode_start <= due;
        }
        if (!unsettled) {
          inc->open = false;
          inc->resolve = std::max(due, inc->last_stamp);  // as its event is stamped
          emit(out, cs, *inc, v1::INCIDENT_EVENT_TYPE_RESOLVED, *inc->resolve,
               fmt::format("resolved: no isolated failure for {}", duration_text(cs.settings.recurring_window)));
        }
      }
    }
    if (Incident* inc = cs.open_outage(); inc && inc->flapping) {
      // Outage starts, oldest first: flapping ends when the one that kept the
      // count above the threshold leaves the window.
      auto& times = start_times;
      times.clear();
      for (const auto& s : cs.starts) {
        if (s.kind == v1::INCIDENT_KIND_OUTAGE) times.push_back(s.time);
      }
      const size_t threshold = cs.settings.flapping_outages;
      if (times.size() > threshold) {
        const TimePoint ends = times[times.size() - threshold - 1] + cs.settings.flapping_window;
        if (now > ends) {
          inc->flapping = false;
          emit(out, cs, *inc, v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED, ends, "no longer flapping");
        }
      } else {
        inc->flapping = false;
        emit(out, cs, *inc, v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED, now, "no longer flapping");
      }
    }
  }
  // --- results ---

  ProbeState& probe_for(CheckState& cs, const Observation& o) {
    for (auto& p : cs.probes) {
      if (p.id == o.probe_id) {
        if (p.region != o.region) p.region = o.region;
        return p;
      }
    }
    auto& p = cs.probes.emplace_back();
    p.id = o.probe_id;
    p.region = o.region;
    return p;
  }

  void maybe_recheck(CheckState& cs, const ProbeState& p, TimePoint t, Output& out) {
    if (cs.last_recheck && (t < *cs.last_recheck || t - *cs.last_recheck < cs.settings.recheck_min_interval)) {
      ++stats.rechecks_rate_limited;
      return;
    }
    RecheckWanted want;
    for (const auto& q : cs.probes) {
      if (q.has_latest && !q.region.empty() && q.region != p.region &&
          std::find(want.regions.begin(), want.regions.end(), q.region) == want.regions.end()) {
        want.regions.push_back(q.region);
      }
    }
    if (want.regions.empty()) return;
    std::sort(want.regions.begin(), want.regions.end());
    want.check_id = cs.id;
    want.reason_probe = p.id;
    cs.last_recheck = t;
    ++stats.rechecks_wanted;
    out.rechecks.push_back(std::move(want));
  }

  // A failure while a probe of another region failed within one interval.
  bool matched_elsewhere(const CheckState& cs, const ProbeState& p, TimePoint t) const {
    for (const auto& q : cs.probes) {
      if (&q == &p || !q.failing || q.region == p.region || !cs.fresh(q, t)) continue;
      const auto gap = q.latest > t ? q.latest - t : t - q.latest;
      if (gap <= cs.interval) return true;
    }
    return false;
  }

  void on_failure(CheckState& cs, ProbeState& p, const Observation& o, bool suppressed, Output& out) {
    const bool first = !p.failing;
    p.failing = true;
    p.ok_run = 0;
    if (first) {
      p.fail_run = 0;
      p.episode_start = o.time;
      p.episode_confirmed = false;
    }
    ++p.fail_run;
    p.last_failure.assign(o);
    if (first && !o.recheck && !suppressed) maybe_recheck(cs, p, o.time, out);

    // Before restored_until the restored outage's state is not that of the
    // result's time: its spans settle isolation when the episode ends.
    Incident* open = suppressed ? nullptr : cs.open_outage();
    const bool confirmed = open || p.fail_run >= cs.settings.confirm_consecutive || matched_elsewhere(cs, p, o.time);
    if (!confirmed) return;
    if (suppressed) {
      for (auto& q : cs.probes) {
        if (q.failing && cs.fresh(q, o.time)) q.episode_confirmed = true;
      }
      return;
    }
    if (!open) {
      confirm_outage(cs, o.time, out);
      return;
    }
    attach(*open, p);
    if (!quiet(*open, o.time)) ++open->failures;
    touch(cs, *open);
    refresh_outage(cs, *open, o.time, o.time, out);
  }

  void on_success(CheckState& cs, ProbeState& p, const Observation& o, bool suppressed, Output& out) {
    const bool was_failing = p.failing;
    p.failing = false;
    if (was_failing) {
      // Failing while a restored outage was open: the previous run attached it.
      const bool in_restored_outage =
          std::any_of(cs.restored_spans.begin(), cs.restored_spans.end(), [&](const auto& span) {
            // A failure at the very time of the resolution came after it.
            return p.episode_start < span.second && o.time > span.first;
          });
      if (!p.episode_confirmed && !in_restored_outage) record_isolated(cs, p, o.time, suppressed, out);
      p.fail_run = 0;
      p.ok_run = 0;
      p.episode_confirmed = false;
    }
    ++p.ok_run;
    if (suppressed) return;
    Incident* open = cs.open_outage();
    if (!open) return;
    if (outage_recovered(cs, p, o.time)) {
      resolve_outage(cs, *open, o.time, out);
    } else if (was_failing) {
      refresh_outage(cs, *open, o.time, o.time, out);
    }
  }

  Output observe(std::span<const Observation> batch) {
    Output out;
    for (const auto& o : batch) take(o, out);
    finish(out);
    return out;
  }

  void take(const Observation& o, Output& out) {
    auto it = checks.find(o.check_id);
    if (it == checks.end() || !it->second.configured) {
      ++stats.unknown_check;
      return;
    }
    CheckState& cs = it->second;
    ProbeState& p = probe_for(cs, o);
    if (p.has_latest && o.time <= p.latest) {
      ++stats.late_results;
      return;
    }
    ++stats.observed;
    // A result beyond one interval of a pending opening's confirmation is no
    // part of it: the opening is announced as it stands before the result counts.
    for (auto* slot : {&cs.outage, &cs.intermittent}) {
      if (*slot && (*slot)->pending_opening && o.time - (*slot)->pending_opening->confirmed > cs.interval) {
        announce(out, cs, **slot);
      }
    }
    advance(cs, o.time, false, out);
    const bool suppressed = cs.restored_until && o.time <= *cs.restored_until;
    p.has_latest = true;
    p.stale = false;
    p.latest = o.time;
    if (p.colo != o.colo) p.colo = o.colo;
    if (o.keep_alive && o.keep_alive != cs.keep_alive) {
      cs.keep_alive = o.keep_alive;
      if (Incident* inc = cs.open_intermittent()) inc->diagnosis_cache.reset();  // its evidence names it
    }
    if (o.ok) {
      on_success(cs, p, o, suppressed, out);
    } else {
      on_failure(cs, p, o, suppressed, out);
    }
  }

  Output tick(TimePoint now) {
    Output out;
    for (auto& [id, cs] : checks) {
      if (cs.configured) advance(cs, now, true, out);
    }
    finish(out);
    return out;
  }

  // --- restart ---

  static Incident from_proto(const v1::Incident& s) {
    Incident inc;
    inc.id = s.id();
    inc.kind = s.kind();
    inc.open = s.state() != v1::INCIDENT_STATE_RESOLVED;
    inc.scope = s.scope();
    inc.widest = std::max(s.widest_scope(), s.scope());
    inc.regions.assign(s.affected_regions().begin(), s.affected_regions().end());
    inc.probes.assign(s.affected_probes().begin(), s.affected_probes().end());
    inc.colos.assign(s.affected_colos().begin(), s.affected_colos().end());
    inc.rays.assign(s.sample_ray_ids().begin(), s.sample_ray_ids().end());
    inc.dominant_class = s.dominant_class();
    inc.dominant_code = s.dominant_edge_code();
    inc.cause_id = s.diagnosis().cause_id();
    inc.cause = s.diagnosis().cause();
    inc.advice = s.diagnosis().advice();
    inc.restored_evidence.assign(s.diagnosis().evidence().begin(), s.diagnosis().evidence().end());
    inc.first_failure = from_timestamp(s.first_failure_time());
    inc.confirm = s.has_confirm_time() ? from_timestamp(s.confirm_time()) : inc.first_failure;
    if (s.has_resolve_time()) inc.resolve = from_timestamp(s.resolve_time());
    if (!inc.open && !inc.resolve) inc.resolve = inc.confirm;
    inc.failures = s.failure_count();
    inc.recurrence_24h = s.recurrence_24h();
    inc.recurrence_7d = s.recurrence_7d();
    inc.flapping = s.flapping();
    return inc;
  }

  static std::optional<int64_t> check_of(const v1::Incident& s) {
    if (s.check_id() != 0) return s.check_id();
    const auto& id = s.id();
    int64_t value = 0;
    auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
    if (ec != std::errc() || end == id.data() || end == id.data() + id.size() || *end != '-') return std::nullopt;
    return value;
  }

  size_t restore(const std::vector<v1::Incident>& incidents, std::optional<TimePoint> until) {
    seen_until = until;
    size_t taken = 0;
    std::vector<int64_t> restored_checks;
    for (const auto& s : incidents) {
      const auto check_id = check_of(s);
      if (!check_id || (s.kind() != v1::INCIDENT_KIND_OUTAGE && s.kind() != v1::INCIDENT_KIND_INTERMITTENT)) continue;
      auto [it, inserted] = checks.try_emplace(*check_id);
      CheckState& cs = it->second;
      if (inserted) {
        cs.id = *check_id;
        cs.name = s.check();
      }
      restored_checks.push_back(*check_id);
      Incident inc = from_proto(s);
      inc.restored = true;
      if (inc.kind == v1::INCIDENT_KIND_INTERMITTENT) seed_tallies(inc);
      // The newest time this incident records: results up to it are history.
      TimePoint known = std::max(inc.first_failure, inc.confirm);
      if (inc.resolve) known = std::max(known, *inc.resolve);
      bool had_starts = false;
      std::vector<const v1::IncidentEvent*> timeline;
      for (const auto& e : s.timeline()) timeline.push_back(&e);
      std::sort(timeline.begin(), timeline.end(), [](const v1::IncidentEvent* a, const v1::IncidentEvent* b) {
        return from_timestamp(a->time()) < from_timestamp(b->time());
      });
      std::optional<TimePoint> span_start;
      for (const auto* e : timeline) {
        const auto t = from_timestamp(e->time());
        known = std::max(known, t);
        if (e->type() == v1::INCIDENT_EVENT_TYPE_OPENED || e->type() == v1::INCIDENT_EVENT_TYPE_REOPENED) {
          cs.starts.push_back(Start{t, inc.kind});
          had_starts = true;
          if (!span_start) span_start = t;
        } else if (e->type() == v1::INCIDENT_EVENT_TYPE_RESOLVED && span_start) {
          if (inc.kind == v1::INCIDENT_KIND_OUTAGE) cs.restored_spans.emplace_back(*span_start, t);
          span_start.reset();
        }
      }
      if (!had_starts) {
        cs.starts.push_back(Start{inc.confirm, inc.kind});
        span_start = inc.first_failure;
      }
      if (span_start && inc.kind == v1::INCIDENT_KIND_OUTAGE) {
        cs.restored_spans.emplace_back(*span_start, inc.open || !inc.resolve ? TimePoint::max() : *inc.resolve);
      }
      inc.last_stamp = known;
      cs.restored_until = cs.restored_until ? std::max(*cs.restored_until, known) : known;
      if (inc.kind == v1::INCIDENT_KIND_INTERMITTENT && inc.open) {
        cs.last_isolated = cs.last_isolated ? std::max(*cs.last_isolated, inc.confirm) : inc.confirm;
      }
      auto& slot = inc.kind == v1::INCIDENT_KIND_OUTAGE ? cs.outage : cs.intermittent;
      const bool take = !slot || (inc.open && !slot->open) ||
                        (inc.open == slot->open && inc.first_failure > slot->first_failure);
      if (take) slot = std::move(inc);
      ++taken;
    }
    for (int64_t id : restored_checks) {
      CheckState& cs = checks[id];
      std::sort(cs.starts.begin(), cs.starts.end(), [](const Start& a, const Start& b) { return a.time < b.time; });
      if (cs.starts.size() > kMaxStarts) cs.starts.erase(cs.starts.begin(), cs.starts.end() - kMaxStarts);
      // An open outage's span ends where the restored knowledge does (a
      // failure at that very time is part of it).
      const TimePoint known_end = *cs.restored_until + TimePoint::duration(1);
      for (auto& span : cs.restored_spans) span.second = std::min(span.second, known_end);
      std::sort(cs.restored_spans.begin(), cs.restored_spans.end());
      if (cs.restored_spans.size() > kMaxSpans) {
        cs.restored_spans.erase(cs.restored_spans.begin(), cs.restored_spans.end() - kMaxSpans);
      }
      if (Incident* inc = cs.open_outage()) {
        for (const auto& probe_id : inc->probes) {
          auto found = std::find_if(cs.probes.begin(), cs.probes.end(),
                                    [&](const ProbeState& p) { return p.id == probe_id; });
          if (found == cs.probes.end()) {
            found = cs.probes.insert(cs.probes.end(), ProbeState{});
            found->id = probe_id;
          }
          found->owes_recovery = true;
        }
      }
    }
    return taken;
  }
};

// ---------------------------------------------------------------------------

Correlator::Correlator() : impl_(std::make_unique<Impl>()) {}
Correlator::~Correlator() = default;
Correlator::Correlator(Correlator&&) noexcept = default;
Correlator& Correlator::operator=(Correlator&&) noexcept = default;

void Correlator::upsert_check(int64_t check_id, std::string name, std::chrono::milliseconds interval,
                              Settings settings) {
  auto& cs = impl_->checks[check_id];
  cs.id = check_id;
  cs.name = std::move(name);
  cs.interval = interval > milliseconds(0) ? interval : milliseconds(60'000);
  cs.settings = settings;
  cs.configured = true;
  for (auto* slot : {&cs.outage, &cs.intermittent}) {
    if (*slot) (*slot)->diagnosis_cache.reset();  // the settings appear in the evidence
  }
}

void Correlator::remove_check(int64_t check_id) { impl_->checks.erase(check_id); }

Output Correlator::observe(const Observation& observation) { return impl_->observe({&observation, 1}); }

Output Correlator::observe(std::span<const Observation> batch) { return impl_->observe(batch); }

Output Correlator::tick(TimePoint now) { return impl_->tick(now); }

size_t Correlator::restore(const std::vector<v1::Incident>& incidents, std::optional<TimePoint> seen_until) {
  return impl_->restore(incidents, seen_until);
}

std::vector<v1::Incident> Correlator::open_incidents() const {
  std::vector<v1::Incident> out;
  for (const auto& [id, cs] : impl_->checks) {
    for (const auto* slot : {&cs.outage, &cs.intermittent}) {
      if (*slot && (*slot)->open) out.push_back(impl_->snapshot(cs, **slot));
    }
  }
  std::sort(out.begin(), out.end(), [](const v1::Incident& a, const v1::Incident& b) { return a.id() < b.id(); });
  return out;
}

std::map<std::string, bool> Correlator::check_up(int64_t check_id) const {
  std::map<std::string, bool> up;
  auto it = impl_->checks.find(check_id);
  if (it == impl_->checks.end()) return up;
  for (const auto& p : it->second.probes) {
    if (!p.has_latest || p.stale) continue;
    auto [entry, inserted] = up.emplace(p.region, !p.failing);
    if (!inserted) entry->second = entry->second || !p.failing;
  }
  return up;
}

const Stats& Correlator::stats() const { return impl_->stats; }

}  // namespace vantage::correlation
