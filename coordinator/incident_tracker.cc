#include "coordinator/incident_tracker.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "common/check_config.h"
#include "common/colo.h"
#include "common/failure_class.h"
#include "common/incident_names.h"
#include "common/log.h"
#include "common/proto_time.h"

namespace vantage::coordinator {

namespace {

// Metrics and logs name them as storage does (common/incident_names.h).
std::string kind_label(v1::IncidentKind k) { return incident_kind_name(k); }
std::string scope_label(v1::Scope s) { return scope_name(s); }
std::string event_label(v1::IncidentEventType t) { return incident_event_type_name(t); }

constexpr size_t kMaxUnsavedEvents = 100'000;
constexpr size_t kReplayFlushEvery = 10'000;  // observations between saves during a replay

}  // namespace

IncidentTracker::IncidentTracker(storage::IncidentStore& incidents, storage::ResultHistory& history,
                                 CoordinatorMetrics& metrics, Timers& timers, IncidentTrackerOptions options,
                                 RecheckFn recheck)
    : incidents_(incidents),
      history_(history),
      metrics_(metrics),
      timers_(timers),
      clock_(timers.clock()),
      options_(options),
      recheck_(std::move(recheck)) {
  // Every kind and scope starts at 0, so alerts see an explicit zero.
  for (auto kind : {v1::INCIDENT_KIND_OUTAGE, v1::INCIDENT_KIND_INTERMITTENT}) {
    for (auto scope : {v1::SCOPE_PROBE, v1::SCOPE_COLO, v1::SCOPE_REGION, v1::SCOPE_GLOBAL}) {
      metrics_.incidents_open.Add({{"kind", kind_label(kind)}, {"scope", scope_label(scope)}}).Set(0);
    }
  }
}

IncidentTracker::~IncidentTracker() { stop(); }

void IncidentTracker::set_checks(const std::vector<v1::Check>& checks) {
  std::lock_guard lock(mu_);
  pending_checks_ = checks;
  checks_changed_ = true;
  cv_.notify_one();
}

void IncidentTracker::start() {
  {
    std::lock_guard lock(mu_);
    for (const auto& check : pending_checks_) {
      check_names_[check.id()] = check.name();
      correlator_.upsert_check(check.id(), check.name(), to_millis(check.interval()),
                               correlation::settings_for(check, options_.defaults));
    }
    checks_changed_ = false;
  }
  const auto now = clock_.now();
  const auto restored = incidents_.load_incidents(now - options_.restore_resolved);
  if (options_.on_restored) options_.on_restored(restored);
  const size_t taken = correlator_.restore(restored, now);
  size_t replayed = 0;
  history_.for_each_result_since(now - options_.replay, [&](storage::StoredResult&& stored) {
    handle(correlator_.observe(correlation::from_result(stored.result, std::move(stored.probe),
                                                        std::move(stored.region))),
           /*replaying=*/true);
    if (++replayed % kReplayFlushEvery == 0) flush();
  });
  handle(correlator_.tick(now), /*replaying=*/true);
  flush();
  export_state({});
  log::info("incidents restored", "incidents", taken, "results_replayed", replayed,
            "open", correlator_.open_incidents().size());
  thread_ = std::thread([this] { loop(); });
}

void IncidentTracker::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void IncidentTracker::add(const std::vector<const storage::ResultBatch*>& batches) {
  std::vector<correlation::Observation> observations;
  for (const auto* batch : batches) {
    for (const auto& r : batch->results) {
      observations.push_back(correlation::from_result(r, batch->probe.name, batch->probe.region));
    }
  }
  size_t skipped = 0;
  {
    std::lock_guard lock(mu_);
    for (auto& o : observations) queue_.push_back(std::move(o));
    while (queue_.size() > options_.max_queued) {
      queue_.pop_front();
      ++skipped;
    }
  }
  cv_.notify_one();
  if (skipped > 0) {
    log::error("correlator behind; oldest results skipped (they are stored, not correlated)", "skipped", skipped);
  }
}

void IncidentTracker::loop() {
  auto next_tick = clock_.steady_now() + options_.tick;
  for (;;) {
    std::deque<correlation::Observation> work;
    std::vector<v1::Check> checks;
    bool checks_changed = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_tick, [&] { return stopping_ || !queue_.empty() || checks_changed_; });
      if (stopping_) break;
      work.swap(queue_);
      if (checks_changed_) {
        checks = std::move(pending_checks_);
        checks_changed = true;
        checks_changed_ = false;
      }
    }
    if (checks_changed) {
      std::set<int64_t> current;
      for (const auto& check : checks) {
        current.insert(check.id());
        check_names_[check.id()] = check.name();
        correlator_.upsert_check(check.id(), check.name(), to_millis(check.interval()),
                                 correlation::settings_for(check, options_.defaults));
      }
      for (auto it = check_names_.begin(); it != check_names_.end();) {
        if (current.contains(it->first)) {
          ++it;
        } else {
          correlator_.remove_check(it->first);
          it = check_names_.erase(it);
        }
      }
    }
    std::vector<int64_t> touched;
    std::vector<correlation::Observation> batch;
    batch.reserve(work.size());
    for (auto& o : work) {
      metrics_.check_results
          .Add({{"class", failure_class_name(o.failure_class)},
                {"region", o.region},
                // Known colos only: a site sending random ones adds no series
                // (results stored before validation are replayed too).
                {"colo", colo_or_other(o.colo)},
                {"edge_code", o.edge_code ? std::to_string(o.edge_code) : std::string()}})
          .Increment();
      touched.push_back(o.check_id);
      batch.push_back(std::move(o));
    }
    // One decision over everything committed since the last round: an outage
    // whose re-checks arrived with its confirmation opens at its full scope.
    if (!batch.empty()) {
      handle(correlator_.observe(std::span<const correlation::Observation>(batch)), /*replaying=*/false);
    }
    if (clock_.steady_now() >= next_tick) {
      handle(correlator_.tick(clock_.now()), /*replaying=*/false);
      next_tick = clock_.steady_now() + options_.tick;
      // Staleness changes up/down without a new result: refresh every check.
      touched.clear();
      for (const auto& [id, name] : check_names_) touched.push_back(id);
    }
    flush();
    export_state(touched);
  }
  flush();
}

