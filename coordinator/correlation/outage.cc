#include "coordinator/correlation/outage.h"

#include <algorithm>

#include "coordinator/correlation/diagnosis_text.h"

namespace vantage::correlation {

std::vector<ProbeVerdict> fresh_verdicts(const CheckState& cs, TimePoint as_of) {
  std::vector<ProbeVerdict> verdicts;
  for (const auto& p : cs.probes) {
    if (cs.fresh(p, as_of)) verdicts.push_back(ProbeVerdict{p.region, p.colo, p.failing});
  }
  return verdicts;
}

v1::Scope current_scope(const CheckState& cs, TimePoint as_of) {
  return outage_scope(fresh_verdicts(cs, as_of), cs.settings.global_quorum);
}

bool confirms_outage(const CheckState& cs, const ProbeState& p, TimePoint t) {
  if (p.fail_run >= cs.settings.confirm_consecutive) return true;
  return std::any_of(cs.probes.begin(), cs.probes.end(), [&](const ProbeState& q) {
    if (&q == &p || !q.failing || q.region == p.region || !cs.fresh(q, t)) return false;
    const auto gap = q.latest > t ? q.latest - t : t - q.latest;
    return gap <= cs.interval;
  });
}

OutageStart outage_start(const CheckState& cs, TimePoint t) {
  OutageStart start{t, 0};
  for (const auto& p : cs.probes) {
    if (p.failing && cs.fresh(p, t)) {
      start.first_failure = std::min(start.first_failure, p.episode_start);
      start.failures += p.fail_run;
    }
  }
  return start;
}

namespace {

bool is_current_cause(const Incident& inc, const Failure& f) {
  return f.failure_class == inc.dominant_class && f.edge_code == inc.dominant_code && f.cause_key() == inc.cause_id;
}

}  // namespace

const Failure* dominant_failure(const CheckState& cs, const Incident& inc, TimePoint as_of) {
  std::vector<const ProbeState*> failing;
  for (const auto& p : cs.probes) {
    if (p.failing && cs.fresh(p, as_of)) failing.push_back(&p);
  }
  const Failure* best = nullptr;
  size_t best_count = 0;
  bool best_current = false;
  for (size_t a = 0; a < failing.size(); ++a) {
    const Failure& fa = failing[a]->last_failure;
    const auto same = [&](const ProbeState* q) { return q->last_failure.same_cause(fa); };
    if (std::any_of(failing.begin(), failing.begin() + static_cast<std::ptrdiff_t>(a), same)) continue;  // counted
    size_t count = 0;
    const Failure* latest = &fa;
    for (size_t b = a; b < failing.size(); ++b) {
      if (!same(failing[b])) continue;
      ++count;
      if (failing[b]->last_failure.time > latest->time) latest = &failing[b]->last_failure;
    }
    const bool current = is_current_cause(inc, fa);
    if (!best || count > best_count ||
        (count == best_count && !best_current && (current || latest->time > best->time))) {
      best = latest;
      best_count = count;
      best_current = current;
    }
  }
  return best;
}

void set_outage_cause(Incident& inc, const Failure& f) {
  if (inc.has_sample && inc.sample.same_cause(f)) return;
  inc.diagnosis_cache.reset();
  inc.has_sample = true;
  inc.sample = f;
  inc.dominant_class = f.failure_class;
  inc.dominant_code = f.edge_code;
  Cause cause = outage_cause(f);
  inc.cause_id = std::move(cause.id);
  inc.cause = std::move(cause.text);
  inc.advice = std::move(cause.advice);
}

void attach(Incident& inc, ProbeState& p) {
  p.owes_recovery = true;
  p.episode_confirmed = true;
  // Not short-circuited: each list takes what is new to it.
  const bool added = add_unique(inc.regions, p.region) | add_unique(inc.probes, p.id) |
                     add_unique(inc.colos, p.last_failure.colo) |
                     add_unique(inc.rays, p.last_failure.ray_id, kMaxSampleRays);
  if (added) inc.diagnosis_cache.reset();
}

bool outage_recovered(const CheckState& cs, const ProbeState& just_ok, TimePoint t) {
  const uint32_t needed = cs.settings.resolve_consecutive;
  const auto owed = [](const ProbeState& p) { return p.owes_recovery; };
  if (std::any_of(cs.probes.begin(), cs.probes.end(), owed)) {
    return std::none_of(cs.probes.begin(), cs.probes.end(), [&](const ProbeState& p) {
      return p.owes_recovery && (p.failing || p.ok_run < needed);
    });
  }
  // Nothing owed (a restored incident whose probes never failed since):
  // settle on enough successes and nothing failing.
  if (just_ok.ok_run < needed) return false;
  return std::none_of(cs.probes.begin(), cs.probes.end(),
                      [&](const ProbeState& p) { return p.failing && cs.fresh(p, t); });
}

bool in_restored_outage(const CheckState& cs, const ProbeState& p, TimePoint t) {
  return std::any_of(cs.restored_spans.begin(), cs.restored_spans.end(), [&](const Span& span) {
    // A failure at the very time of the resolution came after it.
    return p.episode_start < span.second && t > span.first;
  });
}

}  // namespace vantage::correlation
