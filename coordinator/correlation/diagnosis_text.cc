#include "coordinator/correlation/diagnosis_text.h"

#include <fmt/format.h>

#include "common/diagnosis.h"
#include "common/failure_class.h"
#include "common/text.h"

namespace vantage::correlation {

namespace {

using std::chrono::milliseconds;

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

const char* plural(size_t n) { return n == 1 ? "" : "s"; }

void add_outage_evidence(const Incident& inc, v1::Diagnosis& d) {
  d.add_evidence(fmt::format("failing from {} probe{} in {}: {}", inc.probes.size(), plural(inc.probes.size()),
                             join(inc.regions), join(inc.probes)));
  const auto& s = inc.sample;
  std::string edge = "edge leg: " + failure_class_name(s.failure_class);
  if (s.edge_code) edge += fmt::format(" ({})", s.edge_code);
  if (!inc.colos.empty()) edge += fmt::format(", through colo{} {}", plural(inc.colos.size()), join(inc.colos));
  d.add_evidence(std::move(edge));
  d.add_evidence(s.origin_class ? "origin leg: " + failure_class_name(*s.origin_class) : "origin leg: not run");
  if (s.time_to_error.count() > 0) {
    d.add_evidence(fmt::format("time to error: {:.2f} s", static_cast<double>(s.time_to_error.count()) / 1e6));
  }
}

void add_keep_alive_evidence(const KeepAlive& ka, milliseconds reuse, v1::Diagnosis& d) {
  if (ka.idle_close_after > milliseconds(0)) {
    d.add_evidence(fmt::format(
        "keep-alive: the origin closes an idle connection after {}, {} the edge's reuse of idle connections "
        "(about {})",
        seconds_text(ka.idle_close_after, kShortest), ka.idle_close_after < reuse ? "shorter than" : "not shorter than",
        seconds_text(reuse, kShortest)));
  } else {
    d.add_evidence("keep-alive: the origin kept an idle connection open for the whole measurement");
  }
  if (ka.requests_per_connection > 0) {
    d.add_evidence(fmt::format("keep-alive: the origin closes a connection after {} requests", ka.requests_per_connection));
  }
}

void add_intermittent_evidence(const Incident& inc, v1::Diagnosis& d) {
  d.add_evidence(fmt::format("{} isolated failure episode{} ({} failure{}) from {} region{}: {}", inc.episodes,
                             plural(inc.episodes), inc.failures, plural(inc.failures), inc.regions.size(),
                             plural(inc.regions.size()), join(inc.regions)));
  std::string classes;
  for (const auto& [key, n] : inc.class_tally.items) {
    classes += fmt::format("{}{}{} x{}", classes.empty() ? "" : ", ", failure_class_name(key.first),
                           key.second ? fmt::format(" {}", key.second) : "", n);
  }
  if (!classes.empty()) d.add_evidence("failures: " + classes);
  std::string colos;
  for (const auto& [colo, n] : inc.colo_tally.items) colos += fmt::format("{}{} x{}", colos.empty() ? "" : ", ", colo, n);
  if (!colos.empty()) d.add_evidence("colos: " + colos);
  const uint32_t ran = inc.origin_ok + inc.origin_failed;
  d.add_evidence(ran == 0 ? std::string("origin leg: not run")
                          : fmt::format("origin leg: ok in {} of {} attempt{}", inc.origin_ok, ran, plural(ran)));
}

bool keep_alive_race(const Incident& inc) {
  const auto& classes = inc.class_tally.items;
  const bool all_52x = !classes.empty() && std::all_of(classes.begin(), classes.end(),
                                                       [](const auto& item) { return is_52x(item.first.second); });
  const auto colos = std::count_if(inc.colo_tally.items.begin(), inc.colo_tally.items.end(),
                                   [](const auto& item) { return item.first != "unknown"; });
  return all_52x && inc.origin_failed == 0 && (inc.origin_ok > 0 || colos >= 2);
}

}  // namespace

Cause outage_cause(const Failure& f) {
  if (!f.cause_id.empty()) return Cause{f.cause_id, f.cause, f.advice};
  const std::string key = f.cause_key();
  return Cause{key, fmt::format("the check fails: {}", key), "see the evidence"};
}

IntermittentCause intermittent_cause(const Incident& inc) {
  IntermittentCause result;
  uint32_t best_count = 0;
  for (const auto& [key, n] : inc.class_tally.items) {
    if (n > best_count) {
      best_count = n;
      result.dominant = key;
    }
  }
  if (keep_alive_race(inc)) {
    result.cause = Cause{std::string(KeepAliveRace::cause_id), std::string(KeepAliveRace::cause),
                         std::string(KeepAliveRace::advice)};
    return result;
  }
  const CauseTally* best = nullptr;
  for (const auto& c : inc.cause_tally) {
    if (!best || c.count > best->count) best = &c;
  }
  if (!best) return result;
  result.cause = Cause{best->cause_id,
                       best->cause.empty() ? fmt::format("repeated isolated failures: {}", best->cause_id) : best->cause,
                       best->advice.empty() ? "see the evidence" : best->advice};
  return result;
}

v1::Diagnosis diagnosis_of(const Incident& inc, const std::optional<KeepAlive>& keep_alive,
                           milliseconds edge_keepalive_reuse) {
  v1::Diagnosis d;
  d.set_cause_id(inc.cause_id);
  d.set_cause(inc.cause);
  d.set_advice(inc.advice);
  if (inc.kind == v1::INCIDENT_KIND_OUTAGE) {
    if (!inc.has_sample) {  // restored, and nothing new since: what was stored
      for (const auto& line : inc.restored_evidence) d.add_evidence(line);
      return d;
    }
    add_outage_evidence(inc, d);
  } else {
    add_intermittent_evidence(inc, d);
    if (keep_alive) add_keep_alive_evidence(*keep_alive, edge_keepalive_reuse, d);
  }
  if (!inc.rays.empty()) d.add_evidence("sample ray ids: " + join(inc.rays));
  return d;
}

std::string duration_text(milliseconds d) {
  const auto ms = d.count();
  if (ms > 0 && ms % 3'600'000 == 0) return fmt::format("{} h", ms / 3'600'000);
  if (ms > 0 && ms % 60'000 == 0 && ms < 3'600'000) return fmt::format("{} min", ms / 60'000);
  return fmt::format("{:g} s", static_cast<double>(ms) / 1e3);
}

}  // namespace vantage::correlation