void IncidentTracker::handle(correlation::Output output, bool replaying) {
  for (auto& incident : output.changed) {
    auto id = incident.id();
    unsaved_incidents_[id] = std::move(incident);
  }
  for (auto& event : output.events) unsaved_events_.push_back(std::move(event));
  if (unsaved_events_.size() > kMaxUnsavedEvents) {
    // Only a long database outage gets here; a restart's replay derives the
    // dropped events again from the stored results.
    const size_t dropped = unsaved_events_.size() - kMaxUnsavedEvents;
    unsaved_events_.erase(unsaved_events_.begin(), unsaved_events_.begin() + static_cast<long>(dropped));
    log::error("database unavailable for long: oldest unsaved incident events dropped", "dropped", dropped);
  }
  if (replaying) return;  // re-checks for the past are pointless
  for (const auto& wanted : output.rechecks) {
    const auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch()).count();
    const auto request_id = fmt::format("{}-{}", wanted.check_id, now_ms);
    const size_t asked = recheck_ ? recheck_(wanted.check_id, wanted.regions, request_id,
                                             fmt::format("first failure seen by probe {}", wanted.reason_probe))
                                  : 0;
    log::debug("re-check requested", "check_id", wanted.check_id, "request_id", request_id, "probes_asked", asked);
  }
}

void IncidentTracker::flush() {
  if (unsaved_incidents_.empty() && unsaved_events_.empty()) return;
  std::vector<v1::Incident> snapshots;
  snapshots.reserve(unsaved_incidents_.size());
  for (auto& [id, incident] : unsaved_incidents_) snapshots.push_back(incident);
  std::vector<v1::IncidentEvent> fresh;
  try {
    fresh = incidents_.save_incidents(snapshots, unsaved_events_);
  } catch (const storage::StorageError& e) {
    // Kept for the next round; the results they come from are stored. One
    // line per 10 s at most: rounds come every tick while the database is down.
    ++failed_saves_;
    const auto now = clock_.steady_now();
    if (failed_saves_ == 1 || now - last_save_warning_ >= std::chrono::seconds(10)) {
      last_save_warning_ = now;
      log::warn("cannot store incidents yet; will retry", "error", e.what(), "unsaved_events",
                unsaved_events_.size(), "failed_rounds", failed_saves_);
    }
    return;
  }
  if (failed_saves_ > 0) {
    log::info("incidents stored again", "failed_rounds", failed_saves_, "events", unsaved_events_.size());
    failed_saves_ = 0;
  }
  for (const auto& event : fresh) {
    metrics_.incident_events.Add({{"type", event_label(event.type())}}).Increment();
    auto it = unsaved_incidents_.find(event.incident_id());
    const v1::Incident* incident = it == unsaved_incidents_.end() ? nullptr : &it->second;
    if (event.type() == v1::INCIDENT_EVENT_TYPE_OPENED && incident && incident->has_confirm_time()) {
      metrics_.detection_seconds.Observe(std::chrono::duration<double>(from_timestamp(incident->confirm_time()) -
                                                                       from_timestamp(incident->first_failure_time()))
                                             .count());
    }
    log::info("incident " + event_label(event.type()), "incident", event.incident_id(), "check",
              incident ? incident->check() : std::string(), "kind", incident ? kind_label(incident->kind()) : "",
              "scope", scope_label(event.scope()), "cause", incident ? incident->diagnosis().cause_id() : "");
  }
  if (options_.on_events_stored) options_.on_events_stored(fresh, unsaved_incidents_);
  unsaved_incidents_.clear();
  unsaved_events_.clear();
}

void IncidentTracker::export_state(const std::vector<int64_t>& touched_checks) {
  std::map<std::pair<v1::IncidentKind, v1::Scope>, int> open;
  for (auto kind : {v1::INCIDENT_KIND_OUTAGE, v1::INCIDENT_KIND_INTERMITTENT}) {
    for (auto scope : {v1::SCOPE_PROBE, v1::SCOPE_COLO, v1::SCOPE_REGION, v1::SCOPE_GLOBAL}) open[{kind, scope}] = 0;
  }
  for (const auto& incident : correlator_.open_incidents()) ++open[{incident.kind(), incident.scope()}];
  for (const auto& [key, count] : open) {
    metrics_.incidents_open.Add({{"kind", kind_label(key.first)}, {"scope", scope_label(key.second)}}).Set(count);
  }
  std::set<int64_t> seen;
  for (int64_t id : touched_checks) {
    if (!seen.insert(id).second) continue;
    auto name = check_names_.find(id);
    if (name == check_names_.end()) continue;
    for (const auto& [region, up] : correlator_.check_up(id)) {
      metrics_.check_up.Add({{"check", name->second}, {"region", region}}).Set(up ? 1 : 0);
    }
  }
}

}  // namespace vantage::coordinator
