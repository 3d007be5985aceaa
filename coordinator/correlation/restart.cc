#include "coordinator/correlation/restart.h"

#include <algorithm>
#include <charconv>

#include "common/proto_time.h"
#include "coordinator/correlation/recurrence.h"

namespace vantage::correlation {

std::optional<int64_t> check_of(const v1::Incident& stored) {
  if (stored.check_id() != 0) return stored.check_id();
  const auto& id = stored.id();
  int64_t value = 0;
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
  if (ec != std::errc() || end == id.data() || end == id.data() + id.size() || *end != '-') return std::nullopt;
  return value;
}

Incident from_proto(const v1::Incident& s) {
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
  inc.restored = true;
  if (inc.kind == v1::INCIDENT_KIND_INTERMITTENT) seed_tallies(inc);
  return inc;
}

History history_of(const v1::Incident& stored, const Incident& inc) {
  History h;
  h.known = std::max(inc.first_failure, inc.confirm);
  if (inc.resolve) h.known = std::max(h.known, *inc.resolve);
  std::vector<const v1::IncidentEvent*> timeline;
  for (const auto& e : stored.timeline()) timeline.push_back(&e);
  std::sort(timeline.begin(), timeline.end(), [](const v1::IncidentEvent* a, const v1::IncidentEvent* b) {
    return from_timestamp(a->time()) < from_timestamp(b->time());
  });
  const bool outage = inc.kind == v1::INCIDENT_KIND_OUTAGE;
  std::optional<TimePoint> span_start;
  for (const auto* e : timeline) {
    const auto t = from_timestamp(e->time());
    h.known = std::max(h.known, t);
    if (e->type() == v1::INCIDENT_EVENT_TYPE_OPENED || e->type() == v1::INCIDENT_EVENT_TYPE_REOPENED) {
      h.starts.push_back(Start{t, inc.kind});
      if (!span_start) span_start = t;
    } else if (e->type() == v1::INCIDENT_EVENT_TYPE_RESOLVED && span_start) {
      if (outage) h.outage_spans.emplace_back(*span_start, t);
      span_start.reset();
    }
  }
  if (h.starts.empty()) {  // no timeline stored: the summary's times
    h.starts.push_back(Start{inc.confirm, inc.kind});
    span_start = inc.first_failure;
  }
  if (span_start && outage) {
    h.outage_spans.emplace_back(*span_start, inc.open || !inc.resolve ? TimePoint::max() : *inc.resolve);
  }
  return h;
}

void settle_restored(CheckState& cs) {
  std::sort(cs.starts.begin(), cs.starts.end(), [](const Start& a, const Start& b) { return a.time < b.time; });
  if (cs.starts.size() > kMaxStarts) cs.starts.erase(cs.starts.begin(), cs.starts.end() - kMaxStarts);
  // An open outage's span ends where the restored knowledge does (a failure
  // at that very time is part of it).
  const TimePoint known_end = *cs.restored_until + TimePoint::duration(1);
  for (auto& span : cs.restored_spans) span.second = std::min(span.second, known_end);
  std::sort(cs.restored_spans.begin(), cs.restored_spans.end());
  if (cs.restored_spans.size() > kMaxSpans) {
    cs.restored_spans.erase(cs.restored_spans.begin(), cs.restored_spans.end() - kMaxSpans);
  }
  Incident* inc = cs.open_outage();
  if (!inc) return;
  for (const auto& probe_id : inc->probes) {
    auto found =
        std::find_if(cs.probes.begin(), cs.probes.end(), [&](const ProbeState& p) { return p.id == probe_id; });
    if (found == cs.probes.end()) {
      found = cs.probes.insert(cs.probes.end(), ProbeState{});
      found->id = probe_id;
    }
    found->owes_recovery = true;
  }
}

}  // namespace vantage::correlation
