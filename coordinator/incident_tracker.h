#pragma once
// Runs the correlator inside the coordinator: stored results in, incidents
// out to PostgreSQL, metrics and re-check requests. One thread owns the
// correlator; ingest writers hand it results after their commit, so an
// incident never rests on a result that is not stored.
//
// Restart: start() loads the open and recently resolved incidents, then
// replays the last `replay` of stored results through the correlator.
// Incident ids and event times are derived from results, and storage skips
// an event it already has: a replay neither loses an event the previous
// process had not saved nor stores one twice.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/timer.h"
#include "coordinator/correlator.h"
#include "coordinator/metrics.h"
#include "storage/store.h"

namespace vantage::coordinator {

// After each commit of incidents: the events that were new (in event_id
// order; may be empty when only snapshots changed) and every incident saved,
// by id. Called on the tracker's thread, so it must not block
// (IncidentFeed::publish).
using IncidentEventsStoredFn = std::function<void(const std::vector<v1::IncidentEvent>& events,
                                                  const std::map<std::string, v1::Incident>& incidents)>;

struct IncidentTrackerOptions {
  correlation::Settings defaults;
  std::chrono::milliseconds tick{1000};
  // Results replayed at start: the default recurring window and a margin.
  std::chrono::minutes replay{65};
  // Resolved incidents restored at start (reopening, flapping, recurrence).
  std::chrono::hours restore_resolved{24};
  // Results waiting for the correlator; past it the oldest are skipped
  // (logged and counted). Only a stalled correlator thread gets there.
  size_t max_queued = 1'000'000;
  // Optional: who hears of newly stored events (WatchIncidents, alerts).
  IncidentEventsStoredFn on_events_stored;
  // Optional: the incidents start() restored from storage, before it replays
  // results (on start()'s thread): what was announced before a restart.
  std::function<void(const std::vector<v1::Incident>& restored)> on_restored;
};

class IncidentTracker {
 public:
  // Asks the connected probes of `regions` for an immediate re-check.
  using RecheckFn = std::function<size_t(int64_t check_id, const std::vector<std::string>& regions,
                                         const std::string& request_id, const std::string& reason)>;

  // Its rounds (options.tick) run on `timers`' clock, which outlives it.
  IncidentTracker(storage::IncidentStore& incidents, storage::ResultHistory& history, CoordinatorMetrics& metrics,
                  Timers& timers, IncidentTrackerOptions options, RecheckFn recheck);
  ~IncidentTracker();

  // Checks to correlate (all of them; replaces the previous set).
  void set_checks(const std::vector<v1::Check>& checks);
  // Restores from storage, replays recent results and starts the thread.
  // Throws storage::StorageError.
  void start();
  void stop();

  // Results just committed. Cheap: copies what the correlator needs.
  void add(const std::vector<const storage::ResultBatch*>& batches);

 private:
  void loop();
  // Saves, announces and acts on what the correlator said.
  void handle(correlation::Output output, bool replaying);
  // Stores pending snapshots and events; keeps them when the database is down.
  void flush();
  void export_state(const std::vector<int64_t>& touched_checks);

  storage::IncidentStore& incidents_;
  storage::ResultHistory& history_;
  CoordinatorMetrics& metrics_;
  Timers& timers_;
  const Clock& clock_;  // timers_' clock
  IncidentTrackerOptions options_;
  RecheckFn recheck_;

  correlation::Correlator correlator_;       // loop thread only (and start())
  std::map<int64_t, std::string> check_names_;  // loop thread only
  std::map<std::string, v1::Incident> unsaved_incidents_;  // by id: latest snapshot
  std::vector<v1::IncidentEvent> unsaved_events_;
  size_t failed_saves_ = 0;  // rounds in a row that could not save (loop thread only)
  std::chrono::steady_clock::time_point last_save_warning_;

  std::mutex mu_;
  ClockCondition cv_{timers_, mu_};  // new work, stop, and the next tick
  std::deque<correlation::Observation> queue_;
  std::vector<v1::Check> pending_checks_;
  bool checks_changed_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace vantage::coordinator
