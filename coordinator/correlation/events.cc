#include "coordinator/correlation/events.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/failure_class.h"
#include "common/incident_names.h"
#include "common/proto_time.h"
#include "coordinator/correlation/diagnosis_text.h"
#include "coordinator/correlation/recurrence.h"

namespace vantage::correlation {

namespace {

const v1::Diagnosis& diagnosis_cached(const CheckState& cs, const Incident& inc) {
  if (!inc.diagnosis_cache) {
    inc.diagnosis_cache = diagnosis_of(inc, cs.keep_alive, cs.settings.edge_keepalive_reuse);
  }
  return *inc.diagnosis_cache;
}

// Stamped no earlier than the incident's previous event (docs/correlation.md, "Event stamps").
void append(Call& call, const CheckState& cs, Incident& inc, v1::IncidentEventType type, TimePoint t,
            std::string message) {
  const TimePoint stamp = std::max(t, inc.last_stamp);
  inc.last_stamp = stamp;
  auto& e = call.out.events.emplace_back();
  e.set_incident_id(inc.id);
  e.set_type(type);
  *e.mutable_time() = to_timestamp(stamp);
  e.set_scope(inc.scope);
  if (type == v1::INCIDENT_EVENT_TYPE_OPENED || type == v1::INCIDENT_EVENT_TYPE_REOPENED ||
      type == v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED) {
    *e.mutable_diagnosis() = diagnosis_cached(cs, inc);
  }
  e.set_message(std::move(message));
  touch(call, cs, inc);
}

void set_flapping(Call& call, CheckState& cs, Incident& inc, uint32_t outages, TimePoint t) {
  const bool flapping = is_flapping(outages, cs.settings);
  if (flapping == inc.flapping) return;
  inc.flapping = flapping;
  emit(call, cs, inc, v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED, t,
       flapping ? fmt::format("flapping: {} outages within {}", outages, duration_text(cs.settings.flapping_window))
                : std::string("no longer flapping"));
}

}  // namespace

void touch(Call& call, const CheckState& cs, const Incident& inc) {
  for (const auto& t : call.touched) {
    if (t.second == &inc) return;
  }
  call.touched.emplace_back(&cs, &inc);
}

// Before an incident slot is reused: snapshot what the call did to the old one.
void release(Call& call, CheckState& cs, Incident& inc) {
  if (inc.pending_opening) announce(call, cs, inc);
  auto it = std::find_if(call.touched.begin(), call.touched.end(), [&](const auto& t) { return t.second == &inc; });
  if (it == call.touched.end()) return;
  call.out.changed.push_back(snapshot(*it->first, inc));
  call.touched.erase(it);
}

void finish(Call& call) {
  for (auto [cs, inc] : call.openings) {
    if (inc->pending_opening) announce(call, *cs, *inc);
  }
  call.openings.clear();
  for (const auto& [cs, inc] : call.touched) call.out.changed.push_back(snapshot(*cs, *inc));
  call.touched.clear();
}

// A change within one interval of a pending opening's confirmation is
// folded into the opening; anything else announces the opening first.
void emit(Call& call, CheckState& cs, Incident& inc, v1::IncidentEventType type, TimePoint t,
          std::string message) {
  if (auto& opening = inc.pending_opening) {
    const bool change =
        type == v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED || type == v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED;
    if (change && t - opening->confirmed <= cs.interval) {
      opening->stamp = std::max(opening->stamp, t);  // the opening will show it
      touch(call, cs, inc);
      return;
    }
    announce(call, cs, inc);
  }
  append(call, cs, inc, type, t, std::move(message));
}

void defer_opening(Call& call, CheckState& cs, Incident& inc, v1::IncidentEventType type, TimePoint t,
                   size_t episodes) {
  inc.pending_opening = Incident::Opening{type, t, t, episodes};
  call.openings.emplace_back(&cs, &inc);
}

// Emits the incident's pending opening with the incident as it is now.
void announce(Call& call, CheckState& cs, Incident& inc) {
  const Incident::Opening p = *inc.pending_opening;
  inc.pending_opening.reset();
  const TimePoint stamp = std::max(p.stamp, inc.last_stamp);
  const StartCounts counts = record_start(cs.starts, Start{stamp, inc.kind}, cs.settings);
  inc.recurrence_24h = counts.within_24h;
  const char* verb = p.type == v1::INCIDENT_EVENT_TYPE_OPENED ? "opened" : "reopened";
  if (inc.kind == v1::INCIDENT_KIND_OUTAGE) {
    append(call, cs, inc, p.type, stamp,
           fmt::format("outage {}, scope {}: {}", verb, scope_name(inc.scope), inc.cause));
    set_flapping(call, cs, inc, counts.outages_flapping, stamp);
  } else {
    append(call, cs, inc, p.type, stamp,
           fmt::format("intermittent {}: {} isolated failure episodes within {}: {}", verb, p.episodes,
                       duration_text(cs.settings.recurring_window), inc.cause));
  }
}



v1::Incident snapshot(const CheckState& cs, const Incident& inc) {
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
  *s.mutable_diagnosis() = diagnosis_cached(cs, inc);
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

// Sets an incident's scope, keeping the widest; an event unless `silent`.
void change_scope(Call& call, CheckState& cs, Incident& inc, v1::Scope scope, TimePoint stamp, bool silent) {
  const auto old = inc.scope;
  inc.scope = scope;
  inc.widest = std::max(inc.widest, scope);
  touch(call, cs, inc);
  if (!silent) {
    emit(call, cs, inc, v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED, stamp,
         fmt::format("scope {} -> {}", scope_name(old), scope_name(scope)));
  }
}

}  // namespace vantage::correlation
