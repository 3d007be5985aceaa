#include "coordinator/correlation/recurrence.h"

#include <algorithm>

#include "common/diagnosis.h"

namespace vantage::correlation {

Episode episode_of(const ProbeState& p) {
  return Episode{p.episode_start, p.last_failure.time, p.fail_run, p.id, p.region, p.last_failure};
}

void remember_episode(std::vector<Episode>& episodes, Episode e, std::chrono::milliseconds window) {
  auto pos = std::upper_bound(episodes.begin(), episodes.end(), e.first,
                              [](TimePoint v, const Episode& x) { return v < x.first; });
  episodes.insert(pos, std::move(e));
  const TimePoint newest = episodes.back().first;
  while (episodes.front().first < newest - window || episodes.size() > kMaxEpisodes) {
    episodes.erase(episodes.begin());
  }
}

namespace {

void tally_cause(std::vector<CauseTally>& tally, const Failure& f) {
  const auto cid = f.cause_key();
  auto it = std::find_if(tally.begin(), tally.end(), [&](const CauseTally& c) { return c.cause_id == cid; });
  if (it == tally.end() && tally.size() < kMaxTallied) {
    it = tally.insert(tally.end(), CauseTally{cid, f.cause, f.advice, 0});
  }
  if (it == tally.end()) return;
  ++it->count;
  if (!f.cause.empty()) {
    it->cause = f.cause;
    it->advice = f.advice;
  }
}

}  // namespace

void fold(Incident& inc, const Episode& e) {
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
  tally_cause(inc.cause_tally, e.failure);
}

void seed_tallies(Incident& inc) {
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

EpisodeSpread spread_of(const Incident& inc) {
  const auto& colos = inc.colo_tally.items;
  return EpisodeSpread{inc.probes.size(), inc.regions.size(), colos.size() == 1 && colos[0].first != "unknown"};
}

TimePoint intermittent_due(const CheckState& cs, const Incident& inc) {
  const TimePoint last = cs.last_isolated ? std::max(*cs.last_isolated, inc.confirm) : inc.confirm;
  return last + cs.settings.recurring_window;
}

bool episode_pending(const CheckState& cs, TimePoint due, TimePoint now) {
  return std::any_of(cs.probes.begin(), cs.probes.end(), [&](const ProbeState& p) {
    return p.failing && !p.episode_confirmed && cs.fresh(p, now) && p.episode_start <= due;
  });
}

StartCounts record_start(std::vector<Start>& starts, Start s, const Settings& settings) {
  auto pos = std::upper_bound(starts.begin(), starts.end(), s.time,
                              [](TimePoint v, const Start& x) { return v < x.time; });
  starts.insert(pos, s);
  const auto keep = std::max<TimePoint::duration>(kRecurrenceWindow, settings.flapping_window);
  const auto newest = starts.back().time;
  while (!starts.empty() && (starts.front().time < newest - keep || starts.size() > kMaxStarts)) {
    starts.erase(starts.begin());
  }
  StartCounts counts;
  for (const auto& x : starts) {
    if (x.time > s.time) continue;
    if (x.time >= s.time - kRecurrenceWindow) ++counts.within_24h;
    if (x.kind == v1::INCIDENT_KIND_OUTAGE && x.time >= s.time - settings.flapping_window) ++counts.outages_flapping;
  }
  return counts;
}

bool is_flapping(uint32_t outages, const Settings& settings) { return outages > settings.flapping_outages; }

std::optional<TimePoint> flapping_ended(const std::vector<Start>& starts, const Settings& settings, TimePoint now) {
  const auto is_outage = [](const Start& s) { return s.kind == v1::INCIDENT_KIND_OUTAGE; };
  const auto outages = static_cast<size_t>(std::count_if(starts.begin(), starts.end(), is_outage));
  const size_t threshold = settings.flapping_outages;
  if (outages <= threshold) return now;
  // The outage start (oldest first) whose leaving the window brings the count to the threshold.
  size_t index = outages - threshold - 1;
  for (const auto& s : starts) {
    if (!is_outage(s)) continue;
    if (index-- == 0) {
      const TimePoint ends = s.time + settings.flapping_window;
      if (now > ends) return ends;
      return std::nullopt;
    }
  }
  return std::nullopt;  // not reached: `index` < outages
}

}  // namespace vantage::correlation
