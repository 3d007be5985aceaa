#pragma once
// The correlator (correlation.md): per-attempt results and the current time
// in, incident events out. Pure logic: no I/O, no threads, no clock reads.
// Every time it stamps comes from a result or from tick(now). Not
// thread-safe: the coordinator owns one and calls it from one thread (or
// under one mutex).
//
// Decisions the specification leaves open, taken here:
//
// - Late results. A result not newer than the latest result of the same probe
//   for the same check is ignored (Stats::late_results); it is still stored
//   by the coordinator. Replaying a spool is therefore idempotent. Results of
//   different probes may interleave in any order: scope and confirmation
//   compare result times, not arrival order.
// - Scope (over the latest result of each probe not older than stale_after):
//     global  failing regions (every probe of the region fails) >= quorum;
//     colo    every failing result names a colo, every result through those
//             colos fails, and the evidence reaches beyond one region: a
//             failing colo fails from two or more regions, or a failing
//             probe's region has a probe served fine through another colo;
//     region  one or more regions fail entirely (fewer than the quorum);
//     probe   otherwise (each failing probe has a healthy peer in its region).
//   Global wins over colo: a quorum of regions down is what visitors feel,
//   whatever the colo; the incident's affected colos still name it. With one
//   probe per region and one colo per probe, a lone failing region is
//   `region`. Scope is re-evaluated on every failure and recovery, and at
//   tick() when a probe's latest result goes stale (stamped then).
// - Confirmation: confirm_consecutive failures from one probe, or a failure
//   while a probe of another region has failed within one interval of it.
//   A reopen (first failure within reopen_within of the resolution) needs the
//   same confirmation as an opening: a lone blip after a resolution stays
//   isolated. At most one open incident of each kind per check.
// - Resolution of an outage: resolve_consecutive successes from every probe
//   that failed during it. A probe that stops reporting keeps it open.
// - Isolation is settled when an unconfirmed episode ends (the probe's next
//   result is ok). The intermittent incident that such an episode completes is
//   emitted then, stamped with the time of the episode's first failure
//   (worked timeline 4: "opens at t=40 min"). It resolves, stamped
//   last isolated failure + recurring_window, once that time has passed and
//   no reporting probe has an unsettled episode that started before it. Its
//   scope: probe (one probe), global (regions >= quorum), colo (one colo,
//   several regions), else region. Its diagnosis is the keep-alive race
//   (cause_id "keepalive_race") when every episode is a 52x and no origin leg
//   failed, and either an origin leg was fine or the colos vary; else the
//   most common cause of its episodes.
// - Outage diagnosis: the probe's diagnosis of the most common failure among
//   the failing probes (ties keep the current one); the evidence shows the
//   first failure of that cause. Sample ray ids: the first five distinct.
// - Flapping: an outage incident whose check has had more than
//   flapping_outages outage openings or reopenings within flapping_window
//   (default: the fourth outage in 24 h). Cleared on an open incident when
//   the count drops again.
// - recurrence_24h: openings and reopenings of incidents of this check in the
//   24 h up to the latest one, itself included. recurrence_7d is left as
//   restored (the correlator keeps 24 h; storage can count 7 days).
// - Rechecks: on a probe's first failure of an episode (not itself the answer
//   to a recheck), every region but the probe's own that has reported the
//   check; at most one request per recheck_min_interval per check.
// - Time-stamped transitions from tick() carry the time they became due
//   (e.g. last failure + window), not the tick's `now`, so replays agree.
// - Event stamps: an event carries the time of the result (or due time)
//   behind it, raised to the incident's previous stamp when earlier: stamps
//   are monotonic per incident (results of different probes arrive in any
//   order, and a result that started earlier may widen an incident opened by
//   a later one). Read in time order, ties broken by emission order (storage:
//   the event id), a timeline never shows a change before its opening nor a
//   resolution before the last change. A restored incident continues from
//   the newest time its timeline records.
// - Opening: the results in hand decide. observe(batch) takes the results
//   the coordinator has committed since its last call; an opening (or
//   reopening) decided in it is announced when the batch is done, with the
//   scope, cause and counts the whole batch supports: changes of scope and
//   cause that results within one interval of the confirmation bring are
//   folded into the one `opened` event (stamped with the latest result
//   folded in; confirm_time stays the confirming result's), not emitted as
//   `scope_changed` a millisecond later. Later results of the batch (a
//   spool catching up) and any other event of the incident (resolved,
//   flapping) announce the opening first and are events of their own. The
//   outcome depends only on the batches: a replay fed one result at a time
//   may announce as opened-then-widened what a live batch announced as one
//   opening; that is harmless, since replayed results up to the restored
//   timeline change nothing.
// - Restart: restore(incidents with their timelines, restart time), then
//   replay recent results through observe(). Results at or before the newest
//   time the restored incidents of a check record (first failure,
//   confirmation, resolution, timeline events) rebuild probe state and
//   episode history but change no incident and ask no rechecks; an episode
//   failing while a restored outage was open (per its timeline) is not
//   isolated. Later results are processed normally, except that up to the
//   restart time a restored incident's scope, cause and failure count follow
//   silently (the previous run announced them). An open outage is continued,
//   never opened again; an incident the previous run never stored is derived
//   again with the same id and event times. A restored intermittent
//   incident's later diagnosis rests on the stored summary of its episodes
//   (colos, dominant failure, cause), not on every episode.
//   Rechecks asked during a replay are stale: drop them.
//   Incident ids are "{check_id}-{unix_ms of the first failure}".

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
  // Results in the order they were committed; one decision at the end (above).
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
