#pragma once
// Does a check fail again and again (docs/correlation.md, "Intermittent",
// "Flapping")? The isolated episodes of the recurring window, what an
// intermittent incident's episodes showed, when it is due to resolve, and
// how often the check's incidents have opened.

#include <optional>
#include <vector>

#include "coordinator/correlation/scope.h"
#include "coordinator/correlation/state.h"

namespace vantage::correlation {

// The isolated episode a probe's unconfirmed failures make.
Episode episode_of(const ProbeState& p);

// Adds `e` to `episodes` (kept by first failure) and forgets those that
// started more than `window` before the newest, and the oldest beyond
// kMaxEpisodes.
void remember_episode(std::vector<Episode>& episodes, Episode e, std::chrono::milliseconds window);

// Counts `e` into an intermittent incident: failures, regions, probes,
// colos, rays, and the tallies its diagnosis draws on.
void fold(Incident& inc, const Episode& e);

// A restored intermittent incident keeps its diagnosis until new episodes
// bring other evidence: its tallies are seeded from the stored summary.
void seed_tallies(Incident& inc);

// What the incident's episodes came from, for intermittent_scope().
EpisodeSpread spread_of(const Incident& inc);

// When the open intermittent incident resolves: a whole recurring window
// after the last isolated failure (or its confirmation).
TimePoint intermittent_due(const CheckState& cs, const Incident& inc);

// A fresh probe's unconfirmed episode that started by `due` may still turn
// out isolated: the resolution waits for it.
bool episode_pending(const CheckState& cs, TimePoint due, TimePoint now);

// Counts of the check's openings and reopenings, as of one of them.
struct StartCounts {
  uint32_t within_24h = 0;        // any kind, itself included
  uint32_t outages_flapping = 0;  // outages within the flapping window
};

// Records the opening or reopening `s` into `starts` (kept by time, bounded
// to the longer of 24 h and the flapping window) and counts as of it.
StartCounts record_start(std::vector<Start>& starts, Start s, const Settings& settings);

// More than flapping_outages outages within the window.
bool is_flapping(uint32_t outages, const Settings& settings);

// When a flapping incident stops flapping, as of `now`: the time the outage
// that kept the count above the threshold left the window (or `now` when the
// count is not above it), or nothing while it still flaps.
std::optional<TimePoint> flapping_ended(const std::vector<Start>& starts, const Settings& settings, TimePoint now);

}  // namespace vantage::correlation
